//! The books' changes as Mesos's operator events (`keel.v1.master.Event`), sent to the master
//! node's API process as they happen. That process keeps its own copy of the cluster from them,
//! serves the operator API's reads (`GET_STATE`, `GET_TASKS`, …) and `SUBSCRIBE` streams from
//! it, and so never asks the master: polling state does not slow scheduling.
//!
//! Offers, which Mesos's events do not carry, travel as `keel.internal.OfferChanges`.
//!
//! Only [`super::Books`] emits, from the methods that change it, so the copy cannot miss a
//! change. Events are typed values between two processes of one node: nothing is encoded.

use libactor::{Node, Upid};
use protos::v1::master::event::{
    AgentAdded, AgentRemoved, FrameworkAdded, FrameworkRemoved, FrameworkUpdated, TaskAdded,
    TaskUpdated, Type,
};
use protos::v1::master::response::get_agents::Agent;
use protos::v1::master::response::get_frameworks::Framework;
use protos::v1::master::Event;
use protos::v1::{AgentId, ExecutorId, FrameworkId, Task, TaskId, TaskState, TaskStatus, TimeInfo};

use super::books::{AgentEntry, FrameworkEntry, OfferEntry, TaskEntry, TaskKey};

/// Where the books send their events: the API process on the master's node.
pub(super) struct Feed {
    node: Node,
    /// The master (the events' sender).
    from: Upid,
    /// The API process.
    to: Upid,
}

impl Feed {
    /// A feed from the master at `from` to the API process at `to` on `node`.
    pub(super) fn new(node: Node, from: Upid, to: Upid) -> Feed {
        Feed { node, from, to }
    }

    fn now(&self) -> TimeInfo {
        time_info(self.node.clock().unix_seconds())
    }

    fn send(&self, event: Event) {
        self.node.send_from(&self.from, &self.to, event);
    }

    /// Agent `id` registered, or re-registered from a new pid.
    pub(super) fn agent_added(&self, id: &str, entry: &AgentEntry) {
        let mut info = entry.info.clone();
        info.id = Some(AgentId {
            value: id.to_owned(),
        });
        let agent = Agent {
            agent_info: Some(info),
            active: Some(true),
            deactivated: Some(false),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: entry.pid().to_string(),
            registered_time: Some(self.now()),
            total_resources: entry.total().to_proto(),
            allocated_resources: entry.used().to_proto(),
            ..Default::default()
        };
        self.send(Event {
            r#type: Type::AgentAdded as i32,
            agent_added: Some(AgentAdded { agent: Some(agent) }),
            ..Default::default()
        });
    }

    /// Offer `id` was made.
    pub(super) fn offer_added(&self, id: &str, offer: &OfferEntry) {
        let offer = protos::v1::Offer {
            id: Some(protos::v1::OfferId {
                value: id.to_owned(),
            }),
            framework_id: Some(FrameworkId {
                value: offer.framework.clone(),
            }),
            agent_id: Some(AgentId {
                value: offer.agent.clone(),
            }),
            resources: offer.resources.to_proto(),
            ..Default::default()
        };
        self.node.send_from(
            &self.from,
            &self.to,
            protos::internal::OfferChanges {
                added: vec![offer],
                removed: Vec::new(),
            },
        );
    }

    /// Offer `id` was accepted, declined, rescinded or voided.
    pub(super) fn offer_removed(&self, id: &str) {
        self.node.send_from(
            &self.from,
            &self.to,
            protos::internal::OfferChanges {
                added: Vec::new(),
                removed: vec![protos::v1::OfferId {
                    value: id.to_owned(),
                }],
            },
        );
    }

    /// Agent `id` left the books.
    pub(super) fn agent_removed(&self, id: &str) {
        self.send(Event {
            r#type: Type::AgentRemoved as i32,
            agent_removed: Some(AgentRemoved {
                agent_id: Some(AgentId {
                    value: id.to_owned(),
                }),
            }),
            ..Default::default()
        });
    }

    /// Framework `id` registered (`added`) or changed: its scheduler moved, connected or left.
    pub(super) fn framework_changed(&self, id: &str, entry: &FrameworkEntry, added: bool) {
        let mut info = entry.info.clone();
        info.id = Some(FrameworkId {
            value: id.to_owned(),
        });
        let now = self.now();
        let framework = Framework {
            framework_info: Some(info),
            active: Some(entry.active),
            connected: Some(entry.active),
            recovered: Some(false),
            registered_time: added.then_some(now),
            reregistered_time: (!added).then_some(now),
            ..Default::default()
        };
        let mut event = Event::default();
        if added {
            event.r#type = Type::FrameworkAdded as i32;
            event.framework_added = Some(FrameworkAdded {
                framework: Some(framework),
            });
        } else {
            event.r#type = Type::FrameworkUpdated as i32;
            event.framework_updated = Some(FrameworkUpdated {
                framework: Some(framework),
            });
        }
        self.send(event);
    }

    /// Framework `id` left the books.
    pub(super) fn framework_removed(&self, id: &str, entry: &FrameworkEntry) {
        let mut info = entry.info.clone();
        info.id = Some(FrameworkId {
            value: id.to_owned(),
        });
        self.send(Event {
            r#type: Type::FrameworkRemoved as i32,
            framework_removed: Some(FrameworkRemoved {
                framework_info: Some(info),
            }),
            ..Default::default()
        });
    }

    /// Task `key` is on the books (launched, or brought back by its agent).
    pub(super) fn task_added(&self, key: &TaskKey, task: &TaskEntry) {
        let task = Task {
            name: task.name.clone(),
            task_id: Some(TaskId {
                value: key.1.clone(),
            }),
            framework_id: Some(FrameworkId {
                value: key.0.clone(),
            }),
            executor_id: (!task.executor.is_empty()).then(|| ExecutorId {
                value: task.executor.clone(),
            }),
            agent_id: Some(AgentId {
                value: task.agent().to_owned(),
            }),
            state: Some(task.state as i32),
            resources: task.resources().to_proto(),
            ..Default::default()
        };
        self.send(Event {
            r#type: Type::TaskAdded as i32,
            task_added: Some(TaskAdded { task: Some(task) }),
            ..Default::default()
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
        let status = status.cloned().unwrap_or_else(|| TaskStatus {
            task_id: Some(TaskId {
                value: key.1.clone(),
            }),
            state: state as i32,
            source: protos::v1::task_status::Source::Master as i32,
            agent_id: Some(AgentId {
                value: agent.to_owned(),
            }),
            timestamp: self.node.clock().unix_seconds(),
            ..Default::default()
        });
        self.send(Event {
            r#type: Type::TaskUpdated as i32,
            task_updated: Some(TaskUpdated {
                framework_id: Some(FrameworkId {
                    value: key.0.clone(),
                }),
                status: Some(status),
                state: Some(state as i32),
            }),
            ..Default::default()
        });
    }
}

/// `seconds` since the epoch as a [`TimeInfo`].
pub(crate) fn time_info(seconds: f64) -> TimeInfo {
    TimeInfo {
        nanoseconds: (seconds * 1e9) as i64,
    }
}
