//! A whole cluster in one OS process: a master and N agents, each on a libactor node of its
//! own (its own port on the loopback interface), talking over real TCP exactly as separate
//! machines would. `keel-local` runs one; so do the in-process integration tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authentication::acls::Acls;
use authentication::{roles, Credential, Credentials};
use autopilot::collector::CollectorConfig;
use autopilot::device_manager::DeviceManagerConfig;
use autopilot::filesync::FilesyncLimits;
use autopilot::watchdog::WatchdogConfig;
use coordination::{AnyStore, FileStore};
use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::tls::TlsError;
use libactor::{Clock, Node, NodeError, ProcessRef, SpawnError, TlsConfig, Upid};
use master::master::{
    AuthenticationPolicy, Master, MasterHandle, DEFAULT_AGENT_REREGISTER_TIMEOUT,
};
use master::registrar::Registrar;
use resources::Resources;
use slave::checkpoint::MetaDir;
use slave::containerizer::ContainerizerConfig;
use slave::executor_tls::ExecutorIssuer;

use crate::autopilot_services::{spawn_device_manager, DeviceManagerHandle, Satellites};
use crate::master_daemon::fresh_master_id;
use slave::sandbox_gc::GcPolicy;
use slave::slave::{Registration, Slave, SlaveConfig, SlaveError};

/// Resources each agent of a local cluster offers unless told otherwise: the machine is shared
/// by all of them, so none claims all of it.
pub const DEFAULT_AGENT_RESOURCES: &str = "cpus:2;mem:2048;disk:4096;ports:[31000-32000]";

/// Why a local cluster could not start or settle.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node could not start (port in use, …).
    #[error("cannot start a node: {0}")]
    Node(#[from] NodeError),
    /// A process could not start.
    #[error("cannot start a process: {0}")]
    Spawn(#[from] SpawnError),
    /// An agent could not start.
    #[error("cannot start an agent: {0}")]
    Agent(#[from] SlaveError),
    /// The work dir could not be made.
    #[error("cannot create work dir {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The master's registry could not be opened or recovered.
    #[error("cannot recover the master's registry: {0}")]
    Registry(String),
    /// A certificate could not be issued or loaded.
    #[error("TLS: {0}")]
    Tls(#[from] libactor::tls::TlsError),
    /// The agents did not all register in time.
    #[error("only {registered} of {expected} agents registered within {timeout:?}")]
    AgentsMissing {
        /// Agents registered.
        registered: usize,
        /// Agents started.
        expected: usize,
        /// How long was waited.
        timeout: Duration,
    },
}

/// How to build a local cluster.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// Agents to start.
    pub agents: usize,
    /// What each agent offers.
    pub agent_resources: Resources,
    /// Sandboxes go under `{work_dir}/agent-{n}`.
    pub work_dir: PathBuf,
    /// The master's port on 127.0.0.1 (0: any free port).
    pub master_port: u16,
    /// A clock shared by every node (tests pass a paused one).
    pub clock: Option<Clock>,
    /// With a credential, the master requires agents and frameworks to authenticate and the
    /// agents authenticate with it (frameworks are given it by whoever starts them).
    pub credential: Option<Credential>,
    /// How the agents isolate their containers.
    pub containerizer: ContainerizerConfig,
    /// When agents remove finished executors' sandboxes.
    pub gc: GcPolicy,
    /// How long an agent goes without a ping from the master before it registers again.
    pub agent_master_ping_timeout: Duration,
    /// Keep the master's registry in `{work_dir}/master/registry`, so that a restarted master
    /// recovers it (off: the master's state is soft, relearnt from re-registrations).
    pub registry: bool,
    /// With a registry: how long a restarted master waits for its agents before marking
    /// them unreachable.
    pub agent_reregister_timeout: Duration,
    /// Run Autopilot: the device manager beside the master (its ground truth in the registry's
    /// store when the cluster keeps one) and a watchdog service on every agent.
    pub autopilot: Option<LocalAutopilot>,
    /// With a CA, every node runs mutual TLS with a certificate it issues: the master as
    /// `master` (role master), agent `n` as `agent-n` (role agent, and a CA of its own for its
    /// custom executors). [`LocalCluster::issue`] gives frameworks and operators theirs.
    pub ca: Option<Arc<ClusterCa>>,
    /// Where agents' local fetcher URIs may point; `None`: anywhere on an insecure cluster,
    /// nowhere on a secure one.
    pub fetcher_allowed_paths: Option<Vec<PathBuf>>,
    /// The master's and agents' access control lists (default: none, permissive).
    pub acls: Acls,
    /// Agents run each task as its framework's user when that is not their own
    /// (`--switch-user`; off by default here, where test frameworks name made-up users).
    pub switch_user: bool,
}

/// Autopilot in a local cluster.
#[derive(Debug, Clone, Default)]
pub struct LocalAutopilot {
    /// How the device manager decides.
    pub device_manager: DeviceManagerConfig,
    /// Time between watchdog rounds on each agent.
    pub watchdog_interval: Duration,
    /// Custom watchdogs: agent `n` runs the executables in `{watchdog_root}/agent-{n}`.
    pub watchdog_root: Option<PathBuf>,
    /// How each agent's filesync fetches.
    pub filesync: FilesyncLimits,
    /// What the collection service gathers, how often.
    pub collector: CollectorConfig,
}

impl LocalClusterConfig {
    /// `agents` agents with the default resources, sandboxes under `work_dir`, any free ports.
    pub fn new(agents: usize, work_dir: impl Into<PathBuf>) -> Self {
        LocalClusterConfig {
            agents,
            agent_resources: DEFAULT_AGENT_RESOURCES.parse().unwrap_or_default(),
            work_dir: work_dir.into(),
            master_port: 0,
            clock: None,
            credential: None,
            containerizer: ContainerizerConfig::default(),
            gc: GcPolicy::default(),
            agent_master_ping_timeout: slave::slave::MASTER_PING_TIMEOUT,
            registry: false,
            agent_reregister_timeout: DEFAULT_AGENT_REREGISTER_TIMEOUT,
            autopilot: None,
            ca: None,
            fetcher_allowed_paths: None,
            acls: Acls::default(),
            switch_user: false,
        }
    }

    /// The same cluster with a fresh CA: every node runs mutual TLS.
    pub fn secure(mut self) -> Result<Self, ClusterError> {
        self.ca = Some(Arc::new(ClusterCa::generate("keel local cluster CA")?));
        Ok(self)
    }
}

/// One agent of a local cluster.
pub struct LocalAgent {
    /// Its node.
    pub node: Node,
    /// Its agent process.
    pub slave: ProcessRef<Slave>,
    /// Its hostname (its machine id in Autopilot).
    pub hostname: String,
}

/// A running local cluster.
pub struct LocalCluster {
    /// The master's node.
    pub master_node: Node,
    /// The master and its allocator.
    pub master: MasterHandle,
    /// The agents, in start order.
    pub agents: Vec<LocalAgent>,
    /// Autopilot's device manager, when the cluster runs Autopilot.
    pub device_manager: Option<DeviceManagerHandle>,
    config: LocalClusterConfig,
}

fn node_on(
    port: u16,
    config: &LocalClusterConfig,
    tls: Option<TlsConfig>,
) -> Result<Node, NodeError> {
    let clock = &config.clock;
    let acls = (config.acls != Acls::default()).then_some(&config.acls);
    let endpoints = crate::security_flags::endpoint_authorization(acls);
    let mut builder = Node::builder()
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .configure(|c| c.endpoint_authorization = endpoints)
        .single_threaded();
    if let Some(clock) = clock {
        builder = builder.clock(clock.clone());
    }
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.start()
}

/// A node on `port` again, which another socket may hold for a moment after the node that
/// had it stopped (a connection attempt to it, for one): retried for up to
/// [`REBIND_PATIENCE`], as a restarted daemon's supervisor would.
async fn rebind(
    port: u16,
    config: &LocalClusterConfig,
    tls: Option<TlsConfig>,
) -> Result<Node, NodeError> {
    let deadline = std::time::Instant::now() + REBIND_PATIENCE;
    loop {
        match node_on(port, config, tls.clone()) {
            Err(NodeError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// How long a restarted master waits for its port.
const REBIND_PATIENCE: Duration = Duration::from_secs(10);

/// Every node of a local cluster listens on the loopback address.
const LOCAL_HOST: &str = "127.0.0.1";

/// A certificate from `ca` for `principal` in `roles` on the loopback address; its CA bundle
/// adds `extra_ca_pem` when given.
fn issue_tls(
    ca: &ClusterCa,
    principal: &str,
    roles: &[&str],
    extra_ca_pem: Option<&str>,
) -> Result<TlsConfig, TlsError> {
    let cert = ca.issue(&CertRequest::new(principal, roles, &[LOCAL_HOST]))?;
    let trust = match extra_ca_pem {
        Some(extra) => format!("{}\n{extra}", ca.cert_pem()),
        None => ca.cert_pem().to_owned(),
    };
    TlsConfig::from_pem(&trust, &cert.cert_pem, &cert.key_pem)
}

/// The master's certificate, on a secure cluster.
fn master_tls(config: &LocalClusterConfig) -> Result<Option<TlsConfig>, TlsError> {
    config
        .ca
        .as_ref()
        .map(|ca| issue_tls(ca, "master", &[roles::MASTER], None))
        .transpose()
}

/// With a credential the master requires everyone to authenticate with it; without, no one.
/// The cluster's ACLs apply either way.
fn policy_for(credential: Option<&Credential>, acls: &Acls) -> AuthenticationPolicy {
    match credential {
        Some(c) => AuthenticationPolicy {
            credentials: Some(Credentials::single(c)),
            agents: true,
            frameworks: true,
            acls: acls.clone(),
        },
        None => AuthenticationPolicy {
            acls: acls.clone(),
            ..Default::default()
        },
    }
}

/// Spawns the master on `node`, recovering its registry first if the cluster keeps one, and
/// the device manager beside it if the cluster runs Autopilot.
async fn spawn_master(
    node: &Node,
    config: &LocalClusterConfig,
) -> Result<(MasterHandle, Option<DeviceManagerHandle>), ClusterError> {
    let policy = policy_for(config.credential.as_ref(), &config.acls);
    let registry = |e: &dyn std::fmt::Display| ClusterError::Registry(e.to_string());
    let store = if config.registry {
        Some(AnyStore::File(
            FileStore::open(config.work_dir.join("master").join("registry"))
                .map_err(|e| registry(&e))?,
        ))
    } else {
        None
    };
    let master = match store.clone() {
        None => Master::spawn_with(node, &fresh_master_id(), policy)?,
        Some(store) => {
            let reserved = node.reserve("master")?;
            let registrar = Registrar::recover(store).await.map_err(|e| registry(&e))?;
            Master::spawn_recovered(
                node,
                reserved,
                &fresh_master_id(),
                policy,
                registrar,
                config.agent_reregister_timeout,
            )?
        }
    };
    let device_manager = match &config.autopilot {
        None => None,
        Some(autopilot) => {
            let mut dm = autopilot.device_manager.clone();
            dm.operators = config.credential.as_ref().map(Credentials::single);
            Some(
                spawn_device_manager(
                    node,
                    master.master.clone(),
                    store,
                    dm,
                    config.work_dir.join("master").join("deployment"),
                    autopilot.collector.clone(),
                )
                .await
                .map_err(|e| registry(&e))?,
            )
        }
    };
    Ok((master, device_manager))
}

impl LocalCluster {
    /// Starts the master, then the agents (they register on their own; see
    /// [`LocalCluster::wait_for_agents`]).
    pub async fn start(config: LocalClusterConfig) -> Result<LocalCluster, ClusterError> {
        let master_node = node_on(config.master_port, &config, master_tls(&config)?)?;
        let (master, device_manager) = spawn_master(&master_node, &config).await?;
        let mut cluster = LocalCluster {
            master_node,
            master,
            agents: Vec::new(),
            device_manager,
            config,
        };
        for _ in 0..cluster.config.agents {
            cluster.add_agent()?;
        }
        Ok(cluster)
    }

    /// Stops the master and starts a new one (a fresh id; only the registry, if kept) on the
    /// same address, as after a master crash: agents and frameworks find it there and
    /// re-register.
    pub async fn restart_master(&mut self) -> Result<(), ClusterError> {
        self.stop_master().await;
        self.start_master().await
    }

    /// Stops the master (as if it crashed); [`LocalCluster::start_master`] brings one back.
    pub async fn stop_master(&mut self) {
        self.master_node.shutdown().await;
    }

    /// Starts a new master (a fresh id; only the registry, if kept) on the stopped master's
    /// address.
    pub async fn start_master(&mut self) -> Result<(), ClusterError> {
        let address = self.master_node.socket_addr();
        let tls = master_tls(&self.config)?;
        self.master_node = rebind(address.port(), &self.config, tls).await?;
        (self.master, self.device_manager) = spawn_master(&self.master_node, &self.config).await?;
        Ok(())
    }

    /// Starts one more agent; returns its index.
    pub fn add_agent(&mut self) -> Result<usize, ClusterError> {
        let index = self.agents.len();
        let work_dir = self.config.work_dir.join(format!("agent-{index}"));
        std::fs::create_dir_all(&work_dir).map_err(|source| ClusterError::WorkDir {
            path: work_dir.clone(),
            source,
        })?;
        let (tls, executor_tls) = match &self.config.ca {
            None => (None, None),
            Some(ca) => {
                let issuer = ExecutorIssuer::load_or_create(
                    MetaDir::new(&work_dir).path(),
                    ca.cert_pem().to_owned(),
                )?;
                let principal = format!("agent-{index}");
                let tls = issue_tls(ca, &principal, &[roles::AGENT], Some(issuer.ca_pem()))?;
                (Some(tls), Some(Arc::new(issuer)))
            }
        };
        let node = node_on(0, &self.config, tls)?;
        let hostname = format!("local-agent-{index}");
        let slave = Slave::spawn(
            &node,
            SlaveConfig {
                master: self.master_pid().clone(),
                work_dir: work_dir.clone(),
                resources: self.config.agent_resources.clone(),
                attributes: Vec::new(),
                hostname: hostname.clone(),
                credential: self.config.credential.clone(),
                containerizer: self.config.containerizer.clone(),
                gc: self.config.gc,
                master_ping_timeout: self.config.agent_master_ping_timeout,
                executor_recovery_timeout: None,
                fetcher_allowed_paths: self
                    .config
                    .fetcher_allowed_paths
                    .clone()
                    .or_else(|| self.config.ca.as_ref().map(|_| Vec::new())),
                executor_tls,
                switch_user: self.config.switch_user,
                acls: self.config.acls.clone(),
                launcher_dir: slave::slave::default_launcher_dir(),
            },
        )?;
        if let Some(autopilot) = &self.config.autopilot {
            let mut watchdogs = WatchdogConfig::new(&hostname, self.master_pid().clone(), work_dir);
            watchdogs.interval = autopilot.watchdog_interval;
            watchdogs.agent = Some(slave.pid().clone());
            watchdogs.watchdog_dir = autopilot
                .watchdog_root
                .as_ref()
                .map(|root| root.join(format!("agent-{index}")));
            Satellites::spawn(
                &node,
                self.master_pid(),
                watchdogs,
                autopilot.filesync.clone(),
            )
            .map_err(|e| ClusterError::Registry(e.to_string()))?;
        }
        self.agents.push(LocalAgent {
            node,
            slave,
            hostname,
        });
        Ok(index)
    }

    /// A TLS configuration for `principal` in `roles`, from the cluster's CA (`None` on an
    /// insecure cluster): for frameworks, operators and tools joining it.
    pub fn issue(
        &self,
        principal: &str,
        roles: &[&str],
    ) -> Result<Option<TlsConfig>, ClusterError> {
        match &self.config.ca {
            None => Ok(None),
            Some(ca) => Ok(Some(issue_tls(ca, principal, roles, None)?)),
        }
    }

    /// Writes a TLS directory for `principal` in `roles` into `dir` (for a process started
    /// with `--tls-dir`); false on an insecure cluster.
    pub fn issue_dir(
        &self,
        principal: &str,
        roles: &[&str],
        dir: &std::path::Path,
    ) -> Result<bool, ClusterError> {
        let Some(ca) = &self.config.ca else {
            return Ok(false);
        };
        let cert = ca.issue(&CertRequest::new(principal, roles, &[LOCAL_HOST]))?;
        libactor::tls::dir::write(dir, ca.cert_pem(), &cert)?;
        Ok(true)
    }

    /// The master's pid.
    pub fn master_pid(&self) -> &Upid {
        self.master.master.pid()
    }

    /// Agents the master has registered.
    pub async fn registered_agents(&self) -> usize {
        self.master
            .master
            .call(|m, _| m.agent_count())
            .await
            .unwrap_or(0)
    }

    /// Waits (up to `timeout`, checking every few milliseconds) until every live agent process
    /// says it is registered.
    pub async fn wait_for_agents(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut registered = 0;
            for agent in &self.agents {
                let state = agent.slave.call(|s, _| s.registration()).await;
                if state == Ok(Registration::Registered) {
                    registered += 1;
                }
            }
            if registered == self.agents.len() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::AgentsMissing {
                    registered,
                    expected: self.agents.len(),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (up to `timeout`) until the master counts `n` registered agents.
    pub async fn wait_for_master_agents(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let registered = self.registered_agents().await;
            if registered == n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::AgentsMissing {
                    registered,
                    expected: n,
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops every node: agents first (their tasks are killed), then the master.
    pub async fn shutdown(self) {
        for agent in &self.agents {
            agent.node.shutdown().await;
        }
        self.master_node.shutdown().await;
    }
}
