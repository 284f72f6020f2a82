//! Following ZooKeeper's election from a test: wait for a leading master (other than one
//! that was killed).

use std::time::Duration;

use coordination::Detector;

/// How long a test waits for a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(60);

/// The pid of the first leader `detector` sees that is not `old`; panics after
/// [`LEADER_WAIT`].
pub async fn leader_other_than(detector: &Detector, old: Option<&str>) -> String {
    let mut rx = detector.leader();
    let found = tokio::time::timeout(
        LEADER_WAIT,
        rx.wait_for(|l| l.as_ref().is_some_and(|l| Some(l.pid.as_str()) != old)),
    )
    .await
    .expect("a leader in time")
    .expect("detector running")
    .clone();
    found.map(|l| l.pid).unwrap_or_default()
}
