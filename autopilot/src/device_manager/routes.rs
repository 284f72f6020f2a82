//! The device manager's HTTP routes: `/device-manager/machines`, `/machine?id=`,
//! `/audit?since=` and `POST /repair` (operators).

use libactor::{Context, HttpRequest, HttpResponse};
use protos::autopilot::{HealthState, MachineRecord};

use crate::json;

use super::{action_name, parse_action, DeviceManager};

impl DeviceManager {
    /// `POST /device-manager/repair` with `{"machine": ID, "action": "reboot"|"reimage"|
    /// "replace"}`: an operator's repair, authorized by HTTP Basic credentials when the master
    /// has any.
    pub(super) fn repair_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        let _span = tracing::info_span!("repair_request").entered();
        let (operator, body) = match self.operator_request(ctx, &req) {
            Ok(authorized) => authorized,
            Err(refusal) => return refusal,
        };
        let machine = body["machine"].as_str().unwrap_or_default().to_owned();
        let Some(action) = body["action"].as_str().and_then(parse_action) else {
            self.metrics.inc(|m| &m.invalid);
            return HttpResponse::text(400, "action must be reboot, reimage or replace\n");
        };
        match self.machines.get(&machine) {
            None => return HttpResponse::text(404, format!("no machine {machine:?}\n")),
            Some(m) if m.replaced => {
                return HttpResponse::text(409, "the machine was replaced\n");
            }
            Some(_) => {}
        }
        self.failed(
            ctx,
            &machine,
            format!("repair requested by {operator}"),
            false,
            Some((action, &operator)),
        );
        json::response(serde_json::json!({
            "accepted": true,
            "machine": machine,
            "action": action_name(action),
            "operator": operator,
        }))
    }

    pub(super) fn machines_route(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        let all: Vec<&MachineRecord> = self.machines.values().collect();
        let in_repair = all
            .iter()
            .filter(|m| !m.replaced && m.state() != HealthState::Healthy)
            .count();
        let live = all.iter().filter(|m| !m.replaced).count();
        json::response(serde_json::json!({
            "machines": all.iter().map(|m| json::machine(m, false)).collect::<Vec<_>>(),
            "in_repair": in_repair,
            "repair_cap": self.config.limits.cap(live),
        }))
    }

    pub(super) fn machine_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        let Some(id) = req.query.iter().find(|(k, _)| k == "id").map(|(_, v)| v) else {
            return HttpResponse::text(400, "missing ?id=MACHINE\n");
        };
        match self.machines.get(id) {
            Some(m) => json::response(json::machine(m, true)),
            None => HttpResponse::text(404, format!("no machine {id:?}\n")),
        }
    }

    pub(super) fn audit_route(
        &mut self,
        _ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        let since = match req.query.iter().find(|(k, _)| k == "since") {
            None => 0,
            Some((_, v)) => match v.parse::<u64>() {
                Ok(n) => n,
                Err(_) => return HttpResponse::text(400, "since must be a sequence number\n"),
            },
        };
        let records: Vec<_> = self
            .audit
            .iter()
            .filter(|r| r.seq > since)
            .map(json::audit)
            .collect();
        json::response(serde_json::json!({ "audit": records, "durable_seq": self.durable_seq }))
    }
}
