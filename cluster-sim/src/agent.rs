//! The simulation's agent: the agent's side of the real protocol, with tasks that run on the
//! clock instead of as OS processes.
//!
//! It does what a Keel (and Mesos) agent does with its master: registers and re-registers with
//! backoff and jitter, answers pings and registers again when they stop, takes launches only
//! while registered and from its master, runs each task once (a repeated `RunTaskMessage` is
//! ignored), sends every task's updates in order through a per-task stream that resends the
//! unacknowledged head until acknowledged, lists running tasks and unacknowledged ends when it
//! re-registers, reports `TASK_LOST` (`REASON_TASK_UNKNOWN`) for tasks the master placed here
//! that never arrived, drops a framework's tasks and updates when the master shuts it down,
//! and follows a new leading master when its detector names one ([`SimAgent::set_master`]).
//!
//! What survives a crash is its [`AgentDisk`] (the checkpoint a real agent keeps in its work
//! dir): its id, its tasks and their update streams. Tasks keep running while it is down, as
//! executors outlive a real agent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libactor::{Context, Process, Upid};
use parking_lot::Mutex;
use protos::internal::{
    KillTaskMessage, PingSlaveMessage, PongSlaveMessage, ReconcileTasksMessage,
    RegisterSlaveMessage, ReregisterSlaveMessage, RunTaskMessage, ShutdownFrameworkMessage,
    SlaveRegisteredMessage, SlaveReregisteredMessage, StatusUpdate,
    StatusUpdateAcknowledgementMessage, StatusUpdateMessage, Task,
};
use protos::v1::task_status::{Reason, Source};
use protos::v1::{AgentId, AgentInfo, FrameworkId, TaskId, TaskState, TaskStatus};
use protos::{IdText, RegistrationBackoff};
use resources::Resources;

use crate::ledger::Ledger;

/// How long without a ping before the agent takes its master for lost (Mesos: 15 s × 5).
pub const PING_TIMEOUT: Duration = Duration::from_secs(75);
/// How often an unacknowledged update is sent again (Mesos's 10 s minimum).
pub const UPDATE_RETRY: Duration = Duration::from_secs(10);

/// What an agent keeps across crashes. Shared between its incarnations by the simulation.
#[derive(Debug, Default)]
pub struct AgentDisk {
    /// The id its master gave it; `None` until it first registered.
    pub id: Option<AgentId>,
    /// Tasks not yet over for good (running, or ended with the end not acknowledged), by
    /// (framework id, task id).
    pub tasks: BTreeMap<(String, String), SimTask>,
}

/// One task on an agent.
#[derive(Debug, Clone)]
pub struct SimTask {
    /// What was launched.
    pub task: Task,
    /// When it finishes by itself, on the clock.
    pub ends_at: Instant,
    /// Its latest state.
    pub state: TaskState,
    /// Updates not yet acknowledged, oldest (the one in flight) first.
    pub updates: VecDeque<StatusUpdate>,
}

/// Where the agent stands with its master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    Registering,
    Registered,
}

/// The agent process.
pub struct SimAgent {
    master: Upid,
    total: Resources,
    disk: Arc<Mutex<AgentDisk>>,
    ledger: Ledger,
    registration: Registration,
    /// The real agent's retry schedule, with the master's advice.
    backoff: RegistrationBackoff,
    /// Bumped at every registration attempt; stale retry timers see it changed.
    attempt: u64,
    last_ping: Instant,
}

impl SimAgent {
    /// An agent offering `total`, registering with `master`, keeping its state on `disk`.
    pub fn new(
        master: Upid,
        total: Resources,
        disk: Arc<Mutex<AgentDisk>>,
        ledger: Ledger,
    ) -> Self {
        SimAgent {
            master,
            total,
            disk,
            ledger,
            registration: Registration::Registering,
            backoff: RegistrationBackoff::default(),
            attempt: 0,
            last_ping: Instant::now(),
        }
    }

    fn id(&self) -> Option<AgentId> {
        self.disk.lock().id.clone()
    }

    fn info(&self, ctx: &Context<Self>) -> AgentInfo {
        AgentInfo {
            id: self.id(),
            hostname: ctx.pid().address().to_owned(),
            resources: self.total.to_proto(),
            ..Default::default()
        }
    }

    /// Registers (or re-registers, with its tasks) now and again after a backoff, until its
    /// master answers.
    fn register(&mut self, ctx: &mut Context<Self>) {
        self.registration = Registration::Registering;
        self.attempt += 1;
        ctx.link(&self.master);
        if self.id().is_some() {
            let tasks = self
                .disk
                .lock()
                .tasks
                .values()
                .map(|t| Task {
                    state: t.state as i32,
                    ..t.task.clone()
                })
                .collect();
            ctx.send(
                &self.master,
                ReregisterSlaveMessage {
                    slave: Some(self.info(ctx)),
                    tasks,
                    version: "simulated".into(),
                    ..Default::default()
                },
            );
        } else {
            ctx.send(
                &self.master,
                RegisterSlaveMessage {
                    slave: Some(self.info(ctx)),
                    version: "simulated".into(),
                },
            );
        }
        // Spread by [0.5, 1.5) from the node's seeded randomness, then doubled.
        let wait = self.backoff.next_wait(ctx.node().random().fraction());
        let attempt = self.attempt;
        ctx.delay(wait, move |a: &mut SimAgent, ctx| {
            if a.attempt == attempt && a.registration == Registration::Registering {
                a.register(ctx);
            }
        });
    }

    /// Follows a new leading master (what the real agent does when its detector names one):
    /// registers with it from the shortest backoff, keeping its tasks.
    pub fn set_master(&mut self, ctx: &mut Context<Self>, master: Upid) {
        if master == self.master {
            return;
        }
        ctx.unlink(&self.master);
        self.master = master;
        self.backoff.restart();
        self.register(ctx);
    }

    fn on_registered(&mut self, ctx: &mut Context<Self>, id: Option<AgentId>, advice: f64) {
        self.backoff.advise(advice);
        if self.registration == Registration::Registered {
            return;
        }
        if let Some(id) = id.filter(|id| !id.value.is_empty()) {
            let mut disk = self.disk.lock();
            if disk.id.is_none() {
                disk.id = Some(id);
            }
        }
        self.registration = Registration::Registered;
        self.backoff.restart();
        self.last_ping = ctx.node().clock().now();
        self.resend_updates(ctx);
    }

    fn registered(&mut self, ctx: &mut Context<Self>, from: Upid, msg: SlaveRegisteredMessage) {
        if from == self.master {
            self.on_registered(ctx, msg.slave_id, msg.registration_backoff_seconds);
        }
    }

    fn reregistered(&mut self, ctx: &mut Context<Self>, from: Upid, msg: SlaveReregisteredMessage) {
        if from != self.master {
            return;
        }
        self.on_registered(ctx, msg.slave_id, msg.registration_backoff_seconds);
        // Every reply's, as the real agent does: a retried re-registration's later reply may
        // name tasks the first did not.
        for reconcile in msg.reconciliations {
            self.reconcile_unlisted(ctx, reconcile);
        }
    }

    /// Tasks the master placed here that this agent does not know never arrived: each is
    /// reported lost, so the master frees it and its framework hears.
    fn reconcile_unlisted(&mut self, ctx: &mut Context<Self>, asked: ReconcileTasksMessage) {
        let framework = asked.framework_id.text().to_owned();
        for status in asked.statuses {
            let task = status.task_id.text().to_owned();
            let key = (framework.clone(), task.clone());
            if task.is_empty() || self.disk.lock().tasks.contains_key(&key) {
                continue;
            }
            self.report_unknown(ctx, &framework, &task);
        }
    }

    /// Reports `task`, which this agent does not run, lost, as a real agent answers for a task
    /// it does not know: through a stream of its own, resent until acknowledged like any
    /// other update. The record also keeps a launch that arrives after all from running a task
    /// its framework was told is lost.
    fn report_unknown(&mut self, ctx: &mut Context<Self>, framework: &str, task: &str) {
        tracing::debug!(agent = %ctx.pid(), %task, "reporting an unknown task lost");
        let key = (framework.to_owned(), task.to_owned());
        if self.disk.lock().tasks.contains_key(&key) {
            return;
        }
        let lost = SimTask {
            task: Task {
                task_id: Some(TaskId {
                    value: task.to_owned(),
                }),
                framework_id: Some(FrameworkId {
                    value: framework.to_owned(),
                }),
                slave_id: self.id(),
                ..Default::default()
            },
            ends_at: ctx.node().clock().now(),
            state: TaskState::TaskStaging,
            updates: VecDeque::new(),
        };
        self.disk.lock().tasks.insert(key.clone(), lost);
        self.transition(ctx, &key, TaskState::TaskLost, Some(Reason::TaskUnknown));
    }

    fn ping(&mut self, ctx: &mut Context<Self>, from: Upid, msg: PingSlaveMessage) {
        if from != self.master {
            return;
        }
        self.last_ping = ctx.node().clock().now();
        self.backoff.advise(msg.registration_backoff_seconds);
        if !msg.connected && self.registration == Registration::Registered {
            // The master no longer counts this agent as registered.
            self.register(ctx);
            return;
        }
        ctx.send(&from, PongSlaveMessage {});
    }

    /// Registers again once pings have stopped for [`PING_TIMEOUT`].
    fn check_pings(&mut self, ctx: &mut Context<Self>) {
        let now = ctx.node().clock().now();
        if self.registration == Registration::Registered
            && now.duration_since(self.last_ping) >= PING_TIMEOUT
        {
            self.register(ctx);
        }
        ctx.delay(PING_TIMEOUT / 3, |a: &mut SimAgent, ctx| a.check_pings(ctx));
    }

    fn run_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskMessage) {
        // Who may send: the master this agent is registered with.
        if from != self.master || self.registration != Registration::Registered {
            return;
        }
        let Some(info) = msg.task else { return };
        let framework = msg.framework_id.text().to_owned();
        let task = info.task_id.text().to_owned();
        let key = (framework.clone(), task.clone());
        let resources = Resources::from_proto(&info.resources).unwrap_or_default();
        let runtime = std::str::from_utf8(&info.data)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1);
        {
            let disk = self.disk.lock();
            if disk.tasks.contains_key(&key) {
                return;
            }
            let mut used = resources.clone();
            for t in disk.tasks.values().filter(|t| !t.state.is_terminal()) {
                let held = Resources::from_proto(&t.task.resources).unwrap_or_default();
                let _ = used.add(&held);
            }
            if !self.total.contains(&used) {
                self.ledger.violation(format!(
                    "agent {} given task {task}: its tasks would hold {used}, more than its {}",
                    ctx.pid(),
                    self.total
                ));
            }
        }
        self.ledger.launched(&task, ctx.pid().address());
        let now = ctx.node().clock().now();
        let sim_task = SimTask {
            task: Task {
                name: info.name.clone(),
                task_id: info.task_id.clone(),
                framework_id: msg.framework_id.clone(),
                slave_id: self.id(),
                state: TaskState::TaskRunning as i32,
                resources: info.resources.clone(),
                ..Default::default()
            },
            ends_at: now + Duration::from_secs(runtime),
            state: TaskState::TaskStaging,
            updates: VecDeque::new(),
        };
        self.disk.lock().tasks.insert(key.clone(), sim_task);
        self.transition(ctx, &key, TaskState::TaskRunning, None);
        self.schedule_end(ctx, key, Duration::from_secs(runtime));
    }

    fn schedule_end(&self, ctx: &mut Context<Self>, key: (String, String), after: Duration) {
        ctx.delay(after, move |a: &mut SimAgent, ctx| {
            a.transition(ctx, &key, TaskState::TaskFinished, None);
        });
    }

    /// Moves a live task to `state` and queues the update (sent at once if it is the only
    /// one waiting).
    fn transition(
        &mut self,
        ctx: &mut Context<Self>,
        key: &(String, String),
        state: TaskState,
        reason: Option<Reason>,
    ) {
        let update = self.update(ctx, &key.0, &key.1, state, reason);
        let send = {
            let mut disk = self.disk.lock();
            let Some(task) = disk.tasks.get_mut(key) else {
                return;
            };
            if task.state.is_terminal() {
                return;
            }
            task.state = state;
            task.updates.push_back(update.clone());
            task.updates.len() == 1
        };
        if send && self.registration == Registration::Registered {
            self.send_update(ctx, update);
        }
    }

    fn update(
        &self,
        ctx: &Context<Self>,
        framework: &str,
        task: &str,
        state: TaskState,
        reason: Option<Reason>,
    ) -> StatusUpdate {
        let uuid = Bytes::copy_from_slice(ctx.node().random().uuid().as_bytes());
        let now = ctx.node().clock().unix_seconds();
        let agent_id = self.id();
        StatusUpdate {
            framework_id: Some(FrameworkId {
                value: framework.to_owned(),
            }),
            slave_id: agent_id.clone(),
            status: Some(TaskStatus {
                task_id: Some(TaskId {
                    value: task.to_owned(),
                }),
                state: state as i32,
                source: Source::Executor as i32,
                reason: reason.map(|r| r as i32),
                agent_id,
                uuid: uuid.clone(),
                timestamp: now,
                ..Default::default()
            }),
            timestamp: now,
            uuid,
            ..Default::default()
        }
    }

    fn send_update(&self, ctx: &mut Context<Self>, update: StatusUpdate) {
        ctx.send(
            &self.master,
            StatusUpdateMessage {
                update: Some(update),
                pid: ctx.pid().to_string(),
            },
        );
    }

    /// Sends the head of every stream again (each waits for its acknowledgement).
    fn resend_updates(&mut self, ctx: &mut Context<Self>) {
        let heads: Vec<StatusUpdate> = self
            .disk
            .lock()
            .tasks
            .values()
            .filter_map(|t| t.updates.front().cloned())
            .collect();
        for update in heads {
            self.send_update(ctx, update);
        }
    }

    fn retry_updates(&mut self, ctx: &mut Context<Self>) {
        if self.registration == Registration::Registered {
            self.resend_updates(ctx);
        }
        ctx.delay(UPDATE_RETRY, |a: &mut SimAgent, ctx| a.retry_updates(ctx));
    }

    fn acknowledged(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: StatusUpdateAcknowledgementMessage,
    ) {
        if from != self.master {
            return;
        }
        let key = task_key(&msg.framework_id, &msg.task_id);
        let next = {
            let mut disk = self.disk.lock();
            let Some(task) = disk.tasks.get_mut(&key) else {
                return;
            };
            if task.updates.front().map(|u| &u.uuid) != Some(&msg.uuid) {
                return;
            }
            task.updates.pop_front();
            let next = task.updates.front().cloned();
            if next.is_none() && task.state.is_terminal() {
                disk.tasks.remove(&key);
            }
            next
        };
        if let Some(next) = next {
            self.send_update(ctx, next);
        }
    }

    fn kill_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: KillTaskMessage) {
        if from != self.master {
            return;
        }
        let key = task_key(&msg.framework_id, &msg.task_id);
        tracing::debug!(agent = %ctx.pid(), task = %key.1, registered = ?self.registration, "kill");
        if self.disk.lock().tasks.contains_key(&key) {
            self.transition(ctx, &key, TaskState::TaskKilled, None);
        } else if self.registration == Registration::Registered {
            self.report_unknown(ctx, &key.0, &key.1);
        }
    }

    fn shutdown_framework(
        &mut self,
        _: &mut Context<Self>,
        from: Upid,
        msg: ShutdownFrameworkMessage,
    ) {
        if from != self.master {
            return;
        }
        let framework = msg.framework_id.text().to_owned();
        // The master has ended the framework: its tasks end and their updates have no one to
        // go to.
        self.disk.lock().tasks.retain(|(f, _), _| *f != framework);
    }
}

/// A task's key on the agent's disk: (framework id, task id).
fn task_key(framework: &Option<FrameworkId>, task: &Option<TaskId>) -> (String, String) {
    (framework.text().to_owned(), task.text().to_owned())
}

impl Process for SimAgent {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::reregistered);
        ctx.install(Self::ping);
        ctx.install(Self::run_task);
        ctx.install(Self::acknowledged);
        ctx.install(Self::kill_task);
        ctx.install(Self::shutdown_framework);
        // Tasks that ran on while this agent was down end when they were due to.
        let now = ctx.node().clock().now();
        let running: Vec<((String, String), Instant)> = self
            .disk
            .lock()
            .tasks
            .iter()
            .filter(|(_, t)| !t.state.is_terminal())
            .map(|(k, t)| (k.clone(), t.ends_at))
            .collect();
        for (key, ends_at) in running {
            self.schedule_end(ctx, key, ends_at.saturating_duration_since(now));
        }
        self.last_ping = now;
        self.register(ctx);
        ctx.delay(PING_TIMEOUT / 3, |a: &mut SimAgent, ctx| a.check_pings(ctx));
        ctx.delay(UPDATE_RETRY, |a: &mut SimAgent, ctx| a.retry_updates(ctx));
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        if *pid == self.master && self.registration == Registration::Registered {
            self.register(ctx);
        }
    }
}
