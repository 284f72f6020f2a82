//! What the protocol says about task states beyond their numbers: which ones end a task, and
//! which may follow which. It lives beside the generated type because every party to the
//! protocol (master, agents, schedulers, executors) must agree on it.
//!
//! The legal moves, in one table ([`TaskState::can_move_to`]):
//!
//! | from | to |
//! | --- | --- |
//! | STAGING | STAGING, STARTING, RUNNING, KILLING, UNREACHABLE, any terminal |
//! | STARTING | STARTING, RUNNING, KILLING, UNREACHABLE, any terminal |
//! | RUNNING | RUNNING (a new update, e.g. health), KILLING, UNREACHABLE, any terminal |
//! | KILLING | KILLING, UNREACHABLE, any terminal |
//! | UNREACHABLE | RUNNING (its agent came back), KILLING, UNREACHABLE, any terminal |
//! | UNKNOWN | any state but UNKNOWN (the state is being learned) |
//! | a terminal state | nothing: a task that ended never changes again |

use std::fmt;

use crate::v1::TaskState;

/// A task-state move the table refuses: a bug, or a late or forged report. Whoever holds the
/// task keeps its state, logs the move and counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTaskMove {
    /// The state the task is in.
    pub from: TaskState,
    /// The state it was asked to take.
    pub to: TaskState,
}

impl fmt::Display for IllegalTaskMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a task in {} cannot move to {}",
            self.from.as_str_name(),
            self.to.as_str_name()
        )
    }
}

impl std::error::Error for IllegalTaskMove {}

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

    /// Whether a task in this state may next be in `next` (see the module's table).
    pub fn can_move_to(self, next: TaskState) -> bool {
        use TaskState::*;
        if self.is_terminal() || next == TaskUnknown {
            return false;
        }
        if self == TaskUnknown || next.is_terminal() {
            return true;
        }
        match next {
            TaskStaging => self == TaskStaging,
            TaskStarting => matches!(self, TaskStaging | TaskStarting),
            TaskRunning => matches!(
                self,
                TaskStaging | TaskStarting | TaskRunning | TaskUnreachable
            ),
            TaskKilling | TaskUnreachable => true,
            _ => false,
        }
    }

    /// Moves to `next` if the table allows it; otherwise leaves the state as it is.
    pub fn move_to(&mut self, next: TaskState) -> Result<(), IllegalTaskMove> {
        if !self.can_move_to(next) {
            return Err(IllegalTaskMove {
                from: *self,
                to: next,
            });
        }
        *self = next;
        Ok(())
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

    const ALL: [TaskState; 14] = [
        TaskState::TaskStaging,
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskKilling,
        TaskState::TaskFinished,
        TaskState::TaskFailed,
        TaskState::TaskKilled,
        TaskState::TaskError,
        TaskState::TaskLost,
        TaskState::TaskDropped,
        TaskState::TaskUnreachable,
        TaskState::TaskGone,
        TaskState::TaskGoneByOperator,
        TaskState::TaskUnknown,
    ];

    #[test]
    fn a_task_goes_forward_and_an_ended_task_never_moves() {
        use TaskState::*;
        for (from, to) in [
            (TaskStaging, TaskStarting),
            (TaskStarting, TaskRunning),
            (TaskRunning, TaskRunning),
            (TaskRunning, TaskKilling),
            (TaskKilling, TaskKilled),
            (TaskRunning, TaskUnreachable),
            (TaskUnreachable, TaskRunning),
            (TaskUnknown, TaskRunning),
            (TaskStaging, TaskFailed),
        ] {
            assert!(from.can_move_to(to), "{from:?} -> {to:?}");
        }
        for (from, to) in [
            (TaskRunning, TaskStaging),
            (TaskRunning, TaskStarting),
            (TaskKilling, TaskRunning),
            (TaskRunning, TaskUnknown),
        ] {
            assert!(!from.can_move_to(to), "{from:?} -> {to:?}");
        }
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(!from.can_move_to(to), "{from:?} ended; {to:?} refused");
            }
        }
    }

    #[test]
    fn a_refused_move_leaves_the_state_and_says_why() {
        let mut state = TaskState::TaskFinished;
        let err = state.move_to(TaskState::TaskRunning).unwrap_err();
        assert_eq!(state, TaskState::TaskFinished);
        assert_eq!(
            err.to_string(),
            "a task in TASK_FINISHED cannot move to TASK_RUNNING"
        );
        let mut state = TaskState::TaskStaging;
        state.move_to(TaskState::TaskRunning).unwrap();
        assert_eq!(state, TaskState::TaskRunning);
    }
}
