//! Machines taken out of scheduling for repair (Autopilot's device manager drains a machine
//! before a repair action and while it is in Failure or Probation).
//!
//! A drained hostname stays drained until reactivated, also for agents that register there
//! later (a rebooted agent comes back drained). Its agents' outstanding offers are rescinded
//! and the allocator stops offering them; with `kill_tasks`, their tasks are killed with
//! `REASON_AGENT_DRAINING`, which frameworks can act on (reschedule elsewhere), and the caller
//! learns when none is left.
//!
//! Drains are soft state: the device manager that ordered them re-asserts them when it starts
//! beside a new leading master.

use std::collections::BTreeMap;

use libactor::{Context, Upid};
use protos::internal::{KillTaskMessage, RescindResourceOfferMessage};
use protos::v1::task_status::Reason;
use protos::v1::{FrameworkId, OfferId, TaskId, TaskState};
use tokio::sync::oneshot;

use super::books::{OfferEntry, TaskKey};
use super::Master;
use crate::allocator::Allocator as _;

/// Most hostnames drained at once (each costs a little memory and a scan per terminal update
/// while it waits).
pub const MAX_DRAINED: usize = 100_000;

/// What a drain did, once the machine's tasks are all gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Agents registered on that hostname.
    pub agents: usize,
    /// Kills sent for their tasks.
    pub tasks_killed: usize,
}

/// Why a drain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// Too many hostnames are drained already.
    #[error("{MAX_DRAINED} machines are drained already")]
    TooMany,
    /// The hostname is empty or too long.
    #[error("invalid hostname {0:?}")]
    InvalidHostname(String),
}

struct DrainEntry {
    reason: String,
    /// Callers waiting for the machine's tasks to end, with what the drain did.
    waiters: Vec<(oneshot::Sender<DrainOutcome>, DrainOutcome)>,
}

/// The drained hostnames.
#[derive(Default)]
pub(super) struct Drains {
    hostnames: BTreeMap<String, DrainEntry>,
}

impl Master {
    /// Stops offering every agent on `hostname` (now and when one registers there later). With
    /// `kill_tasks` their tasks are killed (`REASON_AGENT_DRAINING`); the receiver resolves
    /// once no task is left there (at once when there is none).
    pub fn drain_machine(
        &mut self,
        ctx: &mut Context<Self>,
        hostname: &str,
        kill_tasks: bool,
        reason: &str,
    ) -> Result<oneshot::Receiver<DrainOutcome>, DrainError> {
        if hostname.is_empty() || hostname.len() > 255 {
            return Err(DrainError::InvalidHostname(
                hostname.chars().take(64).collect(),
            ));
        }
        if !self.drains.hostnames.contains_key(hostname)
            && self.drains.hostnames.len() >= MAX_DRAINED
        {
            return Err(DrainError::TooMany);
        }
        let _span = tracing::info_span!("drain_machine", %hostname, kill_tasks).entered();
        let agents = self.agents_on(hostname);
        let newly = !self.drains.hostnames.contains_key(hostname);
        let entry = self
            .drains
            .hostnames
            .entry(hostname.to_owned())
            .or_insert_with(|| DrainEntry {
                reason: String::new(),
                waiters: Vec::new(),
            });
        entry.reason = reason.chars().take(256).collect();
        if newly {
            tracing::info!(%hostname, %reason, agents = agents.len(), "machine drained");
            for agent in &agents {
                self.books.touch_agent(agent);
                self.rescind_offers_on(ctx, agent);
                let agent = agent.clone();
                self.tell_allocator("allocator refused to deactivate an agent", move |a| {
                    a.deactivate_agent(&agent)
                });
            }
        }
        let mut outcome = DrainOutcome {
            agents: agents.len(),
            tasks_killed: 0,
        };
        if kill_tasks {
            outcome.tasks_killed = self.kill_tasks_on(ctx, &agents);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(entry) = self.drains.hostnames.get_mut(hostname) {
            entry.waiters.push((tx, outcome));
        }
        self.settle_drains();
        Ok(rx)
    }

    /// Offers `hostname`'s agents again.
    pub fn reactivate_machine(&mut self, _ctx: &mut Context<Self>, hostname: &str) {
        if self.drains.hostnames.remove(hostname).is_none() {
            return;
        }
        tracing::info!(%hostname, "machine reactivated");
        for agent in self.agents_on(hostname) {
            self.books.touch_agent(&agent);
            self.tell_allocator("allocator refused to activate an agent", move |a| {
                a.activate_agent(&agent)
            });
        }
    }

    /// The drained hostnames with why.
    pub fn drained_machines(&self) -> Vec<(String, String)> {
        self.drains
            .hostnames
            .iter()
            .map(|(h, e)| (h.clone(), e.reason.clone()))
            .collect()
    }

    /// Whether agents on `hostname` are kept out of offers.
    pub(super) fn is_drained(&self, hostname: &str) -> bool {
        self.drains.hostnames.contains_key(hostname)
    }

    /// Answers the drains waiting on machines that have no task left (after a task ended or an
    /// agent went away).
    pub(super) fn settle_drains(&mut self) {
        if self.drains.hostnames.values().all(|e| e.waiters.is_empty()) {
            return;
        }
        let busy: std::collections::HashSet<&str> = self
            .books
            .agents()
            .filter(|(_, a)| a.task_count() > 0)
            .map(|(_, a)| a.info.hostname.as_str())
            .collect();
        let settled: Vec<String> = self
            .drains
            .hostnames
            .iter()
            .filter(|(h, e)| !e.waiters.is_empty() && !busy.contains(h.as_str()))
            .map(|(h, _)| h.clone())
            .collect();
        for hostname in settled {
            if let Some(entry) = self.drains.hostnames.get_mut(&hostname) {
                for (tx, outcome) in entry.waiters.drain(..) {
                    let _ = tx.send(outcome);
                }
            }
        }
    }

    fn agents_on(&self, hostname: &str) -> Vec<String> {
        self.books
            .agents()
            .filter(|(_, a)| a.info.hostname == hostname)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Sends a kill for every live task on `agents`; returns how many.
    fn kill_tasks_on(&mut self, ctx: &mut Context<Self>, agents: &[String]) -> usize {
        let kills: Vec<(TaskKey, Upid)> = self
            .books
            .tasks()
            .filter(|(_, t)| agents.iter().any(|a| a == t.agent()))
            .filter_map(|(key, t)| Some((key.clone(), self.books.agent(t.agent())?.pid().clone())))
            .collect();
        let mut killed = 0;
        for (key, pid) in kills {
            if self.books.task(&key).is_none_or(|t| t.state.is_terminal()) {
                continue;
            }
            if let Some(Err(refused)) = self.books.move_task(&key, TaskState::TaskKilling, None) {
                self.refuse_move(&key.0, &key.1, refused);
            }
            killed += 1;
            let (framework, task_id) = key;
            ctx.send(
                &pid,
                KillTaskMessage {
                    framework_id: Some(FrameworkId { value: framework }),
                    task_id: Some(TaskId { value: task_id }),
                    kill_policy: None,
                    reason: Some(Reason::AgentDraining as i32),
                },
            );
        }
        killed
    }

    /// Takes back every outstanding offer of `agent` from the frameworks holding them.
    pub(super) fn rescind_offers_on(&mut self, ctx: &mut Context<Self>, agent: &str) {
        let offers = self.books.take_offers_on(agent);
        self.rescind(ctx, offers);
    }

    /// Tells the frameworks holding `offers` (already taken out of circulation) that they are
    /// void, and gives their resources back to the allocator.
    pub(super) fn rescind(&mut self, ctx: &mut Context<Self>, offers: Vec<(String, OfferEntry)>) {
        for (id, offer) in offers {
            self.metrics.inc(|m| &m.offers_rescinded);
            if let Some(f) = self.books.framework(&offer.framework) {
                ctx.send(
                    &f.pid,
                    RescindResourceOfferMessage {
                        offer_id: Some(OfferId { value: id }),
                    },
                );
            }
            self.recover(&offer.framework, &offer.agent, offer.resources, None);
        }
    }
}
