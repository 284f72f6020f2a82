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
//! - `keel.internal.UnregisterFrameworkMessage` (scheduler): teardown; its agents get
//!   `ShutdownFrameworkMessage`, its offers are withdrawn, it leaves the allocator
//! - `keel.internal.ReconcileTasksMessage` (scheduler) → the latest state of each task asked
//!   about (explicit), or of all its tasks (implicit, no statuses given)
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

use protos::{IdText, IllegalTaskMove};
use std::collections::HashMap;

use crate::fast_hash::FastSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libactor::metrics::Counter;
use libactor::{Context, Node, Process, ProcessRef, Reservation, SpawnError, Upid};
use protos::internal::{
    AcceptOffersMessage, DeclineOffersMessage, FrameworkRegisteredMessage, KillTaskMessage,
    LostSlaveMessage, PingSlaveMessage, PongSlaveMessage, ReconcileTasksMessage,
    RegisterFrameworkMessage, RegisterSlaveMessage, RescindResourceOfferMessage,
    ResourceOffersMessage, RunTaskMessage, ShutdownFrameworkMessage, SlaveRegisteredMessage,
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
    UnregisterFrameworkMessage,
};
use protos::v1::task_status::{Reason, Source};
use protos::v1::{
    AgentId, AgentInfo, FrameworkId, FrameworkInfo, MasterInfo, Offer, OfferId, TaskId, TaskInfo,
    TaskState, TaskStatus,
};
use resources::Resources;

use crate::allocator::{
    Allocation, Allocator, AllocatorError, AllocatorProcess, HierarchicalAllocator, RefuseFilter,
    DEFAULT_ALLOCATION_INTERVAL,
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
/// How the master decides an agent is gone: a ping every `ping_timeout`, removal after
/// `max_missed` unanswered in a row (Mesos's `--agent_ping_timeout`, `--max_agent_ping_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentHealth {
    /// How long the master waits for each pong.
    pub ping_timeout: Duration,
    /// Pongs an agent may miss in a row before it is removed.
    pub max_missed: u32,
}

impl Default for AgentHealth {
    fn default() -> Self {
        AgentHealth {
            ping_timeout: AGENT_PING_TIMEOUT,
            max_missed: MAX_AGENT_PING_TIMEOUTS,
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
mod authenticator;
mod books;
mod gauges;
mod maintenance;
mod recovery;
mod relay;
mod reregistration;
mod revocation;

pub use agent_directory::AgentDirectory;
use authenticator::Registrant;
pub use authenticator::{AuthenticationPolicy, Principals};
use books::{Books, FrameworkEntry, OfferEntry, TaskEntry};
pub use maintenance::{DrainError, DrainOutcome, MAX_DRAINED};
pub use recovery::DEFAULT_AGENT_REREGISTER_TIMEOUT;
use recovery::{Recovery, UnknownTaskAgent};
pub use revocation::RevocationPolicy;
use revocation::Revocations;
mod state_json;

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
    metrics: Option<MasterMetrics>,
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
    /// Registered agents by node address, shared with the device manager.
    directory: AgentDirectory,
}

/// The running master and its allocator.
#[derive(Debug, Clone)]
pub struct MasterHandle {
    /// The master process.
    pub master: ProcessRef<Master>,
    /// Its allocator process.
    pub allocator: AllocatorRef,
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
        let allocator = node.spawn_ref(
            "allocator",
            AllocatorProcess::new(
                HierarchicalAllocator::default(),
                DEFAULT_ALLOCATION_INTERVAL,
                Box::new(move |allocations| {
                    if let Some(master) = sink_ref.get() {
                        master.dispatch(move |m, ctx| m.offer(ctx, allocations));
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
        let master = reserved.spawn_ref(Master {
            id: master_id.to_owned(),
            allocator: allocator.clone(),
            books: Books::default(),
            next_id: 0,
            auth: AuthState {
                policy,
                ..Default::default()
            },
            revocations: Revocations::default(),
            metrics: None,
            registrar: recovered.as_ref().map(|(r, _, _)| r.clone()),
            recovery: Recovery::default(),
            recovered: recovered.map(|(_, registry, timeout)| (registry, timeout)),
            admitting: Default::default(),
            removed_frameworks: Default::default(),
            drains: Default::default(),
            directory: Default::default(),
            health: AgentHealth::default(),
        })?;
        let _ = master_ref.set(master.clone());
        Ok(MasterHandle { master, allocator })
    }

    /// Applies an event to the allocator process (which then runs a cycle); `refusal` is logged
    /// if the policy rejects it, which only a bookkeeping bug can cause.
    fn tell_allocator(
        &self,
        refusal: &'static str,
        event: impl FnOnce(&mut HierarchicalAllocator) -> Result<(), AllocatorError> + Send + 'static,
    ) {
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
    fn add_to_allocator(&self, agent: &str, total: Resources, used: Vec<(String, Resources)>) {
        let drained = self
            .books
            .agent(agent)
            .is_some_and(|a| self.is_drained(&a.info.hostname));
        let agent = agent.to_owned();
        self.tell_allocator("allocator refused an agent", move |a| {
            a.add_agent(&agent, total, &used)?;
            if drained {
                a.deactivate_agent(&agent)?;
            }
            Ok(())
        });
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

    fn next(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{}-{kind}{:04}", self.id, self.next_id)
    }

    fn count(&self, pick: impl Fn(&MasterMetrics) -> &Counter) {
        if let Some(m) = &self.metrics {
            pick(m).inc();
        }
    }

    /// Logs and counts a task-state move the table refused (the task keeps its state).
    fn refuse_move(&self, framework: &str, task: &str, refused: IllegalTaskMove) {
        self.count(|m| &m.task_state_moves_refused);
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

    fn register_slave(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RegisterSlaveMessage) {
        if let Err(why) = self.admit(&from, Registrant::Agent, "") {
            self.count(|m| &m.registrations_refused);
            tracing::warn!(%from, %why, "refused an agent registration");
            return;
        }
        let info = msg.slave.unwrap_or_default();
        let total = match validate_agent(&info) {
            Ok(total) => total,
            Err(why) => {
                self.count(|m| &m.invalid_messages);
                tracing::warn!(%from, %why, "refused an agent registration");
                return;
            }
        };
        if let Some(id) = self.books.agent_id_by_pid(&from) {
            // A retried registration: answer again, change nothing.
            ctx.send(
                &from,
                SlaveRegisteredMessage {
                    slave_id: Some(AgentId { value: id.clone() }),
                },
            );
            return;
        }
        if !self.admitting.insert(from.clone()) {
            return; // a retry while its admission is being written
        }
        let id = self.next("S");
        let mut info = info;
        info.id = Some(AgentId { value: id.clone() });
        self.persist(ctx, Operation::AdmitAgent(info.clone()), move |m, ctx| {
            m.admitting.remove(&from);
            m.admit_agent(ctx, from, id, info, total);
        });
    }

    /// Adds an agent whose admission is durable, and tells it its id.
    fn admit_agent(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        id: String,
        info: AgentInfo,
        total: Resources,
    ) {
        tracing::info!(agent = %id, %from, resources = %total, "agent registered");
        self.directory.insert(&from, &info.hostname);
        if let Err(e) = self.books.add_agent(&id, from.clone(), info, total.clone()) {
            tracing::error!(agent = %id, error = %e, "a fresh agent id is taken");
            return;
        }
        self.watch_agent(ctx, id.clone());
        self.count(|m| &m.agents_registered);
        self.add_to_allocator(&id, total, Vec::new());
        ctx.send(
            &from,
            SlaveRegisteredMessage {
                slave_id: Some(AgentId { value: id }),
            },
        );
    }

    fn register_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: RegisterFrameworkMessage,
    ) {
        let mut info = msg.framework.unwrap_or_default();
        match self.admit(&from, Registrant::Framework, &info.principal) {
            Ok(principal) => {
                if let Some(p) = principal {
                    info.principal = p;
                }
            }
            Err(why) => {
                self.refuse_framework(ctx, &from, &why);
                return;
            }
        }
        if info.name.trim().is_empty() || info.user.trim().is_empty() {
            self.count(|m| &m.invalid_messages);
            tracing::warn!(%from, "refused a framework registration without a name or user");
            return;
        }
        let role = if info.role.is_empty() {
            "*".to_owned()
        } else {
            info.role.clone()
        };
        if let Some((id, _)) = self.books.frameworks().find(|(_, f)| f.pid == from) {
            // A retried registration: answer again, change nothing.
            let reply = FrameworkRegisteredMessage {
                framework_id: Some(FrameworkId { value: id.clone() }),
                master_info: Some(self.info(ctx)),
            };
            ctx.send(&from, reply);
            return;
        }
        if !self.admitting.insert(from.clone()) {
            return; // a retry while its admission is being written
        }
        let id = self.next("F");
        info.id = Some(FrameworkId { value: id.clone() });
        self.persist(ctx, Operation::AddFramework(info.clone()), move |m, ctx| {
            m.admitting.remove(&from);
            m.admit_framework(ctx, from, id, info, role);
        });
    }

    /// Adds a framework whose admission is durable, and tells its scheduler its id.
    fn admit_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        id: String,
        info: FrameworkInfo,
        role: String,
    ) {
        tracing::info!(framework = %id, name = %info.name, %role, "framework registered");
        ctx.link(&from);
        if let Err(e) = self
            .books
            .add_framework(&id, FrameworkEntry::new(from.clone(), info))
        {
            tracing::error!(framework = %id, error = %e, "a fresh framework id is taken");
            return;
        }
        self.count(|m| &m.frameworks_registered);
        let framework = id.clone();
        self.tell_allocator("allocator refused a new framework", move |a| {
            a.add_framework(&framework, &role, false)
        });
        let master_info = self.info(ctx);
        ctx.send(
            &from,
            FrameworkRegisteredMessage {
                framework_id: Some(FrameworkId { value: id }),
                master_info: Some(master_info),
            },
        );
    }

    /// Tells a scheduler its registration is refused (its driver aborts with the reason).
    fn refuse_framework(&self, ctx: &mut Context<Self>, from: &Upid, why: &str) {
        self.count(|m| &m.registrations_refused);
        tracing::warn!(%from, %why, "refused a framework registration");
        ctx.send(
            from,
            protos::internal::FrameworkErrorMessage {
                message: format!("registration refused: {why}"),
            },
        );
    }

    /// Turns a cycle's allocations into offers, one message per framework.
    fn offer(&mut self, ctx: &mut Context<Self>, allocations: Vec<Allocation>) {
        let mut by_framework: HashMap<String, Vec<Offer>> = HashMap::new();
        for allocation in allocations {
            if !self.books.has_framework(&allocation.framework)
                || !self.books.has_agent(&allocation.agent)
            {
                // Removed since the cycle ran: the removal reached the allocator after this
                // allocation, so the allocator forgot it with the framework or agent. Nothing
                // to give back.
                tracing::debug!(framework = %allocation.framework, agent = %allocation.agent, "allocation for a removed framework or agent dropped");
                continue;
            }
            let id = self.next("O");
            let offer = Offer {
                id: Some(OfferId { value: id.clone() }),
                framework_id: Some(FrameworkId {
                    value: allocation.framework.clone(),
                }),
                agent_id: Some(AgentId {
                    value: allocation.agent.clone(),
                }),
                resources: allocation.resources.to_proto(),
                ..Default::default()
            };
            let entry = OfferEntry {
                framework: allocation.framework.clone(),
                agent: allocation.agent,
                resources: allocation.resources,
            };
            if let Err(e) = self.books.add_offer(&id, entry) {
                // The allocator and the books disagree: a bug, never an offer.
                debug_assert!(false, "offer {id} refused by the books: {e}");
                tracing::error!(offer = %id, error = %e, "allocation refused by the master's books");
                continue;
            }
            let timed = id.clone();
            ctx.delay(OFFER_TIMEOUT, move |m: &mut Master, ctx| {
                m.offer_timeout(ctx, timed)
            });
            by_framework
                .entry(allocation.framework)
                .or_default()
                .push(offer);
        }
        for (framework, offers) in by_framework {
            if let Some(entry) = self.books.framework(&framework) {
                if let Some(m) = &self.metrics {
                    m.offers_sent.add(offers.len() as u64);
                }
                // A cycle over a large cluster can offer a framework every agent at once; one
                // message per chunk keeps each under the frame limit.
                for chunk in offers.chunks(MAX_OFFERS_PER_MESSAGE) {
                    ctx.send(
                        &entry.pid,
                        ResourceOffersMessage {
                            offers: chunk.to_vec(),
                            pids: Vec::new(),
                        },
                    );
                }
            }
        }
    }

    fn recover(
        &self,
        framework: &str,
        agent: &str,
        resources: Resources,
        refuse: Option<RefuseFilter>,
    ) {
        if resources.is_empty() {
            return;
        }
        let (framework, agent) = (framework.to_owned(), agent.to_owned());
        self.tell_allocator("allocator refused recovered resources", move |a| {
            a.recover(&framework, &agent, &resources, refuse)
        });
    }

    /// Takes the framework's offers out of circulation; `None` if any is unknown or not its.
    fn take_offers(&mut self, framework: &str, ids: &[OfferId]) -> Option<Vec<OfferEntry>> {
        let valid = !ids.is_empty()
            && ids.iter().all(|id| {
                self.books
                    .offer(&id.value)
                    .is_some_and(|o| o.framework == framework)
            });
        if !valid {
            return None;
        }
        Some(
            ids.iter()
                .filter_map(|id| self.books.take_offer(&id.value))
                .collect(),
        )
    }

    fn refuse_filter(
        &self,
        ctx: &Context<Self>,
        filters: Option<&protos::v1::Filters>,
        resources: &Resources,
    ) -> Option<RefuseFilter> {
        let seconds = filters
            .and_then(|f| f.refuse_seconds)
            .unwrap_or(DEFAULT_REFUSE_SECONDS);
        if !seconds.is_finite() || seconds <= 0.0 {
            return None;
        }
        Some(RefuseFilter {
            resources: resources.clone(),
            until: ctx.node().clock().now()
                + Duration::from_secs_f64(seconds.min(MAX_REFUSE_SECONDS)),
        })
    }

    fn decline(&mut self, ctx: &mut Context<Self>, from: Upid, msg: DeclineOffersMessage) {
        let framework = msg.framework_id.text().to_owned();
        if self
            .books
            .framework(&framework)
            .is_none_or(|f| f.pid != from)
        {
            self.count(|m| &m.invalid_messages);
            return;
        }
        let Some(offers) = self.take_offers(&framework, &msg.offer_ids) else {
            self.count(|m| &m.invalid_messages);
            tracing::warn!(%framework, "declined unknown offers");
            return;
        };
        for offer in offers {
            self.count(|m| &m.offers_declined);
            let filter = self.refuse_filter(ctx, msg.filters.as_ref(), &offer.resources);
            self.recover(&framework, &offer.agent, offer.resources, filter);
        }
    }

    fn accept(&mut self, ctx: &mut Context<Self>, from: Upid, msg: AcceptOffersMessage) {
        let framework = msg.framework_id.text().to_owned();
        let Some(entry) = self.books.framework(&framework) else {
            self.count(|m| &m.invalid_messages);
            return;
        };
        if entry.pid != from {
            self.count(|m| &m.invalid_messages);
            tracing::warn!(%from, %framework, "offers accepted by a process that is not the framework's scheduler");
            return;
        }
        let (scheduler, info) = (entry.pid.clone(), entry.info.clone());
        let offers = match self.take_offers(&framework, &msg.offer_ids) {
            Some(offers) if offers.windows(2).all(|w| w[0].agent == w[1].agent) => offers,
            taken => {
                // Give back whatever valid offers were taken, and tell the framework.
                for offer in taken.into_iter().flatten() {
                    self.recover(&framework, &offer.agent, offer.resources, None);
                }
                for task in &msg.tasks {
                    self.refuse_task(
                        ctx,
                        &framework,
                        task,
                        TaskState::TaskDropped,
                        Reason::InvalidOffers,
                        "offers are unknown, not this framework's, or on different agents",
                    );
                }
                return;
            }
        };
        self.count(|m| &m.offers_accepted);
        let agent = offers[0].agent.clone();
        let mut remaining = Resources::new();
        for offer in &offers {
            let _ = remaining.add(&offer.resources);
        }
        for task in &msg.tasks {
            match self.validate_task(&framework, task, &remaining) {
                Ok(needed) => {
                    remaining = remaining.checked_sub(&needed).unwrap_or_default();
                    let task_id = task.task_id.text().to_owned();
                    let executor = task
                        .executor
                        .as_ref()
                        .and_then(|e| e.executor_id.as_ref())
                        .map_or_else(|| task_id.clone(), |e| e.value.clone());
                    let entry = TaskEntry::new(
                        self.next_id,
                        task.name.clone(),
                        executor,
                        agent.clone(),
                        TaskState::TaskStaging,
                        needed,
                    );
                    if let Err(e) = self.books.add_task((framework.clone(), task_id), entry) {
                        // Validation passed and its offer was taken: a bug, never a launch.
                        debug_assert!(false, "launch refused by the books: {e}");
                        tracing::error!(%framework, error = %e, "launch refused by the master's books");
                        continue;
                    }
                    let mut launched = task.clone();
                    launched.agent_id = Some(AgentId {
                        value: agent.clone(),
                    });
                    if let Some(f) = self.books.framework_mut(&framework) {
                        f.agents.insert(agent.clone());
                    }
                    if let Some(agent_entry) = self.books.agent(&agent) {
                        ctx.send(
                            agent_entry.pid(),
                            RunTaskMessage {
                                framework_id: msg.framework_id.clone(),
                                framework: Some(info.clone()),
                                pid: scheduler.to_string(),
                                task: Some(launched),
                            },
                        );
                        self.count(|m| &m.tasks_launched);
                    }
                }
                Err(why) => self.refuse_task(
                    ctx,
                    &framework,
                    task,
                    TaskState::TaskError,
                    Reason::TaskInvalid,
                    &why,
                ),
            }
        }
        let filter = self.refuse_filter(ctx, msg.filters.as_ref(), &remaining);
        self.recover(&framework, &agent, remaining, filter);
    }

    /// Checks a task against the rest of its offers; returns the resources it takes.
    fn validate_task(
        &self,
        framework: &str,
        task: &TaskInfo,
        remaining: &Resources,
    ) -> Result<Resources, String> {
        let task_id = task.task_id.text();
        if task_id.is_empty() {
            return Err("task has no task_id".into());
        }
        if self
            .books
            .task(&(framework.to_owned(), task_id.to_owned()))
            .is_some()
        {
            return Err(format!(
                "task id {task_id} is already in use by this framework"
            ));
        }
        let needed = Resources::from_proto(&task.resources)
            .map_err(|e| format!("invalid resources: {e}"))?;
        if needed.is_empty() {
            return Err("task asks for no resources".into());
        }
        if task.command.is_none() && task.executor.is_none() {
            return Err("task has neither a command nor an executor".into());
        }
        if !remaining.contains(&needed) {
            return Err(format!(
                "resources {needed} exceed what is left of the offers: {remaining}"
            ));
        }
        Ok(needed)
    }

    fn refuse_task(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        task: &TaskInfo,
        state: TaskState,
        reason: Reason,
        why: &str,
    ) {
        self.count(|m| &m.tasks_refused);
        tracing::info!(%framework, task = ?task.task_id.as_ref().map(|t| &t.value), %why, "launch refused");
        self.report(ctx, framework, task, state, reason, why);
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
        let status = TaskStatus {
            task_id: task.task_id.clone(),
            state: state as i32,
            source: Source::Master as i32,
            reason: Some(reason as i32),
            message: why.to_owned(),
            timestamp: now_seconds(),
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
                    timestamp: now_seconds(),
                    ..Default::default()
                }),
                pid: String::new(),
            },
        );
    }

    fn status_update(&mut self, ctx: &mut Context<Self>, from: Upid, msg: StatusUpdateMessage) {
        let Some(update) = msg.update.as_ref() else {
            self.count(|m| &m.invalid_messages);
            return;
        };
        let framework = update.framework_id.text().to_owned();
        let Some(status) = update.status.as_ref() else {
            self.count(|m| &m.invalid_messages);
            return;
        };
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let key = (framework.clone(), task_id.clone());
        if let Some(task) = self.books.task(&key) {
            // The agent's status update manager sends on its behalf, from the agent's node.
            if self
                .books
                .agent(task.agent())
                .is_none_or(|a| a.pid().address() != from.address())
            {
                self.count(|m| &m.invalid_messages);
                tracing::warn!(%from, %framework, task = %task_id, "status update from a process that is not the task's agent");
                return;
            }
            let moved = self
                .books
                .task_mut(&key)
                .map(|task| task.state.move_to(state));
            if let Some(Err(refused)) = moved {
                self.refuse_move(&framework, &task_id, refused);
            } else if state.is_terminal() {
                self.count_task_end(ctx, state);
                if let Some(task) = self.books.remove_task(&key) {
                    self.recover(&framework, task.agent(), task.resources().clone(), None);
                }
                self.settle_drains();
            }
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
        let framework = msg.framework_id.text();
        if self
            .books
            .framework(framework)
            .is_none_or(|f| f.pid != from)
        {
            self.count(|m| &m.invalid_messages);
            return;
        }
        let agent = msg.slave_id.text();
        match self.books.agent(agent) {
            Some(entry) => ctx.send(&entry.pid().clone(), msg),
            None => self.count(|m| &m.invalid_messages),
        }
    }
}

impl Master {
    fn offer_timeout(&mut self, ctx: &mut Context<Self>, offer_id: String) {
        let Some(offer) = self.books.take_offer(&offer_id) else {
            return;
        };
        tracing::info!(offer = %offer_id, framework = %offer.framework, "offer timed out");
        self.count(|m| &m.offers_rescinded);
        if let Some(f) = self.books.framework(&offer.framework) {
            ctx.send(
                &f.pid,
                RescindResourceOfferMessage {
                    offer_id: Some(OfferId { value: offer_id }),
                },
            );
        }
        self.recover(&offer.framework, &offer.agent, offer.resources, None);
    }

    fn unregister_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: UnregisterFrameworkMessage,
    ) {
        let framework = msg.framework_id.text().to_owned();
        if self
            .books
            .framework(&framework)
            .is_none_or(|f| f.pid != from)
        {
            self.count(|m| &m.invalid_messages);
            return;
        }
        self.remove_framework(ctx, &framework);
    }

    /// Removes a framework: its tasks' agents are told to shut it down, its offers go away and
    /// so does its place in the allocator (with everything it held).
    fn remove_framework(&mut self, ctx: &mut Context<Self>, framework: &str) {
        let Some(removed) = self.books.remove_framework(framework) else {
            return;
        };
        tracing::info!(%framework, "framework removed");
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
        let framework = msg.framework_id.text().to_owned();
        if self
            .books
            .framework(&framework)
            .is_none_or(|f| f.pid != from)
        {
            self.count(|m| &m.invalid_messages);
            return;
        }
        let task_id = msg.task_id.text().to_owned();
        let agent = self
            .books
            .task(&(framework.clone(), task_id.clone()))
            .and_then(|t| self.books.agent(t.agent()))
            .map(|a| a.pid().clone());
        match agent {
            Some(pid) => {
                let key = (framework, task_id);
                let refused = self
                    .books
                    .task_mut(&key)
                    .and_then(|task| task.state.move_to(TaskState::TaskKilling).err());
                if let Some(refused) = refused {
                    self.refuse_move(&key.0, &key.1, refused);
                }
                ctx.send(&pid, msg);
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
        let framework = msg.framework_id.text().to_owned();
        if self
            .books
            .framework(&framework)
            .is_none_or(|f| f.pid != from)
        {
            self.count(|m| &m.invalid_messages);
            return;
        }
        // (task, the agent the framework believes it runs on)
        let asked: Vec<(String, String)> = if msg.statuses.is_empty() {
            let mut all: Vec<(String, String)> = self
                .books
                .tasks()
                .filter(|((f, _), _)| *f == framework)
                .map(|((_, t), task)| (t.clone(), task.agent().to_owned()))
                .collect();
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
        for (task_id, agent) in asked {
            let state = match self.books.task(&(framework.clone(), task_id.clone())) {
                Some(task) => task.state,
                None => match self.unknown_task_agent(&agent) {
                    // Its agent may still bring it back: answered once it does or is
                    // marked unreachable.
                    UnknownTaskAgent::Expected => continue,
                    UnknownTaskAgent::Unreachable if self.partition_aware(&framework) => {
                        TaskState::TaskUnreachable
                    }
                    UnknownTaskAgent::Unreachable | UnknownTaskAgent::Gone => TaskState::TaskLost,
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
    }

    /// Starts pinging a newly (re-)registered agent: its registration counts as its first pong,
    /// so the first ping goes out one ping timeout later (a failover's burst of thousands of
    /// re-registrations is not doubled by as many pings).
    fn watch_agent(&mut self, ctx: &mut Context<Self>, agent: String) {
        let Some(entry) = self.books.agent_mut(&agent) else {
            return;
        };
        entry.pong_received = true;
        ctx.delay(self.health.ping_timeout, move |m: &mut Master, ctx| {
            m.ping_timeout(ctx, agent)
        });
    }

    fn ping(&mut self, ctx: &mut Context<Self>, agent: String) {
        let Some(entry) = self.books.agent_mut(&agent) else {
            return;
        };
        entry.pong_received = false;
        let pid = entry.pid().clone();
        // Armed before the ping leaves (see the status update manager).
        ctx.delay(self.health.ping_timeout, move |m: &mut Master, ctx| {
            m.ping_timeout(ctx, agent)
        });
        ctx.send(&pid, PingSlaveMessage { connected: true });
    }

    fn ping_timeout(&mut self, ctx: &mut Context<Self>, agent: String) {
        let Some(entry) = self.books.agent_mut(&agent) else {
            return;
        };
        if entry.pong_received {
            entry.missed_pings = 0;
        } else {
            entry.missed_pings += 1;
            tracing::warn!(%agent, missed = entry.missed_pings, "agent missed a ping");
        }
        if entry.missed_pings >= self.health.max_missed {
            self.remove_agent(ctx, &agent, "agent did not answer pings");
        } else {
            self.ping(ctx, agent);
        }
    }

    fn pong(&mut self, _ctx: &mut Context<Self>, from: Upid, _msg: PongSlaveMessage) {
        let id = self.books.agent_id_by_pid(&from).cloned();
        match id.and_then(|id| self.books.agent_mut(&id)) {
            Some(entry) => entry.pong_received = true,
            None => self.count(|m| &m.invalid_messages),
        }
    }

    /// Removes an agent: its offers are rescinded, its tasks reported LOST (UNREACHABLE to
    /// partition-aware frameworks), its resources leave the allocator.
    fn remove_agent(&mut self, ctx: &mut Context<Self>, agent: &str, why: &str) {
        let Some(removed) = self.books.remove_agent(agent) else {
            return;
        };
        self.directory.remove(removed.entry.pid());
        tracing::warn!(%agent, %why, "agent removed");
        self.mark_unreachable(ctx, agent);
        self.count(|m| &m.agents_removed);
        self.rescind(ctx, removed.offers);
        for ((framework, task_id), _) in removed.tasks {
            let state = if self.partition_aware(&framework) {
                TaskState::TaskUnreachable
            } else {
                TaskState::TaskLost
            };
            let task = TaskInfo {
                task_id: Some(TaskId { value: task_id }),
                ..Default::default()
            };
            self.report(ctx, &framework, &task, state, Reason::AgentRemoved, why);
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
    }
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

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An agent's resources, if its registration is acceptable.
fn validate_agent(info: &AgentInfo) -> Result<Resources, String> {
    if info.hostname.trim().is_empty() {
        return Err("agent has no hostname".into());
    }
    let total = Resources::from_proto(&info.resources).map_err(|e| e.to_string())?;
    if total.is_empty() {
        return Err("agent offers no resources".into());
    }
    Ok(total)
}

impl Process for Master {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics = Some(MasterMetrics {
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
        });
        // Before any message: re-registrations held while the registry was read find the
        // agents they are expected as.
        if let Some((registry, timeout)) = self.recovered.take() {
            self.start_recovery(ctx, &registry, timeout);
        }
        ctx.install(Self::authenticate);
        ctx.install(Self::authentication_response);
        self.refresh_gauges(ctx);
        ctx.install(Self::register_slave);
        ctx.install(Self::register_framework);
        ctx.install(Self::decline);
        ctx.install(Self::accept);
        ctx.install(Self::status_update);
        ctx.install(Self::acknowledge);
        ctx.install(Self::pong);
        ctx.install(Self::kill_task);
        ctx.install(Self::reconcile);
        ctx.install(Self::unregister_framework);
        ctx.install(Self::reregister_slave);
        ctx.install(Self::reregister_framework);
        ctx.install(Self::revive);
        ctx.install(Self::suppress);
        ctx.install(Self::framework_to_executor);
        ctx.install(Self::executor_to_framework);
        ctx.install(Self::exited_executor);
        ctx.route("/state", Self::state_json);
        ctx.route("/health", |_: &mut Master, _: &mut Context<Master>, _| {
            libactor::HttpResponse::text(200, "")
        });
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        self.forget_authentication(pid);
        self.scheduler_exited(ctx, pid);
    }
}
