//! Revocation (the Mesos paper's §3.4, Hindman et al., NSDI 2011): when a framework starves while another runs
//! tasks above its fair share, the master tells the over-share framework which of its tasks it
//! will revoke, waits a grace period, and kills those still running if the starvation has not
//! ended. A role's guarantee is never revoked.
//!
//! Every `check_interval` the master looks at shares of what tasks use (dominant share over the
//! cluster's scalar resources). Frameworks that want offers (active, not suppressed) share the
//! cluster equally; one is *starved* when it is under its fair share and holds no offer, one is
//! *over* when it is above it. The newest tasks of an over framework are picked until it would
//! be back at its fair share, stopping before its role would drop under its guarantee; it gets
//! a `RevocationNoticeMessage` first, and `KillTaskMessage`s (reason
//! `REASON_CONTAINER_PREEMPTED`) after `grace_period`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use libactor::Context;
use protos::internal::{KillTaskMessage, RevocationNoticeMessage};
use protos::v1::task_status::Reason;
use protos::v1::{FrameworkId, TaskId};
use resources::Resources;

use super::Master;

/// When and how the master revokes.
#[derive(Debug, Clone)]
pub struct RevocationPolicy {
    /// Revocation happens at all.
    pub enabled: bool,
    /// How often starvation is checked.
    pub check_interval: Duration,
    /// Between the notice and the kill.
    pub grace_period: Duration,
    /// Resources per role that are never revoked.
    pub guarantees: HashMap<String, Resources>,
}

impl Default for RevocationPolicy {
    fn default() -> Self {
        RevocationPolicy {
            enabled: false,
            check_interval: Duration::from_secs(5),
            grace_period: Duration::from_secs(30),
            guarantees: HashMap::new(),
        }
    }
}

/// Revocation state: the policy and the tasks under notice.
#[derive(Debug, Default)]
pub(super) struct Revocations {
    pub(super) policy: RevocationPolicy,
    /// (framework, task) under notice.
    pending: HashSet<(String, String)>,
}

impl Revocations {
    /// Whether the task is under notice (revocation or preemption).
    pub(super) fn is_pending(&self, key: &(String, String)) -> bool {
        self.pending.contains(key)
    }

    /// Puts the task under notice.
    pub(super) fn mark_pending(&mut self, key: (String, String)) {
        self.pending.insert(key);
    }

    /// Takes the task from under notice; false if it was not.
    pub(super) fn take_pending(&mut self, key: &(String, String)) -> bool {
        self.pending.remove(key)
    }
}

/// A framework's dominant share of `total` given what it `uses`.
fn dominant_share(uses: &Resources, total: &BTreeMap<String, f64>) -> f64 {
    uses.scalar_totals()
        .iter()
        .filter_map(|(name, used)| {
            let all = total.get(name).copied().unwrap_or(0.0);
            (all > 0.0).then(|| used / all)
        })
        .fold(0.0, f64::max)
}

impl Master {
    /// Sets the revocation policy and starts the periodic check.
    pub fn set_revocation(&mut self, ctx: &mut Context<Self>, mut policy: RevocationPolicy) {
        let start = policy.enabled && !self.revocations.policy.enabled;
        // Guarantees set by operators (UPDATE_QUOTA, kept in the registry) win over the
        // policy's (`--guarantee`), which are only first guarantees.
        policy
            .guarantees
            .extend(std::mem::take(&mut self.revocations.policy.guarantees));
        self.revocations.policy = policy;
        if start {
            self.schedule_revocation_check(ctx);
        }
    }

    fn schedule_revocation_check(&self, ctx: &mut Context<Self>) {
        ctx.delay(
            self.revocations.policy.check_interval,
            |m: &mut Master, ctx| {
                if m.revocations.policy.enabled {
                    m.check_revocation(ctx);
                    m.schedule_revocation_check(ctx);
                }
            },
        );
    }

    /// Frameworks wanting offers, what their tasks use, and the cluster's scalar total.
    fn shares(&self) -> (BTreeMap<String, Resources>, BTreeMap<String, f64>) {
        let mut total = Resources::new();
        for (_, agent) in self.books.agents() {
            let _ = total.add_scalars(agent.total());
        }
        let mut uses: BTreeMap<String, Resources> = self
            .books
            .frameworks()
            .filter(|(_, f)| f.active && !f.suppressed)
            .map(|(id, _)| (id.clone(), Resources::new()))
            .collect();
        for (key, task) in self.books.tasks() {
            // Tasks under notice count as gone: the check during their grace period must not
            // pick more on their account.
            if self.revocations.pending.contains(key) {
                continue;
            }
            if let Some(u) = uses.get_mut(&key.0) {
                let _ = u.add_scalars(task.resources());
            }
        }
        (uses, total.scalar_totals())
    }

    /// Frameworks under their fair share that hold no offer.
    fn starved(&self) -> Vec<String> {
        let (uses, total) = self.shares();
        if uses.len() < 2 {
            return Vec::new();
        }
        let fair = 1.0 / uses.len() as f64;
        uses.iter()
            .filter(|(id, used)| {
                dominant_share(used, &total) < fair
                    && !self.books.offers().any(|(_, o)| o.framework == **id)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn check_revocation(&mut self, ctx: &mut Context<Self>) {
        let starved = self.starved();
        if starved.is_empty() {
            return;
        }
        let (uses, total) = self.shares();
        let fair = 1.0 / uses.len() as f64;
        for (framework, mut used) in uses {
            if dominant_share(&used, &total) <= fair {
                continue;
            }
            let role = self
                .books
                .framework(&framework)
                .map(|f| f.info.role.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "*".into());
            let guarantee = self
                .revocations
                .policy
                .guarantees
                .get(&role)
                .map(Resources::scalars)
                .unwrap_or_default();
            // Newest first: they have done the least work.
            let mut tasks: Vec<(u64, String, Resources)> = self
                .books
                .tasks()
                .filter(|((f, t), _)| {
                    *f == framework && !self.revocations.pending.contains(&(f.clone(), t.clone()))
                })
                .map(|((_, t), e)| (e.launched, t.clone(), e.resources().scalars()))
                .collect();
            tasks.sort_by_key(|t| std::cmp::Reverse(t.0));
            let mut picked = Vec::new();
            for (_, task, resources) in tasks {
                if dominant_share(&used, &total) <= fair {
                    break;
                }
                let Some(rest) = used.checked_sub(&resources) else {
                    continue;
                };
                if !guarantee.is_empty() && !rest.contains(&guarantee) {
                    break; // never below the guarantee
                }
                used = rest;
                picked.push(task);
            }
            if picked.is_empty() {
                continue;
            }
            self.notify_revocation(ctx, &framework, picked, &starved);
        }
    }

    fn notify_revocation(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        tasks: Vec<String>,
        starved: &[String],
    ) {
        let grace = self.revocations.policy.grace_period;
        tracing::warn!(%framework, tasks = ?tasks, ?starved, ?grace, "revoking tasks above the fair share");
        for task in &tasks {
            self.revocations
                .pending
                .insert((framework.to_owned(), task.clone()));
        }
        // The kill is armed before the notice leaves (see the agent's status update manager).
        let (owner, revoked) = (framework.to_owned(), tasks.clone());
        ctx.delay(grace, move |m: &mut Master, ctx| {
            m.revoke(ctx, &owner, revoked)
        });
        if let Some(f) = self.books.framework(framework) {
            ctx.send(
                &f.pid.clone(),
                RevocationNoticeMessage {
                    framework_id: Some(FrameworkId {
                        value: framework.to_owned(),
                    }),
                    task_ids: tasks.iter().map(|t| TaskId { value: t.clone() }).collect(),
                    grace_seconds: grace.as_secs_f64(),
                },
            );
        }
    }

    /// The grace period is over: kill what is still running, if someone still starves.
    fn revoke(&mut self, ctx: &mut Context<Self>, framework: &str, tasks: Vec<String>) {
        let still_starving = !self.starved().is_empty();
        for task in tasks {
            let key = (framework.to_owned(), task.clone());
            if !self.revocations.pending.remove(&key) || !still_starving {
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
            self.metrics.inc(|m| &m.tasks_revoked);
            ctx.send(
                &agent,
                KillTaskMessage {
                    framework_id: Some(FrameworkId {
                        value: framework.to_owned(),
                    }),
                    task_id: Some(TaskId { value: task }),
                    kill_policy: None,
                    reason: Some(Reason::ContainerPreempted as i32),
                },
            );
        }
    }
}
