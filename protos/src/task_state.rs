//! What the protocol says about task states beyond their numbers: which ones end a task.
//! It lives beside the generated type because every party to the protocol (master, agents,
//! schedulers, executors) must agree on it.

use crate::v1::TaskState;

impl TaskState {
    /// Whether a task in this state will never change again: its stream of status updates
    /// ends here and its resources are free.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::TaskFinished
                | TaskState::TaskFailed
                | TaskState::TaskKilled
                | TaskState::TaskError
                | TaskState::TaskLost
                | TaskState::TaskDropped
                | TaskState::TaskGone
                | TaskState::TaskGoneByOperator
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_is_not_terminal_and_finished_is() {
        assert!(!TaskState::TaskRunning.is_terminal());
        assert!(
            !TaskState::TaskUnreachable.is_terminal(),
            "an unreachable task may come back"
        );
        assert!(TaskState::TaskFinished.is_terminal());
    }
}
