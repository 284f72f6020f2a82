//! Killing and shutting down: a task killed (through its executor, or before it started), a
//! framework's or every executor shut down, and the agent's own shutdown when the master
//! asks.

use protos::IdText;
use std::time::Duration;

use libactor::{Context, Upid};
use protos::internal::{
    KillTaskMessage, ShutdownExecutorMessage, ShutdownFrameworkMessage, ShutdownMessage,
};
use protos::v1::task_status::Reason;
use protos::v1::{ExecutorId, FrameworkId, TaskState};

use crate::executor::{ExecutorKind, ExecutorState};
use crate::task_process::DEFAULT_KILL_GRACE;

use super::{Registration, Slave, EXECUTOR_SHUTDOWN_GRACE};

impl Slave {
    pub(super) fn kill_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: KillTaskMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let framework = msg.framework_id.text().to_owned();
        let task_id = msg.task_id.text().to_owned();
        let grace = msg
            .kill_policy
            .as_ref()
            .and_then(|p| p.grace_period.as_ref())
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64));
        let killing_state = self.frameworks.get(&framework).is_some_and(|f| {
            f.info.capabilities.iter().any(|c| {
                c.r#type == protos::v1::framework_info::capability::Type::TaskKillingState as i32
            })
        });
        let Some(executor) = self.executor_of(&framework, &task_id) else {
            // Not here (finished already, or never arrived): say so, so the framework stops
            // waiting.
            self.report(
                ctx,
                &framework,
                &task_id,
                &task_id,
                TaskState::TaskLost,
                Reason::TaskUnknown,
                format!("task {task_id} is not on this agent"),
            );
            return;
        };
        let executor_id = executor.id.clone();
        let reason = msg.reason.and_then(|r| Reason::try_from(r).ok());
        let Some(task) = executor.tasks.get_mut(&task_id) else {
            return;
        };
        if reason.is_some() {
            task.kill_reason = reason;
        }
        let task = task.clone();
        if task.state.is_terminal() {
            return;
        }
        match (executor.kind, executor.pid.clone()) {
            (ExecutorKind::Command, _) => {
                let grace = grace
                    .or_else(|| {
                        task.info
                            .kill_policy
                            .as_ref()
                            .and_then(|p| p.grace_period.as_ref())
                            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
                    })
                    .unwrap_or(DEFAULT_KILL_GRACE);
                executor.kill(grace);
                if killing_state {
                    self.report(
                        ctx,
                        &framework,
                        &executor_id,
                        &task_id,
                        TaskState::TaskKilling,
                        Reason::ExecutorTerminated,
                        "killing".into(),
                    );
                }
            }
            (ExecutorKind::Custom, Some(pid)) if task.delivered => ctx.send(&pid, msg),
            (ExecutorKind::Custom, None) if executor.state == ExecutorState::Reconnecting => {
                // It holds the task but cannot be told yet: it is ended, the task KILLED.
                executor.shutting_down = true;
                executor.kill(Duration::ZERO);
            }
            (ExecutorKind::Custom, _) => {
                // Queued for an executor that has not registered: it never started.
                if let Some(Err(refused)) = executor
                    .tasks
                    .get_mut(&task_id)
                    .map(|t| t.state.move_to(TaskState::TaskKilled))
                {
                    self.refuse_move(&framework, &task_id, refused);
                }
                self.metrics.inc(|m| &m.tasks_killed);
                self.report(
                    ctx,
                    &framework,
                    &executor_id,
                    &task_id,
                    TaskState::TaskKilled,
                    Reason::TaskKilledDuringLaunch,
                    "killed before the executor registered".into(),
                );
            }
        }
    }

    pub(super) fn shutdown_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ShutdownFrameworkMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let framework = msg.framework_id.text().to_owned();
        tracing::info!(%framework, "shutting the framework down");
        match self.frameworks.get_mut(&framework) {
            Some(record) => record.shut_down = true,
            // Nothing runs here: only its updates may be left.
            None => self.forget_framework_updates(&framework),
        }
        self.shutdown_executors(ctx, Some(&framework), None);
    }

    /// Has the status update manager drop `framework`'s updates (after any it was handed
    /// before: it handles them in order).
    pub(super) fn forget_framework_updates(&mut self, framework: &str) {
        self.unacknowledged_ends.retain(|(f, _), _| f != framework);
        let framework = framework.to_owned();
        self.sum
            .dispatch(move |sum, _| sum.forget_framework(&framework));
    }

    /// A framework shuts one of its executors down (the v1 API's SHUTDOWN, through the
    /// master). Who may send: the master.
    pub(super) fn shutdown_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ShutdownExecutorMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let framework = msg.framework_id.text().to_owned();
        let executor = msg.executor_id.text().to_owned();
        if self.executor_mut(&framework, &executor).is_none() {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%framework, %executor, "shutdown of an executor this agent does not run");
            return;
        }
        tracing::info!(%framework, %executor, "shutting the executor down");
        self.shutdown_executors(ctx, Some(&framework), Some(&executor));
    }

    /// Shuts down the executors of `framework` (all of them with `None`; only `executor` when
    /// given): custom executors are asked, then killed after [`EXECUTOR_SHUTDOWN_GRACE`];
    /// command tasks are killed.
    pub(super) fn shutdown_executors(
        &mut self,
        ctx: &mut Context<Self>,
        framework: Option<&str>,
        only: Option<&str>,
    ) {
        let mut asked = Vec::new();
        for (fid, f) in &mut self.frameworks {
            if framework.is_some_and(|wanted| wanted != fid) {
                continue;
            }
            for executor in f.executors.values_mut() {
                if only.is_some_and(|wanted| wanted != executor.id) {
                    continue;
                }
                executor.shutting_down = true;
                match (&executor.kind, executor.pid.clone()) {
                    (ExecutorKind::Custom, Some(pid)) => {
                        executor.state = ExecutorState::Terminating;
                        asked.push((fid.clone(), executor.id.clone(), pid));
                    }
                    _ => executor.kill(DEFAULT_KILL_GRACE),
                }
            }
        }
        for (framework, executor, pid) in asked {
            ctx.send(
                &pid,
                ShutdownExecutorMessage {
                    executor_id: Some(ExecutorId {
                        value: executor.clone(),
                    }),
                    framework_id: Some(FrameworkId {
                        value: framework.clone(),
                    }),
                    slave_id: None,
                },
            );
            ctx.delay(EXECUTOR_SHUTDOWN_GRACE, move |s: &mut Slave, _| {
                if let Some(e) = s.executor_mut(&framework, &executor) {
                    e.kill(Duration::ZERO);
                }
            });
        }
    }

    pub(super) fn shutdown(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ShutdownMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        tracing::warn!(reason = %msg.message, "the master shut this agent down");
        self.shutdown_executors(ctx, None, None);
        self.registration = Registration::Disconnected;
        self.id = None;
        // Shut down means forgotten: a restart registers as a new agent.
        let _ = std::fs::remove_file(self.meta.agent());
        self.shut_down.notify_one();
    }
}
