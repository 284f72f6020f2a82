//! The cell state's subscribers (Omega): a framework that subscribes stops getting offers and
//! gets the whole cell instead — every agent with its total, what its tasks hold, its tasks and
//! its version — then every change, coalesced: the books wake the master on the first change
//! after a flush, and the flush runs behind the handlers already queued, so a burst of launches
//! costs one message per subscriber.
//!
//! A subscriber that comes back (its scheduler reconnected, or failed over) names the position
//! it reached; from the same epoch it gets only the agents changed after it.

use std::collections::{BTreeMap, VecDeque};

use authentication::acls::Action;
use libactor::metrics::{Counter, Durations, FloatGauge, Gauge};
use libactor::{Context, Upid};
use protos::omega::{CellAgent, CellPosition, CellTask, CellUpdateMessage, SubscribeCellMessage};
use protos::v1::master::response::get_transactions::Transaction;
use protos::v1::master::response::GetTransactions;
use protos::v1::{AgentId, FrameworkId, TaskId};
use protos::IdText;

use crate::allocator::Allocator;
use crate::api::state_json::{OmegaSide, TransactionRecord};

use super::books::AgentEntry;
use super::snapshot_budget::{Snapshot, SnapshotBudgets};
use super::Master;

/// Agents per `CellUpdateMessage` (a few hundred bytes each, more with many tasks), so that
/// the whole cell of a large cluster goes in messages far below the frame limit.
pub const CELL_AGENTS_PER_MESSAGE: usize = 500;

/// The `omega/*` metrics.
pub(super) struct OmegaMetrics {
    pub(super) subscribers: Gauge,
    pub(super) transactions_committed: Counter,
    pub(super) transactions_conflicted: Counter,
    pub(super) transactions_refused: Counter,
    pub(super) placements_committed: Counter,
    pub(super) placements_conflicted: Counter,
    pub(super) placements_refused: Counter,
    pub(super) offers_rescinded: Counter,
    pub(super) tasks_preempted: Counter,
    pub(super) snapshots_deferred: Counter,
    pub(super) conflict_fraction: FloatGauge,
    pub(super) commit_time: Durations,
}

impl OmegaMetrics {
    fn new(m: &libactor::metrics::Metrics) -> OmegaMetrics {
        OmegaMetrics {
            subscribers: m.gauge("omega/cell_subscribers"),
            transactions_committed: m.counter("omega/transactions_committed"),
            transactions_conflicted: m.counter("omega/transactions_conflicted"),
            transactions_refused: m.counter("omega/transactions_refused"),
            placements_committed: m.counter("omega/placements_committed"),
            placements_conflicted: m.counter("omega/placements_conflicted"),
            placements_refused: m.counter("omega/placements_refused"),
            offers_rescinded: m.counter("omega/offers_rescinded_by_commits"),
            tasks_preempted: m.counter("omega/tasks_preempted"),
            snapshots_deferred: m.counter("omega/cell_snapshots_deferred"),
            conflict_fraction: m.float_gauge("omega/conflict_fraction"),
            commit_time: m.durations("omega/commit_time"),
        }
    }
}

/// Who subscribes, and this master's epoch.
#[derive(Default)]
pub(super) struct CellStream {
    /// Names this master's numbering: versions from another master mean nothing here.
    pub(super) epoch: String,
    /// Subscribed frameworks and their schedulers.
    subscribers: BTreeMap<String, Upid>,
    pub(super) metrics: Option<OmegaMetrics>,
    /// A transaction has committed something: the allocator may offer what a commit took
    /// before it hears of the commit, and the master refuses those allocations.
    pub(super) claimed: bool,
    /// The latest transactions, oldest first (at most [`RECENT_TRANSACTIONS`]).
    recent: VecDeque<TransactionRecord>,
    /// Whole-cell snapshots left to each framework.
    budgets: SnapshotBudgets,
}

/// Transactions `/master/state` shows.
pub const RECENT_TRANSACTIONS: usize = 100;

impl CellStream {
    /// Remembers a transaction for `/master/state`.
    pub(super) fn record(&mut self, record: TransactionRecord) {
        if self.recent.len() == RECENT_TRANSACTIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// The shared-state part of `/master/state`, at version `seq`.
    pub(super) fn side(&self, seq: u64) -> OmegaSide {
        OmegaSide {
            epoch: self.epoch.clone(),
            version: seq,
            subscribers: self.subscribers.keys().cloned().collect(),
            recent_transactions: self.recent.iter().cloned().collect(),
        }
    }

    /// Counts a transaction: whether any of its placements conflicted.
    pub(super) fn count_transaction(&self, conflicted: u64, committed: u64) {
        let Some(m) = &self.metrics else { return };
        m.placements_committed.add(committed);
        m.placements_conflicted.add(conflicted);
        if conflicted > 0 {
            m.transactions_conflicted.inc();
        }
        if committed > 0 {
            m.transactions_committed.inc();
        }
        let all = m.transactions_committed.get() + m.transactions_conflicted.get();
        if all > 0 {
            m.conflict_fraction
                .set(m.transactions_conflicted.get() as f64 / all as f64);
        }
    }

    /// A framework is gone: its snapshot budget goes too.
    pub(super) fn forget_budget(&mut self, framework: &str) {
        self.budgets.forget(framework);
    }

    pub(super) fn with_metrics(&self, f: impl FnOnce(&OmegaMetrics)) {
        if let Some(m) = &self.metrics {
            f(m);
        }
    }

    /// The position a message carries now.
    fn position(&self, seq: u64) -> CellPosition {
        CellPosition {
            epoch: self.epoch.clone(),
            seq,
        }
    }
}

impl Master {
    /// `GET_TRANSACTIONS`: the cell's position and subscribers, and the latest transactions
    /// of the frameworks `viewer` may see (`view_frameworks`).
    pub fn transactions_seen_by(&self, viewer: Option<&str>) -> GetTransactions {
        let side = self.cell.side(self.books.cell().seq());
        let acls = &self.auth.policy.acls;
        let framework_id = |value: String| Some(FrameworkId { value });
        GetTransactions {
            epoch: side.epoch,
            version: side.version,
            subscribers: side
                .subscribers
                .into_iter()
                .map(|value| FrameworkId { value })
                .collect(),
            transactions: side
                .recent_transactions
                .into_iter()
                .filter(|t| acls.permits(Action::ViewFramework, viewer, &t.user))
                .map(|t| Transaction {
                    framework_id: framework_id(t.framework_id),
                    transaction_id: t.transaction_id,
                    time: t.time,
                    placements: t.placements,
                    committed: t.committed,
                    conflicted: t.conflicted,
                    refused: t.refused,
                    preempting: t.preempting,
                    error: t.error,
                    commit_micros: t.commit_micros,
                })
                .collect(),
        }
    }

    /// Names the epoch, registers the metrics and lets the books wake the master for flushes.
    pub(super) fn start_cell(&mut self, ctx: &mut Context<Self>) {
        let now = ctx.node().clock().unix_seconds();
        self.cell.epoch = format!("{}-{}", self.id, (now * 1e6) as u64);
        self.cell.metrics = Some(OmegaMetrics::new(ctx.metrics()));
        let me = ctx.self_ref();
        self.books.cell_mut().set_wake(Box::new(move || {
            me.dispatch(|m: &mut Master, ctx| m.flush_cell(ctx));
        }));
    }

    /// Where the cell stands now.
    pub(super) fn cell_position(&self) -> CellPosition {
        self.cell.position(self.books.cell().seq())
    }

    /// Who may send: the framework's scheduler. Its offers stop (they are given back), and it
    /// gets the cell, or what changed since the position it names. A framework that asks for
    /// the whole cell more often than its snapshot budget allows gets it later (see
    /// [`super::snapshot_budget`]), and starts hearing changes only then.
    pub(super) fn subscribe_cell(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: SubscribeCellMessage,
    ) {
        let Some(framework) = self.sender_framework(ctx, &from, Some(msg.framework_id.text()))
        else {
            return;
        };
        tracing::info!(%framework, "cell subscriber");
        if let Some(f) = self.books.framework_mut(&framework) {
            f.suppressed = true;
            f.shared_state = true;
        }
        self.withdraw_offers(&framework);
        let suppressed = framework.clone();
        self.tell_allocator(
            "allocator refused to suppress a cell subscriber",
            move |a| a.suppress(&suppressed),
        );
        let resumable = msg
            .resume
            .as_ref()
            .filter(|r| r.epoch == self.cell.epoch)
            .is_some_and(|r| self.books.cell().removed_after(r.seq).is_some());
        if !resumable {
            let now = ctx.node().clock().now();
            match self.cell.budgets.ask(&framework, &from, now) {
                Snapshot::Now => {}
                Snapshot::Joined => {
                    self.cell.with_metrics(|m| m.snapshots_deferred.inc());
                    // The scheduler it listened as is replaced by this one.
                    self.drop_cell_subscriber(&framework);
                    return;
                }
                Snapshot::After(wait) => {
                    self.cell.with_metrics(|m| m.snapshots_deferred.inc());
                    tracing::info!(%framework, ?wait, "whole-cell snapshot deferred: the framework subscribes too often");
                    self.drop_cell_subscriber(&framework);
                    ctx.delay(wait, move |m: &mut Master, ctx| {
                        m.send_deferred_cell(ctx, framework)
                    });
                    return;
                }
            }
        }
        self.start_cell_stream(ctx, framework, from, msg.resume);
    }

    /// A deferred snapshot's time has come: its framework's latest scheduler gets the cell, if
    /// the framework still has one.
    fn send_deferred_cell(&mut self, ctx: &mut Context<Self>, framework: String) {
        let now = ctx.node().clock().now();
        let Some(to) = self.cell.budgets.take_deferred(&framework, now) else {
            return;
        };
        let live = self
            .books
            .framework(&framework)
            .is_some_and(|f| f.active && f.pid == to);
        if live {
            self.start_cell_stream(ctx, framework, to, None);
        }
    }

    /// `from` hears the cell from now on: the whole of it, or what changed since `resume`.
    fn start_cell_stream(
        &mut self,
        ctx: &mut Context<Self>,
        framework: String,
        from: Upid,
        resume: Option<CellPosition>,
    ) {
        self.cell.subscribers.insert(framework, from.clone());
        self.books.cell_mut().track(true);
        self.cell
            .with_metrics(|m| m.subscribers.set(self.cell.subscribers.len() as i64));
        // Changes waiting for the next flush are in what this subscriber gets now; sending
        // them again later is harmless (an agent replaces its namesake).
        let resume = resume.filter(|r| r.epoch == self.cell.epoch).and_then(|r| {
            let removed = self.books.cell().removed_after(r.seq)?;
            Some((r.seq, removed.into_iter().map(str::to_owned).collect()))
        });
        match resume {
            Some((seq, removed)) => self.send_cell_changes(ctx, &from, seq, removed),
            None => self.send_cell(ctx, &from),
        }
    }

    /// A framework left, or its scheduler disconnected: it hears no more changes.
    pub(super) fn drop_cell_subscriber(&mut self, framework: &str) {
        if self.cell.subscribers.remove(framework).is_none() {
            return;
        }
        if self.cell.subscribers.is_empty() {
            self.books.cell_mut().track(false);
        }
        self.cell
            .with_metrics(|m| m.subscribers.set(self.cell.subscribers.len() as i64));
    }

    /// The whole cell, in order of agent id.
    fn send_cell(&self, ctx: &mut Context<Self>, to: &Upid) {
        let mut agents: Vec<(&String, &AgentEntry)> = self.books.agents().collect();
        agents.sort_by(|a, b| a.0.cmp(b.0));
        let cells: Vec<CellAgent> = agents
            .into_iter()
            .map(|(id, entry)| self.cell_agent(id, entry))
            .collect();
        self.send_chunked(ctx, to, true, cells, Vec::new());
    }

    /// What changed after `seq`: the agents with a later version, and those removed.
    fn send_cell_changes(
        &self,
        ctx: &mut Context<Self>,
        to: &Upid,
        seq: u64,
        removed: Vec<String>,
    ) {
        let mut agents: Vec<(&String, &AgentEntry)> = self
            .books
            .agents()
            .filter(|(_, a)| a.version() > seq)
            .collect();
        agents.sort_by(|a, b| a.0.cmp(b.0));
        let cells = agents
            .into_iter()
            .map(|(id, entry)| self.cell_agent(id, entry))
            .collect();
        let removed = removed
            .into_iter()
            .filter(|a| !self.books.has_agent(a))
            .map(|value| AgentId { value })
            .collect();
        self.send_chunked(ctx, to, false, cells, removed);
    }

    /// Sends `agents` in messages of [`CELL_AGENTS_PER_MESSAGE`]; only the first resets, so
    /// one empty message still tells a subscriber where the cell stands.
    fn send_chunked(
        &self,
        ctx: &mut Context<Self>,
        to: &Upid,
        reset: bool,
        agents: Vec<CellAgent>,
        removed: Vec<AgentId>,
    ) {
        let position = self.cell_position();
        let mut chunks = agents.chunks(CELL_AGENTS_PER_MESSAGE).peekable();
        let mut first = true;
        let mut removed = Some(removed);
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let more = chunks.peek().is_some();
            ctx.send(
                to,
                CellUpdateMessage {
                    position: Some(position.clone()),
                    reset: reset && first,
                    agents: chunk.to_vec(),
                    removed: removed.take().unwrap_or_default(),
                    more,
                },
            );
            first = false;
            if !more {
                break;
            }
        }
    }

    /// Sends the changes collected since the last flush to every subscriber.
    pub(super) fn flush_cell(&mut self, ctx: &mut Context<Self>) {
        let changed = self.books.cell_mut().take_changed();
        if changed.is_empty() || self.cell.subscribers.is_empty() {
            return;
        }
        let (mut agents, mut removed) = (Vec::new(), Vec::new());
        for id in changed {
            match self.books.agent(&id) {
                Some(entry) => agents.push(self.cell_agent(&id, entry)),
                None => removed.push(AgentId { value: id }),
            }
        }
        for to in self.cell.subscribers.values() {
            self.send_chunked(ctx, to, false, agents.clone(), removed.clone());
        }
    }

    /// An agent as the cell shows it.
    pub(super) fn cell_agent(&self, id: &str, entry: &AgentEntry) -> CellAgent {
        let mut tasks: Vec<CellTask> = entry
            .task_keys()
            .filter_map(|key| {
                let task = self.books.task(key)?;
                Some(CellTask {
                    framework_id: Some(FrameworkId {
                        value: key.0.clone(),
                    }),
                    task_id: Some(TaskId {
                        value: key.1.clone(),
                    }),
                    resources: task.resources().to_proto(),
                    priority: task.priority,
                })
            })
            .collect();
        tasks.sort_by(|a, b| {
            (a.framework_id.text(), a.task_id.text())
                .cmp(&(b.framework_id.text(), b.task_id.text()))
        });
        CellAgent {
            agent_id: Some(AgentId {
                value: id.to_owned(),
            }),
            hostname: entry.info.hostname.clone(),
            attributes: entry.info.attributes.clone(),
            total: entry.total().to_proto(),
            used: entry.used_resources().to_proto(),
            version: entry.version(),
            tasks,
            active: !self.is_drained(&entry.info.hostname),
        }
    }
}
