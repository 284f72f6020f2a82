//! The books' changes, handed to the master node's API process as they happen. That process
//! keeps its own copy of the cluster from them and serves the operator API's reads
//! (`GET_STATE`, `GET_TASKS`, …), the state endpoints and `SUBSCRIBE` streams (Mesos's
//! operator events, built from these changes) from it, and so never asks the master: polling
//! state does not slow scheduling.
//!
//! Only [`super::Books`] reports, from the methods that change it, so the copy cannot miss a
//! change. Changes are plain values (no protobuf is built on the master's thread) pushed into
//! a [`FeedQueue`] shared with the API process. The API process takes what is queued before
//! it serves any read (so a read sees every change the master made before it), and every
//! [`FeedQueue`]'s drain interval otherwise; while an operator event stream is open it is also
//! woken when a change lands in an empty queue, so events reach subscribers at once. The
//! master pays a push per change, not a message. Nothing crosses the network, so no sender
//! needs proving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libactor::{Clock, ProcessRef};
use parking_lot::Mutex;
use protos::v1::{AgentInfo, FrameworkInfo, TaskState, TaskStatus, TimeInfo};
use resources::Resources;

use super::books::{AgentEntry, FrameworkEntry, OfferEntry, TaskEntry, TaskKey};
use crate::api::ApiGateway;

/// A task status as the operator API keeps it (Mesos's `TaskStatus` without its data).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRecord {
    /// The state it reports.
    pub state: TaskState,
    /// When (seconds since the epoch).
    pub timestamp: f64,
    /// Who sent it (`TaskStatus.Source`).
    pub source: i32,
    /// Why (`TaskStatus.Reason`).
    pub reason: Option<i32>,
    /// What it says.
    pub message: String,
    /// Its health check's verdict.
    pub healthy: Option<bool>,
}

/// One change of the books.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// An agent registered, or re-registered from a new pid.
    AgentAdded {
        /// Its id.
        id: String,
        /// What it registered with.
        info: AgentInfo,
        /// Its process.
        pid: String,
        /// What it has.
        total: Resources,
        /// When.
        at: f64,
    },
    /// An agent left the books.
    AgentRemoved {
        /// Its id.
        id: String,
    },
    /// A framework registered (`added`) or changed.
    FrameworkChanged {
        /// Its id.
        id: String,
        /// Its info.
        info: FrameworkInfo,
        /// Its scheduler is connected.
        active: bool,
        /// It just registered.
        added: bool,
        /// When.
        at: f64,
    },
    /// A framework left the books.
    FrameworkRemoved {
        /// Its id.
        id: String,
        /// Its info.
        info: FrameworkInfo,
    },
    /// A task is on the books (launched, or brought back by its agent).
    TaskAdded {
        /// Its framework.
        framework: String,
        /// Its id.
        id: String,
        /// Its name.
        name: String,
        /// Its executor (empty for command tasks).
        executor: String,
        /// Its agent.
        agent: String,
        /// Its state.
        state: TaskState,
        /// What it holds.
        resources: Resources,
    },
    /// A task moved to another state.
    TaskUpdated {
        /// Its framework.
        framework: String,
        /// Its id.
        id: String,
        /// Its agent.
        agent: String,
        /// The status that moved it.
        status: StatusRecord,
    },
    /// An offer made.
    OfferAdded {
        /// The offer's id.
        id: String,
        /// To whom.
        framework: String,
        /// On which agent.
        agent: String,
        /// What.
        resources: Resources,
    },
    /// An offer accepted, declined, rescinded or voided.
    OfferRemoved(String),
}

/// The changes not yet taken by the API process.
#[derive(Debug, Default)]
pub struct FeedQueue {
    items: Mutex<Vec<FeedItem>>,
    /// Wake the consumer as soon as a change lands (someone streams events).
    eager: AtomicBool,
}

impl FeedQueue {
    /// Takes every change queued, oldest first.
    pub fn take(&self) -> Vec<FeedItem> {
        std::mem::take(&mut *self.items.lock())
    }

    /// Whether the consumer is woken as soon as a change lands in an empty queue.
    pub fn set_eager(&self, eager: bool) {
        self.eager.store(eager, Ordering::Relaxed);
    }

    /// Queues `item`; true if the consumer needs waking.
    pub(crate) fn push(&self, item: FeedItem) -> bool {
        let mut queue = self.items.lock();
        queue.push(item);
        queue.len() == 1 && self.eager.load(Ordering::Relaxed)
    }
}

/// Where the books report their changes: the API process on the master's node.
pub(super) struct Feed {
    clock: Clock,
    queue: Arc<FeedQueue>,
    api: ProcessRef<ApiGateway>,
}

impl Feed {
    /// A feed into `queue`, drained by `api`.
    pub(super) fn new(clock: Clock, queue: Arc<FeedQueue>, api: ProcessRef<ApiGateway>) -> Feed {
        Feed { clock, queue, api }
    }

    fn now(&self) -> f64 {
        self.clock.unix_seconds()
    }

    fn push(&self, item: FeedItem) {
        if self.queue.push(item) {
            self.api.dispatch(|api, ctx| api.drain_and_release(ctx));
        }
    }

    /// Agent `id` registered, or re-registered from a new pid.
    pub(super) fn agent_added(&self, id: &str, entry: &AgentEntry) {
        self.push(FeedItem::AgentAdded {
            id: id.to_owned(),
            info: entry.info.clone(),
            pid: entry.pid().to_string(),
            total: entry.total().clone(),
            at: self.now(),
        });
    }

    /// Agent `id` left the books.
    pub(super) fn agent_removed(&self, id: &str) {
        self.push(FeedItem::AgentRemoved { id: id.to_owned() });
    }

    /// Offer `id` was made.
    pub(super) fn offer_added(&self, id: &str, offer: &OfferEntry) {
        self.push(FeedItem::OfferAdded {
            id: id.to_owned(),
            framework: offer.framework.clone(),
            agent: offer.agent.clone(),
            resources: offer.resources.clone(),
        });
    }

    /// Offer `id` was accepted, declined, rescinded or voided.
    pub(super) fn offer_removed(&self, id: &str) {
        self.push(FeedItem::OfferRemoved(id.to_owned()));
    }

    /// Framework `id` registered (`added`) or changed: its scheduler moved, connected or left.
    pub(super) fn framework_changed(&self, id: &str, entry: &FrameworkEntry, added: bool) {
        self.push(FeedItem::FrameworkChanged {
            id: id.to_owned(),
            info: entry.info.clone(),
            active: entry.active,
            added,
            at: self.now(),
        });
    }

    /// Framework `id` left the books.
    pub(super) fn framework_removed(&self, id: &str, entry: &FrameworkEntry) {
        self.push(FeedItem::FrameworkRemoved {
            id: id.to_owned(),
            info: entry.info.clone(),
        });
    }

    /// Task `key` is on the books (launched, or brought back by its agent).
    pub(super) fn task_added(&self, key: &TaskKey, task: &TaskEntry) {
        self.push(FeedItem::TaskAdded {
            framework: key.0.clone(),
            id: key.1.clone(),
            name: task.name.clone(),
            executor: task.executor.clone(),
            agent: task.agent().to_owned(),
            state: task.state,
            resources: task.resources().clone(),
        });
    }

    /// Task `key` moved to `state`; `status` is the update that moved it, when one did (the
    /// master's own moves get a status saying so).
    pub(super) fn task_updated(
        &self,
        key: &TaskKey,
        agent: &str,
        state: TaskState,
        status: Option<&TaskStatus>,
    ) {
        let status = match status {
            Some(s) => StatusRecord {
                state,
                timestamp: s.timestamp,
                source: s.source,
                reason: s.reason,
                message: s.message.clone(),
                healthy: s.healthy,
            },
            None => StatusRecord {
                state,
                timestamp: self.now(),
                source: protos::v1::task_status::Source::Master as i32,
                reason: None,
                message: String::new(),
                healthy: None,
            },
        };
        self.push(FeedItem::TaskUpdated {
            framework: key.0.clone(),
            id: key.1.clone(),
            agent: agent.to_owned(),
            status,
        });
    }
}

/// `seconds` since the epoch as a [`TimeInfo`].
pub(crate) fn time_info(seconds: f64) -> TimeInfo {
    TimeInfo {
        nanoseconds: (seconds * 1e9) as i64,
    }
}
