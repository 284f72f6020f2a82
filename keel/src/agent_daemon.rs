//! An agent as a daemon: flags, the agent process, its watchdog service (with Autopilot), and
//! following the leading master. `keel-slave` is this; so are the agents `keel-local
//! --autopilot` starts as OS processes (`keel-local agent …`), so that a repair really
//! restarts one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use autopilot::device_manager::device_manager_beside;
use autopilot::watchdog::WatchdogConfig;
use libactor::TlsConfig;
use slave::agent_resources::{agent_resources, parse_attributes};
use slave::containerizer::{ContainerizerConfig, IsolationMode, DEFAULT_CGROUPS_ROOT};
use slave::executor_tls::ExecutorIssuer;
use slave::sandbox_gc::{
    GcPolicy, DEFAULT_DISK_HEADROOM, DEFAULT_DISK_WATCH_INTERVAL, DEFAULT_GC_DELAY,
};
use slave::slave::{Slave, SlaveConfig, DEFAULT_RECOVERY_TIMEOUT, MASTER_PING_TIMEOUT};

use crate::autopilot_services::Satellites;
use crate::duration_flag::{between, positive_up_to_a_day, Seconds, MAX_FLAG_DURATION};
use crate::master_address::{follow, MasterSource};
use crate::security_flags::{endpoint_authorization, http_authentication, secure, SecurityFlags};

/// The agent's flags (`keel-slave`, and `keel-local agent` for the agents of
/// `keel-local --autopilot`).
#[derive(Debug, Clone, clap::Args)]
pub struct AgentFlags {
    /// The master: `host:port`, `master@host:port`, or `zk://host:port,…/path` to follow the
    /// leader elected in ZooKeeper.
    #[arg(long, env = "KEEL_MASTER", default_value = "127.0.0.1:5050")]
    pub master: String,
    /// Address to listen on.
    #[arg(long, env = "KEEL_IP", default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, env = "KEEL_PORT", default_value_t = 5051)]
    pub port: u16,
    /// Where sandboxes go.
    #[arg(long, env = "KEEL_WORK_DIR", default_value = "/tmp/keel-slave")]
    pub work_dir: PathBuf,
    /// What to offer, e.g. `cpus:4;mem:8192;ports:[31000-32000]`; names left out are detected.
    #[arg(long, env = "KEEL_RESOURCES")]
    pub resources: Option<String>,
    /// Attributes, e.g. `rack:r1;zone:z2`.
    #[arg(long, env = "KEEL_ATTRIBUTES", default_value = "")]
    pub attributes: String,
    /// The hostname to report (default: the listen address).
    #[arg(long, env = "KEEL_HOSTNAME")]
    pub hostname: Option<String>,
    /// A file with `principal secret` to authenticate to the master with.
    #[arg(long, env = "KEEL_CREDENTIAL")]
    pub credential: Option<PathBuf>,
    /// How to isolate executors: `cgroups` (cpu shares, memory limit, OOM reporting), `posix`
    /// (process groups only), or `auto` (cgroups where the kernel offers them).
    #[arg(long, env = "KEEL_ISOLATION", default_value = "auto")]
    pub isolation: IsolationMode,
    /// The cgroup, under the agent's own, that holds its containers.
    #[arg(long = "cgroups-root", env = "KEEL_CGROUPS_ROOT", default_value = DEFAULT_CGROUPS_ROOT)]
    pub cgroups_root: String,
    /// How long a finished executor's sandbox is kept, in seconds.
    #[arg(
        long = "gc-delay-seconds",
        env = "KEEL_GC_DELAY_SECONDS",
        default_value_t = Seconds(DEFAULT_GC_DELAY),
        value_parser = between(Duration::ZERO, MAX_FLAG_DURATION)
    )]
    pub gc_delay_seconds: Seconds,
    /// Fraction of the work dir's disk to keep free: finished sandboxes are kept for at most
    /// gc-delay × max(0, 1 − headroom − disk usage), checked every disk-watch interval.
    #[arg(
        long = "gc-disk-headroom",
        env = "KEEL_GC_DISK_HEADROOM",
        default_value_t = DEFAULT_DISK_HEADROOM,
        value_parser = fraction
    )]
    pub gc_disk_headroom: f64,
    /// How often the work dir's disk usage is checked, in seconds.
    #[arg(
        long = "disk-watch-interval-seconds",
        env = "KEEL_DISK_WATCH_INTERVAL_SECONDS",
        default_value_t = Seconds(DEFAULT_DISK_WATCH_INTERVAL),
        value_parser = between(Duration::from_secs(1), MAX_FLAG_DURATION)
    )]
    pub disk_watch_interval_seconds: Seconds,
    /// Cap each container's cpu time at its cpus with a CFS quota (not only shares).
    #[arg(long = "cgroups-enable-cfs", env = "KEEL_CGROUPS_ENABLE_CFS")]
    pub cgroups_enable_cfs: bool,
    /// How long, after this agent died, its executors wait for it to come back (restarted
    /// with the same --work-dir) before they are ended; 0: they wait forever.
    #[arg(
        long = "recovery-timeout-seconds",
        env = "KEEL_RECOVERY_TIMEOUT_SECONDS",
        default_value_t = Seconds(DEFAULT_RECOVERY_TIMEOUT),
        value_parser = between(Duration::ZERO, MAX_FLAG_DURATION)
    )]
    pub recovery_timeout_seconds: Seconds,
    /// Register again after this long without a ping from the master (it pings every 15 s by
    /// default and gives up after 5 misses).
    #[arg(long, env = "KEEL_MASTER_PING_TIMEOUT_SECONDS", default_value_t = Seconds(MASTER_PING_TIMEOUT), value_parser = between(Duration::from_millis(100), Duration::from_secs(86_400)))]
    pub master_ping_timeout_seconds: Seconds,
    /// Run Autopilot's watchdog service: check this machine every interval and report to the
    /// device manager beside the leading master (which needs --autopilot too).
    #[arg(long, env = "KEEL_AUTOPILOT")]
    pub autopilot: bool,
    /// Custom watchdogs: every executable here runs each round (exit 0/1/2 = OK, Warning,
    /// Error; 3 = fatal Error).
    #[arg(long, env = "KEEL_WATCHDOG_DIR")]
    pub watchdog_dir: Option<PathBuf>,
    /// Seconds between watchdog rounds.
    #[arg(long, env = "KEEL_WATCHDOG_INTERVAL_SECONDS", default_value = "10s", value_parser = positive_up_to_a_day())]
    pub watchdog_interval_seconds: Seconds,
    /// Seconds a custom watchdog may run before it is killed and reported as hung.
    #[arg(long, env = "KEEL_WATCHDOG_TIMEOUT_SECONDS", default_value = "10s", value_parser = positive_up_to_a_day())]
    pub watchdog_timeout_seconds: Seconds,
    /// The machine type this agent reports to the device manager.
    #[arg(long, env = "KEEL_MACHINE_TYPE", default_value = "default")]
    pub machine_type: String,
    /// Directories local fetcher URIs (`/path`, `file:///path`) may point into, comma
    /// separated; a file elsewhere (symlinks resolved) fails its task. Default: none on a
    /// secure agent, anywhere on an `--insecure` one.
    #[arg(long, env = "KEEL_FETCHER_ALLOWED_PATHS", value_delimiter = ',')]
    pub fetcher_allowed_paths: Option<Vec<PathBuf>>,
    /// Where the agent's helper programs are (`keel-default-executor`, which runs task groups
    /// given the default executor). Default: the directory of this binary.
    #[arg(long, env = "KEEL_LAUNCHER_DIR")]
    pub launcher_dir: Option<PathBuf>,
    /// Authenticate every HTTP request, reads included (state, sandboxes through /files,
    /// metrics): a client certificate, or HTTP Basic against --http-credentials.
    #[arg(long, env = "KEEL_AUTHENTICATE_HTTP_READONLY")]
    pub authenticate_http_readonly: bool,
    /// A file of `principal secret` lines: who may read over HTTP Basic
    /// (with --authenticate-http-readonly).
    #[arg(long, env = "KEEL_HTTP_CREDENTIALS")]
    pub http_credentials: Option<PathBuf>,
    /// Run each task as its user (the task's `CommandInfo.user`, else its framework's) when
    /// that is not the agent's own: the agent must then run as root (Mesos's `--switch_user`).
    /// `--switch-user=false` runs every task as the agent's user.
    #[arg(long, env = "KEEL_SWITCH_USER", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub switch_user: bool,
    /// Mesos's access control lists (JSON): who may read which user's sandboxes through /files
    /// (`access_sandboxes`) and call /metrics, /__processes__, /monitor/statistics
    /// (`get_endpoints`); `permissive` decides what no rule matches.
    #[arg(long, env = "KEEL_ACLS")]
    pub acls: Option<PathBuf>,
    /// Mutual TLS (`--tls-dir`, role `agent`) or `--insecure`.
    #[command(flatten)]
    pub security: SecurityFlags,
}

/// The agent's TLS configuration and, when secure, what issues its executors certificates
/// (its node then trusts that CA beside the cluster's).
fn agent_tls(
    flags: &AgentFlags,
) -> anyhow::Result<(Option<TlsConfig>, Option<Arc<ExecutorIssuer>>)> {
    let Some(dir) = flags
        .security
        .tls("keel-slave")?
        .and(flags.security.tls_dir.as_ref())
    else {
        return Ok((None, None));
    };
    let meta = slave::checkpoint::MetaDir::new(&flags.work_dir);
    let issuer = ExecutorIssuer::load_or_create(meta.path(), libactor::tls::dir::ca_pem(dir)?)
        .context("the agent's executor CA")?;
    let tls = libactor::tls::dir::load_trusting(dir, issuer.ca_pem())?;
    if !tls.identity().has_role(authentication::roles::AGENT) {
        bail!("the certificate in --tls-dir lacks the agent role");
    }
    Ok((Some(tls), Some(Arc::new(issuer))))
}

/// How long to wait for ZooKeeper to name a leading master at start.
const MASTER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs an agent with `flags` until SIGTERM or Ctrl-C; prints `slave <pid>` once it runs.
pub async fn run(flags: AgentFlags) -> anyhow::Result<()> {
    let mut stop = crate::shutdown_signal::StopRequests::listen();
    let source =
        MasterSource::parse(&flags.master).with_context(|| format!("--master {}", flags.master))?;
    let master_ping_timeout = flags.master_ping_timeout_seconds.0;
    let watchdog_interval = flags.watchdog_interval_seconds.0;
    let watchdog_timeout = flags.watchdog_timeout_seconds.0;
    if flags.watchdog_dir.is_some() && !flags.autopilot {
        bail!("--watchdog-dir needs --autopilot");
    }
    let (master, detector) = source.resolve(MASTER_WAIT).await?;
    std::fs::create_dir_all(&flags.work_dir)
        .with_context(|| format!("creating --work-dir {}", flags.work_dir.display()))?;
    let resources = agent_resources(flags.resources.as_deref(), &flags.work_dir)?;
    let attributes = parse_attributes(&flags.attributes)?;
    let credential = flags
        .credential
        .as_deref()
        .map(authentication::Credential::from_file)
        .transpose()?;
    let (tls, executor_tls) = agent_tls(&flags)?;
    let http_credentials = flags
        .http_credentials
        .as_deref()
        .map(authentication::Credentials::from_file)
        .transpose()?;
    let http_authentication = flags
        .authenticate_http_readonly
        .then(|| http_authentication("keel-slave", tls.is_some(), http_credentials))
        .transpose()?;
    let acls = flags
        .acls
        .as_deref()
        .map(authentication::acls::Acls::from_file)
        .transpose()?;
    let node = secure(libactor::Node::builder(), tls)
        .configure(|c| {
            c.http_authentication = http_authentication;
            c.endpoint_authorization = endpoint_authorization(acls.as_ref());
        })
        .bind(std::net::SocketAddr::new(flags.ip, flags.port))
        .start()
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    // Its operators prove themselves with certificates (the agent has no credentials file).
    crate::logging_toggle::LoggingToggle::spawn(&node, None)?;
    let hostname = flags.hostname.unwrap_or_else(|| flags.ip.to_string());
    let slave = Slave::spawn(
        &node,
        SlaveConfig {
            master: master.clone(),
            work_dir: flags.work_dir.clone(),
            resources: resources.clone(),
            attributes: attributes.clone(),
            hostname: hostname.clone(),
            credential,
            containerizer: ContainerizerConfig {
                isolation: flags.isolation,
                cgroups_root: flags.cgroups_root,
                cgroups_enable_cfs: flags.cgroups_enable_cfs,
            },
            gc: GcPolicy {
                delay: flags.gc_delay_seconds.0,
                disk_headroom: flags.gc_disk_headroom,
                disk_watch_interval: flags.disk_watch_interval_seconds.0,
            },
            master_ping_timeout,
            executor_recovery_timeout: Some(flags.recovery_timeout_seconds.0)
                .filter(|timeout| !timeout.is_zero()),
            fetcher_allowed_paths: flags
                .fetcher_allowed_paths
                .clone()
                .or_else(|| executor_tls.as_ref().map(|_| Vec::new())),
            executor_tls,
            switch_user: flags.switch_user,
            acls: acls.unwrap_or_default(),
            launcher_dir: flags
                .launcher_dir
                .clone()
                .unwrap_or_else(slave::slave::default_launcher_dir),
        },
    )?;
    let flag_values = crate::flag_values::flag_values::<AgentFlags>(std::env::args_os());
    slave.dispatch(move |s, ctx| s.set_flags(ctx, flag_values));
    let isolation = slave.call(|s, _| s.isolation().to_owned()).await?;
    let satellites = if flags.autopilot {
        let mut config = WatchdogConfig::new(
            &hostname,
            device_manager_beside(&master)?,
            flags.work_dir.clone(),
        )
        .with_attributes(&attributes);
        config.machine_type = flags.machine_type.clone();
        config.watchdog_dir = flags.watchdog_dir.clone();
        config.interval = watchdog_interval;
        config.timeout = watchdog_timeout;
        config.agent = Some(slave.pid().clone());
        Some(Satellites::spawn(
            &node,
            &master,
            config,
            Default::default(),
        )?)
    } else {
        None
    };
    // With ZooKeeper the agent (and its satellites) follow every new leader.
    let _following = detector.map(|d| {
        let slave = slave.clone();
        follow(d, master.clone(), move |leader| {
            if let Some(s) = &satellites {
                s.follow(&leader);
            }
            slave.dispatch(move |s, ctx| s.set_master(ctx, leader))
        })
    });
    crate::announce!("slave {}", slave.pid());
    crate::announce!("isolation {isolation}");
    tracing::info!(pid = %slave.pid(), %resources, "agent started");
    let shut_down = slave.call(|s, _| s.shut_down_by_master()).await?;
    tokio::select! {
        () = stop.requested() => tracing::info!("stopping; killing tasks"),
        () = shut_down.notified() => tracing::warn!(
            "the master shut this agent down; exiting (started again, it registers as a new agent)"
        ),
    }
    node.shutdown().await;
    Ok(())
}

/// A fraction between 0.0 and 1.0.
fn fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number between 0.0 and 1.0")),
    }
}
