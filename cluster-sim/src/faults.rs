//! The faults a run injects, drawn from its seed before it starts: crashes and restarts of
//! masters and of agents, partitions (an agent or a framework cut off from the masters; with
//! several masters, a master cut off from the ZooKeeper ensemble or from everyone),
//! message storms (loss and duplication on every node), stalls (one direction of a
//! connection held up, then delivered in order: TCP delays but never reorders) and clock jumps
//! (every node stalled, then all timers due at once). Each fault that starts something draws
//! when it ends, so a run's faults are a timeline known in full from the seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libactor::{NetworkFaults, NodeRandom};

/// One thing done to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A master's node dies.
    CrashMaster(MasterPick),
    /// Every master that is down starts again at its address, knowing nothing.
    RestartMaster,
    /// A master is cut off (until the next [`Fault::Heal`]).
    IsolateMaster(MasterPick, Isolation),
    /// Agent `i`'s node dies; its disk survives.
    CrashAgent(usize),
    /// Agent `i` starts again from its disk.
    RestartAgent(usize),
    /// Agent `i` cannot reach the master, nor the master it.
    PartitionAgent(usize),
    /// Framework `j` cannot reach the master, nor the master it.
    PartitionFramework(usize),
    /// Every partition ends.
    Heal,
    /// Messages arriving at every running node are lost, duplicated or held back by chance.
    Storm(NetworkFaults),
    /// The storm ends.
    Calm,
    /// Every node stalls for this long; then every timer due meanwhile fires at once.
    ClockJump(Duration),
    /// Messages one way between two nodes are held up this long, then delivered in order.
    Stall(Direction, Duration),
    /// Framework `j`'s scheduler dies (its job's state survives, as a framework keeps it).
    CrashFramework(usize),
    /// A new instance of framework `j`'s scheduler starts and fails over to it.
    RestartFramework(usize),
}

/// Which master a fault strikes, resolved when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterPick {
    /// The one leading (or the one agents are told leads).
    Leader,
    /// Master `k` (modulo the number of masters), leading or not.
    Nth(usize),
}

/// What an isolated master is cut off from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// The ensemble only: it still reaches agents and frameworks (and must stop acting before
    /// another master is elected).
    Ensemble,
    /// Every other node.
    Everyone,
}

/// One direction of a connection between the leading master and another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From agent `i` to the master.
    AgentToMaster(usize),
    /// From the master to agent `i`.
    MasterToAgent(usize),
    /// From framework `j` to the master.
    FrameworkToMaster(usize),
    /// From the master to framework `j`.
    MasterToFramework(usize),
}

impl Fault {
    /// Whether the fault disturbs the cluster (rather than ending a disturbance: a restart,
    /// a heal, a calm). Runs count these.
    pub fn is_disturbance(&self) -> bool {
        !matches!(
            self,
            Fault::RestartMaster
                | Fault::RestartAgent(_)
                | Fault::RestartFramework(_)
                | Fault::Heal
                | Fault::Calm
        )
    }
}

/// A run's faults, by when they happen.
#[derive(Debug, Default)]
pub struct FaultPlan {
    queue: BTreeMap<(Instant, u64), Fault>,
    next_seq: u64,
}

impl FaultPlan {
    /// Draws `faults` faults over `window` from `start`, for a cluster of `masters` masters,
    /// `agents` agents and `frameworks` frameworks. (With one framework no draw picks it, and
    /// with one master no draw is made for masters: the seeds found with one framework or one
    /// master replay as they were.)
    pub fn draw(
        rng: &NodeRandom,
        masters: usize,
        agents: usize,
        frameworks: usize,
        faults: u32,
        start: Instant,
        window: Duration,
    ) -> FaultPlan {
        let mut plan = FaultPlan::default();
        let framework = || pick(rng, frameworks);
        let between =
            |low: u64, high: u64| Duration::from_secs(low + rng.next_u64() % (high - low + 1));
        for _ in 0..faults {
            let at = start + window.mul_f64(rng.fraction());
            let agent = (rng.next_u64() % agents.max(1) as u64) as usize;
            let kinds = if masters > 1 { 14 } else { 12 };
            match rng.next_u64() % kinds {
                0 | 1 => {
                    plan.add(at, Fault::CrashAgent(agent));
                    plan.add(at + between(1, 120), Fault::RestartAgent(agent));
                }
                2 => {
                    plan.add(at, Fault::CrashMaster(master_pick(rng, masters)));
                    plan.add(at + between(1, 30), Fault::RestartMaster);
                }
                12 | 13 => {
                    let isolation = if rng.next_u64().is_multiple_of(2) {
                        Isolation::Ensemble
                    } else {
                        Isolation::Everyone
                    };
                    plan.add(
                        at,
                        Fault::IsolateMaster(master_pick(rng, masters), isolation),
                    );
                    plan.add(at + between(2, 60), Fault::Heal);
                }
                3 | 4 => {
                    plan.add(at, Fault::PartitionAgent(agent));
                    plan.add(at + between(5, 150), Fault::Heal);
                }
                5 => {
                    plan.add(at, Fault::PartitionFramework(framework()));
                    plan.add(at + between(5, 60), Fault::Heal);
                }
                6 | 7 => {
                    let storm = NetworkFaults {
                        drop: 0.02 + 0.08 * rng.fraction(),
                        duplicate: 0.05 * rng.fraction(),
                        ..NetworkFaults::default()
                    };
                    plan.add(at, Fault::Storm(storm));
                    plan.add(at + between(10, 120), Fault::Calm);
                }
                8 | 9 => {
                    let direction = match rng.next_u64() % 4 {
                        0 => Direction::AgentToMaster(agent),
                        1 => Direction::MasterToAgent(agent),
                        2 => Direction::FrameworkToMaster(framework()),
                        _ => Direction::MasterToFramework(framework()),
                    };
                    plan.add(at, Fault::Stall(direction, between(1, 20)));
                }
                _ => plan.add(at, Fault::ClockJump(between(30, 300))),
            }
        }
        plan
    }

    /// Adds `failovers` crashes of the framework's scheduler over `window` from `start`, each
    /// followed within a minute by a new instance, drawn from `rng` (a generator of their own,
    /// so that the other faults of a seed stay what they were).
    pub fn add_framework_failovers(
        &mut self,
        rng: &NodeRandom,
        frameworks: usize,
        failovers: u32,
        start: Instant,
        window: Duration,
    ) {
        for _ in 0..failovers {
            let at = start + window.mul_f64(rng.fraction());
            let j = pick(rng, frameworks);
            self.add(at, Fault::CrashFramework(j));
            let back = Duration::from_secs(1 + rng.next_u64() % 60);
            self.add(at + back, Fault::RestartFramework(j));
        }
    }

    fn add(&mut self, at: Instant, fault: Fault) {
        self.queue.insert((at, self.next_seq), fault);
        self.next_seq += 1;
    }

    /// When the next fault happens.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The next fault, if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Fault> {
        let key = *self.queue.keys().next()?;
        if key.0 > now {
            return None;
        }
        self.queue.remove(&key)
    }

    /// Faults still to happen.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether every fault has happened.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Mostly the leader; otherwise any master. Without a draw when there is only one.
fn master_pick(rng: &NodeRandom, masters: usize) -> MasterPick {
    if masters < 2 {
        return MasterPick::Leader;
    }
    match rng.next_u64() % 3 {
        0 => MasterPick::Nth(pick(rng, masters)),
        _ => MasterPick::Leader,
    }
}

/// One of `n` (0 without a draw when there is only one).
fn pick(rng: &NodeRandom, n: usize) -> usize {
    if n > 1 {
        (rng.next_u64() % n as u64) as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_timeline_and_every_start_has_an_end() {
        let start = Instant::now();
        let draw = |seed| {
            let window = Duration::from_secs(600);
            let mut plan = FaultPlan::draw(&NodeRandom::seeded(seed), 3, 4, 2, 50, start, window);
            plan.add_framework_failovers(&NodeRandom::seeded(!seed), 2, 3, start, window);
            let mut faults = Vec::new();
            while let Some(at) = plan.next_at() {
                faults.push((at, plan.pop_due(at).unwrap()));
            }
            faults
        };
        let faults = draw(7);
        assert_eq!(faults, draw(7));
        assert_ne!(faults, draw(8));
        let count = |f: fn(&Fault) -> bool| faults.iter().filter(|(_, x)| f(x)).count();
        assert_eq!(
            count(|f| matches!(f, Fault::CrashAgent(_))),
            count(|f| matches!(f, Fault::RestartAgent(_)))
        );
        assert_eq!(
            count(|f| matches!(f, Fault::Storm(_))),
            count(|f| matches!(f, Fault::Calm))
        );
        assert_eq!(count(|f| matches!(f, Fault::CrashFramework(_))), 3);
        assert_eq!(count(|f| matches!(f, Fault::RestartFramework(_))), 3);
        assert!(faults.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
