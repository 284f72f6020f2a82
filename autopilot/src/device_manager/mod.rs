//! The device manager (Autopilot, Isard 2007): the one strongly consistent holder of every machine's ground
//! truth, and the only one that decides. It runs beside the leading master (`device-manager`
//! on the master's node) and keeps its records in the registrar's store ([`ground_truth`]).
//!
//! Handles: `WatchdogReport` (from each agent's watchdog service), `RepairOutcome` (from the
//! repair service), `RepairServiceAnnouncement` (where orders go). Sends `RepairOrder` to the
//! repair service. Routes: `/device-manager/machines`, `/device-manager/machine?id=`,
//! `/device-manager/audit?since=`, and `POST /device-manager/repair` (operators, HTTP Basic
//! with the master's credentials).
//!
//! Every change to a record leaves an audit record (what, why, which service or operator,
//! when), and is written to the store before the next one is (changes made meanwhile are
//! batched into that next write).
//!
//! [`ground_truth`]: crate::ground_truth

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use authentication::roles;
use coordination::AnyStore;
use libactor::metrics::{Counter, ProcessMetrics};
use libactor::{Context, Process, Upid};
use protos::autopilot::{
    AuditRecord, DeploymentState, HealthState, MachineEvent, MachineRecord, RepairAction,
    WatchdogReport, WatchdogResult,
};
use tokio::sync::watch;

use crate::ground_truth::{self, Recovered, AUDIT, KEYS, MAX_AUDIT, MAX_HISTORY};
use crate::health::{self, choose_action, ErrorWindow, HealthPolicy, Verdict};
use crate::machine_gate::MachineGate;
use crate::repair_limits::RepairLimits;

mod deployment;
mod provisioning;
mod repairs;
mod routes;

pub use provisioning::TypeRule;

/// The device manager's process id.
pub const DEVICE_MANAGER_ID: &str = "device-manager";

/// Where the device manager runs beside the master at `master`.
pub fn device_manager_beside(master: &Upid) -> Result<Upid, libactor::UpidError> {
    Upid::new(DEVICE_MANAGER_ID, master.host().clone(), master.port())
}

/// Longest watchdog text kept.
const MAX_TEXT: usize = 256;
/// Most watchdog results taken from one report.
const MAX_RESULTS: usize = 64;

/// How the device manager decides.
#[derive(Debug, Clone)]
pub struct DeviceManagerConfig {
    /// When errors make a failure and how repairs escalate.
    pub health: HealthPolicy,
    /// How many machines may be in repair at once, and floors per type.
    pub limits: RepairLimits,
    /// The repair service that carries actions out (none: machines wait in Failure).
    pub repair_service: Option<Upid>,
    /// Who may order repairs and deployments over HTTP (none: anyone who reaches the port).
    pub operators: Option<authentication::Credentials>,
    /// Where the deployment server beside it keeps files (a deployment's files must be there).
    pub deployment_dir: Option<std::path::PathBuf>,
    /// How long a rollout's scale unit may take to be Healthy before the rollout rolls back.
    pub unit_timeout: Duration,
    /// Machine types by hostname, first match wins (none: the type the agent declares).
    pub type_rules: Vec<TypeRule>,
    /// New machines stay in Probation for the probation period (burn-in) before they are
    /// Healthy and offered to frameworks.
    pub burn_in: bool,
}

impl Default for DeviceManagerConfig {
    fn default() -> Self {
        DeviceManagerConfig {
            health: HealthPolicy::default(),
            limits: RepairLimits::default(),
            repair_service: None,
            operators: None,
            deployment_dir: None,
            unit_timeout: DEFAULT_UNIT_TIMEOUT,
            type_rules: Vec::new(),
            burn_in: false,
        }
    }
}

/// How long a scale unit may take by default.
pub const DEFAULT_UNIT_TIMEOUT: Duration = Duration::from_secs(3600);

struct Metrics {
    reports: Counter,
    invalid: Counter,
    failures: Counter,
    deferred: Counter,
    moves_refused: Counter,
    orders: Counter,
    recoveries: Counter,
    writes: Counter,
    unauthorized: Counter,
    unverified: Counter,
}

/// The device manager process.
pub struct DeviceManager {
    config: DeviceManagerConfig,
    store: Option<Arc<AnyStore>>,
    machines: BTreeMap<String, MachineRecord>,
    windows: HashMap<String, ErrorWindow>,
    audit: Vec<AuditRecord>,
    next_audit_seq: u64,
    versions: Vec<Option<u64>>,
    /// Shards changed since the last write began.
    dirty: BTreeSet<usize>,
    writing: bool,
    failure: watch::Sender<Option<String>>,
    metrics: ProcessMetrics<Metrics>,
    /// The master's side: machines out of Healthy are not offered, and are drained of their
    /// tasks before a repair.
    gate: Option<Arc<dyn MachineGate>>,
    /// The deployment server beside it, told which machines hold which manifest's files.
    deployment_server: Option<libactor::ProcessRef<crate::deployment_server::DeploymentServer>>,
    /// Active manifests per type and the rollout (persisted under its own key).
    deployment: DeploymentState,
    /// Every change up to this audit record is in the store.
    durable_seq: u64,
}

impl DeviceManager {
    /// A device manager with the ground truth `recovered` from `store` (`None`: memory only).
    pub fn new(
        config: DeviceManagerConfig,
        store: Option<Arc<AnyStore>>,
        recovered: Recovered,
    ) -> DeviceManager {
        let (failure, _) = watch::channel(None);
        let mut versions = recovered.versions;
        versions.resize(KEYS, None);
        DeviceManager {
            config,
            store,
            machines: recovered.machines,
            windows: HashMap::new(),
            audit: recovered.audit,
            next_audit_seq: recovered.next_audit_seq.max(1),
            versions,
            dirty: BTreeSet::new(),
            writing: false,
            failure,
            metrics: ProcessMetrics::default(),
            gate: None,
            deployment_server: None,
            durable_seq: recovered.next_audit_seq.saturating_sub(1),
            deployment: recovered.deployment,
        }
    }

    /// Drains and reactivates machines through `gate` (the master this runs beside).
    pub fn with_gate(mut self, gate: Arc<dyn MachineGate>) -> DeviceManager {
        self.gate = Some(gate);
        self
    }

    /// Tells `server` (the deployment server beside it) which machines hold which files, so
    /// that it can fetch what it lacks from them.
    pub fn with_deployment_server(
        mut self,
        server: libactor::ProcessRef<crate::deployment_server::DeploymentServer>,
    ) -> DeviceManager {
        self.deployment_server = Some(server);
        self
    }

    /// Resolves with why once the ground truth can no longer be written (another device
    /// manager wrote it, or the store failed): this one must stop deciding.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.subscribe()
    }

    /// The machines' records, by id.
    pub fn machines(&self) -> &BTreeMap<String, MachineRecord> {
        &self.machines
    }

    /// The state of the rollout under way or the last one.
    pub fn rollout_state(&self) -> Option<protos::autopilot::RolloutState> {
        self.deployment.rollout.as_ref().map(|r| r.state())
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> &[AuditRecord] {
        &self.audit
    }

    /// Sets the repair service (e.g. once it is spawned).
    pub fn set_repair_service(&mut self, ctx: &mut Context<Self>, repair: Option<Upid>) {
        self.config.repair_service = repair;
        self.dispatch_repairs(ctx);
    }

    /// Records carry Unix times, read from the node's clock (so that a paused test moves them).
    fn now(&self, ctx: &Context<Self>) -> f64 {
        ctx.node().clock().unix_seconds()
    }

    fn record(&mut self, ctx: &Context<Self>, actor: &str, what: String, why: String) {
        let at = self.now(ctx);
        tracing::info!(%actor, %what, %why, "ground truth changed");
        self.audit.push(AuditRecord {
            seq: self.next_audit_seq,
            at,
            actor: actor.to_owned(),
            what,
            why,
        });
        self.next_audit_seq += 1;
        if self.audit.len() > MAX_AUDIT {
            let excess = self.audit.len() - MAX_AUDIT;
            self.audit.drain(..excess);
        }
        self.dirty.insert(AUDIT);
    }

    /// Moves `id` to `state` with `action`, adding to its history and the audit log.
    fn transition(
        &mut self,
        ctx: &mut Context<Self>,
        id: &str,
        state: HealthState,
        action: RepairAction,
        actor: &str,
        why: String,
    ) {
        let now = self.now(ctx);
        let Some(m) = self.machines.get_mut(id) else {
            return;
        };
        let from = m.state();
        if !health::can_move(from, state) {
            self.metrics.inc(|m| &m.moves_refused);
            tracing::warn!(machine = %id, from = state_name(from), to = state_name(state), %actor, "machine state kept: not a legal move");
            return;
        }
        let hostname = m.hostname.clone();
        m.set_state(state);
        m.set_action(action);
        m.since = now;
        if state == HealthState::Healthy {
            m.error.clear();
        }
        m.history.push(MachineEvent {
            at: now,
            state: state as i32,
            action: action as i32,
            detail: bounded(&why),
        });
        if m.history.len() > MAX_HISTORY {
            let excess = m.history.len() - MAX_HISTORY;
            m.history.drain(..excess);
        }
        self.dirty.insert(ground_truth::shard_of(id));
        self.record(
            ctx,
            actor,
            format!(
                "machine {id}: {} -> {} ({})",
                state_name(from),
                state_name(state),
                action_name(action)
            ),
            why.clone(),
        );
        self.persist(ctx);
        if let Some(gate) = &self.gate {
            if state == HealthState::Healthy {
                gate.reactivate(&hostname);
            } else if from == HealthState::Healthy {
                ctx.defer(
                    gate.drain(&hostname, false, &why),
                    |_: &mut DeviceManager, _, _| {},
                );
            }
        }
    }

    fn report(&mut self, ctx: &mut Context<Self>, from: Upid, mut report: WatchdogReport) {
        let _span =
            tracing::debug_span!("watchdog_report", %from, machine = %report.hostname).entered();
        self.metrics.inc(|m| &m.reports);
        let id = report.hostname.trim().to_owned();
        if id.is_empty() || id.len() > 255 || report.results.len() > MAX_RESULTS {
            self.metrics.inc(|m| &m.invalid);
            tracing::warn!(%from, "refused a watchdog report without a hostname or with too many results");
            return;
        }
        if !self.sent_by_its_agent(ctx, &from, &id) {
            return;
        }
        for r in &mut report.results {
            r.text = bounded(&r.text);
            r.name = bounded(&r.name);
        }
        let now = self.now(ctx);
        if !self.machines.contains_key(&id) {
            self.provision(ctx, &id, &report.machine_type, &report.attributes, &from);
        }
        let Some(m) = self.machines.get_mut(&id) else {
            return;
        };
        if m.replaced {
            return;
        }
        m.watchdogs = report.results.clone();
        m.last_report = now;
        if m.agent_address != from.address() || m.manifest_version != report.manifest_version {
            // Where its satellites are now (the agent restarted on another port), and what it
            // runs.
            m.agent_address = from.address().to_owned();
            m.manifest_version = bounded(&report.manifest_version);
            self.dirty.insert(ground_truth::shard_of(&id));
            self.note_holder(&id);
        }
        let Some(m) = self.machines.get(&id) else {
            return;
        };
        let (state, since) = (m.state(), m.since);
        let verdict = self.windows.entry(id.clone()).or_default().observe(
            &self.config.health,
            state,
            since,
            &report.results,
            now,
        );
        match verdict {
            Verdict::Quiet => {}
            Verdict::Recovered => {
                self.metrics.inc(|m| &m.recoveries);
                let why = format!(
                    "no error for the probation period ({:?})",
                    self.config.health.probation
                );
                self.transition(
                    ctx,
                    &id,
                    HealthState::Healthy,
                    RepairAction::DoNothing,
                    "device-manager",
                    why,
                );
                self.drive_rollout(ctx);
                self.catch_up(ctx, &id);
            }
            Verdict::Failed { error, .. } if self.rollout_claims(ctx, &id, &error) => {}
            // A late report from the round that ran the version a rollback undid.
            Verdict::Failed { error, .. } if self.rolled_back(&report.manifest_version) => {
                tracing::info!(machine = %id, %error, version = %report.manifest_version, "an error of a rolled-back version is not the machine's");
            }
            Verdict::Failed { error, fatal } => self.failed(ctx, &id, error, fatal, None),
        }
    }

    /// Declares `id` failed (unless a limit defers it) and picks its repair.
    fn failed(
        &mut self,
        ctx: &mut Context<Self>,
        id: &str,
        error: String,
        fatal: bool,
        forced: Option<(RepairAction, &str)>,
    ) {
        let Some(candidate) = self.machines.get(id) else {
            return;
        };
        if forced.is_none() {
            let all: Vec<&MachineRecord> = self.machines.values().collect();
            if let Err(deferral) = self.config.limits.admit(&all, candidate) {
                self.metrics.inc(|m| &m.deferred);
                tracing::warn!(machine = %id, %deferral, %error, "failure deferred");
                return;
            }
        }
        self.metrics.inc(|m| &m.failures);
        let now = self.now(ctx);
        let (action, actor) = forced.unwrap_or_else(|| {
            (
                choose_action(&self.config.health, &candidate.history, fatal, now),
                "device-manager",
            )
        });
        if let Some(m) = self.machines.get_mut(id) {
            m.error = bounded(&error);
        }
        self.transition(ctx, id, HealthState::Failure, action, actor, error);
        self.dispatch_repairs(ctx);
    }

    /// Whether `from` runs on the node of the agent registered as machine `id` (always, without
    /// a master to ask); counted and logged when not, so that no other process can make a
    /// machine fail, or claim it runs a manifest.
    /// Who may report on machine `id`: its registered agent's node, proven (on a secure node)
    /// by the `agent` role of the message's connection.
    fn sent_by_its_agent(&self, ctx: &Context<Self>, from: &Upid, id: &str) -> bool {
        if !ctx.authorize(roles::AGENT) {
            self.metrics.inc(|m| &m.unverified);
            return false;
        }
        let Some(gate) = &self.gate else {
            return true;
        };
        if gate.agent_at(from.address()).as_deref() == Some(id) {
            return true;
        }
        self.metrics.inc(|m| &m.unverified);
        tracing::debug!(%from, machine = %id, "ignored a report not from the machine's registered agent");
        false
    }

    /// Starts a write of the changed shards unless one is out (it then takes them next).
    fn persist(&mut self, ctx: &mut Context<Self>) {
        let Some(store) = self.store.clone() else {
            self.dirty.clear();
            self.durable_seq = self.next_audit_seq - 1;
            return;
        };
        if self.writing || self.dirty.is_empty() || self.failure.borrow().is_some() {
            return;
        }
        self.writing = true;
        let snapshot = ground_truth::Snapshot {
            machines: &self.machines,
            audit: &self.audit,
            next_audit_seq: self.next_audit_seq,
            deployment: &self.deployment,
        };
        let dirty = std::mem::take(&mut self.dirty);
        let shards: Vec<(usize, Vec<u8>, Option<u64>)> = ground_truth::write_order(&dirty)
            .map(|i| (i, ground_truth::encode_key(i, &snapshot), self.versions[i]))
            .collect();
        self.metrics.inc(|m| &m.writes);
        // Every change so far goes in this write: once it is done, they all are durable.
        let upto = self.next_audit_seq - 1;
        ctx.defer(
            async move {
                let mut written = Vec::new();
                for (i, data, expected) in shards {
                    match ground_truth::write_key(&store, i, data, expected).await {
                        Ok(v) => written.push((i, v)),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(written)
            },
            move |dm: &mut DeviceManager, ctx, result| {
                dm.writing = false;
                match result {
                    Ok(written) => {
                        for (i, v) in written {
                            dm.versions[i] = Some(v);
                        }
                        dm.durable_seq = dm.durable_seq.max(upto);
                        dm.persist(ctx);
                    }
                    Err(why) => {
                        tracing::error!(%why, "cannot write the ground truth; the device manager stops deciding");
                        dm.failure.send_replace(Some(why));
                        ctx.terminate();
                    }
                }
            },
        );
    }
}

/// At most [`MAX_TEXT`] bytes of `text`.
fn bounded(text: &str) -> String {
    crate::bounded_text::bounded(text, MAX_TEXT)
}

/// `Healthy`, `Failure`, `Probation`.
pub fn state_name(state: HealthState) -> &'static str {
    match state {
        HealthState::Healthy => "Healthy",
        HealthState::Failure => "Failure",
        HealthState::Probation => "Probation",
    }
}

/// `DoNothing`, `Reboot`, `Reimage`, `Replace`.
pub fn action_name(action: RepairAction) -> &'static str {
    match action {
        RepairAction::DoNothing => "DoNothing",
        RepairAction::Reboot => "Reboot",
        RepairAction::Reimage => "Reimage",
        RepairAction::Replace => "Replace",
    }
}

/// `reboot`, `reimage`, `replace` (any case) as an action an operator may order.
pub fn parse_action(text: &str) -> Option<RepairAction> {
    match text.to_ascii_lowercase().as_str() {
        "reboot" => Some(RepairAction::Reboot),
        "reimage" => Some(RepairAction::Reimage),
        "replace" => Some(RepairAction::Replace),
        _ => None,
    }
}

/// The status of a watchdog result as a word.
pub fn watchdog_status(r: &WatchdogResult) -> &'static str {
    r.status()
        .as_str_name()
        .trim_start_matches("WATCHDOG_STATUS_")
}

impl Process for DeviceManager {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(Metrics {
            reports: m.counter("autopilot/watchdog_reports"),
            invalid: m.counter("autopilot/invalid_messages"),
            failures: m.counter("autopilot/failures_declared"),
            deferred: m.counter("autopilot/failures_deferred"),
            moves_refused: m.counter("autopilot/machine_state_moves_refused"),
            orders: m.counter("autopilot/repair_orders"),
            recoveries: m.counter("autopilot/recoveries"),
            writes: m.counter("autopilot/ground_truth_writes"),
            unauthorized: m.counter("autopilot/unauthorized_requests"),
            unverified: m.counter("autopilot/unverified_reports"),
        });
        ctx.install(Self::report);
        ctx.install(Self::outcome);
        ctx.install(Self::announcement);
        ctx.route("/machines", Self::machines_route);
        ctx.route("/machine", Self::machine_route);
        ctx.route("/audit", Self::audit_route);
        ctx.route("/repair", Self::repair_route);
        ctx.route("/deploy", Self::deploy_route);
        ctx.route("/rollout", Self::rollout_route);
        ctx.route("/rollback", Self::rollback_route);
        ctx.route("/kick", Self::kick_route);
        ctx.install(Self::manifest_status);
        self.tick(ctx);
        self.resume_rollout(ctx);
        // Drains are the master's soft state: a new leader learns them again from here.
        if let Some(gate) = &self.gate {
            for m in self.machines.values() {
                if m.state() != HealthState::Healthy && !m.replaced {
                    ctx.defer(
                        gate.drain(&m.hostname, false, "recovered: not Healthy"),
                        |_: &mut DeviceManager, _, _| {},
                    );
                }
            }
        }
        for id in self.machines.keys() {
            self.note_holder(id);
        }
        // Failures recovered from the store wait for a repair service that may now exist.
        self.dispatch_repairs(ctx);
    }
}
