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
use crate::api::state_json::TransactionRecord;
use crate::fast_hash::{FastMap, FastSet};

use super::books::{OfferEntry, TaskKey};
use super::{role_of, Master};

/// Placements in one transaction at most (a gang larger than this is not a transaction but a
/// workload).
pub const MAX_PLACEMENTS_PER_TRANSACTION: usize = 10_000;

/// Why a placement was not committed.
type Refusal = (Outcome, String);

/// What the master decided for one placement.
enum Decision {
    /// It fits: it takes these resources.
    Fits(Resources),
    /// It fits once these lower-priority tasks are gone.
    Preempt(Vec<TaskKey>),
    /// It does not, and why.
    Refused(Refusal),
}

/// What the transaction's earlier placements take, by agent; their task ids; the tasks they
/// would preempt.
#[derive(Default)]
struct Scratch {
    taking: FastMap<String, Resources>,
    ids: FastSet<String>,
    victims: FastSet<TaskKey>,
    /// What each limited role's tasks hold, with what the transaction adds (read once).
    role_use: FastMap<String, Resources>,
}

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
            let record = TransactionRecord {
                framework_id: framework.clone(),
                user: self
                    .books
                    .framework(&framework)
                    .map(|f| f.info.user.clone())
                    .unwrap_or_default(),
                transaction_id: msg.transaction_id.clone(),
                time: ctx.node().clock().unix_seconds(),
                placements: msg.placements.len() as u64,
                error: error.clone(),
                commit_micros: started.elapsed().as_micros() as u64,
                ..Default::default()
            };
            self.cell.record(record);
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

        let mut scratch = Scratch::default();
        let decisions: Vec<Decision> = msg
            .placements
            .iter()
            .map(|p| self.decide(&framework, &info, p, coarse, msg.preempt, &mut scratch))
            .collect();
        let all_fit = decisions.iter().all(|d| matches!(d, Decision::Fits(_)));
        let all_placeable = decisions
            .iter()
            .all(|d| matches!(d, Decision::Fits(_) | Decision::Preempt(_)));

        let (mut committed, mut conflicted, mut refused, mut preempting) = (0u64, 0u64, 0u64, 0u64);
        let mut touched = BTreeSet::new();
        let mut claims: Vec<(String, Resources)> = Vec::new();
        let mut rescinded = Vec::new();
        for (placement, decision) in msg.placements.iter().zip(decisions) {
            let task_id = placement.task.as_ref().and_then(|t| t.task_id.clone());
            let agent = placement.agent_id.text();
            let (outcome, message) = match (decision, placement.task.as_ref()) {
                (Decision::Fits(needed), Some(task)) if all_fit || !gang => {
                    self.preemptions.release(agent, &framework);
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
                (Decision::Preempt(victims), _) if all_placeable || !gang => {
                    let message = format!(
                        "preempting {} lower-priority tasks; commit again once they are gone (grace {:?})",
                        victims.len(),
                        self.preemptions.grace
                    );
                    self.preempt(ctx, &framework, agent, victims);
                    (Outcome::Preempting, message)
                }
                (Decision::Fits(_) | Decision::Preempt(_), _) => (
                    Outcome::Aborted,
                    "another placement of this all-or-nothing transaction did not fit".to_owned(),
                ),
                (Decision::Refused(refusal), _) => refusal,
            };
            match outcome {
                Outcome::Committed => committed += 1,
                Outcome::ConflictVersion | Outcome::ConflictResources | Outcome::Aborted => {
                    conflicted += 1
                }
                Outcome::Preempting => preempting += 1,
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
        self.cell
            .count_transaction(conflicted + preempting, committed);
        let took = started.elapsed();
        self.cell.with_metrics(|m| {
            m.placements_refused.add(refused);
            m.commit_time.record(took);
        });
        self.cell.record(TransactionRecord {
            framework_id: framework.clone(),
            user: info.user.clone(),
            transaction_id: msg.transaction_id.clone(),
            time: ctx.node().clock().unix_seconds(),
            placements: msg.placements.len() as u64,
            committed,
            conflicted,
            refused,
            preempting,
            error: String::new(),
            commit_micros: took.as_micros() as u64,
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
    /// placements take (`scratch`).
    fn decide(
        &self,
        framework: &str,
        info: &FrameworkInfo,
        placement: &Placement,
        coarse: bool,
        preempt: bool,
        scratch: &mut Scratch,
    ) -> Decision {
        match self.check(framework, info, placement, coarse, scratch) {
            Ok(needed) => {
                let agent_id = placement.agent_id.text();
                if let Some(refusal) = self.over_limit(info, &needed, scratch) {
                    return Decision::Refused(refusal);
                }
                let mut left = self
                    .books
                    .agent(agent_id)
                    .map(|a| a.committable())
                    .unwrap_or_default();
                for less in [
                    scratch.taking.get(agent_id).cloned().unwrap_or_default(),
                    self.preemptions.held_from(agent_id, framework),
                ] {
                    left = left.checked_sub(&less).unwrap_or_default();
                }
                if left.contains(&needed) {
                    // Types agree: `needed` fits in this agent's resources.
                    let _ = scratch
                        .taking
                        .entry(agent_id.to_owned())
                        .or_default()
                        .add(&needed);
                    if let Some(used) = scratch.role_use.get_mut(role_of(info)) {
                        let _ = used.add_scalars(&needed);
                    }
                    return Decision::Fits(needed);
                }
                if preempt && placement.priority > 0 {
                    if let Some(victims) = self.preemption_victims(
                        agent_id,
                        &left,
                        &needed,
                        placement.priority,
                        &scratch.victims,
                    ) {
                        scratch.victims.extend(victims.iter().cloned());
                        return Decision::Preempt(victims);
                    }
                }
                Decision::Refused((
                    Outcome::ConflictResources,
                    format!("{needed} does not fit in what agent {agent_id} has left: {left}"),
                ))
            }
            Err(refusal) => Decision::Refused(refusal),
        }
    }

    /// Why `needed` would take the framework's role over its limit, if it would.
    fn over_limit(
        &self,
        info: &FrameworkInfo,
        needed: &Resources,
        scratch: &mut Scratch,
    ) -> Option<Refusal> {
        let role = role_of(info);
        let limit = self.role_limits.get(role)?;
        let used = scratch.role_use.entry(role.to_owned()).or_insert_with(|| {
            let mut used = Resources::new();
            for ((framework, _), task) in self.books.tasks() {
                if self
                    .books
                    .framework(framework)
                    .is_some_and(|f| role_of(&f.info) == role)
                {
                    let _ = used.add_scalars(task.resources());
                }
            }
            used
        });
        let mut after = used.clone();
        let _ = after.add_scalars(needed);
        // Only what the limit names is limited.
        let over = limit
            .scalar_totals()
            .iter()
            .any(|(name, most)| after.scalar(name) > *most + 1e-9);
        over.then(|| {
            (
                Outcome::Refused,
                format!("role {role} is limited to {limit}; its tasks hold {used}"),
            )
        })
    }

    /// Everything about a placement but whether it fits; returns the resources it takes.
    fn check(
        &self,
        framework: &str,
        info: &FrameworkInfo,
        placement: &Placement,
        coarse: bool,
        scratch: &mut Scratch,
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
        if !scratch.ids.insert(task.task_id.text().to_owned()) {
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
