//! `GET /master/state`: the cluster as the master sees it, in the shape of Mesos's state
//! endpoint (`slaves`, `frameworks` with their `tasks` and `offers`, resources as objects), so
//! that tools written for Mesos read it.

use std::collections::BTreeMap;

use authentication::acls::Action;
use libactor::{Context, HttpRequest, HttpResponse};
use resources::Resources;
use serde_json::{json, Value};

use super::registration::role_of;
use super::Master;

impl Master {
    /// The frameworks `viewer` may see, in Mesos's shape (registered ones, then those not back
    /// since a failover, `recovered`): whom `--acls` `view_frameworks` lets see a framework's
    /// user sees it; whom `view_tasks` lets see that user's tasks sees its tasks (everyone
    /// without ACLs).
    pub(super) fn frameworks_json(&self, viewer: Option<&str>) -> Vec<Value> {
        // Used and offered resources by framework (the books keep them by agent).
        let mut used_by_framework: BTreeMap<&str, Resources> = BTreeMap::new();
        let mut tasks_by_framework: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for ((framework, task_id), task) in self.books.tasks() {
            let _ = used_by_framework
                .entry(framework)
                .or_default()
                .add(task.resources());
            tasks_by_framework
                .entry(framework)
                .or_default()
                .push(json!({
                    "id": task_id,
                    "name": task.name,
                    "framework_id": framework,
                    "executor_id": task.executor,
                    "slave_id": task.agent(),
                    "state": task.state.as_str_name(),
                    "resources": task.resources().to_json(),
                }));
        }
        let mut offered_by_framework: BTreeMap<&str, Resources> = BTreeMap::new();
        let mut offers_by_framework: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (id, offer) in self.books.offers() {
            let _ = offered_by_framework
                .entry(&offer.framework)
                .or_default()
                .add(&offer.resources);
            offers_by_framework
                .entry(&offer.framework)
                .or_default()
                .push(json!({
                    "id": id,
                    "framework_id": offer.framework,
                    "slave_id": offer.agent,
                    "resources": offer.resources.to_json(),
                }));
        }
        let empty = Resources::new();
        let mut frameworks: Vec<Value> = self
            .books
            .frameworks()
            .map(|(id, f)| {
                json!({
                    "id": id,
                    "name": f.info.name,
                    "user": f.info.user,
                    "role": role_of(&f.info),
                    "principal": f.info.principal,
                    "pid": f.pid.to_string(),
                    "active": f.active,
                    "used_resources": used_by_framework.get(id.as_str()).unwrap_or(&empty).to_json(),
                    "offered_resources": offered_by_framework.get(id.as_str()).unwrap_or(&empty).to_json(),
                    "tasks": tasks_by_framework.remove(id.as_str()).unwrap_or_default(),
                    "offers": offers_by_framework.remove(id.as_str()).unwrap_or_default(),
                })
            })
            .collect();
        // Frameworks not back since a failover (from the registry, or known only by the tasks
        // their agents brought back) are listed too, inactive and `recovered`, as Mesos does:
        // their tasks hold resources, and a reader must see whose they are.
        let mut away: std::collections::BTreeSet<&str> =
            tasks_by_framework.keys().copied().collect();
        away.extend(self.recovery.frameworks.keys().map(String::as_str));
        for id in away.into_iter().filter(|id| !self.books.has_framework(id)) {
            let info = self.recovery.frameworks.get(id);
            frameworks.push(json!({
                "id": id,
                "name": info.map_or("", |i| i.name.as_str()),
                "user": info.map_or("", |i| i.user.as_str()),
                "role": info.map_or("*", role_of),
                "principal": info.map_or("", |i| i.principal.as_str()),
                "active": false,
                "recovered": true,
                "used_resources": used_by_framework.get(id).unwrap_or(&empty).to_json(),
                "offered_resources": empty.to_json(),
                "tasks": tasks_by_framework.remove(id).unwrap_or_default(),
                "offers": Vec::<Value>::new(),
            }));
        }
        frameworks.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        let acls = &self.auth.policy.acls;
        frameworks.retain_mut(|f| {
            let user = f["user"].as_str().unwrap_or_default().to_owned();
            if !acls.permits(Action::ViewTask, viewer, &user) {
                f["tasks"] = Value::Array(Vec::new());
            }
            acls.permits(Action::ViewFramework, viewer, &user)
        });
        frameworks
    }

    /// The registered agents in Mesos's shape, by id.
    pub(super) fn agents_json(&self) -> Vec<Value> {
        let mut slaves: Vec<Value> = self
            .books
            .agents()
            .map(|(id, a)| {
                json!({
                    "id": id,
                    "pid": a.pid().to_string(),
                    "hostname": a.info.hostname,
                    "resources": a.total().to_json(),
                    "used_resources": a.used().to_json(),
                    "offered_resources": a.offered().to_json(),
                    "attributes": a.info.attributes.iter().map(|x| x.name.clone()).collect::<Vec<_>>(),
                    "active": !self.is_drained(&a.info.hostname),
                })
            })
            .collect();
        slaves.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        slaves
    }

    /// `/master/state`: agents, frameworks (as [`Master::frameworks_json`] shows them to the
    /// reader's principal), recovery and drains.
    pub(super) fn state_json(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let frameworks = self.frameworks_json(req.principal.as_deref());
        let slaves = self.agents_json();
        let mut recovered: Vec<&String> = self.recovery.agents.keys().collect();
        recovered.sort();
        let mut unreachable: Vec<Value> = self
            .recovery
            .unreachable
            .iter()
            .map(|(id, since)| json!({"id": id, "timestamp": since}))
            .collect();
        unreachable.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        let master = self.info(ctx);
        HttpResponse::json(&json!({
            "version": env!("CARGO_PKG_VERSION"),
            "id": master.id,
            "pid": master.pid,
            "leader": master.pid,
            "activated_slaves": slaves.len(),
            "slaves": slaves,
            "recovered_slaves": recovered,
            "unreachable_slaves": unreachable,
            "frameworks": frameworks,
            "drained_machines": self
                .drained_machines()
                .into_iter()
                .map(|(hostname, reason)| json!({"hostname": hostname, "reason": reason}))
                .collect::<Vec<_>>(),
        }))
    }
}
