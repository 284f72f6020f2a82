//! keel-sim: the scheduling simulator's command line — one simulation, or the Omega paper's
//! experiments as markdown tables and SVG plots.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use keel_sim::experiments;
use keel_sim::simulation::{simulate, Architecture, DecisionTime, SimConfig};

#[derive(Debug, Parser)]
#[command(
    name = "keel-sim",
    version,
    about = "Simulate monolithic, two-level and shared-state cluster scheduling."
)]
struct Flags {
    #[command(subcommand)]
    command: Command,
    /// Every random choice comes from this seed.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Simulated hours.
    #[arg(long, global = true, default_value_t = 6.0)]
    hours: f64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Arch {
    Monolithic,
    TwoLevel,
    SharedState,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One simulation; prints its report.
    Run {
        /// How scheduling is organised.
        #[arg(long, value_enum, default_value_t = Arch::SharedState)]
        architecture: Arch,
        /// Parallel batch schedulers.
        #[arg(long, default_value_t = 1)]
        batch_schedulers: usize,
        /// The service scheduler's decision time per job, seconds.
        #[arg(long, default_value_t = 0.1)]
        service_seconds_per_job: f64,
    },
    /// The paper's experiments: a markdown report on stdout, plots in `--out`.
    Experiments {
        /// Where the SVG plots go.
        #[arg(long, default_value = "docs/omega")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if !(flags.hours > 0.0 && flags.hours <= 24.0 * 30.0) {
        anyhow::bail!("--hours must be in (0, 720]");
    }
    let mut base = SimConfig {
        seed: flags.seed,
        ..Default::default()
    };
    base.workload.horizon = flags.hours * 3600.0;
    match flags.command {
        Command::Run {
            architecture,
            batch_schedulers,
            service_seconds_per_job,
        } => {
            let config = SimConfig {
                architecture: match architecture {
                    Arch::Monolithic => Architecture::Monolithic,
                    Arch::TwoLevel => Architecture::TwoLevel,
                    Arch::SharedState => Architecture::SharedState,
                },
                batch_schedulers: batch_schedulers.clamp(1, 1024),
                service_decision: DecisionTime {
                    per_job: service_seconds_per_job.max(0.0),
                    per_task: base.service_decision.per_task,
                },
                ..base
            };
            println!("{:#?}", simulate(&config));
        }
        Command::Experiments { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let all = [
                experiments::slow_service_scheduler(
                    &base,
                    &[0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 60.0, 100.0],
                ),
                experiments::parallel_batch_schedulers(&base, &[1, 2, 4, 8, 16, 32]),
                experiments::conflict_and_commit_modes(&base, 10.0),
                experiments::reliability_aware_placement(
                    &base,
                    keel_sim::simulation::FailureModel::default(),
                    &[0.05, 0.1, 0.2],
                ),
            ];
            for e in all {
                let path = out.join(format!("{}.svg", e.name));
                std::fs::write(&path, &e.svg)
                    .with_context(|| format!("writing {}", path.display()))?;
                // Linked as from the directory holding `out` (docs/omega.md for docs/omega).
                let dir = out
                    .file_name()
                    .map_or_else(String::new, |d| d.to_string_lossy().into_owned());
                println!(
                    "### {}\n\n{}\n![{}]({dir}/{}.svg)\n",
                    e.name, e.table, e.name, e.name
                );
            }
        }
    }
    Ok(())
}
