//! A network inside one process, for whole-cluster simulations that replay bit for bit (what
//! FoundationDB's simulator and TigerBeetle's VOPR do).
//!
//! Nodes started on a [`SimNetwork`] open no socket. A message to another node is encoded as it
//! would be on the wire and handed to that node's mailbox at once; a node that is gone, or cut
//! off by a [`SimNetwork::partition`], does not get it, and the sender's links to processes
//! there fire, as when a TCP connection cannot be made. Every node of the network runs its
//! processes on the network's one thread and reads the network's paused [`Clock`], so a run is
//! a pure function of what the simulation does to it: with seeded nodes
//! ([`crate::NodeConfig::seed`]) the same driver replays the same messages in the same order,
//! which [`SimNetwork::digest`] fingerprints.
//!
//! The driver runs on that thread too ([`SimNetwork::block_on`]): it waits until every
//! mailbox is empty ([`SimNetwork::settle`]), checks what it checks, then moves the clock to
//! the next timer or injects the next fault.
//!
//! ```
//! use std::time::Duration;
//! use libactor::simulation::SimNetwork;
//! use libactor::{Context, Process, Upid};
//! use protos::libactor::examples::{Ping, Pong};
//!
//! struct Echo;
//! impl Process for Echo {
//!     fn initialize(&mut self, ctx: &mut Context<Self>) {
//!         ctx.install(|_: &mut Echo, ctx: &mut Context<Echo>, from: Upid, ping: Ping| {
//!             ctx.send(&from, Pong { seq: ping.seq, payload: ping.payload });
//!         });
//!     }
//! }
//!
//! let net = SimNetwork::start(1_700_000_000).unwrap();
//! let digest = net.block_on({
//!     let net = net.clone();
//!     async move {
//!         let a = net.node(1).start().unwrap();
//!         let b = net.node(2).start().unwrap();
//!         let echo = b.spawn("echo", Echo).unwrap();
//!         let pong: Pong = a.ask(&echo, Ping { seq: 7, ..Default::default() }, Duration::from_secs(5))
//!             .await
//!             .unwrap();
//!         assert_eq!(pong.seq, 7);
//!         net.digest()
//!     }
//! });
//! assert_ne!(digest, 0);
//! net.stop();
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::Mutex;

use crate::clock::Activity;
use crate::message::{Delivery, Payload, Proof};
use crate::node::NodeInner;
use crate::{Clock, Node, NodeBuilder, Upid};

/// The first port handed out by [`SimNetwork::node`]'s builders when none is asked for.
const FIRST_PORT: u16 = 20_000;

/// How many scheduling rounds [`SimNetwork::settle`] allows before calling the nodes
/// livelocked: a cluster that keeps messages moving at one instant never lets time pass.
pub const SETTLE_ROUNDS_MAX: u64 = 2_000_000;

/// An in-process network of simulated nodes sharing one thread and one paused clock. Cheap to
/// clone; clones are the same network.
#[derive(Clone)]
pub struct SimNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    /// Nodes by address (`host:port`); a node leaves when it shuts down or crashes.
    nodes: Mutex<BTreeMap<String, Weak<NodeInner>>>,
    /// Pairs of addresses that cannot reach each other, smaller address first.
    cuts: Mutex<BTreeSet<(String, String)>>,
    /// Directions (sender address, receiver address) held up until a time, with what they
    /// hold, in order.
    stalls: Mutex<BTreeMap<(String, String), Stall>>,
    /// FNV-1a over every message handed between nodes, and how many.
    digest: Mutex<(u64, u64)>,
    next_port: AtomicU16,
    arbiter: actix_rt::ArbiterHandle,
    runtime: tokio::runtime::Handle,
    system: Mutex<Option<actix_rt::System>>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNetwork")
            .field("nodes", &self.inner.nodes.lock().len())
            .field("cuts", &self.inner.cuts.lock().len())
            .finish()
    }
}

/// The nodes did not go idle within [`SETTLE_ROUNDS_MAX`] rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the simulated nodes never went idle: {pending} messages still pending after {SETTLE_ROUNDS_MAX} rounds")]
pub struct Livelock {
    /// Messages still queued when the rounds ran out.
    pub pending: u64,
}

impl SimNetwork {
    /// Starts the network's thread; its clock is paused at `unix_seconds` past the epoch (so a
    /// replay's timestamps match too).
    pub fn start(unix_seconds: u64) -> std::io::Result<SimNetwork> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("keel-sim".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                let arbiter = actix_rt::Arbiter::new();
                let handle = arbiter.handle();
                let (rt_tx, rt_rx) = std::sync::mpsc::channel();
                handle.spawn(async move {
                    let _ = rt_tx.send(tokio::runtime::Handle::current());
                });
                let runtime = rt_rx.recv();
                let _ = tx.send(runtime.map(|rt| (actix_rt::System::current(), handle, rt)));
                if let Err(e) = system.run() {
                    tracing::error!(error = %e, "the simulation's actix system ended with an error");
                }
            })?;
        let (system, arbiter, runtime) = rx
            .recv()
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| std::io::Error::other("the simulation's thread did not start"))?;
        Ok(SimNetwork {
            inner: Arc::new(Inner {
                clock: Clock::simulated(Duration::from_secs(unix_seconds)),
                nodes: Mutex::new(BTreeMap::new()),
                cuts: Mutex::new(BTreeSet::new()),
                stalls: Mutex::new(BTreeMap::new()),
                digest: Mutex::new((FNV_OFFSET, 0)),
                next_port: AtomicU16::new(FIRST_PORT),
                arbiter,
                runtime,
                system: Mutex::new(Some(system)),
            }),
        })
    }

    /// The clock every node of the network reads; paused.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// A builder for a node on this network at `127.0.0.1:<next free port>`, seeded with
    /// `seed`. Change the port with [`NodeBuilder::bind`] (a restarted node takes its old one).
    pub fn node(&self, seed: u64) -> NodeBuilder {
        let port = self.inner.next_port.fetch_add(1, Ordering::Relaxed);
        let network = self.clone();
        Node::builder().configure(move |c| {
            c.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            c.seed = Some(seed);
            c.arbiters = 1;
            c.io_threads = 1;
            c.network = Some(network);
        })
    }

    /// Runs `fut` on the network's thread, where the nodes run, and returns its output. The
    /// driver of a simulation is such a future.
    pub fn block_on<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = self.inner.arbiter.spawn(async move {
            let _ = tx.send(fut.await);
        });
        assert!(spawned, "the simulation's thread has stopped");
        rx.recv()
            .expect("the simulation's driver panicked (see its message above)")
    }

    /// Waits until every node's mailboxes are empty. Call it from the network's thread (inside
    /// [`SimNetwork::block_on`]): each round lets every runnable process go first.
    pub async fn settle(&self) -> Result<(), Livelock> {
        let mut idle_rounds = 0;
        let mut pending = 0;
        for _ in 0..SETTLE_ROUNDS_MAX {
            tokio::task::yield_now().await;
            pending = self.pending();
            if pending == 0 {
                idle_rounds += 1;
                if idle_rounds >= 3 {
                    return Ok(());
                }
            } else {
                idle_rounds = 0;
            }
        }
        Err(Livelock { pending })
    }

    /// Messages queued in the mailboxes of the network's nodes.
    pub fn pending(&self) -> u64 {
        self.live_nodes().iter().map(|n| n.pending()).sum()
    }

    /// Cuts every node of `a` off from every node of `b`, both ways, until [`SimNetwork::heal`]:
    /// their messages are lost and the links between them fire at once, as when connections
    /// break.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        let mut broken = Vec::new();
        {
            let mut cuts = self.inner.cuts.lock();
            for x in a {
                for y in b {
                    if x != y && cuts.insert(ordered(x, y)) {
                        broken.push((x.to_string(), y.to_string()));
                    }
                }
            }
        }
        for (x, y) in broken {
            // The connections break: what they held up is lost before anyone hears of it.
            self.drop_stalled(|from, to| (from == x && to == y) || (from == y && to == x));
            self.break_links(&x, &y);
            self.break_links(&y, &x);
        }
    }

    /// Ends every partition.
    pub fn heal(&self) {
        self.inner.cuts.lock().clear();
    }

    /// Whether `a` and `b` are cut off from each other now.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        self.inner.cuts.lock().contains(&ordered(a, b))
    }

    /// Holds up every message from node `from` to node `to` (addresses) sent during the next
    /// `d` of the clock, and delivers them in order when it ends, before anything sent later:
    /// a latency spike on one direction of a connection. (TCP delays, but never reorders, so
    /// neither does this; messages held when the receiver dies or is cut off are lost.)
    pub fn stall(&self, from: &str, to: &str, d: Duration) {
        let until = self.inner.clock.now() + d;
        let key = (from.to_owned(), to.to_owned());
        {
            let mut stalls = self.inner.stalls.lock();
            let stall = stalls.entry(key.clone()).or_insert_with(|| Stall {
                until,
                held: Default::default(),
            });
            stall.until = stall.until.max(until);
        }
        let net = Arc::downgrade(&self.inner);
        self.inner.clock.schedule(d, move || {
            if let Some(inner) = net.upgrade() {
                SimNetwork { inner }.release(&key);
            }
        });
    }

    /// Delivers what a stall held, if it is over.
    fn release(&self, key: &(String, String)) {
        let held = {
            let mut stalls = self.inner.stalls.lock();
            match stalls.get(key) {
                Some(stall) if stall.until <= self.inner.clock.now() => {
                    stalls.remove(key).map(|s| s.held).unwrap_or_default()
                }
                _ => return,
            }
        };
        let sender = self.inner.nodes.lock().get(&key.0).and_then(Weak::upgrade);
        for h in held {
            self.deliver(sender.as_deref(), &h.from, &h.to, h.name, h.body);
        }
    }

    /// Kills `node` as a power cut would: it leaves the network first (nothing it sends while
    /// its processes end gets out), every other node's links to it fire, then its processes
    /// terminate.
    pub async fn crash(&self, node: &Node) {
        self.detach(&node.inner);
        node.shutdown().await;
    }

    /// A fingerprint of every message handed between nodes so far, in order: two runs that
    /// sent the same messages in the same order have the same digest.
    pub fn digest(&self) -> u64 {
        self.inner.digest.lock().0
    }

    /// Messages handed between nodes so far.
    pub fn messages(&self) -> u64 {
        self.inner.digest.lock().1
    }

    /// Stops the network's thread. Nodes still on it stop running.
    pub fn stop(&self) {
        if let Some(system) = self.inner.system.lock().take() {
            self.inner.arbiter.stop();
            system.stop();
        }
    }

    /// The thread the network's nodes run on, as an arbiter.
    pub(crate) fn arbiter(&self) -> actix_rt::ArbiterHandle {
        self.inner.arbiter.clone()
    }

    /// The tokio runtime of that thread.
    pub(crate) fn runtime(&self) -> tokio::runtime::Handle {
        self.inner.runtime.clone()
    }

    /// Adds a node; false if a live node has that address already.
    pub(crate) fn attach(&self, node: &Arc<NodeInner>) -> bool {
        let mut nodes = self.inner.nodes.lock();
        let taken = nodes
            .get(&node.address)
            .and_then(Weak::upgrade)
            .is_some_and(|n| !n.is_stopping());
        if taken {
            return false;
        }
        nodes.insert(node.address.clone(), Arc::downgrade(node));
        true
    }

    /// Removes a node (once): the others' links to its processes fire.
    pub(crate) fn detach(&self, node: &NodeInner) {
        let removed = {
            let mut nodes = self.inner.nodes.lock();
            match nodes.get(&node.address) {
                Some(w) if std::ptr::eq(w.as_ptr(), node) => nodes.remove(&node.address).is_some(),
                _ => false,
            }
        };
        if removed {
            let gone = node.address.as_str();
            self.drop_stalled(|from, to| from == gone || to == gone);
            for other in self.live_nodes() {
                other.links_on_connection_broken(&node.address);
            }
        }
    }

    /// Hands a message from `node` to the node of `to`, or loses it if that node is gone or
    /// cut off (and the sender's links there fire).
    pub(crate) fn transmit(
        &self,
        node: &NodeInner,
        from: &Upid,
        to: &Upid,
        name: ByteString,
        body: Bytes,
    ) {
        if !self.is_attached(node) {
            // A crashed node's last words never leave it.
            node.m.dropped_connection_lost.inc();
            return;
        }
        {
            let mut stalls = self.inner.stalls.lock();
            if let Some(stall) = stalls.get_mut(&(node.address.clone(), to.address().to_owned())) {
                stall.held.push_back(Held {
                    from: from.clone(),
                    to: to.clone(),
                    name,
                    body,
                });
                return;
            }
        }
        self.deliver(Some(node), from, to, name, body);
    }

    /// Hands a message to the node of `to` now, or loses it if that node is gone or cut off
    /// from the sender's (whose links there then fire, if it still runs).
    fn deliver(
        &self,
        node: Option<&NodeInner>,
        from: &Upid,
        to: &Upid,
        name: ByteString,
        body: Bytes,
    ) {
        let peer = if self.is_cut(from.address(), to.address()) {
            None
        } else {
            self.inner
                .nodes
                .lock()
                .get(to.address())
                .and_then(Weak::upgrade)
        };
        let Some(peer) = peer.filter(|p| !p.is_stopping()) else {
            if let Some(node) = node {
                node.m.dropped_connection_lost.inc();
                node.links_on_connection_broken(to.address());
            }
            return;
        };
        self.record(from, to, &name, &body);
        if let Some(node) = node {
            node.m.frames_sent.inc();
        }
        peer.m.frames_received.inc();
        if name.starts_with("keel.libactor.")
            && peer.handle_control(&name, body.clone(), from.address())
        {
            return;
        }
        peer.deliver_local(
            to.id(),
            Delivery {
                from: from.clone(),
                proof: Proof::Unproven,
                payload: Payload::Encoded { name, body },
                permit: None,
            },
        );
    }

    fn is_attached(&self, node: &NodeInner) -> bool {
        self.inner
            .nodes
            .lock()
            .get(&node.address)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), node))
    }

    fn record(&self, from: &Upid, to: &Upid, name: &str, body: &[u8]) {
        tracing::trace!(%from, %to, name, body = ?body, "simulated message");
        let mut digest = self.inner.digest.lock();
        let mut h = digest.0;
        for part in [
            from.as_str().as_bytes(),
            to.as_str().as_bytes(),
            name.as_bytes(),
            body,
        ] {
            for byte in part.iter().chain(&[0xff]) {
                h ^= u64::from(*byte);
                h = h.wrapping_mul(FNV_PRIME);
            }
        }
        *digest = (h, digest.1 + 1);
    }

    /// Loses what stalls hold between the pairs of addresses `between` picks: a broken
    /// connection delivers nothing more, so the break is the last its peer hears of it.
    fn drop_stalled(&self, between: impl Fn(&str, &str) -> bool) {
        self.inner
            .stalls
            .lock()
            .retain(|(from, to), _| !between(from, to));
    }

    fn break_links(&self, at: &str, peer: &str) {
        let node = self.inner.nodes.lock().get(at).and_then(Weak::upgrade);
        if let Some(node) = node {
            node.links_on_connection_broken(peer);
        }
    }

    fn live_nodes(&self) -> Vec<Arc<NodeInner>> {
        self.inner
            .nodes
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

/// One held-up direction between two nodes.
struct Stall {
    until: std::time::Instant,
    held: std::collections::VecDeque<Held>,
}

/// A message held by a stall.
struct Held {
    from: Upid,
    to: Upid,
    name: ByteString,
    body: Bytes,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}
