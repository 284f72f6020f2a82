//! Transactions (Omega): a scheduler commits task placements it decided on its copy of the
//! cell; the master decides every placement against the cell as it stands, then applies them
//! at once — nothing else runs in between, so the transaction is atomic.
//!
//! A placement conflicts, fine-grained, when its resources no longer fit on the agent (with the
//! transaction's earlier placements there); coarse-grained, also when anything changed on the
//! agent since the version the scheduler saw. Incremental commits apply every placement that
//! did not conflict; all-or-nothing commits apply none unless all would.
//!
//! Offers and transactions on one master: what may be committed on an agent is what its tasks
//! do not hold, outstanding offers included. A commit that needs offered resources rescinds
//! just enough of that agent's offers (the rest of each goes back to the allocator), so a
//! framework that sits on offers cannot starve a shared-state scheduler; offers stay what DRF
//! decides, and committed tasks count in their framework's DRF share.

use std::collections::BTreeSet;
use std::time::Instant;

use libactor::{Context, Upid};
use protos::omega::{
    CommitMode, CommitTransactionMessage, ConflictMode, Outcome, Placement, PlacementResult,
    TransactionResultMessage,
};
use protos::v1::FrameworkInfo;
use protos::IdText;
use resources::Resources;

use crate::allocator::Allocator;
use crate::fast_hash::{FastMap, FastSet};

use super::books::OfferEntry;
use super::Master;

/// Placements in one transaction at most (a gang larger than this is not a transaction but a
/// workload).
pub const MAX_PLACEMENTS_PER_TRANSACTION: usize = 10_000;

/// Why a placement was not committed.
type Refusal = (Outcome, String);

impl Master {
    /// Who may send: the framework's scheduler (on a secure master, proven as the framework's
    /// principal by its connection); anything else is dropped and counted.
    pub(super) fn commit_transaction(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: CommitTransactionMessage,
    ) {
        let started = Instant::now();
        let Some(framework) = self.sender_framework(ctx, &from, Some(msg.framework_id.text()))
        else {
            self.cell.with_metrics(|m| m.transactions_refused.inc());
            return;
        };
        let _span =
            tracing::debug_span!("commit", %framework, transaction = %msg.transaction_id).entered();
        let mut result = TransactionResultMessage {
            transaction_id: msg.transaction_id.clone(),
            ..Default::default()
        };
        if let Some(error) = self.transaction_refusal(&msg) {
            tracing::info!(%framework, %error, "transaction refused");
            self.cell.with_metrics(|m| m.transactions_refused.inc());
            result.error = error;
            result.position = Some(self.cell_position());
            ctx.send(&from, result);
            return;
        }
        let Some(entry) = self.books.framework(&framework) else {
            return;
        };
        let (scheduler, info) = (entry.pid.clone(), entry.info.clone());
        let coarse = msg.conflict_mode() == ConflictMode::Coarse;
        let gang = msg.commit_mode() == CommitMode::AllOrNothing;

        let mut taking: FastMap<String, Resources> = FastMap::default();
        let mut ids: FastSet<String> = FastSet::default();
        let decisions: Vec<Result<Resources, Refusal>> = msg
            .placements
            .iter()
            .map(|p| self.decide(&framework, &info, p, coarse, &mut taking, &mut ids))
            .collect();
        let all_fit = decisions.iter().all(Result::is_ok);

        let (mut committed, mut conflicted, mut refused) = (0u64, 0u64, 0u64);
        let mut touched = BTreeSet::new();
        let mut claims: Vec<(String, Resources)> = Vec::new();
        let mut rescinded = Vec::new();
        for (placement, decision) in msg.placements.iter().zip(decisions) {
            let task_id = placement.task.as_ref().and_then(|t| t.task_id.clone());
            let (outcome, message) = match (decision, placement.task.as_ref()) {
                (Ok(needed), Some(task)) if all_fit || !gang => {
                    let agent = placement.agent_id.text();
                    rescinded.extend(self.make_room(agent, &needed));
                    let ran = self.run_task(
                        ctx,
                        &framework,
                        &info,
                        &scheduler,
                        agent,
                        task,
                        needed.clone(),
                        placement.priority,
                    );
                    if ran {
                        claims.push((agent.to_owned(), needed));
                        touched.insert(agent.to_owned());
                        (Outcome::Committed, String::new())
                    } else {
                        (Outcome::Invalid, "refused by the master's books".to_owned())
                    }
                }
                (Ok(_), _) => (
                    Outcome::Aborted,
                    "another placement of this all-or-nothing transaction did not fit".to_owned(),
                ),
                (Err(refusal), _) => refusal,
            };
            match outcome {
                Outcome::Committed => committed += 1,
                Outcome::ConflictVersion | Outcome::ConflictResources | Outcome::Aborted => {
                    conflicted += 1
                }
                _ => refused += 1,
            }
            result.results.push(PlacementResult {
                task_id,
                outcome: outcome as i32,
                message,
            });
        }
        self.apply_claims(ctx, &framework, rescinded, claims);
        result.agents = touched
            .iter()
            .filter_map(|id| Some(self.cell_agent(id, self.books.agent(id)?)))
            .collect();
        result.position = Some(self.cell_position());
        self.cell.count_transaction(conflicted, committed);
        self.cell.with_metrics(|m| {
            m.placements_refused.add(refused);
            m.commit_time.record(started.elapsed());
        });
        tracing::debug!(%framework, committed, conflicted, refused, "transaction");
        ctx.send(&from, result);
    }

    /// Why the whole transaction is refused unread, if it is.
    fn transaction_refusal(&self, msg: &CommitTransactionMessage) -> Option<String> {
        if msg.epoch != self.cell.epoch {
            return Some(format!(
                "stale epoch {:?}: this master's cell is {:?}; subscribe again",
                msg.epoch, self.cell.epoch
            ));
        }
        if msg.placements.is_empty() {
            return Some("a transaction needs at least one placement".into());
        }
        if msg.placements.len() > MAX_PLACEMENTS_PER_TRANSACTION {
            return Some(format!(
                "{} placements; at most {MAX_PLACEMENTS_PER_TRANSACTION} per transaction",
                msg.placements.len()
            ));
        }
        None
    }

    /// Decides one placement against the cell as it stands and what the transaction's earlier
    /// placements take (`taking`, by agent); returns the resources it takes.
    fn decide(
        &self,
        framework: &str,
        info: &FrameworkInfo,
        placement: &Placement,
        coarse: bool,
        taking: &mut FastMap<String, Resources>,
        ids: &mut FastSet<String>,
    ) -> Result<Resources, Refusal> {
        let agent_id = placement.agent_id.text();
        let Some(agent) = self.books.agent(agent_id) else {
            return Err((
                Outcome::AgentUnavailable,
                format!("no agent {agent_id:?} in the cell"),
            ));
        };
        if self.is_drained(&agent.info.hostname) {
            return Err((
                Outcome::AgentUnavailable,
                format!("agent {agent_id}'s machine is drained"),
            ));
        }
        let Some(task) = placement.task.as_ref() else {
            return Err((Outcome::Invalid, "a placement without a task".into()));
        };
        if !ids.insert(task.task_id.text().to_owned()) {
            return Err((
                Outcome::Invalid,
                format!(
                    "task id {} appears twice in the transaction",
                    task.task_id.text()
                ),
            ));
        }
        if self
            .books
            .task(&(framework.to_owned(), task.task_id.text().to_owned()))
            .is_some()
        {
            return Err((
                Outcome::Duplicate,
                format!("task {} is already live", task.task_id.text()),
            ));
        }
        if let Some(why) = self.run_as_refusal(info, task) {
            return Err((Outcome::Refused, why));
        }
        // Checked against the agent's total first: a task that could never fit there is
        // malformed, not in conflict.
        let needed = self
            .validate_task(framework, task, agent.total())
            .map_err(|why| (Outcome::Invalid, why))?;
        if coarse && placement.seen_version != agent.version() {
            return Err((
                Outcome::ConflictVersion,
                format!(
                    "agent {agent_id} is at version {}, not {}",
                    agent.version(),
                    placement.seen_version
                ),
            ));
        }
        let mut left = agent.committable();
        if let Some(taken) = taking.get(agent_id) {
            left = left.checked_sub(taken).unwrap_or_default();
        }
        if !left.contains(&needed) {
            return Err((
                Outcome::ConflictResources,
                format!("{needed} does not fit in what agent {agent_id} has left: {left}"),
            ));
        }
        // Types agree: `needed` fits in this agent's resources.
        let _ = taking.entry(agent_id.to_owned()).or_default().add(&needed);
        Ok(needed)
    }

    /// Takes as few of `agent`'s offers as free `needed` there (in offer id order); returns
    /// them, to be rescinded.
    fn make_room(&mut self, agent: &str, needed: &Resources) -> Vec<(String, OfferEntry)> {
        let fits = |m: &Master| {
            m.books
                .agent(agent)
                .is_none_or(|a| a.unheld().contains(needed))
        };
        if fits(self) {
            return Vec::new();
        }
        let mut ids: Vec<String> = self
            .books
            .agent(agent)
            .map(|a| a.offer_ids().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        let mut taken = Vec::new();
        for id in ids {
            if let Some(offer) = self.books.take_offer(&id) {
                taken.push((id, offer));
            }
            if fits(self) {
                break;
            }
        }
        taken
    }

    /// Rescinds the offers a transaction took and tells the allocator what it committed, the
    /// rescinded resources first.
    fn apply_claims(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        rescinded: Vec<(String, OfferEntry)>,
        claims: Vec<(String, Resources)>,
    ) {
        if claims.is_empty() {
            return;
        }
        self.cell.claimed = true;
        let taken = rescinded.len() as u64;
        self.cell.with_metrics(|m| m.offers_rescinded.add(taken));
        self.rescind(ctx, rescinded);
        let framework = framework.to_owned();
        self.tell_allocator("allocator refused a committed placement", move |a| {
            for (agent, resources) in &claims {
                a.claim(&framework, agent, resources)?;
            }
            Ok(())
        });
    }
}
