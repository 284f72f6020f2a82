//! What a v1 scheduler call becomes: the message a scheduler driver sends the master for it.
//! The gateway sends it straight to the master as the framework's adapter — the adapter holds
//! the framework's stream and gets what the master sends the framework — so that a call takes
//! one hop to the master, not two (ACKNOWLEDGE alone is two calls per task).

use libactor::{Node, Upid};
use protos::internal::{
    AcceptOffersMessage, DeclineOffersMessage, FrameworkToExecutorMessage, KillTaskMessage,
    ReconcileTasksMessage, ReviveOffersMessage, ShutdownExecutorMessage,
    StatusUpdateAcknowledgementMessage, SuppressOffersMessage,
};
use protos::v1::scheduler::{call, Call};
use protos::v1::TaskStatus;

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forwarded {
    /// Its message went to the master (or it asks nothing of Keel).
    Sent,
    /// `TEARDOWN`: the adapter ends the subscription.
    Teardown,
}

/// Sends the master what a call the gateway validated (see [`super::validate`]) asks, as
/// `adapter` (the framework's scheduler to the master). `TEARDOWN` is the adapter's own: it
/// ends the subscription.
pub(super) fn forward(node: &Node, adapter: &Upid, master: &Upid, call: Call) -> Forwarded {
    let framework_id = call.framework_id.clone();
    use call::Type;
    match Type::try_from(call.r#type).unwrap_or(Type::Unknown) {
        Type::Teardown => return Forwarded::Teardown,
        Type::Accept => {
            let accept = call.accept.unwrap_or_default();
            let (mut tasks, mut groups) = (Vec::new(), Vec::new());
            for op in accept.operations {
                tasks.extend(op.launch.into_iter().flat_map(|l| l.task_infos));
                groups.extend(op.launch_group);
            }
            node.send_from(
                adapter,
                master,
                AcceptOffersMessage {
                    framework_id,
                    offer_ids: accept.offer_ids,
                    tasks,
                    filters: accept.filters,
                    groups,
                },
            );
        }
        Type::Decline => {
            let decline = call.decline.unwrap_or_default();
            node.send_from(
                adapter,
                master,
                DeclineOffersMessage {
                    framework_id,
                    offer_ids: decline.offer_ids,
                    filters: decline.filters,
                },
            );
        }
        Type::Revive => {
            let roles = call.revive.map(|r| r.roles).unwrap_or_default();
            node.send_from(
                adapter,
                master,
                ReviveOffersMessage {
                    framework_id,
                    roles,
                },
            );
        }
        Type::Suppress => {
            let roles = call.suppress.map(|s| s.roles).unwrap_or_default();
            node.send_from(
                adapter,
                master,
                SuppressOffersMessage {
                    framework_id,
                    roles,
                },
            );
        }
        Type::Shutdown => {
            let shutdown = call.shutdown.unwrap_or_default();
            node.send_from(
                adapter,
                master,
                ShutdownExecutorMessage {
                    executor_id: shutdown.executor_id,
                    framework_id,
                    slave_id: shutdown.agent_id,
                },
            );
        }
        Type::Kill => {
            let kill = call.kill.unwrap_or_default();
            node.send_from(
                adapter,
                master,
                KillTaskMessage {
                    framework_id,
                    task_id: kill.task_id,
                    kill_policy: kill.kill_policy,
                    reason: None,
                },
            );
        }
        Type::Acknowledge => {
            let ack = call.acknowledge.unwrap_or_default();
            node.send_from(
                adapter,
                master,
                StatusUpdateAcknowledgementMessage {
                    slave_id: ack.agent_id,
                    framework_id,
                    task_id: ack.task_id,
                    uuid: ack.uuid,
                },
            );
        }
        Type::Reconcile => {
            let statuses = call
                .reconcile
                .unwrap_or_default()
                .tasks
                .into_iter()
                .map(|t| TaskStatus {
                    task_id: t.task_id,
                    agent_id: t.agent_id,
                    ..Default::default()
                })
                .collect();
            node.send_from(
                adapter,
                master,
                ReconcileTasksMessage {
                    framework_id,
                    statuses,
                },
            );
        }
        Type::Message => {
            let message = call.message.unwrap_or_default();
            node.send_from(
                adapter,
                master,
                FrameworkToExecutorMessage {
                    slave_id: message.agent_id,
                    framework_id,
                    executor_id: message.executor_id,
                    data: message.data,
                },
            );
        }
        // Keel sends no inverse offers, and its allocator does not act on requests:
        // nothing to do, as Mesos does with unknown inverse offers.
        Type::AcceptInverseOffers | Type::DeclineInverseOffers | Type::Request => {}
        other => {
            tracing::warn!(call = ?other, "a call the gateway should have refused was not forwarded");
        }
    }
    Forwarded::Sent
}
