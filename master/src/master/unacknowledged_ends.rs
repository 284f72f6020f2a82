//! Tasks that ended but whose end the framework has not acknowledged yet.
//!
//! The books drop a task at its terminal update, so that its resources go back at once. Mesos
//! keeps such a task with its framework until the end is acknowledged, and so answers a
//! reconciliation with the end itself. Without this record a framework that reconciles while
//! the end is on its way hears `TASK_LOST` for a task that finished — and one that missed the
//! `TASK_FINISHED` would launch it again. (Found by the whole-cluster simulation: seeds 2, 4,
//! 5, 6 and 8 of `keel-cluster-sim --faults 0`.) An end outlives its agent's removal, which
//! says nothing new about a task that already ended (Mesos answers `TASK_LOST` then: seeds
//! 170, 182 and 256 with 40 faults); it goes when acknowledged or with its framework.

use std::collections::BTreeMap;

use bytes::Bytes;
use protos::v1::TaskState;

use super::books::TaskKey;

/// Ended tasks awaiting their framework's acknowledgement, with their agent and end.
#[derive(Debug, Default)]
pub(super) struct UnacknowledgedEnds {
    /// Task → (its agent, its end, the end's update uuid).
    ends: BTreeMap<TaskKey, (String, TaskState, Bytes)>,
}

impl UnacknowledgedEnds {
    /// `task` (on `agent`) ended in `state`, told by the update `uuid`; its framework has
    /// been told.
    pub(super) fn ended(&mut self, task: TaskKey, agent: &str, state: TaskState, uuid: Bytes) {
        debug_assert!(state.is_terminal(), "{state:?} is no end");
        self.ends.insert(task, (agent.to_owned(), state, uuid));
    }

    /// The end of `task`, if it awaits acknowledgement.
    pub(super) fn get(&self, task: &TaskKey) -> Option<TaskState> {
        self.ends.get(task).map(|(_, state, _)| *state)
    }

    /// The framework acknowledged the update `uuid` of `task`: the end, once acknowledged, is
    /// no longer answered for (an earlier update's late acknowledgement changes nothing).
    pub(super) fn acknowledged(&mut self, task: &TaskKey, uuid: &[u8]) {
        if self.ends.get(task).is_some_and(|(_, _, end)| end == uuid) {
            self.ends.remove(task);
        }
    }

    /// The unacknowledged ends of `framework`'s tasks, with their agents.
    pub(super) fn of_framework<'a>(
        &'a self,
        framework: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.ends
            .iter()
            .filter(move |((f, _), _)| f == framework)
            .map(|((_, task), (agent, _, _))| (task.as_str(), agent.as_str()))
    }

    /// The framework was removed: nothing of it is acknowledged any more.
    pub(super) fn forget_framework(&mut self, framework: &str) {
        self.ends.retain(|(f, _), _| f != framework);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_is_answered_until_acknowledged_or_its_framework_goes() {
        let mut ends = UnacknowledgedEnds::default();
        let key = |t: &str| ("f1".to_owned(), t.to_owned());
        let uuid = |n: u8| Bytes::from(vec![n; 16]);
        ends.ended(key("t1"), "a1", TaskState::TaskFinished, uuid(1));
        ends.ended(key("t2"), "a2", TaskState::TaskFailed, uuid(2));
        ends.ended(
            ("f2".into(), "t3".into()),
            "a1",
            TaskState::TaskKilled,
            uuid(3),
        );
        assert_eq!(ends.get(&key("t1")), Some(TaskState::TaskFinished));
        assert_eq!(
            ends.of_framework("f1").collect::<Vec<_>>(),
            vec![("t1", "a1"), ("t2", "a2")]
        );
        ends.acknowledged(&key("t1"), &uuid(9));
        assert_eq!(
            ends.get(&key("t1")),
            Some(TaskState::TaskFinished),
            "another update's ack"
        );
        ends.acknowledged(&key("t1"), &uuid(1));
        assert_eq!(ends.get(&key("t1")), None);
        ends.forget_framework("f2");
        assert_eq!(ends.of_framework("f2").count(), 0);
    }
}
