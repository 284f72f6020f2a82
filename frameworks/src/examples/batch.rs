//! `batch`: runs N shell commands once each, as command tasks, and reports every state change
//! (what `keelctl execute` streams). The job ends when every task has ended; it succeeded if
//! every task FINISHED. A task that never ran (its offer gone, or its launch lost on the way
//! to its agent, as the agent says when it comes back) is launched again. After a
//! re-registration (a master failover) it reconciles every task it believes live, so that a
//! launch the failed master lost is heard of too.

use protos::IdText;
use std::collections::VecDeque;

use protos::v1::task_status::Reason;
use protos::v1::{CommandInfo, Filters, Offer, TaskId, TaskInfo, TaskState, TaskStatus};
use resources::Resources;
use tokio::sync::mpsc;

use crate::agent_rest::RestingAgents;
use crate::offer_packing::launch_packed;
use crate::reconciliation::{LiveTasks, Reconciler};
use crate::scheduler::Scheduler;
use crate::scheduler_driver::SchedulerDriver;

/// What to run.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    /// Prefix of the task ids (`{prefix}-{n}`).
    pub task_prefix: String,
    /// One task per command (`sh -c`).
    pub commands: Vec<String>,
    /// Resources of each task.
    pub task_resources: Resources,
}

/// One task's end.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// The task.
    pub task_id: String,
    /// Its terminal state.
    pub state: TaskState,
    /// What the agent or master said.
    pub message: String,
}

/// What the batch scheduler reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchEvent {
    /// A task changed state.
    Status {
        /// The task.
        task_id: String,
        /// Its new state.
        state: TaskState,
        /// The agent it runs on.
        agent: String,
        /// The update's message.
        message: String,
    },
    /// Every task ended.
    Done(Vec<TaskOutcome>),
}

/// The batch scheduler.
pub struct BatchScheduler {
    spec: BatchSpec,
    queue: VecDeque<usize>,
    /// Launched and not ended: the command's index and the agent it went to.
    running: LiveTasks,
    outcomes: Vec<Option<TaskOutcome>>,
    events: mpsc::UnboundedSender<BatchEvent>,
    reconciler: Reconciler,
    /// Agents that could not start a task just now: their offers are declined meanwhile.
    resting: RestingAgents,
}

impl BatchScheduler {
    /// A scheduler for `spec` and the receiver of its events.
    pub fn new(spec: BatchSpec) -> (Self, mpsc::UnboundedReceiver<BatchEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let n = spec.commands.len();
        (
            BatchScheduler {
                spec,
                queue: (0..n).collect(),
                running: LiveTasks::default(),
                outcomes: vec![None; n],
                events,
                reconciler: Reconciler::default(),
                resting: RestingAgents::default(),
            },
            rx,
        )
    }
}

/// Whether a terminal update says the task never started, so launching it again cannot run
/// it twice: its offer was rescinded before the launch arrived (a shared-state commit took it,
/// or its agent left), its agent says the launch never reached it, its agent restarted
/// before the task's executor started (and made sure it never will), or its agent did not
/// start it (it could not record the launch, or runs as many tasks as it may). (A LOST from the
/// master's own reconciliation is not such a proof: the agent may not be back yet.)
pub(crate) fn never_ran(state: TaskState, reason: Reason) -> bool {
    matches!(
        (state, reason),
        (
            TaskState::TaskDropped,
            Reason::InvalidOffers | Reason::AgentRestarted | Reason::ContainerLaunchFailed
        ) | (
            TaskState::TaskLost | TaskState::TaskDropped,
            Reason::TaskUnknown
        )
    )
}

impl Scheduler for BatchScheduler {
    fn reregistered(&mut self, driver: &mut SchedulerDriver, _master: &protos::v1::MasterInfo) {
        self.reconciler.begin(driver, self.running.placements());
    }

    fn timer(&mut self, driver: &mut SchedulerDriver, token: u64) {
        if self.reconciler.timer(driver, token) {
            return;
        }
        if self.resting.timer(token) && !self.queue.is_empty() {
            driver.revive_offers();
        }
    }

    fn registered(
        &mut self,
        driver: &mut SchedulerDriver,
        _id: &protos::v1::FrameworkId,
        _master: &protos::v1::MasterInfo,
    ) {
        if self.queue.is_empty() && self.running.is_empty() {
            let _ = self.events.send(BatchEvent::Done(Vec::new()));
            driver.stop();
        }
    }

    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        for offer in &offers {
            if self.resting.is_resting(offer.agent_id.text()) {
                if let Some(id) = &offer.id {
                    driver.decline_offer(id, Filters::default());
                }
                continue;
            }
            let per_task = self.spec.task_resources.clone();
            let BatchScheduler {
                spec,
                queue,
                running,
                ..
            } = self;
            launch_packed(
                driver,
                offer,
                &per_task,
                || queue.pop_front(),
                |index| {
                    let task_id = format!("{}-{index}", spec.task_prefix);
                    running.insert(task_id.clone(), index, offer.agent_id.text().to_owned());
                    TaskInfo {
                        name: task_id.clone(),
                        task_id: Some(TaskId { value: task_id }),
                        command: Some(CommandInfo {
                            value: spec.commands[index].clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                },
            );
        }
        if self.queue.is_empty() {
            driver.suppress_offers();
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let agent = status.agent_id.text().to_owned();
        let _ = self.events.send(BatchEvent::Status {
            task_id: task_id.clone(),
            state,
            agent,
            message: status.message.clone(),
        });
        self.reconciler.heard(&task_id);
        if !state.is_terminal() {
            return;
        }
        let Some(index) = self.running.take_ended(status) else {
            return;
        };
        if never_ran(state, status.reason()) {
            if status.reason() == Reason::ContainerLaunchFailed {
                self.resting.rest(driver, status.agent_id.text());
            }
            self.queue.push_back(index);
            driver.revive_offers();
            return;
        }
        self.outcomes[index] = Some(TaskOutcome {
            task_id,
            state,
            message: status.message.clone(),
        });
        if self.running.is_empty() && self.queue.is_empty() {
            let outcomes = self.outcomes.iter().flatten().cloned().collect();
            let _ = self.events.send(BatchEvent::Done(outcomes));
            driver.stop();
        }
    }
}
