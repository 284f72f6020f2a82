//! The scheduler driver (Mesos's `MesosSchedulerDriver`): a libactor process that registers a
//! framework with the master, turns the master's messages into [`Scheduler`] callbacks, and
//! sends the scheduler's decisions back.
//!
//! Handles (from the master only): `FrameworkRegisteredMessage`, `FrameworkReregisteredMessage`,
//! `ResourceOffersMessage`, `RescindResourceOfferMessage`, `StatusUpdateMessage`,
//! `LostSlaveMessage`, `ExecutorToFrameworkMessage`, `ExitedExecutorMessage`,
//! `RevocationNoticeMessage`, `FrameworkErrorMessage`, and the `Authentication*` answers.
//!
//! Sends: `RegisterFrameworkMessage` / `ReregisterFrameworkMessage` (retried with backoff until
//! answered, and again whenever the connection to the master breaks), `AcceptOffersMessage`,
//! `DeclineOffersMessage`, `ReviveOffersMessage`, `SuppressOffersMessage`, `KillTaskMessage`,
//! `StatusUpdateAcknowledgementMessage`, `ReconcileTasksMessage`, `FrameworkToExecutorMessage`,
//! `UnregisterFrameworkMessage`; for shared-state schedulers `SubscribeCellMessage` and
//! `CommitTransactionMessage`, answered by `CellUpdateMessage` and `TransactionResultMessage`.

use std::time::Duration;

use authentication::{roles, Authenticatee};
use bytes::Bytes;
use libactor::{Context, Node, Process, ProcessGone, ProcessRef, SpawnError, Upid};
use protos::internal::{
    AcceptOffersMessage, AuthenticationChallengeMessage, AuthenticationCompletedMessage,
    AuthenticationFailedMessage, DeclineOffersMessage, ExecutorToFrameworkMessage,
    ExitedExecutorMessage, FrameworkErrorMessage, FrameworkRegisteredMessage,
    FrameworkReregisteredMessage, FrameworkToExecutorMessage, KillTaskMessage, LostSlaveMessage,
    ReconcileTasksMessage, RegisterFrameworkMessage, ReregisterFrameworkMessage,
    RescindResourceOfferMessage, ResourceOffersMessage, ReviveOffersMessage,
    RevocationNoticeMessage, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
    SuppressOffersMessage, UnregisterFrameworkMessage,
};
use protos::omega::{
    CellUpdateMessage, CommitMode, CommitTransactionMessage, ConflictMode, Placement,
    SubscribeCellMessage, TransactionResultMessage,
};
use protos::v1::offer::operation::LaunchGroup;
use protos::v1::task_status::Source;
use protos::v1::{
    AgentId, ExecutorId, ExecutorInfo, Filters, FrameworkId, FrameworkInfo, OfferId, TaskGroupInfo,
    TaskId, TaskInfo, TaskStatus,
};
use protos::IdText;
use tokio::sync::watch;

use crate::cell::Cell;
use crate::driver_status::DriverStatus;
use crate::scheduler::Scheduler;

/// First wait before re-sending an unanswered registration.
pub const REGISTRATION_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between registration attempts.
pub const REGISTRATION_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a scheduler acts through: sends its decisions to the master. Handed to every
/// [`Scheduler`] callback.
pub struct SchedulerDriver {
    node: Node,
    pid: Upid,
    master: Upid,
    info: FrameworkInfo,
    framework_id: Option<FrameworkId>,
    connected: bool,
    implicit_acks: bool,
    backoff: Duration,
    ending: Option<(DriverStatus, bool)>,
    authenticatee: Option<Authenticatee>,
    /// The copy of the cell, once the scheduler subscribed ([`SchedulerDriver::subscribe_cell`]).
    cell: Option<Cell>,
    /// Transactions sent so far (their ids).
    transactions: u64,
    /// Timers asked for by the last callback, set once it returns: (after, token).
    timers: Vec<(Duration, u64)>,
}

impl SchedulerDriver {
    /// The framework's id, once registered.
    pub fn framework_id(&self) -> Option<&FrameworkId> {
        self.framework_id.as_ref()
    }

    /// The master the driver talks to.
    pub fn master(&self) -> &Upid {
        &self.master
    }

    /// This driver's process address (the scheduler's pid as the master knows it).
    pub fn pid(&self) -> &Upid {
        &self.pid
    }

    /// Whether the framework is registered with a reachable master.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The node the driver runs on (its clock and metrics).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Subscribes to the cell state (Omega's shared-state scheduling): the framework's offers
    /// stop, [`Scheduler::cell_changed`] is called whenever the copy ([`SchedulerDriver::cell`])
    /// changes, and the driver subscribes again, resuming, after every re-registration.
    pub fn subscribe_cell(&mut self) {
        let cell = self.cell.get_or_insert_with(Cell::default);
        let resume = cell.position().cloned();
        self.send(SubscribeCellMessage {
            framework_id: self.framework_id.clone(),
            resume,
        });
    }

    /// The copy of the cell (empty until subscribed and the first update arrived).
    pub fn cell(&self) -> &Cell {
        static EMPTY: std::sync::OnceLock<Cell> = std::sync::OnceLock::new();
        self.cell
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Cell::default))
    }

    /// Commits `placements` as one transaction on the cell the copy shows; returns its id,
    /// which [`Scheduler::transaction_result`] answers. Until then the copy counts the
    /// placements' resources as taken.
    pub fn commit(&mut self, placements: Vec<Placement>, options: CommitOptions) -> String {
        self.transactions += 1;
        let id = format!("{}-{}", self.pid.id(), self.transactions);
        let holds = placements
            .iter()
            .filter_map(|p| {
                let task = p.task.as_ref()?;
                let resources = resources::Resources::from_proto(&task.resources).ok()?;
                Some((p.agent_id.text().to_owned(), resources))
            })
            .collect();
        let cell = self.cell.get_or_insert_with(Cell::default);
        cell.hold(&id, holds);
        let epoch = cell.epoch().to_owned();
        self.send(CommitTransactionMessage {
            framework_id: self.framework_id.clone(),
            transaction_id: id.clone(),
            epoch,
            conflict_mode: options.conflict_mode as i32,
            commit_mode: options.commit_mode as i32,
            placements,
            preempt: options.preempt,
        });
        id
    }

    /// Calls [`Scheduler::timer`] with `token` once `after` has passed on the node's clock
    /// (for work that takes time to decide, without blocking the driver).
    pub fn set_timer(&mut self, after: Duration, token: u64) {
        self.timers.push((after, token));
    }

    fn send<M: libactor::Message>(&self, msg: M) {
        self.node.send_from(&self.pid, &self.master, msg);
    }

    /// Launches `tasks` on the resources of `offer_ids` (all on one agent); what they leave
    /// unused is declined with `filters`. An empty `tasks` declines the offers.
    pub fn launch_tasks(&mut self, offer_ids: &[OfferId], tasks: Vec<TaskInfo>, filters: Filters) {
        self.send(AcceptOffersMessage {
            framework_id: self.framework_id.clone(),
            offer_ids: offer_ids.to_vec(),
            tasks,
            filters: Some(filters),
            groups: Vec::new(),
        });
    }

    /// Launches `group` on `executor` (Mesos's LAUNCH_GROUP): all of its tasks run, or none
    /// does. `executor` is the framework's own (`CUSTOM`) or the agent's default executor
    /// (`DEFAULT`, no command), which runs each task's command.
    pub fn launch_task_group(
        &mut self,
        offer_ids: &[OfferId],
        executor: ExecutorInfo,
        group: Vec<TaskInfo>,
        filters: Filters,
    ) {
        self.send(AcceptOffersMessage {
            framework_id: self.framework_id.clone(),
            offer_ids: offer_ids.to_vec(),
            tasks: Vec::new(),
            filters: Some(filters),
            groups: vec![LaunchGroup {
                executor: Some(executor),
                task_group: Some(TaskGroupInfo { tasks: group }),
            }],
        });
    }

    /// Gives an offer back; its resources are not offered to this framework again for
    /// `filters.refuse_seconds` (5 s if unset).
    pub fn decline_offer(&mut self, offer_id: &OfferId, filters: Filters) {
        self.send(DeclineOffersMessage {
            framework_id: self.framework_id.clone(),
            offer_ids: vec![offer_id.clone()],
            filters: Some(filters),
        });
    }

    /// Gives several offers back at once, with one filter for all.
    pub fn decline_offers(&mut self, offer_ids: &[OfferId], filters: Filters) {
        if offer_ids.is_empty() {
            return;
        }
        self.send(DeclineOffersMessage {
            framework_id: self.framework_id.clone(),
            offer_ids: offer_ids.to_vec(),
            filters: Some(filters),
        });
    }

    /// Clears the framework's decline filters and resumes offers after a suppress.
    pub fn revive_offers(&mut self) {
        self.send(ReviveOffersMessage {
            framework_id: self.framework_id.clone(),
            roles: Vec::new(),
        });
    }

    /// Stops offers to the framework until it revives.
    pub fn suppress_offers(&mut self) {
        self.send(SuppressOffersMessage {
            framework_id: self.framework_id.clone(),
            roles: Vec::new(),
        });
    }

    /// Asks for a task to be killed; its end arrives as a status update.
    pub fn kill_task(&mut self, task_id: &TaskId) {
        self.send(KillTaskMessage {
            framework_id: self.framework_id.clone(),
            task_id: Some(task_id.clone()),
            kill_policy: None,
            reason: None,
        });
    }

    /// Acknowledges a status update (only needed with explicit acknowledgements; see
    /// [`SchedulerOptions::explicit_acknowledgements`]). Updates without a uuid (generated by
    /// the master) need none and are ignored.
    pub fn acknowledge_status_update(&mut self, status: &TaskStatus) {
        if status.uuid.is_empty() || status.source == Source::Master as i32 {
            return;
        }
        self.send(StatusUpdateAcknowledgementMessage {
            slave_id: status.agent_id.clone(),
            framework_id: self.framework_id.clone(),
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone(),
        });
    }

    /// Asks the master for the latest state of `statuses`' tasks (explicit reconciliation),
    /// or of every task of the framework with an empty list (implicit).
    pub fn reconcile_tasks(&mut self, statuses: Vec<TaskStatus>) {
        self.send(ReconcileTasksMessage {
            framework_id: self.framework_id.clone(),
            statuses,
        });
    }

    /// Sends `data` to a custom executor.
    pub fn send_framework_message(
        &mut self,
        executor_id: &ExecutorId,
        agent_id: &AgentId,
        data: Bytes,
    ) {
        self.send(FrameworkToExecutorMessage {
            slave_id: Some(agent_id.clone()),
            framework_id: self.framework_id.clone(),
            executor_id: Some(executor_id.clone()),
            data,
        });
    }

    /// Ends the framework: the master kills its tasks and forgets it. The driver stops.
    pub fn stop(&mut self) {
        self.ending = Some((DriverStatus::Stopped, true));
    }

    /// Stops the driver but leaves the framework registered, so that a new scheduler can take
    /// over its tasks within the failover timeout.
    pub fn stop_for_failover(&mut self) {
        self.ending = Some((DriverStatus::Stopped, false));
    }

    /// Stops the driver with an error, leaving the framework registered.
    pub fn abort(&mut self, why: impl Into<String>) {
        self.ending = Some((DriverStatus::Aborted(why.into()), false));
    }
}

/// How the master judges a transaction ([`SchedulerDriver::commit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// Fine-grained (only resources that no longer fit) or coarse (any change to the agent).
    pub conflict_mode: ConflictMode,
    /// Incremental (what fits) or all-or-nothing.
    pub commit_mode: CommitMode,
    /// Placements that do not fit may preempt lower-priority tasks (answered
    /// `OUTCOME_PREEMPTING`; commit them again once the room shows in the cell).
    pub preempt: bool,
}

/// How a driver behaves.
#[derive(Debug, Clone, Default)]
pub struct SchedulerOptions {
    /// The scheduler acknowledges status updates itself with
    /// [`SchedulerDriver::acknowledge_status_update`] instead of the driver doing it after
    /// [`Scheduler::status_update`] returns.
    pub explicit_acknowledgements: bool,
    /// Authenticate to the master as this principal before registering (the framework's
    /// `principal` defaults to it).
    pub credential: Option<authentication::Credential>,
}

/// The libactor process that runs a [`Scheduler`].
pub struct SchedulerProcess<S: Scheduler> {
    scheduler: S,
    driver: SchedulerDriver,
    done: watch::Sender<Option<DriverStatus>>,
    /// A registration attempt is scheduled: one chain of attempts at a time.
    retry_armed: bool,
}

/// A running driver: wait for it, stop it, or look into its scheduler.
pub struct SchedulerHandle<S: Scheduler> {
    process: ProcessRef<SchedulerProcess<S>>,
    done: watch::Receiver<Option<DriverStatus>>,
}

impl<S: Scheduler> Clone for SchedulerHandle<S> {
    fn clone(&self) -> Self {
        SchedulerHandle {
            process: self.process.clone(),
            done: self.done.clone(),
        }
    }
}

/// Starts `scheduler` on `node` as framework `info`, registering with `master`.
pub fn start<S: Scheduler>(
    node: &Node,
    master: Upid,
    info: FrameworkInfo,
    scheduler: S,
    options: SchedulerOptions,
) -> Result<SchedulerHandle<S>, SpawnError> {
    let id = node.generate_id("scheduler");
    let pid = node.pid(&id)?;
    let (tx, rx) = watch::channel(None);
    let framework_id = info.id.clone().filter(|f| !f.value.is_empty());
    let mut info = info;
    // As Mesos's drivers do: a framework that names no user runs its tasks as the user
    // running the scheduler.
    if info.user.is_empty() {
        info.user = authentication::os_user::current();
    }
    if let Some(c) = &options.credential {
        if info.principal.is_empty() {
            info.principal = c.principal.clone();
        }
    }
    let authenticatee = options.credential.clone().map(Authenticatee::new);
    let process = node.spawn_ref(
        &id,
        SchedulerProcess {
            scheduler,
            driver: SchedulerDriver {
                node: node.clone(),
                pid,
                master,
                info,
                framework_id,
                connected: false,
                implicit_acks: !options.explicit_acknowledgements,
                backoff: REGISTRATION_BACKOFF_MIN,
                ending: None,
                authenticatee,
                cell: None,
                transactions: 0,
                timers: Vec::new(),
            },
            done: tx,
            retry_armed: false,
        },
    )?;
    Ok(SchedulerHandle { process, done: rx })
}

impl<S: Scheduler> SchedulerHandle<S> {
    /// The driver's process address.
    pub fn pid(&self) -> &Upid {
        self.process.pid()
    }

    /// Waits until the driver ends.
    pub async fn join(&self) -> DriverStatus {
        let mut done = self.done.clone();
        let status = match done.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or(DriverStatus::Stopped),
            Err(_) => DriverStatus::Aborted("the driver's process ended".into()),
        };
        status
    }

    /// Stops the driver and ends the framework (see [`SchedulerDriver::stop`]).
    pub fn stop(&self) {
        self.process.dispatch(|p, ctx| {
            p.driver.stop();
            p.after_callback(ctx);
        });
    }

    /// Points the driver at another master (a new leader after a failover): it re-registers
    /// there with its framework id, keeping its tasks. Returns false if the driver has ended.
    pub fn set_master(&self, master: Upid) -> bool {
        self.process
            .dispatch(move |p, ctx| p.master_changed(ctx, master))
    }

    /// Runs `f` inside the driver's process with the scheduler and the driver, and returns its
    /// result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S, &mut SchedulerDriver) -> R + Send + 'static,
    ) -> Result<R, ProcessGone> {
        self.process
            .call(move |p, ctx| {
                let r = f(&mut p.scheduler, &mut p.driver);
                p.after_callback(ctx);
                r
            })
            .await
    }

    /// Runs `f` inside the driver's process without waiting (for work finished on another
    /// thread). Returns false if the driver has ended.
    pub fn dispatch(&self, f: impl FnOnce(&mut S, &mut SchedulerDriver) + Send + 'static) -> bool {
        self.process.dispatch(move |p, ctx| {
            f(&mut p.scheduler, &mut p.driver);
            p.after_callback(ctx);
        })
    }
}

impl<S: Scheduler> SchedulerProcess<S> {
    fn master_changed(&mut self, ctx: &mut Context<Self>, master: Upid) {
        if master == self.driver.master || self.done.borrow().is_some() {
            return;
        }
        tracing::info!(from = %self.driver.master, to = %master, "the master changed; registering with the new one");
        ctx.unlink(&self.driver.master);
        self.driver.master = master;
        self.lost_master(ctx);
        self.register(ctx);
    }

    /// The master went (its connection broke, or another leads): the scheduler hears it is
    /// disconnected, and registration starts over from the shortest backoff.
    fn lost_master(&mut self, ctx: &mut Context<Self>) {
        if let Some(auth) = self.driver.authenticatee.as_mut() {
            auth.reset();
        }
        if self.driver.connected {
            self.driver.connected = false;
            self.scheduler.disconnected(&mut self.driver);
            self.after_callback(ctx);
        }
        // The lost master will not answer: each transaction in flight is answered here, and
        // the scheduler finds what did commit in the cell (its tasks) once subscribed again.
        let unanswered = self
            .driver
            .cell
            .as_mut()
            .map(Cell::drop_holds)
            .unwrap_or_default();
        for transaction_id in unanswered {
            let result = TransactionResultMessage {
                transaction_id,
                error: "the master was lost before answering".into(),
                ..Default::default()
            };
            self.scheduler.transaction_result(&mut self.driver, &result);
            self.after_callback(ctx);
        }
        self.driver.backoff = REGISTRATION_BACKOFF_MIN;
    }

    /// Who may send: the master the driver follows, proven (on a secure node) by the
    /// `master` role of the connection the message arrived on.
    fn sent_by_master(&self, ctx: &Context<Self>, from: &Upid) -> bool {
        let ok = *from == self.driver.master && ctx.authorize(roles::MASTER);
        if !ok {
            tracing::warn!(%from, master = %self.driver.master, "message for the scheduler from a process that is not the master; dropped");
        }
        ok
    }

    /// Sets the timers a callback asked for, and ends the driver if it asked for that.
    fn after_callback(&mut self, ctx: &mut Context<Self>) {
        for (after, token) in std::mem::take(&mut self.driver.timers) {
            ctx.delay(after, move |p: &mut Self, ctx| {
                if p.done.borrow().is_some() {
                    return;
                }
                p.scheduler.timer(&mut p.driver, token);
                p.after_callback(ctx);
            });
        }
        let Some((status, unregister)) = self.driver.ending.take() else {
            return;
        };
        if unregister {
            if let Some(id) = self.driver.framework_id.clone() {
                self.driver.send(UnregisterFrameworkMessage {
                    framework_id: Some(id),
                });
            }
        }
        tracing::info!(?status, "scheduler driver ending");
        self.driver.connected = false;
        let _ = self.done.send(Some(status));
        ctx.terminate();
    }

    /// Schedules the next registration attempt after `wait` unless one is scheduled already.
    /// While the master is unreachable every attempt's connection fails and fires `exited`;
    /// were each to start its own chain of attempts, the chains would double with every
    /// failure (found by the whole-cluster simulation: 15,000 re-registrations after a
    /// partition and a clock jump, seed 2).
    fn retry_registration(&mut self, ctx: &mut Context<Self>, wait: Duration) {
        if self.retry_armed {
            return;
        }
        self.retry_armed = true;
        ctx.delay(wait, |p: &mut Self, ctx| {
            p.retry_armed = false;
            p.register(ctx);
        });
    }

    fn register(&mut self, ctx: &mut Context<Self>) {
        if self.driver.connected || self.done.borrow().is_some() {
            return;
        }
        let master = self.driver.master.clone();
        ctx.link(&master);
        let wait = self.driver.backoff;
        self.driver.backoff = (wait * 2).min(REGISTRATION_BACKOFF_MAX);
        self.retry_registration(ctx, wait);
        if let Some(auth) = self
            .driver
            .authenticatee
            .as_mut()
            .filter(|a| !a.is_authenticated())
        {
            ctx.send(&master, auth.begin());
            return;
        }
        self.send_registration(ctx);
    }

    fn send_registration(&mut self, ctx: &mut Context<Self>) {
        let master = self.driver.master.clone();
        match self.driver.framework_id.clone() {
            None => ctx.send(
                &master,
                RegisterFrameworkMessage {
                    framework: Some(self.driver.info.clone()),
                },
            ),
            Some(id) => {
                let mut info = self.driver.info.clone();
                info.id = Some(id);
                ctx.send(
                    &master,
                    ReregisterFrameworkMessage {
                        framework: Some(info),
                        failover: false,
                    },
                );
            }
        }
    }

    fn challenged(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticationChallengeMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(auth) = &self.driver.authenticatee {
            ctx.send(&from, auth.answer(&msg.nonce, ctx.pid().as_str()));
        }
    }

    fn authenticated(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        _msg: AuthenticationCompletedMessage,
    ) {
        if !self.sent_by_master(ctx, &from) || self.driver.connected {
            return;
        }
        if let Some(auth) = self.driver.authenticatee.as_mut() {
            auth.completed();
            self.send_registration(ctx);
        }
    }

    fn authentication_failed(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticationFailedMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let why = format!("authentication failed: {}", msg.reason);
        if let Some(auth) = self.driver.authenticatee.as_mut() {
            auth.failed(&msg.reason);
        }
        self.scheduler.error(&mut self.driver, &why);
        self.driver.abort(why);
        self.after_callback(ctx);
    }

    fn registered(&mut self, ctx: &mut Context<Self>, from: Upid, msg: FrameworkRegisteredMessage) {
        if !self.sent_by_master(ctx, &from) || self.driver.connected {
            return;
        }
        let (Some(id), master) = (msg.framework_id, msg.master_info.unwrap_or_default()) else {
            return;
        };
        self.driver.framework_id = Some(id.clone());
        self.driver.connected = true;
        self.driver.backoff = REGISTRATION_BACKOFF_MIN;
        self.scheduler.registered(&mut self.driver, &id, &master);
        self.after_callback(ctx);
    }

    fn cell_update(&mut self, ctx: &mut Context<Self>, from: Upid, msg: CellUpdateMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let Some(cell) = self.driver.cell.as_mut() else {
            return;
        };
        if cell.apply(msg) {
            self.scheduler.cell_changed(&mut self.driver);
            self.after_callback(ctx);
        }
    }

    fn transaction_result(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: TransactionResultMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(cell) = self.driver.cell.as_mut() {
            cell.settle(&msg);
        }
        self.scheduler.transaction_result(&mut self.driver, &msg);
        self.after_callback(ctx);
    }

    fn reregistered(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: FrameworkReregisteredMessage,
    ) {
        if !self.sent_by_master(ctx, &from) || self.driver.connected {
            return;
        }
        self.driver.connected = true;
        self.driver.backoff = REGISTRATION_BACKOFF_MIN;
        if self.driver.cell.is_some() {
            self.driver.subscribe_cell();
        }
        let master = msg.master_info.unwrap_or_default();
        self.scheduler.reregistered(&mut self.driver, &master);
        self.after_callback(ctx);
    }

    fn offers(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ResourceOffersMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.scheduler.resource_offers(&mut self.driver, msg.offers);
        self.after_callback(ctx);
    }

    fn rescinded(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RescindResourceOfferMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(id) = msg.offer_id {
            self.scheduler.offer_rescinded(&mut self.driver, &id);
        }
        self.after_callback(ctx);
    }

    fn status_update(&mut self, ctx: &mut Context<Self>, from: Upid, msg: StatusUpdateMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let Some(update) = msg.update else {
            return;
        };
        let Some(mut status) = update.status else {
            return;
        };
        if status.uuid.is_empty() {
            status.uuid = update.uuid.clone();
        }
        if status.agent_id.is_none() {
            status.agent_id = update.slave_id.clone();
        }
        self.scheduler.status_update(&mut self.driver, &status);
        if self.driver.implicit_acks {
            self.driver.acknowledge_status_update(&status);
        }
        self.after_callback(ctx);
    }

    fn lost_slave(&mut self, ctx: &mut Context<Self>, from: Upid, msg: LostSlaveMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(id) = msg.slave_id {
            self.scheduler.agent_lost(&mut self.driver, &id);
        }
        self.after_callback(ctx);
    }

    fn framework_message(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ExecutorToFrameworkMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let executor = msg.executor_id.unwrap_or_default();
        let agent = msg.slave_id.unwrap_or_default();
        self.scheduler
            .framework_message(&mut self.driver, &executor, &agent, &msg.data);
        self.after_callback(ctx);
    }

    fn executor_exited(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ExitedExecutorMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let executor = msg.executor_id.unwrap_or_default();
        let agent = msg.slave_id.unwrap_or_default();
        self.scheduler
            .executor_lost(&mut self.driver, &executor, &agent, msg.status);
        self.after_callback(ctx);
    }

    fn revocation_notice(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: RevocationNoticeMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let grace = if msg.grace_seconds.is_finite() && msg.grace_seconds > 0.0 {
            Duration::from_secs_f64(msg.grace_seconds.min(86_400.0))
        } else {
            Duration::ZERO
        };
        self.scheduler
            .tasks_revoked(&mut self.driver, &msg.task_ids, grace);
        self.after_callback(ctx);
    }

    fn error(&mut self, ctx: &mut Context<Self>, from: Upid, msg: FrameworkErrorMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.scheduler.error(&mut self.driver, &msg.message);
        self.driver.abort(msg.message);
        self.after_callback(ctx);
    }
}

impl<S: Scheduler> Process for SchedulerProcess<S> {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::reregistered);
        ctx.install(Self::offers);
        ctx.install(Self::rescinded);
        ctx.install(Self::status_update);
        ctx.install(Self::lost_slave);
        ctx.install(Self::framework_message);
        ctx.install(Self::executor_exited);
        ctx.install(Self::error);
        ctx.install(Self::revocation_notice);
        ctx.install(Self::cell_update);
        ctx.install(Self::transaction_result);
        ctx.install(Self::challenged);
        ctx.install(Self::authenticated);
        ctx.install(Self::authentication_failed);
        self.register(ctx);
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        if *pid != self.driver.master || self.done.borrow().is_some() {
            return;
        }
        self.lost_master(ctx);
        self.retry_registration(ctx, REGISTRATION_BACKOFF_MIN);
    }

    fn finalize(&mut self, _ctx: &mut Context<Self>) {
        if self.done.borrow().is_none() {
            let _ = self.done.send(Some(DriverStatus::Aborted(
                "the driver's process ended".into(),
            )));
        }
    }
}
