//! Mesos's state JSON shape, serialized straight from the view's records (no intermediate JSON
//! tree: a large `/master/state` is hundreds of thousands of tasks, and building a
//! `serde_json::Value` per field cost more than writing the bytes).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use protos::v1::value::Type as ValueType;
use protos::v1::{Attribute, FrameworkInfo};
use resources::{Amount, Resources};

use super::view::{AgentRecord, FrameworkRecord, TaskRecord, ViewOffer};

/// Resources as one object: scalars as numbers summed over roles, ranges and sets as text.
pub struct ResourcesOut<'a>(pub &'a Resources);

impl Serialize for ResourcesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let totals = self.0.scalar_totals();
        let mut map = s.serialize_map(None)?;
        for (name, total) in &totals {
            map.serialize_entry(name, total)?;
        }
        for (name, _, amount) in self.0.iter() {
            match amount {
                Amount::Scalar(_) => {}
                Amount::Ranges(r) => map.serialize_entry(name, &r.to_string())?,
                Amount::Set(set) => {
                    let items: Vec<&str> = set.iter().map(String::as_str).collect();
                    map.serialize_entry(name, &format!("{{{}}}", items.join(",")))?
                }
            }
        }
        map.end()
    }
}

/// A task, with its statuses.
pub struct TaskOut<'a>(pub &'a TaskRecord);

impl Serialize for TaskOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut map = s.serialize_map(Some(8))?;
        map.serialize_entry("id", &t.id)?;
        map.serialize_entry("name", &t.name)?;
        map.serialize_entry("framework_id", &t.framework)?;
        map.serialize_entry("executor_id", &t.executor)?;
        map.serialize_entry("slave_id", &t.agent)?;
        map.serialize_entry("state", t.state.as_str_name())?;
        map.serialize_entry("resources", &ResourcesOut(&t.resources))?;
        map.serialize_entry("statuses", &StatusesOut(t))?;
        map.end()
    }
}

struct StatusesOut<'a>(&'a TaskRecord);

impl Serialize for StatusesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.statuses.len()))?;
        for status in &self.0.statuses {
            seq.serialize_element(&StatusOut {
                state: status.state.as_str_name(),
                timestamp: status.timestamp,
                healthy: status.healthy,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct StatusOut {
    state: &'static str,
    timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthy: Option<bool>,
}

/// A list of tasks.
pub struct TasksOut<'a>(pub &'a [&'a TaskRecord]);

impl Serialize for TasksOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|t| TaskOut(t)))
    }
}

/// A framework with its tasks and offers, as one reader may see it.
pub struct FrameworkOut<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its info.
    pub info: &'a FrameworkInfo,
    /// Its record; `None` for a framework not back since a failover.
    pub record: Option<&'a FrameworkRecord>,
    /// Its live tasks (empty if the reader may not see them).
    pub tasks: Vec<&'a TaskRecord>,
    /// Its tasks on removed agents.
    pub unreachable_tasks: Vec<&'a TaskRecord>,
    /// Its terminal tasks.
    pub completed_tasks: Vec<&'a TaskRecord>,
    /// Its outstanding offers.
    pub offers: Vec<(&'a String, &'a ViewOffer)>,
    /// What its live tasks hold (whether or not the reader sees them).
    pub used: Resources,
}

impl FrameworkOut<'_> {
    /// Whether the framework has not come back since a failover.
    pub fn recovered(&self) -> bool {
        self.record.is_none()
    }
}

struct OffersOut<'a>(&'a [(&'a String, &'a ViewOffer)]);

impl Serialize for OffersOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (id, offer) in self.0 {
            let mut entry = std::collections::BTreeMap::new();
            entry.insert("id", serde_json::json!(id));
            entry.insert("framework_id", serde_json::json!(offer.framework));
            entry.insert("slave_id", serde_json::json!(offer.agent));
            entry.insert("resources", offer.resources.to_json());
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

impl Serialize for FrameworkOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let info = self.info;
        let capabilities: Vec<&str> = info
            .capabilities
            .iter()
            .filter_map(|c| {
                protos::v1::framework_info::capability::Type::try_from(c.r#type)
                    .ok()
                    .map(|t| t.as_str_name())
            })
            .collect();
        let mut offered = Resources::new();
        for (_, o) in &self.offers {
            let _ = offered.add(&o.resources);
        }
        let active = self.record.is_some_and(|f| f.active);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("name", &info.name)?;
        map.serialize_entry("user", &info.user)?;
        map.serialize_entry("role", crate::master::role_of(info))?;
        map.serialize_entry("principal", &info.principal)?;
        map.serialize_entry("hostname", &info.hostname)?;
        map.serialize_entry("webui_url", &info.webui_url)?;
        map.serialize_entry("checkpoint", &info.checkpoint)?;
        map.serialize_entry("failover_timeout", &info.failover_timeout.unwrap_or(0.0))?;
        map.serialize_entry("capabilities", &capabilities)?;
        map.serialize_entry("active", &active)?;
        map.serialize_entry("connected", &active)?;
        map.serialize_entry("recovered", &self.recovered())?;
        map.serialize_entry("registered_time", &self.record.map(|f| f.registered))?;
        map.serialize_entry(
            "reregistered_time",
            &self.record.and_then(|f| f.reregistered),
        )?;
        map.serialize_entry(
            "unregistered_time",
            &self.record.and_then(|f| f.unregistered),
        )?;
        map.serialize_entry("used_resources", &ResourcesOut(&self.used))?;
        map.serialize_entry("resources", &ResourcesOut(&self.used))?;
        map.serialize_entry("offered_resources", &ResourcesOut(&offered))?;
        map.serialize_entry("tasks", &TasksOut(&self.tasks))?;
        map.serialize_entry("unreachable_tasks", &TasksOut(&self.unreachable_tasks))?;
        map.serialize_entry("completed_tasks", &TasksOut(&self.completed_tasks))?;
        map.serialize_entry("offers", &OffersOut(&self.offers))?;
        map.serialize_entry("executors", &[(); 0])?;
        map.end()
    }
}

/// A registered agent.
pub struct AgentOut<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its record.
    pub record: &'a AgentRecord,
    /// What its live tasks hold.
    pub used: Resources,
    /// What outstanding offers hold of it.
    pub offered: Resources,
    /// Not drained.
    pub active: bool,
}

/// An attribute's value as Mesos writes it in state: a number, a string, or a ranges/set text.
fn attribute_value(a: &Attribute) -> serde_json::Value {
    use serde_json::json;
    match ValueType::try_from(a.r#type).unwrap_or(ValueType::Text) {
        ValueType::Scalar => json!(a.scalar.as_ref().map_or(0.0, |s| s.value)),
        ValueType::Ranges => {
            let ranges: Vec<String> = a
                .ranges
                .iter()
                .flat_map(|r| r.range.iter())
                .map(|r| format!("{}-{}", r.begin, r.end))
                .collect();
            json!(format!("[{}]", ranges.join(", ")))
        }
        ValueType::Set => {
            let items = a
                .set
                .as_ref()
                .map(|s| s.item.join(", "))
                .unwrap_or_default();
            json!(format!("{{{items}}}"))
        }
        ValueType::Text => json!(a.text.as_ref().map_or("", |t| t.value.as_str())),
    }
}

impl Serialize for AgentOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let info = &self.record.info;
        let attributes: serde_json::Map<String, serde_json::Value> = info
            .attributes
            .iter()
            .map(|a| (a.name.clone(), attribute_value(a)))
            .collect();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("pid", &self.record.pid)?;
        map.serialize_entry("hostname", &info.hostname)?;
        map.serialize_entry("port", &info.port)?;
        map.serialize_entry("version", env!("CARGO_PKG_VERSION"))?;
        map.serialize_entry("registered_time", &self.record.registered)?;
        map.serialize_entry("reregistered_time", &self.record.reregistered)?;
        map.serialize_entry("resources", &ResourcesOut(&self.record.total))?;
        map.serialize_entry("used_resources", &ResourcesOut(&self.used))?;
        map.serialize_entry("offered_resources", &ResourcesOut(&self.offered))?;
        map.serialize_entry("attributes", &attributes)?;
        map.serialize_entry("active", &self.active)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_one_object_of_numbers_and_texts() {
        let r: Resources = "cpus:2;mem:512;ports:[31000-31002]".parse().unwrap();
        assert_eq!(
            serde_json::to_value(ResourcesOut(&r)).unwrap(),
            r.to_json(),
            "the same shape as Resources::to_json"
        );
    }
}
