//! Explicit reconciliation after a re-registration, for schedulers to keep: ask the master
//! about every task the scheduler believes live, then ask again — 1 s, doubling to a minute —
//! about those not heard of since, until each has been (Mesos's advice to frameworks).
//!
//! Why: a launch that reached its agent between registrations was not run there, and once the
//! master that sent it has failed, no one else knows of it; only an explicit question (task
//! and agent) makes its agent answer LOST (`REASON_TASK_UNKNOWN`). The new master stays silent
//! about a task on an agent it expects back but that has not re-registered yet, so one
//! question is not enough.
//!
//! [`LiveTasks`] keeps what a scheduler launched and has not seen end, with each task's agent:
//! what it asks about, and how it tells a late copy of an earlier placement's end (one that
//! never ran, placed again elsewhere) from the end of the placement live now.
//!
//! ```
//! use frameworks::reconciliation::{LiveTasks, Reconciler};
//! use protos::v1::{AgentId, TaskId, TaskStatus};
//!
//! let mut reconciler = Reconciler::default();
//! assert!(!reconciler.is_asking());
//! // In `Scheduler::reregistered`: reconciler.begin(driver, live.placements());
//! // in `status_update`: reconciler.heard(task id);
//! // in `timer`: if reconciler.timer(driver, token) { return }
//! reconciler.heard("t1");
//!
//! let mut live = LiveTasks::default();
//! live.insert("t1".into(), 0, "agent-b".into());
//! let end_on = |agent: &str| TaskStatus {
//!     task_id: Some(TaskId { value: "t1".into() }),
//!     agent_id: Some(AgentId { value: agent.into() }),
//!     ..Default::default()
//! };
//! assert_eq!(live.take_ended(&end_on("agent-a")), None, "a late copy about agent-a");
//! assert_eq!(live.take_ended(&end_on("agent-b")), Some(0));
//! assert!(live.is_empty());
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use protos::v1::{AgentId, TaskId, TaskState, TaskStatus};
use protos::IdText;

use crate::scheduler_driver::SchedulerDriver;

/// The first wait before asking again; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest wait between questions.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Timer tokens of the reconciler carry this bit, so that a scheduler's own timers (tokens
/// below it) never collide with them.
pub const TIMER_TAG: u64 = 1 << 63;

/// Tasks launched and not seen to end: task id → (the scheduler's index of its work, its
/// agent).
#[derive(Debug, Default)]
pub struct LiveTasks(BTreeMap<String, (usize, String)>);

impl LiveTasks {
    /// `task`, doing work `index`, launched on `agent`.
    pub fn insert(&mut self, task: String, index: usize, agent: String) {
        self.0.insert(task, (index, agent));
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every live task with its agent, to reconcile.
    pub fn placements(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0
            .iter()
            .map(|(task, (_, agent))| (task.clone(), agent.clone()))
    }

    /// The index of the task a terminal `status` ends, taken off the live ones; `None` if the
    /// task is not live, or the status comes from another agent than the one it runs on now
    /// (a late copy about an earlier placement). A status that names no agent (the master's
    /// own) counts as the live placement's.
    pub fn take_ended(&mut self, status: &TaskStatus) -> Option<usize> {
        let task = status.task_id.text();
        let agent = status.agent_id.text();
        let (_, on) = self.0.get(task)?;
        if !agent.is_empty() && agent != on {
            return None;
        }
        self.0.remove(task).map(|(index, _)| index)
    }
}

/// The tasks asked about and not heard of since; see the module docs.
#[derive(Debug)]
pub struct Reconciler {
    /// Task id → agent id.
    unanswered: BTreeMap<String, String>,
    backoff: Duration,
    /// Which chain of timers is current: one per [`Reconciler::begin`].
    round: u64,
}

impl Default for Reconciler {
    fn default() -> Self {
        Reconciler {
            unanswered: BTreeMap::new(),
            backoff: BACKOFF_MIN,
            round: 0,
        }
    }
}

impl Reconciler {
    /// Asks about `tasks` (task id, agent id) now and again until each is heard of; replaces
    /// any questions still open from an earlier re-registration.
    pub fn begin(
        &mut self,
        driver: &mut SchedulerDriver,
        tasks: impl IntoIterator<Item = (String, String)>,
    ) {
        self.unanswered = tasks.into_iter().collect();
        self.round += 1;
        self.backoff = BACKOFF_MIN;
        self.ask(driver);
    }

    /// A status update about `task` arrived: it is answered.
    pub fn heard(&mut self, task: &str) {
        self.unanswered.remove(task);
    }

    /// Whether questions are still open.
    pub fn is_asking(&self) -> bool {
        !self.unanswered.is_empty()
    }

    /// A timer fired: true if it was the reconciler's (it asked again if it had to), false if
    /// it is the scheduler's own.
    pub fn timer(&mut self, driver: &mut SchedulerDriver, token: u64) -> bool {
        if token & TIMER_TAG == 0 {
            return false;
        }
        if token == TIMER_TAG | self.round {
            self.ask(driver);
        }
        true
    }

    fn ask(&mut self, driver: &mut SchedulerDriver) {
        if self.unanswered.is_empty() {
            return;
        }
        let statuses = self
            .unanswered
            .iter()
            .map(|(task, agent)| TaskStatus {
                task_id: Some(TaskId {
                    value: task.clone(),
                }),
                agent_id: Some(AgentId {
                    value: agent.clone(),
                }),
                state: TaskState::TaskRunning as i32,
                ..Default::default()
            })
            .collect();
        driver.reconcile_tasks(statuses);
        driver.set_timer(self.backoff, TIMER_TAG | self.round);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}
