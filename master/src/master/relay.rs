//! Messages the master checks and passes on: revive and suppress (to the allocator), framework
//! ↔ executor messages (between a scheduler and an agent), and executor exits (to the
//! scheduler).

use libactor::{Context, Upid};
use protos::internal::{
    ExecutorToFrameworkMessage, ExitedExecutorMessage, FrameworkToExecutorMessage,
    ReviveOffersMessage, ShutdownExecutorMessage, SuppressOffersMessage,
};
use protos::IdText;

use super::Master;
use crate::allocator::Allocator;

impl Master {
    /// The framework's id if `from` is its scheduler (on a secure master: and the message's
    /// connection proved the framework's principal); counts an invalid message otherwise.
    pub(super) fn sender_framework(
        &self,
        ctx: &Context<Self>,
        from: &Upid,
        id: Option<&str>,
    ) -> Option<String> {
        let id = id.unwrap_or("");
        match self.books.framework(id) {
            Some(f) if f.pid == *from && self.proven_as(ctx, Some(&f.info.principal)) => {
                Some(id.to_owned())
            }
            _ => {
                self.metrics.inc(|m| &m.invalid_messages);
                tracing::warn!(%from, framework = %id, "message from a process that is not the framework's scheduler");
                None
            }
        }
    }

    /// The agent's id if `from` is on that agent's node (on a secure master: and the
    /// message's connection proved the agent's principal); counts an invalid message otherwise.
    pub(super) fn sender_agent(
        &self,
        ctx: &Context<Self>,
        from: &Upid,
        id: Option<&str>,
    ) -> Option<String> {
        let id = id.unwrap_or("");
        match self.books.agent(id) {
            Some(a)
                if a.pid().address() == from.address()
                    && self.proven_as(ctx, a.principal.as_deref()) =>
            {
                Some(id.to_owned())
            }
            _ => {
                self.metrics.inc(|m| &m.invalid_messages);
                tracing::warn!(%from, agent = %id, "message from a process that is not on the agent");
                None
            }
        }
    }

    /// Takes every outstanding offer of `framework` back, without telling it (its scheduler
    /// is gone or was replaced).
    pub(super) fn withdraw_offers(&mut self, framework: &str) {
        for (_, offer) in self.books.take_offers_where(|o| o.framework == framework) {
            self.recover(framework, &offer.agent, offer.resources, None);
        }
    }

    pub(super) fn revive(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ReviveOffersMessage) {
        let id = msg.framework_id.as_ref().map(|f| f.value.as_str());
        let Some(framework) = self.sender_framework(ctx, &from, id) else {
            return;
        };
        tracing::debug!(%framework, "revive");
        if let Some(f) = self.books.framework_mut(&framework) {
            f.suppressed = false;
        }
        self.tell_allocator("allocator refused a revive", move |a| a.revive(&framework));
    }

    pub(super) fn suppress(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: SuppressOffersMessage,
    ) {
        let id = msg.framework_id.as_ref().map(|f| f.value.as_str());
        let Some(framework) = self.sender_framework(ctx, &from, id) else {
            return;
        };
        tracing::debug!(%framework, "suppress");
        if let Some(f) = self.books.framework_mut(&framework) {
            f.suppressed = true;
        }
        self.tell_allocator("allocator refused a suppress", move |a| {
            a.suppress(&framework)
        });
    }

    pub(super) fn framework_to_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: FrameworkToExecutorMessage,
    ) {
        let id = msg.framework_id.as_ref().map(|f| f.value.as_str());
        if self.sender_framework(ctx, &from, id).is_none() {
            return;
        }
        let agent = msg.slave_id.text();
        match self.books.agent(agent) {
            Some(a) => ctx.send(&a.pid().clone(), msg),
            None => self.metrics.inc(|m| &m.invalid_messages),
        }
    }

    /// A framework shuts one of its executors down (the v1 API's SHUTDOWN): passed to the
    /// executor's agent. Who may send: the framework's scheduler.
    pub(super) fn shutdown_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ShutdownExecutorMessage,
    ) {
        let id = msg.framework_id.as_ref().map(|f| f.value.as_str());
        if self.sender_framework(ctx, &from, id).is_none() {
            return;
        }
        match self.books.agent(msg.slave_id.text()) {
            Some(a) => ctx.send(&a.pid().clone(), msg),
            None => self.metrics.inc(|m| &m.invalid_messages),
        }
    }

    /// Passes `msg`, from an agent about one of `framework`'s executors, to the framework's
    /// scheduler, if it really comes from that agent's node.
    fn relay_to_framework<M: libactor::Message>(
        &self,
        ctx: &mut Context<Self>,
        from: &Upid,
        agent: &str,
        framework: &str,
        msg: M,
    ) {
        if self.sender_agent(ctx, from, Some(agent)).is_none() {
            return;
        }
        if let Some(f) = self.books.framework(framework) {
            ctx.send(&f.pid.clone(), msg);
        }
    }

    pub(super) fn executor_to_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ExecutorToFrameworkMessage,
    ) {
        let (agent, framework) = (
            msg.slave_id.text().to_owned(),
            msg.framework_id.text().to_owned(),
        );
        self.relay_to_framework(ctx, &from, &agent, &framework, msg);
    }

    pub(super) fn exited_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ExitedExecutorMessage,
    ) {
        let (agent, framework) = (
            msg.slave_id.text().to_owned(),
            msg.framework_id.text().to_owned(),
        );
        tracing::info!(%framework, executor = msg.executor_id.text(), status = msg.status, "executor exited");
        self.relay_to_framework(ctx, &from, &agent, &framework, msg);
    }
}
