//! The discrete-event simulation of one cell under one scheduling architecture, after the Omega
//! paper's lightweight simulator:
//!
//! - **monolithic**: one scheduler decides every job, in order of arrival;
//! - **two-level** (Mesos's offers): a scheduler with work is offered every machine no other
//!   scheduler holds, and holds them while it decides (pessimistic: nobody else may use them
//!   meanwhile);
//! - **shared state** (Omega): every scheduler decides on a snapshot of the whole cell, then
//!   commits; placements conflict (coarse: the machine changed since the snapshot; fine: the
//!   task no longer fits) and are committed incrementally or all-or-nothing.
//!
//! Deciding a job takes `per_job + per_task × tasks` seconds (the paper's model); placement is
//! randomized first fit. A job whose placements conflict is tried again at once, up to
//! `max_attempts` (then abandoned); a job that finds no room waits until a task ends where it
//! would fit. Everything random comes from the seed.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::cell::Cell;
use crate::rng::Rng;
use crate::workload::{Job, JobKind, WorkloadConfig};

/// How scheduling is organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// One scheduler for every job.
    Monolithic,
    /// Offers: resources locked by the scheduler deciding on them.
    TwoLevel,
    /// Omega: snapshots and optimistic commits.
    SharedState,
}

/// When a placement conflicts (shared state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflicts {
    /// The task no longer fits on the machine.
    Fine,
    /// Anything changed on the machine since the snapshot.
    Coarse,
}

/// What commits when some placements conflict (shared state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// What does not conflict.
    Incremental,
    /// Nothing unless nothing conflicts (and a job is only placed whole).
    AllOrNothing,
}

/// How long deciding a job takes: `per_job + per_task × tasks` seconds.
#[derive(Debug, Clone, Copy)]
pub struct DecisionTime {
    /// Per job, seconds.
    pub per_job: f64,
    /// Per task, seconds.
    pub per_task: f64,
}

impl DecisionTime {
    /// Seconds to decide a job of `tasks` tasks.
    pub fn of(&self, tasks: usize) -> f64 {
        self.per_job + self.per_task * tasks as f64
    }
}

/// Machines failing: most rarely, a flaky few often; a failed machine loses its tasks (they
/// go back to their schedulers) and is down for `repair` seconds.
#[derive(Debug, Clone, Copy)]
pub struct FailureModel {
    /// The fraction of machines that are flaky.
    pub flaky_fraction: f64,
    /// Mean seconds between a flaky machine's failures.
    pub flaky_mtbf: f64,
    /// Mean seconds between other machines' failures.
    pub mtbf: f64,
    /// Seconds a failed machine is down.
    pub repair: f64,
    /// Seconds of failure record each machine has when the simulation starts (what the
    /// device manager learned before).
    pub history: f64,
}

impl Default for FailureModel {
    /// One machine in ten fails every 3 hours on average, the others every 30 days; a repair
    /// takes 30 minutes; machines come with a week of record.
    fn default() -> Self {
        FailureModel {
            flaky_fraction: 0.1,
            flaky_mtbf: 3.0 * 3600.0,
            mtbf: 30.0 * 86_400.0,
            repair: 1800.0,
            history: 7.0 * 86_400.0,
        }
    }
}

/// One simulation's configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How scheduling is organised.
    pub architecture: Architecture,
    /// Machines in the cell.
    pub machines: usize,
    /// CPUs per machine.
    pub machine_cpus: f64,
    /// Memory per machine, GiB.
    pub machine_mem: f64,
    /// The jobs.
    pub workload: WorkloadConfig,
    /// Batch schedulers in parallel (two-level and shared state).
    pub batch_schedulers: usize,
    /// How long batch jobs take to decide.
    pub batch_decision: DecisionTime,
    /// How long service jobs take to decide.
    pub service_decision: DecisionTime,
    /// Conflict detection (shared state).
    pub conflicts: Conflicts,
    /// Batch jobs' commits.
    pub batch_commit: Commit,
    /// Service jobs' commits (gangs by default).
    pub service_commit: Commit,
    /// Conflicted attempts before a job is abandoned.
    pub max_attempts: u32,
    /// Machines fail (none when `None`).
    pub failures: Option<FailureModel>,
    /// The service scheduler places on the machines with the fewest failures so far first
    /// (Autopilot's record), leaving flaky machines to batch work.
    pub reliability_aware_service: bool,
    /// Where every random choice comes from.
    pub seed: u64,
}

impl Default for SimConfig {
    /// The paper's defaults where it gives them: batch decisions of 0.1 s per job and 5 ms
    /// per task, service decisions likewise (the experiments vary them), fine-grained
    /// conflicts, incremental batch commits and all-or-nothing service commits, 1,000
    /// attempts; a cell of 500 machines of 8 CPUs and 16 GiB.
    fn default() -> Self {
        SimConfig {
            architecture: Architecture::SharedState,
            machines: 500,
            machine_cpus: 8.0,
            machine_mem: 16.0,
            workload: WorkloadConfig::default(),
            batch_schedulers: 1,
            batch_decision: DecisionTime {
                per_job: 0.1,
                per_task: 0.005,
            },
            service_decision: DecisionTime {
                per_job: 0.1,
                per_task: 0.005,
            },
            conflicts: Conflicts::Fine,
            batch_commit: Commit::Incremental,
            service_commit: Commit::AllOrNothing,
            max_attempts: 1000,
            failures: None,
            reliability_aware_service: false,
            seed: 1,
        }
    }
}

/// What happened to one kind of job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindReport {
    /// Jobs that arrived.
    pub jobs: usize,
    /// Jobs all of whose tasks were placed.
    pub scheduled: usize,
    /// Jobs given up after `max_attempts` conflicts.
    pub abandoned: usize,
    /// Jobs still waiting at the horizon.
    pub unscheduled: usize,
    /// Mean seconds from arrival to the last task placed, over scheduled jobs.
    pub mean_wait: f64,
    /// The 90th percentile of the same.
    pub p90_wait: f64,
    /// Mean fraction of the horizon its schedulers spent deciding.
    pub busyness: f64,
    /// Commits (decisions that placed something or conflicted).
    pub transactions: u64,
    /// Commits with at least one conflict.
    pub conflicted: u64,
    /// Tasks lost to machine failures (and placed again).
    pub restarts: u64,
}

impl KindReport {
    /// Sets `mean_wait` and `p90_wait` from the waits of the scheduled jobs.
    pub fn set_waits(&mut self, mut waits: Vec<f64>) {
        waits.sort_by(f64::total_cmp);
        if !waits.is_empty() {
            self.mean_wait = waits.iter().sum::<f64>() / waits.len() as f64;
            self.p90_wait = waits[(waits.len() * 9 / 10).min(waits.len() - 1)];
        }
    }

    /// Conflicted commits as a fraction of all (0 with none).
    pub fn conflict_fraction(&self) -> f64 {
        if self.transactions == 0 {
            0.0
        } else {
            self.conflicted as f64 / self.transactions as f64
        }
    }
}

/// A simulation's outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Batch jobs.
    pub batch: KindReport,
    /// Service jobs.
    pub service: KindReport,
    /// Mean CPU utilization of the cell (sampled every minute).
    pub utilization: f64,
}

/// A job in a scheduler's queue.
#[derive(Debug, Clone, Copy)]
struct Pending {
    job: usize,
    remaining: usize,
    attempts: u32,
}

/// A decision under way: the job and its placements (machine, version seen).
#[derive(Debug)]
struct Decision {
    pending: Pending,
    placements: Vec<(usize, u64)>,
    took: f64,
}

#[derive(Debug)]
struct Scheduler {
    kind: Option<JobKind>,
    queue: VecDeque<Pending>,
    deciding: Option<Decision>,
    /// Found no room: waits until a task ends where its next job's task would fit.
    waiting: bool,
    busy: f64,
    transactions: u64,
    conflicted: u64,
    rng: Rng,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Arrival(usize),
    Decided(usize),
    TaskEnd {
        machine: usize,
        job: usize,
        incarnation: u64,
    },
    Fail(usize),
    Repair(usize),
    Sample,
}

#[derive(Debug)]
struct Timed {
    at: f64,
    seq: u64,
    event: Event,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    /// Earliest first in a max-heap; ties in order of scheduling.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Seconds between utilization samples.
const SAMPLE_INTERVAL: f64 = 60.0;

struct Sim {
    config: SimConfig,
    jobs: Vec<Job>,
    cell: Cell,
    schedulers: Vec<Scheduler>,
    /// Two-level: which scheduler holds each machine's offer.
    holder: Vec<Option<usize>>,
    events: BinaryHeap<Timed>,
    seq: u64,
    now: f64,
    done_at: Vec<Option<f64>>,
    abandoned: Vec<bool>,
    samples: Vec<f64>,
    /// The jobs of the tasks running on each machine.
    running: Vec<Vec<usize>>,
    /// Each machine's mean time between failures (with a failure model).
    mtbf: Vec<f64>,
    /// Tasks lost to failures, by kind (batch, service).
    restarts: [u64; 2],
    failure_rng: Rng,
}

/// Runs one simulation of the workload `config` describes.
pub fn simulate(config: &SimConfig) -> Report {
    let jobs = config.workload.generate(&mut Rng::new(config.seed).fork(1));
    simulate_jobs(config, jobs)
}

/// Runs one simulation of `jobs` (in order of arrival, each `id` its index; within
/// `config.workload.horizon`), for a workload given from outside: the real master's run of the
/// same jobs beside it, say (`keel-bench omega-validation`).
pub fn simulate_jobs(config: &SimConfig, jobs: Vec<Job>) -> Report {
    debug_assert!(jobs.iter().enumerate().all(|(i, j)| j.id == i));
    debug_assert!(jobs.windows(2).all(|w| w[0].arrival <= w[1].arrival));
    let mut rng = Rng::new(config.seed);
    // The workload's stream is the first fork (see `simulate`); skipped here so that the
    // schedulers' streams are the same whoever made the jobs.
    rng.fork(1);
    let mut schedulers = Vec::new();
    let mut add = |kind: Option<JobKind>, salt: u64| {
        schedulers.push(Scheduler {
            kind,
            queue: VecDeque::new(),
            deciding: None,
            waiting: false,
            busy: 0.0,
            transactions: 0,
            conflicted: 0,
            rng: rng.fork(salt),
        });
    };
    if config.architecture == Architecture::Monolithic {
        add(None, 100);
    } else {
        add(Some(JobKind::Service), 100);
        for i in 0..config.batch_schedulers.max(1) {
            add(Some(JobKind::Batch), 200 + i as u64);
        }
    }
    let n = jobs.len();
    let mut sim = Sim {
        cell: Cell::new(config.machines, config.machine_cpus, config.machine_mem),
        holder: vec![None; config.machines],
        config: config.clone(),
        jobs,
        schedulers,
        events: BinaryHeap::new(),
        seq: 0,
        now: 0.0,
        done_at: vec![None; n],
        abandoned: vec![false; n],
        samples: Vec::new(),
        running: vec![Vec::new(); config.machines],
        mtbf: Vec::new(),
        restarts: [0; 2],
        failure_rng: rng.fork(3),
    };
    for i in 0..n {
        let at = sim.jobs[i].arrival;
        sim.at(at, Event::Arrival(i));
    }
    if let Some(model) = config.failures {
        for m in 0..config.machines {
            let flaky = sim.failure_rng.uniform() < model.flaky_fraction;
            let mtbf = if flaky { model.flaky_mtbf } else { model.mtbf };
            sim.mtbf.push(mtbf);
            let mut past = sim.failure_rng.exp(mtbf);
            while past < model.history {
                sim.cell.record_past_failure(m);
                past += sim.failure_rng.exp(mtbf);
            }
            let at = sim.failure_rng.exp(mtbf);
            sim.at(at, Event::Fail(m));
        }
    }
    sim.at(SAMPLE_INTERVAL, Event::Sample);
    sim.run();
    sim.report()
}

impl Sim {
    fn at(&mut self, at: f64, event: Event) {
        self.seq += 1;
        self.events.push(Timed {
            at,
            seq: self.seq,
            event,
        });
    }

    fn run(&mut self) {
        while let Some(Timed { at, event, .. }) = self.events.pop() {
            if at > self.config.workload.horizon {
                break;
            }
            self.now = at;
            match event {
                Event::Arrival(job) => {
                    let s = self.scheduler_for(job);
                    let remaining = self.jobs[job].tasks;
                    self.schedulers[s].queue.push_back(Pending {
                        job,
                        remaining,
                        attempts: 0,
                    });
                    self.start(s);
                }
                Event::Decided(s) => self.decided(s),
                Event::TaskEnd {
                    machine,
                    job,
                    incarnation,
                } => {
                    if self.cell.machine(machine).incarnation != incarnation {
                        continue; // lost with its machine already
                    }
                    let (cpus, mem) = (self.jobs[job].cpus, self.jobs[job].mem);
                    self.cell.release(machine, cpus, mem);
                    if let Some(i) = self.running[machine].iter().position(|j| *j == job) {
                        self.running[machine].swap_remove(i);
                    }
                    self.wake(machine);
                }
                Event::Fail(machine) => self.fail(machine),
                Event::Repair(machine) => {
                    self.cell.repair(machine);
                    let next = self.now + self.failure_rng.exp(self.mtbf[machine]);
                    self.at(next, Event::Fail(machine));
                    self.wake(machine);
                }
                Event::Sample => {
                    self.samples.push(self.cell.cpu_utilization());
                    self.at(self.now + SAMPLE_INTERVAL, Event::Sample);
                }
            }
        }
    }

    /// A machine fails: its tasks go back to their schedulers, and it is repaired later.
    fn fail(&mut self, machine: usize) {
        let Some(model) = self.config.failures else {
            return;
        };
        let mut lost: Vec<usize> = std::mem::take(&mut self.running[machine]);
        lost.sort_unstable();
        self.cell.fail(machine);
        self.at(self.now + model.repair, Event::Repair(machine));
        let mut i = 0;
        while i < lost.len() {
            let job = lost[i];
            let n = lost[i..].iter().take_while(|j| **j == job).count();
            i += n;
            let kind = self.jobs[job].kind;
            self.restarts[usize::from(kind == JobKind::Service)] += n as u64;
            let s = self.scheduler_for(job);
            self.schedulers[s].queue.push_back(Pending {
                job,
                remaining: n,
                attempts: 0,
            });
        }
        for s in 0..self.schedulers.len() {
            self.start(s);
        }
    }

    fn scheduler_for(&self, job: usize) -> usize {
        match (self.config.architecture, self.jobs[job].kind) {
            (Architecture::Monolithic, _) => 0,
            (_, JobKind::Service) => 0,
            (_, JobKind::Batch) => 1 + job % (self.schedulers.len() - 1),
        }
    }

    fn decision_time(&self, kind: JobKind) -> DecisionTime {
        match kind {
            JobKind::Batch => self.config.batch_decision,
            JobKind::Service => self.config.service_decision,
        }
    }

    fn commit_mode(&self, kind: JobKind) -> Commit {
        match kind {
            JobKind::Batch => self.config.batch_commit,
            JobKind::Service => self.config.service_commit,
        }
    }

    /// Starts deciding the first job in the scheduler's queue that has room, if it is idle; a
    /// job without room goes to the back, so that one large job does not hold up the rest.
    fn start(&mut self, s: usize) {
        if self.schedulers[s].deciding.is_some() {
            return;
        }
        for _ in 0..self.schedulers[s].queue.len() {
            let Some(pending) = self.schedulers[s].queue.pop_front() else {
                return;
            };
            if self.try_decide(s, pending) {
                self.schedulers[s].waiting = false;
                return;
            }
        }
        // Nothing has room: wait for a task to end where the next job would fit.
        self.schedulers[s].waiting = !self.schedulers[s].queue.is_empty();
    }

    /// Starts deciding `pending` if there is room for it; otherwise puts it at the back of
    /// the queue and returns false.
    fn try_decide(&mut self, s: usize, pending: Pending) -> bool {
        let job = &self.jobs[pending.job];
        let (cpus, mem, kind) = (job.cpus, job.mem, job.kind);
        // The machines it may place on: two-level, those it is offered (every machine nobody
        // else holds); otherwise the whole cell as it stands now (the snapshot).
        let two_level = self.config.architecture == Architecture::TwoLevel;
        let mut candidates: Vec<usize> = (0..self.cell.len())
            .filter(|&m| !two_level || self.holder[m].is_none())
            .filter(|&m| self.cell.machine(m).fits(cpus, mem))
            .collect();
        let by_reliability = kind == JobKind::Service && self.config.reliability_aware_service;
        if by_reliability && !candidates.is_empty() {
            // Fewest failures first; among equals, from a random start as usual.
            let start = self.schedulers[s].rng.below(candidates.len());
            candidates.rotate_left(start);
            candidates.sort_by_key(|&m| self.cell.machine(m).failures);
        }
        let mut free: Vec<(f64, f64)> = candidates
            .iter()
            .map(|&m| {
                let machine = self.cell.machine(m);
                (machine.free_cpus, machine.free_mem)
            })
            .collect();
        let mut placements = Vec::new();
        if !candidates.is_empty() {
            let start = if by_reliability {
                0
            } else {
                self.schedulers[s].rng.below(candidates.len())
            };
            for k in 0..candidates.len() {
                let i = (start + k) % candidates.len();
                while placements.len() < pending.remaining
                    && free[i].0 + 1e-9 >= cpus
                    && free[i].1 + 1e-9 >= mem
                {
                    free[i].0 -= cpus;
                    free[i].1 -= mem;
                    let m = candidates[i];
                    placements.push((m, self.cell.machine(m).version));
                }
                if placements.len() == pending.remaining {
                    break;
                }
            }
        }
        let whole = self.commit_mode(kind) == Commit::AllOrNothing;
        if placements.is_empty() || (whole && placements.len() < pending.remaining) {
            self.schedulers[s].queue.push_back(pending);
            return false;
        }
        if two_level {
            // Mesos offers everything available, whether this job fits there or not; the
            // scheduler holds it while it decides.
            for m in 0..self.cell.len() {
                let machine = self.cell.machine(m);
                if self.holder[m].is_none() && machine.free_cpus > 1e-9 && machine.free_mem > 1e-9 {
                    self.holder[m] = Some(s);
                }
            }
        }
        let took = self.decision_time(kind).of(pending.remaining);
        self.schedulers[s].deciding = Some(Decision {
            pending,
            placements,
            took,
        });
        self.at(self.now + took, Event::Decided(s));
        true
    }

    /// The decision is made: commit it.
    fn decided(&mut self, s: usize) {
        let Some(Decision {
            mut pending,
            placements,
            took,
        }) = self.schedulers[s].deciding.take()
        else {
            return;
        };
        let job = self.jobs[pending.job].clone();
        let coarse = self.config.conflicts == Conflicts::Coarse
            && self.config.architecture == Architecture::SharedState;
        let mut fits = self.cell.clone();
        let ok: Vec<bool> = placements
            .iter()
            .map(|&(m, seen)| {
                let fine = fits.machine(m).fits(job.cpus, job.mem);
                let fresh = !coarse || self.cell.machine(m).version == seen;
                if fine && fresh {
                    fits.take(m, job.cpus, job.mem);
                }
                fine && fresh
            })
            .collect();
        let conflicted = ok.iter().any(|o| !o);
        let whole = self.commit_mode(job.kind) == Commit::AllOrNothing;
        let sched = &mut self.schedulers[s];
        sched.busy += took;
        sched.transactions += 1;
        if conflicted {
            sched.conflicted += 1;
            pending.attempts += 1;
        }
        if !(conflicted && whole) {
            for (&(m, _), _) in placements.iter().zip(&ok).filter(|(_, ok)| **ok) {
                self.cell.take(m, job.cpus, job.mem);
                self.running[m].push(job.id);
                pending.remaining -= 1;
                let end = self.now + job.duration;
                if end <= self.config.workload.horizon {
                    let incarnation = self.cell.machine(m).incarnation;
                    self.at(
                        end,
                        Event::TaskEnd {
                            machine: m,
                            job: job.id,
                            incarnation,
                        },
                    );
                }
            }
        }
        if self.config.architecture == Architecture::TwoLevel {
            for h in self.holder.iter_mut().filter(|h| **h == Some(s)) {
                *h = None;
            }
        }
        if pending.remaining == 0 {
            // A job placed again after a failure keeps the time it was first placed whole.
            self.done_at[job.id].get_or_insert(self.now);
        } else if pending.attempts >= self.config.max_attempts {
            self.abandoned[job.id] = true;
        } else {
            self.schedulers[s].queue.push_front(pending);
        }
        self.start(s);
        if self.config.architecture == Architecture::TwoLevel {
            // What it held is offered again.
            for other in 0..self.schedulers.len() {
                if other != s && self.schedulers[other].waiting {
                    self.start(other);
                }
            }
        }
    }

    /// A task ended on `machine`: waiting schedulers whose next job would fit there try again.
    fn wake(&mut self, machine: usize) {
        if self.holder[machine].is_some() {
            return;
        }
        for s in 0..self.schedulers.len() {
            let sched = &self.schedulers[s];
            if !sched.waiting || sched.deciding.is_some() {
                continue;
            }
            let machine = self.cell.machine(machine);
            let fits = sched
                .queue
                .iter()
                .any(|p| machine.fits(self.jobs[p.job].cpus, self.jobs[p.job].mem));
            if fits {
                self.start(s);
            }
        }
    }

    fn report(&self) -> Report {
        let horizon = self.config.workload.horizon;
        let kind_report = |kind: JobKind| {
            let mut r = KindReport::default();
            let mut waits = Vec::new();
            for job in self.jobs.iter().filter(|j| j.kind == kind) {
                r.jobs += 1;
                if let Some(done) = self.done_at[job.id] {
                    r.scheduled += 1;
                    waits.push(done - job.arrival);
                } else if self.abandoned[job.id] {
                    r.abandoned += 1;
                } else {
                    r.unscheduled += 1;
                }
            }
            r.set_waits(waits);
            let mine: Vec<&Scheduler> = self
                .schedulers
                .iter()
                .filter(|s| s.kind.is_none_or(|k| k == kind))
                .collect();
            r.busyness = mine.iter().map(|s| s.busy / horizon).sum::<f64>() / mine.len() as f64;
            if self.config.architecture != Architecture::Monolithic {
                r.transactions = mine.iter().map(|s| s.transactions).sum();
                r.conflicted = mine.iter().map(|s| s.conflicted).sum();
            }
            r.restarts = self.restarts[usize::from(kind == JobKind::Service)];
            r
        };
        Report {
            batch: kind_report(JobKind::Batch),
            service: kind_report(JobKind::Service),
            utilization: if self.samples.is_empty() {
                0.0
            } else {
                self.samples.iter().sum::<f64>() / self.samples.len() as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(architecture: Architecture) -> SimConfig {
        SimConfig {
            architecture,
            machines: 400,
            workload: WorkloadConfig {
                horizon: 3600.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_seed_replays_exactly() {
        let config = small(Architecture::SharedState);
        assert_eq!(simulate(&config), simulate(&config));
        let other = SimConfig { seed: 2, ..config };
        assert_ne!(
            simulate(&other),
            simulate(&small(Architecture::SharedState))
        );
    }

    #[test]
    fn every_architecture_schedules_a_light_workload() {
        for architecture in [
            Architecture::Monolithic,
            Architecture::TwoLevel,
            Architecture::SharedState,
        ] {
            let r = simulate(&small(architecture));
            assert!(r.batch.jobs > 500, "{architecture:?}: {r:?}");
            assert!(
                r.batch.scheduled as f64 >= 0.9 * r.batch.jobs as f64,
                "{architecture:?}: {r:?}"
            );
            assert_eq!(r.batch.abandoned, 0, "{architecture:?}");
            assert!(r.utilization > 0.05 && r.utilization < 1.0, "{r:?}");
        }
    }

    #[test]
    fn a_slow_service_scheduler_holds_offers_but_not_shared_state() {
        let slow = |architecture| SimConfig {
            service_decision: DecisionTime {
                per_job: 30.0,
                per_task: 0.0,
            },
            ..small(architecture)
        };
        let offers = simulate(&slow(Architecture::TwoLevel));
        let omega = simulate(&slow(Architecture::SharedState));
        // Offers: batch jobs wait while the service scheduler sits on every machine.
        assert!(
            offers.batch.mean_wait > 5.0 * omega.batch.mean_wait,
            "offers {:?} vs omega {:?}",
            offers.batch,
            omega.batch
        );
    }

    #[test]
    fn a_reliability_aware_service_scheduler_loses_fewer_tasks_to_failures() {
        let config = |aware| SimConfig {
            failures: Some(FailureModel::default()),
            reliability_aware_service: aware,
            workload: WorkloadConfig {
                horizon: 4.0 * 3600.0,
                ..Default::default()
            },
            ..small(Architecture::SharedState)
        };
        let blind = simulate(&config(false));
        let aware = simulate(&config(true));
        assert!(blind.service.restarts > 0, "{blind:?}");
        assert!(
            aware.service.restarts * 2 < blind.service.restarts,
            "aware {:?} blind {:?}",
            aware.service,
            blind.service
        );
    }

    #[test]
    fn parallel_schedulers_on_shared_state_conflict_more_under_coarse_detection() {
        let busy = |conflicts| SimConfig {
            batch_schedulers: 8,
            conflicts,
            workload: WorkloadConfig {
                horizon: 3600.0,
                batch: crate::workload::JobShape {
                    interarrival: 0.5,
                    ..WorkloadConfig::default().batch
                },
                ..Default::default()
            },
            ..small(Architecture::SharedState)
        };
        let fine = simulate(&busy(Conflicts::Fine));
        let coarse = simulate(&busy(Conflicts::Coarse));
        assert!(
            coarse.batch.conflict_fraction() > fine.batch.conflict_fraction(),
            "coarse {:?} fine {:?}",
            coarse.batch,
            fine.batch
        );
    }
}
