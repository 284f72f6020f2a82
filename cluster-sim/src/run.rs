//! One seeded run: builds the cluster on a fresh [`SimNetwork`], drives it on the paused
//! clock — settle, check, then move time to the next timer or fault — and reports what it
//! found ([`Outcome`]).
//!
//! Checked after every step: the ledger's safety invariants (no task started twice, none
//! started after its framework was told it ended, no state after a definitive end, no agent
//! given more than it has) and the master's own books (used + offered ≤ total on every
//! agent, indexes that agree). Checked at the end, once every fault is over and the cluster
//! has had time to recover: the job finished (liveness), no task runs on any agent, every
//! update was acknowledged, and the framework and the master agree that nothing is live. And
//! over the whole run: no message storm (something retrying itself into thousands of messages
//! does not break safety, but it is a bug all the same).

use std::time::Duration;

use libactor::{FilterGuard, NodeRandom, SimNetwork};

use crate::cluster::{Cluster, ClusterShape};
use crate::ensemble::ZOOKEEPER;
use crate::faults::{Direction, Fault, FaultPlan, Isolation};
use crate::ledger::Ledger;

/// How a run is set up (the seed aside).
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The cluster.
    pub shape: ClusterShape,
    /// Faults injected.
    pub faults: u32,
    /// Over how long (from the start) the faults are spread.
    pub fault_window: Duration,
    /// How long after the last fault the job has to finish.
    pub recovery: Duration,
    /// Crashes of the framework's scheduler (each followed by a new instance), beside the
    /// other faults and drawn apart from them.
    pub framework_failovers: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            shape: ClusterShape::default(),
            faults: 8,
            fault_window: Duration::from_secs(600),
            recovery: Duration::from_secs(1800),
            framework_failovers: 1,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The fingerprint of every message between nodes, in order (equal for a replay).
    pub digest: u64,
    /// Messages between nodes.
    pub messages: u64,
    /// Faults injected.
    pub faults: u32,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Tasks started on agents (first attempts and replacements).
    pub tasks_started: usize,
    /// Instances of the jobs that finished.
    pub finished: usize,
    /// Leaders elected (0 with a single master).
    pub elections: u64,
    /// Every invariant broken, in the order found; empty for a passing run.
    pub violations: Vec<String>,
}

impl Outcome {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} — {} faults, {} messages, {:.0} s simulated, {} tasks started, {} instances finished, {} elections, digest {:016x}",
            self.seed,
            if self.passed() { "ok" } else { "FAILED" },
            self.faults,
            self.messages,
            self.simulated.as_secs_f64(),
            self.tasks_started,
            self.finished,
            self.elections,
            self.digest
        )?;
        for v in &self.violations {
            write!(f, "\n  violation: {v}")?;
        }
        Ok(())
    }
}

/// Runs seed `seed` to its end on a network of its own.
pub fn run(seed: u64, config: &RunConfig) -> Outcome {
    // Iteration orders of the master's maps must replay too.
    master::fast_hash::use_fixed_seeds();
    let net = match SimNetwork::start(1_800_000_000) {
        Ok(net) => net,
        Err(e) => return failed(seed, format!("the simulation could not start: {e}")),
    };
    let outcome = net.block_on({
        let net = net.clone();
        let config = config.clone();
        async move { drive(net, seed, config).await }
    });
    net.stop();
    outcome
}

fn failed(seed: u64, why: String) -> Outcome {
    Outcome {
        seed,
        digest: 0,
        messages: 0,
        faults: 0,
        simulated: Duration::ZERO,
        tasks_started: 0,
        finished: 0,
        elections: 0,
        violations: vec![why],
    }
}

/// The driver, on the network's thread.
async fn drive(net: SimNetwork, seed: u64, config: RunConfig) -> Outcome {
    let rng = NodeRandom::seeded(seed);
    let ledger = Ledger::default();
    let clock = net.clock().clone();
    let start = clock.now();
    let mut cluster = match Cluster::start(
        &net,
        config.shape.clone(),
        NodeRandom::seeded(rng.next_u64()),
        ledger.clone(),
    )
    .await
    {
        Ok(cluster) => cluster,
        Err(e) => return failed(seed, e.to_string()),
    };
    let mut plan = FaultPlan::draw(
        &rng,
        cluster.masters().count(),
        cluster.agent_count(),
        cluster.framework_count(),
        config.faults,
        start,
        config.fault_window,
    );
    plan.add_framework_failovers(
        &NodeRandom::seeded(!seed),
        cluster.framework_count(),
        config.framework_failovers,
        start,
        config.fault_window,
    );
    let mut storm: Vec<FilterGuard> = Vec::new();
    let mut violations = Vec::new();
    let mut injected = 0;
    let mut deadline = start + config.fault_window + config.recovery;
    loop {
        if let Err(e) = net.settle().await {
            violations.push(e.to_string());
            break;
        }
        match cluster.tick().await {
            // Whoever the ensemble told has something to do first.
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                violations.push(e.to_string());
                break;
            }
        }
        violations.extend(ledger.violations());
        violations.extend(cluster.audit().await);
        if !violations.is_empty() {
            break;
        }
        let now = clock.now();
        let (_, _, done) = cluster.jobs();
        if done && plan.is_empty() {
            break;
        }
        if plan.is_empty() && now >= deadline {
            let (finished, live, _) = cluster.jobs();
            violations.push(format!(
                "liveness: the jobs are not done {:.0} s after the last fault ({finished} of {} instances finished, {live} tasks live: {:?})",
                config.recovery.as_secs_f64(),
                config.shape.tasks as usize * config.shape.frameworks,
                cluster.live_tasks()
            ));
            break;
        }
        if let Some(fault) = plan.pop_due(now) {
            injected += u32::from(fault.is_disturbance());
            tracing::debug!(?fault, "injecting");
            if let Err(e) = apply(&net, &mut cluster, &mut storm, fault, &rng).await {
                violations.push(e);
                break;
            }
            if plan.is_empty() {
                deadline = clock.now() + config.recovery;
            }
            continue;
        }
        let to_fault = [plan.next_at(), cluster.next_deadline()]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now));
        let step = match (clock.next_timer_in(), to_fault) {
            (Some(timer), Some(fault)) => timer.min(fault),
            (Some(timer), None) => timer,
            (None, Some(fault)) => fault,
            (None, None) => deadline.saturating_duration_since(now),
        };
        let step = if plan.is_empty() {
            step.min(deadline.saturating_duration_since(now))
        } else {
            step
        };
        clock.advance(step);
    }
    drop(storm);
    if violations.is_empty() {
        violations.extend(settle_and_check_end(&net, &mut cluster, &ledger).await);
    }
    let simulated = clock.now().saturating_duration_since(start);
    if let Some(storm) = message_storm(net.messages(), simulated) {
        violations.push(storm);
    }
    let (finished, _, _) = cluster.jobs();
    Outcome {
        seed,
        digest: net.digest(),
        messages: net.messages(),
        faults: injected,
        simulated,
        tasks_started: ledger.launches(),
        finished,
        elections: cluster.masters().elections(),
        violations,
    }
}

/// Messages per simulated second a run may average (with [`MESSAGE_ALLOWANCE`] on top): ten
/// times the most any seed of 200 with 40 faults needs. More means something retries itself
/// into a storm.
pub const MESSAGES_PER_SECOND: f64 = 20.0;
/// Messages a run may send beyond its per-second budget.
pub const MESSAGE_ALLOWANCE: u64 = 2_000;

/// Why a run's traffic counts as a storm, if it does.
fn message_storm(messages: u64, simulated: Duration) -> Option<String> {
    let budget = MESSAGE_ALLOWANCE + (MESSAGES_PER_SECOND * simulated.as_secs_f64()) as u64;
    (messages > budget).then(|| {
        format!(
            "message storm: {messages} messages in {:.0} simulated seconds (budget {budget})",
            simulated.as_secs_f64()
        )
    })
}

/// Does one fault to the cluster.
async fn apply(
    net: &SimNetwork,
    cluster: &mut Cluster,
    storm: &mut Vec<FilterGuard>,
    fault: Fault,
    rng: &NodeRandom,
) -> Result<(), String> {
    match fault {
        Fault::CrashMaster(pick) => {
            cluster.crash_master(pick).await;
        }
        Fault::RestartMaster => {
            cluster.restart_masters().await.map_err(|e| e.to_string())?;
        }
        Fault::IsolateMaster(pick, isolation) => {
            let k = cluster.masters().resolve(pick);
            let master = cluster.masters().address(k);
            let others = match isolation {
                Isolation::Ensemble => vec![ZOOKEEPER.to_owned()],
                Isolation::Everyone => {
                    let mut others = cluster.addresses();
                    others.extend(cluster.master_side());
                    others
                }
            };
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            net.partition(&[&master], &others);
        }
        Fault::CrashAgent(i) => {
            cluster.crash_agent(i).await;
        }
        Fault::RestartAgent(i) => {
            cluster.restart_agent(i).map_err(|e| e.to_string())?;
        }
        Fault::PartitionAgent(i) => {
            cut_from_masters(net, cluster, &cluster.agent_address(i));
        }
        Fault::PartitionFramework(j) => {
            cut_from_masters(net, cluster, &cluster.framework_address(j));
        }
        Fault::Heal => net.heal(),
        Fault::CrashFramework(j) => {
            cluster.crash_framework(j).await;
        }
        Fault::RestartFramework(j) => {
            cluster.restart_framework(j).map_err(|e| e.to_string())?;
        }
        Fault::Storm(faults) => {
            for node in cluster.running_nodes() {
                storm.push(node.inject_faults(faults, rng.next_u64(), |_| true));
            }
        }
        Fault::Calm => storm.clear(),
        Fault::ClockJump(by) => net.clock().advance(by),
        Fault::Stall(direction, d) => {
            let master = cluster.master_address();
            let (from, to) = match direction {
                Direction::AgentToMaster(i) => (cluster.agent_address(i), master),
                Direction::MasterToAgent(i) => (master, cluster.agent_address(i)),
                Direction::FrameworkToMaster(j) => (cluster.framework_address(j), master),
                Direction::MasterToFramework(j) => (master, cluster.framework_address(j)),
            };
            net.stall(&from, &to, d);
        }
    }
    Ok(())
}

/// Cuts `address` off from every master (and the ensemble, where there is one).
fn cut_from_masters(net: &SimNetwork, cluster: &Cluster, address: &str) {
    let side = cluster.master_side();
    let side: Vec<&str> = side.iter().map(String::as_str).collect();
    net.partition(&[address], &side);
}

/// After the job: every node back, a quiet spell for the last updates and acknowledgements,
/// then nothing may be left running or unacknowledged anywhere.
async fn settle_and_check_end(
    net: &SimNetwork,
    cluster: &mut Cluster,
    ledger: &Ledger,
) -> Vec<String> {
    let clock = net.clock();
    let quiet_until = clock.now() + Duration::from_secs(300);
    loop {
        if let Err(e) = net.settle().await {
            return vec![e.to_string()];
        }
        match cluster.tick().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => return vec![e.to_string()],
        }
        let now = clock.now();
        if now >= quiet_until {
            break;
        }
        let step = [cluster.next_deadline(), Some(quiet_until)]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
            .min(clock.next_timer_in().unwrap_or(Duration::MAX));
        clock.advance(step);
    }
    let mut problems = ledger.violations();
    problems.extend(cluster.audit().await);
    let (running, updates) = cluster.agents_outstanding();
    if running > 0 || updates > 0 {
        problems.push(format!(
            "at the end {running} tasks still run on agents and {updates} updates are unacknowledged"
        ));
    }
    if cluster.masters().leading().is_none() {
        problems.push("at the end no master leads".to_owned());
    }
    let (_, live, _) = cluster.jobs();
    let master_tasks = cluster.master_tasks().await;
    if live > 0 || master_tasks > 0 {
        problems.push(format!(
            "at the end the framework holds {live} tasks live and the master {master_tasks}"
        ));
    }
    problems
}
