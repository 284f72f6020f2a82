//! How a node is set up: its [`NodeConfig`] (address and every limit, each with its unit in its
//! name), the [`NodeBuilder`] that starts it, and why starting can fail ([`NodeError`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{Clock, Node};

/// How a node is set up. Every limit has its unit in its name.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address the node's one listener binds (HTTP and actor protocol). Port 0 picks a free one.
    pub bind: SocketAddr,
    /// IP written into this node's UPIDs; required when `bind` is a wildcard address.
    pub advertise_ip: Option<IpAddr>,
    /// actix arbiters (threads) that run processes; defaults to the number of cores.
    pub arbiters: usize,
    /// Further arbiters that run only processes spawned with [`Node::spawn_ref_dedicated`]
    /// (and read no connections), so that a process with long handlers (a large state to
    /// serialize) never holds up the others; 0 by default.
    pub dedicated_arbiters: usize,
    /// tokio worker threads for the network.
    pub io_threads: usize,
    /// Largest frame (and HTTP body) accepted; larger frames are skipped and counted.
    pub max_frame_bytes: usize,
    /// Bytes of frames that may wait for one peer's connection; more are dropped and counted.
    pub send_queue_bytes: usize,
    /// Messages from the network that may be queued in mailboxes at once; past it the node stops
    /// reading its sockets until mailboxes drain, pushing back on the senders through TCP.
    pub max_inbound_inflight: usize,
    /// Inbound connections past their handshake at once; more are refused and counted.
    pub max_connections: usize,
    /// Of those, from one peer IP.
    pub max_connections_per_ip: usize,
    /// Inbound connections still in their handshake (TLS, the actor-protocol hello, the first
    /// HTTP request head); a new one past this closes the oldest (see
    /// `transport::admission`).
    pub max_pending_connections: usize,
    /// How long an outbound connection may take to establish.
    pub connect_timeout: Duration,
    /// How long a new inbound connection may take to say which protocol it speaks.
    pub handshake_timeout: Duration,
    /// How long a process route may take to answer an HTTP request.
    pub http_request_timeout: Duration,
    /// Initial size of each peer's write buffer (it grows to the largest burst).
    pub write_batch_bytes: usize,
    /// Mutual TLS: who this node is and whom it trusts. `None` runs the node insecure
    /// (plaintext, nothing proven, [`crate::Context::authorize`] admits everyone).
    pub tls: Option<crate::tls::TlsConfig>,
    /// Authenticate every HTTP request, reads included (Mesos's
    /// `--authenticate_http_readonly`): see [`HttpAuthentication`]. `None`: routes decide.
    pub http_authentication: Option<HttpAuthentication>,
    /// Who may call which endpoint (Mesos's `get_endpoints` ACL): asked with the request's
    /// proven principal and its path; `false` answers 403. Message posts and health checks
    /// are not endpoints and are not asked. `None`: everyone may.
    pub endpoint_authorization: Option<EndpointCheck>,
    /// Seeds everything random the node's processes draw ([`crate::NodeRandom`]), for
    /// simulations that replay bit for bit; `None`: the OS's randomness.
    pub seed: Option<u64>,
    /// Run on this simulated network instead of TCP: no socket, the network's thread and
    /// clock (see [`crate::simulation`]). `None`: a real node.
    pub network: Option<crate::simulation::SimNetwork>,
}

/// Whether a principal (`None`: unauthenticated) may call the endpoint at a path.
#[derive(Clone)]
pub struct EndpointCheck(pub std::sync::Arc<EndpointPredicate>);

/// The function behind an [`EndpointCheck`]: `(principal, path) -> may call`.
pub type EndpointPredicate = dyn Fn(Option<&str>, &str) -> bool + Send + Sync;

impl EndpointCheck {
    /// Whether `principal` may call `path`.
    pub fn permits(&self, principal: Option<&str>, path: &str) -> bool {
        (self.0)(principal, path)
    }
}

impl std::fmt::Debug for EndpointCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointCheck")
    }
}

/// Checks an `Authorization` header; the principal it proves, if it does.
pub type BasicCheck = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Who may make HTTP requests to a node that authenticates them all: a client with a TLS
/// certificate from the node's CA, or one whose `Authorization` header `basic` accepts.
/// Health checks (`…/health`) stay open, as load balancers call them anonymously.
#[derive(Clone)]
pub struct HttpAuthentication {
    /// Checks HTTP Basic headers (`None`: certificates only).
    pub basic: Option<BasicCheck>,
}

impl std::fmt::Debug for HttpAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuthentication")
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        NodeConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_ip: None,
            arbiters: cores,
            dedicated_arbiters: 0,
            io_threads: cores.min(2),
            max_frame_bytes: 8 * 1024 * 1024,
            send_queue_bytes: 64 * 1024 * 1024,
            max_inbound_inflight: 64 * 1024,
            max_connections: 1024,
            max_connections_per_ip: 512,
            max_pending_connections: 256,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            http_request_timeout: Duration::from_secs(30),
            write_batch_bytes: 64 * 1024,
            tls: None,
            http_authentication: None,
            endpoint_authorization: None,
            seed: None,
            network: None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listener could not bind, or a runtime thread could not start.
    #[error("cannot start node on {addr}: {source}")]
    Io {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `bind` is a wildcard address and no `advertise_ip` was given.
    #[error("bind address {0} is a wildcard: set advertise_ip to the address peers should use")]
    NoAdvertiseIp(SocketAddr),
    /// A configuration value is out of range.
    #[error("invalid node configuration: {0}")]
    Config(String),
}

/// Builds a [`Node`].
#[derive(Debug, Default)]
pub struct NodeBuilder {
    config: NodeConfig,
    clock: Option<Clock>,
}

impl NodeBuilder {
    /// Listen on `addr` (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// Use this clock (share one clock between nodes to pause them together).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Replace the whole configuration.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// The smallest node: one arbiter and one network thread (tests, tools, benchmarks that
    /// compare against single-threaded baselines).
    pub fn single_threaded(self) -> Self {
        self.configure(|c| {
            c.arbiters = 1;
            c.io_threads = 1;
        })
    }

    /// Run secure: mutual TLS with `tls` on every connection (see [`crate::tls`]).
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Change one part of the configuration.
    pub fn configure(mut self, f: impl FnOnce(&mut NodeConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Starts the node: binds the listener and starts the arbiters and the network runtime.
    pub fn start(self) -> Result<Node, NodeError> {
        Node::start(self.config, self.clock.unwrap_or_default())
    }
}
