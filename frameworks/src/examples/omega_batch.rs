//! `omega-batch`: the Omega paper's fast batch scheduler. Many small tasks of one size, placed
//! first-fit on the scheduler's copy of the cell from a starting agent of its own (so that
//! several instances in parallel spread out), committed incrementally: what fits commits, what
//! conflicts goes back to the queue and is placed again on the refreshed copy. One transaction
//! in flight at a time by default, as the paper's scheduler: it is busy while it waits.
//!
//! After re-registering (a master failover) it asks the master about every task it believes
//! live, again with backoff until each is answered: a launch the failed master sent to an
//! agent between registrations never ran, and only that question brings back its end (LOST,
//! `REASON_TASK_UNKNOWN`, from the agent). A task whose end proves it never ran is placed
//! again.

use std::collections::{BTreeMap, VecDeque};

use protos::omega::{CommitMode, ConflictMode, Outcome, Placement, TransactionResultMessage};
use protos::v1::task_status::Reason;
use protos::v1::{AgentId, CommandInfo, TaskId, TaskInfo, TaskState, TaskStatus};
use protos::IdText;
use resources::Resources;
use tokio::sync::{mpsc, watch};

use crate::agent_rest::RestingAgents;
use crate::examples::batch::{never_ran, BatchEvent, TaskOutcome};
use crate::reconciliation::{LiveTasks, Reconciler};
use crate::scheduler_driver::{CommitOptions, SchedulerDriver};
use crate::shared_state::{RetryPolicy, SchedulingStats, SharedStateScheduler};

/// What to run and how to place it.
#[derive(Debug, Clone)]
pub struct OmegaBatchSpec {
    /// Prefix of the task ids (`{prefix}-{n}`).
    pub task_prefix: String,
    /// How many tasks.
    pub tasks: usize,
    /// Each task's command (`sh -c`).
    pub command: String,
    /// Resources of each task.
    pub task_resources: Resources,
    /// Where placement starts in the cell, as a fraction of its agents (parallel instances
    /// choose different ones).
    pub start_at: f64,
    /// Placements per transaction at most.
    pub max_per_transaction: usize,
    /// Coarse or fine-grained conflict detection.
    pub conflict_mode: ConflictMode,
    /// When to give a task up.
    pub retry: RetryPolicy,
    /// Transactions in flight at once (1, the paper's scheduler, decides again only once the
    /// last decision is answered; more pipeline decisions, each on the copy less what those
    /// in flight hold).
    pub max_in_flight: usize,
}

impl OmegaBatchSpec {
    /// `tasks` tasks running `command` with `task_resources` each, fine-grained conflicts,
    /// up to 1,000 placements per transaction.
    pub fn new(task_prefix: &str, tasks: usize, command: &str, task_resources: Resources) -> Self {
        OmegaBatchSpec {
            task_prefix: task_prefix.to_owned(),
            tasks,
            command: command.to_owned(),
            task_resources,
            start_at: 0.0,
            max_per_transaction: 1000,
            conflict_mode: ConflictMode::FineGrained,
            retry: RetryPolicy::default(),
            max_in_flight: 1,
        }
    }
}

/// The batch scheduler.
pub struct OmegaBatch {
    spec: OmegaBatchSpec,
    queue: VecDeque<usize>,
    attempts: Vec<u32>,
    /// Transactions in flight and the tasks each places, with their agents.
    in_flight: BTreeMap<String, Vec<(usize, String)>>,
    /// Tasks committed and not ended, by id: their index and agent.
    running: LiveTasks,
    /// Reconciliation after a re-registration.
    reconciler: Reconciler,
    /// Agents that could not start a task just now: nothing is placed there meanwhile.
    resting: RestingAgents,
    outcomes: Vec<Option<TaskOutcome>>,
    /// How many of `outcomes` are set.
    ended: usize,
    stats: watch::Sender<SchedulingStats>,
    events: mpsc::UnboundedSender<BatchEvent>,
}

impl OmegaBatch {
    /// A scheduler for `spec` and the receiver of its events (every state change, then
    /// `Done` with every task's end; an abandoned task ends `TASK_DROPPED`).
    pub fn new(spec: OmegaBatchSpec) -> (Self, mpsc::UnboundedReceiver<BatchEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let n = spec.tasks;
        (
            OmegaBatch {
                spec,
                queue: (0..n).collect(),
                attempts: vec![0; n],
                in_flight: BTreeMap::new(),
                running: LiveTasks::default(),
                reconciler: Reconciler::default(),
                resting: RestingAgents::default(),
                outcomes: vec![None; n],
                ended: 0,
                stats: watch::Sender::new(SchedulingStats::default()),
                events,
            },
            rx,
        )
    }

    /// What it has done so far, kept up to date.
    pub fn stats(&self) -> watch::Receiver<SchedulingStats> {
        self.stats.subscribe()
    }

    fn task_id(&self, index: usize) -> String {
        format!("{}-{index}", self.spec.task_prefix)
    }

    fn task(&self, index: usize) -> TaskInfo {
        let id = self.task_id(index);
        TaskInfo {
            name: id.clone(),
            task_id: Some(TaskId { value: id }),
            resources: self.spec.task_resources.to_proto(),
            command: Some(CommandInfo {
                value: self.spec.command.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Commits transactions until as many are in flight as allowed or nothing more fits.
    fn fill(&mut self, driver: &mut SchedulerDriver) {
        while self.place(driver) {}
    }

    /// Places what the queue holds, first-fit from this scheduler's starting agent, in one
    /// transaction; false if none was sent.
    fn place(&mut self, driver: &mut SchedulerDriver) -> bool {
        if self.in_flight.len() >= self.spec.max_in_flight.max(1)
            || self.queue.is_empty()
            || !driver.cell().is_current()
        {
            return false;
        }
        let cell = driver.cell();
        let agents: Vec<_> = cell.agents().collect();
        if agents.is_empty() {
            return false;
        }
        let start = ((self.spec.start_at.clamp(0.0, 1.0) * agents.len() as f64) as usize)
            .min(agents.len() - 1);
        let mut placements = Vec::new();
        let mut placed = Vec::new();
        for k in 0..agents.len() {
            if self.queue.is_empty() || placements.len() >= self.spec.max_per_transaction {
                break;
            }
            let agent = agents[(start + k) % agents.len()];
            if self.resting.is_resting(agent.agent_id.text()) {
                continue;
            }
            let mut free = cell.free(agent.agent_id.text());
            while placements.len() < self.spec.max_per_transaction
                && free.try_sub(&self.spec.task_resources)
            {
                let Some(index) = self.queue.pop_front() else {
                    break;
                };
                self.attempts[index] += 1;
                placements.push(Placement {
                    agent_id: Some(AgentId {
                        value: agent.agent_id.text().to_owned(),
                    }),
                    seen_version: agent.version,
                    task: Some(self.task(index)),
                    priority: 0,
                });
                placed.push((index, agent.agent_id.text().to_owned()));
            }
        }
        if placements.is_empty() {
            return false;
        }
        let id = driver.commit(
            placements,
            CommitOptions {
                conflict_mode: self.spec.conflict_mode,
                commit_mode: CommitMode::Incremental,
                preempt: false,
            },
        );
        self.in_flight.insert(id, placed);
        true
    }

    /// Sends `Done` and stops once every task has ended.
    fn finish_if_done(&mut self, driver: &mut SchedulerDriver) {
        if self.ended == self.outcomes.len() {
            let outcomes = self.outcomes.iter().flatten().cloned().collect();
            let _ = self.events.send(BatchEvent::Done(outcomes));
            driver.stop();
        }
    }

    /// A task will not run: it ends with `state` and `message`.
    fn give_up(&mut self, index: usize, state: TaskState, message: String) {
        let task_id = self.task_id(index);
        let _ = self.events.send(BatchEvent::Status {
            task_id: task_id.clone(),
            state,
            agent: String::new(),
            message: message.clone(),
        });
        self.ended += 1;
        self.outcomes[index] = Some(TaskOutcome {
            task_id,
            state,
            message,
        });
    }

    /// Back to the queue, unless it has been tried too often.
    fn retry(&mut self, index: usize, why: &str) {
        if self.spec.retry.may_retry(self.attempts[index]) {
            self.queue.push_back(index);
        } else {
            self.stats.send_modify(|s| s.abandoned += 1);
            self.give_up(
                index,
                TaskState::TaskDropped,
                format!("abandoned after {} attempts: {why}", self.attempts[index]),
            );
        }
    }
}

impl SharedStateScheduler for OmegaBatch {
    fn reregistered(&mut self, driver: &mut SchedulerDriver) {
        self.reconciler.begin(driver, self.running.placements());
    }

    fn timer(&mut self, driver: &mut SchedulerDriver, token: u64) {
        if self.reconciler.timer(driver, token) {
            return;
        }
        if self.resting.timer(token) {
            self.fill(driver);
        }
    }

    fn cell_changed(&mut self, driver: &mut SchedulerDriver) {
        self.fill(driver);
    }

    fn transaction_result(
        &mut self,
        driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    ) {
        let Some(placed) = self.in_flight.remove(&result.transaction_id) else {
            return;
        };
        let mut stats = SchedulingStats {
            transactions: 1,
            ..Default::default()
        };
        if !result.error.is_empty() {
            for (index, _) in placed {
                self.retry(index, &result.error);
            }
        } else {
            let mut conflicted = false;
            for ((index, agent), r) in placed.into_iter().zip(&result.results) {
                match r.outcome() {
                    Outcome::Committed | Outcome::Duplicate => {
                        stats.committed += 1;
                        self.running.insert(self.task_id(index), index, agent);
                    }
                    Outcome::ConflictVersion
                    | Outcome::ConflictResources
                    | Outcome::Aborted
                    | Outcome::Preempting
                    | Outcome::AgentUnavailable => {
                        conflicted = true;
                        stats.conflicts += 1;
                        self.retry(index, &r.message);
                    }
                    Outcome::Invalid | Outcome::Refused | Outcome::Unspecified => {
                        self.give_up(index, TaskState::TaskError, r.message.clone());
                    }
                }
            }
            if conflicted {
                stats.conflicted_transactions += 1;
            }
        }
        self.stats.send_modify(|s| s.add(&stats));
        self.finish_if_done(driver);
        self.fill(driver);
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let _ = self.events.send(BatchEvent::Status {
            task_id: task_id.clone(),
            state,
            agent: status.agent_id.text().to_owned(),
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
            self.retry(index, &status.message);
            self.finish_if_done(driver);
            self.fill(driver);
            return;
        }
        self.ended += 1;
        self.outcomes[index] = Some(TaskOutcome {
            task_id,
            state,
            message: status.message.clone(),
        });
        self.finish_if_done(driver);
    }
}
