//! Mesos's classic quota endpoint, which Mesos 1.9 deprecated for `UPDATE_QUOTA` and older
//! tools still use: `GET /master/quota` (a `QuotaStatus`: `infos` with each guarantee, and
//! `configs`), `POST /master/quota` (a `QuotaRequest`: the role's guarantee, which becomes its
//! limit too, as Mesos 1.9 and later treat it) and `DELETE /master/quota/<role>`. As Mesos's:
//! a POST for a role that has quota, or a DELETE for one that has none, is `400`. Changes
//! answer `200` once they are in the registry.
//!
//! Who may: reads, whoever the node lets in; changes, a principal proven in the `operator`
//! role (client certificate, or HTTP Basic against `--credentials`).

use libactor::{Context, HttpReply, HttpRequest, HttpResponse};
use protos::v1::quota::{QuotaConfig, QuotaRequest};
use resources::Resources;

use super::maintenance_routes::json_of;
use super::Master;

impl Master {
    /// `GET|POST /master/quota`.
    pub(super) fn quota_route(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        match req.method.as_str() {
            "GET" => json_of(&self.quota_status()).into(),
            "POST" => self.set_quota_route(ctx, req),
            _ => HttpResponse::text(405, "GET the quota, or POST a role's\n").into(),
        }
    }

    /// `DELETE /master/quota/<role>`.
    pub(super) fn remove_quota_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpReply {
        if req.method != "DELETE" {
            return HttpResponse::text(405, "DELETE a role's quota\n").into();
        }
        let operator = match self.route_operator(ctx, &req) {
            Ok(operator) => operator,
            Err(refusal) => return refusal.into(),
        };
        let role = req.path.trim_start_matches("/quota/").to_owned();
        if !self.has_quota(&role) {
            return HttpResponse::bad_request(format!("role {role} has no quota to remove\n"))
                .into();
        }
        let config = QuotaConfig {
            role,
            ..Default::default()
        };
        self.apply_quota_route(ctx, &operator, true, config)
    }

    fn set_quota_route(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        let operator = match self.route_operator(ctx, &req) {
            Ok(operator) => operator,
            Err(refusal) => return refusal.into(),
        };
        let request = serde_json::from_slice::<serde_json::Value>(&req.body)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                protos::mesos_json::from_json::<QuotaRequest>(&v).map_err(|e| e.to_string())
            });
        let request = match request {
            Ok(request) => request,
            Err(why) => {
                return HttpResponse::bad_request(format!(
                    "the body is not a quota request: {why}\n"
                ))
                .into()
            }
        };
        if self.has_quota(&request.role) {
            return HttpResponse::bad_request(format!(
                "role {} already has quota: remove it first, or use UPDATE_QUOTA\n",
                request.role
            ))
            .into();
        }
        let guarantee = match Resources::from_proto(&request.guarantee) {
            Ok(guarantee) if !guarantee.is_empty() => guarantee,
            Ok(_) => return HttpResponse::bad_request("the request has no guarantee\n").into(),
            Err(e) => return HttpResponse::bad_request(format!("invalid guarantee: {e}\n")).into(),
        };
        let scalars: std::collections::HashMap<String, protos::v1::value::Scalar> = guarantee
            .scalar_totals()
            .into_iter()
            .map(|(name, value)| (name, protos::v1::value::Scalar { value }))
            .collect();
        let config = QuotaConfig {
            role: request.role,
            guarantees: scalars.clone(),
            limits: scalars,
        };
        self.apply_quota_route(ctx, &operator, request.force.unwrap_or(false), config)
    }

    fn apply_quota_route(
        &mut self,
        ctx: &mut Context<Self>,
        operator: &str,
        force: bool,
        config: QuotaConfig,
    ) -> HttpReply {
        match self.update_quota(ctx, operator, force, vec![config]) {
            Ok(durable) => HttpReply::Later(Box::pin(async move {
                match durable.await {
                    Ok(()) => HttpResponse::text(200, ""),
                    Err(_) => HttpResponse::text(
                        503,
                        "the master stopped before the change was written\n",
                    ),
                }
            })),
            Err(refusal) => HttpResponse::text(refusal.status, format!("{}\n", refusal.why)).into(),
        }
    }

    /// Whether `role` has a limit or a guarantee.
    fn has_quota(&self, role: &str) -> bool {
        self.role_limits.contains_key(role)
            || self
                .revocations
                .policy
                .guarantees
                .get(role)
                .is_some_and(|g| !g.is_empty())
    }
}
