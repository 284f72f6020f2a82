//! Mesos's operator events (`keel.v1.master.Event`) for `SUBSCRIBE` streams, built from the
//! master's feed once the view has applied a change, and only while someone subscribes.

use protos::v1::master::event::{
    AgentAdded, AgentRemoved, FrameworkAdded, FrameworkRemoved, FrameworkUpdated, TaskAdded,
    TaskUpdated, Type,
};
use protos::v1::master::Event;
use protos::v1::{AgentId, FrameworkId};

use super::view::ClusterView;
use crate::master::FeedItem;

/// The event `item` makes, read from `view` after it applied `item`; `None` for changes Mesos
/// has no event for (offers).
pub fn event_of(item: &FeedItem, view: &ClusterView) -> Option<Event> {
    let mut event = Event::default();
    match item {
        FeedItem::AgentAdded { id, .. } => {
            let agent = view.agent(id)?;
            event.r#type = Type::AgentAdded as i32;
            event.agent_added = Some(AgentAdded {
                agent: Some(agent.to_proto(&view.allocated_on(id))),
            });
        }
        FeedItem::AgentRemoved { id } => {
            event.r#type = Type::AgentRemoved as i32;
            event.agent_removed = Some(AgentRemoved {
                agent_id: Some(AgentId { value: id.clone() }),
            });
        }
        FeedItem::FrameworkChanged { id, added, .. } => {
            let framework = view.framework(id)?;
            let framework = Some(framework.to_proto());
            if *added {
                event.r#type = Type::FrameworkAdded as i32;
                event.framework_added = Some(FrameworkAdded { framework });
            } else {
                event.r#type = Type::FrameworkUpdated as i32;
                event.framework_updated = Some(FrameworkUpdated { framework });
            }
        }
        FeedItem::FrameworkRemoved { id, info } => {
            let mut info = info.clone();
            info.id = Some(FrameworkId { value: id.clone() });
            event.r#type = Type::FrameworkRemoved as i32;
            event.framework_removed = Some(FrameworkRemoved {
                framework_info: Some(info),
            });
        }
        FeedItem::TaskAdded { framework, id, .. } => {
            let task = view.task(&(framework.clone(), id.clone()))?;
            event.r#type = Type::TaskAdded as i32;
            event.task_added = Some(TaskAdded {
                task: Some(task.to_proto()),
            });
        }
        FeedItem::TaskUpdated {
            framework,
            id,
            agent,
            status,
        } => {
            event.r#type = Type::TaskUpdated as i32;
            event.task_updated = Some(TaskUpdated {
                framework_id: Some(FrameworkId {
                    value: framework.clone(),
                }),
                status: Some(status.to_proto(id, agent)),
                state: Some(status.state as i32),
            });
        }
        FeedItem::OfferAdded { .. } | FeedItem::OfferRemoved(_) => return None,
    }
    Some(event)
}
