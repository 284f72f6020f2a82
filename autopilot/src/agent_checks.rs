//! The watchdogs that look at the agent itself rather than the machine: `agent` (the agent
//! process answers and is registered with a master) and `tasks` (the share of tasks that
//! failed on this machine lately: a machine where most tasks fail is likely broken even when
//! every other check passes).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use libactor::{http_client, Upid};
use protos::autopilot::{WatchdogResult, WatchdogStatus};

/// How long the agent has to answer the self-check.
pub const SELF_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds the task failure rate looks back over.
pub const TASK_WINDOW_ROUNDS: usize = 30;
/// Tasks that must have ended in the window before the rate says anything.
const MIN_ENDED_FOR_WARNING: f64 = 5.0;
const MIN_ENDED_FOR_ERROR: f64 = 10.0;

fn result(name: &str, status: WatchdogStatus, text: String) -> WatchdogResult {
    WatchdogResult {
        name: name.to_owned(),
        status: status as i32,
        text,
        fatal: false,
    }
}

/// `agent`: asks the agent process for its state; Error if it does not answer in time,
/// Warning while it is not registered with a master.
pub async fn self_check(agent: &Upid) -> WatchdogResult {
    let path = format!("/{}/state", agent.id());
    let asked = tokio::time::timeout(
        SELF_CHECK_TIMEOUT,
        http_client::get_json(agent.address(), &path),
    )
    .await;
    match asked {
        Err(_) => result(
            "agent",
            WatchdogStatus::Error,
            format!("{agent} did not answer within {SELF_CHECK_TIMEOUT:?}"),
        ),
        Ok(Err(e)) => result("agent", WatchdogStatus::Error, e.to_string()),
        Ok(Ok(state)) => match state["registration"].as_str() {
            Some("Registered") => result("agent", WatchdogStatus::Ok, "registered".into()),
            other => result(
                "agent",
                WatchdogStatus::Warning,
                format!("not registered ({})", other.unwrap_or("unknown")),
            ),
        },
    }
}

/// `tasks`: the share of tasks ended on this agent over the last rounds that failed.
#[derive(Debug, Default)]
pub struct TaskFailureRate {
    /// Cumulative (failed, ended) at each of the last rounds, oldest first.
    samples: VecDeque<(f64, f64)>,
}

impl TaskFailureRate {
    /// Takes this round's counters (the agent node's metrics) and judges the rate: Warning
    /// from half failed, Error from nine in ten, once enough tasks ended.
    pub fn observe(&mut self, metrics: &BTreeMap<String, f64>) -> WatchdogResult {
        let get = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
        let failed = get("slave/tasks_failed");
        let ended = failed + get("slave/tasks_finished") + get("slave/tasks_killed");
        self.samples.push_back((failed, ended));
        if self.samples.len() > TASK_WINDOW_ROUNDS + 1 {
            self.samples.pop_front();
        }
        let (first_failed, first_ended) = self.samples.front().copied().unwrap_or_default();
        let (failed, ended) = (failed - first_failed, ended - first_ended);
        let rate = if ended > 0.0 { failed / ended } else { 0.0 };
        let text = format!("{failed} of {ended} tasks ended lately failed");
        let status = if ended >= MIN_ENDED_FOR_ERROR && rate >= 0.9 {
            WatchdogStatus::Error
        } else if ended >= MIN_ENDED_FOR_WARNING && rate >= 0.5 {
            WatchdogStatus::Warning
        } else {
            WatchdogStatus::Ok
        };
        result("tasks", status, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(failed: f64, finished: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("slave/tasks_failed".to_owned(), failed),
            ("slave/tasks_finished".to_owned(), finished),
        ])
    }

    #[test]
    fn the_rate_over_the_window_decides_and_old_failures_age_out() {
        let mut rate = TaskFailureRate::default();
        assert_eq!(
            rate.observe(&counters(0.0, 0.0)).status(),
            WatchdogStatus::Ok
        );
        assert_eq!(
            rate.observe(&counters(3.0, 0.0)).status(),
            WatchdogStatus::Ok,
            "too few"
        );
        assert_eq!(
            rate.observe(&counters(6.0, 1.0)).status(),
            WatchdogStatus::Warning
        );
        assert_eq!(
            rate.observe(&counters(12.0, 1.0)).status(),
            WatchdogStatus::Error
        );
        for _ in 0..TASK_WINDOW_ROUNDS {
            rate.observe(&counters(12.0, 50.0));
        }
        let calm = rate.observe(&counters(12.0, 60.0));
        assert_eq!(calm.status(), WatchdogStatus::Ok, "{}", calm.text);
    }
}
