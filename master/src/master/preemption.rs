//! Preemption by priority (Omega): a placement that does not fit, in a transaction that allows
//! it, may take the place of lower-priority tasks on its agent — from either model, since tasks
//! launched on offers have priority 0. The victims are chosen lowest priority first, then
//! newest (they have done the least work), never taking a role below its guarantee
//! (`--revocation-guarantee`, shared with revocation). Their frameworks get a
//! `RevocationNoticeMessage`, and `KillTaskMessage`s (`REASON_CONTAINER_PREEMPTED`) once the
//! grace period is over. What they free is held for the preempting framework until a while
//! after that, so that another scheduler cannot commit it first; the preemptor commits again
//! when its copy of the cell shows the room.

use std::time::Duration;

use libactor::Context;
use protos::internal::{KillTaskMessage, RevocationNoticeMessage};
use protos::v1::task_status::Reason;
use protos::v1::{FrameworkId, TaskId, TaskState};
use resources::Resources;

use crate::fast_hash::{FastMap, FastSet};

use super::books::TaskKey;
use super::Master;

/// Between a preemption's notice and its kills, unless set otherwise.
pub const DEFAULT_PREEMPTION_GRACE: Duration = Duration::from_secs(30);

/// How long after the grace period what the victims freed stays held for the preemptor.
pub const PREEMPTION_HOLD_AFTER_GRACE: Duration = Duration::from_secs(30);

/// Resources held for a preempting framework on one agent.
struct Hold {
    id: u64,
    framework: String,
    resources: Resources,
}

/// The grace period and the holds.
pub(super) struct Preemptions {
    pub(super) grace: Duration,
    holds: FastMap<String, Vec<Hold>>,
    next_hold: u64,
}

impl Default for Preemptions {
    fn default() -> Self {
        Preemptions {
            grace: DEFAULT_PREEMPTION_GRACE,
            holds: FastMap::default(),
            next_hold: 0,
        }
    }
}

impl Preemptions {
    /// What holds for other frameworks keep `framework` from on `agent`.
    pub(super) fn held_from(&self, agent: &str, framework: &str) -> Resources {
        let mut held = Resources::new();
        for hold in self.holds.get(agent).into_iter().flatten() {
            if hold.framework != framework {
                let _ = held.add(&hold.resources);
            }
        }
        held
    }

    /// `framework` committed on `agent`: what was held for it there is its no longer.
    pub(super) fn release(&mut self, agent: &str, framework: &str) {
        if let Some(holds) = self.holds.get_mut(agent) {
            holds.retain(|h| h.framework != framework);
            if holds.is_empty() {
                self.holds.remove(agent);
            }
        }
    }

    fn hold(&mut self, agent: &str, framework: &str, resources: Resources) -> u64 {
        self.next_hold += 1;
        self.holds.entry(agent.to_owned()).or_default().push(Hold {
            id: self.next_hold,
            framework: framework.to_owned(),
            resources,
        });
        self.next_hold
    }

    fn expire(&mut self, agent: &str, id: u64) {
        if let Some(holds) = self.holds.get_mut(agent) {
            holds.retain(|h| h.id != id);
            if holds.is_empty() {
                self.holds.remove(agent);
            }
        }
    }
}

impl Master {
    /// Sets how long preempted tasks' frameworks have between the notice and the kill.
    pub fn set_preemption_grace(&mut self, _ctx: &mut Context<Self>, grace: Duration) {
        self.preemptions.grace = grace;
    }

    /// Tasks on `agent` whose end would make `needed` fit beside `left`, for a placement of
    /// `priority`: lower priority first, then newest; none under notice already or in
    /// `excluded`; none that would take its role below its guarantee. `None` if no such set
    /// makes room.
    pub(super) fn preemption_victims(
        &self,
        agent: &str,
        left: &Resources,
        needed: &Resources,
        priority: i32,
        excluded: &FastSet<TaskKey>,
    ) -> Option<Vec<TaskKey>> {
        let entry = self.books.agent(agent)?;
        let mut candidates: Vec<(&TaskKey, i32, u64, Resources)> = entry
            .task_keys()
            .filter(|k| !excluded.contains(*k) && !self.revocations.is_pending(k))
            .filter_map(|k| {
                let task = self.books.task(k)?;
                (task.priority < priority && !task.state.is_terminal())
                    .then(|| (k, task.priority, task.launched, task.resources().clone()))
            })
            .collect();
        candidates.sort_by_key(|(_, p, launched, _)| (*p, std::cmp::Reverse(*launched)));
        let mut room = left.clone();
        let mut victims = Vec::new();
        let mut taken_by_role: FastMap<String, Resources> = FastMap::default();
        for (key, _, _, resources) in candidates {
            if room.contains(needed) {
                break;
            }
            let role = self
                .books
                .framework(&key.0)
                .map(|f| super::role_of(&f.info).to_owned())
                .unwrap_or_else(|| "*".to_owned());
            let taken = taken_by_role.entry(role.clone()).or_default();
            let mut would_take = taken.clone();
            let _ = would_take.add(&resources);
            if !self.within_guarantee(&role, &would_take) {
                continue;
            }
            *taken = would_take;
            let _ = room.add(&resources);
            victims.push(key.clone());
        }
        room.contains(needed).then_some(victims)
    }

    /// Whether `role` keeps its guarantee once `taken` is gone from what its tasks use.
    fn within_guarantee(&self, role: &str, taken: &Resources) -> bool {
        let Some(guarantee) = self.revocations.policy.guarantees.get(role) else {
            return true;
        };
        let mut used = Resources::new();
        for ((framework, _), task) in self.books.tasks() {
            let in_role = self
                .books
                .framework(framework)
                .is_some_and(|f| super::role_of(&f.info) == role);
            if in_role {
                let _ = used.add_scalars(task.resources());
            }
        }
        used.checked_sub(&taken.scalars())
            .is_some_and(|rest| rest.contains(&guarantee.scalars()))
    }

    /// Starts preempting `victims` on `agent` for `framework`: their frameworks are told, the
    /// kills are armed for the end of the grace period, and what they hold is held for
    /// `framework` until a while after that.
    pub(super) fn preempt(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        agent: &str,
        victims: Vec<TaskKey>,
    ) {
        let grace = self.preemptions.grace;
        let mut freed = Resources::new();
        let mut by_framework: FastMap<String, Vec<TaskId>> = FastMap::default();
        for key in &victims {
            if let Some(task) = self.books.task(key) {
                let _ = freed.add(task.resources());
            }
            self.revocations.mark_pending(key.clone());
            by_framework.entry(key.0.clone()).or_default().push(TaskId {
                value: key.1.clone(),
            });
        }
        tracing::info!(%framework, %agent, victims = victims.len(), ?grace, "preempting lower-priority tasks");
        self.cell
            .with_metrics(|m| m.tasks_preempted.add(victims.len() as u64));
        let hold = self.preemptions.hold(agent, framework, freed);
        let held_on = agent.to_owned();
        // The kills are armed before the notices leave.
        ctx.delay(grace, move |m: &mut Master, ctx| {
            m.kill_preempted(ctx, victims)
        });
        ctx.delay(
            grace + PREEMPTION_HOLD_AFTER_GRACE,
            move |m: &mut Master, _| m.preemptions.expire(&held_on, hold),
        );
        for (owner, task_ids) in by_framework {
            if let Some(f) = self.books.framework(&owner) {
                ctx.send(
                    &f.pid.clone(),
                    RevocationNoticeMessage {
                        framework_id: Some(FrameworkId {
                            value: owner.clone(),
                        }),
                        task_ids,
                        grace_seconds: grace.as_secs_f64(),
                    },
                );
            }
        }
    }

    /// The grace period is over: the victims still running are killed.
    fn kill_preempted(&mut self, ctx: &mut Context<Self>, victims: Vec<TaskKey>) {
        for key in victims {
            if !self.revocations.take_pending(&key) {
                continue;
            }
            let Some(agent) = self
                .books
                .task(&key)
                .and_then(|t| self.books.agent(t.agent()))
                .map(|a| a.pid().clone())
            else {
                continue;
            };
            if let Some(Err(refused)) = self.books.move_task(&key, TaskState::TaskKilling, None) {
                self.refuse_move(&key.0, &key.1, refused);
            }
            ctx.send(
                &agent,
                KillTaskMessage {
                    framework_id: Some(FrameworkId {
                        value: key.0.clone(),
                    }),
                    task_id: Some(TaskId { value: key.1 }),
                    kill_policy: None,
                    reason: Some(Reason::ContainerPreempted as i32),
                },
            );
        }
    }
}
