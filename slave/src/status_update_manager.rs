//! The status update manager: every status update of a task reaches the master at least once,
//! in the order the task produced them (Mesos's `StatusUpdateManager`).
//!
//! Handles: `keel.internal.StatusUpdateAcknowledgementMessage` (from the master, relaying the
//! framework's acknowledgement). Sends: `keel.internal.StatusUpdateMessage` to the master, with
//! this process as the `pid` that acknowledgements go back to.
//!
//! Each task has a stream: a queue of updates whose head is in flight. The head is resent with
//! exponential backoff (10 s doubling to 10 min, Mesos's bounds) until an acknowledgement with
//! its uuid arrives; then the next update goes out. A stream ends once its terminal update is
//! acknowledged. A new master (after failover) gets every stream's head at once.
//!
//! With a log ([`StatusUpdateManager::recover`]) every accepted update and every
//! acknowledgement is recorded before it takes effect, so that the manager of a restarted
//! agent starts with the updates its earlier run had not delivered.

use protos::IdText;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use authentication::roles;
use libactor::metrics::{Counter, Gauge, ProcessMetrics};
use libactor::{Context, Process, Upid};
use protos::internal::status_update_record::{Acknowledgement, Record};
use protos::internal::{
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage, StatusUpdateRecord,
};
use protos::v1::TaskState;

use crate::checkpoint::CheckpointError;
use crate::status_update_log::StatusUpdateLog;

/// First resend interval.
pub const RETRY_INTERVAL_MIN: Duration = Duration::from_secs(10);
/// Longest resend interval.
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(600);
/// Updates a single task may have waiting; more are refused (a task flooding updates).
pub const MAX_PENDING_UPDATES_PER_TASK: usize = 1024;

/// Why an update was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The update names no framework or task.
    #[error("status update without a framework id or task id")]
    MissingIds,
    /// The task's stream already ended with a terminal update.
    #[error("task {0} already reported a terminal state")]
    StreamClosed(String),
    /// Too many updates are waiting for this task.
    #[error("task {task} has {MAX_PENDING_UPDATES_PER_TASK} updates waiting")]
    TooManyPending {
        /// The task.
        task: String,
    },
}

/// (framework id, task id).
type StreamKey = (String, String);

#[derive(Debug, Default)]
struct Stream {
    pending: VecDeque<StatusUpdate>,
    /// The head was sent and no acknowledgement came yet.
    in_flight: bool,
    backoff: Duration,
    /// A terminal update was accepted: nothing may follow it.
    terminal_received: bool,
}

struct Metrics {
    sent: Counter,
    resent: Counter,
    acknowledged: Counter,
    unexpected_acks: Counter,
    checkpoint_failures: Counter,
}

/// Delivers status updates to the master until acknowledged.
#[derive(Default)]
pub struct StatusUpdateManager {
    master: Option<Upid>,
    streams: BTreeMap<StreamKey, Stream>,
    metrics: ProcessMetrics<Metrics>,
    /// Updates not yet acknowledged (`slave/status_updates/pending`).
    pending_gauge: Gauge,
    log: Option<StatusUpdateLog>,
}

impl StatusUpdateManager {
    /// A manager with no master yet (updates wait until [`StatusUpdateManager::set_master`]).
    pub fn new() -> Self {
        StatusUpdateManager::default()
    }

    /// A manager that records its updates in the log at `path`, starting with the updates
    /// an earlier run recorded there and did not see acknowledged.
    pub fn recover(path: &std::path::Path) -> Result<Self, CheckpointError> {
        let (log, records) = StatusUpdateLog::open(path)?;
        let mut sum = StatusUpdateManager::default();
        for record in records {
            match record.record {
                Some(Record::Update(update)) => {
                    if let Some(key) = stream_key(&update) {
                        let terminal = is_terminal(&update);
                        let stream = sum.streams.entry(key).or_default();
                        if !stream.pending.iter().any(|u| u.uuid == update.uuid) {
                            stream.terminal_received |= terminal;
                            stream.pending.push_back(update);
                        }
                    }
                }
                Some(Record::Ack(ack)) => {
                    let key = (ack.framework_id, ack.task_id);
                    let head = sum.streams.get(&key).and_then(|s| s.pending.front());
                    if head.is_some_and(|h| h.uuid == ack.uuid) {
                        sum.retire_head(&key);
                    }
                }
                Some(Record::FrameworkRemoved(removed)) => {
                    sum.drop_streams_of(&removed.framework_id);
                }
                None => {}
            }
        }
        sum.log = Some(log);
        if sum.pending() > 0 {
            tracing::info!(
                pending = sum.pending(),
                "recovered status updates not acknowledged before the agent restarted"
            );
        }
        Ok(sum)
    }

    /// Records `record` in the log, if there is one; a failure is counted and logged (the
    /// update is still delivered, only not recoverable).
    fn checkpoint(&mut self, record: Record) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if let Err(e) = log.append(&StatusUpdateRecord {
            record: Some(record),
        }) {
            tracing::error!(error = %e, "status update not checkpointed");
            self.metrics.inc(|m| &m.checkpoint_failures);
        }
    }

    /// The terminal updates still waiting for their acknowledgement, one per task: a
    /// (re-)registering agent reports these tasks, so that a master does not take them for
    /// launches that never arrived.
    pub fn pending_terminal(&self) -> Vec<StatusUpdate> {
        self.streams
            .values()
            .filter_map(|s| s.pending.back())
            .filter(|u| is_terminal(u))
            .cloned()
            .collect()
    }

    /// Forgets the updates of `framework`, which the master shut down: no one will
    /// acknowledge them (Mesos's status update manager cleans up the same way).
    pub fn forget_framework(&mut self, framework: &str) {
        let dropped = self.drop_streams_of(framework);
        if dropped > 0 {
            tracing::info!(%framework, updates = dropped, "dropped the updates of a framework the master shut down");
        }
        self.checkpoint(Record::FrameworkRemoved(
            protos::internal::status_update_record::FrameworkRemoved {
                framework_id: framework.to_owned(),
            },
        ));
        self.compact_log();
    }

    /// Removes every stream of `framework`; returns the updates they held.
    fn drop_streams_of(&mut self, framework: &str) -> usize {
        let mut dropped = 0;
        self.streams.retain(|(f, _), stream| {
            let keep = f != framework;
            if !keep {
                dropped += stream.pending.len();
            }
            keep
        });
        self.pending_gauge.add(-(dropped as i64));
        dropped
    }

    /// Drops the head of `key`'s stream (acknowledged), and the stream once it ended.
    fn retire_head(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if stream.pending.pop_front().is_some() {
            self.pending_gauge.add(-1);
        }
        stream.in_flight = false;
        if stream.pending.is_empty() && stream.terminal_received {
            self.streams.remove(key);
        }
    }

    /// Accepts an update for delivery. Missing uuids are filled in.
    pub fn update(
        &mut self,
        ctx: &mut Context<Self>,
        mut update: StatusUpdate,
    ) -> Result<(), UpdateError> {
        let Some(key) = stream_key(&update) else {
            return Err(UpdateError::MissingIds);
        };
        let task = key.1.clone();
        if update.uuid.is_empty() {
            update.uuid = ctx.node().random().uuid().as_bytes().to_vec().into();
        }
        if let Some(status) = update.status.as_mut() {
            status.uuid = update.uuid.clone();
        }
        let terminal = is_terminal(&update);
        let stream = self.streams.entry(key.clone()).or_default();
        if stream.pending.iter().any(|u| u.uuid == update.uuid) {
            // A duplicate of an update still in the queue: it is already being delivered.
            return Ok(());
        }
        if stream.terminal_received {
            return Err(UpdateError::StreamClosed(task));
        }
        if stream.pending.len() >= MAX_PENDING_UPDATES_PER_TASK {
            return Err(UpdateError::TooManyPending { task });
        }
        stream.terminal_received = terminal;
        stream.pending.push_back(update.clone());
        self.pending_gauge.add(1);
        let idle = !stream.in_flight;
        self.checkpoint(Record::Update(update));
        if idle {
            self.send_head(ctx, &key, false);
        }
        Ok(())
    }

    /// Sets (or changes, after a failover) the master; every stream's head is sent to it now.
    pub fn set_master(&mut self, ctx: &mut Context<Self>, master: Upid) {
        self.master = Some(master);
        let keys: Vec<StreamKey> = self.streams.keys().cloned().collect();
        for key in keys {
            self.send_head(ctx, &key, false);
        }
    }

    /// Updates waiting for acknowledgement, over all tasks.
    pub fn pending(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    fn send_head(&mut self, ctx: &mut Context<Self>, key: &StreamKey, resend: bool) {
        let Some(master) = self.master.clone() else {
            return;
        };
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let Some(head) = stream.pending.front().cloned() else {
            return;
        };
        stream.in_flight = true;
        stream.backoff = if resend {
            (stream.backoff * 2).min(RETRY_INTERVAL_MAX)
        } else {
            RETRY_INTERVAL_MIN
        };
        let backoff = stream.backoff;
        let uuid = head.uuid.clone();
        // The retry is armed before the update leaves: once sent it can reach the framework
        // (and a test advance the clock) before this handler would get to arm it.
        let timed = key.clone();
        ctx.delay(backoff, move |sum: &mut StatusUpdateManager, ctx| {
            let still_head = sum
                .streams
                .get(&timed)
                .and_then(|s| s.pending.front())
                .is_some_and(|head| head.uuid == uuid);
            if still_head {
                tracing::debug!(framework = %timed.0, task = %timed.1, "resending unacknowledged status update");
                sum.send_head(ctx, &timed, true);
            }
        });
        ctx.send(
            &master,
            StatusUpdateMessage {
                update: Some(head),
                pid: ctx.pid().to_string(),
            },
        );
        self.metrics
            .with(|m| if resend { m.resent.inc() } else { m.sent.inc() });
    }

    fn acknowledge(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        ack: StatusUpdateAcknowledgementMessage,
    ) {
        // Who may send: its agent, which forwards the master's acknowledgements from this node
        // (on a secure node, the node's own `agent` identity).
        if !ctx.authorize(roles::AGENT) {
            self.metrics.inc(|m| &m.unexpected_acks);
            return;
        }
        let key = (
            ack.framework_id.text().to_owned(),
            ack.task_id.text().to_owned(),
        );
        let matches = self
            .streams
            .get(&key)
            .and_then(|s| s.pending.front())
            .is_some_and(|head| head.uuid == ack.uuid);
        if !matches {
            // A duplicate (the update was resent and acknowledged twice) or a stray.
            self.metrics.inc(|m| &m.unexpected_acks);
            tracing::debug!(%from, framework = %key.0, task = %key.1, "acknowledgement for no update in flight");
            return;
        }
        self.metrics.inc(|m| &m.acknowledged);
        self.checkpoint(Record::Ack(Acknowledgement {
            framework_id: key.0.clone(),
            task_id: key.1.clone(),
            uuid: ack.uuid.clone(),
        }));
        self.retire_head(&key);
        if self
            .streams
            .get(&key)
            .is_some_and(|s| !s.pending.is_empty())
        {
            self.send_head(ctx, &key, false);
        }
        self.compact_log();
    }

    /// Rewrites a grown log with only the updates still pending.
    fn compact_log(&mut self) {
        if !self
            .log
            .as_ref()
            .is_some_and(StatusUpdateLog::wants_compaction)
        {
            return;
        }
        let pending: Vec<StatusUpdateRecord> = self
            .streams
            .values()
            .flat_map(|s| &s.pending)
            .map(|u| StatusUpdateRecord {
                record: Some(Record::Update(u.clone())),
            })
            .collect();
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.rewrite(pending) {
                tracing::error!(error = %e, "status update log not compacted");
                self.metrics.inc(|m| &m.checkpoint_failures);
            }
        }
    }
}

/// (framework, task) of `update`, if it names both.
fn stream_key(update: &StatusUpdate) -> Option<StreamKey> {
    let framework = update.framework_id.as_ref()?.value.clone();
    let task = update.status.as_ref()?.task_id.as_ref()?.value.clone();
    Some((framework, task))
}

fn is_terminal(update: &StatusUpdate) -> bool {
    update
        .status
        .as_ref()
        .is_some_and(|s| TaskState::try_from(s.state).is_ok_and(TaskState::is_terminal))
}

impl Process for StatusUpdateManager {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(Metrics {
            sent: m.counter("slave/status_updates/sent"),
            resent: m.counter("slave/status_updates/resent"),
            acknowledged: m.counter("slave/status_updates/acknowledged"),
            unexpected_acks: m.counter("slave/status_updates/unexpected_acks"),
            checkpoint_failures: m.counter("slave/status_updates/checkpoint_failures"),
        });
        self.pending_gauge = m.gauge("slave/status_updates/pending");
        self.pending_gauge.set(self.pending() as i64);
        ctx.install(Self::acknowledge);
    }
}
