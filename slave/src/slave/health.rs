//! The agent's side of task health checks: for a command task with a `health_check`, checks
//! run on the node's clock (so tests advance it), each result goes through the
//! [`HealthState`] machine, changes reach the framework as TASK_RUNNING updates with
//! `healthy` and `REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`, and a task unhealthy too many times
//! in a row is killed (its TASK_KILLED says `healthy: false` and why).

use std::time::Duration;

use libactor::Context;
use protos::v1::task_status::Reason;
use protos::v1::TaskState;

use super::Slave;
use crate::executor::ExecutorState;
use crate::health_check::{self, HealthAction, HealthCheckSpec, HealthState};
use crate::task_process::DEFAULT_KILL_GRACE;

/// A command task's health checking.
#[derive(Debug, Clone)]
pub struct TaskHealth {
    /// The validated check.
    pub spec: HealthCheckSpec,
    /// Where its health stands.
    pub state: HealthState,
    /// When the task started, on the node's clock.
    pub started: std::time::Instant,
}

impl Slave {
    /// Schedules the executor's next health check after `after`.
    pub(super) fn schedule_health_check(
        &self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        run: u64,
        after: Duration,
    ) {
        let (framework, id) = (framework.to_owned(), executor_id.to_owned());
        ctx.delay(after, move |s: &mut Slave, ctx| {
            s.run_health_check(ctx, &framework, &id, run)
        });
    }

    fn run_health_check(&mut self, ctx: &mut Context<Self>, framework: &str, id: &str, run: u64) {
        let Some(executor) = self.executor(framework, id) else {
            return;
        };
        if executor.run != run || executor.state != ExecutorState::Running {
            return;
        }
        let Some(health) = &executor.health else {
            return;
        };
        let check = health_check::check(
            health.spec.probe.clone(),
            health.spec.timeout,
            executor.sandbox.clone(),
        );
        let (framework, id) = (framework.to_owned(), id.to_owned());
        ctx.defer(check, move |s: &mut Slave, ctx, result| {
            s.health_checked(ctx, &framework, &id, run, result)
        });
    }

    fn health_checked(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        id: &str,
        run: u64,
        result: Result<(), String>,
    ) {
        let now = ctx.node().clock().now();
        let Some(executor) = self.executor_mut(framework, id) else {
            return;
        };
        if executor.run != run || executor.state != ExecutorState::Running {
            return;
        }
        let Some(health) = executor.health.as_mut() else {
            return;
        };
        let since_start = now.saturating_duration_since(health.started);
        let action = health
            .state
            .after(&health.spec, result.is_ok(), since_start);
        let interval = health.spec.interval;
        let message = match &result {
            Ok(()) => "health check passed".to_owned(),
            Err(why) => why.clone(),
        };
        // The next check is on the clock before anyone hears of this one, so a test that
        // advances the paused clock on seeing the report always finds it there.
        if action != HealthAction::Kill {
            self.schedule_health_check(ctx, framework, id, run, interval);
        }
        let Some(executor) = self.executor_mut(framework, id) else {
            return;
        };
        match action {
            HealthAction::None => {}
            HealthAction::Report(healthy) => {
                if let Some(task) = executor.tasks.get_mut(id) {
                    task.healthy = Some(healthy);
                }
                tracing::info!(%framework, task = %id, healthy, %message, "task health changed");
                self.report(
                    ctx,
                    framework,
                    id,
                    id,
                    TaskState::TaskRunning,
                    Reason::TaskHealthCheckStatusUpdated,
                    message,
                );
            }
            HealthAction::Kill => {
                tracing::warn!(%framework, task = %id, %message, "task unhealthy; killing it");
                let grace = executor
                    .tasks
                    .get(id)
                    .and_then(|t| t.info.kill_policy.as_ref())
                    .and_then(|p| p.grace_period.as_ref())
                    .map_or(DEFAULT_KILL_GRACE, |d| {
                        Duration::from_nanos(d.nanoseconds.max(0) as u64)
                    });
                if let Some(task) = executor.tasks.get_mut(id) {
                    task.healthy = Some(false);
                    task.kill_reason = Some(Reason::TaskHealthCheckStatusUpdated);
                }
                executor.kill(grace);
            }
        }
    }
}
