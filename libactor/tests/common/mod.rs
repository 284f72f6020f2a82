//! Test processes and helpers shared by libactor's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use libactor::{Context, Node, Process, Upid};
use protos::libactor::examples::{Note, Ping, Pong};
use tokio::sync::mpsc;

/// Upper bound for waiting on an event that must happen; tests never sleep.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Ping(Upid, Ping),
    Pong(Upid, Pong),
    Note(Upid, Note),
    Exited(Upid),
}

/// Records every Ping, Pong, Note and exited event it receives; answers Pings with Pongs.
pub struct Recorder {
    pub tx: mpsc::UnboundedSender<Seen>,
    pub link_to: Vec<Upid>,
    /// Told with a Note "linked" once the links are requested: a message that travels after
    /// the link requests on the same connection, so its arrival proves they arrived.
    pub announce_to: Option<Upid>,
}

impl Recorder {
    pub fn new() -> (Recorder, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Recorder {
                tx,
                link_to: Vec::new(),
                announce_to: None,
            },
            rx,
        )
    }

    pub fn linked_to(pids: &[Upid]) -> (Recorder, mpsc::UnboundedReceiver<Seen>) {
        let (mut r, rx) = Recorder::new();
        r.link_to = pids.to_vec();
        (r, rx)
    }

    /// Links to `pids`, then sends Note "linked" to `probe`.
    pub fn linked_then_announce(
        pids: &[Upid],
        probe: &Upid,
    ) -> (Recorder, mpsc::UnboundedReceiver<Seen>) {
        let (mut r, rx) = Recorder::linked_to(pids);
        r.announce_to = Some(probe.clone());
        (r, rx)
    }
}

impl Process for Recorder {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |r: &mut Recorder, ctx: &mut Context<Recorder>, from: Upid, ping: Ping| {
                let _ = r.tx.send(Seen::Ping(from.clone(), ping.clone()));
                ctx.send(
                    &from,
                    Pong {
                        seq: ping.seq,
                        payload: ping.payload,
                    },
                );
            },
        );
        ctx.install(
            |r: &mut Recorder, _: &mut Context<Recorder>, from: Upid, pong: Pong| {
                let _ = r.tx.send(Seen::Pong(from, pong));
            },
        );
        ctx.install(
            |r: &mut Recorder, _: &mut Context<Recorder>, from: Upid, note: Note| {
                let _ = r.tx.send(Seen::Note(from, note));
            },
        );
        for pid in &self.link_to {
            ctx.link(pid);
        }
        if let Some(probe) = &self.announce_to {
            ctx.send(probe, note("linked"));
        }
    }

    fn exited(&mut self, _ctx: &mut Context<Self>, pid: &Upid) {
        let _ = self.tx.send(Seen::Exited(pid.clone()));
    }
}

/// A process with no handlers at all.
pub struct Idle;

impl Process for Idle {}

/// The next event from a recorder, failing the test if none comes within [`EVENT_TIMEOUT`].
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    within(rx.recv())
        .await
        .expect("recorder channel closed unexpectedly")
}

/// Awaits `fut`, failing the test if it takes longer than [`EVENT_TIMEOUT`].
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(EVENT_TIMEOUT, fut)
        .await
        .expect("event did not happen within the bound")
}

/// Asserts that nothing is pending on the recorder right now (call after settling).
pub fn assert_quiet(rx: &mut mpsc::UnboundedReceiver<Seen>) {
    if let Ok(seen) = rx.try_recv() {
        panic!("unexpected event: {seen:?}");
    }
}

pub fn note(text: &str) -> Note {
    Note { text: text.into() }
}

pub fn ping(seq: u64) -> Ping {
    Ping {
        seq,
        payload: Default::default(),
    }
}

/// Starts a node on 127.0.0.1 with a small configuration (two arbiters, one network thread),
/// changed by `configure`, on `clock`.
pub fn node_with(
    clock: &libactor::Clock,
    configure: impl FnOnce(&mut libactor::NodeConfig),
) -> Node {
    Node::builder()
        .clock(clock.clone())
        .configure(|c| {
            c.arbiters = 2;
            c.io_threads = 1;
            configure(c);
        })
        .start()
        .expect("node starts on 127.0.0.1")
}

/// A small node on its own real-time clock.
pub fn node() -> Node {
    node_with(&libactor::Clock::new(), |_| {})
}

/// A small node on `clock` (share a paused clock between nodes to pause them together).
pub fn node_with_clock(clock: &libactor::Clock) -> Node {
    node_with(clock, |_| {})
}

/// Nodes `a` and `b` where a watcher on `a` has linked to `targets` on `b`; returns the
/// watcher's pid and events, and a probe on `b` with its events. The watcher's "linked" note
/// to the probe travels after its link requests, so once it is seen the links are in place.
pub async fn linked_watcher(
    a: &Node,
    b: &Node,
    targets: &[Upid],
) -> (
    Upid,
    mpsc::UnboundedReceiver<Seen>,
    Upid,
    mpsc::UnboundedReceiver<Seen>,
) {
    let (probe, mut probe_rx) = Recorder::new();
    let probe = b.spawn("probe", probe).unwrap();
    let (rec, rx) = Recorder::linked_then_announce(targets, &probe);
    let watcher = a.spawn("watcher", rec).unwrap();
    assert_eq!(
        next(&mut probe_rx).await,
        Seen::Note(watcher.clone(), note("linked"))
    );
    (watcher, rx, probe, probe_rx)
}

/// Sends one raw HTTP/1.1 request (with `Connection: close`) and returns status and body.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = within(tokio::net::TcpStream::connect(addr)).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    within(stream.read_to_end(&mut out)).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until metric `name` of `node` reaches `at_least`, failing the test after
/// [`EVENT_TIMEOUT`]. Only for counters bumped on a node's thread with no event after them
/// that a test can await (a TLS handshake refused by the server, frames dropped on a
/// connection that stays open): it checks every few milliseconds.
pub async fn metric_reaches(node: &Node, name: &str, at_least: f64) {
    let value = || node.metrics().snapshot().get(name).copied().unwrap_or(0.0);
    let mut every = tokio::time::interval(Duration::from_millis(5));
    let reached = tokio::time::timeout(EVENT_TIMEOUT, async {
        while value() < at_least {
            every.tick().await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{name} is {}, not {at_least}, after {EVENT_TIMEOUT:?}",
        value()
    );
}
