//! Synthetic workloads shaped like the Omega paper's clusters: many batch jobs (short, many
//! small tasks, frequent) and few service jobs (long-running, fewer and larger tasks, rare),
//! each with exponential inter-arrival times, task counts and durations around configured
//! means.

use crate::rng::Rng;

/// A job's kind: which scheduler it goes to, and how it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    /// Short jobs of many small tasks.
    Batch,
    /// Long-running jobs.
    Service,
}

/// One job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its index in the workload.
    pub id: usize,
    /// Batch or service.
    pub kind: JobKind,
    /// When it arrives, seconds.
    pub arrival: f64,
    /// How many tasks.
    pub tasks: usize,
    /// CPUs per task.
    pub cpus: f64,
    /// Memory per task, GiB.
    pub mem: f64,
    /// How long each task runs once placed, seconds.
    pub duration: f64,
}

/// The shape of one kind of job.
#[derive(Debug, Clone, Copy)]
pub struct JobShape {
    /// Mean seconds between arrivals.
    pub interarrival: f64,
    /// Mean tasks per job (at least 1).
    pub tasks: f64,
    /// Mean task duration, seconds.
    pub duration: f64,
    /// CPUs per task (uniform between half and one and a half of this).
    pub cpus: f64,
    /// Memory per task, GiB (likewise).
    pub mem: f64,
}

/// A workload: its two kinds of jobs over a horizon.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadConfig {
    /// Batch jobs.
    pub batch: JobShape,
    /// Service jobs.
    pub service: JobShape,
    /// Simulated seconds.
    pub horizon: f64,
}

impl Default for WorkloadConfig {
    /// A cell of medium load: a batch job every 4 s (20 tasks of 0.5 CPU for ~3 minutes) and a
    /// service job every 60 s (10 tasks of 1 CPU for ~2 hours), for 6 hours.
    fn default() -> Self {
        WorkloadConfig {
            batch: JobShape {
                interarrival: 4.0,
                tasks: 20.0,
                duration: 180.0,
                cpus: 0.5,
                mem: 1.0,
            },
            service: JobShape {
                interarrival: 60.0,
                tasks: 10.0,
                duration: 7200.0,
                cpus: 1.0,
                mem: 2.0,
            },
            horizon: 6.0 * 3600.0,
        }
    }
}

impl WorkloadConfig {
    /// The jobs, in order of arrival, drawn from `rng`.
    pub fn generate(&self, rng: &mut Rng) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (kind, shape) in [
            (JobKind::Batch, self.batch),
            (JobKind::Service, self.service),
        ] {
            let mut at = rng.exp(shape.interarrival);
            while at < self.horizon {
                let vary = |rng: &mut Rng, mean: f64| mean * (0.5 + rng.uniform());
                jobs.push(Job {
                    id: 0,
                    kind,
                    arrival: at,
                    tasks: (rng.exp(shape.tasks).round() as usize).max(1),
                    cpus: vary(rng, shape.cpus),
                    mem: vary(rng, shape.mem),
                    duration: rng.exp(shape.duration).max(1.0),
                });
                at += rng.exp(shape.interarrival);
            }
        }
        jobs.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
        for (i, job) in jobs.iter_mut().enumerate() {
            job.id = i;
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_workload_in_order_of_arrival() {
        let config = WorkloadConfig::default();
        let a = config.generate(&mut Rng::new(3));
        let b = config.generate(&mut Rng::new(3));
        assert_eq!(a.len(), b.len());
        assert!(a.windows(2).all(|w| w[0].arrival <= w[1].arrival));
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.arrival == y.arrival && x.tasks == y.tasks));
        let batch = a.iter().filter(|j| j.kind == JobKind::Batch).count();
        let expected = config.horizon / config.batch.interarrival;
        assert!((batch as f64 - expected).abs() < expected * 0.1, "{batch}");
    }
}
