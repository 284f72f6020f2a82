//! Mesos's classic read-only endpoints beside `/master/state`, for the tools and scripts that
//! read them: `/master/slaves`, `/master/frameworks`, `/master/tasks` (with `limit`, `offset`
//! and `order`) and `/master/roles`. Who may see what is as in `/master/state`: frameworks and
//! tasks by `--acls` `view_frameworks` / `view_tasks` for the reader's proven principal.

use std::collections::BTreeMap;

use libactor::{Context, HttpRequest, HttpResponse};
use resources::Resources;
use serde_json::{json, Value};

use super::registration::role_of;
use super::Master;

/// `/master/tasks` lists at most this many tasks unless `limit` says otherwise (Mesos's
/// default).
pub const DEFAULT_TASKS_LIMIT: usize = 100;

impl Master {
    pub(super) fn slaves_route(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        let recovered: Vec<&String> = self.recovery.agents.keys().collect();
        HttpResponse::json(&json!({
            "slaves": self.agents_json(),
            "recovered_slaves": recovered,
        }))
    }

    pub(super) fn frameworks_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        let all = self.frameworks_json(req.principal.as_deref());
        let (unregistered, registered): (Vec<Value>, Vec<Value>) =
            all.into_iter().partition(|f| f["recovered"] == true);
        HttpResponse::json(&json!({
            "frameworks": registered,
            "unregistered_frameworks": unregistered,
        }))
    }

    pub(super) fn tasks_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: HttpRequest,
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
        let mut tasks: Vec<Value> = self
            .frameworks_json(req.principal.as_deref())
            .into_iter()
            .flat_map(|mut f| match f["tasks"].take() {
                Value::Array(tasks) => tasks,
                _ => Vec::new(),
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
        HttpResponse::json(&json!({ "tasks": page }))
    }

    pub(super) fn roles_route(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        let mut used: BTreeMap<&str, Resources> = BTreeMap::new();
        for ((framework, _), task) in self.books.tasks() {
            let _ = used.entry(framework).or_default().add(task.resources());
        }
        let mut roles: BTreeMap<&str, (Vec<&str>, Resources)> = BTreeMap::new();
        for (id, f) in self.books.frameworks() {
            let entry = roles.entry(role_of(&f.info)).or_default();
            entry.0.push(id.as_str());
            if let Some(r) = used.get(id.as_str()) {
                let _ = entry.1.add(r);
            }
        }
        let roles: Vec<Value> = roles
            .into_iter()
            .map(|(name, (frameworks, resources))| {
                json!({
                    "name": name,
                    "weight": 1.0,
                    "frameworks": frameworks,
                    "resources": resources.to_json(),
                })
            })
            .collect();
        HttpResponse::json(&json!({ "roles": roles }))
    }
}
