//! `omega-service`: the Omega paper's slow, picky service scheduler. Each job is a gang of
//! long-running tasks that must all start together, one per distinct value of an attribute
//! (one per rack, say, or per machine), only on agents whose attributes match. Deciding a job
//! takes `decision_time`; the decision is made on the copy of the cell as it stood when
//! deciding began and committed all-or-nothing when the time is up, so the cell may have moved
//! on meanwhile — which is exactly where conflicts come from. A conflicted job is decided
//! again, from scratch.
//!
//! Where several agents would do, the scheduler prefers the most reliable ones when given a
//! machine record (see [`OmegaServiceSpec::reliability`]), leaving flaky machines to batch
//! work.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use protos::omega::{
    CellAgent, CommitMode, ConflictMode, Outcome, Placement, TransactionResultMessage,
};
use protos::v1::{AgentId, CommandInfo, TaskId, TaskInfo, TaskState, TaskStatus};
use protos::IdText;
use resources::Resources;
use tokio::sync::{mpsc, watch};

use crate::scheduler_driver::{CommitOptions, SchedulerDriver};
use crate::shared_state::{RetryPolicy, SchedulingStats, SharedStateScheduler};

/// How reliable a machine has been, by hostname: higher is better (the default 0 for machines
/// it does not know).
pub type Reliability = Arc<dyn Fn(&str) -> i64 + Send + Sync>;

/// What to run and how to place it.
#[derive(Clone)]
pub struct OmegaServiceSpec {
    /// Prefix of job names (`{prefix}-{job}`; tasks `{prefix}-{job}-{n}`).
    pub job_prefix: String,
    /// How many jobs.
    pub jobs: usize,
    /// Tasks per job, placed together or not at all.
    pub tasks_per_job: usize,
    /// Each task's command (`sh -c`), usually long-running.
    pub command: String,
    /// Resources of each task.
    pub task_resources: Resources,
    /// How long deciding one job takes.
    pub decision_time: Duration,
    /// A job's tasks go on agents with distinct values of this attribute (`""`: distinct
    /// hostnames).
    pub spread_by: String,
    /// Only agents with all of these attributes (name, text value) qualify.
    pub require: Vec<(String, String)>,
    /// The tasks' priority.
    pub priority: i32,
    /// When the cell is full, preempt tasks of lower priority to make room for a gang.
    pub preempt: bool,
    /// Conflict detection (coarse by default: a service scheduler wants the machine it saw).
    pub conflict_mode: ConflictMode,
    /// When to give a job up.
    pub retry: RetryPolicy,
    /// Machine reliability by hostname, if known: more reliable machines are chosen first.
    pub reliability: Option<Reliability>,
}

impl OmegaServiceSpec {
    /// `jobs` jobs of `tasks_per_job` tasks running `command` with `task_resources` each,
    /// spread over distinct machines, deciding each job in `decision_time`.
    pub fn new(
        job_prefix: &str,
        jobs: usize,
        tasks_per_job: usize,
        command: &str,
        task_resources: Resources,
        decision_time: Duration,
    ) -> Self {
        OmegaServiceSpec {
            job_prefix: job_prefix.to_owned(),
            jobs,
            tasks_per_job,
            command: command.to_owned(),
            task_resources,
            decision_time,
            spread_by: String::new(),
            require: Vec::new(),
            priority: 100,
            preempt: true,
            conflict_mode: ConflictMode::Coarse,
            retry: RetryPolicy { max_attempts: 100 },
            reliability: None,
        }
    }
}

/// What the service scheduler reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceEvent {
    /// Every task of a job was committed, on these agents.
    JobPlaced {
        /// The job.
        job: String,
        /// The agents its tasks went to, sorted.
        agents: Vec<String>,
    },
    /// A job was given up.
    JobAbandoned {
        /// The job.
        job: String,
        /// Why.
        why: String,
    },
    /// A task changed state.
    Status {
        /// The task.
        task_id: String,
        /// Its new state.
        state: TaskState,
    },
}

/// The service scheduler.
pub struct OmegaService {
    spec: OmegaServiceSpec,
    queue: VecDeque<usize>,
    attempts: Vec<u32>,
    /// The job being decided, the placements decided for it (none: no room), and the cell's
    /// version when deciding began.
    deciding: Option<(usize, Vec<Placement>, u64)>,
    /// The transaction in flight and its job.
    in_flight: Option<(String, usize)>,
    /// Tasks running, by id, with their job.
    running: BTreeMap<String, usize>,
    stats: watch::Sender<SchedulingStats>,
    events: mpsc::UnboundedSender<ServiceEvent>,
}

const DECIDED: u64 = 1;

impl OmegaService {
    /// A scheduler for `spec` and the receiver of its events.
    pub fn new(spec: OmegaServiceSpec) -> (Self, mpsc::UnboundedReceiver<ServiceEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let n = spec.jobs;
        (
            OmegaService {
                spec,
                queue: (0..n).collect(),
                attempts: vec![0; n],
                deciding: None,
                in_flight: None,
                running: BTreeMap::new(),
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

    /// Jobs neither placed nor abandoned yet.
    pub fn waiting_jobs(&self) -> usize {
        self.queue.len()
            + usize::from(self.deciding.is_some())
            + usize::from(self.in_flight.is_some())
    }

    fn job_name(&self, job: usize) -> String {
        format!("{}-{job}", self.spec.job_prefix)
    }

    /// Starts deciding the next job, if idle and the cell is whole.
    fn start_deciding(&mut self, driver: &mut SchedulerDriver) {
        if self.deciding.is_some() || self.in_flight.is_some() || !driver.cell().is_current() {
            return;
        }
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        self.attempts[job] += 1;
        let placements = self.decide(driver, job);
        let seen = cell_seq(driver);
        self.deciding = Some((job, placements, seen));
        driver.set_timer(self.spec.decision_time, DECIDED);
    }

    /// The job's gang on the copy of the cell as it stands: one task per distinct spread value,
    /// on qualifying agents with room, most reliable first. Empty if the gang does not fit.
    fn decide(&self, driver: &SchedulerDriver, job: usize) -> Vec<Placement> {
        let cell = driver.cell();
        // Agents with room first; with preemption on, then agents where tasks of lower
        // priority hold enough.
        let mut candidates: Vec<(bool, i64, &CellAgent)> = cell
            .agents()
            .filter(|a| self.qualifies(a))
            .filter_map(|a| {
                let free = cell.free(a.agent_id.text());
                let reliability = self.spec.reliability.as_ref().map_or(0, |r| r(&a.hostname));
                if free.contains(&self.spec.task_resources) {
                    return Some((false, reliability, a));
                }
                (self.spec.preempt && self.room_by_preempting(a, free)).then_some((
                    true,
                    reliability,
                    a,
                ))
            })
            .collect();
        // Stable: equally placed agents keep the cell's order.
        candidates.sort_by_key(|(preempting, reliability, _)| {
            (*preempting, std::cmp::Reverse(*reliability))
        });
        let mut used_values = BTreeSet::new();
        let mut placements = Vec::new();
        for (_, _, agent) in candidates {
            if placements.len() == self.spec.tasks_per_job {
                break;
            }
            if !used_values.insert(self.spread_value(agent)) {
                continue;
            }
            let task_id = format!("{}-{}", self.job_name(job), placements.len());
            placements.push(Placement {
                agent_id: Some(AgentId {
                    value: agent.agent_id.text().to_owned(),
                }),
                seen_version: agent.version,
                task: Some(TaskInfo {
                    name: task_id.clone(),
                    task_id: Some(TaskId { value: task_id }),
                    resources: self.spec.task_resources.to_proto(),
                    command: Some(CommandInfo {
                        value: self.spec.command.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                priority: self.spec.priority,
            });
        }
        if placements.len() < self.spec.tasks_per_job {
            return Vec::new();
        }
        placements
    }

    /// Whether `free` and what lower-priority tasks hold on `agent` make room for a task.
    fn room_by_preempting(&self, agent: &CellAgent, mut free: Resources) -> bool {
        for task in agent
            .tasks
            .iter()
            .filter(|t| t.priority < self.spec.priority)
        {
            if let Ok(held) = Resources::from_proto(&task.resources) {
                let _ = free.add(&held);
            }
        }
        free.contains(&self.spec.task_resources)
    }

    fn qualifies(&self, agent: &CellAgent) -> bool {
        self.spec.require.iter().all(|(name, value)| {
            agent
                .attributes
                .iter()
                .any(|a| a.name == *name && attribute_text(a) == *value)
        })
    }

    fn spread_value(&self, agent: &CellAgent) -> String {
        if self.spec.spread_by.is_empty() {
            return agent.hostname.clone();
        }
        agent
            .attributes
            .iter()
            .find(|a| a.name == self.spec.spread_by)
            .map(attribute_text)
            .unwrap_or_default()
    }

    /// Back to the queue, unless it has been tried too often.
    fn retry(&mut self, job: usize, why: &str) {
        if self.spec.retry.may_retry(self.attempts[job]) {
            self.queue.push_back(job);
        } else {
            self.stats.send_modify(|s| s.abandoned += 1);
            let _ = self.events.send(ServiceEvent::JobAbandoned {
                job: self.job_name(job),
                why: format!("after {} attempts: {why}", self.attempts[job]),
            });
        }
    }
}

/// The last version the copy of the cell has seen.
fn cell_seq(driver: &SchedulerDriver) -> u64 {
    driver.cell().position().map_or(0, |p| p.seq)
}

/// An attribute's value as text (Mesos's text or scalar).
fn attribute_text(a: &protos::v1::Attribute) -> String {
    if let Some(t) = &a.text {
        return t.value.clone();
    }
    a.scalar
        .as_ref()
        .map(|s| s.value.to_string())
        .unwrap_or_default()
}

impl SharedStateScheduler for OmegaService {
    fn cell_changed(&mut self, driver: &mut SchedulerDriver) {
        self.start_deciding(driver);
    }

    fn timer(&mut self, driver: &mut SchedulerDriver, token: u64) {
        if token != DECIDED {
            return;
        }
        let Some((job, placements, seen)) = self.deciding.take() else {
            return;
        };
        if placements.is_empty() {
            // No room when deciding began: decide again if the cell changed meanwhile, else
            // once it does.
            self.retry(job, "the gang did not fit");
            if cell_seq(driver) != seen {
                self.start_deciding(driver);
            }
            return;
        }
        let id = driver.commit(
            placements,
            CommitOptions {
                conflict_mode: self.spec.conflict_mode,
                commit_mode: CommitMode::AllOrNothing,
                preempt: self.spec.preempt,
            },
        );
        self.in_flight = Some((id, job));
    }

    fn transaction_result(
        &mut self,
        driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    ) {
        let Some((id, job)) = self.in_flight.take() else {
            return;
        };
        if id != result.transaction_id {
            self.in_flight = Some((id, job));
            return;
        }
        self.stats.send_modify(|s| s.transactions += 1);
        let committed = result.error.is_empty()
            && result
                .results
                .iter()
                .all(|r| matches!(r.outcome(), Outcome::Committed | Outcome::Duplicate));
        if committed {
            let placed = result.results.len() as u64;
            self.stats.send_modify(|s| s.committed += placed);
            let mut agents = Vec::new();
            for r in &result.results {
                self.running.insert(r.task_id.text().to_owned(), job);
            }
            for agent in &result.agents {
                agents.push(agent.agent_id.text().to_owned());
            }
            let _ = self.events.send(ServiceEvent::JobPlaced {
                job: self.job_name(job),
                agents,
            });
        } else {
            self.stats.send_modify(|s| {
                s.conflicted_transactions += 1;
                s.conflicts += 1;
            });
            let why = if result.error.is_empty() {
                result
                    .results
                    .iter()
                    .find(|r| r.outcome() != Outcome::Aborted && r.outcome() != Outcome::Committed)
                    .map(|r| r.message.clone())
                    .unwrap_or_default()
            } else {
                result.error.clone()
            };
            self.retry(job, &why);
        }
        self.start_deciding(driver);
    }

    fn status_update(&mut self, _driver: &mut SchedulerDriver, status: &TaskStatus) {
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let task_id = status.task_id.text().to_owned();
        if state.is_terminal() {
            self.running.remove(&task_id);
        }
        let _ = self.events.send(ServiceEvent::Status { task_id, state });
    }
}
