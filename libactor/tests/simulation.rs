//! The simulated network: nodes on one thread and one paused clock exchange encoded messages
//! without sockets; a partition or a crash loses messages and fires links as a broken
//! connection does; a stall delays one direction and delivers in order; the same driver
//! replays the same messages (same digest).

mod common;

use std::time::Duration;

use common::{note, Recorder, Seen};
use libactor::simulation::SimNetwork;
use libactor::{Node, Upid};
use tokio::sync::mpsc::UnboundedReceiver;

/// Everything the recorder has seen so far (call after settling).
fn drain(rx: &mut UnboundedReceiver<Seen>) -> Vec<Seen> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn texts(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Note(_, n) => Some(n.text.clone()),
            _ => None,
        })
        .collect()
}

/// Two nodes, a recorder on `b` and one on `a` linked to it.
fn pair(
    net: &SimNetwork,
) -> (
    Node,
    Node,
    Upid,
    UnboundedReceiver<Seen>,
    UnboundedReceiver<Seen>,
) {
    let a = net.node(1).start().unwrap();
    let b = net.node(2).start().unwrap();
    let (target, target_rx) = Recorder::new();
    let target = b.spawn("target", target).unwrap();
    let (watcher, watcher_rx) = Recorder::linked_to(std::slice::from_ref(&target));
    a.spawn("watcher", watcher).unwrap();
    (a, b, target, target_rx, watcher_rx)
}

#[test]
fn messages_cross_without_sockets_and_a_stall_delays_them_in_order() {
    let net = SimNetwork::start(1_000).unwrap();
    let driver = net.clone();
    let seen = net.block_on(async move {
        let (a, b, target, mut rx, _) = pair(&driver);
        driver.settle().await.unwrap();
        a.send(&target, note("first"));
        driver.settle().await.unwrap();
        let mut seen = texts(&drain(&mut rx));
        driver.stall(a.address(), b.address(), Duration::from_secs(5));
        for text in ["held 1", "held 2"] {
            a.send(&target, note(text));
        }
        driver.settle().await.unwrap();
        assert!(drain(&mut rx).is_empty(), "a stall holds the messages");
        driver.clock().advance(Duration::from_secs(3));
        a.send(&target, note("sent during the stall"));
        driver.settle().await.unwrap();
        assert!(drain(&mut rx).is_empty(), "and what follows them");
        driver.clock().advance(Duration::from_secs(2));
        a.send(&target, note("after"));
        driver.settle().await.unwrap();
        seen.extend(texts(&drain(&mut rx)));
        assert_eq!(
            b.metrics().snapshot()["libactor/transport/frames_received"],
            6.0
        );
        seen
    });
    assert_eq!(
        seen,
        [
            "first",
            "held 1",
            "held 2",
            "sent during the stall",
            "after"
        ]
    );
    net.stop();
}

#[test]
fn a_partition_loses_messages_and_fires_links_until_healed() {
    let net = SimNetwork::start(1_000).unwrap();
    let driver = net.clone();
    net.block_on(async move {
        let (a, b, target, mut target_rx, mut watcher_rx) = pair(&driver);
        driver.settle().await.unwrap();
        driver.partition(&[a.address()], &[b.address()]);
        driver.settle().await.unwrap();
        assert_eq!(drain(&mut watcher_rx), vec![Seen::Exited(target.clone())]);
        assert!(driver.is_cut(b.address(), a.address()));
        a.send(&target, note("lost"));
        driver.settle().await.unwrap();
        assert!(drain(&mut target_rx).is_empty());
        assert_eq!(
            a.metrics().snapshot()["libactor/dropped/connection_lost"],
            1.0
        );
        driver.heal();
        a.send(&target, note("after the heal"));
        driver.settle().await.unwrap();
        assert_eq!(texts(&drain(&mut target_rx)), ["after the heal"]);
    });
    net.stop();
}

#[test]
fn a_crashed_node_says_nothing_more_and_its_address_can_start_again() {
    let net = SimNetwork::start(1_000).unwrap();
    let driver = net.clone();
    net.block_on(async move {
        let (a, b, target, _, mut watcher_rx) = pair(&driver);
        driver.settle().await.unwrap();
        let port = b.socket_addr().port();
        let before = driver.messages();
        driver.crash(&b).await;
        driver.settle().await.unwrap();
        assert_eq!(drain(&mut watcher_rx), vec![Seen::Exited(target.clone())]);
        // As its processes ended, `b` would have told `a` (its ExitedNotice): a crashed node
        // says nothing more.
        assert_eq!(driver.messages(), before);
        let again = driver
            .node(3)
            .bind(([127, 0, 0, 1], port).into())
            .start()
            .expect("a crashed node's address is free again");
        let (target2, mut rx2) = Recorder::new();
        let target2 = again.spawn("target", target2).unwrap();
        assert_eq!(target2, target, "the same address, the same pid");
        a.send(&target2, note("to the new node"));
        driver.settle().await.unwrap();
        assert_eq!(texts(&drain(&mut rx2)), ["to the new node"]);
        assert!(
            driver
                .node(4)
                .bind(([127, 0, 0, 1], port).into())
                .start()
                .is_err(),
            "one live node per address"
        );
    });
    net.stop();
}

/// Runs a small exchange with timers and returns the network's digest.
fn exchange(seed: u64) -> (u64, u64) {
    let net = SimNetwork::start(1_000).unwrap();
    let driver = net.clone();
    let digest = net.block_on(async move {
        let (a, _b, target, _, _) = pair(&driver);
        for i in 0..20u64 {
            let n = a.random().next_u64() % 1000 + seed;
            a.send(&target, note(&n.to_string()));
            driver.clock().advance(Duration::from_millis(10 * i));
            driver.settle().await.unwrap();
        }
        (driver.digest(), driver.messages())
    });
    net.stop();
    digest
}

#[test]
fn the_same_driver_replays_the_same_messages() {
    let (digest, messages) = exchange(0);
    assert!(messages >= 20, "{messages}");
    assert_eq!(exchange(0), (digest, messages));
    assert_ne!(exchange(1).0, digest);
}
