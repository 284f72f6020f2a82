//! The master's classic state endpoints (`/master/state`, `/state-summary`, `/slaves`,
//! `/frameworks`, `/tasks`, `/roles`, `/flags`): the master adds only what it alone knows
//! ([`MasterSide`]: drains, agents and frameworks not back since a failover) and forwards the
//! request to its node's API process, which builds the answer from its own copy of the
//! cluster. Building a large state therefore never holds up the master's messages.

use libactor::{Context, HttpReply, HttpRequest, HttpResponse};

use super::Master;
use crate::api::state_json::{MasterSide, StateSource};

/// A state endpoint of the API process, built on its state thread.
pub(super) type StateRoute = fn(&StateSource<'_>, &HttpRequest) -> HttpResponse;

impl Master {
    /// What only the master knows, for the API process's state endpoints.
    fn master_side(&self, ctx: &Context<Self>) -> MasterSide {
        let mut recovered_agents: Vec<String> = self.recovery.agents.keys().cloned().collect();
        recovered_agents.sort();
        let mut unreachable_agents: Vec<(String, f64)> = self
            .recovery
            .unreachable
            .iter()
            .map(|(id, since)| (id.clone(), *since))
            .collect();
        unreachable_agents.sort_by(|a, b| a.0.cmp(&b.0));
        let mut recovered_frameworks: Vec<_> = self
            .recovery
            .frameworks
            .iter()
            .map(|(id, info)| (id.clone(), info.clone()))
            .collect();
        recovered_frameworks.sort_by(|a, b| a.0.cmp(&b.0));
        let mut info = self.info(ctx);
        info.hostname = ctx.pid().host().to_string();
        MasterSide {
            info,
            drained: self.drained_machines(),
            recovered_agents,
            unreachable_agents,
            recovered_frameworks,
            omega: self.cell.side(self.books.cell().seq()),
        }
    }

    /// Serves `route` from the API process, with what only the master knows.
    pub(super) fn forward_to_api(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
        route: StateRoute,
    ) -> HttpReply {
        let side = self.master_side(ctx);
        let api = self.api.clone();
        HttpReply::Later(Box::pin(async move {
            let principal = req.principal.clone();
            let build = Box::new(move |source: &StateSource<'_>| route(source, &req));
            // A read sees every change the master made before it (see `state_thread`).
            let answer = api.call(move |g, ctx| g.read_view(ctx, principal, side, build));
            match answer.await {
                Ok(answer) => answer.await.unwrap_or_else(|_| {
                    HttpResponse::text(503, "the API process's state thread has stopped\n")
                }),
                Err(_) => HttpResponse::text(503, "the API process has stopped\n"),
            }
        }))
    }
}
