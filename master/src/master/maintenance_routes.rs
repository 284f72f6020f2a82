//! Mesos's classic maintenance endpoints, beside the operator API's calls (both end in
//! `operator`): `GET|POST /master/maintenance/schedule` (a `Schedule` in Mesos's JSON),
//! `GET /master/maintenance/status` (a `ClusterStatus`), and `POST /master/machine/down` /
//! `/master/machine/up` (a JSON array of `MachineID`s).
//!
//! Who may: reads, whoever the node lets in; changes, a principal proven in the `operator`
//! role (client certificate, or HTTP Basic against `--credentials`).

use libactor::{Context, HttpRequest, HttpResponse};
use protos::v1::maintenance::Schedule;
use protos::v1::MachineId;

use super::{Master, OperatorRefusal};

pub(super) fn json_of<M: prost::Message + prost::Name>(message: &M) -> HttpResponse {
    match protos::mesos_json::to_json(message) {
        Ok(value) => HttpResponse::json(&value),
        Err(e) => HttpResponse::text(500, format!("{e}\n")),
    }
}

fn refused(refusal: OperatorRefusal) -> HttpResponse {
    HttpResponse::text(refusal.status, format!("{}\n", refusal.why))
}

impl Master {
    /// The operator a change request to a classic endpoint proves, or the answer refusing it.
    pub(super) fn route_operator(
        &self,
        ctx: &Context<Self>,
        req: &HttpRequest,
    ) -> Result<String, HttpResponse> {
        authentication::operator::operator_of(
            req,
            self.auth.policy.credentials.as_ref(),
            ctx.node().is_secure(),
        )
        .map_err(|refusal| {
            self.metrics.inc(|m| &m.operator_requests_refused);
            HttpResponse::text(refusal.status, format!("{}\n", refusal.why))
        })
    }

    pub(super) fn maintenance_schedule_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        if req.method == "GET" {
            return json_of(&self.maintenance_schedule());
        }
        if req.method != "POST" {
            return HttpResponse::text(405, "GET the schedule, or POST a new one\n");
        }
        if let Err(refusal) = self.route_operator(ctx, &req) {
            return refusal;
        }
        let schedule = serde_json::from_slice::<serde_json::Value>(&req.body)
            .map_err(|e| e.to_string())
            .and_then(|v| protos::mesos_json::from_json::<Schedule>(&v).map_err(|e| e.to_string()));
        match schedule {
            Ok(schedule) => match self.update_maintenance_schedule(schedule) {
                Ok(()) => HttpResponse::text(200, ""),
                Err(refusal) => refused(refusal),
            },
            Err(why) => HttpResponse::bad_request(format!("the body is not a schedule: {why}\n")),
        }
    }

    pub(super) fn maintenance_status_route(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        json_of(&self.maintenance_status())
    }

    fn machines_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
        down: bool,
    ) -> HttpResponse {
        if req.method != "POST" {
            return HttpResponse::text(405, "POST a JSON array of machine ids\n");
        }
        if let Err(refusal) = self.route_operator(ctx, &req) {
            return refusal;
        }
        let machines = serde_json::from_slice::<Vec<serde_json::Value>>(&req.body)
            .map_err(|e| e.to_string())
            .and_then(|list| {
                list.iter()
                    .map(|m| {
                        protos::mesos_json::from_json::<MachineId>(m).map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<MachineId>, String>>()
            });
        let machines = match machines {
            Ok(machines) => machines,
            Err(why) => {
                return HttpResponse::bad_request(format!(
                    "the body is not a list of machine ids: {why}\n"
                ))
            }
        };
        let done = if down {
            self.start_maintenance(ctx, &machines)
        } else {
            self.stop_maintenance(ctx, &machines)
        };
        match done {
            Ok(()) => HttpResponse::text(200, ""),
            Err(refusal) => refused(refusal),
        }
    }

    pub(super) fn machine_down_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        self.machines_route(ctx, req, true)
    }

    pub(super) fn machine_up_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        self.machines_route(ctx, req, false)
    }
}
