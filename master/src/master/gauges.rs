//! The master's own gauges, refreshed every [`GAUGE_REFRESH_INTERVAL`]: registered agents and
//! outstanding offers (Mesos's `master/outstanding_offers`). Terminal task states are
//! counters under Mesos's names, bumped as tasks end ([`Master::count_task_end`]). Frameworks,
//! live tasks by state and resources are gauged by the API process from its view (see
//! `api::mesos_gauges`), which costs the master nothing. The master's event queue is gauged
//! when a snapshot is taken ([`install_event_queue_gauges`]).

use std::time::Duration;

use libactor::{Context, QueueDepths};
use protos::v1::TaskState;

use super::Master;

/// How often the gauges are refreshed.
pub const GAUGE_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// `TASK_RUNNING` → `running`.
fn metric_suffix(state: TaskState) -> String {
    state
        .as_str_name()
        .trim_start_matches("TASK_")
        .to_ascii_lowercase()
}

/// Mesos's `master/event_queue_*`: what waits in the master's mailbox, by kind, read when a
/// snapshot is taken (never stale, nothing for the master to do).
pub(super) fn install_event_queue_gauges(ctx: &Context<Master>) {
    type Pick = fn(&QueueDepths) -> u64;
    let kinds: [(&str, Pick); 3] = [
        ("master/event_queue_messages", |d| d.messages),
        ("master/event_queue_dispatches", |d| d.dispatches),
        ("master/event_queue_http_requests", |d| d.http_requests),
    ];
    for (name, pick) in kinds {
        let queue = ctx.queue_gauge();
        ctx.metrics()
            .gauge_fn(name, move || pick(&queue.depths()) as f64);
    }
}

impl Master {
    pub(super) fn refresh_gauges(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        m.gauge("master/agents_active")
            .set(self.books.agent_count() as i64);
        m.gauge("master/outstanding_offers")
            .set(self.books.offer_count() as i64);
        m.gauge("master/slaves_unreachable")
            .set(self.recovery.unreachable.len() as i64);
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
