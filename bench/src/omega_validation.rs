//! `keel-bench omega-validation`: the Omega simulator (`keel-sim`) checked against the real
//! master. One small batch workload, drawn from a seed, goes through the simulator and through
//! a real `keel-master` with emulated agents and the simulator's scheduler run for real
//! ([`crate::job_stream`]): same jobs, same machines, same decision times, same conflict
//! detection, same number of parallel schedulers. Each pair of runs prints side by side what
//! the paper's experiments report — jobs scheduled, abandoned and still waiting at the
//! horizon, mean and 90th-percentile wait, scheduler busyness, conflict fraction — so the
//! simulator's figures can be trusted as far as the two agree.
//!
//! Time is real on the master's side: a run lasts its horizon (a minute by default), and the
//! master's own latencies (a commit's round trip, the cell's deltas) are part of it, where the
//! simulator has none.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frameworks::shared_state::{self, SharedState};
use frameworks::SchedulerOptions;
use keel_sim::rng::Rng;
use keel_sim::simulation::{
    simulate_jobs, Architecture, Conflicts, DecisionTime, KindReport, SimConfig,
};
use keel_sim::workload::{Job, JobKind, JobShape, WorkloadConfig};
use libactor::{Node, Upid};
use protos::omega::ConflictMode;
use resources::Resources;

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agents;
use crate::job_stream::{JobStream, StreamRecord};
use crate::master_child::MasterChild;
use crate::phase::wait_until;

/// The workload and cell of a validation; see [`Validation::default`].
#[derive(Debug, Clone, Copy)]
pub struct Validation {
    /// Machines (emulated agents).
    pub machines: usize,
    /// CPUs per machine.
    pub machine_cpus: f64,
    /// Memory per machine, GiB.
    pub machine_mem: f64,
    /// The batch jobs (there are no service jobs).
    pub batch: JobShape,
    /// Seconds of arrivals, and the end of the run.
    pub horizon: f64,
    /// Each scheduler's decision time.
    pub decision: DecisionTime,
    /// A job's conflicted transactions before it is given up.
    pub max_attempts: u32,
    /// The workload's and the placements' seed.
    pub seed: u64,
}

impl Default for Validation {
    /// A cell loaded to about three quarters: 20 machines of 4 CPUs and 8 GiB; a batch job
    /// every 0.25 s of 6 tasks (mean) of 0.5 CPU and 1 GiB for 5 s (mean); decisions of
    /// 50 ms per job and 5 ms per task; 60 s.
    fn default() -> Self {
        Validation {
            machines: 20,
            machine_cpus: 4.0,
            machine_mem: 8.0,
            batch: JobShape {
                interarrival: 0.25,
                tasks: 6.0,
                duration: 5.0,
                cpus: 0.5,
                mem: 1.0,
            },
            horizon: 60.0,
            decision: DecisionTime {
                per_job: 0.05,
                per_task: 0.005,
            },
            max_attempts: 1000,
            seed: 1,
        }
    }
}

impl Validation {
    /// The jobs, drawn from the seed, with CPUs in thousandths and memory in whole MiB (what
    /// the master's resources can say), so both sides place exactly the same sizes.
    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs = self.workload().generate(&mut Rng::new(self.seed).fork(1));
        jobs.retain(|j| j.kind == JobKind::Batch);
        for (i, job) in jobs.iter_mut().enumerate() {
            job.id = i;
            job.cpus = (job.cpus * 1000.0).round().max(1.0) / 1000.0;
            job.mem = (job.mem * 1024.0).round().max(1.0) / 1024.0;
        }
        jobs
    }

    fn workload(&self) -> WorkloadConfig {
        WorkloadConfig {
            batch: self.batch,
            // No service jobs: the first would arrive after any horizon.
            service: JobShape {
                interarrival: f64::INFINITY,
                ..self.batch
            },
            horizon: self.horizon,
        }
    }

    /// The simulator's configuration for `schedulers` parallel batch schedulers.
    pub fn sim_config(&self, schedulers: usize, conflicts: Conflicts) -> SimConfig {
        SimConfig {
            architecture: Architecture::SharedState,
            machines: self.machines,
            machine_cpus: self.machine_cpus,
            machine_mem: self.machine_mem,
            workload: self.workload(),
            batch_schedulers: schedulers,
            batch_decision: self.decision,
            conflicts,
            max_attempts: self.max_attempts,
            seed: self.seed,
            ..SimConfig::default()
        }
    }

    /// What each emulated agent offers.
    pub fn machine_resources(&self) -> Resources {
        format!(
            "cpus:{};mem:{:.0}",
            self.machine_cpus,
            self.machine_mem * 1024.0
        )
        .parse()
        .unwrap_or_default()
    }
}

/// The simulator's outcome for the batch jobs.
pub fn simulated(v: &Validation, schedulers: usize, conflicts: Conflicts) -> KindReport {
    simulate_jobs(&v.sim_config(schedulers, conflicts), v.jobs()).batch
}

/// The same jobs through the real master at `master`: `v.machines` emulated agents register
/// with it, `schedulers` [`JobStream`] schedulers (job `i` to scheduler `i % schedulers`, as
/// in the simulator) subscribe to its cell, and the run lasts `v.horizon` seconds from the
/// moment every scheduler's copy is current. The master should be fresh: agents and tasks it
/// already has would be in the cell too. A placement the master refuses outright (rather
/// than finds in conflict) fails the run: the two sides would not be running the same jobs.
pub async fn real(
    master: &Upid,
    v: &Validation,
    schedulers: usize,
    conflicts: Conflicts,
) -> anyhow::Result<KindReport> {
    let schedulers = schedulers.max(1);
    let jobs = v.jobs();
    let counters = Arc::new(EmulationCounters::default());
    let agents = start_agents(
        v.machines,
        master,
        &v.machine_resources(),
        Duration::ZERO,
        &counters,
        None,
    )?;
    wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == v.machines as u64
    })
    .await?;
    let node = Node::builder().start()?;
    let mode = match conflicts {
        Conflicts::Fine => ConflictMode::FineGrained,
        Conflicts::Coarse => ConflictMode::Coarse,
    };
    let mut rng = Rng::new(v.seed);
    let mut runs = Vec::new();
    for i in 0..schedulers {
        let share: Vec<Job> = jobs
            .iter()
            .filter(|j| j.id % schedulers == i)
            .cloned()
            .collect();
        let ids: Vec<usize> = share.iter().map(|j| j.id).collect();
        let (scheduler, record) = JobStream::new(
            share,
            v.decision,
            mode,
            v.max_attempts,
            rng.fork(200 + i as u64),
        );
        let handle = shared_state::start(
            &node,
            master.clone(),
            keel::example_runs::framework_info(&format!("omega-validation-{i}")),
            scheduler,
            SchedulerOptions::default(),
        )?;
        runs.push((handle, record, ids));
    }
    wait_until("every scheduler's copy of the cell", || {
        runs.iter().all(|(_, record, _)| lock(record).ready)
    })
    .await?;
    let start = Instant::now() + Duration::from_millis(100);
    for (handle, _, _) in &runs {
        handle.dispatch(move |s: &mut SharedState<JobStream>, driver| s.0.begin(driver, start));
    }
    // The run is its horizon of real time; what the schedulers have done by then is the
    // outcome, as the simulator stops at its horizon.
    tokio::time::sleep_until((start + Duration::from_secs_f64(v.horizon)).into()).await;
    let records: Vec<(StreamRecord, Vec<usize>)> = runs
        .iter()
        .map(|(_, record, ids)| (lock(record).clone(), ids.clone()))
        .collect();
    for (handle, _, _) in &runs {
        handle.stop();
    }
    node.shutdown().await;
    for agent in agents {
        agent.shutdown().await;
    }
    let refused: u64 = records.iter().map(|(r, _)| r.refused).sum();
    anyhow::ensure!(
        refused == 0,
        "the master refused {refused} placements outright"
    );
    Ok(report(&jobs, v.horizon, &records))
}

fn lock(record: &Mutex<StreamRecord>) -> std::sync::MutexGuard<'_, StreamRecord> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

/// The schedulers' records as the simulator reports them.
fn report(jobs: &[Job], horizon: f64, records: &[(StreamRecord, Vec<usize>)]) -> KindReport {
    let mut r = KindReport {
        jobs: jobs.len(),
        ..Default::default()
    };
    let mut waits = Vec::new();
    for (record, ids) in records {
        for (local, &job) in ids.iter().enumerate() {
            match record.done_at[local] {
                Some(done) if done <= horizon => {
                    r.scheduled += 1;
                    waits.push(done - jobs[job].arrival);
                }
                _ if record.abandoned[local] => r.abandoned += 1,
                _ => r.unscheduled += 1,
            }
        }
        r.busyness += record.busy / horizon / records.len() as f64;
        r.transactions += record.transactions;
        r.conflicted += record.conflicted;
    }
    r.set_waits(waits);
    r
}

/// One validation: for each count of schedulers and each conflict detection, the simulator
/// and then a fresh real master on the same jobs; prints the pairs as a table.
pub async fn run(
    v: &Validation,
    schedulers: &[usize],
    conflicts: &[Conflicts],
) -> anyhow::Result<()> {
    let jobs = v.jobs();
    let tasks: usize = jobs.iter().map(|j| j.tasks).sum();
    println!(
        "omega-validation: {} jobs ({tasks} tasks) over {} s on {} machines of {} CPUs / {} GiB; decisions {} s + {} s per task; seed {}",
        jobs.len(),
        v.horizon,
        v.machines,
        v.machine_cpus,
        v.machine_mem,
        v.decision.per_job,
        v.decision.per_task,
        v.seed
    );
    println!("| schedulers | conflicts | side | scheduled | abandoned | waiting | mean wait (s) | p90 wait (s) | busyness | transactions | conflict fraction |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &k in schedulers {
        for &mode in conflicts {
            let sim = simulated(v, k, mode);
            let master = MasterChild::start().await?;
            let real = real(&master.pid, v, k, mode).await?;
            for (side, r) in [("simulator", &sim), ("real master", &real)] {
                println!(
                    "| {k} | {mode:?} | {side} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {} | {:.3} |",
                    r.scheduled,
                    r.abandoned,
                    r.unscheduled,
                    r.mean_wait,
                    r.p90_wait,
                    r.busyness,
                    r.transactions,
                    r.conflict_fraction()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_get_the_same_jobs_in_sizes_the_master_can_say() {
        let v = Validation::default();
        let jobs = v.jobs();
        assert!(jobs.len() > 100, "{}", jobs.len());
        assert_eq!(jobs.len(), v.jobs().len(), "the seed gives the same jobs");
        for (i, job) in jobs.iter().enumerate() {
            assert_eq!(job.id, i);
            assert_eq!(job.kind, JobKind::Batch);
            assert!(job.arrival < v.horizon);
            let r = crate::job_stream::job_resources(job);
            assert!((r.scalar("cpus") - job.cpus).abs() < 1e-9, "{job:?}: {r}");
            assert!(
                (r.scalar("mem") - job.mem * 1024.0).abs() < 1e-9,
                "{job:?}: {r}"
            );
        }
    }
}
