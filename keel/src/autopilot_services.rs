//! Autopilot beside a Keel master: the device manager spawned on the leading master's node with
//! its ground truth in the master's store, the master as its [`MachineGate`], and the flags
//! that tune it (shared by `keel-master` and `keel-local`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autopilot::app_manager::{AppManager, AppManagerConfig, APP_MANAGER_ID};
use autopilot::cockpit::{Cockpit, COCKPIT_ID};
use autopilot::collector::{Collector, CollectorConfig, COLLECTOR_ID};
use autopilot::deployment_server::{
    DeploymentServer, DeploymentServerConfig, DEPLOYMENT_SERVER_ID,
};
use autopilot::device_manager::{
    device_manager_beside, DeviceManager, DeviceManagerConfig, TypeRule, DEVICE_MANAGER_ID,
};
use autopilot::filesync::FilesyncLimits;
use autopilot::health::HealthPolicy;
use autopilot::machine_gate::{Drained, GateFuture, MachineGate};
use autopilot::repair_limits::RepairLimits;
use autopilot::watchdog::{WatchdogConfig, WatchdogService, WATCHDOG_ID};
use coordination::AnyStore;
use libactor::{Node, ProcessRef};
use master::master::{AgentDirectory, Master, Principals};
use tokio::sync::watch;

use crate::duration_flag::{between, Seconds};

/// Files the deployment server transfers at once.
pub const DEFAULT_MAX_TRANSFERS: usize = 8;

/// How long a drain waits for a machine's tasks to end before the repair goes ahead anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The master as the device manager's gate: drains and reactivates machines by hostname, and
/// says which agent is registered at a node.
pub struct MasterGate {
    master: ProcessRef<Master>,
    directory: AgentDirectory,
    principals: Principals,
    timeout: Duration,
}

impl MasterGate {
    /// Drains through `master`, waiting at most `timeout` for tasks to end.
    pub async fn new(
        master: ProcessRef<Master>,
        timeout: Duration,
    ) -> Result<MasterGate, libactor::ProcessGone> {
        let (directory, principals) = master
            .call(|m, _| (m.agent_directory(), m.principals()))
            .await?;
        Ok(MasterGate {
            master,
            directory,
            principals,
            timeout,
        })
    }
}

impl MachineGate for MasterGate {
    fn drain(
        &self,
        hostname: &str,
        kill_tasks: bool,
        reason: &str,
    ) -> GateFuture<Result<Drained, String>> {
        let master = self.master.clone();
        let timeout = self.timeout;
        let (hostname, reason) = (hostname.to_owned(), reason.to_owned());
        Box::pin(async move {
            let settled = master
                .call(move |m, ctx| m.drain_machine(ctx, &hostname, kill_tasks, &reason))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(timeout, settled).await {
                Ok(Ok(outcome)) => Ok(Drained {
                    tasks_killed: outcome.tasks_killed,
                }),
                Ok(Err(_)) => Err("the master stopped".into()),
                Err(_) => Err(format!("tasks still running after {timeout:?}")),
            }
        })
    }

    fn agent_at(&self, address: &str) -> Option<String> {
        self.directory.hostname_at(address)
    }

    fn principal_of(&self, pid: &libactor::Upid) -> Option<String> {
        self.principals.of(pid)
    }

    fn reactivate(&self, hostname: &str) {
        let hostname = hostname.to_owned();
        self.master
            .dispatch(move |m, ctx| m.reactivate_machine(ctx, &hostname));
    }
}

/// How the device manager decides, as flags; each left out takes the binary's default
/// ([`HealthPolicy::default`] for `keel-master`, quicker ones for the `keel-local` demo).
#[derive(Debug, Clone, clap::Args)]
pub struct AutopilotFlags {
    /// Erroring watchdog reports within the window that make a machine fail (default 3).
    #[arg(long, env = "KEEL_AUTOPILOT_ERROR_THRESHOLD")]
    pub autopilot_error_threshold: Option<u32>,
    /// How far back erroring reports count, in seconds (default 300).
    #[arg(long, env = "KEEL_AUTOPILOT_ERROR_WINDOW_SECONDS", value_parser = between(Duration::ZERO, Duration::from_secs(365 * 86_400)))]
    pub autopilot_error_window_seconds: Option<Seconds>,
    /// How long a repaired machine stays in Probation without errors before it is Healthy
    /// (default 600).
    #[arg(long, env = "KEEL_AUTOPILOT_PROBATION_SECONDS", value_parser = between(Duration::ZERO, Duration::from_secs(365 * 86_400)))]
    pub autopilot_probation_seconds: Option<Seconds>,
    /// After this long without a failure, a machine's next failure starts over with DoNothing
    /// (default one day).
    #[arg(long, env = "KEEL_AUTOPILOT_QUIET_AFTER_SECONDS", value_parser = between(Duration::ZERO, Duration::from_secs(365 * 86_400)))]
    pub autopilot_quiet_after_seconds: Option<Seconds>,
    /// Fraction of machines that may be in repair at once, at least one machine (default 0.05).
    #[arg(long, env = "KEEL_AUTOPILOT_MAX_REPAIR_FRACTION", default_value_t = RepairLimits::default().max_fraction)]
    pub autopilot_max_repair_fraction: f64,
    /// Healthy machines a type keeps at least, `TYPE=N` (repeatable).
    #[arg(
        long = "autopilot-floor",
        env = "KEEL_AUTOPILOT_FLOORS",
        value_delimiter = ','
    )]
    pub autopilot_floors: Vec<String>,
    /// Machine types for new machines by hostname, `PATTERN=TYPE`, or by an attribute of the
    /// agent, `ATTRIBUTE:PATTERN=TYPE` (`rack:r1-*=storage`), with `*` wildcards; first match
    /// wins (repeatable; unmatched machines keep the type their agent declares).
    #[arg(
        long = "autopilot-type-rule",
        env = "KEEL_AUTOPILOT_TYPE_RULES",
        value_delimiter = ','
    )]
    pub autopilot_type_rules: Vec<String>,
    /// New machines stay in Probation (not offered) for the probation period before they are
    /// Healthy.
    #[arg(long, env = "KEEL_AUTOPILOT_BURN_IN")]
    pub autopilot_burn_in: bool,
    /// How long a rollout's scale unit may take to be Healthy before the rollout rolls back,
    /// in seconds (default 3600).
    #[arg(long, env = "KEEL_AUTOPILOT_UNIT_TIMEOUT_SECONDS", value_parser = between(Duration::ZERO, Duration::from_secs(365 * 86_400)))]
    pub autopilot_unit_timeout_seconds: Option<Seconds>,
}

impl AutopilotFlags {
    /// The device manager's configuration (flags left out take `defaults`), or which flag is
    /// wrong.
    pub fn config(&self, defaults: &HealthPolicy) -> Result<DeviceManagerConfig, String> {
        let threshold = self
            .autopilot_error_threshold
            .unwrap_or(defaults.error_threshold);
        if threshold == 0 {
            return Err("--autopilot-error-threshold must be at least 1".into());
        }
        let fraction = self.autopilot_max_repair_fraction;
        if !(fraction.is_finite() && (0.0..=1.0).contains(&fraction)) {
            return Err("--autopilot-max-repair-fraction must be between 0 and 1".into());
        }
        let mut floors = std::collections::HashMap::new();
        for floor in &self.autopilot_floors {
            let parsed = floor
                .split_once('=')
                .and_then(|(t, n)| Some((t.trim().to_owned(), n.trim().parse::<usize>().ok()?)));
            let Some((machine_type, n)) = parsed else {
                return Err(format!("--autopilot-floor {floor:?}: expected TYPE=N"));
            };
            floors.insert(machine_type, n);
        }
        Ok(DeviceManagerConfig {
            health: HealthPolicy {
                error_threshold: threshold,
                error_window: self
                    .autopilot_error_window_seconds
                    .map_or(defaults.error_window, |s| s.0),
                probation: self
                    .autopilot_probation_seconds
                    .map_or(defaults.probation, |s| s.0),
                quiet_after: self
                    .autopilot_quiet_after_seconds
                    .map_or(defaults.quiet_after, |s| s.0),
            },
            limits: RepairLimits {
                max_fraction: fraction,
                floors,
            },
            type_rules: self
                .autopilot_type_rules
                .iter()
                .map(|r| r.parse::<TypeRule>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--autopilot-type-rule {e}"))?,
            burn_in: self.autopilot_burn_in,
            unit_timeout: self
                .autopilot_unit_timeout_seconds
                .map_or(autopilot::device_manager::DEFAULT_UNIT_TIMEOUT, |s| s.0),
            ..Default::default()
        })
    }
}

/// Why the device manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum AutopilotError {
    /// Its ground truth could not be read.
    #[error("cannot recover the device manager's ground truth: {0}")]
    Recover(String),
    /// The process could not start.
    #[error("cannot start the device manager: {0}")]
    Spawn(#[from] libactor::SpawnError),
}

/// A device manager running beside a master.
pub struct DeviceManagerHandle {
    /// The process.
    pub process: ProcessRef<DeviceManager>,
    /// Resolves with why once it can no longer write its ground truth (another leader did).
    pub failure: watch::Receiver<Option<String>>,
}

/// Recovers the ground truth from `store` (memory only without one) and spawns the device
/// manager on `node`, beside `master` (which drains the machines it repairs), with the
/// deployment server keeping its files in `deployment_dir`, the collection service and the
/// cockpit (`/cockpit`).
pub async fn spawn_device_manager(
    node: &Node,
    master: ProcessRef<Master>,
    store: Option<AnyStore>,
    mut config: DeviceManagerConfig,
    deployment_dir: PathBuf,
    collector: CollectorConfig,
) -> Result<DeviceManagerHandle, AutopilotError> {
    let server = DeploymentServer::new(DeploymentServerConfig {
        dir: deployment_dir.clone(),
        max_transfers: DEFAULT_MAX_TRANSFERS,
        operators: config.operators.clone(),
    })
    .map_err(|e| {
        AutopilotError::Recover(format!("deployment dir {}: {e}", deployment_dir.display()))
    })?;
    let server = node.spawn_ref(DEPLOYMENT_SERVER_ID, server)?;
    config.deployment_dir = Some(deployment_dir);
    let recovered = match &store {
        Some(store) => autopilot::ground_truth::recover(store)
            .await
            .map_err(|e| AutopilotError::Recover(e.to_string()))?,
        None => Default::default(),
    };
    let gate = MasterGate::new(master, DRAIN_TIMEOUT)
        .await
        .map_err(|e| AutopilotError::Recover(format!("the master: {e}")))?;
    let dm = DeviceManager::new(config, store.map(Arc::new), recovered)
        .with_gate(Arc::new(gate))
        .with_deployment_server(server);
    let failure = dm.failure();
    let process = node.spawn_ref(DEVICE_MANAGER_ID, dm)?;
    node.spawn(COLLECTOR_ID, Collector::new(collector, process.clone()))?;
    node.spawn(COCKPIT_ID, Cockpit)?;
    Ok(DeviceManagerHandle { process, failure })
}

/// An agent's Autopilot satellites: the watchdog service and the application manager.
pub struct Satellites {
    /// The watchdog service.
    pub watchdogs: ProcessRef<WatchdogService>,
    /// The application manager.
    pub apps: ProcessRef<AppManager>,
}

impl Satellites {
    /// Spawns them on the agent's `node`, reporting to the device manager beside `master`;
    /// `watchdogs` says what to watch (its device manager is set here).
    pub fn spawn(
        node: &Node,
        master: &libactor::Upid,
        mut watchdogs: WatchdogConfig,
        filesync: FilesyncLimits,
    ) -> Result<Satellites, AutopilotError> {
        let device_manager =
            device_manager_beside(master).map_err(|e| AutopilotError::Recover(e.to_string()))?;
        watchdogs.device_manager = device_manager.clone();
        let apps = AppManagerConfig {
            hostname: watchdogs.hostname.clone(),
            work_dir: watchdogs.work_dir.clone(),
            device_manager,
            filesync,
            restart: Default::default(),
        };
        Ok(Satellites {
            watchdogs: node.spawn_ref(WATCHDOG_ID, WatchdogService::new(watchdogs))?,
            apps: node.spawn_ref(APP_MANAGER_ID, AppManager::new(apps))?,
        })
    }

    /// Reports to the device manager beside a new leading master from now on.
    pub fn follow(&self, leader: &libactor::Upid) {
        let Ok(dm) = device_manager_beside(leader) else {
            return;
        };
        let to = dm.clone();
        self.watchdogs
            .dispatch(move |w, ctx| w.set_device_manager(ctx, to));
        self.apps
            .dispatch(move |a, ctx| a.set_device_manager(ctx, dm));
    }
}
