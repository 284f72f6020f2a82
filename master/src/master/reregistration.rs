//! Agents and schedulers coming back: re-registration after a broken connection or a master
//! restart, and what happens to a framework whose scheduler goes away.
//!
//! The master's state is soft (Mesos's design): a restarted master learns agents, their tasks
//! and frameworks again from `ReregisterSlaveMessage` and `ReregisterFrameworkMessage`, keeping
//! the ids they already have.
//!
//! A scheduler whose connection breaks makes its framework inactive: its offers are rescinded
//! and it gets no more until it re-registers. If it does not within the framework's
//! `failover_timeout` (0 by default, as in Mesos), the framework is removed and its tasks killed.

use protos::IdText;
use std::time::Duration;

use libactor::{Context, Upid};
use protos::internal::{
    FrameworkReregisteredMessage, ReconcileTasksMessage, ReregisterFrameworkMessage,
    ReregisterSlaveMessage, SlaveReregisteredMessage,
};
use protos::v1::task_status::{Reason, Source};
use protos::v1::{AgentId, FrameworkId, FrameworkInfo, TaskId, TaskState, TaskStatus};
use resources::Resources;

use crate::allocator::Allocator;

use super::registration::{role_of, validate_agent};
use super::{FrameworkEntry, Master, Registrant, TaskEntry};

/// Longest failover timeout honoured (a week), so that a huge value cannot overflow the clock.
pub const MAX_FAILOVER_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a framework's scheduler may stay away before the framework is removed.
pub(super) fn failover_timeout(info: &FrameworkInfo) -> Duration {
    info.failover_timeout
        .filter(|t| t.is_finite() && *t > 0.0)
        .map_or(Duration::ZERO, |t| {
            Duration::from_secs_f64(t).min(MAX_FAILOVER_TIMEOUT)
        })
}

impl Master {
    pub(super) fn reregister_slave(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ReregisterSlaveMessage,
    ) {
        let principal = match self.admit(ctx, &from, Registrant::Agent, "") {
            Ok(principal) => principal,
            Err(why) => {
                self.metrics.inc(|m| &m.registrations_refused);
                tracing::warn!(%from, %why, "refused an agent re-registration");
                return;
            }
        };
        let info = msg.slave.unwrap_or_default();
        let id = info.id.text().to_owned();
        let total = match validate_agent(&info) {
            Ok(total) if !id.is_empty() => total,
            Ok(_) => {
                self.metrics.inc(|m| &m.invalid_messages);
                tracing::warn!(%from, "refused an agent re-registration without an id");
                return;
            }
            Err(why) => {
                self.metrics.inc(|m| &m.invalid_messages);
                tracing::warn!(%from, %why, "refused an agent re-registration");
                return;
            }
        };
        if self.refuse_if_gone(ctx, &from, &id) {
            return;
        }
        let reply = SlaveReregisteredMessage {
            slave_id: Some(AgentId { value: id.clone() }),
            registration_backoff_seconds: self.registration_backoff_advice(),
            ..Default::default()
        };
        if let Some(known) = self.books.agent(&id).and_then(|a| a.principal.as_deref()) {
            if principal.as_deref() != Some(known) {
                self.metrics.inc(|m| &m.registrations_refused);
                tracing::warn!(agent = %id, %from, registered = known, proven = principal.as_deref().unwrap_or("(none)"), "refused an agent re-registration: another principal holds that agent id");
                return;
            }
        }
        if let Some(old) = self.books.rebind_agent(&id, from.clone()) {
            // Known already (its connection broke, it restarted, or a retry): the agent may
            // have a new pid.
            self.directory.remove(&old);
            if let Some(entry) = self.books.agent(&id) {
                self.directory.insert(&from, &entry.info.hostname);
            }
            let reported: std::collections::HashSet<(String, String)> = msg
                .tasks
                .iter()
                .map(|t| {
                    (
                        t.framework_id.text().to_owned(),
                        t.task_id.text().to_owned(),
                    )
                })
                .collect();
            let reply = SlaveReregisteredMessage {
                reconciliations: self.unlisted_tasks(&id, &reported),
                ..reply
            };
            if !reply.reconciliations.is_empty() {
                tracing::warn!(agent = %id, frameworks = reply.reconciliations.len(), "the returning agent did not list every task placed on it: asking it to reconcile them");
            }
            ctx.send(&from, reply);
            return;
        }
        tracing::info!(agent = %id, %from, tasks = msg.tasks.len(), "agent re-registered");
        let mut used: Vec<(String, Resources)> = Vec::new();
        let mut tasks = Vec::new();
        let mut all = Resources::new();
        let mut orphans = std::collections::BTreeSet::new();
        for task in msg.tasks {
            let framework = task.framework_id.text().to_owned();
            if self.is_orphan(&framework) {
                orphans.insert(framework);
                continue;
            }
            let state = TaskState::try_from(task.state).unwrap_or(TaskState::TaskUnknown);
            if state.is_terminal() {
                // Ended, its end not yet acknowledged: the end follows from the agent.
                continue;
            }
            let task_id = task.task_id.text().to_owned();
            let resources = Resources::from_proto(&task.resources).unwrap_or_default();
            let _ = all.add(&resources);
            match used.iter_mut().find(|(f, _)| *f == framework) {
                Some((_, held)) => {
                    let _ = held.add(&resources);
                }
                None => used.push((framework.clone(), resources.clone())),
            }
            let entry = TaskEntry::new(
                0,
                task.name,
                task.executor_id.text().to_owned(),
                id.clone(),
                state,
                resources,
            );
            tasks.push(((framework, task_id), entry));
        }
        if !total.contains(&all) {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(agent = %id, %from, %total, tasks = %all, "refused an agent re-registration: its tasks hold more than it has");
            return;
        }
        self.agent_returned(ctx, &info);
        self.directory.insert(&from, &info.hostname);
        if let Err(e) = self.books.add_agent(&id, from.clone(), info, total.clone()) {
            tracing::error!(agent = %id, error = %e, "agent re-registration refused by the books");
            return;
        }
        if let Some(entry) = self.books.agent_mut(&id) {
            entry.principal = principal;
        }
        for (key, entry) in tasks {
            if let Err(e) = self.books.add_task(key, entry) {
                // Checked against its total above; a task id twice is the agent's error.
                self.metrics.inc(|m| &m.invalid_messages);
                tracing::warn!(agent = %id, error = %e, "a re-registered task refused");
            }
        }
        self.watch_agent(ctx, id.clone());
        self.metrics.inc(|m| &m.agents_registered);
        self.add_to_allocator(&id, total, used);
        ctx.send(&from, reply);
        for framework in orphans {
            self.shut_down_orphan(ctx, &from, &framework);
        }
    }

    pub(super) fn reregister_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ReregisterFrameworkMessage,
    ) {
        let Some(info) = self.admitted_scheduler(ctx, &from, msg.framework.unwrap_or_default())
        else {
            return;
        };
        let id = info.id.text().to_owned();
        if id.is_empty() || info.name.trim().is_empty() || info.user.trim().is_empty() {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, "refused a framework re-registration without an id, name or user");
            return;
        }
        if self.removed_frameworks.contains(&id) || self.is_orphan(&id) {
            // Its failover timeout passed, or it was torn down: its tasks are gone.
            self.refuse_framework(ctx, &from, &format!("framework {id} has been removed"));
            return;
        }
        let reply = FrameworkReregisteredMessage {
            framework_id: Some(FrameworkId { value: id.clone() }),
            master_info: Some(self.info(ctx)),
        };
        ctx.link(&from);
        if let Some(entry) = self.books.framework_mut(&id) {
            let old = std::mem::replace(&mut entry.pid, from.clone());
            let was_active = std::mem::replace(&mut entry.active, true);
            // A shared-state framework stays out of offers; others are offered again.
            entry.suppressed = entry.shared_state;
            let revive = !was_active && !entry.shared_state;
            if old != from {
                tracing::info!(framework = %id, %from, "scheduler failed over");
                ctx.unlink(&old);
                // Offers made to the old scheduler are void.
                self.withdraw_offers(&id);
            }
            self.books.framework_updated(&id);
            if revive {
                let framework = id.clone();
                self.tell_allocator("allocator refused to revive a framework", move |a| {
                    a.revive(&framework)
                });
            }
            ctx.send(&from, reply);
            return;
        }
        let role = role_of(&info).to_owned();
        tracing::info!(framework = %id, name = %info.name, "framework re-registered");
        self.framework_returned(ctx, &info);
        if let Err(e) = self
            .books
            .add_framework(&id, FrameworkEntry::new(from.clone(), info))
        {
            tracing::error!(framework = %id, error = %e, "framework re-registration refused by the books");
            return;
        }
        self.metrics.inc(|m| &m.frameworks_registered);
        let framework = id;
        self.tell_allocator("allocator refused a re-registered framework", move |a| {
            a.add_framework(&framework, &role, false)
        });
        ctx.send(&from, reply);
    }

    /// The connection to a scheduler broke: its framework turns inactive, and is removed once
    /// its failover timeout passes without a re-registration.
    pub(super) fn scheduler_exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        let Some(id) = self.books.framework_id_by_pid(pid).cloned() else {
            return;
        };
        let Some(entry) = self.books.framework_mut(&id) else {
            return;
        };
        if !entry.active {
            return;
        }
        entry.active = false;
        let id = id.clone();
        let timeout = failover_timeout(&entry.info);
        self.books.framework_updated(&id);
        tracing::warn!(framework = %id, scheduler = %pid, ?timeout, "scheduler disconnected; framework inactive");
        self.withdraw_offers(&id);
        self.drop_cell_subscriber(&id);
        let framework = id.clone();
        self.tell_allocator("allocator refused to suppress a framework", move |a| {
            a.suppress(&framework)
        });
        let stale = pid.clone();
        ctx.delay(timeout, move |m: &mut Master, ctx| {
            let still_gone = m
                .books
                .framework(&id)
                .is_some_and(|f| !f.active && f.pid == stale);
            if still_gone {
                tracing::warn!(framework = %id, "failover timeout passed; removing the framework");
                m.remove_framework(ctx, &id);
            }
        });
    }
}

impl Master {
    /// Tasks placed on a returning agent that its re-registration does not list: a launch
    /// lost on its way (the agent restarted, or took no launch while it was not registered),
    /// or one that raced with the re-registration and reached the agent after it. Only the
    /// agent can tell, once the launch has had its chance to arrive (it comes before the
    /// reply on the same connection): the reply asks it to reconcile them, and the agent
    /// answers LOST for those it does not know (Mesos's `reconcileKnownSlave`).
    fn unlisted_tasks(
        &self,
        agent: &str,
        reported: &std::collections::HashSet<(String, String)>,
    ) -> Vec<ReconcileTasksMessage> {
        let mut by_framework: std::collections::BTreeMap<String, Vec<TaskStatus>> =
            Default::default();
        for key in self.books.tasks_on(agent) {
            if reported.contains(&key) {
                continue;
            }
            let (framework, task_id) = key;
            by_framework
                .entry(framework)
                .or_default()
                .push(reconciliation_request(task_id, agent.to_owned()));
        }
        by_framework
            .into_iter()
            .map(|(framework, statuses)| ReconcileTasksMessage {
                framework_id: Some(FrameworkId { value: framework }),
                statuses,
            })
            .collect()
    }
}

/// The master's question to an agent about `task`, which the agent answers LOST for if it does
/// not know it.
pub(super) fn reconciliation_request(task: String, agent: String) -> TaskStatus {
    TaskStatus {
        task_id: Some(TaskId { value: task }),
        agent_id: Some(AgentId { value: agent }),
        source: Source::Master as i32,
        reason: Some(Reason::Reconciliation as i32),
        message: "reconciliation request".into(),
        ..Default::default()
    }
}
