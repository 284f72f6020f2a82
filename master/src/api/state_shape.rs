//! Mesos's state JSON shape, written straight from the view's records into a [`JsonOut`] (no
//! intermediate JSON tree, and no escaping pass over keys: a large `/master/state` is hundreds
//! of thousands of tasks).

use protos::v1::value::Type as ValueType;
use protos::v1::{Attribute, FrameworkInfo};
use resources::{Amount, Resources};

use super::json_out::JsonOut;
use super::prefetch::{prefetch, prefetch_lines};
use super::view::{AgentRecord, FrameworkRecord, TaskRecord, ViewOffer};

/// Resources as one object: scalars as numbers summed over roles, ranges and sets as text.
pub struct ResourcesOut<'a>(pub &'a Resources);

impl ResourcesOut<'_> {
    /// Writes the object.
    pub fn write(&self, out: &mut JsonOut) {
        out.begin_object();
        for (name, total) in self.0.scalar_sums() {
            out.key_text(name);
            out.number(total);
        }
        for (name, _, amount) in self.0.iter() {
            match amount {
                Amount::Scalar(_) => {}
                Amount::Ranges(r) => {
                    out.key_text(name);
                    out.string(&r.to_string());
                }
                Amount::Set(set) => {
                    let items: Vec<&str> = set.iter().map(String::as_str).collect();
                    out.key_text(name);
                    out.string(&format!("{{{}}}", items.join(",")));
                }
            }
        }
        out.end_object();
    }
}

/// A task, with its statuses.
pub struct TaskOut<'a>(pub &'a TaskRecord);

impl TaskOut<'_> {
    /// Writes the object.
    pub fn write(&self, out: &mut JsonOut) {
        let t = self.0;
        out.begin_object();
        out.key("id");
        out.string(&t.id);
        out.key("name");
        out.string(&t.name);
        out.key("framework_id");
        out.string(&t.framework);
        out.key("executor_id");
        out.string(&t.executor);
        out.key("slave_id");
        out.string(&t.agent);
        out.key("state");
        out.string(t.state.as_str_name());
        out.key("resources");
        ResourcesOut(&t.resources).write(out);
        out.key("statuses");
        out.begin_array();
        for status in &t.statuses {
            out.begin_object();
            out.key("state");
            out.string(status.state.as_str_name());
            out.key("timestamp");
            out.number(status.timestamp);
            if let Some(healthy) = status.healthy {
                out.key("healthy");
                out.bool(healthy);
            }
            out.end_object();
        }
        out.end_array();
        out.end_object();
    }
}

/// How many tasks ahead [`walk_tasks`] asks for a record, and half that for its text.
const PREFETCH_DISTANCE: usize = 8;

/// Calls `each` with every task of `tasks` in order, asking the CPU for the records a few
/// tasks ahead, then (once a record has arrived) for the heap text it points to.
pub fn walk_tasks(tasks: &[&TaskRecord], mut each: impl FnMut(&TaskRecord)) {
    for (i, t) in tasks.iter().enumerate() {
        if let Some(ahead) = tasks.get(i + PREFETCH_DISTANCE) {
            prefetch_lines(*ahead, 4);
        }
        if let Some(near) = tasks.get(i + PREFETCH_DISTANCE / 2) {
            prefetch(near.id.as_ptr());
            prefetch(near.name.as_ptr());
            prefetch(near.framework.as_ptr());
            prefetch(near.agent.as_ptr());
            prefetch(near.statuses.as_ptr());
        }
        each(t);
    }
}

/// Writes `tasks` as an array.
pub fn write_tasks(out: &mut JsonOut, tasks: &[&TaskRecord]) {
    out.begin_array();
    walk_tasks(tasks, |t| TaskOut(t).write(out));
    out.end_array();
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

impl FrameworkOut<'_> {
    fn write_offers(&self, out: &mut JsonOut) {
        out.begin_array();
        for (id, offer) in &self.offers {
            out.begin_object();
            out.key("framework_id");
            out.string(&offer.framework);
            out.key("id");
            out.string(id);
            out.key("resources");
            ResourcesOut(&offer.resources).write(out);
            out.key("slave_id");
            out.string(&offer.agent);
            out.end_object();
        }
        out.end_array();
    }

    /// Writes the object.
    pub fn write(&self, out: &mut JsonOut) {
        let info = self.info;
        let mut offered = Resources::new();
        for (_, o) in &self.offers {
            let _ = offered.add(&o.resources);
        }
        let active = self.record.is_some_and(|f| f.active);
        let time = |out: &mut JsonOut, t: Option<f64>| match t {
            Some(t) => out.number(t),
            None => out.null(),
        };
        out.begin_object();
        out.key("id");
        out.string(self.id);
        out.key("name");
        out.string(&info.name);
        out.key("user");
        out.string(&info.user);
        out.key("role");
        out.string(crate::master::role_of(info));
        out.key("principal");
        out.value(&info.principal);
        out.key("hostname");
        out.value(&info.hostname);
        out.key("webui_url");
        out.value(&info.webui_url);
        out.key("checkpoint");
        out.value(&info.checkpoint);
        out.key("failover_timeout");
        out.number(info.failover_timeout.unwrap_or(0.0));
        out.key("capabilities");
        out.begin_array();
        for c in &info.capabilities {
            if let Ok(t) = protos::v1::framework_info::capability::Type::try_from(c.r#type) {
                out.string(t.as_str_name());
            }
        }
        out.end_array();
        out.key("active");
        out.bool(active);
        out.key("connected");
        out.bool(active);
        out.key("recovered");
        out.bool(self.recovered());
        out.key("registered_time");
        time(out, self.record.map(|f| f.registered));
        out.key("reregistered_time");
        time(out, self.record.and_then(|f| f.reregistered));
        out.key("unregistered_time");
        time(out, self.record.and_then(|f| f.unregistered));
        out.key("used_resources");
        ResourcesOut(&self.used).write(out);
        out.key("resources");
        ResourcesOut(&self.used).write(out);
        out.key("offered_resources");
        ResourcesOut(&offered).write(out);
        out.key("tasks");
        write_tasks(out, &self.tasks);
        out.key("unreachable_tasks");
        write_tasks(out, &self.unreachable_tasks);
        out.key("completed_tasks");
        write_tasks(out, &self.completed_tasks);
        out.key("offers");
        self.write_offers(out);
        out.key("executors");
        out.begin_array();
        out.end_array();
        out.end_object();
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

impl AgentOut<'_> {
    /// Writes the object.
    pub fn write(&self, out: &mut JsonOut) {
        let info = &self.record.info;
        out.begin_object();
        out.key("id");
        out.string(self.id);
        out.key("pid");
        out.string(&self.record.pid);
        out.key("hostname");
        out.string(&info.hostname);
        out.key("port");
        out.value(&info.port);
        out.key("version");
        out.string(env!("CARGO_PKG_VERSION"));
        out.key("registered_time");
        out.number(self.record.registered);
        out.key("reregistered_time");
        match self.record.reregistered {
            Some(t) => out.number(t),
            None => out.null(),
        }
        out.key("resources");
        ResourcesOut(&self.record.total).write(out);
        out.key("used_resources");
        ResourcesOut(&self.used).write(out);
        out.key("offered_resources");
        ResourcesOut(&self.offered).write(out);
        out.key("attributes");
        out.begin_object();
        for a in &info.attributes {
            out.key_text(&a.name);
            out.value(&attribute_value(a));
        }
        out.end_object();
        out.key("active");
        out.bool(self.active);
        out.end_object();
    }
}

/// Writes `agents` as an array.
pub fn write_agents(out: &mut JsonOut, agents: &[AgentOut<'_>]) {
    out.begin_array();
    for a in agents {
        a.write(out);
    }
    out.end_array();
}

/// Writes `frameworks` as an array.
pub fn write_frameworks(out: &mut JsonOut, frameworks: &[FrameworkOut<'_>]) {
    out.begin_array();
    for f in frameworks {
        f.write(out);
    }
    out.end_array();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_one_object_of_numbers_and_texts() {
        let r: Resources = "cpus:2;mem:512;ports:[31000-31002]".parse().unwrap();
        let mut out = JsonOut::new();
        ResourcesOut(&r).write(&mut out);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out.into_bytes()).unwrap(),
            r.to_json(),
            "the same shape as Resources::to_json"
        );
    }
}
