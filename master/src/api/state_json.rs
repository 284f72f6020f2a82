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
use protos::v1::{FrameworkInfo, MasterInfo};
use resources::Resources;
use serde::Serialize;
use serde_json::{json, Value};

use super::state_shape::{AgentOut, FrameworkOut, TaskOut};
use super::view::{FrameworkRecord, TaskRecord, ViewOffer};
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
    /// Shared-state scheduling: the cell and the latest transactions.
    pub omega: OmegaSide,
}

/// The shared-state (Omega) part of `/master/state`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OmegaSide {
    /// The master's epoch: versions are numbered within it.
    pub epoch: String,
    /// The latest version.
    pub version: u64,
    /// Frameworks subscribed to the cell.
    pub subscribers: Vec<String>,
    /// The latest transactions, oldest first.
    pub recent_transactions: Vec<TransactionRecord>,
}

/// One transaction, as `/master/state` and `keelctl transactions` show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransactionRecord {
    /// The committing framework.
    pub framework_id: String,
    /// Its user (who may see the record, by `view_frameworks`).
    #[serde(skip)]
    pub user: String,
    /// The framework's name for it.
    pub transaction_id: String,
    /// When the master decided it (seconds since the epoch).
    pub time: f64,
    /// Placements in it.
    pub placements: u64,
    /// Committed.
    pub committed: u64,
    /// In conflict (coarse, fine, or aborted with a gang).
    pub conflicted: u64,
    /// Refused (invalid, unavailable agent, ACLs, role limit, duplicates).
    pub refused: u64,
    /// Waiting on preemptions.
    pub preempting: u64,
    /// The whole transaction refused, why.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// How long the master took to decide and apply it, microseconds.
    pub commit_micros: u64,
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
    /// The shared-state part `viewer` may see: transactions of the frameworks it may view.
    fn omega_seen(&self, viewer: Option<&str>, side: &MasterSide) -> OmegaSide {
        let who = Viewer {
            gateway: self,
            principal: viewer,
        };
        let mut omega = side.omega.clone();
        omega
            .recent_transactions
            .retain(|t| who.sees_framework(&t.user));
        omega
    }

    /// The frameworks `viewer` may see, in Mesos's shape: registered ones and those of the
    /// registry or of tasks agents brought back that have not re-registered since a failover
    /// (`recovered`), then removed ones (`completed_frameworks`).
    fn frameworks_out<'a>(
        &'a self,
        viewer: Option<&str>,
        side: &'a MasterSide,
    ) -> (Vec<FrameworkOut<'a>>, Vec<FrameworkOut<'a>>) {
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
        let detail = |id: &'a str, info: &'a FrameworkInfo, record: Option<&'a FrameworkRecord>| {
            let tasks = tasks_by.get(id).cloned().unwrap_or_default();
            let mut used = Resources::new();
            for t in &tasks {
                let _ = used.add(&t.resources);
            }
            let shown = who.sees_tasks(&info.user);
            let visible = |tasks: Vec<&'a TaskRecord>| if shown { tasks } else { Vec::new() };
            FrameworkOut {
                id,
                info,
                record,
                tasks: visible(tasks),
                unreachable_tasks: visible(unreachable_by.get(id).cloned().unwrap_or_default()),
                completed_tasks: visible(view.completed_tasks_of(id).collect()),
                offers: offers_by.get(id).cloned().unwrap_or_default(),
                used,
            }
        };
        let mut frameworks: Vec<FrameworkOut<'a>> = view
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
        let mut away: BTreeSet<&'a str> = tasks_by.keys().copied().collect();
        away.extend(recovered.keys().copied());
        for id in away.into_iter().filter(|id| !registered.contains(id)) {
            let info = recovered.get(id).copied().unwrap_or(&UNKNOWN_FRAMEWORK);
            if who.sees_framework(&info.user) {
                frameworks.push(detail(id, info, None));
            }
        }
        let completed = view
            .completed_frameworks()
            .filter(|f| who.sees_framework(&f.info.user))
            .map(|f| {
                let id = f.info.id.as_ref().map_or("", |i| i.value.as_str());
                detail(id, &f.info, Some(f))
            })
            .collect();
        (frameworks, completed)
    }

    /// The registered agents in Mesos's shape, by id.
    fn agents_out<'a>(&'a self, side: &MasterSide) -> Vec<AgentOut<'a>> {
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
            .map(|(id, record)| AgentOut {
                id,
                record,
                used: view.allocated_on(id),
                offered: offered.get(id.as_str()).cloned().unwrap_or_default(),
                active: !drained.contains(record.info.hostname.as_str()),
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
        #[derive(Serialize)]
        struct State<'a> {
            version: &'static str,
            id: &'a str,
            pid: &'a str,
            hostname: &'a str,
            leader: &'a str,
            start_time: f64,
            elected_time: f64,
            activated_slaves: usize,
            deactivated_slaves: usize,
            unreachable_slaves: Vec<Value>,
            slaves: Vec<AgentOut<'a>>,
            recovered_slaves: &'a [String],
            frameworks: Vec<FrameworkOut<'a>>,
            completed_frameworks: Vec<FrameworkOut<'a>>,
            unregistered_frameworks: Vec<&'a str>,
            orphan_tasks: [(); 0],
            flags: BTreeMap<&'a str, &'a str>,
            drained_machines: Vec<Value>,
            omega: OmegaSide,
        }
        let (frameworks, completed) = self.frameworks_out(req.principal.as_deref(), side);
        let slaves = self.agents_out(side);
        let activated = slaves.iter().filter(|s| s.active).count();
        let start = self.operator.start_time();
        let state = State {
            version: env!("CARGO_PKG_VERSION"),
            id: &side.info.id,
            pid: &side.info.pid,
            hostname: &side.info.hostname,
            leader: &side.info.pid,
            start_time: start,
            elected_time: start,
            activated_slaves: activated,
            deactivated_slaves: slaves.len() - activated,
            unreachable_slaves: side
                .unreachable_agents
                .iter()
                .map(|(id, since)| json!({"id": id, "timestamp": since}))
                .collect(),
            recovered_slaves: &side.recovered_agents,
            unregistered_frameworks: frameworks
                .iter()
                .filter(|f| f.recovered())
                .map(|f| f.id)
                .collect(),
            slaves,
            frameworks,
            completed_frameworks: completed,
            orphan_tasks: [],
            flags: self.operator.flag_map(),
            drained_machines: side
                .drained
                .iter()
                .map(|(hostname, reason)| json!({"hostname": hostname, "reason": reason}))
                .collect(),
            omega: self.omega_seen(req.principal.as_deref(), side),
        };
        jsonp(req, &state)
    }

    /// `/master/state-summary`: agents and frameworks with counts of their tasks by state
    /// (under the states' names), no tasks.
    pub fn state_summary_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        let (frameworks, _) = self.frameworks_out(req.principal.as_deref(), side);
        let frameworks: Vec<Value> = frameworks
            .iter()
            .map(|f| {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for t in f
                    .tasks
                    .iter()
                    .chain(&f.unreachable_tasks)
                    .chain(&f.completed_tasks)
                {
                    *counts.entry(t.state.as_str_name()).or_default() += 1;
                }
                let mut v = json!({
                    "id": f.id,
                    "name": f.info.name,
                    "user": f.info.user,
                    "role": crate::master::role_of(f.info),
                    "active": f.record.is_some_and(|r| r.active),
                    "recovered": f.recovered(),
                    "used_resources": f.used.to_json(),
                });
                for (state, n) in counts {
                    v[state] = json!(n);
                }
                v
            })
            .collect();
        let slaves = self.agents_out(side);
        jsonp(
            req,
            &json!({
                "hostname": side.info.hostname,
                "slaves": slaves,
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
        #[derive(Serialize)]
        struct Slaves<'a> {
            slaves: Vec<AgentOut<'a>>,
            recovered_slaves: &'a [String],
        }
        let slaves = Slaves {
            slaves: self.agents_out(side),
            recovered_slaves: &side.recovered_agents,
        };
        jsonp(req, &slaves)
    }

    /// `/master/frameworks`.
    pub fn frameworks_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        side: &MasterSide,
    ) -> HttpResponse {
        #[derive(Serialize)]
        struct Frameworks<'a> {
            frameworks: Vec<FrameworkOut<'a>>,
            completed_frameworks: Vec<FrameworkOut<'a>>,
            unregistered_frameworks: Vec<FrameworkOut<'a>>,
        }
        let (all, completed) = self.frameworks_out(req.principal.as_deref(), side);
        let (unregistered, frameworks): (Vec<_>, Vec<_>) =
            all.into_iter().partition(FrameworkOut::recovered);
        jsonp(
            req,
            &Frameworks {
                frameworks,
                completed_frameworks: completed,
                unregistered_frameworks: unregistered,
            },
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
        let (frameworks, completed) = self.frameworks_out(req.principal.as_deref(), side);
        let mut tasks: Vec<&TaskRecord> = frameworks
            .iter()
            .chain(&completed)
            .flat_map(|f| {
                f.tasks
                    .iter()
                    .chain(&f.unreachable_tasks)
                    .chain(&f.completed_tasks)
                    .copied()
            })
            .collect();
        tasks.sort_by(|a, b| (&a.framework, &a.id).cmp(&(&b.framework, &b.id)));
        if descending {
            tasks.reverse();
        }
        let page: Vec<TaskOut> = tasks
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(TaskOut)
            .collect();
        jsonp(req, &json!({ "tasks": page }))
    }

    /// `/master/roles`: each role with a framework, its weight, frameworks and what their
    /// tasks hold.
    pub fn roles_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        _side: &MasterSide,
    ) -> HttpResponse {
        let roles: Vec<Value> = self
            .operator
            .roles()
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
        jsonp(req, &json!({ "roles": roles }))
    }

    /// `/master/flags`.
    pub fn flags_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: &HttpRequest,
        _side: &MasterSide,
    ) -> HttpResponse {
        jsonp(req, &json!({ "flags": self.operator.flag_map() }))
    }
}

/// The info of a framework known only by tasks its agents brought back.
static UNKNOWN_FRAMEWORK: std::sync::LazyLock<FrameworkInfo> =
    std::sync::LazyLock::new(FrameworkInfo::default);

/// `value` as JSON, or as `f(value);` JavaScript when the request asks `?jsonp=f`.
pub fn jsonp<T: Serialize>(req: &HttpRequest, value: &T) -> HttpResponse {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => return HttpResponse::text(500, format!("cannot serialize the answer: {e}\n")),
    };
    match req.query_param("jsonp") {
        Some(f)
            if !f.is_empty()
                && f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$') =>
        {
            let mut wrapped = Vec::with_capacity(body.len() + f.len() + 3);
            wrapped.extend_from_slice(f.as_bytes());
            wrapped.push(b'(');
            wrapped.extend_from_slice(&body);
            wrapped.extend_from_slice(b");");
            HttpResponse::bytes(200, "text/javascript", wrapped)
        }
        Some(f) => HttpResponse::bad_request(format!("jsonp={f:?} is not a function name")),
        None => HttpResponse::bytes(200, "application/json", body),
    }
}
