//! The master process: registers agents and frameworks, turns the allocator's allocations into
//! offers, launches accepted tasks on agents, and relays status updates and acknowledgements.
//!
//! Handles:
//! - `keel.internal.RegisterSlaveMessage` (agent) → `SlaveRegisteredMessage`
//! - `keel.internal.RegisterFrameworkMessage` (scheduler) → `FrameworkRegisteredMessage`
//! - `keel.internal.DeclineOffersMessage`, `AcceptOffersMessage` (scheduler)
//! - `keel.internal.StatusUpdateMessage` (agent) → forwarded to the framework
//! - `keel.internal.StatusUpdateAcknowledgementMessage` (scheduler) → forwarded to the agent
//! - `keel.internal.PongSlaveMessage` (agent), answering the master's `PingSlaveMessage`
//! - `keel.internal.KillTaskMessage` (scheduler) → forwarded to the task's agent
//! - `keel.internal.ShutdownExecutorMessage` (scheduler) → forwarded to the executor's agent
//! - `keel.internal.UnregisterFrameworkMessage` (scheduler): teardown; its agents get
//!   `ShutdownFrameworkMessage`, its offers are withdrawn, it leaves the allocator
//! - `keel.internal.ReconcileTasksMessage` (scheduler) → the latest state of each task asked
//!   about (explicit), or of all its tasks (implicit, no statuses given)
//! - `keel.omega.SubscribeCellMessage` (scheduler) → `CellUpdateMessage`s: the cell, then its
//!   changes
//! - `keel.omega.CommitTransactionMessage` (scheduler) → `TransactionResultMessage`, and the
//!   committed tasks launched as accepted ones are
//!
//! Sends: `ResourceOffersMessage` to schedulers; `RunTaskMessage` and `PingSlaveMessage` to
//! agents; master-generated `StatusUpdateMessage`s (TASK_ERROR, TASK_DROPPED for launches it
//! refuses; TASK_LOST or TASK_UNREACHABLE for tasks of an agent it removes),
//! `RescindResourceOfferMessage` and `LostSlaveMessage` when an agent is removed.
//!
//! Agent health: every [`AgentHealth::ping_timeout`] the master pings each agent; an agent that
//! misses [`AgentHealth::max_missed`] pongs in a row is removed and marked unreachable (Mesos's
//! 15 s × 5 by default).
//!
//! Offers not answered within `OFFER_TIMEOUT` are rescinded and their resources go back to
//! the allocator.
//!
//! With a registrar ([`Master::spawn_recovered`]) admissions are durable before they are
//! answered, and a new leader waits for the registry's agents and frameworks (see
//! `recovery`); re-registration and framework failover are in `reregistration`.
//!
//! Where the rest lives: `books` (agents, frameworks, offers, tasks and their invariants),
//! `registration`, `offers` (offers, declines, timeouts), `launch` (accept and task
//! validation), `agent_health` (pings), `relay` (messages passed between schedulers and
//! agents), `maintenance` (drains), `operator` (the operator API's changes), `revocation`,
//! `gauges`, `cell_log` (agents' versions), `cell_stream` (the cell's subscribers),
//! `transactions` (Omega commits), `feed` (the books' changes to the API process), `state_routes` (`/master/state`
//! and the other classic state endpoints, served by the API process), `teardown`
//! (`/master/teardown`), `maintenance_routes` (`/master/maintenance/*`, `/master/machine/*`).

use protos::{IdText, IllegalTaskMove};
use std::collections::{BTreeMap, HashMap};

use crate::fast_hash::FastSet;
use message_counters::install_counted;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use authentication::roles;
use libactor::metrics::{Counter, ProcessMetrics};
use libactor::{Context, Node, Process, ProcessRef, Reservation, SpawnError, Upid};
use protos::internal::{
    KillTaskMessage, LostSlaveMessage, ReconcileTasksMessage, ShutdownFrameworkMessage,
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
    UnregisterFrameworkMessage,
};
use protos::v1::task_status::{Reason, Source};
use protos::v1::{AgentId, FrameworkId, MasterInfo, TaskId, TaskInfo, TaskState, TaskStatus};
use resources::Resources;

use crate::allocator::{
    Allocator, AllocatorError, AllocatorProcess, HierarchicalAllocator, DEFAULT_ALLOCATION_INTERVAL,
};
use crate::registrar::{Operation, Registrar, Registry};

/// How long a declined offer's resources are withheld when the framework sets no filter.
pub const DEFAULT_REFUSE_SECONDS: f64 = 5.0;
/// How long a framework may hold an offer before it is rescinded (Mesos's `--offer_timeout`,
/// which Mesos leaves unset by default; Keel bounds it).
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the master waits for an agent's pong.
pub const AGENT_PING_TIMEOUT: Duration = Duration::from_secs(15);
/// Pongs an agent may miss in a row before it is removed.
pub const MAX_AGENT_PING_TIMEOUTS: u32 = 5;
/// How long a new leader is assumed to take per agent re-registering: 100 µs, 10,000 a
/// second, well under what one core does (about 18,000 a second with 10 tasks each on a
/// 2-vCPU VM), so that after a failover the agents' first attempts are answered before
/// they retry.
pub const READMISSION_COST: Duration = Duration::from_micros(100);
/// How the master decides an agent is gone: a ping every `ping_timeout`, removal after
/// `max_missed` unanswered in a row (Mesos's `--agent_ping_timeout`, `--max_agent_ping_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentHealth {
    /// How long the master waits for each pong.
    pub ping_timeout: Duration,
    /// Pongs an agent may miss in a row before it is removed.
    pub max_missed: u32,
    /// How long a new leader is assumed to take to answer one agent's re-registration: the
    /// first registration retry the master advises its agents is this times their number (see
    /// [`protos::RegistrationBackoff`]).
    pub readmission_cost: Duration,
}

impl Default for AgentHealth {
    fn default() -> Self {
        AgentHealth {
            ping_timeout: AGENT_PING_TIMEOUT,
            max_missed: MAX_AGENT_PING_TIMEOUTS,
            readmission_cost: READMISSION_COST,
        }
    }
}

/// Offers sent to a framework in one `ResourceOffersMessage` (about 200 bytes each, so a
/// message stays far below libactor's frame limit).
pub const MAX_OFFERS_PER_MESSAGE: usize = 1000;
/// Removed frameworks remembered (so that their schedulers cannot re-register; Mesos keeps 50).
pub const MAX_REMOVED_FRAMEWORKS: usize = 1000;
/// Longest `refuse_seconds` honoured (a year), so that a huge value cannot overflow the clock.
pub const MAX_REFUSE_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

mod agent_directory;
mod agent_health;
mod allocator_sequence;
mod authenticator;
mod books;
mod cell_log;
mod cell_stream;
mod gauges;
mod gone;
mod launch;
mod launch_group;
mod maintenance;
mod message_counters;
mod offers;
mod preemption;
mod quota;
mod quota_routes;
mod recovery;
mod registration;
mod relay;
mod reregistration;
mod revocation;
mod snapshot_budget;
mod transactions;
mod unacknowledged_ends;

pub use agent_directory::AgentDirectory;
use authenticator::Registrant;
pub use authenticator::{AuthenticationPolicy, Principals};
use books::{Books, FrameworkEntry, TaskEntry};
pub use cell_stream::CELL_AGENTS_PER_MESSAGE;
pub use gone::MarkingGone;
pub use maintenance::{DrainError, DrainOutcome, MAX_DRAINED};
pub use operator::{validate_weights, OperatorRefusal, MAX_SCHEDULED_MACHINES};
pub use preemption::{DEFAULT_PREEMPTION_GRACE, PREEMPTION_HOLD_AFTER_GRACE};
pub use recovery::DEFAULT_AGENT_REREGISTER_TIMEOUT;
use recovery::{Recovery, UnknownTaskAgent};
pub use revocation::RevocationPolicy;
use revocation::Revocations;
pub use transactions::MAX_PLACEMENTS_PER_TRANSACTION;
mod feed;
mod framework_update;
mod maintenance_routes;
mod operator;
mod state_routes;
mod teardown;

pub(crate) use feed::time_info;
pub use feed::{FeedItem, FeedQueue, StatusRecord};
pub(crate) use registration::role_of;

type AllocatorRef = ProcessRef<AllocatorProcess<HierarchicalAllocator>>;

/// Authentication state: the policy, challenges out, and who proved what.
#[derive(Default)]
struct AuthState {
    policy: AuthenticationPolicy,
    /// Challenges sent and not answered: pid → (principal claimed, nonce).
    challenges: HashMap<Upid, (String, Vec<u8>)>,
    /// Pids that authenticated, with their principal.
    authenticated: Principals,
}

struct MasterMetrics {
    agents_registered: Counter,
    agents_removed: Counter,
    frameworks_registered: Counter,
    offers_sent: Counter,
    offers_declined: Counter,
    offers_rescinded: Counter,
    offers_accepted: Counter,
    tasks_launched: Counter,
    tasks_refused: Counter,
    invalid_messages: Counter,
    task_state_moves_refused: Counter,
    authentication_failures: Counter,
    registrations_refused: Counter,
    tasks_revoked: Counter,
    operator_requests_refused: Counter,
    allocations_overtaken: Counter,
    allocations_stale: Counter,
    offers_declined_void: Counter,
}

/// The master process.
pub struct Master {
    id: String,
    allocator: AllocatorRef,
    /// Agents, frameworks, offers and tasks.
    books: Books,
    next_id: u64,
    auth: AuthState,
    revocations: Revocations,
    metrics: ProcessMetrics<MasterMetrics>,
    /// Where admissions are made durable (`None`: soft state only, as a lone test master).
    registrar: Option<ProcessRef<Registrar>>,
    /// The registry's agents and frameworks not back yet since this master took over.
    recovery: Recovery,
    /// The recovered registry and how long its agents have to come back, until `initialize`
    /// starts the recovery with them.
    recovered: Option<(Registry, Duration)>,
    /// Pids whose registration is being written to the registry (a retry is ignored).
    admitting: FastSet<Upid>,
    /// When an agent counts as gone.
    health: AgentHealth,
    /// The latest frameworks removed, oldest first (at most [`MAX_REMOVED_FRAMEWORKS`]): their
    /// schedulers may not re-register.
    removed_frameworks: std::collections::VecDeque<String>,
    /// Machines kept out of offers for repair.
    drains: maintenance::Drains,
    /// Machines scheduled for maintenance.
    schedule: protos::v1::maintenance::Schedule,
    /// Registered agents by node address, shared with the device manager.
    directory: AgentDirectory,
    /// The API process on this node, which serves the state endpoints.
    api: ProcessRef<crate::api::ApiGateway>,
    /// Shared-state (Omega) schedulers subscribed to the cell, and the epoch.
    cell: cell_stream::CellStream,
    /// Preemptions' grace period, and what they free held for the preemptors.
    preemptions: preemption::Preemptions,
    /// Quota limits by role: the most each role may hold, offered or used (see `quota`).
    role_limits: std::collections::HashMap<String, Resources>,
    /// Ended tasks whose end is not yet acknowledged: reconciliation answers with the end.
    ends: unacknowledged_ends::UnacknowledgedEnds,
    /// Events sent to the allocator, to tell its stale allocations.
    allocator_sequence: allocator_sequence::AllocatorSequence,
}

/// The running master and its allocator.
#[derive(Debug, Clone)]
pub struct MasterHandle {
    /// The master process.
    pub master: ProcessRef<Master>,
    /// Its allocator process.
    pub allocator: AllocatorRef,
    /// The process serving its v1 HTTP APIs.
    pub api: ProcessRef<crate::api::ApiGateway>,
}

impl Master {
    /// Spawns the allocator (`allocator`) and the master (`master`) on `node`, admitting
    /// agents and frameworks without authentication.
    pub fn spawn(node: &Node, master_id: &str) -> Result<MasterHandle, SpawnError> {
        Master::spawn_with(node, master_id, AuthenticationPolicy::default())
    }

    /// Spawns the allocator and the master, which admits registrations by `policy` and keeps
    /// its state in memory only (a restarted master relearns it from re-registrations).
    pub fn spawn_with(
        node: &Node,
        master_id: &str,
        policy: AuthenticationPolicy,
    ) -> Result<MasterHandle, SpawnError> {
        Master::spawn_inner(node, node.reserve("master")?, master_id, policy, None)
    }

    /// Spawns the allocator, the `registrar` (holding `registrar`'s recovered registry) and
    /// the master, which persists admissions and waits `agent_reregister_timeout` for the
    /// registry's agents to come back (agents that do not are marked unreachable).
    ///
    /// The master starts in `reserved` (`node.reserve("master")`), taken before the registry
    /// was read: agents that re-registered meanwhile are answered, not dropped.
    pub fn spawn_recovered(
        node: &Node,
        reserved: Reservation,
        master_id: &str,
        policy: AuthenticationPolicy,
        registrar: Registrar,
        agent_reregister_timeout: Duration,
    ) -> Result<MasterHandle, SpawnError> {
        Master::spawn_inner(
            node,
            reserved,
            master_id,
            policy,
            Some((registrar, agent_reregister_timeout)),
        )
    }

    fn spawn_inner(
        node: &Node,
        reserved: Reservation,
        master_id: &str,
        policy: AuthenticationPolicy,
        registrar: Option<(Registrar, Duration)>,
    ) -> Result<MasterHandle, SpawnError> {
        let master_ref: Arc<OnceLock<ProcessRef<Master>>> = Arc::new(OnceLock::new());
        let sink_ref = master_ref.clone();
        let api_master = master_ref.clone();
        let allocator = node.spawn_ref(
            "allocator",
            AllocatorProcess::new(
                HierarchicalAllocator::default(),
                DEFAULT_ALLOCATION_INTERVAL,
                Box::new(move |allocations, applied| {
                    if let Some(master) = sink_ref.get() {
                        master.dispatch(move |m, ctx| m.offer(ctx, allocations, applied));
                    }
                }),
            ),
        )?;
        let recovered = match registrar {
            Some((registrar, timeout)) => {
                let registry = registrar.registry().clone();
                Some((node.spawn_ref("registrar", registrar)?, registry, timeout))
            }
            None => None,
        };
        let api_authentication = crate::api::ApiAuthentication {
            credentials: policy.credentials.clone(),
            required: policy.frameworks,
            acls: policy.acls.clone(),
        };
        let queue = Arc::new(FeedQueue::default());
        let api = crate::api::ApiGateway::spawn(
            node,
            api_master.clone(),
            queue.clone(),
            master_id,
            api_authentication,
        )?;
        let mut books = Books::default();
        books.set_feed(feed::Feed::new(node.clock().clone(), queue, api.clone()));
        let master = reserved.spawn_ref(Master {
            id: master_id.to_owned(),
            allocator: allocator.clone(),
            books,
            next_id: 0,
            auth: AuthState {
                policy,
                ..Default::default()
            },
            revocations: Revocations::default(),
            metrics: ProcessMetrics::default(),
            registrar: recovered.as_ref().map(|(r, _, _)| r.clone()),
            recovery: Recovery::default(),
            recovered: recovered.map(|(_, registry, timeout)| (registry, timeout)),
            admitting: Default::default(),
            removed_frameworks: Default::default(),
            drains: Default::default(),
            schedule: Default::default(),
            directory: Default::default(),
            health: AgentHealth::default(),
            api: api.clone(),
            cell: Default::default(),
            preemptions: Default::default(),
            role_limits: Default::default(),
            ends: Default::default(),
            allocator_sequence: Default::default(),
        })?;
        let _ = master_ref.set(master.clone());
        Ok(MasterHandle {
            master,
            allocator,
            api,
        })
    }

    /// Applies an event to the allocator process (which then runs a cycle); `refusal` is logged
    /// if the policy rejects it, which only a bookkeeping bug can cause.
    fn tell_allocator(
        &self,
        refusal: &'static str,
        event: impl FnOnce(&mut HierarchicalAllocator) -> Result<(), AllocatorError> + Send + 'static,
    ) {
        self.allocator_sequence.sent_one();
        self.allocator.dispatch(move |p, ctx| {
            if let Err(e) = p.update(ctx, event) {
                // Only a bookkeeping bug gets here; tests assert the counter stays at 0.
                ctx.metrics().counter("master/allocator_refusals").inc();
                tracing::error!(error = %e, "{refusal}");
            }
        });
    }

    /// Pids authenticated with this master, kept up to date as they come and go.
    pub fn principals(&self) -> Principals {
        self.auth.authenticated.clone()
    }

    /// Registered agents by node address, kept up to date as agents come and go.
    pub fn agent_directory(&self) -> AgentDirectory {
        self.directory.clone()
    }

    /// Tells the allocator about an agent (kept out of offers if its machine is drained).
    fn add_to_allocator(&mut self, agent: &str, total: Resources, used: Vec<(String, Resources)>) {
        let drained = self
            .books
            .agent(agent)
            .is_some_and(|a| self.is_drained(&a.info.hostname));
        let admitted = agent.to_owned();
        self.tell_allocator("allocator refused an agent", move |a| {
            a.add_agent(&admitted, total, &used)?;
            if drained {
                a.deactivate_agent(&admitted)?;
            }
            Ok(())
        });
        self.allocator_sequence.admitted(agent);
    }

    /// Changes how agents are pinged and when one counts as gone (from the next ping on).
    pub fn set_agent_health(&mut self, _ctx: &mut Context<Self>, health: AgentHealth) {
        self.health = health;
    }

    /// Agents registered now.
    pub fn agent_count(&self) -> usize {
        self.books.agent_count()
    }

    /// Frameworks registered now (active or not).
    pub fn framework_count(&self) -> usize {
        self.books.framework_count()
    }

    /// Tasks not yet known to be terminal.
    pub fn task_count(&self) -> usize {
        self.books.task_count()
    }

    /// The state the master holds for `task` of `framework`, while it is not terminal.
    pub fn task_state(&self, framework: &str, task: &str) -> Option<TaskState> {
        self.books
            .task(&(framework.to_owned(), task.to_owned()))
            .map(|t| t.state)
    }

    /// Agents marked unreachable (after missing pings, or not back after a failover), sorted.
    pub fn unreachable_agents(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.recovery.unreachable.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Offers outstanding.
    pub fn offer_count(&self) -> usize {
        self.books.offer_count()
    }

    /// Whatever is wrong with the master's accounting of agents, offers and tasks (an agent's
    /// used and offered resources exceeding its total, indexes that disagree), one line each;
    /// empty when sound. Simulations call it after every step.
    pub fn audit(&self) -> Vec<String> {
        self.books.audit()
    }

    fn next(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{}-{kind}{:04}", self.id, self.next_id)
    }

    /// Logs and counts a task-state move the table refused (the task keeps its state).
    fn refuse_move(&self, framework: &str, task: &str, refused: IllegalTaskMove) {
        self.metrics.inc(|m| &m.task_state_moves_refused);
        tracing::warn!(%framework, %task, "task state kept: {refused}");
    }

    fn info(&self, ctx: &Context<Self>) -> MasterInfo {
        MasterInfo {
            id: self.id.clone(),
            pid: ctx.pid().to_string(),
            port: u32::from(ctx.pid().port()),
            ..Default::default()
        }
    }

    /// Sends the framework a status update that the master itself generates (no
    /// acknowledgement expected).
    fn report(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        task: &TaskInfo,
        state: TaskState,
        reason: Reason,
        why: &str,
    ) {
        if reason != Reason::Reconciliation {
            self.count_task_end(ctx, state);
        }
        let Some(entry) = self.books.framework(framework) else {
            return;
        };
        let now = ctx.node().clock().unix_seconds();
        let status = TaskStatus {
            task_id: task.task_id.clone(),
            state: state as i32,
            source: Source::Master as i32,
            reason: Some(reason as i32),
            message: why.to_owned(),
            timestamp: now,
            ..Default::default()
        };
        ctx.send(
            &entry.pid,
            StatusUpdateMessage {
                update: Some(StatusUpdate {
                    framework_id: Some(FrameworkId {
                        value: framework.to_owned(),
                    }),
                    status: Some(status),
                    timestamp: now,
                    ..Default::default()
                }),
                pid: String::new(),
            },
        );
    }

    /// Who may send: an agent (proven by its role on a secure master); for a task the master
    /// knows, that task's agent (its node and, when secure, its principal).
    fn status_update(&mut self, ctx: &mut Context<Self>, from: Upid, msg: StatusUpdateMessage) {
        if !ctx.authorize(roles::AGENT) {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        }
        let Some(update) = msg.update.as_ref() else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        let framework = update.framework_id.text().to_owned();
        let Some(status) = update.status.as_ref() else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let key = (framework.clone(), task_id.clone());
        if let Some(task) = self.books.task(&key) {
            // The agent's status update manager sends on its behalf, from the agent's node.
            if self.sender_agent(ctx, &from, Some(task.agent())).is_none() {
                tracing::warn!(%from, %framework, task = %task_id, "status update from a process that is not the task's agent");
                return;
            }
            let moved = self.books.move_task(&key, state, Some(status));
            if let Some(Err(refused)) = moved {
                self.refuse_move(&framework, &task_id, refused);
            } else if state.is_terminal() {
                self.count_task_end(ctx, state);
                if let Some(task) = self.books.remove_task(&key) {
                    let (agent, resources) = task.into_placement();
                    self.ends
                        .ended(key.clone(), &agent, state, update.uuid.clone());
                    self.recover(&framework, &agent, resources, None);
                }
                self.settle_drains();
            }
        } else if state.is_terminal() && self.books.framework(&framework).is_some() {
            // The end of a task the master does not hold (its agent came back to a new master
            // listing it ended, or was removed meanwhile): forwarded below, so answered for
            // until acknowledged — the master never contradicts what it forwarded.
            self.ends
                .ended(key, update.slave_id.text(), state, update.uuid.clone());
        }
        if let Some(entry) = self.books.framework(&framework) {
            ctx.send(&entry.pid, msg);
        }
    }

    fn acknowledge(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: StatusUpdateAcknowledgementMessage,
    ) {
        if self
            .sender_framework(ctx, &from, Some(msg.framework_id.text()))
            .is_none()
        {
            return;
        }
        self.ends.acknowledged(
            &(
                msg.framework_id.text().to_owned(),
                msg.task_id.text().to_owned(),
            ),
            &msg.uuid,
        );
        let agent = msg.slave_id.text();
        match self.books.agent(agent) {
            Some(entry) => ctx.send(&entry.pid().clone(), msg),
            None => self.metrics.inc(|m| &m.invalid_messages),
        }
    }
}

impl Master {
    fn unregister_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: UnregisterFrameworkMessage,
    ) {
        let Some(framework) = self.sender_framework(ctx, &from, Some(msg.framework_id.text()))
        else {
            return;
        };
        self.remove_framework(ctx, &framework);
    }

    /// Removes a framework: its tasks' agents are told to shut it down, its offers go away and
    /// so does its place in the allocator (with everything it held).
    fn remove_framework(&mut self, ctx: &mut Context<Self>, framework: &str) {
        let Some(removed) = self.books.remove_framework(framework) else {
            return;
        };
        tracing::info!(%framework, "framework removed");
        self.ends.forget_framework(framework);
        self.drop_cell_subscriber(framework);
        self.cell.forget_budget(framework);
        if self.removed_frameworks.len() == MAX_REMOVED_FRAMEWORKS {
            self.removed_frameworks.pop_front();
        }
        self.removed_frameworks.push_back(framework.to_owned());
        self.persist(
            ctx,
            Operation::RemoveFramework(framework.to_owned()),
            |_, _| {},
        );
        let mut agents = removed.entry.agents;
        agents.extend(
            removed
                .tasks
                .iter()
                .map(|(_, task)| task.agent().to_owned()),
        );
        for agent in agents {
            if let Some(entry) = self.books.agent(&agent) {
                ctx.send(
                    entry.pid(),
                    ShutdownFrameworkMessage {
                        framework_id: Some(FrameworkId {
                            value: framework.to_owned(),
                        }),
                    },
                );
            }
        }
        let framework = framework.to_owned();
        self.tell_allocator("allocator refused to remove a framework", move |a| {
            a.remove_framework(&framework)
        });
    }

    fn kill_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: KillTaskMessage) {
        let Some(framework) = self.sender_framework(ctx, &from, Some(msg.framework_id.text()))
        else {
            return;
        };
        let task_id = msg.task_id.text().to_owned();
        let agent = self
            .books
            .task(&(framework.clone(), task_id.clone()))
            .and_then(|t| self.books.agent(t.agent()))
            .map(|a| a.pid().clone());
        match agent {
            Some(pid) => {
                let key = (framework, task_id);
                let refused = self.books.move_task(&key, TaskState::TaskKilling, None);
                if let Some(Err(refused)) = refused {
                    self.refuse_move(&key.0, &key.1, refused);
                }
                ctx.send(&pid, msg);
            }
            None if self
                .ends
                .get(&(framework.clone(), task_id.clone()))
                .is_some() =>
            {
                // The task ended and its end is on its way to the framework (resent until
                // acknowledged): answering TASK_LOST would contradict it. A framework that
                // retries a kill, as Mesos advises, meets this whenever the task ends between
                // two of its kills.
                tracing::debug!(%framework, task = %task_id, "kill of a task that has ended; its end stands");
            }
            None => {
                // Mesos answers a kill of an unknown task with TASK_LOST so that the framework
                // stops waiting for it.
                let task = TaskInfo {
                    task_id: msg.task_id,
                    ..Default::default()
                };
                self.report(
                    ctx,
                    &framework,
                    &task,
                    TaskState::TaskLost,
                    Reason::TaskUnknown,
                    "no such task",
                );
            }
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ReconcileTasksMessage) {
        let Some(framework) = self.sender_framework(ctx, &from, Some(msg.framework_id.text()))
        else {
            return;
        };
        // (task, the agent the framework believes it runs on)
        let asked: Vec<(String, String)> = if msg.statuses.is_empty() {
            let mut all: Vec<(String, String)> = self
                .books
                .tasks()
                .filter(|((f, _), _)| *f == framework)
                .map(|((_, t), task)| (t.clone(), task.agent().to_owned()))
                .collect();
            all.extend(
                self.ends
                    .of_framework(&framework)
                    .map(|(t, a)| (t.to_owned(), a.to_owned())),
            );
            all.sort();
            all
        } else {
            msg.statuses
                .iter()
                .filter_map(|s| {
                    let task = s.task_id.as_ref()?.value.clone();
                    Some((task, s.agent_id.text().to_owned()))
                })
                .collect()
        };
        // Unknown tasks of registered agents, by agent: the agents answer for them.
        let mut ask_agents: BTreeMap<String, Vec<TaskStatus>> = BTreeMap::new();
        for (task_id, agent) in asked {
            let key = (framework.clone(), task_id.clone());
            let state = match (self.books.task(&key), self.ends.get(&key)) {
                (Some(task), _) => task.state,
                (None, Some(end)) => end,
                (None, None) => match self.unknown_task_agent(&agent) {
                    // Its agent may still bring it back: answered once it does or is
                    // marked unreachable.
                    UnknownTaskAgent::Expected => continue,
                    // Its agent answers LOST (REASON_TASK_UNKNOWN) if it does not know it,
                    // through its status update manager (as for a re-registration that does
                    // not list a task); any launch of it from this master is ahead of the
                    // question on the same connection.
                    UnknownTaskAgent::Registered => {
                        ask_agents
                            .entry(agent.clone())
                            .or_default()
                            .push(reregistration::reconciliation_request(task_id, agent));
                        continue;
                    }
                    UnknownTaskAgent::Unreachable if self.partition_aware(&framework) => {
                        TaskState::TaskUnreachable
                    }
                    UnknownTaskAgent::MarkedGone if self.partition_aware(&framework) => {
                        TaskState::TaskGoneByOperator
                    }
                    UnknownTaskAgent::Unreachable
                    | UnknownTaskAgent::MarkedGone
                    | UnknownTaskAgent::Gone => TaskState::TaskLost,
                },
            };
            let task = TaskInfo {
                task_id: Some(TaskId { value: task_id }),
                ..Default::default()
            };
            self.report(
                ctx,
                &framework,
                &task,
                state,
                Reason::Reconciliation,
                "reconciliation",
            );
        }
        for (agent, statuses) in ask_agents {
            if let Some(entry) = self.books.agent(&agent) {
                ctx.send(
                    entry.pid(),
                    ReconcileTasksMessage {
                        framework_id: Some(FrameworkId {
                            value: framework.clone(),
                        }),
                        statuses,
                    },
                );
            }
        }
    }

    /// Removes an agent: its offers are rescinded, its tasks reported LOST (UNREACHABLE to
    /// partition-aware frameworks), its resources leave the allocator.
    fn remove_agent(&mut self, ctx: &mut Context<Self>, agent: &str, why: &str) {
        self.take_agent_off(ctx, agent, why, AgentRemoval::Unreachable);
    }

    /// Takes a registered agent off the books as `removal` says; false if it was not there.
    fn take_agent_off(
        &mut self,
        ctx: &mut Context<Self>,
        agent: &str,
        why: &str,
        removal: AgentRemoval,
    ) -> bool {
        let (aware_end, reason) = match removal {
            AgentRemoval::Unreachable => (TaskState::TaskUnreachable, Reason::AgentRemoved),
            AgentRemoval::Gone => (
                TaskState::TaskGoneByOperator,
                Reason::AgentRemovedByOperator,
            ),
        };
        let Some(removed) = self.books.remove_agent(agent, aware_end) else {
            return false;
        };
        self.directory.remove(removed.entry.pid());
        tracing::warn!(%agent, %why, ?removal, "agent removed");
        self.allocator_sequence.removed(agent);
        if removal == AgentRemoval::Unreachable {
            self.mark_unreachable(ctx, agent);
        }
        self.metrics.inc(|m| &m.agents_removed);
        self.rescind(ctx, removed.offers);
        for ((framework, task_id), _) in removed.tasks {
            // Frameworks that do not know the newer states hear TASK_LOST, as from Mesos.
            let (state, reason) = if self.partition_aware(&framework) {
                (aware_end, reason)
            } else {
                (TaskState::TaskLost, Reason::AgentRemoved)
            };
            let task = TaskInfo {
                task_id: Some(TaskId { value: task_id }),
                ..Default::default()
            };
            self.report(ctx, &framework, &task, state, reason, why);
        }
        for (_, f) in self.books.frameworks() {
            ctx.send(
                &f.pid,
                LostSlaveMessage {
                    slave_id: Some(AgentId {
                        value: agent.to_owned(),
                    }),
                },
            );
        }
        self.settle_drains();
        let agent = agent.to_owned();
        self.tell_allocator("allocator refused to remove an agent", move |a| {
            a.remove_agent(&agent)
        });
        true
    }
}

/// How a registered agent leaves the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentRemoval {
    /// It stopped answering: it may come back (its tasks UNREACHABLE).
    Unreachable,
    /// An operator marked it gone: it never comes back under its id (its tasks
    /// GONE_BY_OPERATOR).
    Gone,
}

impl Master {
    /// Whether a framework understands TASK_UNREACHABLE (others get TASK_LOST).
    fn partition_aware(&self, framework: &str) -> bool {
        self.books.framework(framework).is_some_and(|f| {
            f.info.capabilities.iter().any(|c| {
                c.r#type == protos::v1::framework_info::capability::Type::PartitionAware as i32
            })
        })
    }
}

impl Process for Master {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(MasterMetrics {
            agents_registered: m.counter("master/agents_registered"),
            agents_removed: m.counter("master/agents_removed"),
            frameworks_registered: m.counter("master/frameworks_registered"),
            offers_sent: m.counter("master/offers_sent"),
            offers_declined: m.counter("master/offers_declined"),
            offers_rescinded: m.counter("master/offers_rescinded"),
            offers_accepted: m.counter("master/offers_accepted"),
            tasks_launched: m.counter("master/tasks_launched"),
            tasks_refused: m.counter("master/tasks_refused"),
            invalid_messages: m.counter("master/invalid_messages"),
            task_state_moves_refused: m.counter("master/task_state_moves_refused"),
            authentication_failures: m.counter("master/authentication_failures"),
            registrations_refused: m.counter("master/registrations_refused"),
            tasks_revoked: m.counter("master/tasks_revoked"),
            operator_requests_refused: m.counter("master/operator_requests_refused"),
            allocations_overtaken: m.counter("master/allocations_overtaken_by_commits"),
            allocations_stale: m.counter("master/allocations_stale"),
            offers_declined_void: m.counter("master/offers_declined_void"),
        });
        // Before any message: re-registrations held while the registry was read find the
        // agents they are expected as.
        if let Some((registry, timeout)) = self.recovered.take() {
            self.start_recovery(ctx, &registry, timeout);
        }
        self.start_cell(ctx);
        install_counted(ctx, "authenticate", Self::authenticate);
        ctx.install(Self::authentication_response);
        self.refresh_gauges(ctx);
        gauges::install_event_queue_gauges(ctx);
        install_counted(ctx, "register_slave", Self::register_slave);
        install_counted(ctx, "register_framework", Self::register_framework);
        install_counted(ctx, "decline_offers", Self::decline);
        install_counted(ctx, "launch_tasks", Self::accept);
        install_counted(ctx, "status_update", Self::status_update);
        install_counted(ctx, "status_update_acknowledgement", Self::acknowledge);
        ctx.install(Self::pong);
        install_counted(ctx, "kill_task", Self::kill_task);
        install_counted(ctx, "reconcile_tasks", Self::reconcile);
        install_counted(ctx, "unregister_framework", Self::unregister_framework);
        install_counted(ctx, "reregister_slave", Self::reregister_slave);
        install_counted(ctx, "reregister_framework", Self::reregister_framework);
        install_counted(ctx, "revive_offers", Self::revive);
        install_counted(ctx, "suppress_offers", Self::suppress);
        install_counted(ctx, "framework_to_executor", Self::framework_to_executor);
        ctx.install(Self::shutdown_executor);
        install_counted(ctx, "executor_to_framework", Self::executor_to_framework);
        install_counted(ctx, "exited_executor", Self::exited_executor);
        ctx.install(Self::subscribe_cell);
        ctx.install(Self::commit_transaction);
        ctx.route("/teardown", Self::teardown);
        ctx.route("/maintenance/schedule", Self::maintenance_schedule_route);
        ctx.route("/maintenance/status", Self::maintenance_status_route);
        ctx.route("/machine/down", Self::machine_down_route);
        ctx.route("/machine/up", Self::machine_up_route);
        ctx.route("/quota", Self::quota_route);
        ctx.route("/quota/*", Self::remove_quota_route);
        let state_routes: [(&str, state_routes::StateRoute); 7] = [
            ("/state", crate::api::state_json::routes::state_route),
            (
                "/state-summary",
                crate::api::state_json::routes::state_summary_route,
            ),
            ("/slaves", crate::api::state_json::routes::slaves_route),
            (
                "/frameworks",
                crate::api::state_json::routes::frameworks_route,
            ),
            ("/tasks", crate::api::state_json::routes::tasks_route),
            ("/roles", crate::api::state_json::routes::roles_route),
            ("/flags", crate::api::state_json::routes::flags_route),
        ];
        for (path, route) in state_routes {
            ctx.route(path, move |m: &mut Master, ctx, req| {
                m.forward_to_api(ctx, req, route)
            });
            // Mesos serves every endpoint with a `.json` suffix too.
            ctx.route(&format!("{path}.json"), move |m: &mut Master, ctx, req| {
                m.forward_to_api(ctx, req, route)
            });
        }
        // Mesos's /master/redirect: to the leading master, which this one is (standbys
        // redirect every /master/ path to the leader, this one included).
        ctx.route(
            "/redirect",
            |_: &mut Master, ctx: &mut Context<Master>, _| {
                let location = format!("//{}", ctx.pid().address());
                libactor::HttpResponse::text(307, "").with_header("Location", &location)
            },
        );
        ctx.route("/health", |_: &mut Master, _: &mut Context<Master>, _| {
            libactor::HttpResponse::text(200, "")
        });
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        self.forget_authentication(pid);
        self.scheduler_exited(ctx, pid);
    }
}
