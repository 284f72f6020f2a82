//! `keel-cluster-sim`: runs seeded whole-cluster simulations and reports each failing seed
//! (see the `cluster_sim` crate).

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use cluster_sim::{run, ClusterShape, RunConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Seeded whole-cluster simulations of Keel: a real master, emulated agents, a real scheduler driver, faults from a seed, invariants checked after every step."
)]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Faults per seed.
    #[arg(long, default_value_t = 8)]
    faults: u32,
    /// Seconds of simulated time the faults are spread over.
    #[arg(long, default_value_t = 600)]
    fault_window_seconds: u64,
    /// Masters: 1 runs alone; more contend in a ZooKeeper stand-in (sessions, elections,
    /// leaders cut off from it, a fenced registry).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=9))]
    masters: u64,
    /// Agents in the cluster.
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Frameworks, each with its own job.
    #[arg(long, default_value_t = 2)]
    frameworks: usize,
    /// Tasks in each framework's job.
    #[arg(long, default_value_t = 40)]
    tasks: u32,
    /// Crashes of the framework's scheduler per seed (each followed by a failover).
    #[arg(long, default_value_t = 1)]
    framework_failovers: u32,
    /// Masters keep no registry: a restarted master learns the cluster from re-registrations.
    #[arg(long)]
    soft_state: bool,
    /// Run each failing seed again and check that it replays (same digest).
    #[arg(long)]
    check_replay: bool,
    /// Print every seed's outcome, not only the failing ones.
    #[arg(long)]
    verbose: bool,
    /// Log filter for the simulated nodes (e.g. `debug`); quiet by default.
    #[arg(long, env = "RUST_LOG", default_value = "off")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let config = RunConfig {
        shape: ClusterShape {
            masters: args.masters as usize,
            agents: args.agents,
            tasks: args.tasks,
            frameworks: args.frameworks,
            registry: !args.soft_state,
            ..ClusterShape::default()
        },
        framework_failovers: args.framework_failovers,
        faults: args.faults,
        fault_window: Duration::from_secs(args.fault_window_seconds),
        ..RunConfig::default()
    };
    let started = Instant::now();
    let (mut failed, mut faults, mut messages, mut simulated) = (Vec::new(), 0u64, 0u64, 0f64);
    let mut elections = 0u64;
    // Progress on stderr, about every 5 % of the seeds, so that a long run shows it moves.
    let every = (args.seeds / 20).max(1);
    for (done, seed) in (args.first_seed..args.first_seed + args.seeds).enumerate() {
        if done > 0 && (done as u64).is_multiple_of(every) {
            eprintln!(
                "{done}/{} seeds, {} failed, {faults} faults, {:.0} s",
                args.seeds,
                failed.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let outcome = run(seed, &config);
        faults += u64::from(outcome.faults);
        messages += outcome.messages;
        elections += outcome.elections;
        simulated += outcome.simulated.as_secs_f64();
        if args.verbose && outcome.passed() {
            println!("{outcome}");
        }
        if !outcome.passed() {
            println!("{outcome}");
            if args.check_replay {
                let again = run(seed, &config);
                println!(
                    "  replay: digest {:016x} ({})",
                    again.digest,
                    if again.digest == outcome.digest {
                        "the same"
                    } else {
                        "DIFFERENT"
                    }
                );
            }
            failed.push(seed);
        }
    }
    println!(
        "{} seeds ({}..{}), {} failed, {faults} faults, {elections} elections, {messages} messages, {:.1} h simulated, {:.1} s",
        args.seeds,
        args.first_seed,
        args.first_seed + args.seeds - 1,
        failed.len(),
        simulated / 3600.0,
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("failing seeds: {failed:?} (replay one with --first-seed S --seeds 1)");
    }
    Ok(())
}
