//! One libactor runtime instance: a listening address, a table of processes, actix arbiters that
//! run them, a tokio runtime for the network, a clock and a metrics registry.
//!
//! Where the network runs (measured in BENCHMARKS.md): the listener and the outbound writers run
//! on the node's own tokio runtime, so a sender's burst is written while it is still being
//! produced; each inbound connection is read on an arbiter (round-robin), so its messages reach
//! that arbiter's processes without waking another thread. A process that blocks its arbiter
//! therefore also stalls the connections read there: processes must never block.
//!
//! libprocess has one such instance per OS process; Keel allows several per OS process so that
//! whole multi-node clusters run inside one test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::clock::Activity;
use crate::config::{NodeBuilder, NodeConfig, NodeError};
use crate::filter::Verdict;
use crate::link::LinkTable;
use crate::mailbox::{Mailbox, ProcessSlot};
use crate::message::{Delivery, Payload, Proof};
use crate::node_metrics::NodeMetrics;
use crate::simulation::SimNetwork;
use crate::transport::{Transport, WireName};
use crate::{
    cell, Clock, Host, IdGenerator, Message, Metrics, Process, ProcessRef, Upid, UpidError,
};

/// How long [`Node::shutdown`] waits for all its processes to end before stopping anyway.
pub const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);
/// Process ids the node keeps for itself: they are HTTP paths or internal endpoints. (`files`
/// is not among them: as in libprocess it is an ordinary process, the agent's.)
pub const RESERVED_IDS: &[&str] = &["metrics", "__processes__", "__node__", "health"];

/// Why a process could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// Another live process on this node has that id.
    #[error("a process with id {0:?} already runs on this node")]
    DuplicateId(String),
    /// The id is reserved by the node itself.
    #[error("process id {0:?} is reserved by the node")]
    ReservedId(String),
    /// The id cannot appear in a UPID.
    #[error(transparent)]
    InvalidId(#[from] UpidError),
    /// The node has been shut down.
    #[error("the node is shut down")]
    NodeStopped,
}

/// A running libactor node. Cheap to clone; every clone is the same node.
///
/// A node runs until [`Node::shutdown`]; processes hold it, so dropping handles does not stop it.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.inner.address)
    }
}

pub(crate) struct NodeInner {
    /// This node itself, for tasks that must own it (outbound writers).
    pub(crate) me: Weak<NodeInner>,
    /// Tells the accept loop to close the listener, and hears back once it has: a node that
    /// has shut down no longer holds its port (a restarted master binds it again at once).
    listener_stop: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    pub(crate) config: NodeConfig,
    pub(crate) host: Host,
    pub(crate) port: u16,
    /// `host:port`, compared with every destination's address to tell local from remote.
    pub(crate) address: String,
    pub(crate) anonymous: Upid,
    /// Keyed by process id. FxHash: lookups run on every message, and only the node inserts keys.
    pub(crate) processes: DashMap<String, ProcessSlot, rustc_hash::FxBuildHasher>,
    pub(crate) ids: IdGenerator,
    pub(crate) random: crate::random::NodeRandom,
    arbiters: Vec<actix_rt::ArbiterHandle>,
    /// Arbiters for dedicated processes only.
    dedicated: Vec<actix_rt::ArbiterHandle>,
    next_dedicated: AtomicUsize,
    next_arbiter: AtomicUsize,
    system: Mutex<Option<actix_rt::System>>,
    runtime: Mutex<NetworkRuntime>,
    /// The network runtime.
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) clock: Clock,
    pub(crate) metrics: Metrics,
    pub(crate) m: NodeMetrics,
    pub(crate) links: Mutex<LinkTable>,
    pub(crate) filters: crate::filter::Filters,
    pub(crate) transport: Transport,
    /// Messages handled by processes that have since terminated (live ones count their own).
    pub(crate) messages_of_terminated: std::sync::atomic::AtomicU64,
    inbound_inflight: AtomicI64,
    inbound_throttled: AtomicBool,
    inbound_space: Notify,
    stopped: AtomicBool,
}

impl Node {
    /// A builder with the default configuration.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    pub(crate) fn start(config: NodeConfig, clock: Clock) -> Result<Node, NodeError> {
        if config.arbiters == 0
            || config.io_threads == 0
            || config.max_frame_bytes < 64
            || config.max_pending_connections == 0
        {
            return Err(NodeError::Config(
                "arbiters, io_threads and max_pending_connections must be >= 1 and max_frame_bytes >= 64".into(),
            ));
        }
        match config.network.clone() {
            Some(network) => Node::start_simulated(config, network),
            None => Node::start_tcp(config, clock),
        }
    }

    /// A node with a TCP listener, its own arbiters and its own network runtime.
    fn start_tcp(config: NodeConfig, clock: Clock) -> Result<Node, NodeError> {
        let bind = config.bind;
        let io = |source| NodeError::Io { addr: bind, source };
        let listener = std::net::TcpListener::bind(config.bind).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let local = listener.local_addr().map_err(io)?;
        let ip = match config.advertise_ip {
            Some(ip) => ip,
            None if local.ip().is_unspecified() => return Err(NodeError::NoAdvertiseIp(local)),
            None => local.ip(),
        };
        let host = Host::Ip(ip);
        if let Some(tls) = &config.tls {
            if !tls.identity().may_advertise(&host) {
                return Err(NodeError::Config(format!(
                    "this node's certificate ({}) names hosts {:?}, not {host}, the address it advertises",
                    tls.identity(),
                    tls.identity().hosts()
                )));
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads)
            .thread_name("keel-io")
            .enable_all()
            .build()
            .map_err(io)?;
        let rt = runtime.handle().clone();
        let (system, mut arbiters) =
            start_actix(config.arbiters + config.dedicated_arbiters).map_err(io)?;
        let dedicated = arbiters.split_off(config.arbiters);
        let inner = NodeInner::new(
            config,
            clock,
            Plumbing {
                host,
                port: local.port(),
                arbiters,
                dedicated,
                system: Some(system),
                rt,
                runtime: NetworkRuntime(Some(runtime)),
            },
        )?;
        let listener = {
            let _guard = inner.rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(io)?
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let (closed_tx, closed_rx) = oneshot::channel();
        *inner.listener_stop.lock() = Some((stop_tx, closed_rx));
        inner.rt.spawn(crate::transport::accept_loop(
            inner.clone(),
            listener,
            stop_rx,
            closed_tx,
        ));
        tracing::info!(address = %inner.address, "libactor node started");
        Ok(Node { inner })
    }

    /// A node on a simulated network: no socket, the network's thread and clock.
    fn start_simulated(config: NodeConfig, network: SimNetwork) -> Result<Node, NodeError> {
        if config.tls.is_some() {
            return Err(NodeError::Config(
                "a simulated node cannot be secure: nothing is proven without connections".into(),
            ));
        }
        let host = Host::Ip(config.advertise_ip.unwrap_or(config.bind.ip()));
        let plumbing = Plumbing {
            host,
            port: config.bind.port(),
            arbiters: vec![network.arbiter()],
            dedicated: Vec::new(),
            system: None,
            rt: network.runtime(),
            runtime: NetworkRuntime(None),
        };
        let inner = NodeInner::new(config, network.clock().clone(), plumbing)?;
        if !network.attach(&inner) {
            return Err(NodeError::Config(format!(
                "a simulated node already runs at {}",
                inner.address
            )));
        }
        tracing::debug!(address = %inner.address, "simulated node started");
        Ok(Node { inner })
    }

    /// `host:port` of this node's listener, as written in its UPIDs.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The listener's socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        match &self.inner.host {
            Host::Ip(ip) => SocketAddr::new(*ip, self.inner.port),
            Host::Name(_) => SocketAddr::from(([127, 0, 0, 1], self.inner.port)),
        }
    }

    /// The UPID that process `id` has (or would have) on this node.
    pub fn pid(&self, id: &str) -> Result<Upid, UpidError> {
        Upid::new(id, self.inner.host.clone(), self.inner.port)
    }

    /// The sender address used by [`Node::send`]: messages from outside any process.
    pub fn anonymous_pid(&self) -> &Upid {
        &self.inner.anonymous
    }

    /// The node's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The node's metrics registry (also served at `/metrics/snapshot` and `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Who this node proves it is on its connections; `None` on an insecure node.
    pub fn identity(&self) -> Option<&crate::Identity> {
        self.inner.identity()
    }

    /// Whether the node runs mutual TLS (see [`crate::tls`]).
    pub fn is_secure(&self) -> bool {
        self.inner.config.tls.is_some()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// A fresh id `prefix(N)`, unique on this node.
    pub fn generate_id(&self, prefix: &str) -> String {
        self.inner.ids.generate(prefix)
    }

    /// The node's randomness: what its processes draw uuids and jitter from (seeded by
    /// [`crate::NodeConfig::seed`] in simulations).
    pub fn random(&self) -> &crate::random::NodeRandom {
        &self.inner.random
    }

    /// Starts `process` under `id` and returns its address.
    pub fn spawn<P: Process>(&self, id: &str, process: P) -> Result<Upid, SpawnError> {
        self.spawn_ref(id, process).map(|r| r.pid)
    }

    /// Starts `process` under `id` and returns a typed handle to it.
    pub fn spawn_ref<P: Process>(&self, id: &str, process: P) -> Result<ProcessRef<P>, SpawnError> {
        let reservation = self.reserve(id)?;
        reservation.spawn_ref(process)
    }

    /// Starts `process` under `id` on one of the node's dedicated arbiters
    /// ([`crate::NodeConfig::dedicated_arbiters`]), where only such processes run; on a shared
    /// one if the node has none.
    pub fn spawn_ref_dedicated<P: Process>(
        &self,
        id: &str,
        process: P,
    ) -> Result<ProcessRef<P>, SpawnError> {
        let reservation = self.reserve(id)?;
        reservation.spawn_ref_on(process, true)
    }

    /// Takes `id` in the process table with `mailbox` standing for its process.
    pub(crate) fn insert_slot(
        &self,
        id: &str,
        mailbox: Arc<dyn Mailbox>,
    ) -> Result<Upid, SpawnError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(SpawnError::NodeStopped);
        }
        if RESERVED_IDS.contains(&id) || id.starts_with("__ask__") {
            return Err(SpawnError::ReservedId(id.to_owned()));
        }
        let pid = self.pid(id)?;
        match self.inner.processes.entry(id.to_owned()) {
            dashmap::Entry::Occupied(_) => Err(SpawnError::DuplicateId(id.to_owned())),
            dashmap::Entry::Vacant(slot) => {
                let (done, _) = tokio::sync::watch::channel(false);
                slot.insert(ProcessSlot {
                    pid: pid.clone(),
                    mailbox,
                    done,
                });
                Ok(pid)
            }
        }
    }

    /// Starts `process` as `pid` on the next arbiter, a dedicated one if asked and there is
    /// one (its slot is the caller's business).
    pub(crate) fn start_cell<P: Process>(
        &self,
        pid: &Upid,
        process: P,
        dedicated: bool,
    ) -> cell::CellHandle<P> {
        let inner = &self.inner;
        let arbiter = if dedicated && !inner.dedicated.is_empty() {
            let n = inner.next_dedicated.fetch_add(1, Ordering::Relaxed);
            &inner.dedicated[n % inner.dedicated.len()]
        } else {
            let n = inner.next_arbiter.fetch_add(1, Ordering::Relaxed);
            &inner.arbiters[n % inner.arbiters.len()]
        };
        self.inner.m.processes_spawned.inc();
        cell::start(process, pid.clone(), self.clone(), arbiter)
    }

    /// Points `pid`'s slot at its running process's mailbox.
    pub(crate) fn replace_mailbox(&self, pid: &Upid, mailbox: Arc<dyn Mailbox>) {
        if let Some(mut slot) = self.inner.processes.get_mut(pid.id()) {
            if &slot.pid == pid {
                slot.mailbox = mailbox;
            }
        }
    }

    /// Sends `msg` to `to` from the node's anonymous address (for code outside any process).
    pub fn send<M: Message>(&self, to: &Upid, msg: M) {
        self.send_from(&self.inner.anonymous, to, msg);
    }

    /// Sends `msg` to `to` with `from` as the sender's address (tests use this to impersonate).
    pub fn send_from<M: Message>(&self, from: &Upid, to: &Upid, msg: M) {
        let inner = &self.inner;
        if to.address() == inner.address {
            inner.deliver_local(
                to.id(),
                Delivery {
                    from: from.clone(),
                    proof: Proof::Local,
                    payload: Payload::local(msg),
                    permit: None,
                },
            );
        } else {
            inner.m.messages_sent_remote.inc();
            inner
                .transport
                .send(inner, from, to, WireName::of::<M>(), &msg);
        }
    }

    /// Asks process `pid` (on this node) to terminate after the events already queued. Returns
    /// false if no such process runs here.
    pub fn terminate(&self, pid: &Upid) -> bool {
        if pid.address() != self.inner.address {
            return false;
        }
        match self.inner.processes.get(pid.id()) {
            Some(slot) if &slot.pid == pid => {
                slot.mailbox.terminate();
                true
            }
            _ => false,
        }
    }

    /// Waits until process `pid` (on this node) has terminated; returns at once if it is not
    /// running.
    pub async fn wait(&self, pid: &Upid) {
        let mut done = match self.inner.processes.get(pid.id()) {
            Some(slot) if &slot.pid == pid => slot.done.subscribe(),
            _ => return,
        };
        let _ = done.wait_for(|d| *d).await;
    }

    /// Whether process `pid` runs on this node.
    pub fn is_running(&self, pid: &Upid) -> bool {
        pid.address() == self.inner.address
            && self
                .inner
                .processes
                .get(pid.id())
                .is_some_and(|slot| &slot.pid == pid)
    }

    /// The UPIDs of the processes running on this node, sorted.
    pub fn processes(&self) -> Vec<Upid> {
        let mut pids: Vec<Upid> = self
            .inner
            .processes
            .iter()
            .filter(|e| !e.key().starts_with("__ask__"))
            .map(|e| e.pid.clone())
            .collect();
        pids.sort();
        pids
    }

    /// Closes this node's connection to the node at `address` (`host:port`), as if the network
    /// broke it: processes linked to processes there receive `exited`. Later sends reconnect.
    pub fn disconnect(&self, address: &str) -> bool {
        self.inner.transport.disconnect(address)
    }

    /// Terminates every process (running their `finalize`), flushes pending outbound messages for
    /// up to a second, then closes all connections and stops the node's threads. Await it inside
    /// a tokio runtime.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let pids: Vec<Upid> = inner.processes.iter().map(|e| e.pid.clone()).collect();
        for pid in &pids {
            self.terminate(pid);
        }
        // One deadline for all: a process that does not end costs the shutdown 5 s once, not
        // 5 s for each such process (a daemon must exit soon after SIGTERM).
        let deadline = tokio::time::Instant::now() + SHUTDOWN_PATIENCE;
        for pid in &pids {
            if tokio::time::timeout_at(deadline, self.wait(pid))
                .await
                .is_err()
            {
                tracing::warn!(%pid, "process did not terminate within {SHUTDOWN_PATIENCE:?} of shutdown");
            }
        }
        let flush_deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while inner.transport.queued() > 0 && tokio::time::Instant::now() < flush_deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let listener = inner.listener_stop.lock().take();
        if let Some((stop, closed)) = listener {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(1), closed).await;
        }
        inner.runtime.lock().stop();
        if let Some(network) = &inner.config.network {
            // The thread is the network's: other nodes still run on it.
            network.detach(inner);
        } else {
            for arbiter in inner.arbiters.iter().chain(&inner.dedicated) {
                arbiter.stop();
            }
        }
        if let Some(system) = inner.system.lock().take() {
            system.stop();
        }
        tracing::info!(address = %inner.address, "libactor node stopped");
    }

    /// Whether [`Node::shutdown`] has been called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }
}

/// The node's network runtime. Stopped without blocking, so that a node can be started,
/// stopped or dropped from inside another tokio runtime (a test's, say).
struct NetworkRuntime(Option<tokio::runtime::Runtime>);

impl NetworkRuntime {
    fn stop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for NetworkRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts an actix system on its own thread with `n` arbiters, and returns their handles.
fn start_actix(n: usize) -> std::io::Result<(actix_rt::System, Vec<actix_rt::ArbiterHandle>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("keel-actix".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            let arbiters: Vec<actix_rt::Arbiter> =
                (0..n).map(|_| actix_rt::Arbiter::new()).collect();
            let handles = arbiters.iter().map(|a| a.handle()).collect::<Vec<_>>();
            let _ = tx.send((actix_rt::System::current(), handles));
            if let Err(e) = system.run() {
                tracing::error!(error = %e, "actix system ended with an error");
            }
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("actix system thread exited before starting"))
}

/// What a node runs on: its address, its arbiters and its network runtime.
struct Plumbing {
    host: Host,
    port: u16,
    arbiters: Vec<actix_rt::ArbiterHandle>,
    dedicated: Vec<actix_rt::ArbiterHandle>,
    /// The actix system the node owns (`None`: it runs on someone else's, a simulation's).
    system: Option<actix_rt::System>,
    rt: tokio::runtime::Handle,
    runtime: NetworkRuntime,
}

impl NodeInner {
    fn new(config: NodeConfig, clock: Clock, p: Plumbing) -> Result<Arc<NodeInner>, NodeError> {
        let address = format!("{}:{}", p.host, p.port);
        let anonymous = Upid::new("__node__", p.host.clone(), p.port)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let metrics = Metrics::new();
        let inner = Arc::new_cyclic(|me| NodeInner {
            me: me.clone(),
            m: NodeMetrics::new(&metrics),
            metrics,
            host: p.host,
            port: p.port,
            address,
            anonymous,
            processes: DashMap::with_hasher(rustc_hash::FxBuildHasher),
            ids: IdGenerator::new(),
            random: match config.seed {
                Some(seed) => crate::random::NodeRandom::seeded(seed),
                None => crate::random::NodeRandom::from_os(),
            },
            arbiters: p.arbiters,
            next_arbiter: AtomicUsize::new(0),
            dedicated: p.dedicated,
            next_dedicated: AtomicUsize::new(0),
            system: Mutex::new(p.system),
            rt: p.rt,
            runtime: Mutex::new(p.runtime),
            clock: clock.clone(),
            links: Mutex::new(LinkTable::default()),
            filters: crate::filter::Filters::default(),
            transport: Transport::default(),
            messages_of_terminated: Default::default(),
            inbound_inflight: AtomicI64::new(0),
            inbound_throttled: AtomicBool::new(false),
            inbound_space: Notify::new(),
            stopped: AtomicBool::new(false),
            listener_stop: Mutex::new(None),
            config,
        });
        NodeMetrics::register_gauges(&inner.metrics, Arc::downgrade(&inner));
        let weak: Weak<dyn Activity> = Arc::downgrade(&inner) as Weak<dyn Activity>;
        clock.register(weak);
        Ok(inner)
    }

    /// Whether the node is shutting down or has shut down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// This node's proven identity, if it is secure.
    pub(crate) fn identity(&self) -> Option<&crate::Identity> {
        self.config.tls.as_ref().map(|tls| &**tls.identity())
    }

    /// Runs a task on the next arbiter, round-robin.
    pub(crate) fn spawn_on_arbiter(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let n = self.next_arbiter.fetch_add(1, Ordering::Relaxed);
        if !self.arbiters[n % self.arbiters.len()].spawn(task) {
            tracing::debug!("arbiter stopped; task not started");
        }
    }

    /// Runs a network task on the node's network runtime.
    pub(crate) fn spawn_io(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.rt.spawn(task);
    }

    /// Hands a message to a process on this node, through the test filters. False if dropped.
    pub(crate) fn deliver_local(&self, to_id: &str, delivery: Delivery) -> bool {
        match self.route(to_id, &delivery) {
            Route::Mailbox(mailbox) => self.deliver_to(&mailbox, delivery),
            other => self.deliver_faulty(to_id, other, delivery),
        }
    }

    /// What a filter did to a message other than letting it through.
    fn deliver_faulty(&self, to_id: &str, route: Route, delivery: Delivery) -> bool {
        match route {
            Route::Mailbox(mailbox) => self.deliver_to(&mailbox, delivery),
            Route::Duplicate(mailbox) => {
                self.m.duplicated_by_filter.inc();
                self.deliver_to(&mailbox, delivery.duplicate());
                self.deliver_to(&mailbox, delivery)
            }
            Route::Delay(hold) => {
                self.m.delayed_by_filter.inc();
                let (node, to_id) = (self.me.clone(), to_id.to_owned());
                // Past every filter once held: a held message is not held again.
                self.clock.schedule(hold, move || {
                    let Some(node) = node.upgrade() else { return };
                    let mailbox = node.processes.get(&to_id).map(|s| s.mailbox.clone());
                    match mailbox {
                        Some(mailbox) => {
                            node.deliver_to(&mailbox, delivery);
                        }
                        None => node.m.dropped_unknown_process.inc(),
                    }
                });
                true
            }
            Route::Filtered => true,
            Route::Unknown => false,
        }
    }

    /// As [`NodeInner::deliver_local`], remembering the receiver's mailbox in `cache` so that
    /// the next message for the same process skips the table.
    pub(crate) fn deliver_cached(
        &self,
        cache: &mut ReceiverCache,
        to_id: &str,
        delivery: Delivery,
    ) -> bool {
        let delivery = match &cache.0 {
            Some((id, mailbox)) if id == to_id && !self.filters.is_active() => {
                match mailbox.deliver(delivery) {
                    Ok(()) => return true,
                    // That process has terminated; the table says whether another has its id.
                    Err(delivery) => delivery,
                }
            }
            _ => delivery,
        };
        match self.route(to_id, &delivery) {
            Route::Mailbox(mailbox) => {
                let delivered = self.deliver_to(&mailbox, delivery);
                cache.0 = Some((to_id.to_owned(), mailbox));
                delivered
            }
            other => self.deliver_faulty(to_id, other, delivery),
        }
    }

    /// Finds the mailbox for `to_id`, applying the test filters.
    fn route(&self, to_id: &str, delivery: &Delivery) -> Route {
        let Some(slot) = self.processes.get(to_id) else {
            self.m.dropped_unknown_process.inc();
            tracing::debug!(to = to_id, from = %delivery.from, "dropped a message for an unknown process");
            return Route::Unknown;
        };
        if !self.filters.is_active() {
            return Route::Mailbox(slot.mailbox.clone());
        }
        match self
            .filters
            .intercept(&delivery.from, &slot.pid, &delivery.payload)
        {
            Verdict::Deliver => Route::Mailbox(slot.mailbox.clone()),
            Verdict::Drop => {
                self.m.dropped_by_filter.inc();
                Route::Filtered
            }
            Verdict::Duplicate => Route::Duplicate(slot.mailbox.clone()),
            Verdict::Delay(hold) => Route::Delay(hold),
        }
    }

    fn deliver_to(&self, mailbox: &Arc<dyn Mailbox>, delivery: Delivery) -> bool {
        match mailbox.deliver(delivery) {
            Ok(()) => true,
            Err(_) => {
                self.m.dropped_unknown_process.inc();
                false
            }
        }
    }

    /// Removes a terminated process from the table, wakes its waiters and notifies its linkers.
    pub(crate) fn process_terminated(&self, pid: &Upid) {
        if let Some((_, slot)) = self
            .processes
            .remove_if(pid.id(), |_, slot| &slot.pid == pid)
        {
            slot.done.send_replace(true);
        }
        self.m.processes_terminated.inc();
        self.links_on_terminated(pid);
    }

    /// Sends a message produced by the runtime itself (link protocol) to a remote node.
    pub(crate) fn send_control<M: Message>(&self, from: &Upid, to: &Upid, msg: M) {
        self.transport
            .send(self, from, to, WireName::of::<M>(), &msg);
    }

    /// Counts one more message from the network waiting in a mailbox.
    pub(crate) fn inbound_acquire(&self) {
        self.inbound_inflight.fetch_add(1, Ordering::Relaxed);
    }

    /// A message from the network has been handled or dropped.
    pub(crate) fn inbound_release(&self) {
        let left = self.inbound_inflight.fetch_sub(1, Ordering::Relaxed) - 1;
        let low_water = (self.config.max_inbound_inflight / 2) as i64;
        if left <= low_water && self.inbound_throttled.swap(false, Ordering::AcqRel) {
            self.inbound_space.notify_waiters();
        }
    }

    /// Waits while too many messages from the network are queued in mailboxes.
    pub(crate) async fn inbound_capacity(&self) {
        let max = self.config.max_inbound_inflight as i64;
        while self.inbound_inflight.load(Ordering::Relaxed) >= max {
            let notified = self.inbound_space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.inbound_throttled.store(true, Ordering::Release);
            if self.inbound_inflight.load(Ordering::Relaxed) < max {
                break;
            }
            self.m.inbound_throttled.inc();
            notified.await;
        }
    }

    /// Messages handled by this node's processes since it started.
    pub(crate) fn messages_received(&self) -> u64 {
        self.messages_of_terminated.load(Ordering::Relaxed)
            + self
                .processes
                .iter()
                .map(|e| e.mailbox.messages_handled())
                .sum::<u64>()
    }

    pub(crate) fn mailbox_depth_total(&self) -> u64 {
        self.processes.iter().map(|e| e.mailbox.depth()).sum()
    }
}

/// Where [`NodeInner::route`] sends a message.
enum Route {
    Mailbox(Arc<dyn Mailbox>),
    /// A fault filter delivers it twice.
    Duplicate(Arc<dyn Mailbox>),
    /// A fault filter holds it back this long.
    Delay(Duration),
    Filtered,
    Unknown,
}

/// The last receiver a sender delivered to: its id and mailbox.
#[derive(Default)]
pub(crate) struct ReceiverCache(Option<(String, Arc<dyn Mailbox>)>);

impl Activity for NodeInner {
    fn pending(&self) -> u64 {
        if self.stopped.load(Ordering::Acquire) {
            return 0;
        }
        self.mailbox_depth_total() + self.transport.queued()
    }
}
