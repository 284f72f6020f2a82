//! A scheduler for launch-rate benchmarks: fills every offer with tiny command tasks until
//! `target` have been launched, and reports how many have finished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use frameworks::{Scheduler, SchedulerDriver};
use protos::v1::{CommandInfo, Filters, Offer, TaskId, TaskInfo, TaskState, TaskStatus};
use resources::Resources;

/// Tasks put in one accept, so one launch message stays small.
pub const MAX_TASKS_PER_ACCEPT: usize = 1000;

/// How long offers the scheduler cannot use are refused.
pub const UNUSED_REFUSE_SECONDS: f64 = 3600.0;

/// Counts shared with the benchmark's driver loop.
#[derive(Debug, Default)]
pub struct LaunchCounters {
    /// Tasks launched.
    pub launched: AtomicU64,
    /// Tasks reported RUNNING.
    pub running: AtomicU64,
    /// Tasks reported FINISHED.
    pub finished: AtomicU64,
    /// Tasks that ended otherwise.
    pub failed: AtomicU64,
}

/// The benchmark's tasks, handed out offer by offer until `target` are launched: tiny command
/// tasks of `task_resources`, at most [`MAX_TASKS_PER_ACCEPT`] per offer. Shared by the driver
/// scheduler and the HTTP one, so both launch the very same tasks.
#[derive(Debug)]
pub struct TaskBatches {
    target: u64,
    task_resources: Resources,
    next: u64,
}

impl TaskBatches {
    /// Batches for `target` tasks.
    pub fn new(target: u64, task_resources: Resources) -> TaskBatches {
        TaskBatches {
            target,
            task_resources,
            next: 0,
        }
    }

    /// The tasks `offer` takes (none if it is too small or all are launched).
    pub fn fill(&mut self, offer: &Offer) -> Vec<TaskInfo> {
        let mut left = Resources::from_proto(&offer.resources).unwrap_or_default();
        let mut tasks = Vec::new();
        while self.next < self.target && tasks.len() < MAX_TASKS_PER_ACCEPT {
            let Some(rest) = left.checked_sub(&self.task_resources) else {
                break;
            };
            left = rest;
            self.next += 1;
            tasks.push(TaskInfo {
                name: String::new(),
                task_id: Some(TaskId {
                    value: format!("t{}", self.next),
                }),
                agent_id: offer.agent_id.clone(),
                resources: self.task_resources.to_proto(),
                command: Some(CommandInfo {
                    value: "true".into(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        tasks
    }

    /// Whether every task is launched.
    pub fn all_launched(&self) -> bool {
        self.next == self.target
    }
}

/// Launches `target` tasks of `task_resources` as fast as offers allow.
pub struct LaunchScheduler {
    target: u64,
    batches: TaskBatches,
    counters: Arc<LaunchCounters>,
    suppressed: bool,
}

impl LaunchScheduler {
    /// A scheduler for `target` tasks.
    pub fn new(target: u64, task_resources: Resources, counters: Arc<LaunchCounters>) -> Self {
        LaunchScheduler {
            target,
            batches: TaskBatches::new(target, task_resources),
            counters,
            suppressed: false,
        }
    }
}

impl Scheduler for LaunchScheduler {
    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        let mut unused = Vec::new();
        for offer in offers {
            let Some(id) = offer.id.clone() else { continue };
            let tasks = self.batches.fill(&offer);
            if tasks.is_empty() {
                unused.push(id);
                continue;
            }
            self.counters
                .launched
                .fetch_add(tasks.len() as u64, Ordering::Relaxed);
            // What the tasks leave of the agent may come straight back.
            driver.launch_tasks(
                &[id],
                tasks,
                Filters {
                    refuse_seconds: Some(0.0),
                },
            );
        }
        // Offers it cannot use: not again for an hour, in one message.
        driver.decline_offers(
            &unused,
            Filters {
                refuse_seconds: Some(UNUSED_REFUSE_SECONDS),
            },
        );
        if self.batches.all_launched() && !self.suppressed {
            // Everything is launched: no more offers, or a large cluster keeps offering (and
            // the scheduler keeps declining) agent after agent.
            self.suppressed = true;
            driver.suppress_offers();
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        match status.state() {
            TaskState::TaskRunning => {
                self.counters.running.fetch_add(1, Ordering::Relaxed);
            }
            TaskState::TaskFinished => {
                let done = self.counters.finished.fetch_add(1, Ordering::Relaxed) + 1;
                if done == self.target {
                    driver.stop();
                }
            }
            s if s.is_terminal() => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}
