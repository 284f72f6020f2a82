//! A master as a daemon (`keel-master`): flags, the master process and its allocator on one
//! node, standing by and leading through ZooKeeper, and the device manager beside it. Agents and frameworks
//! find it at `master@IP:PORT`.
//!
//! With `--zk zk://host:port,…/path` several masters contend for leadership: each serves as a
//! standby (HTTP redirected to the leader) until ZooKeeper elects it, then runs the master.
//! A leader keeps leading through ZooKeeper outages shorter than two thirds of the session
//! timeout (no other master can be elected meanwhile); one that loses its session, or stays
//! disconnected longer, exits at once (status 1), as Mesos's does: it can no longer know that no
//! other master leads; a supervisor restarts it as a new contender. A standby whose session
//! expires contends again.
//!
//! The registry (admitted agents and frameworks) lives in ZooKeeper with `--zk`, in
//! `--work-dir`/registry for a single master, and nowhere without either (the master then
//! relearns the cluster from re-registrations alone). A master whose registry write fails
//! exits too.

use std::time::Duration;

use anyhow::{bail, Context as _};
use coordination::{
    AnyStore, Candidacy, Contender, Detector, FileStore, MasterInfoJson, ZkStore, ZkUrl,
};
use master::master::{
    AgentHealth, AuthenticationPolicy, Master, RevocationPolicy, DEFAULT_AGENT_REREGISTER_TIMEOUT,
};
use master::registrar::Registrar;
use master::standby::StandbyMaster;
use tokio::sync::watch;

use crate::autopilot_services::{spawn_device_manager, AutopilotFlags};
use crate::duration_flag::{between, Seconds};
use crate::security_flags::{endpoint_authorization, http_authentication, secure, SecurityFlags};

/// The master's flags (`keel-master`), each also read from a `KEEL_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct MasterFlags {
    /// Address to listen on.
    #[arg(long, env = "KEEL_IP", default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, env = "KEEL_PORT", default_value_t = 5050)]
    pub port: u16,
    /// A file of `principal secret` lines: who may authenticate.
    #[arg(long, env = "KEEL_CREDENTIALS")]
    pub credentials: Option<std::path::PathBuf>,
    /// Mesos's access control lists (JSON): who may register frameworks in which role
    /// (`register_frameworks`), run tasks as which user (`run_tasks`), tear down which
    /// principals' frameworks (`teardown_frameworks`), see which users' frameworks and tasks in
    /// /master/state (`view_frameworks`, `view_tasks`) and call /metrics, /__processes__
    /// (`get_endpoints`); `permissive` decides what no rule matches.
    #[arg(long, env = "KEEL_ACLS")]
    pub acls: Option<std::path::PathBuf>,
    /// Refuse agents that have not authenticated (needs --credentials).
    #[arg(long, env = "KEEL_AUTHENTICATE_AGENTS")]
    pub authenticate_agents: bool,
    /// Refuse frameworks that have not authenticated (needs --credentials).
    #[arg(long, env = "KEEL_AUTHENTICATE_FRAMEWORKS")]
    pub authenticate_frameworks: bool,
    /// Revoke tasks above a framework's fair share while another framework starves, this many
    /// seconds after telling it (off when unset).
    #[arg(long, env = "KEEL_REVOCATION_GRACE_SECONDS", value_parser = between(Duration::ZERO, Duration::from_secs(86_400)))]
    pub revocation_grace_seconds: Option<Seconds>,
    /// Resources a role keeps whatever happens (neither revocation nor preemption takes it
    /// below), `ROLE=RESOURCES` (repeatable), e.g. `--guarantee 'prod=cpus:8;mem:16384'`:
    /// quota guarantees for roles the registry has none for (UPDATE_QUOTA's win).
    #[arg(long = "guarantee", env = "KEEL_GUARANTEES", value_delimiter = ',')]
    pub guarantees: Vec<String>,
    /// Quota limits, `ROLE=RESOURCES` (repeatable): the most a role may hold, offered or used
    /// (offers are cut, Omega commits refused beyond), for roles the registry has none for
    /// (UPDATE_QUOTA's win).
    #[arg(long = "role-limit", env = "KEEL_ROLE_LIMITS", value_delimiter = ',')]
    pub role_limits: Vec<String>,
    /// Between a preemption's notice to the victims' frameworks and their tasks' kill.
    #[arg(long, env = "KEEL_PREEMPTION_GRACE_SECONDS", default_value = "30s", value_parser = between(Duration::ZERO, Duration::from_secs(86_400)))]
    pub preemption_grace_seconds: Seconds,
    /// Contend for leadership in this ZooKeeper ensemble, `zk://host:port,…/path`.
    #[arg(long, env = "KEEL_ZK")]
    pub zk: Option<String>,
    /// ZooKeeper session timeout: how long ZooKeeper waits before another master may lead.
    #[arg(long, env = "KEEL_ZK_SESSION_TIMEOUT_SECONDS", default_value = "10s", value_parser = between(Duration::from_secs(1), Duration::from_secs(600)))]
    pub zk_session_timeout_seconds: Seconds,
    /// Keep the registry in DIR/registry (a single master without ZooKeeper); ignored with
    /// --zk, whose registry lives in ZooKeeper.
    #[arg(long, env = "KEEL_WORK_DIR")]
    pub work_dir: Option<std::path::PathBuf>,
    /// After taking over, how long to wait for the registry's agents to re-register before
    /// marking them unreachable.
    #[arg(long, env = "KEEL_AGENT_REREGISTER_TIMEOUT_SECONDS", default_value_t = Seconds(DEFAULT_AGENT_REREGISTER_TIMEOUT), value_parser = between(Duration::ZERO, Duration::from_secs(86_400)))]
    pub agent_reregister_timeout_seconds: Seconds,
    /// How long the master waits for each agent's pong.
    #[arg(long, env = "KEEL_AGENT_PING_TIMEOUT_SECONDS", default_value_t = Seconds(AgentHealth::default().ping_timeout), value_parser = between(Duration::from_millis(100), Duration::from_secs(3600)))]
    pub agent_ping_timeout_seconds: Seconds,
    /// Pongs an agent may miss in a row before it is marked unreachable.
    #[arg(long, env = "KEEL_MAX_AGENT_PING_TIMEOUTS", default_value_t = AgentHealth::default().max_missed)]
    pub max_agent_ping_timeouts: u32,
    /// Threads that run the master's processes (libprocess's LIBPROCESS_NUM_WORKER_THREADS);
    /// 0: one per core.
    #[arg(long, env = "KEEL_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// Run Autopilot's device manager beside the master (it moves with leadership): agents'
    /// watchdog reports make machines fail, and failed machines are drained and repaired.
    #[arg(long, env = "KEEL_AUTOPILOT")]
    pub autopilot: bool,
    /// Autopilot's flags (used with --autopilot).
    #[command(flatten)]
    pub autopilot_flags: AutopilotFlags,
    /// Authenticate every HTTP request, reads included (state, metrics, the cockpit…):
    /// a client certificate, or HTTP Basic against --credentials. Health checks stay open.
    #[arg(long, env = "KEEL_AUTHENTICATE_HTTP_READONLY")]
    pub authenticate_http_readonly: bool,
    /// Mutual TLS (`--tls-dir`, roles `master`) or `--insecure`.
    #[command(flatten)]
    pub security: SecurityFlags,
}

/// Runs a master until SIGINT or SIGTERM (`Ok`), or exits the process with status 1 once it
/// may no longer lead (see the module docs).
pub async fn run(flags: MasterFlags) -> anyhow::Result<()> {
    let mut stop = crate::shutdown_signal::StopRequests::listen();
    if flags.worker_threads > 256 {
        bail!("--worker-threads must be at most 256");
    }
    let tls = flags.security.tls("keel-master")?;
    if tls
        .as_ref()
        .is_some_and(|t| !t.identity().has_role(authentication::roles::MASTER))
    {
        bail!("the certificate in --tls-dir lacks the master role");
    }
    let credentials = flags
        .credentials
        .as_deref()
        .map(authentication::Credentials::from_file)
        .transpose()?;
    let http_authentication = flags
        .authenticate_http_readonly
        .then(|| http_authentication("keel-master", tls.is_some(), credentials.clone()))
        .transpose()?;
    let acls = flags
        .acls
        .as_deref()
        .map(authentication::acls::Acls::from_file)
        .transpose()?;
    let node = secure(libactor::Node::builder(), tls)
        .bind(std::net::SocketAddr::new(flags.ip, flags.port))
        .configure(|c| {
            if flags.worker_threads > 0 {
                c.arbiters = flags.worker_threads;
            }
            // The API process (state endpoints, operator API) gets a thread of its own: a
            // large state serialized there never holds up the master.
            c.dedicated_arbiters = 1;
            c.http_authentication = http_authentication;
            c.endpoint_authorization = endpoint_authorization(acls.as_ref());
        })
        .start()
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    crate::logging_toggle::LoggingToggle::spawn(&node, credentials.clone())?;
    if (flags.authenticate_agents || flags.authenticate_frameworks) && credentials.is_none() {
        bail!("--authenticate-agents and --authenticate-frameworks need --credentials");
    }
    if let Some(c) = &credentials {
        tracing::info!(principals = ?c.principals().collect::<Vec<_>>(), "credentials loaded");
    }
    let acls = acls.unwrap_or_default();
    let policy = AuthenticationPolicy {
        credentials,
        agents: flags.authenticate_agents,
        frameworks: flags.authenticate_frameworks,
        acls,
    };
    let reregister_timeout = flags.agent_reregister_timeout_seconds.0;
    if flags.max_agent_ping_timeouts == 0 {
        bail!("--max-agent-ping-timeouts must be at least 1");
    }
    let health = AgentHealth {
        ping_timeout: flags.agent_ping_timeout_seconds.0,
        max_missed: flags.max_agent_ping_timeouts,
        ..AgentHealth::default()
    };
    let autopilot = flags
        .autopilot
        .then(|| flags.autopilot_flags.config(&Default::default()))
        .transpose()
        .map_err(anyhow::Error::msg)?
        .map(|mut config| {
            // Operators prove the same credentials as frameworks do to order repairs.
            config.operators = policy.credentials.clone();
            config
        });
    let master_id = fresh_master_id();
    // The first stdout line says where the master is, for scripts and tests: at once for a
    // contender (it serves as a standby meanwhile), once it runs otherwise.
    let my_pid = node.pid("master")?;
    let contender = match &flags.zk {
        None => None,
        Some(zk) => {
            crate::announce!("master {my_pid}");
            let url: ZkUrl = zk.parse().with_context(|| format!("--zk {zk}"))?;
            let contender =
                stand_by_until_elected(&node, &flags, &url, &master_id, &my_pid, stop.clone())
                    .await?;
            Some((contender, url))
        }
    };
    // Taken before the registry is read: agents that hear of this master's election at once
    // re-register into a queue instead of into nothing.
    let reserved = node.reserve("master")?;
    let store = match (&contender, &flags.work_dir) {
        (Some((contender, url)), _) => Some(AnyStore::ZooKeeper(
            ZkStore::open(contender.client().clone(), url).await?,
        )),
        (None, Some(dir)) => Some(AnyStore::File(FileStore::open(dir.join("registry"))?)),
        (None, None) => {
            tracing::warn!("no --zk or --work-dir: the registry is kept in memory only");
            None
        }
    };
    let autopilot_store = store.clone();
    let (handle, registry_failure) = match store {
        Some(store) => {
            let registrar = Registrar::recover(store).await?;
            let failure = registrar.failure();
            let handle = Master::spawn_recovered(
                &node,
                reserved,
                &master_id,
                policy,
                registrar,
                reregister_timeout,
            )?;
            (handle, Some(failure))
        }
        None => {
            drop(reserved);
            (Master::spawn_with(&node, &master_id, policy)?, None)
        }
    };
    if contender.is_none() {
        crate::announce!("master {my_pid}");
    }
    handle
        .master
        .dispatch(move |m, ctx| m.set_agent_health(ctx, health));
    let flag_values = crate::flag_values::flag_values::<MasterFlags>(std::env::args_os());
    handle
        .api
        .dispatch(move |api, ctx| api.set_flags(ctx, flag_values));
    let guarantees = role_resources(&flags.guarantees, "--guarantee")?;
    let limits = role_resources(&flags.role_limits, "--role-limit")?;
    // Guarantees bound preemption whether or not revocation runs.
    let policy = RevocationPolicy {
        enabled: flags.revocation_grace_seconds.is_some(),
        grace_period: flags
            .revocation_grace_seconds
            .map_or(RevocationPolicy::default().grace_period, |s| s.0),
        guarantees,
        ..Default::default()
    };
    let preemption_grace = flags.preemption_grace_seconds.0;
    handle.master.dispatch(move |m, ctx| {
        m.set_revocation(ctx, policy);
        m.set_role_limits(ctx, limits);
        m.set_preemption_grace(ctx, preemption_grace);
    });
    let ground_truth_failure = match autopilot {
        Some(config) => {
            let deployment_dir = match &flags.work_dir {
                Some(dir) => dir.join("deployment"),
                None => std::env::temp_dir()
                    .join(format!("keel-master-{}-deployment", std::process::id())),
            };
            let dm = spawn_device_manager(
                &node,
                handle.master.clone(),
                autopilot_store,
                config,
                deployment_dir,
                Default::default(),
            )
            .await?;
            crate::announce!("device manager {}", dm.process.pid());
            crate::announce!("cockpit http://{}/cockpit", node.address());
            Some(dm.failure)
        }
        None => None,
    };
    crate::announce!("leading {}", handle.master.pid());
    tracing::info!(pid = %handle.master.pid(), "master started");
    tokio::select! {
        () = stop.requested() => {}
        why = lost_leadership(contender.as_ref().map(|(c, _)| c), registry_failure, ground_truth_failure) => {
            tracing::error!(reason = %why, "lost leadership; exiting so that no two masters lead");
            std::process::exit(1);
        }
    }
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}

/// A master id unique to this start, so that ids it hands out never repeat a previous run's.
pub fn fresh_master_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{:x}", millis % (1 << 40))
}

/// Resolves (with why) once this master may no longer lead: its candidacy is lost, or its
/// registry or the device manager's ground truth cannot be written. Never resolves for a lone
/// master without either.
async fn lost_leadership(
    contender: Option<&Contender>,
    registry_failure: Option<watch::Receiver<Option<String>>>,
    ground_truth_failure: Option<watch::Receiver<Option<String>>>,
) -> String {
    let candidacy = async {
        match contender {
            Some(c) => {
                let mut candidacy = c.candidacy();
                let lost = match candidacy
                    .wait_for(|c| matches!(c, Candidacy::Lost(_)))
                    .await
                {
                    Ok(lost) => format!("{:?}", *lost),
                    Err(_) => "the contender stopped".to_owned(),
                };
                lost
            }
            None => std::future::pending().await,
        }
    };
    let registry = watch_failure(registry_failure, "registry");
    tokio::select! {
        why = candidacy => why,
        why = registry => why,
        why = watch_failure(ground_truth_failure, "ground truth") => why,
    }
}

/// Resolves (with why) once `failure` names one (`what` failed); never without one.
async fn watch_failure(failure: Option<watch::Receiver<Option<String>>>, what: &str) -> String {
    let Some(mut failure) = failure else {
        return std::future::pending().await;
    };
    let why = match failure.wait_for(Option::is_some).await {
        Ok(why) => format!("{what}: {}", why.as_deref().unwrap_or_default()),
        Err(_) => format!("{what} stopped"),
    };
    why
}

/// How long a standby whose candidacy was lost waits before contending again (ZooKeeper may
/// still be coming back).
const RECONTEND_BACKOFF: Duration = Duration::from_secs(1);

/// Runs a standby at `master` (redirecting HTTP to the leader it detects) and contends until
/// elected; then the standby goes and the caller starts the real master in its place.
async fn stand_by_until_elected(
    node: &libactor::Node,
    flags: &MasterFlags,
    url: &ZkUrl,
    master_id: &str,
    my_pid: &libactor::Upid,
    mut stop: crate::shutdown_signal::StopRequests,
) -> anyhow::Result<Contender> {
    let timeout = flags.zk_session_timeout_seconds.0;
    // `/master/…` and `/api/…` (the v1 HTTP APIs) both redirect to the leader.
    let standbys = [
        node.spawn_ref("master", StandbyMaster::new())?,
        node.spawn_ref(master::api::API_PROCESS, StandbyMaster::new())?,
    ];
    let detector = Detector::start(url.clone(), timeout);
    let mut leader = detector.leader();
    let redirects = {
        let standbys = standbys.clone();
        tokio::spawn(async move {
            loop {
                let base = leader
                    .borrow_and_update()
                    .as_ref()
                    .map(MasterInfoJson::http_base);
                for standby in &standbys {
                    let base = base.clone();
                    standby.dispatch(move |s, ctx| s.set_leader(ctx, base));
                }
                if leader.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| flags.ip.to_string());
    let info = MasterInfoJson::new(master_id, my_pid, &hostname);
    // A standby whose session expires (ZooKeeper was away longer than the session timeout)
    // has lost nothing but its place in line: it contends again with a new session.
    let contender = loop {
        let contender = tokio::select! {
            contender = Contender::contend(url, &info, timeout) => contender?,
            () = stop.requested() => {
                tracing::info!("stopping before being elected");
                std::process::exit(0);
            }
        };
        crate::announce!("contending {} in {url}", contender.znode());
        tracing::info!(znode = contender.znode(), "standing by until elected");
        tokio::select! {
            elected = contender.elected() => match elected {
                Ok(()) => break contender,
                Err(e) => {
                    tracing::warn!(error = %e, "candidacy lost while standing by; contending again");
                    drop(contender);
                    tokio::time::sleep(RECONTEND_BACKOFF).await;
                }
            },
            () = stop.requested() => {
                tracing::info!("stopping before being elected");
                std::process::exit(0);
            }
        }
    };
    redirects.abort();
    drop(detector);
    for standby in &standbys {
        node.terminate(standby.pid());
        node.wait(standby.pid()).await;
    }
    Ok(contender)
}

/// `ROLE=RESOURCES` flags as a map (`flag` names them in errors).
fn role_resources(
    values: &[String],
    flag: &str,
) -> anyhow::Result<std::collections::HashMap<String, resources::Resources>> {
    let mut by_role = std::collections::HashMap::new();
    for v in values {
        let (role, resources) = v
            .split_once('=')
            .with_context(|| format!("{flag} {v}: expected ROLE=RESOURCES"))?;
        let resources: resources::Resources =
            resources.parse().with_context(|| format!("{flag} {v}"))?;
        by_role.insert(role.to_owned(), resources);
    }
    Ok(by_role)
}
