//! Launch: an accept takes its offers, validates each task against what is left of them,
//! books and sends the valid ones to the agent, refuses the rest with TASK_ERROR or
//! TASK_DROPPED, and gives back what no task took.

use authentication::acls::Action;
use libactor::{Context, Upid};
use protos::internal::{AcceptOffersMessage, RunTaskMessage};
use protos::v1::task_status::Reason;
use protos::v1::{AgentId, FrameworkId, FrameworkInfo, TaskInfo, TaskState};
use protos::IdText;
use resources::Resources;

use super::books::TaskEntry;
use super::Master;

impl Master {
    pub(super) fn accept(&mut self, ctx: &mut Context<Self>, from: Upid, msg: AcceptOffersMessage) {
        let framework = msg.framework_id.text().to_owned();
        let Some(entry) = self.books.framework(&framework) else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        if entry.pid != from || !self.proven_as(ctx, Some(&entry.info.principal)) {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, %framework, "offers accepted by a process that is not the framework's scheduler");
            return;
        }
        let (scheduler, info) = (entry.pid.clone(), entry.info.clone());
        let offers = match self.take_offers(&framework, &msg.offer_ids) {
            Some(offers) if offers.windows(2).all(|w| w[0].agent == w[1].agent) => offers,
            taken => {
                // Give back whatever valid offers were taken, and tell the framework.
                for offer in taken.into_iter().flatten() {
                    self.recover(&framework, &offer.agent, offer.resources, None);
                }
                let grouped = msg
                    .groups
                    .iter()
                    .flat_map(|g| g.task_group.iter().flat_map(|group| group.tasks.iter()));
                for task in msg.tasks.iter().chain(grouped) {
                    // Updates name tasks by id: a drop reported for a task the master knows
                    // (live, or its end not yet acknowledged) would speak for that task. That
                    // is a repeated accept, whose offers the first one used: answering it
                    // would report a running task dropped, and its framework would run it
                    // again. (Found by the whole-cluster simulation, seed 135 with 40 faults.)
                    let key = (framework.clone(), task.task_id.text().to_owned());
                    if self.books.task(&key).is_some() || self.ends.get(&key).is_some() {
                        self.metrics.inc(|m| &m.tasks_refused);
                        tracing::warn!(%framework, task = %key.1, "an accept of used offers names a known task: a repeat, not answered");
                        continue;
                    }
                    self.refuse_task(
                        ctx,
                        &framework,
                        task,
                        TaskState::TaskDropped,
                        Reason::InvalidOffers,
                        "offers are unknown, not this framework's, or on different agents",
                    );
                }
                return;
            }
        };
        self.metrics.inc(|m| &m.offers_accepted);
        let agent = offers[0].agent.clone();
        let mut remaining = Resources::new();
        for offer in &offers {
            let _ = remaining.add(&offer.resources);
        }
        for group in &msg.groups {
            self.launch_group(
                ctx,
                &framework,
                &info,
                &scheduler,
                &agent,
                group,
                &mut remaining,
            );
        }
        for task in &msg.tasks {
            if let Some(why) = self.run_as_refusal(&info, task) {
                self.refuse_task(
                    ctx,
                    &framework,
                    task,
                    TaskState::TaskError,
                    Reason::TaskUnauthorized,
                    &why,
                );
                continue;
            }
            match self.validate_task(&framework, task, &remaining) {
                Ok(needed) => {
                    remaining = remaining.checked_sub(&needed).unwrap_or_default();
                    self.run_task(ctx, &framework, &info, &scheduler, &agent, task, needed, 0);
                }
                Err(why) => self.refuse_task(
                    ctx,
                    &framework,
                    task,
                    TaskState::TaskError,
                    Reason::TaskInvalid,
                    &why,
                ),
            }
        }
        let filter = self.refuse_filter(ctx, msg.filters.as_ref(), &remaining);
        self.recover(&framework, &agent, remaining, filter);
    }

    /// Books `task` on `agent` holding `needed` (already taken from an offer or committed)
    /// and sends it there. False if the books refuse it, which only a bug can cause.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_task(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        info: &FrameworkInfo,
        scheduler: &Upid,
        agent: &str,
        task: &TaskInfo,
        needed: Resources,
        priority: i32,
    ) -> bool {
        let Some(launched) = self.book_task(framework, agent, task, needed, priority) else {
            return false;
        };
        if let Some(agent_entry) = self.books.agent(agent) {
            ctx.send(
                agent_entry.pid(),
                RunTaskMessage {
                    framework_id: Some(FrameworkId {
                        value: framework.to_owned(),
                    }),
                    framework: Some(info.clone()),
                    pid: scheduler.to_string(),
                    task: Some(launched),
                },
            );
            self.metrics.inc(|m| &m.tasks_launched);
        }
        true
    }

    /// Books `task` on `agent` holding `needed` and returns it as the agent gets it (its
    /// agent id set); `None` if the books refuse it, which only a bug can cause.
    pub(super) fn book_task(
        &mut self,
        framework: &str,
        agent: &str,
        task: &TaskInfo,
        needed: Resources,
        priority: i32,
    ) -> Option<TaskInfo> {
        let task_id = task.task_id.text().to_owned();
        let executor = task
            .executor
            .as_ref()
            .and_then(|e| e.executor_id.as_ref())
            .map_or_else(|| task_id.clone(), |e| e.value.clone());
        let entry = TaskEntry::new(
            self.next_id,
            task.name.clone(),
            executor,
            agent.to_owned(),
            TaskState::TaskStaging,
            needed,
        )
        .with_priority(priority);
        if let Err(e) = self.books.add_task((framework.to_owned(), task_id), entry) {
            // Validation passed and its resources were taken: a bug, never a launch.
            debug_assert!(false, "launch refused by the books: {e}");
            tracing::error!(%framework, error = %e, "launch refused by the master's books");
            return None;
        }
        let mut launched = task.clone();
        launched.agent_id = Some(AgentId {
            value: agent.to_owned(),
        });
        if let Some(f) = self.books.framework_mut(framework) {
            f.agents.insert(agent.to_owned());
        }
        Some(launched)
    }

    /// Why the framework may not run `task` as its user, if it may not: the task's user, else
    /// the framework's (`--acls` `run_tasks`).
    pub(super) fn run_as_refusal(&self, info: &FrameworkInfo, task: &TaskInfo) -> Option<String> {
        let principal = Some(info.principal.as_str()).filter(|p| !p.is_empty());
        let user = task
            .command
            .as_ref()
            .map(|c| c.user.as_str())
            .filter(|u| !u.is_empty())
            .unwrap_or(&info.user);
        self.acls_refusal(Action::RunTask, principal, user)
    }

    /// Checks a task against the rest of its offers; returns the resources it takes.
    pub(super) fn validate_task(
        &self,
        framework: &str,
        task: &TaskInfo,
        remaining: &Resources,
    ) -> Result<Resources, String> {
        let task_id = task.task_id.text();
        if task_id.is_empty() {
            return Err("task has no task_id".into());
        }
        if self
            .books
            .task(&(framework.to_owned(), task_id.to_owned()))
            .is_some()
        {
            return Err(format!(
                "task id {task_id} is already in use by this framework"
            ));
        }
        let needed = Resources::from_proto(&task.resources)
            .map_err(|e| format!("invalid resources: {e}"))?;
        if needed.is_empty() {
            return Err("task asks for no resources".into());
        }
        if task.command.is_none() && task.executor.is_none() {
            return Err("task has neither a command nor an executor".into());
        }
        if !remaining.contains(&needed) {
            return Err(format!(
                "resources {needed} exceed what is left of the offers: {remaining}"
            ));
        }
        Ok(needed)
    }

    pub(super) fn refuse_task(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        task: &TaskInfo,
        state: TaskState,
        reason: Reason,
        why: &str,
    ) {
        self.metrics.inc(|m| &m.tasks_refused);
        tracing::info!(%framework, task = ?task.task_id.as_ref().map(|t| &t.value), %why, "launch refused");
        self.report(ctx, framework, task, state, reason, why);
    }
}
