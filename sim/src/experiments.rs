//! The Omega paper's headline experiments on this simulator, each a sweep of simulations that
//! returns a markdown table and a chart:
//!
//! - [`slow_service_scheduler`] (the paper's §5.1–5.2): the service scheduler's decision time
//!   from 0.1 s to 100 s per job, under each architecture — how busy the schedulers are, how
//!   long batch jobs wait, and how many jobs go unscheduled;
//! - [`parallel_batch_schedulers`] (§5.3, "scaling"): 1 to 32 batch schedulers on shared state
//!   under a batch load one scheduler cannot keep up with — conflict fraction, busyness, wait;
//! - [`conflict_and_commit_modes`] (§5.2, "optimizations"): coarse against fine-grained
//!   conflict detection, incremental against all-or-nothing batch commits;
//! - [`reliability_aware_placement`] (Keel's own, from seed 000's notes on Autopilot): a
//!   service scheduler that prefers machines with few failures so far, against one that does
//!   not, on the same machine-failure trace.
//!
//! Every sweep point runs with the same seed, so the architectures see the same jobs.

use crate::simulation::{
    simulate, Architecture, Commit, Conflicts, DecisionTime, FailureModel, SimConfig,
};
use crate::svg::{line_chart, Series};
use crate::workload::{JobShape, WorkloadConfig};

/// One experiment's outcome.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// A file-friendly name.
    pub name: &'static str,
    /// A markdown table of every sweep point.
    pub table: String,
    /// Its plot.
    pub svg: String,
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        headers.join(" | "),
        " --- |".repeat(headers.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn architecture_name(a: Architecture) -> &'static str {
    match a {
        Architecture::Monolithic => "monolithic",
        Architecture::TwoLevel => "two-level (offers)",
        Architecture::SharedState => "shared state (Omega)",
    }
}

/// The service scheduler's decision time per job in `per_job` (seconds), under each
/// architecture, on `base`'s cell and workload.
pub fn slow_service_scheduler(base: &SimConfig, per_job: &[f64]) -> Experiment {
    let architectures = [
        Architecture::Monolithic,
        Architecture::TwoLevel,
        Architecture::SharedState,
    ];
    let mut rows = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for architecture in architectures {
        let mut points = Vec::new();
        for &t in per_job {
            let config = SimConfig {
                architecture,
                service_decision: DecisionTime {
                    per_job: t,
                    per_task: base.service_decision.per_task,
                },
                ..base.clone()
            };
            let r = simulate(&config);
            let unscheduled = |k: &crate::simulation::KindReport| {
                (k.unscheduled + k.abandoned) as f64 / k.jobs.max(1) as f64
            };
            rows.push(vec![
                architecture_name(architecture).to_owned(),
                format!("{t}"),
                pct(r.service.busyness),
                pct(r.batch.busyness),
                format!("{:.1}", r.batch.mean_wait),
                format!("{:.1}", r.batch.p90_wait),
                pct(unscheduled(&r.batch)),
                pct(unscheduled(&r.service)),
                pct(r.service.conflict_fraction()),
                pct(r.utilization),
            ]);
            points.push((t, unscheduled(&r.batch)));
        }
        series.push(Series {
            name: architecture_name(architecture).to_owned(),
            points,
        });
    }
    Experiment {
        name: "slow-service-scheduler",
        table: table(
            &[
                "architecture",
                "service s/job",
                "service busyness",
                "batch busyness",
                "batch mean wait (s)",
                "batch p90 wait (s)",
                "batch unscheduled",
                "service unscheduled",
                "service conflict fraction",
                "CPU utilization",
            ],
            &rows,
        ),
        svg: line_chart(
            "Batch jobs left unscheduled as the service scheduler slows",
            "service scheduler decision time per job (s, log scale)",
            "fraction of batch jobs unscheduled",
            &series,
            true,
        ),
    }
}

/// A batch load one scheduler cannot keep up with (a job every 0.5 s, each decided in 1 s
/// plus 5 ms per task, tasks of two minutes), spread over each count of batch schedulers in
/// `counts`, on shared state.
pub fn parallel_batch_schedulers(base: &SimConfig, counts: &[usize]) -> Experiment {
    let mut rows = Vec::new();
    let (mut conflicts, mut busyness) = (Vec::new(), Vec::new());
    for &n in counts {
        let config = SimConfig {
            architecture: Architecture::SharedState,
            batch_schedulers: n,
            batch_decision: DecisionTime {
                per_job: 1.0,
                per_task: 0.005,
            },
            workload: WorkloadConfig {
                batch: JobShape {
                    interarrival: 0.5,
                    duration: 120.0,
                    ..base.workload.batch
                },
                ..base.workload
            },
            ..base.clone()
        };
        let r = simulate(&config);
        rows.push(vec![
            n.to_string(),
            pct(r.batch.conflict_fraction()),
            pct(r.batch.busyness),
            format!("{:.1}", r.batch.mean_wait),
            format!("{:.1}", r.batch.p90_wait),
            pct((r.batch.unscheduled + r.batch.abandoned) as f64 / r.batch.jobs.max(1) as f64),
            pct(r.utilization),
        ]);
        conflicts.push((n as f64, r.batch.conflict_fraction()));
        busyness.push((n as f64, r.batch.busyness.min(1.0)));
    }
    Experiment {
        name: "parallel-batch-schedulers",
        table: table(
            &[
                "batch schedulers",
                "conflict fraction",
                "mean busyness",
                "batch mean wait (s)",
                "batch p90 wait (s)",
                "batch unscheduled",
                "CPU utilization",
            ],
            &rows,
        ),
        svg: line_chart(
            "Parallel batch schedulers on shared state",
            "batch schedulers (log scale)",
            "fraction",
            &[
                Series {
                    name: "conflict fraction".into(),
                    points: conflicts,
                },
                Series {
                    name: "mean busyness".into(),
                    points: busyness,
                },
            ],
            true,
        ),
    }
}

/// Coarse against fine-grained conflict detection and incremental against all-or-nothing batch
/// commits, with 4 batch schedulers under the parallel experiment's load and a service
/// scheduler deciding in `service_per_job` seconds.
pub fn conflict_and_commit_modes(base: &SimConfig, service_per_job: f64) -> Experiment {
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for conflicts in [Conflicts::Fine, Conflicts::Coarse] {
        let mut points = Vec::new();
        for (i, commit) in [Commit::Incremental, Commit::AllOrNothing]
            .into_iter()
            .enumerate()
        {
            let config = SimConfig {
                architecture: Architecture::SharedState,
                batch_schedulers: 4,
                conflicts,
                batch_commit: commit,
                service_decision: DecisionTime {
                    per_job: service_per_job,
                    per_task: base.service_decision.per_task,
                },
                batch_decision: DecisionTime {
                    per_job: 1.0,
                    per_task: 0.005,
                },
                workload: WorkloadConfig {
                    batch: JobShape {
                        interarrival: 0.5,
                        duration: 120.0,
                        ..base.workload.batch
                    },
                    ..base.workload
                },
                ..base.clone()
            };
            let r = simulate(&config);
            rows.push(vec![
                format!("{conflicts:?}"),
                format!("{commit:?}"),
                pct(r.batch.conflict_fraction()),
                pct(r.service.conflict_fraction()),
                pct(r.batch.busyness),
                pct(r.service.busyness),
                format!("{:.1}", r.batch.mean_wait),
                format!("{:.1}", r.service.mean_wait),
                (r.batch.abandoned + r.service.abandoned).to_string(),
            ]);
            points.push((i as f64 + 1.0, r.batch.conflict_fraction()));
        }
        series.push(Series {
            name: format!("{conflicts:?} conflicts"),
            points,
        });
    }
    Experiment {
        name: "conflict-and-commit-modes",
        table: table(
            &[
                "conflicts",
                "batch commits",
                "batch conflict fraction",
                "service conflict fraction",
                "batch busyness",
                "service busyness",
                "batch mean wait (s)",
                "service mean wait (s)",
                "abandoned jobs",
            ],
            &rows,
        ),
        svg: line_chart(
            "Batch conflict fraction: 1 = incremental, 2 = all-or-nothing commits",
            "batch commit mode",
            "batch conflict fraction",
            &series,
            false,
        ),
    }
}

/// Service task restarts on the same machine-failure trace (`failures`, over each of
/// `flaky_fractions`), with the service scheduler placing by machines' failure records or
/// not, on shared state.
pub fn reliability_aware_placement(
    base: &SimConfig,
    failures: FailureModel,
    flaky_fractions: &[f64],
) -> Experiment {
    let mut rows = Vec::new();
    let (mut blind_points, mut aware_points) = (Vec::new(), Vec::new());
    for &flaky in flaky_fractions {
        let run = |aware: bool| {
            simulate(&SimConfig {
                architecture: Architecture::SharedState,
                failures: Some(FailureModel {
                    flaky_fraction: flaky,
                    ..failures
                }),
                reliability_aware_service: aware,
                ..base.clone()
            })
        };
        let (blind, aware) = (run(false), run(true));
        for (name, r) in [("by failure record", &aware), ("blind", &blind)] {
            rows.push(vec![
                pct(flaky),
                name.to_owned(),
                r.service.restarts.to_string(),
                r.batch.restarts.to_string(),
                format!("{:.1}", r.service.mean_wait),
                format!("{:.1}", r.batch.mean_wait),
                pct(r.utilization),
            ]);
        }
        blind_points.push((flaky * 100.0, blind.service.restarts as f64));
        aware_points.push((flaky * 100.0, aware.service.restarts as f64));
    }
    Experiment {
        name: "reliability-aware-placement",
        table: table(
            &[
                "flaky machines",
                "service placement",
                "service task restarts",
                "batch task restarts",
                "service mean wait (s)",
                "batch mean wait (s)",
                "CPU utilization",
            ],
            &rows,
        ),
        svg: line_chart(
            "Service tasks lost to machine failures",
            "flaky machines (%)",
            "service task restarts",
            &[
                Series {
                    name: "blind".into(),
                    points: blind_points,
                },
                Series {
                    name: "by failure record".into(),
                    points: aware_points,
                },
            ],
            false,
        ),
    }
}
