//! The agent's HTTP routes: `GET /slave(N)/state` (its id, resources, frameworks, executors
//! and tasks, in Mesos's shape), `/slave(N)/monitor/statistics` (each executor's usage) and
//! `/slave(N)/flags` (the flags its daemon runs with, `{"flags": {name: value}}`).
//!
//! Who may read: whoever the node lets in (on a secure agent, a proven principal the
//! `get_endpoints` ACLs permit for the path).

use libactor::{Context, HttpRequest, HttpResponse};
use serde_json::json;

use crate::monitor;

use super::Slave;

impl Slave {
    pub(super) fn flags_json(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        let flags: serde_json::Map<String, serde_json::Value> = self
            .flags
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        HttpResponse::json(&json!({ "flags": flags }))
    }

    pub(super) fn monitor_statistics(
        &mut self,
        ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        let executors = self
            .frameworks
            .iter()
            .flat_map(|(framework, f)| f.executors.values().map(move |e| (framework, e)))
            .filter_map(|(framework, e)| {
                let handle = e.container.as_ref()?;
                Some(monitor::ExecutorUsage {
                    framework,
                    executor: e,
                    handle: handle.as_ref(),
                })
            });
        HttpResponse::json(&monitor::statistics_json(
            executors,
            ctx.node().clock().unix_seconds(),
        ))
    }

    pub(super) fn state_json(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        let frameworks: Vec<serde_json::Value> = self
            .frameworks
            .iter()
            .map(|(id, f)| {
                let executors: Vec<serde_json::Value> = f
                    .executors
                    .values()
                    .map(|e| {
                        let tasks: Vec<serde_json::Value> = e
                            .tasks
                            .values()
                            .map(|t| {
                                json!({
                                    "id": t.info.task_id.as_ref().map(|t| t.value.as_str()),
                                    "name": t.info.name,
                                    "state": t.state.as_str_name(),
                                    "resources": t.resources.to_string(),
                                })
                            })
                            .collect();
                        json!({
                            "id": e.id,
                            "kind": format!("{:?}", e.kind),
                            "state": format!("{:?}", e.state),
                            "os_pid": e.os_pid,
                            "pid": e.pid.as_ref().map(|p| p.to_string()),
                            "directory": e.sandbox.display().to_string(),
                            "container_id": e.container.as_ref().map(|c| c.id().to_owned()),
                            "tasks": tasks,
                        })
                    })
                    .collect();
                json!({ "id": id, "name": f.info.name, "executors": executors })
            })
            .collect();
        HttpResponse::json(&json!({
            "id": self.id,
            "hostname": self.config.hostname,
            "master": self.config.master.to_string(),
            "registration": format!("{:?}", self.registration),
            "resources": self.config.resources.to_string(),
            "work_dir": self.config.work_dir.display().to_string(),
            "isolation": self.containerizer.description,
            "frameworks": frameworks,
        }))
    }
}
