//! `particles` (a classic Mesos course exercise): where do particles land? Each particle flies a parabola
//! `y = a·x² + b·x + c` (a < 0) and lands at its right zero; the framework counts how many land
//! on the negative and on the positive half-axis.
//!
//! The scheduler generates the cloud from a seed (vertex form: apex at `(x0, h)`, so the right
//! zero is `x0 + sqrt(-h/a)` and the expected totals are known), cuts it into batches and
//! launches one task per batch on a custom executor (`ParticleBatch` in `TaskInfo.data`). The
//! executor solves each trajectory's quadratic and finishes the task with `LandingCounts` in
//! its status's data. The scheduler totals the counts, relaunches batches whose task failed or
//! was lost (up to [`MAX_ATTEMPTS_PER_BATCH`]), and stops once every batch is counted.

use protos::IdText;
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use prost::Message;
use protos::examples::{LandingCounts, ParticleBatch, Trajectory};
use protos::v1::{
    CommandInfo, ExecutorId, ExecutorInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus,
};
use resources::Resources;
use tokio::sync::watch;

use crate::executor::Executor;
use crate::executor_driver::ExecutorDriver;
use crate::offer_packing::launch_packed;
use crate::scheduler::Scheduler;
use crate::scheduler_driver::SchedulerDriver;

/// Times one batch is tried before the framework gives up on the job.
pub const MAX_ATTEMPTS_PER_BATCH: u32 = 3;
/// The executor id the framework uses on every agent.
pub const EXECUTOR_ID: &str = "particles-executor";

/// What to compute and with what.
#[derive(Debug, Clone)]
pub struct ParticlesConfig {
    /// Particles in the cloud.
    pub particles: u64,
    /// Particles per task.
    pub batch_size: u64,
    /// Seed of the cloud, so a run can be repeated.
    pub seed: u64,
    /// Resources of each task.
    pub task_resources: Resources,
    /// How agents start the executor (this crate's [`ParticlesExecutor`] behind
    /// [`crate::executor_driver::run`]).
    pub executor_command: CommandInfo,
}

/// Where the job stands; published after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticlesProgress {
    /// Batches in the job.
    pub batches: u64,
    /// Batches counted.
    pub done: u64,
    /// Tasks running now.
    pub running: u64,
    /// Task attempts that failed or were lost (and were retried).
    pub failed_attempts: u64,
    /// Particles landed left of 0, over the counted batches.
    pub negative: u64,
    /// Particles landed at or right of 0, over the counted batches.
    pub positive: u64,
    /// The expected totals (negative, positive), from the cloud's construction.
    pub expected: (u64, u64),
    /// The job ended: every batch counted, or one failed too often.
    pub finished: bool,
    /// Why the job gave up, if it did.
    pub error: Option<String>,
}

/// The particles scheduler.
pub struct ParticlesScheduler {
    config: ParticlesConfig,
    queue: VecDeque<ParticleBatch>,
    running: BTreeMap<String, ParticleBatch>,
    attempts: BTreeMap<u64, u32>,
    next_task: u64,
    progress: ParticlesProgress,
    publish: watch::Sender<ParticlesProgress>,
}

impl ParticlesScheduler {
    /// A scheduler for `config` and the receiver of its progress.
    pub fn new(config: ParticlesConfig) -> (Self, watch::Receiver<ParticlesProgress>) {
        let (batches, expected) =
            make_cloud(config.particles, config.batch_size.max(1), config.seed);
        let progress = ParticlesProgress {
            batches: batches.len() as u64,
            expected,
            finished: batches.is_empty(),
            ..Default::default()
        };
        let (publish, rx) = watch::channel(progress.clone());
        (
            ParticlesScheduler {
                config,
                queue: batches.into(),
                running: BTreeMap::new(),
                attempts: BTreeMap::new(),
                next_task: 0,
                progress,
                publish,
            },
            rx,
        )
    }

    fn publish(&mut self) {
        self.progress.running = self.running.len() as u64;
        let _ = self.publish.send(self.progress.clone());
    }

    fn executor_info(&self, driver: &SchedulerDriver) -> ExecutorInfo {
        ExecutorInfo {
            r#type: protos::v1::executor_info::Type::Custom as i32,
            executor_id: Some(ExecutorId {
                value: EXECUTOR_ID.into(),
            }),
            framework_id: driver.framework_id().cloned(),
            command: Some(self.config.executor_command.clone()),
            name: "particles executor".into(),
            ..Default::default()
        }
    }
}

impl Scheduler for ParticlesScheduler {
    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        let executor = self.executor_info(driver);
        for offer in &offers {
            let per_task = self.config.task_resources.clone();
            let ParticlesScheduler {
                queue,
                running,
                next_task,
                ..
            } = self;
            launch_packed(
                driver,
                offer,
                &per_task,
                || queue.pop_front(),
                |batch| {
                    *next_task += 1;
                    let task_id = format!("particles-{}-{}", batch.batch, next_task);
                    let info = TaskInfo {
                        name: format!("particles batch {}", batch.batch),
                        task_id: Some(TaskId {
                            value: task_id.clone(),
                        }),
                        executor: Some(executor.clone()),
                        data: Bytes::from(batch.encode_to_vec()),
                        ..Default::default()
                    };
                    running.insert(task_id, batch);
                    info
                },
            );
        }
        if self.queue.is_empty() {
            driver.suppress_offers();
        }
        self.publish();
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        if !state.is_terminal() {
            return;
        }
        let Some(batch) = self.running.remove(&task_id) else {
            return; // a duplicate of an update already counted
        };
        if state == TaskState::TaskFinished {
            match LandingCounts::decode(status.data.as_ref()) {
                Ok(counts) if counts.batch == batch.batch => {
                    self.progress.negative += counts.negative;
                    self.progress.positive += counts.positive;
                    self.progress.done += 1;
                }
                _ => {
                    self.fail(
                        driver,
                        format!("task {task_id} finished without its batch's counts"),
                    );
                    return;
                }
            }
        } else {
            self.progress.failed_attempts += 1;
            let attempts = self.attempts.entry(batch.batch).or_insert(1);
            *attempts += 1;
            if *attempts > MAX_ATTEMPTS_PER_BATCH {
                let why = format!(
                    "batch {} failed {MAX_ATTEMPTS_PER_BATCH} times; last: {} ({})",
                    batch.batch,
                    state.as_str_name(),
                    status.message
                );
                self.fail(driver, why);
                return;
            }
            tracing::warn!(task = %task_id, state = state.as_str_name(), message = %status.message, "batch will be retried");
            self.queue.push_back(batch);
            driver.revive_offers();
        }
        if self.progress.done == self.progress.batches {
            self.progress.finished = true;
            driver.stop();
        }
        self.publish();
    }
}

impl ParticlesScheduler {
    fn fail(&mut self, driver: &mut SchedulerDriver, why: String) {
        tracing::error!(%why, "particles job failed");
        self.progress.error = Some(why);
        self.progress.finished = true;
        driver.stop();
        self.publish();
    }
}

/// The particles executor: solves each batch's trajectories in the task's own callback.
#[derive(Debug, Default)]
pub struct ParticlesExecutor;

impl Executor for ParticlesExecutor {
    fn launch_task(&mut self, driver: &mut ExecutorDriver, task: TaskInfo) {
        let task_id = task.task_id.clone();
        let status = |state: TaskState, message: String, data: Bytes| TaskStatus {
            task_id: task_id.clone(),
            state: state as i32,
            message,
            data,
            ..Default::default()
        };
        driver.send_status_update(status(TaskState::TaskRunning, String::new(), Bytes::new()));
        match ParticleBatch::decode(task.data.as_ref()) {
            Ok(batch) => {
                let counts = count_landings(&batch);
                driver.send_status_update(status(
                    TaskState::TaskFinished,
                    format!("{} left, {} right", counts.negative, counts.positive),
                    Bytes::from(counts.encode_to_vec()),
                ));
            }
            Err(e) => driver.send_status_update(status(
                TaskState::TaskFailed,
                format!("task data is not a ParticleBatch: {e}"),
                Bytes::new(),
            )),
        }
    }

    fn kill_task(&mut self, driver: &mut ExecutorDriver, task_id: &TaskId) {
        // Batches are computed as soon as they arrive, so there is never one to stop; answer so
        // the scheduler is not left waiting.
        driver.send_status_update(TaskStatus {
            task_id: Some(task_id.clone()),
            state: TaskState::TaskKilled as i32,
            ..Default::default()
        });
    }
}

/// Where a trajectory lands: its right zero, `(-b - sqrt(b² - 4ac)) / 2a` for a < 0. `None`
/// for a curve that does not open downward or never reaches the ground.
pub fn right_zero(t: &Trajectory) -> Option<f64> {
    if t.a >= 0.0 {
        return None;
    }
    let discriminant = t.b * t.b - 4.0 * t.a * t.c;
    if discriminant < 0.0 {
        return None;
    }
    Some((-t.b - discriminant.sqrt()) / (2.0 * t.a))
}

/// Counts a batch's landings on each half-axis (a trajectory that never lands counts nowhere).
pub fn count_landings(batch: &ParticleBatch) -> LandingCounts {
    let mut counts = LandingCounts {
        batch: batch.batch,
        ..Default::default()
    };
    for x in batch.trajectories.iter().filter_map(right_zero) {
        if x < 0.0 {
            counts.negative += 1;
        } else {
            counts.positive += 1;
        }
    }
    counts
}

/// splitmix64: a small, seedable generator, so a cloud can be made again from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The cloud in batches, and the expected (negative, positive) totals.
fn make_cloud(particles: u64, batch_size: u64, seed: u64) -> (Vec<ParticleBatch>, (u64, u64)) {
    let mut rng = SplitMix(seed);
    let mut batches = Vec::new();
    let mut expected = (0, 0);
    let mut made = 0;
    while made < particles {
        let n = batch_size.min(particles - made);
        let mut batch = ParticleBatch {
            batch: batches.len() as u64,
            trajectories: Vec::with_capacity(n as usize),
        };
        for _ in 0..n {
            // Apex (x0, h), opening a: y = a(x - x0)² + h.
            let x0 = rng.next_unit() * 100.0 - 60.0;
            let h = 1.0 + rng.next_unit() * 99.0;
            let a = -(0.1 + rng.next_unit() * 1.9);
            let landing = x0 + (-h / a).sqrt();
            if landing < 0.0 {
                expected.0 += 1;
            } else {
                expected.1 += 1;
            }
            batch.trajectories.push(Trajectory {
                a,
                b: -2.0 * a * x0,
                c: a * x0 * x0 + h,
            });
        }
        made += n;
        batches.push(batch);
    }
    (batches, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_zero_is_where_the_particle_lands() {
        // y = -(x - 2)² + 9 lands at x = 5; y = -x² - 2x + 3 = -(x + 1)² + 4 at x = 1.
        let t = Trajectory {
            a: -1.0,
            b: 4.0,
            c: 5.0,
        };
        assert!((right_zero(&t).unwrap() - 5.0).abs() < 1e-9);
        let t = Trajectory {
            a: -1.0,
            b: -2.0,
            c: 3.0,
        };
        assert!((right_zero(&t).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(
            right_zero(&Trajectory {
                a: 1.0,
                b: 0.0,
                c: 1.0
            }),
            None
        );
        assert_eq!(
            right_zero(&Trajectory {
                a: -1.0,
                b: 0.0,
                c: -1.0
            }),
            None
        );
    }

    #[test]
    fn counting_every_batch_matches_the_clouds_construction() {
        let (batches, expected) = make_cloud(10_000, 333, 42);
        assert_eq!(batches.len(), 31);
        let (mut neg, mut pos) = (0, 0);
        for b in &batches {
            let c = count_landings(b);
            neg += c.negative;
            pos += c.positive;
        }
        assert_eq!((neg, pos), expected);
        assert!(
            neg > 1000 && pos > 1000,
            "both half-axes get particles: {expected:?}"
        );
        assert_eq!(
            make_cloud(10_000, 333, 42).1,
            expected,
            "same seed, same cloud"
        );
    }
}
