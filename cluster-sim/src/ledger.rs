//! What the simulated cluster's participants saw, shared with the driver that checks it: which
//! agent started which task, and which states each task's framework heard. The safety
//! invariants are checked as the records arrive; a broken one is kept as a violation.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use protos::v1::TaskState;

/// The shared records of one run. Cheap to clone; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Records>>);

#[derive(Debug, Default)]
struct Records {
    /// Task id → the agents that started it, in order (more than one is a violation).
    launches: BTreeMap<String, Vec<String>>,
    /// Task id → the states its framework heard, in order.
    heard: BTreeMap<String, Vec<TaskState>>,
    violations: Vec<String>,
}

/// Whether `state` ends a task for good: after it the task never runs again, so its framework
/// may start another in its place. (`TASK_LOST` and `TASK_UNREACHABLE` do not: Mesos lets a
/// task reported lost come back when its agent does.)
pub fn is_definitive_end(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskError
            | TaskState::TaskDropped
            | TaskState::TaskGone
    )
}

/// Whether `state` says the task does not run (any end, definitive or not).
fn is_terminal(state: TaskState) -> bool {
    is_definitive_end(state) || matches!(state, TaskState::TaskLost | TaskState::TaskUnreachable)
}

impl Ledger {
    /// `agent` started `task`. A task started twice (on any agents, across restarts), or
    /// after its framework was told it had ended for good, is a violation.
    pub fn launched(&self, task: &str, agent: &str) {
        let mut records = self.0.lock();
        let ended = records
            .heard
            .get(task)
            .and_then(|states| states.iter().find(|s| is_definitive_end(**s)).copied());
        if let Some(end) = ended {
            records.violations.push(format!(
                "task {task} started on {agent} after its framework was told {end:?}"
            ));
        }
        let agents = records.launches.entry(task.to_owned()).or_default();
        agents.push(agent.to_owned());
        if agents.len() > 1 {
            let message = format!("task {task} started more than once: on {agents:?}");
            records.violations.push(message);
        }
    }

    /// The framework heard `state` for `task`. After a definitive end, a state that
    /// contradicts it is a violation: any live state, anything but `TASK_FINISHED` again after
    /// it finished, and `TASK_FINISHED` after it failed. (Another failure after a failure says
    /// the same — the task does not run — and a repeated end is at-least-once delivery.)
    pub fn heard(&self, task: &str, state: TaskState) {
        let mut records = self.0.lock();
        let states = records.heard.entry(task.to_owned()).or_default();
        let ended = states.iter().find(|s| is_definitive_end(**s)).copied();
        states.push(state);
        let Some(end) = ended else { return };
        let finished = |s: TaskState| s == TaskState::TaskFinished;
        let contradicts = !is_terminal(state) || finished(end) != finished(state);
        if contradicts {
            let message = format!("task {task} reported {state:?} after {end:?}");
            records.violations.push(message);
        }
    }

    /// Records a violation found elsewhere (an agent given more than it has, say).
    pub fn violation(&self, what: String) {
        self.0.lock().violations.push(what);
    }

    /// Every violation so far, in the order found.
    pub fn violations(&self) -> Vec<String> {
        self.0.lock().violations.clone()
    }

    /// Tasks started on agents so far.
    pub fn launches(&self) -> usize {
        self.0.lock().launches.len()
    }

    /// The states the framework heard for `task`, in order.
    pub fn heard_for(&self, task: &str) -> Vec<TaskState> {
        self.0.lock().heard.get(task).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_start_and_a_state_after_an_end_are_violations() {
        let ledger = Ledger::default();
        ledger.launched("t1", "a1");
        ledger.heard("t1", TaskState::TaskRunning);
        ledger.heard("t1", TaskState::TaskLost);
        ledger.heard("t1", TaskState::TaskRunning);
        ledger.heard("t1", TaskState::TaskFinished);
        ledger.heard("t1", TaskState::TaskFinished);
        ledger.heard("t2", TaskState::TaskDropped);
        ledger.heard("t2", TaskState::TaskLost);
        assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
        ledger.heard("t1", TaskState::TaskRunning);
        ledger.heard("t1", TaskState::TaskLost);
        ledger.heard("t2", TaskState::TaskFinished);
        ledger.launched("t1", "a2");
        let violations = ledger.violations();
        assert_eq!(violations.len(), 5, "{violations:?}");
        assert!(violations[0].contains("reported TaskRunning after TaskFinished"));
        assert!(violations[1].contains("reported TaskLost after TaskFinished"));
        assert!(violations[2].contains("reported TaskFinished after TaskDropped"));
        assert!(violations[3].contains("after its framework was told TaskFinished"));
        assert!(violations[4].contains("more than once"));
    }
}
