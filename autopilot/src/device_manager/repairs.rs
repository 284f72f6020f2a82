//! Repairs: machines in Failure handed to the repair service (drained first) and moved to
//! Probation; the repair service's announcement and its outcomes; operators' repair requests.

use authentication::roles;

use authentication::operator::operator_of;
use libactor::{Context, HttpRequest, HttpResponse, Upid};
use protos::autopilot::{
    HealthState, RepairAction, RepairOrder, RepairOutcome, RepairServiceAnnouncement,
};

use crate::ground_truth;

use super::{action_name, bounded, DeviceManager};

impl DeviceManager {
    /// Hands machines in Failure to the repair service, moving them to Probation: DoNothing
    /// needs no service.
    pub(super) fn dispatch_repairs(&mut self, ctx: &mut Context<Self>) {
        let waiting: Vec<(String, String, RepairAction)> = self
            .machines
            .values()
            .filter(|m| m.state() == HealthState::Failure && !m.replaced)
            .map(|m| (m.id.clone(), m.hostname.clone(), m.action()))
            .collect();
        for (id, hostname, action) in waiting {
            let (actor, why) = if action == RepairAction::DoNothing {
                (
                    "device-manager",
                    "DoNothing: watching it in probation".to_owned(),
                )
            } else {
                if self.config.repair_service.is_none() {
                    continue;
                }
                self.metrics.inc(|m| &m.orders);
                self.order_repair(
                    ctx,
                    RepairOrder {
                        machine_id: id.clone(),
                        hostname,
                        action: action as i32,
                    },
                );
                ("repair", format!("{} ordered", action_name(action)))
            };
            // Errors counted before the repair say nothing about the machine after it.
            self.windows.entry(id.clone()).or_default().clear();
            self.transition(ctx, &id, HealthState::Probation, action, actor, why);
        }
    }

    /// Drains the machine of its tasks, then gives the order to the repair service.
    pub(super) fn order_repair(&mut self, ctx: &mut Context<Self>, order: RepairOrder) {
        let send = |dm: &mut DeviceManager, ctx: &mut Context<DeviceManager>, order| {
            if let Some(repair) = &dm.config.repair_service {
                ctx.send(repair, order);
            }
        };
        let Some(gate) = &self.gate else {
            send(self, ctx, order);
            return;
        };
        let why = format!("repair: {}", action_name(order.action()));
        ctx.defer(
            gate.drain(&order.hostname, true, &why),
            move |dm: &mut DeviceManager, ctx, drained| {
                match drained {
                    Ok(d) => tracing::info!(machine = %order.machine_id, tasks_killed = d.tasks_killed, "drained for repair"),
                    // The repair goes ahead: the machine is failing, and its tasks end with it.
                    Err(why) => tracing::warn!(machine = %order.machine_id, %why, "drain did not finish"),
                }
                send(dm, ctx, order);
            },
        );
    }

    pub(super) fn announcement(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        announcement: RepairServiceAnnouncement,
    ) {
        if self.config.repair_service.as_ref() == Some(&from) {
            return;
        }
        // Who may announce: a repair service, proven on a secure node by its role.
        if !ctx.authorize(roles::REPAIR) {
            self.metrics.inc(|m| &m.unauthorized);
            return;
        }
        // With credentials, only a repair service that authenticated with the master may
        // receive orders and report outcomes.
        if self.config.operators.is_some() {
            let principal = self.gate.as_ref().and_then(|g| g.principal_of(&from));
            if principal.is_none() {
                self.metrics.inc(|m| &m.unauthorized);
                tracing::warn!(%from, "refused a repair service that has not authenticated");
                return;
            }
        }
        tracing::info!(%from, driver = %announcement.driver, "repair service announced");
        self.set_repair_service(ctx, Some(from));
    }

    pub(super) fn outcome(&mut self, ctx: &mut Context<Self>, from: Upid, outcome: RepairOutcome) {
        let _span =
            tracing::debug_span!("repair_outcome", %from, machine = %outcome.machine_id).entered();
        if self.config.repair_service.as_ref() != Some(&from) || !ctx.authorize(roles::REPAIR) {
            self.metrics.inc(|m| &m.invalid);
            tracing::warn!(%from, "ignored a repair outcome not from the repair service");
            return;
        }
        let Some(m) = self.machines.get_mut(&outcome.machine_id) else {
            self.metrics.inc(|m| &m.invalid);
            return;
        };
        let action = outcome.action();
        if outcome.ok && action == RepairAction::Replace {
            m.replaced = true;
        }
        self.windows
            .entry(outcome.machine_id.clone())
            .or_default()
            .clear();
        self.dirty
            .insert(ground_truth::shard_of(&outcome.machine_id));
        let result = if outcome.ok { "done" } else { "failed" };
        self.record(
            ctx,
            "repair",
            format!(
                "machine {}: {} {result}",
                outcome.machine_id,
                action_name(action)
            ),
            bounded(&outcome.detail),
        );
        self.persist(ctx);
    }

    /// The operator a request proves (see [`authentication::operator`]) and its JSON body; or the
    /// response refusing it (counted).
    pub(super) fn operator_request(
        &self,
        ctx: &Context<Self>,
        req: &HttpRequest,
    ) -> Result<(String, serde_json::Value), HttpResponse> {
        if req.method != "POST" {
            return Err(HttpResponse::text(405, "POST a JSON body\n"));
        }
        let secure = ctx.node().is_secure();
        let operator = match operator_of(req, self.config.operators.as_ref(), secure) {
            Ok(principal) => principal,
            Err(refusal) => {
                self.metrics.inc(|m| &m.unauthorized);
                tracing::warn!(path = %req.path, why = %refusal.why, "refused an operator's request");
                return Err(HttpResponse::text(
                    refusal.status,
                    format!("{}\n", refusal.why),
                ));
            }
        };
        let body = if req.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&req.body).map_err(|e| {
                self.metrics.inc(|m| &m.invalid);
                HttpResponse::text(400, format!("body is not JSON: {e}\n"))
            })?
        };
        Ok((operator, body))
    }
}
