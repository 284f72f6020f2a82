//! How binaries name the master: `host:port`, a full pid `master@host:port`, or
//! `zk://host:port,…/path` to follow whichever master ZooKeeper elected.

use std::time::Duration;

use anyhow::Context as _;
use coordination::{Detector, ZkUrl, DEFAULT_SESSION_TIMEOUT};
use libactor::{Upid, UpidError};

/// The master's pid from `host:port` (the process is `master`) or `id@host:port`.
pub fn master_pid(text: &str) -> Result<Upid, UpidError> {
    if text.contains('@') {
        text.parse()
    } else {
        format!("master@{text}").parse()
    }
}

/// Where a binary finds its master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterSource {
    /// One fixed master.
    Fixed(Upid),
    /// The leader elected in ZooKeeper, followed across failovers.
    ZooKeeper(ZkUrl),
}

impl MasterSource {
    /// Parses a `--master` value.
    pub fn parse(text: &str) -> anyhow::Result<MasterSource> {
        if text.starts_with("zk://") {
            return Ok(MasterSource::ZooKeeper(text.parse()?));
        }
        Ok(MasterSource::Fixed(master_pid(text)?))
    }

    /// The current master, waiting up to `timeout` for ZooKeeper to name a leader; with
    /// ZooKeeper, also the detector that goes on following it (see [`follow`]).
    pub async fn resolve(&self, timeout: Duration) -> anyhow::Result<(Upid, Option<Detector>)> {
        match self {
            MasterSource::Fixed(pid) => Ok((pid.clone(), None)),
            MasterSource::ZooKeeper(url) => {
                let detector = Detector::start(url.clone(), DEFAULT_SESSION_TIMEOUT);
                let leader = detector
                    .wait_for_leader(timeout)
                    .await
                    .with_context(|| format!("finding the leading master in {url}"))?;
                Ok((leader.upid()?, Some(detector)))
            }
        }
    }
}

/// Calls `changed` with every new leader `detector` sees after `current` (not with `current`
/// itself, nor while no master leads), until the returned task is aborted or `changed`
/// returns false.
pub fn follow(
    detector: Detector,
    current: Upid,
    changed: impl Fn(Upid) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut leader = detector.leader();
        let mut current = current;
        loop {
            let next = leader
                .borrow_and_update()
                .as_ref()
                .and_then(|l| l.upid().ok());
            if let Some(next) = next.filter(|n| *n != current) {
                tracing::info!(from = %current, to = %next, "following the new leading master");
                if !changed(next.clone()) {
                    return;
                }
                current = next;
            }
            if leader.changed().await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_full_pids_both_work() {
        assert_eq!(
            master_pid("127.0.0.1:5050").unwrap().to_string(),
            "master@127.0.0.1:5050"
        );
        assert_eq!(master_pid("m@127.0.0.1:1").unwrap().id(), "m");
        assert!(master_pid("no-port").is_err());
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            MasterSource::parse("127.0.0.1:5050").unwrap(),
            MasterSource::Fixed("master@127.0.0.1:5050".parse().unwrap())
        );
        assert!(matches!(
            MasterSource::parse("zk://127.0.0.1:2181/keel").unwrap(),
            MasterSource::ZooKeeper(url) if url.path == "/keel"
        ));
        assert!(MasterSource::parse("zk://nohost/keel").is_err());
    }
}
