//! Processes on one node: dispatch by type, ask, timers on the paused clock, settle, local links,
//! filters, ordering, lifecycle.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use libactor::{AskError, Clock, Context, Match, Node, Process, SpawnError, Upid};
use protos::libactor::examples::{Note, Ping, Pong};

#[tokio::test]
async fn handlers_are_dispatched_by_message_type() {
    let node = node();
    let (rec, mut rx) = Recorder::new();
    let pid = node.spawn("recorder", rec).unwrap();
    node.send(&pid, note("hello"));
    node.send(&pid, ping(3));
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(node.anonymous_pid().clone(), note("hello"))
    );
    assert_eq!(
        next(&mut rx).await,
        Seen::Ping(node.anonymous_pid().clone(), ping(3))
    );
    node.shutdown().await;
}

#[tokio::test]
async fn message_without_handler_is_dropped_and_counted() {
    let node = node();
    let idle = node.spawn("idle", Idle).unwrap();
    let (rec, mut rx) = Recorder::new();
    let rec = node.spawn("rec", rec).unwrap();
    node.send(&idle, note("nobody listens"));
    node.send(&node.pid("ghost").unwrap(), note("nobody home"));
    // The idle process handled its message before this later one is seen by the recorder...
    node.send_from(&idle, &rec, note("after"));
    assert_eq!(next(&mut rx).await, Seen::Note(idle.clone(), note("after")));
    node.clock().settle().await.unwrap();
    let m = node.metrics().snapshot();
    assert_eq!(m["libactor/dropped/unknown_message"], 1.0);
    assert_eq!(m["libactor/dropped/unknown_process"], 1.0);
    node.shutdown().await;
}

#[tokio::test]
async fn ask_gets_reply() {
    let node = node();
    let (rec, _rx) = Recorder::new();
    let pid = node.spawn("echo", rec).unwrap();
    let pong: Pong = node.ask(&pid, ping(41), EVENT_TIMEOUT).await.unwrap();
    assert_eq!(pong.seq, 41);
    node.shutdown().await;
}

#[tokio::test]
async fn ask_times_out_on_the_paused_clock() {
    let clock = Clock::paused();
    let node = node_with_clock(&clock);
    let idle = node.spawn("idle", Idle).unwrap();
    let n = node.clone();
    let target = idle.clone();
    let asking = tokio::spawn(async move {
        n.ask::<Ping, Pong>(&target, ping(1), Duration::from_secs(30))
            .await
    });
    // The ask's timer exists once its request is on its way; then 30 s pass in no time.
    within(async {
        while clock.pending_timers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    clock.advance(Duration::from_secs(29));
    clock.settle().await.unwrap();
    assert!(!asking.is_finished(), "29 s is not enough to time out");
    clock.advance(Duration::from_secs(1));
    let result = within(asking).await.unwrap();
    assert_eq!(
        result,
        Err(AskError::Timeout {
            to: idle.clone(),
            timeout: Duration::from_secs(30)
        })
    );
    let unknown = node
        .ask::<Ping, Pong>(
            &node.pid("nobody").unwrap(),
            ping(1),
            Duration::from_secs(1),
        )
        .await;
    assert!(matches!(unknown, Err(AskError::UnknownProcess(_))));
    node.shutdown().await;
}

/// Sends itself a Note after a delay, unless cancelled.
struct Delayer {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Process for Delayer {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.delay(Duration::from_secs(10), |d: &mut Delayer, _| {
            let _ = d.tx.send("10s".into());
        });
        let cancelled = ctx.delay(Duration::from_secs(5), |d: &mut Delayer, _| {
            let _ = d.tx.send("cancelled timer fired".into());
        });
        assert!(cancelled.cancel());
        ctx.delay(Duration::from_secs(20), |d: &mut Delayer, ctx| {
            let _ = d.tx.send("20s".into());
            ctx.terminate();
        });
    }
}

#[tokio::test]
async fn delay_and_cancel_under_the_paused_clock() {
    let clock = Clock::paused();
    let node = node_with_clock(&clock);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pid = node.spawn("delayer", Delayer { tx }).unwrap();
    clock.settle().await.unwrap();
    assert_eq!(
        clock.pending_timers(),
        2,
        "initialize has run; the cancelled timer is gone"
    );
    clock.advance(Duration::from_secs(9));
    clock.settle().await.unwrap();
    assert!(rx.try_recv().is_err(), "nothing is due at 9 s");
    clock.advance(Duration::from_secs(1));
    clock.settle().await.unwrap();
    assert_eq!(rx.try_recv().unwrap(), "10s");
    assert!(rx.try_recv().is_err());
    clock.advance(Duration::from_secs(10));
    clock.settle().await.unwrap();
    assert_eq!(rx.try_recv().unwrap(), "20s");
    within(node.wait(&pid)).await;
    assert!(!node.is_running(&pid));
    node.shutdown().await;
}

/// Forwards each Note to the next hop, `hops` times in all.
struct Relay {
    next: Option<Upid>,
    count: Arc<AtomicU32>,
}

impl Process for Relay {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |r: &mut Relay, ctx: &mut Context<Relay>, _from: Upid, n: Note| {
                r.count.fetch_add(1, Ordering::SeqCst);
                if let Some(next) = &r.next {
                    ctx.delay_send(Duration::from_millis(100), next, n);
                }
            },
        );
    }
}

#[tokio::test]
async fn settle_waits_for_every_message_and_expired_timer() {
    let clock = Clock::paused();
    let node = node_with_clock(&clock);
    let count = Arc::new(AtomicU32::new(0));
    let mut next = None;
    for i in (0..50).rev() {
        let relay = Relay {
            next: next.clone(),
            count: count.clone(),
        };
        next = Some(node.spawn(&format!("relay-{i}"), relay).unwrap());
    }
    node.send(&next.unwrap(), note("go"));
    clock.settle().await.unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the next hop waits for its 100 ms timer"
    );
    for hop in 2..=50 {
        clock.advance(Duration::from_millis(100));
        clock.settle().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), hop);
    }
    assert_eq!(clock.pending_timers(), 0);
    node.shutdown().await;
}

#[tokio::test]
async fn local_link_reports_termination_exactly() {
    let node = node();
    let target = node.spawn("target", Idle).unwrap();
    let (rec, mut rx) = Recorder::linked_to(std::slice::from_ref(&target));
    let watcher = node.spawn("watcher", rec).unwrap();
    node.clock().settle().await.unwrap();
    assert_quiet(&mut rx);
    assert!(node.terminate(&target));
    assert_eq!(next(&mut rx).await, Seen::Exited(target.clone()));
    // Linking to a process that is already gone reports it at once.
    let (rec, mut rx2) = Recorder::linked_to(std::slice::from_ref(&target));
    node.spawn("late-watcher", rec).unwrap();
    assert_eq!(next(&mut rx2).await, Seen::Exited(target.clone()));
    node.clock().settle().await.unwrap();
    assert_quiet(&mut rx);
    assert_quiet(&mut rx2);
    assert!(node.is_running(&watcher));
    node.shutdown().await;
}

#[tokio::test]
async fn filters_capture_and_drop() {
    let node = node();
    let (rec, mut rx) = Recorder::new();
    let pid = node.spawn("rec", rec).unwrap();

    // expect_message: a copy is captured, the message still arrives.
    let seen = node.expect_message::<Note>(Match::Any, &pid);
    node.send(&pid, note("one"));
    let captured = within(seen).await.unwrap();
    assert_eq!(captured.message, note("one"));
    assert_eq!(captured.from, *node.anonymous_pid());
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(node.anonymous_pid().clone(), note("one"))
    );

    // drop_message: the next match is dropped, later ones pass.
    let dropped = node.drop_message::<Note>(node.anonymous_pid(), &pid);
    node.send(&pid, note("two"));
    node.send(&pid, note("three"));
    assert_eq!(within(dropped).await.unwrap().message, note("two"));
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(node.anonymous_pid().clone(), note("three"))
    );

    // drop_messages: all matches dropped while the guard lives; other types pass.
    let guard = node.drop_messages::<Note>(Match::Any, Match::Any);
    node.send(&pid, note("four"));
    node.send(&pid, ping(5));
    assert!(matches!(next(&mut rx).await, Seen::Ping(_, p) if p.seq == 5));
    drop(guard);
    node.send(&pid, note("five"));
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(node.anonymous_pid().clone(), note("five"))
    );

    // A predicate filter by name.
    let guard = node.drop_messages_where(|m| m.name == "keel.libactor.examples.Ping");
    node.send(&pid, ping(6));
    node.send(&pid, note("six"));
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(node.anonymous_pid().clone(), note("six"))
    );
    drop(guard);
    node.clock().settle().await.unwrap();
    assert_eq!(node.metrics().snapshot()["libactor/dropped/filtered"], 3.0);
    node.shutdown().await;
}

#[tokio::test]
async fn messages_between_a_pair_arrive_in_order() {
    let node = node();
    let (rec, mut rx) = Recorder::new();
    let pid = node.spawn("rec", rec).unwrap();
    let sender = node.pid("sender").unwrap();
    for seq in 0..10_000 {
        node.send_from(&sender, &pid, ping(seq));
    }
    for seq in 0..10_000 {
        match next(&mut rx).await {
            Seen::Ping(from, p) => {
                assert_eq!(from, sender);
                assert_eq!(p.seq, seq);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    node.shutdown().await;
}

/// Counts initialize/finalize calls.
struct Lifecycle {
    events: Arc<parking_lot::Mutex<Vec<&'static str>>>,
}

impl Process for Lifecycle {
    fn initialize(&mut self, _: &mut Context<Self>) {
        self.events.lock().push("initialize");
    }
    fn finalize(&mut self, _: &mut Context<Self>) {
        self.events.lock().push("finalize");
    }
}

#[tokio::test]
async fn lifecycle_spawn_terminate_wait_and_ids() {
    let node = node();
    let events = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let id = node.generate_id("slave");
    assert_eq!(id, "slave(1)");
    assert_eq!(node.generate_id("slave"), "slave(2)");
    let pid = node
        .spawn(
            &id,
            Lifecycle {
                events: events.clone(),
            },
        )
        .unwrap();
    assert_eq!(pid.to_string(), format!("slave(1)@{}", node.address()));
    assert_eq!(
        node.spawn(&id, Idle).unwrap_err(),
        SpawnError::DuplicateId("slave(1)".into())
    );
    assert!(matches!(
        node.spawn("metrics", Idle),
        Err(SpawnError::ReservedId(_))
    ));
    assert!(matches!(
        node.spawn("a/b", Idle),
        Err(SpawnError::InvalidId(_))
    ));
    assert!(node.processes().contains(&pid));
    assert!(node.terminate(&pid));
    within(node.wait(&pid)).await;
    assert_eq!(*events.lock(), vec!["initialize", "finalize"]);
    assert!(!node.terminate(&pid));
    // The id is free again once the process has gone.
    node.spawn(&id, Idle).unwrap();
    node.shutdown().await;
    assert_eq!(
        node.spawn("after", Idle).unwrap_err(),
        SpawnError::NodeStopped
    );
}

/// Holds a counter readable through `ProcessRef::call`.
struct Counter(u64);

impl Process for Counter {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(|c: &mut Counter, _: &mut Context<Counter>, _: Upid, _: Note| c.0 += 1);
    }
}

#[tokio::test]
async fn process_ref_dispatch_and_call() {
    let node = node();
    let counter = node.spawn_ref("counter", Counter(0)).unwrap();
    for _ in 0..3 {
        node.send(counter.pid(), note("+1"));
    }
    assert!(counter.dispatch(|c, _| c.0 += 10));
    assert_eq!(counter.call(|c, _| c.0).await.unwrap(), 13);
    node.terminate(counter.pid());
    within(node.wait(counter.pid())).await;
    assert!(counter.call(|c, _| c.0).await.is_err());
    node.shutdown().await;
}

#[tokio::test]
async fn two_nodes_in_one_process_can_share_a_paused_clock() {
    let clock = Clock::paused();
    let a = node_with_clock(&clock);
    let b = node_with_clock(&clock);
    let (rec, mut rx) = Recorder::new();
    let pid = b.spawn("rec", rec).unwrap();
    let relay = a
        .spawn(
            "relay",
            Relay {
                next: Some(pid.clone()),
                count: Arc::new(AtomicU32::new(0)),
            },
        )
        .unwrap();
    a.send(&relay, note("later"));
    clock.settle().await.unwrap();
    assert_quiet(&mut rx);
    clock.advance(Duration::from_millis(100));
    // The relayed note crosses TCP from a to b: settling the clock does not wait for the
    // network, so wait for the note itself.
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(relay.clone(), note("later"))
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn node_refuses_a_wildcard_bind_without_advertise_ip() {
    let err = Node::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("advertise_ip"), "{err}");
}

#[tokio::test]
async fn defer_runs_async_work_and_returns_into_the_process() {
    struct Deferrer {
        tx: tokio::sync::mpsc::UnboundedSender<u64>,
    }
    impl Process for Deferrer {
        fn initialize(&mut self, ctx: &mut Context<Self>) {
            ctx.install(
                |_: &mut Deferrer, ctx: &mut Context<Deferrer>, _: Upid, p: Ping| {
                    let work = tokio::task::spawn_blocking(move || p.seq * 2);
                    ctx.defer(work, |d: &mut Deferrer, _, out| {
                        let _ = d.tx.send(out.unwrap_or_default());
                    });
                },
            );
        }
    }
    let node = node();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pid = node.spawn("deferrer", Deferrer { tx }).unwrap();
    node.send(&pid, ping(21));
    assert_eq!(within(rx.recv()).await, Some(42));
    node.shutdown().await;
}

/// Sends a Note to a fixed receiver whenever it gets a Ping.
struct Forwarder {
    to: Upid,
}

impl Process for Forwarder {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |f: &mut Forwarder, ctx: &mut Context<Forwarder>, _: Upid, p: Ping| {
                let to = f.to.clone();
                ctx.send(&to, note(&p.seq.to_string()));
            },
        );
    }
}

#[tokio::test]
async fn repeated_sends_reach_a_new_process_that_reuses_the_id() {
    let node = node();
    let (first, mut rx1) = Recorder::new();
    let target = node.spawn("target", first).unwrap();
    let fwd = node.spawn("fwd", Forwarder { to: target.clone() }).unwrap();
    node.send(&fwd, ping(1));
    assert_eq!(next(&mut rx1).await, Seen::Note(fwd.clone(), note("1")));
    node.terminate(&target);
    within(node.wait(&target)).await;
    node.send(&fwd, ping(2));
    node.clock().settle().await.unwrap();
    assert_eq!(
        node.metrics().snapshot()["libactor/dropped/unknown_process"],
        1.0
    );
    let (second, mut rx2) = Recorder::new();
    assert_eq!(node.spawn("target", second).unwrap(), target);
    node.send(&fwd, ping(3));
    assert_eq!(next(&mut rx2).await, Seen::Note(fwd.clone(), note("3")));
    node.shutdown().await;
}

#[tokio::test]
async fn a_reserved_id_holds_messages_until_its_process_starts() {
    let node = node();
    let reservation = node.reserve("late").unwrap();
    let to = reservation.pid().clone();
    for n in 0..100 {
        node.send(&to, note(&n.to_string()));
    }
    assert_eq!(reservation.held(), 100);
    assert!(matches!(
        node.spawn("late", Idle),
        Err(SpawnError::DuplicateId(_))
    ));
    let (rec, mut rx) = Recorder::new();
    reservation.spawn_ref(rec).unwrap();
    for n in 100..150 {
        node.send(&to, note(&n.to_string()));
    }
    for n in 0..150 {
        assert_eq!(
            next(&mut rx).await,
            Seen::Note(node.anonymous_pid().clone(), note(&n.to_string())),
            "held messages come first, in order"
        );
    }
    node.clock().settle().await.unwrap();
    let m = node.metrics().snapshot();
    assert_eq!(m["libactor/dropped/unknown_process"], 0.0);
    node.shutdown().await;
}

#[tokio::test]
async fn a_dropped_reservation_frees_its_id_and_what_it_held() {
    let node = node();
    let reservation = node.reserve("late").unwrap();
    node.send(reservation.pid(), note("held, then dropped"));
    drop(reservation);
    let (rec, mut rx) = Recorder::new();
    let pid = node.spawn("late", rec).unwrap();
    node.send(&pid, note("after"));
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(node.anonymous_pid().clone(), note("after"))
    );
    node.shutdown().await;
}

/// Blocks its arbiter thread in its handler until released (standing for a long state build).
struct Busy(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl Process for Busy {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(|b: &mut Busy, _: &mut Context<Busy>, _: Upid, _: Note| {
            let _ = b.0.lock().unwrap().recv();
        });
    }
}

#[tokio::test]
async fn a_dedicated_process_blocking_its_thread_holds_up_no_other_process() {
    let node = Node::builder()
        .configure(|c| {
            c.arbiters = 1;
            c.io_threads = 1;
            c.dedicated_arbiters = 1;
        })
        .start()
        .unwrap();
    let (release, blocked) = std::sync::mpsc::channel();
    let busy = node
        .spawn_ref_dedicated("busy", Busy(std::sync::Mutex::new(blocked)))
        .unwrap();
    node.send(busy.pid(), note("block"));
    // The one shared arbiter still handles messages while the dedicated one is blocked.
    let (rec, mut rx) = Recorder::new();
    let rec = node.spawn("rec", rec).unwrap();
    node.send(&rec, ping(1));
    assert_eq!(
        next(&mut rx).await,
        Seen::Ping(node.anonymous_pid().clone(), ping(1))
    );
    release.send(()).unwrap();
    node.shutdown().await;
}

#[tokio::test]
async fn a_process_sees_what_waits_in_its_mailbox_by_kind() {
    let node = node();
    let idle = node.spawn_ref("idle", Idle).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // From inside one event: what it queues waits until the event is handled, which itself
    // counts until it returns.
    idle.dispatch(move |_, ctx: &mut Context<Idle>| {
        let me = ctx.pid().clone();
        for _ in 0..3 {
            ctx.send(&me, note("queued"));
        }
        for _ in 0..2 {
            ctx.self_ref().dispatch(|_, _| {});
        }
        let gauge = ctx.queue_gauge();
        let _ = tx.send((gauge.depths(), gauge));
    });
    let (while_handling, gauge) = rx.await.unwrap();
    assert_eq!(
        while_handling,
        libactor::QueueDepths {
            messages: 3,
            dispatches: 3,
            http_requests: 0,
        }
    );
    node.clock().settle().await.unwrap();
    assert_eq!(gauge.depths(), libactor::QueueDepths::default());
    node.shutdown().await;
}
