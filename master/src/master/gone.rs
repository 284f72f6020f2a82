//! Agents an operator marked gone (Mesos's `MARK_AGENT_GONE`): the operator asserts the
//! machine is never coming back (a terminated cloud instance, a wiped host), so its tasks end
//! now instead of waiting as unreachable.
//!
//! The mark is written to the registry first and acted on once durable: a registered agent is
//! told to shut down (`ShutdownMessage`) and taken off the books, its offers rescinded and its
//! tasks reported `TASK_GONE_BY_OPERATOR` (`TASK_LOST` to frameworks that are not
//! partition-aware); an unreachable or not-yet-returned agent is simply forgotten, and
//! reconciliation answers for its tasks the same way. From then on the agent id is refused
//! for ever, by this master and by every later leader (the registry keeps the mark): a
//! re-registration under it gets a `ShutdownMessage`. The machine may come back as a new agent
//! (a fresh registration, a new id), as in Mesos. On a master without a registry the mark is
//! soft state, lost on failover.
//!
//! Who may: the operator API lets only proven operators in; the `mark_agents_gone` rules of
//! `--acls` are checked here.

use authentication::acls::Action;
use libactor::{Context, Upid};
use protos::internal::ShutdownMessage;
use tokio::sync::oneshot;

use super::operator::OperatorRefusal;
use super::{AgentRemoval, Master};
use crate::registrar::Operation;

/// What a gone agent is told when it shows up.
const GONE_MESSAGE: &str = "Agent has been marked gone";

/// Where a call to mark an agent gone stands.
#[derive(Debug)]
pub enum MarkingGone {
    /// The agent was gone already: nothing to do.
    AlreadyGone,
    /// The mark is being written; the receiver fires once it is durable and carried out.
    Underway(oneshot::Receiver<()>),
}

impl Master {
    /// Refuses (`403`, counted) an operator the ACLs do not let mark agents gone.
    pub fn may_mark_agents_gone(&self, operator: &str) -> Result<(), OperatorRefusal> {
        match self.acls_refusal(Action::MarkAgentGone, Some(operator), "") {
            Some(why) => {
                self.metrics.inc(|m| &m.operator_requests_refused);
                Err(OperatorRefusal { status: 403, why })
            }
            None => Ok(()),
        }
    }

    /// `DRAIN_AGENT` with `mark_gone`: marks agent `id` gone once `drained` fires (its
    /// machine has no task left), as Mesos does when a drain completes.
    pub fn mark_gone_once_drained(
        &mut self,
        ctx: &mut Context<Self>,
        drained: tokio::sync::oneshot::Receiver<super::maintenance::DrainOutcome>,
        operator: String,
        id: String,
    ) {
        ctx.defer(drained, move |m: &mut Master, ctx, outcome| {
            if outcome.is_err() {
                return;
            }
            match m.mark_agent_gone(ctx, &operator, &id) {
                Ok(_) => tracing::info!(agent = %id, %operator, "drained agent marked gone"),
                Err(refusal) => {
                    tracing::warn!(agent = %id, why = %refusal.why, "a drained agent could not be marked gone")
                }
            }
        });
    }

    /// Marks agent `id` gone for `operator` (see the module docs). Refused: `403` by the
    /// `mark_agents_gone` ACLs, `404` for an agent this master neither has, expects back nor
    /// knows unreachable, `503` while the same agent is being marked.
    pub fn mark_agent_gone(
        &mut self,
        ctx: &mut Context<Self>,
        operator: &str,
        id: &str,
    ) -> Result<MarkingGone, OperatorRefusal> {
        self.may_mark_agents_gone(operator)?;
        if self.recovery.gone.contains_key(id) {
            return Ok(MarkingGone::AlreadyGone);
        }
        if self.recovery.marking_gone.contains(id) {
            return Err(OperatorRefusal {
                status: 503,
                why: format!("agent {id} is already being marked gone"),
            });
        }
        let known = self.books.agent(id).is_some()
            || self.recovery.agents.contains_key(id)
            || self.recovery.unreachable.contains_key(id);
        if !known {
            return Err(OperatorRefusal {
                status: 404,
                why: format!("agent {id} not found"),
            });
        }
        tracing::warn!(agent = %id, %operator, "marking agent gone");
        self.recovery.marking_gone.insert(id.to_owned());
        let since = ctx.node().clock().unix_seconds();
        let (done, durable) = oneshot::channel();
        let agent = id.to_owned();
        let op = Operation::MarkGone {
            agent: agent.clone(),
            since,
        };
        self.persist(ctx, op, move |m, ctx| {
            m.agent_marked_gone(ctx, &agent, since);
            let _ = done.send(());
        });
        Ok(MarkingGone::Underway(durable))
    }

    /// Carries out a durable gone mark.
    fn agent_marked_gone(&mut self, ctx: &mut Context<Self>, id: &str, since: f64) {
        self.recovery.marking_gone.remove(id);
        self.recovery.gone.insert(id.to_owned(), since);
        self.recovery.agents.remove(id);
        self.recovery.unreachable.remove(id);
        ctx.metrics().counter("master/slaves_marked_gone").inc();
        if let Some(pid) = self.books.agent(id).map(|a| a.pid().clone()) {
            tell_gone(ctx, &pid);
            self.take_agent_off(
                ctx,
                id,
                "agent marked gone by an operator",
                AgentRemoval::Gone,
            );
        }
    }

    /// Whether agent `id` may not come back: marked gone, or being marked. A gone agent that
    /// shows up is told to shut down (counted and logged).
    pub(super) fn refuse_if_gone(&self, ctx: &mut Context<Self>, from: &Upid, id: &str) -> bool {
        if self.recovery.marking_gone.contains(id) {
            tracing::info!(agent = %id, %from, "ignored a re-registration of an agent being marked gone");
            return true;
        }
        if !self.recovery.gone.contains_key(id) {
            return false;
        }
        self.metrics.inc(|m| &m.registrations_refused);
        tracing::warn!(agent = %id, %from, "refused a re-registration: the agent was marked gone");
        tell_gone(ctx, from);
        true
    }
}

fn tell_gone(ctx: &mut Context<Master>, agent: &Upid) {
    ctx.send(
        agent,
        ShutdownMessage {
            message: GONE_MESSAGE.to_owned(),
        },
    );
}
