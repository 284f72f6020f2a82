//! The agent process (`slave(N)`): registers with the master, runs the tasks it is sent in
//! sandboxes under the work dir, and reports every state change through the status update
//! manager.
//!
//! Handles:
//! - from the master: `SlaveRegisteredMessage`, `SlaveReregisteredMessage`,
//!   `PingSlaveMessage` (→ `PongSlaveMessage`), `RunTaskMessage`, `KillTaskMessage`,
//!   `ShutdownFrameworkMessage`, `FrameworkToExecutorMessage`,
//!   `StatusUpdateAcknowledgementMessage` (→ the status update manager and the executor),
//!   `ReconcileTasksMessage` (tasks it does not know → LOST), `ShutdownMessage`;
//! - from custom executors: `RegisterExecutorMessage` (→ `ExecutorRegisteredMessage`, then the
//!   queued `RunTaskMessage`s), `ReregisterExecutorMessage` (a recovered executor answering
//!   `ReconnectExecutorMessage`; → `ExecutorReregisteredMessage`), `StatusUpdateMessage`,
//!   `ExecutorToFrameworkMessage`.
//!
//! Sends: `RegisterSlaveMessage` / `ReregisterSlaveMessage` (retried with backoff until
//! answered), `ExitedExecutorMessage` and `ExecutorToFrameworkMessage` to the master; status
//! updates go out through the [`StatusUpdateManager`], at least once and in order per task.
//!
//! Registration: Disconnected → Registering → Registered. A broken connection to the master, or
//! no ping from it for [`MASTER_PING_TIMEOUT`], sends the agent back to Registering, with its id
//! and its live tasks, so that a restarted master learns them again.
//!
//! Checkpointing and recovery (`recovery`): executors, tasks and the agent's id are written under
//! `{work_dir}/meta` as they change; a restarted agent with the same work dir takes back the
//! executors still running and re-registers under its id.
//!
//! Route: `GET /slave(N)/state`: the agent's id, resources, frameworks, executors and tasks.
//!
//! Where the rest lives: `registration` (with the master, and its pings), `launch`
//! (fetching, containers, executors), `termination` (an executor's end → its tasks' last
//! states), `shutdown` (kills and shutdowns), `health` (health checks), `recovery`
//! (checkpoints), `routes` (HTTP).

use protos::{IdText, IllegalTaskMove};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use authentication::Authenticatee;

use libactor::metrics::{Counter, ProcessMetrics};
use libactor::{Context, Node, Process, ProcessRef, SpawnError, Timer, Upid};
use protos::internal::{
    ExecutorRegisteredMessage, ExecutorToFrameworkMessage, FrameworkToExecutorMessage,
    RegisterExecutorMessage, RunTaskGroupMessage, RunTaskMessage, ShutdownExecutorMessage,
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::v1::task_status::{Reason, Source};
use protos::v1::{
    AgentId, Attribute, CommandInfo, ExecutorId, FrameworkId, FrameworkInfo, TaskGroupInfo, TaskId,
    TaskState, TaskStatus,
};
use resources::Resources;

use crate::checkpoint::MetaDir;
use crate::containerizer::launcher::Launcher;
use crate::containerizer::{self, ChosenContainerizer, ContainerError, ContainerizerConfig};
use crate::executor::{sandbox_path, AgentTask, Delivery, Executor, ExecutorKind, ExecutorState};
use crate::executor_reaper;
use crate::fetcher::cache::DEFAULT_CACHE_BYTES;
use crate::fetcher::Fetcher;
use crate::files::Files;
use crate::monitor;
use crate::sandbox_owner;
use crate::status_update_manager::StatusUpdateManager;

mod gauges;
mod gc;
mod health;
mod launch;
mod operator_api;
mod recovery;
mod registration;
mod routes;
mod shutdown;
mod termination;

pub use health::TaskHealth;
use recovery::Checkpointed;

pub use protos::{RegistrationBackoff, REGISTRATION_BACKOFF_MAX, REGISTRATION_BACKOFF_MIN};
/// How long a custom executor has to register before it is killed (Mesos: 1 min).
pub const EXECUTOR_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a recovered custom executor has to answer `ReconnectExecutorMessage` (Mesos's
/// `--executor_reregistration_timeout`: 2 s; longer here for executors on a loaded machine).
pub const EXECUTOR_REREGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a custom executor has to exit after `ShutdownExecutorMessage` (Mesos: 5 s).
pub const EXECUTOR_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Tasks one agent runs at once; more are dropped with a reason.
pub const MAX_TASKS_PER_AGENT: usize = 100_000;
/// The master pings every 15 s and gives up after 5 misses; the agent waits as long.
pub const MASTER_PING_TIMEOUT: Duration = Duration::from_secs(75);

/// What an agent needs to start.
#[derive(Debug, Clone)]
pub struct SlaveConfig {
    /// The master to register with.
    pub master: Upid,
    /// Where sandboxes live.
    pub work_dir: PathBuf,
    /// What the agent offers.
    pub resources: Resources,
    /// Its attributes.
    pub attributes: Vec<Attribute>,
    /// The hostname it reports.
    pub hostname: String,
    /// What it authenticates to the master with (`--credential`); none: it does not.
    pub credential: Option<authentication::Credential>,
    /// How it isolates executors (`--isolation`, `--cgroups_root`, `--cgroups_enable_cfs`).
    pub containerizer: ContainerizerConfig,
    /// When finished executors' sandboxes are removed (`--gc_delay`, `--gc_disk_headroom`,
    /// `--disk_watch_interval`).
    pub gc: crate::sandbox_gc::GcPolicy,
    /// How long without a ping from the master before the agent registers again
    /// ([`MASTER_PING_TIMEOUT`] unless the master pings more often).
    pub master_ping_timeout: Duration,
    /// How long executors wait for a dead agent to come back before they are ended
    /// (`--recovery_timeout`, by the [`crate::executor_reaper`]); `None`: no reaper (an
    /// agent embedded in a process that outlives it, as `keel-local`'s are).
    pub executor_recovery_timeout: Option<Duration>,
    /// On a secure agent, what issues custom executors their certificates (each is written
    /// into its sandbox and named by `KEEL_TLS_DIR`); `None` on an insecure one.
    pub executor_tls: Option<std::sync::Arc<crate::executor_tls::ExecutorIssuer>>,
    /// Where local fetcher URIs may point (`--fetcher-allowed-paths`); `None`: anywhere.
    pub fetcher_allowed_paths: Option<Vec<PathBuf>>,
    /// Run each task as its user (`CommandInfo.user`, else `FrameworkInfo.user`) when that is
    /// not the agent's own (Mesos's `--switch_user`); off, tasks run as the agent's user.
    pub switch_user: bool,
    /// Who may read which user's sandboxes through `/files` (`--acls` `access_sandboxes`).
    pub acls: authentication::acls::Acls,
    /// Where the agent's helper programs are (`--launcher-dir`, Mesos's `--launcher_dir`):
    /// [`DEFAULT_EXECUTOR`] runs task groups given the default executor.
    pub launcher_dir: PathBuf,
}

/// The program, in [`SlaveConfig::launcher_dir`], that runs a task group whose executor is
/// `DEFAULT` (Mesos's `mesos-default-executor`).
pub const DEFAULT_EXECUTOR: &str = "keel-default-executor";

/// Where Keel's binaries are when the running program is one of them: the directory of the
/// running executable, or its parent when that is cargo's `deps` (a test binary).
pub fn default_launcher_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    match (dir.file_name(), dir.parent()) {
        (Some(name), Some(parent)) if name == "deps" => parent.to_path_buf(),
        _ => dir,
    }
}

/// Default `--recovery_timeout` (Mesos: 15 min).
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum SlaveError {
    /// Its processes could not be spawned.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The isolation it was asked for is not available.
    #[error(transparent)]
    Containerizer(#[from] ContainerError),
    /// The key of its executors' tokens could not be read or made.
    #[error("cannot keep the executors' token key in the meta directory: {0}")]
    ExecutorTokens(std::io::Error),
}

/// Where the agent stands with the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Not registered and not trying (a registration is scheduled).
    Disconnected,
    /// A registration is out and not answered yet.
    Registering,
    /// The master knows the agent.
    Registered,
}

struct FrameworkRecord {
    info: FrameworkInfo,
    /// The scheduler's pid as the master gave it.
    scheduler: String,
    executors: HashMap<String, Executor>,
    /// The master shut it down: once its executors are gone, so are its updates.
    shut_down: bool,
}

struct SlaveMetrics {
    tasks_launched: Counter,
    tasks_finished: Counter,
    tasks_failed: Counter,
    tasks_killed: Counter,
    tasks_lost: Counter,
    executors_launched: Counter,
    executors_terminated: Counter,
    executors_exited: Counter,
    invalid_messages: Counter,
    master_ping_timeouts: Counter,
    task_state_moves_refused: Counter,
    container_launch_errors: Counter,
    container_limitations: Counter,
    orphans_destroyed: Counter,
    fetch_failures: Counter,
    checkpoint_failures: Counter,
    executors_recovered: Counter,
    launches_ignored: Counter,
}

/// The agent process.
pub struct Slave {
    config: SlaveConfig,
    sum: ProcessRef<StatusUpdateManager>,
    id: Option<String>,
    registration: Registration,
    backoff: RegistrationBackoff,
    /// A ping came since the last check.
    pinged: bool,
    /// The one pending check for the master's pings (a new registration replaces it).
    ping_check: Option<Timer>,
    frameworks: HashMap<String, FrameworkRecord>,
    next_run: u64,
    /// Run numbers up to this one are checkpointed as used (see `recovery::RUN_RESERVATION`).
    runs_reserved: u64,
    /// `{work_dir}/meta`.
    meta: MetaDir,
    /// What an earlier run left, taken back when the process starts.
    checkpointed: Option<Checkpointed>,
    /// Ends the executors if this process dies and no new run comes back in time.
    reaper: Option<executor_reaper::Reaper>,
    authenticatee: Option<Authenticatee>,
    metrics: ProcessMetrics<SlaveMetrics>,
    containerizer: ChosenContainerizer,
    /// Starts containers off the actor thread and holds every live one.
    launcher: Launcher,
    fetcher: Fetcher,
    /// On a secure agent, what gives HTTP executors their tokens (see [`crate::executor_api`]).
    executor_tokens: Option<crate::executor_api::token::ExecutorTokens>,
    /// Mesos's `slave/*` gauges, once initialized.
    gauges: Option<gauges::AgentGauges>,
    /// Finished sandboxes waiting for removal.
    gc: gc::Collector,
    /// Each task's terminal update not yet acknowledged, by (framework, task): its executor
    /// may be gone, but the agent still reports the task when it (re-)registers.
    unacknowledged_ends: BTreeMap<(String, String), StatusUpdate>,
    /// The flags the agent's daemon runs with, by name, as `GET_FLAGS` and `/flags` list them
    /// (empty for an agent run in-process).
    flags: Vec<(String, String)>,
    /// Told when the master shuts this agent down: its daemon then exits, as Mesos's agent
    /// does, for a supervisor to start it again as a new agent.
    shut_down: Arc<tokio::sync::Notify>,
}

/// (framework, task) of an update.
fn task_key(update: &StatusUpdate) -> Option<(String, String)> {
    let framework = update.framework_id.as_ref()?.value.clone();
    let task = update.status.as_ref()?.task_id.as_ref()?.value.clone();
    Some((framework, task))
}

impl Slave {
    /// Spawns the agent (`slave(N)`) and its status update manager on `node`, with the
    /// containerizer its config asks for.
    pub fn spawn(node: &Node, config: SlaveConfig) -> Result<ProcessRef<Slave>, SlaveError> {
        let containerizer =
            containerizer::create(&config.containerizer, &agent_key(&config.work_dir))?;
        tracing::info!(isolation = %containerizer.description, "containerizer chosen");
        let meta = MetaDir::new(&config.work_dir);
        let checkpointed = Checkpointed::read(&meta);
        let manager = StatusUpdateManager::recover(&meta.status_updates()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "status update log unusable; updates will not survive a restart");
            StatusUpdateManager::new()
        });
        let unacknowledged_ends = manager
            .pending_terminal()
            .into_iter()
            .filter_map(|u| Some((task_key(&u)?, u)))
            .collect();
        let sum = node.spawn_ref(&node.generate_id("status-update-manager"), manager)?;
        let authenticatee = config.credential.clone().map(Authenticatee::new);
        // `/files/read` as in Mesos; a second agent on the same node gets `files(N)`.
        let files_root = config.work_dir.join("slaves");
        let files = || Files::new(files_root.clone(), config.acls.clone());
        let sandboxes = crate::files::SandboxFiles::new(files_root.clone(), config.acls.clone());
        match node.spawn("files", files()) {
            Err(SpawnError::DuplicateId(_)) => {
                node.spawn(&node.generate_id("files"), files())?;
            }
            other => {
                other?;
            }
        }
        let fetcher = Fetcher::new(config.work_dir.join("fetch-cache"), DEFAULT_CACHE_BYTES)
            .with_allowed_paths(config.fetcher_allowed_paths.clone());
        // A secure agent's HTTP executors prove themselves with a token it gives them.
        let executor_tokens = if node.is_secure() {
            Some(
                crate::executor_api::token::ExecutorTokens::load_or_create(meta.path())
                    .map_err(SlaveError::ExecutorTokens)?,
            )
        } else {
            None
        };
        let slave = node.spawn_ref(
            &node.generate_id("slave"),
            Slave {
                executor_tokens: executor_tokens.clone(),
                authenticatee,
                config,
                sum,
                id: None,
                registration: Registration::Disconnected,
                backoff: RegistrationBackoff::default(),
                pinged: false,
                ping_check: None,
                frameworks: HashMap::new(),
                next_run: 0,
                runs_reserved: 0,
                meta,
                checkpointed: Some(checkpointed),
                reaper: None,
                metrics: ProcessMetrics::default(),
                launcher: Launcher::new(
                    containerizer.containerizer.clone(),
                    Launcher::default_slots(),
                ),
                containerizer,
                fetcher,
                gauges: None,
                gc: gc::Collector::default(),
                unacknowledged_ends,
                flags: Vec::new(),
                shut_down: Arc::default(),
            },
        )?;
        crate::executor_api::ExecutorApi::spawn(node, slave.clone(), executor_tokens, sandboxes)?;
        Ok(slave)
    }

    /// Records the flags the agent's daemon runs with, as `GET_FLAGS` and `/flags` report
    /// them.
    pub fn set_flags(&mut self, _ctx: &mut Context<Self>, flags: Vec<(String, String)>) {
        self.flags = flags;
    }

    /// What is told when the master shuts this agent down (once; a waiter that comes later
    /// still hears it).
    pub fn shut_down_by_master(&self) -> Arc<tokio::sync::Notify> {
        self.shut_down.clone()
    }

    /// Which isolation the agent uses, and why (`cgroups v1 (…) under …`, `posix (…)`).
    pub fn isolation(&self) -> &str {
        &self.containerizer.description
    }

    /// The agent's id, once the master has given it one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Where the agent stands with the master.
    pub fn registration(&self) -> Registration {
        self.registration
    }

    /// Tasks the agent runs that have not reached a terminal state.
    pub fn live_tasks(&self) -> usize {
        self.frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .map(|e| e.live_tasks().count())
            .sum()
    }

    /// Points the agent at another master (after a failover) and registers with it.
    pub fn set_master(&mut self, ctx: &mut Context<Self>, master: Upid) {
        ctx.unlink(&self.config.master);
        self.config.master = master;
        if let Some(auth) = self.authenticatee.as_mut() {
            auth.reset();
        }
        self.registration = Registration::Disconnected;
        self.backoff.restart();
        self.register(ctx);
    }

    /// Logs and counts a task-state move the table refused (the task keeps its state).
    fn refuse_move(&self, framework: &str, task: &str, refused: IllegalTaskMove) {
        self.metrics.inc(|m| &m.task_state_moves_refused);
        tracing::warn!(%framework, %task, "task state kept: {refused}");
    }

    // ---- registration ----

    // ---- launching ----

    /// Whether a launch from `from` may run: it comes from the master (see
    /// [`Slave::sent_by_master`]) and reaches a registered agent.
    fn launch_admitted(&mut self, ctx: &Context<Self>, from: &Upid, task: &str) -> bool {
        if !self.sent_by_master(ctx, from) {
            return false;
        }
        if self.registration != Registration::Registered {
            // As Mesos's agent: a launch that reaches an agent between registrations is not
            // run. The agent's next (re-)registration does not list it, and the master
            // reports it LOST to its framework, which may launch it again; running it too
            // would start it twice.
            self.metrics.inc(|m| &m.launches_ignored);
            tracing::warn!(%task, "ignoring a launch that arrived while not registered");
            return false;
        }
        true
    }

    /// The record of a framework launching here (created on its first launch), with its
    /// scheduler's pid as the latest launch names it.
    fn launching_framework(&mut self, framework: &str, info: Option<FrameworkInfo>, pid: String) {
        let record = self
            .frameworks
            .entry(framework.to_owned())
            .or_insert_with(|| FrameworkRecord {
                info: info.unwrap_or_default(),
                scheduler: pid.clone(),
                executors: HashMap::new(),
                shut_down: false,
            });
        record.scheduler = pid;
    }

    fn run_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskMessage) {
        let task = msg.task.as_ref().map(|t| t.task_id.text()).unwrap_or("");
        if !self.launch_admitted(ctx, &from, task) {
            return;
        }
        let framework_id = msg.framework_id.text().to_owned();
        let Some(task) = msg.task else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        let task_id = task.task_id.text().to_owned();
        if framework_id.is_empty() || task_id.is_empty() {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        }
        if self.live_tasks() >= MAX_TASKS_PER_AGENT {
            self.report(
                ctx,
                &framework_id,
                &task_id,
                &task_id,
                TaskState::TaskDropped,
                Reason::ContainerLaunchFailed,
                format!("agent already runs {MAX_TASKS_PER_AGENT} tasks"),
            );
            return;
        }
        self.launching_framework(&framework_id, msg.framework, msg.pid);
        self.metrics.inc(|m| &m.tasks_launched);
        let agent_task = AgentTask::staging(task.clone(), None);
        match task.executor.clone() {
            None => self.launch_command(ctx, &framework_id, agent_task),
            Some(info) => self.launch_on_executor(ctx, &framework_id, info, vec![agent_task]),
        }
    }

    /// A task group (LAUNCH_GROUP): its tasks go to one executor together, the framework's
    /// or the agent's default executor (`keel-default-executor` in `--launcher-dir`).
    fn run_task_group(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskGroupMessage) {
        let tasks = msg.task_group.map(|g| g.tasks).unwrap_or_default();
        let first = tasks.first().map(|t| t.task_id.text()).unwrap_or("");
        if !self.launch_admitted(ctx, &from, first) {
            return;
        }
        let framework_id = msg.framework_id.text().to_owned();
        let group = first.to_owned();
        let Some(mut executor) = msg.executor else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        if framework_id.is_empty()
            || group.is_empty()
            || tasks.iter().any(|t| t.task_id.text().is_empty())
        {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        }
        let executor_id = executor.executor_id.text().to_owned();
        if self.live_tasks() + tasks.len() > MAX_TASKS_PER_AGENT {
            for task in &tasks {
                self.report(
                    ctx,
                    &framework_id,
                    &executor_id,
                    task.task_id.text(),
                    TaskState::TaskDropped,
                    Reason::ContainerLaunchFailed,
                    format!("agent already runs {MAX_TASKS_PER_AGENT} tasks"),
                );
            }
            return;
        }
        self.launching_framework(&framework_id, msg.framework, msg.pid);
        self.metrics.add(|m| &m.tasks_launched, tasks.len() as u64);
        if executor.r#type == protos::v1::executor_info::Type::Default as i32 {
            executor.command = Some(self.default_executor_command());
        }
        let tasks = tasks
            .into_iter()
            .map(|task| AgentTask::staging(task, Some(group.clone())))
            .collect();
        self.launch_on_executor(ctx, &framework_id, executor, tasks);
    }

    /// The command that runs the agent's default executor.
    fn default_executor_command(&self) -> CommandInfo {
        CommandInfo {
            value: self
                .config
                .launcher_dir
                .join(DEFAULT_EXECUTOR)
                .display()
                .to_string(),
            shell: Some(false),
            ..Default::default()
        }
    }

    fn sandbox(&mut self, framework: &str, executor: &str) -> (PathBuf, u64) {
        let run = self.next_run();
        let agent = self.id.as_deref().unwrap_or("unregistered");
        let path = sandbox_path(&self.config.work_dir, agent, framework, executor, run);
        let user = self.frameworks.get(framework).map(|f| f.info.user.as_str());
        if let (Some(dir), Some(user)) = (sandbox_owner::framework_dir(&path), user) {
            if let Err(e) = sandbox_owner::record(dir, user) {
                tracing::warn!(%framework, error = %e, "cannot record whose sandboxes these are; /files serves them only to principals any user's rules admit");
            }
        }
        (path, run)
    }

    fn insert_executor(&mut self, framework: &str, executor: Executor) {
        if let Some(f) = self.frameworks.get_mut(framework) {
            f.executors.insert(executor.id.clone(), executor);
        }
    }

    fn executor(&self, framework: &str, executor: &str) -> Option<&Executor> {
        self.frameworks.get(framework)?.executors.get(executor)
    }

    fn executor_mut(&mut self, framework: &str, executor: &str) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(framework)?
            .executors
            .get_mut(executor)
    }

    /// The executor holding `task` in `framework`.
    fn executor_of(&mut self, framework: &str, task: &str) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(framework)?
            .executors
            .values_mut()
            .find(|e| e.tasks.contains_key(task))
    }

    /// Hands `executor` (registered at `pid`) a task or a task group.
    fn deliver(
        &self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor: &str,
        pid: &Upid,
        delivery: Delivery,
    ) {
        let Some(f) = self.frameworks.get(framework) else {
            return;
        };
        let framework_id = Some(FrameworkId {
            value: framework.to_owned(),
        });
        match delivery {
            Delivery::Task(task) => ctx.send(
                pid,
                RunTaskMessage {
                    framework_id,
                    framework: Some(f.info.clone()),
                    pid: f.scheduler.clone(),
                    task: Some(*task),
                },
            ),
            Delivery::Group(tasks) => ctx.send(
                pid,
                RunTaskGroupMessage {
                    framework_id,
                    framework: Some(f.info.clone()),
                    pid: f.scheduler.clone(),
                    executor: f.executors.get(executor).and_then(|e| e.info.clone()),
                    task_group: Some(TaskGroupInfo { tasks }),
                },
            ),
        }
    }

    // ---- executors ----

    fn register_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: RegisterExecutorMessage,
    ) {
        let framework = msg.framework_id.text().to_owned();
        let executor_id = msg.executor_id.text().to_owned();
        if !self.sent_by_executor(ctx, &framework, &executor_id) {
            return;
        }
        let agent_info = self.agent_info();
        let framework_info = self.frameworks.get(&framework).map(|f| f.info.clone());
        let Some(executor) = self.executor_mut(&framework, &executor_id) else {
            tracing::warn!(%from, %framework, executor = %executor_id, "registration from an unknown executor; telling it to shut down");
            ctx.send(
                &from,
                ShutdownExecutorMessage {
                    executor_id: Some(ExecutorId { value: executor_id }),
                    framework_id: Some(FrameworkId { value: framework }),
                    slave_id: None,
                },
            );
            return;
        };
        // A recovered executor the agent waits for may register afresh: an HTTP executor
        // subscribes again after its agent restarted, as Mesos's do.
        let recovered = executor.state == ExecutorState::Reconnecting;
        if executor.kind != ExecutorKind::Custom
            || !matches!(
                executor.state,
                ExecutorState::Launching | ExecutorState::Reconnecting
            )
        {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        }
        executor.state = ExecutorState::Running;
        executor.pid = Some(from.clone());
        let run_checkpoint = (framework.clone(), executor_id.clone());
        let queued = executor.take_undelivered();
        let info = executor.info.clone();
        tracing::info!(%framework, executor = %executor_id, pid = %from, recovered, "executor registered");
        ctx.link(&from);
        ctx.send(
            &from,
            ExecutorRegisteredMessage {
                executor_info: info,
                framework_id: Some(FrameworkId {
                    value: framework.clone(),
                }),
                framework_info,
                slave_id: self.id.clone().map(|value| AgentId { value }),
                slave_info: Some(agent_info),
            },
        );
        // A restarted agent asks it back at this pid (not written on a full disk: the
        // launch's checkpoint stands, and the executor is asked at its launch-time pid).
        let _ = self.checkpoint_executor(&run_checkpoint.0, &run_checkpoint.1);
        for delivery in queued {
            self.deliver(ctx, &framework, &executor_id, &from, delivery);
        }
    }

    /// A status update from a custom executor: recorded and handed to the status update
    /// manager.
    fn executor_update(&mut self, ctx: &mut Context<Self>, from: Upid, msg: StatusUpdateMessage) {
        let Some(mut update) = msg.update else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        let framework = update.framework_id.text().to_owned();
        let Some(status) = update.status.as_mut() else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let Some(executor) = self.executor_of(&framework, &task_id) else {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, %framework, task = %task_id, "status update for a task this agent does not hold");
            return;
        };
        if executor.pid.as_ref() != Some(&from) {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, %framework, task = %task_id, "status update from a process that is not the task's executor");
            return;
        }
        let executor_id = executor.id.clone();
        if !self.sent_by_executor(ctx, &framework, &executor_id) {
            return;
        }
        let Some(executor) = self.executor_of(&framework, &task_id) else {
            return;
        };
        let refused = executor
            .tasks
            .get_mut(&task_id)
            .and_then(|task| task.state.move_to(state).err());
        if state.is_terminal() {
            executor.update_container();
        }
        if let Some(refused) = refused {
            self.refuse_move(&framework, &task_id, refused);
        }
        status.source = Source::Executor as i32;
        status.agent_id = self.id.clone().map(|value| AgentId { value });
        status.executor_id = Some(ExecutorId {
            value: executor_id.clone(),
        });
        update.slave_id = status.agent_id.clone();
        update.executor_id = status.executor_id.clone();
        self.count_terminal(state);
        self.forward(ctx, update);
    }

    fn count_terminal(&self, state: TaskState) {
        match state {
            TaskState::TaskFinished => self.metrics.inc(|m| &m.tasks_finished),
            TaskState::TaskFailed | TaskState::TaskError => self.metrics.inc(|m| &m.tasks_failed),
            TaskState::TaskKilled => self.metrics.inc(|m| &m.tasks_killed),
            TaskState::TaskLost => self.metrics.inc(|m| &m.tasks_lost),
            _ => {}
        }
    }

    fn forward(&mut self, ctx: &mut Context<Self>, mut update: StatusUpdate) {
        if update.uuid.is_empty() {
            update.uuid = ctx.node().random().uuid().as_bytes().to_vec().into();
        }
        let terminal = update
            .status
            .as_ref()
            .is_some_and(|s| TaskState::try_from(s.state).is_ok_and(|s| s.is_terminal()));
        if terminal {
            if let Some(key) = task_key(&update) {
                self.unacknowledged_ends.insert(key, update.clone());
            }
        }
        self.sum.dispatch(move |sum, ctx| {
            if let Err(e) = sum.update(ctx, update) {
                tracing::warn!(error = %e, "status update refused");
            }
        });
    }

    /// An update the agent itself generates for a task (command tasks, launch failures,
    /// executor exits).
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor: &str,
        task: &str,
        state: TaskState,
        reason: Reason,
        message: String,
    ) {
        let mut healthy = None;
        let mut refused = None;
        if let Some(e) = self.executor_mut(framework, executor) {
            if let Some(t) = e.tasks.get_mut(task) {
                refused = t.state.move_to(state).err();
                healthy = t.healthy;
            }
        }
        if let Some(refused) = refused {
            self.refuse_move(framework, task, refused);
        }
        self.report_status(
            ctx, framework, executor, task, state, reason, message, healthy,
        );
    }

    /// Sends one status update of `task` through the status update manager.
    #[allow(clippy::too_many_arguments)]
    fn report_status(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor: &str,
        task: &str,
        state: TaskState,
        reason: Reason,
        message: String,
        healthy: Option<bool>,
    ) {
        let now = ctx.node().clock().unix_seconds();
        let agent_id = self.id.clone().map(|value| AgentId { value });
        let executor_id = Some(ExecutorId {
            value: executor.to_owned(),
        });
        let with_reason = !matches!(state, TaskState::TaskRunning | TaskState::TaskFinished)
            || reason == Reason::TaskHealthCheckStatusUpdated;
        let status = TaskStatus {
            task_id: Some(TaskId {
                value: task.to_owned(),
            }),
            state: state as i32,
            message,
            source: Source::Executor as i32,
            reason: with_reason.then_some(reason as i32),
            agent_id: agent_id.clone(),
            executor_id: executor_id.clone(),
            timestamp: now,
            healthy,
            ..Default::default()
        };
        self.forward(
            ctx,
            StatusUpdate {
                framework_id: Some(FrameworkId {
                    value: framework.to_owned(),
                }),
                executor_id,
                slave_id: agent_id,
                status: Some(status),
                timestamp: now,
                ..Default::default()
            },
        );
    }

    // ---- kills and shutdowns ----

    // ---- relays and acknowledgements ----

    fn acknowledge(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: StatusUpdateAcknowledgementMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        ctx.send(self.sum.pid(), msg.clone());
        let framework = msg.framework_id.text().to_owned();
        let task = msg.task_id.text().to_owned();
        let key = (framework.clone(), task.clone());
        if self
            .unacknowledged_ends
            .get(&key)
            .is_some_and(|u| u.uuid == msg.uuid)
        {
            self.unacknowledged_ends.remove(&key);
        }
        if let Some(pid) = self
            .executor_of(&framework, &task)
            .and_then(|e| e.pid.clone())
        {
            ctx.send(&pid, msg);
        }
    }

    fn framework_to_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: FrameworkToExecutorMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let framework = msg.framework_id.text().to_owned();
        let executor = msg.executor_id.text().to_owned();
        match self
            .executor(&framework, &executor)
            .and_then(|e| e.pid.clone())
        {
            Some(pid) => ctx.send(&pid, msg),
            None => {
                tracing::debug!(%framework, %executor, "framework message for no running executor dropped")
            }
        }
    }

    fn executor_to_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        mut msg: ExecutorToFrameworkMessage,
    ) {
        let framework = msg.framework_id.text().to_owned();
        let executor = msg.executor_id.text().to_owned();
        if self
            .executor(&framework, &executor)
            .and_then(|e| e.pid.as_ref())
            != Some(&from)
        {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        }
        if !self.sent_by_executor(ctx, &framework, &executor) {
            return;
        }
        msg.slave_id = self.id.clone().map(|value| AgentId { value });
        ctx.send(&self.config.master.clone(), msg);
    }

    // ---- HTTP ----
}

/// This agent's directory name under `--cgroups_root`: stable for a work dir, so that a
/// restarted agent finds the containers its earlier run left, and distinct between agents
/// sharing a machine.
fn agent_key(work_dir: &std::path::Path) -> String {
    let path = std::fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_owned());
    // FNV-1a: stable across runs and builds, unlike std's randomly seeded hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("agent-{hash:016x}")
}

impl Process for Slave {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(SlaveMetrics {
            tasks_launched: m.counter("slave/tasks_launched"),
            tasks_finished: m.counter("slave/tasks_finished"),
            tasks_failed: m.counter("slave/tasks_failed"),
            tasks_killed: m.counter("slave/tasks_killed"),
            tasks_lost: m.counter("slave/tasks_lost"),
            executors_launched: m.counter("slave/executors_launched"),
            executors_terminated: m.counter("slave/executors_terminated"),
            executors_exited: m.counter("slave/executors_exited"),
            invalid_messages: m.counter("slave/invalid_messages"),
            master_ping_timeouts: m.counter("slave/master_ping_timeouts"),
            task_state_moves_refused: m.counter("slave/task_state_moves_refused"),
            container_launch_errors: m.counter("slave/container_launch_errors"),
            container_limitations: m.counter("slave/container_limitations"),
            orphans_destroyed: m.counter("slave/containers_orphans_destroyed"),
            fetch_failures: m.counter("slave/fetch_failures"),
            checkpoint_failures: m.counter("slave/checkpoint_failures"),
            executors_recovered: m.counter("slave/executors_recovered"),
            launches_ignored: m.counter("slave/launches_ignored_unregistered"),
        });
        self.gc.register(m);
        monitor::register_gauges(m, self.launcher.containers());
        self.gauges = Some(gauges::AgentGauges::register(m, ctx.node().clock().clone()));
        let checkpointed = self.checkpointed.take().unwrap_or_default();
        self.recover(ctx, checkpointed);
        self.refresh_gauges(ctx);
        self.start_gc(ctx);
        if let Some(timeout) = self.config.executor_recovery_timeout {
            match executor_reaper::start(
                &self.meta,
                timeout,
                &self.containerizer.containerizer.agent_dirs(),
            ) {
                Ok(reaper) => self.reaper = Some(reaper),
                Err(e) => {
                    tracing::error!(error = %e, "executor reaper not started: executors will outlive this agent")
                }
            }
        }
        ctx.install(Self::registered);
        ctx.install(Self::reregistered);
        ctx.install(Self::reconcile_asked);
        ctx.install(Self::challenged);
        ctx.install(Self::authenticated);
        ctx.install(Self::authentication_failed);
        ctx.install(Self::ping);
        ctx.install(Self::run_task);
        ctx.install(Self::run_task_group);
        ctx.install(Self::kill_task);
        ctx.install(Self::shutdown_framework);
        ctx.install(Self::shutdown_executor);
        ctx.install(Self::shutdown);
        ctx.install(Self::acknowledge);
        ctx.install(Self::framework_to_executor);
        ctx.install(Self::register_executor);
        ctx.install(Self::reregister_executor);
        ctx.install(Self::executor_update);
        ctx.install(Self::executor_to_framework);
        ctx.route("/state", Self::state_json);
        ctx.route("/monitor/statistics", Self::monitor_statistics);
        ctx.route("/flags", Self::flags_json);
        self.register(ctx);
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        if *pid == self.config.master {
            if self.registration == Registration::Registered {
                tracing::warn!(master = %pid, "lost the master; registering again");
                self.disconnected(ctx);
            }
            return;
        }
        // An executor's connection broke: its OS process's exit (which the supervisor sees)
        // settles its tasks; make sure that exit comes.
        for f in self.frameworks.values_mut() {
            for e in f.executors.values_mut() {
                if e.pid.as_ref() == Some(pid) {
                    // Expected of an executor asked to shut down (it is exiting).
                    if e.shutting_down {
                        tracing::info!(executor = %e.id, "an executor shutting down closed its connection");
                    } else {
                        tracing::warn!(executor = %e.id, "lost the connection to an executor; killing it");
                    }
                    e.kill(Duration::ZERO);
                }
            }
        }
    }

    fn finalize(&mut self, _ctx: &mut Context<Self>) {
        for f in self.frameworks.values_mut() {
            for e in f.executors.values_mut() {
                e.kill(Duration::ZERO);
            }
        }
        // The supervisors may not run again (the node may be stopping): destroy here, so that
        // no process or cgroup outlives the agent.
        for (container, e) in self.launcher.stop() {
            tracing::error!(%container, error = %e, "container not destroyed at shutdown");
        }
        if let Some(reaper) = self.reaper.take() {
            reaper.stop();
        }
        self.containerizer.containerizer.shutdown();
    }
}
