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

use authentication::acls::{Acls, Action};
use libactor::{HttpRequest, HttpResponse};
use protos::v1::{FrameworkInfo, MasterInfo};
use resources::Resources;
use serde::Serialize;
use serde_json::{json, Value};

use super::json_out::JsonOut;
use super::state_shape::{write_agents, write_frameworks, write_tasks, AgentOut, FrameworkOut};
use super::view::{ClusterView, FrameworkRecord, TaskRecord, ViewOffer};

/// `/master/tasks` lists at most this many tasks unless `limit` says otherwise (Mesos's
/// default).
pub const DEFAULT_TASKS_LIMIT: usize = 100;

/// About what a task takes in `/master/state` (with a few statuses), to size the answer.
const TASK_BYTES: usize = 320;
/// About what an agent takes.
const AGENT_BYTES: usize = 640;

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

/// What one reader's state documents are written from: the API process's view, what only the
/// master knows, and who reads.
pub struct StateSource<'a> {
    /// The cluster.
    pub view: &'a ClusterView,
    /// What only the master knows.
    pub side: &'a MasterSide,
    /// `--acls`: who sees which frameworks and tasks.
    pub acls: &'a Acls,
    /// The reader's proven principal.
    pub principal: Option<&'a str>,
    /// The master's flags.
    pub flags: &'a [(String, String)],
    /// When this master started leading (seconds since the epoch).
    pub start_time: f64,
    /// Each role's weight, where an operator set one.
    pub weights: &'a BTreeMap<String, f64>,
}

impl<'a> StateSource<'a> {
    fn sees_framework(&self, user: &str) -> bool {
        self.acls
            .permits(Action::ViewFramework, self.principal, user)
    }

    fn sees_tasks(&self, user: &str) -> bool {
        self.acls.permits(Action::ViewTask, self.principal, user)
    }

    fn flag_map(&self) -> BTreeMap<&'a str, &'a str> {
        self.flags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The shared-state part the reader may see: transactions of the frameworks it may view.
    fn omega_seen(&self) -> OmegaSide {
        let mut omega = self.side.omega.clone();
        omega
            .recent_transactions
            .retain(|t| self.sees_framework(&t.user));
        omega
    }

    /// The frameworks `viewer` may see, in Mesos's shape: registered ones and those of the
    /// registry or of tasks agents brought back that have not re-registered since a failover
    /// (`recovered`), then removed ones (`completed_frameworks`).
    fn frameworks_out(&self) -> (Vec<FrameworkOut<'a>>, Vec<FrameworkOut<'a>>) {
        let view = self.view;
        let side = self.side;
        let who = self;
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
            let tasks = view.tasks_of(id).collect();
            let used = view.used_by(id);
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
        let mut away: BTreeSet<&'a str> = view.frameworks_with_tasks().collect();
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
    fn agents_out(&self) -> Vec<AgentOut<'a>> {
        let view = self.view;
        let side = self.side;
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

    /// `/master/state`, as JSON.
    pub fn state(&self) -> Vec<u8> {
        let side = self.side;
        let (frameworks, completed) = self.frameworks_out();
        let slaves = self.agents_out();
        let activated = slaves.iter().filter(|s| s.active).count();
        let mut out = JsonOut::with_capacity(
            TASK_BYTES * self.view.task_count() + AGENT_BYTES * slaves.len() + 4096,
        );
        out.begin_object();
        out.key("version");
        out.string(env!("CARGO_PKG_VERSION"));
        out.key("id");
        out.string(&side.info.id);
        out.key("pid");
        out.string(&side.info.pid);
        out.key("hostname");
        out.string(&side.info.hostname);
        out.key("leader");
        out.string(&side.info.pid);
        out.key("start_time");
        out.number(self.start_time);
        out.key("elected_time");
        out.number(self.start_time);
        out.key("activated_slaves");
        out.integer(activated as u64);
        out.key("deactivated_slaves");
        out.integer((slaves.len() - activated) as u64);
        out.key("unreachable_slaves");
        out.begin_array();
        for (id, since) in &side.unreachable_agents {
            out.value(&json!({"id": id, "timestamp": since}));
        }
        out.end_array();
        out.key("slaves");
        write_agents(&mut out, &slaves);
        out.key("recovered_slaves");
        out.value(&side.recovered_agents);
        out.key("frameworks");
        write_frameworks(&mut out, &frameworks);
        out.key("completed_frameworks");
        write_frameworks(&mut out, &completed);
        out.key("unregistered_frameworks");
        out.begin_array();
        for f in frameworks.iter().filter(|f| f.recovered()) {
            out.string(f.id);
        }
        out.end_array();
        out.key("orphan_tasks");
        out.begin_array();
        out.end_array();
        out.key("flags");
        out.value(&self.flag_map());
        out.key("drained_machines");
        out.begin_array();
        for (hostname, reason) in &side.drained {
            out.value(&json!({"hostname": hostname, "reason": reason}));
        }
        out.end_array();
        out.key("omega");
        out.value(&self.omega_seen());
        out.end_object();
        out.into_bytes()
    }
}

/// The state routes: each builds its answer from what its reader sees.
pub mod routes {
    use super::*;

    /// `/master/state`.
    pub fn state_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
        jsonp_bytes(req, source.state())
    }

    /// `/master/state-summary`: agents and frameworks with counts of their tasks by state
    /// (under the states' names), no tasks.
    pub fn state_summary_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
        let side = source.side;
        let (frameworks, _) = source.frameworks_out();
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
        let slaves = source.agents_out();
        let mut out = JsonOut::new();
        out.begin_object();
        out.key("hostname");
        out.string(&side.info.hostname);
        out.key("slaves");
        write_agents(&mut out, &slaves);
        out.key("frameworks");
        out.value(&frameworks);
        out.end_object();
        jsonp_bytes(req, out.into_bytes())
    }

    /// `/master/slaves`.
    pub fn slaves_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
        let mut out = JsonOut::new();
        out.begin_object();
        out.key("slaves");
        write_agents(&mut out, &source.agents_out());
        out.key("recovered_slaves");
        out.value(&source.side.recovered_agents);
        out.end_object();
        jsonp_bytes(req, out.into_bytes())
    }

    /// `/master/frameworks`.
    pub fn frameworks_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
        let (all, completed) = source.frameworks_out();
        let (unregistered, frameworks): (Vec<_>, Vec<_>) =
            all.into_iter().partition(FrameworkOut::recovered);
        let mut out = JsonOut::new();
        out.begin_object();
        out.key("frameworks");
        write_frameworks(&mut out, &frameworks);
        out.key("completed_frameworks");
        write_frameworks(&mut out, &completed);
        out.key("unregistered_frameworks");
        write_frameworks(&mut out, &unregistered);
        out.end_object();
        jsonp_bytes(req, out.into_bytes())
    }

    /// `/master/tasks`: live, unreachable and completed tasks, `limit` of them from `offset`,
    /// by (framework, task) id in `order` (`des`, the default, or `asc`).
    pub fn tasks_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
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
        let (frameworks, completed) = source.frameworks_out();
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
        let page: Vec<&TaskRecord> = tasks.into_iter().skip(offset).take(limit).collect();
        let mut out = JsonOut::new();
        out.begin_object();
        out.key("tasks");
        write_tasks(&mut out, &page);
        out.end_object();
        jsonp_bytes(req, out.into_bytes())
    }

    /// `/master/roles`: each role with a framework, its weight, frameworks and what their
    /// tasks hold.
    pub fn roles_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
        let roles: Vec<Value> = source
            .view
            .get_roles(&|role: &str| source.weights.get(role).copied().unwrap_or(1.0))
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
    pub fn flags_route(source: &StateSource<'_>, req: &HttpRequest) -> HttpResponse {
        jsonp(req, &json!({ "flags": source.flag_map() }))
    }
}

/// The info of a framework known only by tasks its agents brought back.
static UNKNOWN_FRAMEWORK: std::sync::LazyLock<FrameworkInfo> =
    std::sync::LazyLock::new(FrameworkInfo::default);

/// `value` as JSON, or as `f(value);` JavaScript when the request asks `?jsonp=f`.
pub fn jsonp<T: Serialize>(req: &HttpRequest, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => jsonp_bytes(req, body),
        Err(e) => HttpResponse::text(500, format!("cannot serialize the answer: {e}\n")),
    }
}

/// A JSON `body`, or `f(body);` JavaScript when the request asks `?jsonp=f`.
pub fn jsonp_bytes(req: &HttpRequest, body: Vec<u8>) -> HttpResponse {
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
