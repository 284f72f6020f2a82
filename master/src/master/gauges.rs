//! The master's gauges, refreshed every [`GAUGE_REFRESH_INTERVAL`]: registered agents and
//! frameworks, outstanding offers, and live tasks by state. Terminal states are counters,
//! bumped as tasks end ([`Master::count_task_end`]).

use std::collections::BTreeMap;
use std::time::Duration;

use libactor::Context;
use protos::v1::TaskState;

use super::Master;

/// How often the gauges are recomputed (a pass over the tasks: about 1 ms per 100,000).
pub const GAUGE_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Live states reported as `master/tasks_{state}` gauges.
const LIVE_STATES: [TaskState; 5] = [
    TaskState::TaskStaging,
    TaskState::TaskStarting,
    TaskState::TaskRunning,
    TaskState::TaskKilling,
    TaskState::TaskUnreachable,
];

/// `TASK_RUNNING` → `running`.
fn metric_suffix(state: TaskState) -> String {
    state
        .as_str_name()
        .trim_start_matches("TASK_")
        .to_ascii_lowercase()
}

impl Master {
    pub(super) fn refresh_gauges(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        m.gauge("master/agents_active")
            .set(self.books.agent_count() as i64);
        let active = self
            .books
            .frameworks()
            .map(|(_, f)| f)
            .filter(|f| f.active)
            .count();
        m.gauge("master/frameworks_active").set(active as i64);
        m.gauge("master/frameworks_inactive")
            .set((self.books.framework_count() - active) as i64);
        m.gauge("master/offers_outstanding")
            .set(self.books.offer_count() as i64);
        let mut by_state: BTreeMap<TaskState, i64> = LIVE_STATES.iter().map(|s| (*s, 0)).collect();
        for task in self.books.tasks().map(|(_, t)| t) {
            if let Some(n) = by_state.get_mut(&task.state) {
                *n += 1;
            }
        }
        for (state, n) in by_state {
            m.gauge(&format!("master/tasks_{}", metric_suffix(state)))
                .set(n);
        }
        ctx.delay(GAUGE_REFRESH_INTERVAL, |m: &mut Master, ctx| {
            m.refresh_gauges(ctx)
        });
    }

    /// Counts a task reaching terminal `state` (`master/tasks_finished`, `…_failed`, …).
    pub(super) fn count_task_end(&self, ctx: &Context<Self>, state: TaskState) {
        if state.is_terminal() {
            ctx.metrics()
                .counter(&format!("master/tasks_{}", metric_suffix(state)))
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_state() {
        assert_eq!(metric_suffix(TaskState::TaskRunning), "running");
        assert_eq!(
            metric_suffix(TaskState::TaskGoneByOperator),
            "gone_by_operator"
        );
    }
}
