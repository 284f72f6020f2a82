//! Processes on different nodes over real TCP on 127.0.0.1: exchanges among two and three
//! nodes, ask, ordering, remote links (terminated process, killed connection, dead node).

mod common;

use std::time::Duration;

use common::*;
use protos::libactor::examples::{Ping, Pong};

#[tokio::test]
async fn two_nodes_exchange_messages_and_replies() {
    let (a, b) = (node(), node());
    let (rec_a, mut rx_a) = Recorder::new();
    let (rec_b, mut rx_b) = Recorder::new();
    let pa = a.spawn("alice", rec_a).unwrap();
    let pb = b.spawn("bob", rec_b).unwrap();
    a.send_from(&pa, &pb, ping(1));
    // Bob sees the ping from Alice's address; his Pong goes back over a second connection.
    assert_eq!(next(&mut rx_b).await, Seen::Ping(pa.clone(), ping(1)));
    assert_eq!(
        next(&mut rx_a).await,
        Seen::Pong(
            pb.clone(),
            Pong {
                seq: 1,
                payload: Default::default()
            }
        )
    );
    let pong: Pong = a.ask(&pb, ping(9), EVENT_TIMEOUT).await.unwrap();
    assert_eq!(pong.seq, 9);
    let m = a.metrics().snapshot();
    assert!(m["libactor/messages_sent_remote"] >= 2.0);
    assert_eq!(
        m["libactor/transport/peers"], 1.0,
        "one connection per peer"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn three_nodes_pass_a_note_around_a_ring() {
    let nodes = [node(), node(), node()];
    let mut pids = Vec::new();
    let mut rxs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (rec, rx) = Recorder::new();
        pids.push(n.spawn(&format!("member-{i}"), rec).unwrap());
        rxs.push(rx);
    }
    for round in 0..3 {
        for i in 0..3 {
            let to = (i + 1) % 3;
            nodes[i].send_from(&pids[i], &pids[to], note(&format!("{round}:{i}")));
            assert_eq!(
                next(&mut rxs[to]).await,
                Seen::Note(pids[i].clone(), note(&format!("{round}:{i}")))
            );
        }
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn remote_messages_between_a_pair_arrive_in_order() {
    let (a, b) = (node(), node());
    let (rec, mut rx) = Recorder::new();
    let pb = b.spawn("rec", rec).unwrap();
    let sender = a.pid("sender").unwrap();
    let other = a.pid("other-sender").unwrap();
    const N: u64 = 20_000;
    for seq in 0..N {
        a.send_from(&sender, &pb, ping(seq));
        a.send_from(&other, &pb, note(&seq.to_string()));
    }
    let (mut next_ping, mut next_note) = (0, 0);
    while next_ping < N || next_note < N {
        match next(&mut rx).await {
            Seen::Ping(from, p) => {
                assert_eq!(from, sender);
                assert_eq!(p.seq, next_ping, "pings from one sender stay in order");
                next_ping += 1;
            }
            Seen::Note(from, n) => {
                assert_eq!(from, other);
                assert_eq!(n.text, next_note.to_string(), "notes stay in order");
                next_note += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn remote_link_reports_a_terminated_process_while_its_node_stays_up() {
    let (a, b) = (node(), node());
    let target = b.spawn("target", Idle).unwrap();
    let (_watcher, mut rx, _probe, _probe_rx) =
        linked_watcher(&a, &b, std::slice::from_ref(&target)).await;
    assert!(b.terminate(&target));
    assert_eq!(next(&mut rx).await, Seen::Exited(target.clone()));
    // A link to a remote process that does not exist fires at once.
    let ghost = b.pid("ghost").unwrap();
    let (rec, mut rx2) = Recorder::linked_to(std::slice::from_ref(&ghost));
    a.spawn("watcher-2", rec).unwrap();
    assert_eq!(next(&mut rx2).await, Seen::Exited(ghost));
    a.clock().settle().await.unwrap();
    assert_quiet(&mut rx);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn killed_connection_fires_exited_for_every_linked_process_there() {
    let (a, b) = (node(), node());
    let t1 = b.spawn("t1", Idle).unwrap();
    let t2 = b.spawn("t2", Idle).unwrap();
    let (watcher, mut rx, probe, mut probe_rx) =
        linked_watcher(&a, &b, &[t1.clone(), t2.clone()]).await;
    assert!(a.disconnect(b.address()));
    let mut exited = vec![next(&mut rx).await, next(&mut rx).await];
    exited.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        exited,
        vec![Seen::Exited(t1.clone()), Seen::Exited(t2.clone())]
    );
    // Both processes still run; a new send reconnects.
    a.send_from(&watcher, &probe, note("reconnected"));
    assert_eq!(
        next(&mut probe_rx).await,
        Seen::Note(watcher.clone(), note("reconnected"))
    );
    assert_eq!(
        a.metrics().snapshot()["libactor/transport/connections_broken"],
        0.0
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_that_dies_breaks_links_to_all_its_processes() {
    let (a, b) = (node(), node());
    let target = b.spawn("target", Idle).unwrap();
    let (_watcher, mut rx, probe, _probe_rx) =
        linked_watcher(&a, &b, std::slice::from_ref(&target)).await;
    // Shutdown sends an ExitedNotice and then closes the connection: either path may fire
    // first, and the link must fire exactly once.
    b.shutdown().await;
    assert_eq!(next(&mut rx).await, Seen::Exited(target.clone()));
    a.clock().settle().await.unwrap();
    assert_quiet(&mut rx);
    // Sending to the dead node fails to connect, is counted, and does not disturb A.
    a.send(&probe, ping(1));
    let (rec, mut local_rx) = Recorder::new();
    let local = a.spawn("local", rec).unwrap();
    a.send(&local, ping(2));
    assert!(matches!(next(&mut local_rx).await, Seen::Ping(_, p) if p.seq == 2));
    a.shutdown().await;
}

#[tokio::test]
async fn remote_ask_times_out_when_replies_are_dropped() {
    let (a, b) = (node(), node());
    let (rec, _rx) = Recorder::new();
    let pb = b.spawn("rec", rec).unwrap();
    let _guard = a.drop_messages::<Pong>(&pb, libactor::Match::Any);
    let res = a
        .ask::<Ping, Pong>(&pb, ping(1), Duration::from_millis(200))
        .await;
    assert!(
        matches!(res, Err(libactor::AskError::Timeout { .. })),
        "{res:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Answers every Ping with a Note: the wrong reply to an ask for a Pong.
struct WrongReply;

impl libactor::Process for WrongReply {
    fn initialize(&mut self, ctx: &mut libactor::Context<Self>) {
        ctx.install(|_: &mut WrongReply, ctx, from: libactor::Upid, _: Ping| {
            ctx.send(&from, note("not a pong"));
        });
    }
}

/// Long enough that an ask which waited it out instead of failing fast fails the test by its
/// error, not by a timed assertion.
const OUTWAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_ask_to_a_node_that_is_not_there_fails_fast_as_unreachable() {
    let a = node();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to: libactor::Upid = format!("echo@127.0.0.1:{port}").parse().unwrap();
    let err = a
        .ask::<Ping, Pong>(&to, ping(1), OUTWAIT)
        .await
        .unwrap_err();
    assert_eq!(err, libactor::AskError::Unreachable(to));
    a.shutdown().await;
}

#[tokio::test]
async fn an_ask_to_a_process_its_node_does_not_have_fails_fast_as_exited() {
    let (a, b) = (node(), node());
    let ghost = b.pid("ghost").unwrap();
    let err = a
        .ask::<Ping, Pong>(&ghost, ping(1), OUTWAIT)
        .await
        .unwrap_err();
    assert_eq!(err, libactor::AskError::Exited(ghost));
    // The ask's link went with it: nothing is left watching on either side.
    let (rec, _rx) = Recorder::new();
    let live = b.spawn("live", rec).unwrap();
    let pong: Pong = a.ask(&live, ping(2), EVENT_TIMEOUT).await.unwrap();
    assert_eq!(pong.seq, 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_reply_of_another_type_fails_the_ask_naming_both_types() {
    let (a, b) = (node(), node());
    let wrong = b.spawn("wrong", WrongReply).unwrap();
    let err = a
        .ask::<Ping, Pong>(&wrong, ping(1), OUTWAIT)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        libactor::AskError::UnexpectedReply {
            to: wrong,
            expected: "keel.libactor.examples.Pong".into(),
            got: "keel.libactor.examples.Note".into(),
        }
    );
    a.shutdown().await;
    b.shutdown().await;
}
