//! The simulator's shared-state batch scheduler run for real: a [`SharedStateScheduler`] that
//! takes a stream of `keel_sim` jobs at their arrival times and places them as the simulator's
//! scheduler does — one job at a time, randomized first fit on a snapshot of its copy of the
//! cell, a decision that takes `per_job + per_task × tasks` seconds (a timer), then one
//! incremental transaction; a job whose placements conflict is tried again at once with what
//! is left, up to `max_attempts`, and a job that finds no room waits for the cell to change.
//! Its tasks are `sleep DURATION`, which emulated agents run for that long. What it did is
//! kept in a [`StreamRecord`] shared with the caller, in seconds from the common start.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frameworks::{CommitOptions, SchedulerDriver, SharedStateScheduler};
use keel_sim::rng::Rng;
use keel_sim::simulation::DecisionTime;
use keel_sim::workload::Job;
use protos::omega::{CommitMode, ConflictMode, Outcome, Placement, TransactionResultMessage};
use protos::v1::{AgentId, CommandInfo, TaskId, TaskInfo, TaskStatus};
use protos::IdText;
use resources::Resources;

/// The timer token of a decision's end; arrivals use the job's index in the stream.
const DECIDED: u64 = u64::MAX;

/// What one scheduler did, in seconds from the common start.
#[derive(Debug, Default, Clone)]
pub struct StreamRecord {
    /// When each job (by index in the stream) had all its tasks committed.
    pub done_at: Vec<Option<f64>>,
    /// Jobs given up after `max_attempts` conflicted transactions.
    pub abandoned: Vec<bool>,
    /// Seconds spent deciding.
    pub busy: f64,
    /// Transactions answered.
    pub transactions: u64,
    /// Transactions with at least one conflicted placement.
    pub conflicted: u64,
    /// Placements the master refused outright (invalid, unknown agent): a fault of the run,
    /// not a conflict; zero in a sound run.
    pub refused: u64,
    /// The cell changed before the start: the scheduler is ready.
    pub ready: bool,
}

/// A job in the queue, with the tasks still to place.
#[derive(Debug, Clone, Copy)]
struct Pending {
    job: usize,
    remaining: usize,
    attempts: u32,
}

/// A decision under way (the timer runs) or committed (the transaction is out).
#[derive(Debug)]
struct Decision {
    pending: Pending,
    /// (agent id, version seen) per task.
    placements: Vec<(String, u64)>,
    took: f64,
    transaction: Option<String>,
}

/// The scheduler; see the module docs.
pub struct JobStream {
    jobs: Vec<Job>,
    resources: Vec<Resources>,
    decision: DecisionTime,
    conflicts: ConflictMode,
    max_attempts: u32,
    rng: Rng,
    start: Option<Instant>,
    queue: VecDeque<Pending>,
    deciding: Option<Decision>,
    next_task: u64,
    record: Arc<Mutex<StreamRecord>>,
}

impl JobStream {
    /// A scheduler for `jobs` (in order of arrival; their ids are ignored), deciding in
    /// `decision` time with `conflicts` detection; placement's random starts come from `rng`.
    /// Nothing happens until [`JobStream::begin`].
    pub fn new(
        jobs: Vec<Job>,
        decision: DecisionTime,
        conflicts: ConflictMode,
        max_attempts: u32,
        rng: Rng,
    ) -> (Self, Arc<Mutex<StreamRecord>>) {
        let record = Arc::new(Mutex::new(StreamRecord {
            done_at: vec![None; jobs.len()],
            abandoned: vec![false; jobs.len()],
            ..Default::default()
        }));
        let resources = jobs.iter().map(job_resources).collect();
        let scheduler = JobStream {
            jobs,
            resources,
            decision,
            conflicts,
            max_attempts,
            rng,
            start: None,
            queue: VecDeque::new(),
            deciding: None,
            next_task: 0,
            record: record.clone(),
        };
        (scheduler, record)
    }

    /// Starts the clock at `start`: each job arrives at `start` plus its arrival time.
    pub fn begin(&mut self, driver: &mut SchedulerDriver, start: Instant) {
        self.start = Some(start);
        let now = Instant::now();
        for (i, job) in self.jobs.iter().enumerate() {
            let at = start + Duration::from_secs_f64(job.arrival);
            driver.set_timer(at.saturating_duration_since(now), i as u64);
        }
    }

    fn now(&self) -> f64 {
        self.start.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    fn record(&self) -> std::sync::MutexGuard<'_, StreamRecord> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts deciding the first queued job that has room, if no decision is under way; a
    /// job without room goes to the back.
    fn next(&mut self, driver: &mut SchedulerDriver) {
        if self.deciding.is_some() || !driver.cell().is_current() {
            return;
        }
        for _ in 0..self.queue.len() {
            let Some(pending) = self.queue.pop_front() else {
                return;
            };
            if let Some(placements) = self.place(driver, &pending) {
                let took = self.decision.of(pending.remaining);
                driver.set_timer(Duration::from_secs_f64(took), DECIDED);
                self.deciding = Some(Decision {
                    pending,
                    placements,
                    took,
                    transaction: None,
                });
                return;
            }
            self.queue.push_back(pending);
        }
    }

    /// Randomized first fit of the job's remaining tasks on the copy as it stands; `None`
    /// if nothing fits.
    fn place(&mut self, driver: &SchedulerDriver, pending: &Pending) -> Option<Vec<(String, u64)>> {
        let need = &self.resources[pending.job];
        let cell = driver.cell();
        let mut candidates: Vec<(String, u64, Resources)> = cell
            .agents()
            .filter_map(|a| {
                let id = a.agent_id.text();
                let free = cell.free(id);
                free.contains(need)
                    .then(|| (id.to_owned(), a.version, free))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let start = self.rng.below(candidates.len());
        let n = candidates.len();
        let mut placements = Vec::new();
        for k in 0..n {
            let (id, version, free) = &mut candidates[(start + k) % n];
            while placements.len() < pending.remaining && free.try_sub(need) {
                placements.push((id.clone(), *version));
            }
            if placements.len() == pending.remaining {
                break;
            }
        }
        Some(placements)
    }

    /// The decision's time is up: its placements go to the master as one transaction.
    fn commit(&mut self, driver: &mut SchedulerDriver) {
        let Some(decision) = self.deciding.as_mut().filter(|d| d.transaction.is_none()) else {
            return;
        };
        let job = &self.jobs[decision.pending.job];
        let resources = self.resources[decision.pending.job].to_proto();
        let command = format!("sleep {:.3}", job.duration);
        let mut placements = Vec::with_capacity(decision.placements.len());
        for (agent, version) in &decision.placements {
            self.next_task += 1;
            let id = format!("j{}-{}", decision.pending.job, self.next_task);
            placements.push(Placement {
                agent_id: Some(AgentId {
                    value: agent.clone(),
                }),
                seen_version: *version,
                task: Some(TaskInfo {
                    name: id.clone(),
                    task_id: Some(TaskId { value: id }),
                    resources: resources.clone(),
                    command: Some(CommandInfo {
                        value: command.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                priority: 0,
            });
        }
        let options = CommitOptions {
            conflict_mode: self.conflicts,
            commit_mode: CommitMode::Incremental,
            preempt: false,
        };
        decision.transaction = Some(driver.commit(placements, options));
    }
}

/// A job's task as resources: CPUs and memory (the simulator's GiB in MiB).
pub fn job_resources(job: &Job) -> Resources {
    format!("cpus:{:.3};mem:{:.0}", job.cpus, job.mem * 1024.0)
        .parse()
        .unwrap_or_default()
}

impl SharedStateScheduler for JobStream {
    fn cell_changed(&mut self, driver: &mut SchedulerDriver) {
        if self.start.is_none() {
            self.record().ready = driver.cell().is_current();
            return;
        }
        self.next(driver);
    }

    fn timer(&mut self, driver: &mut SchedulerDriver, token: u64) {
        if token == DECIDED {
            self.commit(driver);
            return;
        }
        let job = token as usize;
        if let Some(j) = self.jobs.get(job) {
            self.queue.push_back(Pending {
                job,
                remaining: j.tasks,
                attempts: 0,
            });
            self.next(driver);
        }
    }

    fn transaction_result(
        &mut self,
        driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    ) {
        let ours = self
            .deciding
            .as_ref()
            .is_some_and(|d| d.transaction.as_deref() == Some(&result.transaction_id));
        let Some(Decision {
            mut pending, took, ..
        }) = ours.then(|| self.deciding.take()).flatten()
        else {
            return;
        };
        let committed = result
            .results
            .iter()
            .filter(|r| matches!(r.outcome(), Outcome::Committed | Outcome::Duplicate))
            .count();
        let refused = result
            .results
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome(),
                    Outcome::Invalid | Outcome::Refused | Outcome::Unspecified
                )
            })
            .count();
        let conflicted = committed < result.results.len() || !result.error.is_empty();
        let now = self.now();
        pending.remaining -= committed.min(pending.remaining);
        {
            let mut record = self.record();
            record.busy += took;
            record.transactions += 1;
            record.refused += refused as u64;
            if conflicted {
                record.conflicted += 1;
            }
        }
        if conflicted {
            pending.attempts += 1;
        }
        if pending.remaining == 0 {
            self.record().done_at[pending.job].get_or_insert(now);
        } else if pending.attempts >= self.max_attempts {
            self.record().abandoned[pending.job] = true;
        } else {
            self.queue.push_front(pending);
        }
        self.next(driver);
    }

    fn status_update(&mut self, _driver: &mut SchedulerDriver, _status: &TaskStatus) {
        // A task's end shows in the cell, which is what placement reads.
    }
}
