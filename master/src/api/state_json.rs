//! Mesos's classic state endpoints, built by the API process from its view (the master only
//! adds what it alone knows, [`MasterSide`], when it forwards the request): `/master/state`,
//! `/master/state-summary`, `/master/slaves`, `/master/frameworks`, `/master/tasks` (with
//! `limit`, `offset` and `order`), `/master/roles`, `/master/flags` and
//! `/master/maintenance/{schedule,status}`, in Mesos's JSON shape (resources and attributes as
//! objects, times in seconds, task statuses with timestamps, `completed_frameworks`,
//! `completed_tasks`, `unreachable_tasks`, `unregistered_frameworks`). `?jsonp=f` wraps any of
//! them as `f(…);`. Who may see what: frameworks and tasks by `--acls` `view_frameworks` /
//! `view_tasks` on the framework's user, for the reader's proven principal.

use std::collections::{BTreeMap, BTreeSet};

use authentication::acls::Action;
use libactor::{Context, HttpRequest, HttpResponse};
use protos::v1::value::Type as ValueType;
use protos::v1::{Attribute, FrameworkInfo, MasterInfo};
use resources::Resources;
use serde_json::{json, Map, Value};

use super::view::{framework_id, FrameworkRecord, TaskRecord, ViewOffer};
use super::ApiGateway;

/// `/master/tasks` lists at most this many tasks unless `limit` says otherwise (Mesos's
/// default).
pub const DEFAULT_TASKS_LIMIT: usize = 100;

/// What only the master knows, sent with each state request it forwards.
#[derive(Debug, Clone, Default)]
pub struct MasterSide {
    /// The master itself.
    pub info: MasterInfo,
    /// Drained hostnames, with why.
    pub drained: Vec<(String, String)>,
    /// Agents of the registry not back since this master took over.
    pub recovered_agents: Vec<String>,
    /// Agents marked unreachable, with since when (seconds since the epoch).
    pub unreachable_agents: Vec<(String, f64)>,
    /// Frameworks of the registry not back since this master took over.
    pub recovered_frameworks: Vec<(String, FrameworkInfo)>,
}

fn seconds(t: Option<f64>) -> Value {
    t.map_or(Value::Null, |t| json!(t))
}

/// An attribute's value as Mesos writes it in state: a number, a string, or a ranges/set text.
fn attribute_value(a: &Attribute) -> Value {
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

/// A task in Mesos's state shape.
fn task_json(task: &TaskRecord) -> Value {
    let statuses: Vec<Value> = task
        .statuses
        .iter()
        .map(|s| {
            let mut status = json!({
                "state": s.state.as_str_name(),
                "timestamp": s.timestamp,
            });
            if let Some(healthy) = s.healthy {
                status["healthy"] = json!(healthy);
            }
            status
        })
        .collect();
    json!({
        "id": task.id,
        "name": task.name,
        "framework_id": task.framework,
        "executor_id": task.executor,
        "slave_id": task.agent,
        "state": task.state.as_str_name(),
        "resources": task.resources.to_json(),
        "statuses": statuses,
    })
}

fn offer_json(id: &str, offer: &ViewOffer) -> Value {
    json!({
        "id": id,
        "framework_id": offer.framework,
        "slave_id": offer.agent,
        "resources": offer.resources.to_json(),
    })
}

fn framework_info_json(id: &str, info: &FrameworkInfo) -> Value {
    let capabilities: Vec<&str> = info
        .capabilities
        .iter()
        .filter_map(|c| {
            protos::v1::framework_info::capability::Type::try_from(c.r#type)
                .ok()
                .map(|t| t.as_str_name())
        })
        .collect();
    json!({
        "id": id,
        "name": info.name,
        "user": info.user,
        "role": crate::master::role_of(info),
        "principal": info.principal,
        "hostname": info.hostname,
        "webui_url": info.webui_url,
        "checkpoint": info.checkpoint,
        "failover_timeout": info.failover_timeout.unwrap_or(0.0),
        "capabilities": capabilities,
    })
}

/// Who sees what (see the module docs).
struct Viewer<'a> {
    gateway: &'a ApiGateway,
    principal: Option<&'a str>,
}

impl Viewer<'_> {
    fn sees_framework(&self, user: &str) -> bool {
        let acls = &self.gateway.auth.acls;
        acls.permits(Action::ViewFramework, self.principal, user)
    }

    fn sees_tasks(&self, user: &str) -> bool {
        let acls = &self.gateway.auth.acls;
        acls.permits(Action::ViewTask, self.principal, user)
    }
}

impl ApiGateway {
    /// The frameworks `viewer` may see, in Mesos's shape: registered ones (`frameworks`),
    /// removed ones (`completed_frameworks`), and those of the registry or of tasks agents
    /// brought back that have not re-registered since a failover (`unregistered_frameworks`,
    /// also listed inactive and `recovered` among `frameworks`, as Keel always has).
    fn frameworks_json(&self, viewer: Option<&str>, side: &MasterSide) -> (Vec<Value>, Vec<Value>) {
        let view = &self.operator.view;
        let who = Viewer {
            gateway: self,
            principal: viewer,
        };
        let mut tasks_by: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
        for ((framework, _), task) in view.tasks() {
            tasks_by.entry(framework).or_default().push(task);
        }
        for tasks in tasks_by.values_mut() {
            tasks.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        }
        let mut offers_by: BTreeMap<&str, Vec<(&String, &ViewOffer)>> = BTreeMap::new();
        for (id, offer) in view.offers() {
            offers_by
                .entry(offer.framework.as_str())
                .or_default()
                .push((id, offer));
        }
        let mut unreachable_by: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
        for task in view.unreachable_tasks() {
            unreachable_by
                .entry(task.framework.as_str())
                .or_default()
                .push(task);
        }
        let sum = |tasks: &[&TaskRecord]| {
            let mut total = Resources::new();
            for t in tasks {
                let _ = total.add(&t.resources);
            }
            total.to_json()
        };
        let offered = |offers: &[(&String, &ViewOffer)]| {
            let mut total = Resources::new();
            for (_, o) in offers {
                let _ = total.add(&o.resources);
            }
            total.to_json()
        };
        let detail = |id: &str, info: &FrameworkInfo, f: Option<&FrameworkRecord>| {
            let mut v = framework_info_json(id, info);
            let tasks = tasks_by.get(id).cloned().unwrap_or_default();
            let offers = offers_by.get(id).cloned().unwrap_or_default();
            let show_tasks = who.sees_tasks(&info.user);
            let list = |tasks: &mut dyn Iterator<Item = &TaskRecord>| -> Vec<Value> {
                if show_tasks {
                    tasks.map(task_json).collect()
                } else {
                    Vec::new()
                }
            };
            v["active"] = json!(f.is_some_and(|f| f.active));
            v["connected"] = json!(f.is_some_and(|f| f.active));
            v["recovered"] = json!(f.is_none());
            v["registered_time"] = seconds(f.map(|f| f.registered));
            v["reregistered_time"] = seconds(f.and_then(|f| f.reregistered));
            v["unregistered_time"] = seconds(f.and_then(|f| f.unregistered));
            v["used_resources"] = sum(&tasks);
            v["resources"] = sum(&tasks);
            v["offered_resources"] = offered(&offers);
            v["tasks"] = json!(list(&mut tasks.iter().copied()));
            v["unreachable_tasks"] = json!(list(
                &mut unreachable_by.get(id).into_iter().flatten().copied()
            ));
            v["completed_tasks"] = json!(list(&mut view.completed_tasks_of(id)));
            v["offers"] = json!(offers
                .iter()
                .map(|(id, o)| offer_json(id, o))
                .collect::<Vec<_>>());
            v["executors"] = json!([]);
            v
        };
        let mut frameworks: Vec<Value> = view
            .frameworks()
            .filter(|(_, f)| who.sees_framework(&f.info.user))
            .map(|(id, f)| detail(id, &f.info, Some(f)))
            .collect();
        let registered: BTreeSet<&str> = view.frameworks().map(|(id, _)| id.as_str()).collect();
        let recovered: BTreeMap<&str, &FrameworkInfo> = side
            .recovered_frameworks
            .iter()
            .map(|(id, info)| (id.as_str(), info))
            .collect();
        let mut away: BTreeSet<&str> = tasks_by.keys().copied().collect();
        away.extend(recovered.keys().copied());
        for id in away.into_iter().filter(|id| !registered.contains(id)) {
            let fallback = FrameworkInfo::default();
            let info = recovered.get(id).copied().unwrap_or(&fallback);
            if who.sees_framework(&info.user) {
                frameworks.push(detail(id, info, None));
            }
        }
        let completed = view
            .completed_frameworks()
            .filter(|f| who.sees_framework(&f.info.user))
            .map(|f| detail(&framework_id(f), &f.info, Some(f)))
            .collect();
        (frameworks, completed)
    }

    /// The registered agents in Mesos's shape, by id.
    fn agents_json(&self, side: &MasterSide) -> Vec<Value> {
        let view = &self.operator.view;
        let drained: BTreeSet<&str> = side.drained.iter().map(|(h, _)| h.as_str()).collect();
        let mut offered: BTreeMap<&str, Resources> = BTreeMap::new();
        for (_, offer) in view.offers() {
            let _ = offered
                .entry(offer.agent.as_str())
                .or_default()
                .add(&offer.resources);
        }
        view.agents()
            .map(|(id, agent)| {
                let info = &agent.info;
                let attributes: Map<String, Value> = info
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), attribute_value(a)))
                    .collect();
                json!({
                    "id": id,
                    "pid": agent.pid,
                    "hostname": info.hostname,
                    "port": info.port,
                    "version": env!("CARGO_PKG_VERSION"),
                    "registered_time": agent.registered,
                    "reregistered_time": seconds(agent.reregistered),
                    "resources": agent.total.to_json(),
                    "used_resources": view.allocated_on(id).to_json(),
                    "offered_resources": offered.get(id.as_str()).cloned().unwrap_or_default().to_json(),
                    "attributes": attributes,
                    "active": !drained.contains(info.hostname.as_str()),
                })
            })
            .collect()
    }

    /// `/master/state`.
    pub fn state_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        let (frameworks, completed) = self.frameworks_json(req.principal.as_deref(), side);
        let (unregistered, _): (Vec<&Value>, Vec<&Value>) =
            frameworks.iter().partition(|f| f["recovered"] == true);
        let unregistered: Vec<Value> = unregistered.into_iter().cloned().collect();
        let slaves = self.agents_json(side);
        let activated = slaves.iter().filter(|s| s["active"] == true).count();
        let flags: Map<String, Value> = self
            .operator
            .flags()
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let start = self.operator.start_time();
        jsonp(
            req,
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "id": side.info.id,
                "pid": side.info.pid,
                "hostname": side.info.hostname,
                "leader": side.info.pid,
                "start_time": start,
                "elected_time": start,
                "activated_slaves": activated,
                "deactivated_slaves": slaves.len() - activated,
                "unreachable_slaves": side
                    .unreachable_agents
                    .iter()
                    .map(|(id, since)| json!({"id": id, "timestamp": since}))
                    .collect::<Vec<_>>(),
                "slaves": slaves,
                "recovered_slaves": side.recovered_agents,
                "frameworks": frameworks,
                "completed_frameworks": completed,
                "unregistered_frameworks": unregistered,
                "orphan_tasks": Vec::<Value>::new(),
                "flags": flags,
                "drained_machines": side
                    .drained
                    .iter()
                    .map(|(hostname, reason)| json!({"hostname": hostname, "reason": reason}))
                    .collect::<Vec<_>>(),
            }),
        )
    }

    /// `/master/state-summary`: agents and frameworks with counts of tasks by state, no tasks.
    pub fn state_summary_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        let (frameworks, _) = self.frameworks_json(req.principal.as_deref(), side);
        let frameworks: Vec<Value> = frameworks
            .into_iter()
            .map(|mut f| {
                // Mesos counts a framework's tasks by state, under the states' names.
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for key in ["tasks", "unreachable_tasks", "completed_tasks"] {
                    for task in f[key].take().as_array().into_iter().flatten() {
                        let state = task["state"].as_str().unwrap_or("TASK_UNKNOWN");
                        *counts.entry(state.to_owned()).or_default() += 1;
                    }
                }
                if let Some(map) = f.as_object_mut() {
                    for key in ["tasks", "unreachable_tasks", "completed_tasks", "offers"] {
                        map.remove(key);
                    }
                    for (state, n) in counts {
                        map.insert(state, json!(n));
                    }
                }
                f
            })
            .collect();
        jsonp(
            req,
            json!({
                "hostname": side.info.hostname,
                "slaves": self.agents_json(side),
                "frameworks": frameworks,
            }),
        )
    }

    /// `/master/slaves`.
    pub fn slaves_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        jsonp(
            req,
            json!({
                "slaves": self.agents_json(side),
                "recovered_slaves": side.recovered_agents,
            }),
        )
    }

    /// `/master/frameworks`.
    pub fn frameworks_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        let (all, completed) = self.frameworks_json(req.principal.as_deref(), side);
        let (unregistered, registered): (Vec<Value>, Vec<Value>) =
            all.into_iter().partition(|f| f["recovered"] == true);
        jsonp(
            req,
            json!({
                "frameworks": registered,
                "completed_frameworks": completed,
                "unregistered_frameworks": unregistered,
            }),
        )
    }

    /// `/master/tasks`: live, unreachable and completed tasks, `limit` of them from `offset`,
    /// by (framework, task) id in `order` (`des`, the default, or `asc`).
    pub fn tasks_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        let number = |name: &str, default: usize| -> Result<usize, HttpResponse> {
            req.query_param(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| {
                    HttpResponse::bad_request(format!("{name}={v:?} is not a whole number"))
                })
            })
        };
        let (limit, offset) = match (number("limit", DEFAULT_TASKS_LIMIT), number("offset", 0)) {
            (Ok(l), Ok(o)) => (l, o),
            (Err(reply), _) | (_, Err(reply)) => return reply,
        };
        let descending = match req.query_param("order").unwrap_or("des") {
            "des" => true,
            "asc" => false,
            other => {
                return HttpResponse::bad_request(format!("order={other:?}: expected asc or des"))
            }
        };
        let (frameworks, completed) = self.frameworks_json(req.principal.as_deref(), side);
        let mut tasks: Vec<Value> = frameworks
            .into_iter()
            .chain(completed)
            .flat_map(|mut f| {
                ["tasks", "unreachable_tasks", "completed_tasks"]
                    .into_iter()
                    .flat_map(|key| match f[key].take() {
                        Value::Array(tasks) => tasks,
                        _ => Vec::new(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        tasks.sort_by(|a, b| {
            let key = |t: &Value| (t["framework_id"].to_string(), t["id"].to_string());
            key(a).cmp(&key(b))
        });
        if descending {
            tasks.reverse();
        }
        let page: Vec<Value> = tasks.into_iter().skip(offset).take(limit).collect();
        jsonp(req, json!({ "tasks": page }))
    }

    /// `/master/roles`: each role with a framework, its weight, frameworks and what their
    /// tasks hold.
    pub fn roles_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        _side: &MasterSide,
    ) -> HttpResponse {
        let weights = self.operator.weights();
        let roles: Vec<Value> = self
            .operator
            .view
            .get_roles(&|role: &str| weights.get(role).copied().unwrap_or(1.0))
            .into_iter()
            .map(|r| {
                let frameworks: Vec<&str> = r.frameworks.iter().map(|f| f.value.as_str()).collect();
                json!({
                    "name": r.name,
                    "weight": r.weight.unwrap_or(1.0),
                    "frameworks": frameworks,
                    "resources": Resources::from_proto(&r.resources).unwrap_or_default().to_json(),
                })
            })
            .collect();
        jsonp(req, json!({ "roles": roles }))
    }

    /// `/master/flags`.
    pub fn flags_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        _side: &MasterSide,
    ) -> HttpResponse {
        let flags: Map<String, Value> = self
            .operator
            .flags()
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        jsonp(req, json!({ "flags": flags }))
    }
}

/// `value` as JSON, or as `f(value);` JavaScript when the request asks `?jsonp=f`.
pub fn jsonp(req: &HttpRequest, value: Value) -> HttpResponse {
    match req.query_param("jsonp") {
        Some(f)
            if !f.is_empty()
                && f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$') =>
        {
            HttpResponse::bytes(
                200,
                "text/javascript",
                format!("{f}({value});").into_bytes(),
            )
        }
        Some(f) => HttpResponse::bad_request(format!("jsonp={f:?} is not a function name")),
        None => HttpResponse::json(&value),
    }
}
