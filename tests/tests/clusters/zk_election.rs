//! Leader election and detection against a real ZooKeeper server: the lowest contender leads,
//! the next takes over when it withdraws or its session expires, the old leader hears that it
//! lost before anything else, and detectors follow every change.

use std::time::Duration;

use coordination::{Candidacy, Contender, Detector, MasterInfoJson, ZkUrl};
use keel_testkit::zookeeper_server::ZooKeeperServer;

const WAIT: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(4);

fn info(n: u16) -> MasterInfoJson {
    let pid: libactor::Upid = format!("master@127.0.0.1:{}", 5050 + n).parse().unwrap();
    MasterInfoJson::new(&format!("m{n}"), &pid, "localhost")
}

async fn wait_for(contender: &Contender, want: fn(&Candidacy) -> bool) -> Candidacy {
    let mut rx = contender.candidacy();
    let seen = tokio::time::timeout(WAIT, rx.wait_for(want))
        .await
        .expect("candidacy changed in time")
        .expect("contender running")
        .clone();
    seen
}

async fn wait_for_leader(detector: &Detector, pid: &str) {
    let mut rx = detector.leader();
    tokio::time::timeout(
        WAIT,
        rx.wait_for(|l| l.as_ref().is_some_and(|l| l.pid == pid)),
    )
    .await
    .unwrap_or_else(|_| panic!("detector never saw {pid} lead"))
    .expect("detector running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowest_contender_leads_and_the_next_takes_over() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let url: ZkUrl = zk.url("/keel").parse().unwrap();
    let detector = Detector::start(url.clone(), SESSION);

    let first = Contender::contend(&url, &info(1), SESSION).await.unwrap();
    tokio::time::timeout(WAIT, first.elected())
        .await
        .unwrap()
        .unwrap();
    let second = Contender::contend(&url, &info(2), SESSION).await.unwrap();
    let third = Contender::contend(&url, &info(3), SESSION).await.unwrap();
    assert!(first.znode() < second.znode() && second.znode() < third.znode());
    assert_eq!(*second.candidacy().borrow(), Candidacy::Contending);
    assert_eq!(*third.candidacy().borrow(), Candidacy::Contending);
    wait_for_leader(&detector, &info(1).pid).await;

    // The leader withdraws: the next in line leads, the last keeps waiting.
    drop(first);
    wait_for(&second, |c| *c == Candidacy::Leading).await;
    wait_for_leader(&detector, &info(2).pid).await;
    assert_eq!(*third.candidacy().borrow(), Candidacy::Contending);

    // The leader's session expires at the server: it hears it lost, the third leads.
    coordination::session::expire(&url, second.session().clone())
        .await
        .unwrap();
    let lost = wait_for(&second, |c| matches!(c, Candidacy::Lost(_))).await;
    assert!(
        matches!(lost, Candidacy::Lost(ref why) if !why.is_empty()),
        "{lost:?}"
    );
    wait_for(&third, |c| *c == Candidacy::Leading).await;
    wait_for_leader(&detector, &info(3).pid).await;
    // A lost candidacy stays lost.
    assert!(matches!(*second.candidacy().borrow(), Candidacy::Lost(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detector_waits_for_a_first_leader_and_reports_none_when_all_go() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let url: ZkUrl = zk.url("/keel/detect").parse().unwrap();
    let detector = Detector::start(url.clone(), SESSION);
    assert!(detector
        .wait_for_leader(Duration::from_millis(300))
        .await
        .is_err());
    let only = Contender::contend(&url, &info(7), SESSION).await.unwrap();
    let found = detector.wait_for_leader(WAIT).await.unwrap();
    assert_eq!(found, info(7));
    assert_eq!(found.upid().unwrap().to_string(), "master@127.0.0.1:5057");
    drop(only);
    let mut rx = detector.leader();
    tokio::time::timeout(WAIT, rx.wait_for(Option::is_none))
        .await
        .expect("leader gone in time")
        .unwrap();
}

/// How long a blip may last: the leader's grace is two thirds of this session timeout, which
/// covers the JVM's restart on a loaded 2-vCPU machine.
const LONG_SESSION: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_restart_shorter_than_the_session_keeps_the_leader_leading() {
    let mut zk = ZooKeeperServer::start().expect("zookeeper");
    let url: ZkUrl = zk.url("/keel").parse().unwrap();
    let leader = Contender::contend(&url, &info(1), LONG_SESSION)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, leader.elected())
        .await
        .unwrap()
        .unwrap();
    let standby = Contender::contend(&url, &info(2), LONG_SESSION)
        .await
        .unwrap();
    let mut leading = leader.candidacy();
    leading.mark_unchanged();

    zk.kill().unwrap();
    zk.resume().unwrap();

    // The sessions survive the restart: the leader still leads, and its znode is still the
    // lowest, so the standby still waits.
    let detector = Detector::start(url.clone(), LONG_SESSION);
    wait_for_leader(&detector, &info(1).pid).await;
    assert_eq!(*leader.candidacy().borrow(), Candidacy::Leading);
    assert_eq!(*standby.candidacy().borrow(), Candidacy::Contending);
    // It never stopped leading in between.
    assert!(
        !leading.has_changed().unwrap_or(true),
        "the leader's candidacy changed: {:?}",
        *leading.borrow()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_longer_than_it_may_be_steps_down() {
    let mut zk = ZooKeeperServer::start().expect("zookeeper");
    let url: ZkUrl = zk.url("/keel").parse().unwrap();
    let leader = Contender::contend(&url, &info(1), SESSION).await.unwrap();
    tokio::time::timeout(WAIT, leader.elected())
        .await
        .unwrap()
        .unwrap();
    zk.kill().unwrap();
    // Within two thirds of the session timeout of the break, it no longer leads.
    let lost = wait_for(&leader, |c| matches!(c, Candidacy::Lost(_))).await;
    assert!(
        matches!(&lost, Candidacy::Lost(why) if why.contains("disconnected")),
        "{lost:?}"
    );
}
