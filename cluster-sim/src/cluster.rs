//! The simulated cluster: real masters (with their real allocators, see [`Masters`]),
//! [`SimAgent`]s and real scheduler drivers each running a [`BatchJob`], each on its own node
//! of one [`SimNetwork`], and what it takes to crash and restart them. A restarted node takes
//! its old address; a restarted agent reads its old [`AgentDisk`]; a restarted master recovers
//! the registry from a store that outlives it (or, with soft state, starts empty and learns
//! the cluster again from re-registrations); a restarted scheduler carries on with its
//! framework's job. With several masters, agents and frameworks follow the leader the
//! ensemble names, as their detectors do, whenever they can reach the ensemble.

use std::sync::Arc;
use std::time::Duration;

use frameworks::scheduler_driver::{self, SchedulerHandle, SchedulerOptions};
use libactor::{Node, NodeRandom, ProcessRef, SimNetwork, Upid};
use parking_lot::Mutex;
use protos::v1::FrameworkInfo;
use resources::Resources;

use crate::agent::{AgentDisk, SimAgent};
use crate::ensemble::{LEADER_PATIENCE, ZOOKEEPER};
use crate::faults::MasterPick;
use crate::framework::{BatchJob, JobState};
use crate::ledger::Ledger;
use crate::masters::Masters;

/// What a simulated cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterShape {
    /// Masters: one runs alone (as `keel-master` without `--zk`); several contend in a
    /// ZooKeeper stand-in and one leads.
    pub masters: usize,
    /// Agents.
    pub agents: usize,
    /// What each agent offers.
    pub agent_resources: Resources,
    /// Frameworks, each running its own batch job (DRF shares the agents between them).
    pub frameworks: usize,
    /// Tasks in each framework's job.
    pub tasks: u32,
    /// What each task takes.
    pub task_resources: Resources,
    /// Each task runs between these many seconds (drawn from the seed).
    pub task_seconds: (u64, u64),
    /// The master keeps its registry (admitted agents and frameworks) in a store that
    /// survives its crashes, and a restarted master recovers from it; without, a restarted
    /// master starts empty and learns the cluster from re-registrations.
    pub registry: bool,
    /// How long a recovered master waits for the registry's agents before it marks them
    /// unreachable.
    pub agent_reregister_timeout: Duration,
    /// With several masters, how long a leader that cannot reach the ensemble goes on leading
    /// before it exits (`keel-master`'s rule, [`LEADER_PATIENCE`]; longer only to show that
    /// the checks catch two masters acting at once).
    pub leader_patience: Duration,
}

impl Default for ClusterShape {
    fn default() -> Self {
        ClusterShape {
            masters: 1,
            agents: 4,
            frameworks: 2,
            agent_resources: "cpus:4;mem:4096".parse().unwrap_or_default(),
            tasks: 40,
            task_resources: "cpus:1;mem:256".parse().unwrap_or_default(),
            task_seconds: (5, 90),
            registry: true,
            agent_reregister_timeout: Duration::from_secs(120),
            leader_patience: LEADER_PATIENCE,
        }
    }
}

/// Why the cluster could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node did not start.
    #[error("a simulated node did not start: {0}")]
    Node(#[from] libactor::config::NodeError),
    /// A process did not spawn.
    #[error("a process did not spawn: {0}")]
    Spawn(#[from] libactor::SpawnError),
    /// The registry could not be recovered.
    #[error("the registry could not be recovered: {0}")]
    Registry(#[from] master::registrar::RegistrarError),
    /// The ensemble kept changing without time passing (elections or leaders giving up in a
    /// loop).
    #[error("the ensemble changed {0} times at one instant")]
    Unsettled(u32),
}

/// Changes of the ensemble at one instant beyond which it counts as looping.
const MAX_CHANGES_AT_ONE_INSTANT: u32 = 100;

/// One agent's place in the cluster: its address, its disk, and its node and process while
/// it runs.
struct AgentSlot {
    port: u16,
    disk: Arc<Mutex<AgentDisk>>,
    running: Option<(Node, ProcessRef<SimAgent>)>,
    /// The leader's address as its detector last told it.
    follows: String,
}

/// The running cluster.
pub struct Cluster {
    net: SimNetwork,
    shape: ClusterShape,
    ledger: Ledger,
    /// Seeds for the nodes, drawn in the order nodes start.
    seeds: NodeRandom,
    masters: Masters,
    /// When the ensemble last changed, and how many times in a row at that instant.
    changes: (Option<std::time::Instant>, u32),
    agents: Vec<AgentSlot>,
    frameworks: Vec<FrameworkSlot>,
}

/// One framework's place in the cluster: its address, its job (which outlives its scheduler
/// instances), and its node and driver while a scheduler runs.
struct FrameworkSlot {
    port: u16,
    job: Arc<Mutex<JobState>>,
    running: Option<(Node, SchedulerHandle<BatchJob>)>,
    /// The leader's address as its detector last told it.
    follows: String,
}

impl Cluster {
    /// Starts the masters, the agents and the frameworks on `net`, every choice drawn from
    /// `seeds`.
    pub async fn start(
        net: &SimNetwork,
        shape: ClusterShape,
        seeds: NodeRandom,
        ledger: Ledger,
    ) -> Result<Cluster, ClusterError> {
        let masters = Masters::start(net, &shape, &seeds).await?;
        let master_pid = masters.leader_pid();
        let mut agents = Vec::new();
        for _ in 0..shape.agents {
            let node = net.node(seeds.next_u64()).start()?;
            let disk = Arc::new(Mutex::new(AgentDisk::default()));
            let agent = node.spawn_ref(
                "slave(1)",
                SimAgent::new(
                    master_pid.clone(),
                    shape.agent_resources.clone(),
                    disk.clone(),
                    ledger.clone(),
                ),
            )?;
            agents.push(AgentSlot {
                port: node.socket_addr().port(),
                disk,
                running: Some((node, agent)),
                follows: masters.leader_address(),
            });
        }
        let mut frameworks = Vec::new();
        for j in 0..shape.frameworks {
            let (low, high) = shape.task_seconds;
            let runtimes = (0..shape.tasks)
                .map(|_| low + seeds.next_u64() % (high - low + 1))
                .collect();
            // Task ids name their job: the ledger tells every framework's tasks apart.
            let name = if j == 0 {
                "job".to_owned()
            } else {
                format!("job{j}")
            };
            let job = Arc::new(Mutex::new(JobState::new(
                &name,
                shape.task_resources.clone(),
                runtimes,
            )));
            let node = net.node(seeds.next_u64()).start()?;
            let driver = start_scheduler(&node, master_pid.clone(), &job, &ledger)?;
            frameworks.push(FrameworkSlot {
                port: node.socket_addr().port(),
                job,
                running: Some((node, driver)),
                follows: masters.leader_address(),
            });
        }
        Ok(Cluster {
            net: net.clone(),
            shape,
            ledger,
            seeds,
            masters,
            changes: (None, 0),
            agents,
            frameworks,
        })
    }

    /// How many agents the cluster has (running or not).
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The addresses of the nodes running now: the masters', then the agents', then the
    /// frameworks'.
    pub fn addresses(&self) -> Vec<String> {
        self.running_nodes()
            .iter()
            .map(|n| n.address().to_owned())
            .collect()
    }

    /// The nodes running now, in the order of [`Cluster::addresses`].
    pub fn running_nodes(&self) -> Vec<Node> {
        let mut nodes = self.masters.running_nodes();
        nodes.extend(
            self.agents
                .iter()
                .filter_map(|a| a.running.as_ref().map(|(n, _)| n.clone())),
        );
        nodes.extend(
            self.frameworks
                .iter()
                .filter_map(|f| f.running.as_ref().map(|(n, _)| n.clone())),
        );
        nodes
    }

    /// The masters.
    pub fn masters(&self) -> &Masters {
        &self.masters
    }

    /// The leading master's address (whether it runs or not).
    pub fn master_address(&self) -> String {
        self.masters.leader_address()
    }

    /// What agents and frameworks are cut off from when they are cut off from the masters:
    /// every master, and the ensemble where there is one.
    pub fn master_side(&self) -> Vec<String> {
        let mut side = self.masters.addresses();
        if self.masters.is_replicated() {
            side.push(ZOOKEEPER.to_owned());
        }
        side
    }

    /// Agent `i`'s address.
    pub fn agent_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.agents[i].port)
    }

    /// How many frameworks the cluster has.
    pub fn framework_count(&self) -> usize {
        self.frameworks.len()
    }

    /// Framework `j`'s address (whether its scheduler runs or not).
    pub fn framework_address(&self, j: usize) -> String {
        format!("127.0.0.1:{}", self.frameworks[j].port)
    }

    /// Kills framework `j`'s scheduler (its job's state survives); false if it was down.
    pub async fn crash_framework(&mut self, j: usize) -> bool {
        let Some((node, _)) = self.frameworks[j].running.take() else {
            return false;
        };
        self.net.crash(&node).await;
        true
    }

    /// Starts a new instance of framework `j`'s scheduler, which fails over to it with the
    /// framework's id (once the first instance registered); false if one runs.
    pub fn restart_framework(&mut self, j: usize) -> Result<bool, ClusterError> {
        if self.frameworks[j].running.is_some() {
            return Ok(false);
        }
        let node = self.node_at(self.frameworks[j].port)?;
        let master = self.masters.leader_pid();
        let slot = &self.frameworks[j];
        let driver = start_scheduler(&node, master, &slot.job, &self.ledger)?;
        self.frameworks[j].running = Some((node, driver));
        self.frameworks[j].follows = self.masters.leader_address();
        Ok(true)
    }

    /// Whether agent `i` runs.
    pub fn agent_is_up(&self, i: usize) -> bool {
        self.agents[i].running.is_some()
    }

    /// Kills master `pick`'s node; false if it was down.
    pub async fn crash_master(&mut self, pick: MasterPick) -> bool {
        self.masters.crash(pick).await
    }

    /// Starts every master that is down again at its address (recovering the registry, if
    /// it keeps one, once it leads); false if none was down.
    pub async fn restart_masters(&mut self) -> Result<bool, ClusterError> {
        self.masters.restart_down(&self.seeds).await
    }

    /// Plays the ensemble up to now (elections, leaders giving up) and tells every agent and
    /// framework that can reach it which master leads, as their detectors would. Returns
    /// whether anything changed.
    pub async fn tick(&mut self) -> Result<bool, ClusterError> {
        if !self.masters.is_replicated() {
            return Ok(false);
        }
        let mut changed = self.masters.tick(&self.seeds).await?;
        let leader = self.masters.leader_address();
        let pid = self.masters.leader_pid();
        for slot in &mut self.agents {
            let Some((node, agent)) = &slot.running else {
                continue;
            };
            if slot.follows != leader && !self.net.is_cut(node.address(), ZOOKEEPER) {
                let pid = pid.clone();
                agent.dispatch(move |a, ctx| a.set_master(ctx, pid));
                slot.follows = leader.clone();
                changed = true;
            }
        }
        for slot in &mut self.frameworks {
            let Some((node, driver)) = &slot.running else {
                continue;
            };
            if slot.follows != leader && !self.net.is_cut(node.address(), ZOOKEEPER) {
                driver.set_master(pid.clone());
                slot.follows = leader.clone();
                changed = true;
            }
        }
        if changed {
            let now = self.net.clock().now();
            self.changes = match self.changes {
                (Some(at), n) if at == now => (Some(at), n + 1),
                _ => (Some(now), 1),
            };
            if self.changes.1 > MAX_CHANGES_AT_ONE_INSTANT {
                return Err(ClusterError::Unsettled(self.changes.1));
            }
        }
        Ok(changed)
    }

    /// When the ensemble next acts on its own, if it will.
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        self.masters.next_deadline()
    }

    /// Kills agent `i`'s node (its disk survives); false if it was down.
    pub async fn crash_agent(&mut self, i: usize) -> bool {
        let Some((node, _)) = self.agents[i].running.take() else {
            return false;
        };
        self.net.crash(&node).await;
        true
    }

    /// Starts agent `i` again from its disk; false if it runs.
    pub fn restart_agent(&mut self, i: usize) -> Result<bool, ClusterError> {
        if self.agents[i].running.is_some() {
            return Ok(false);
        }
        let node = self.node_at(self.agents[i].port)?;
        let agent = node.spawn_ref(
            "slave(1)",
            SimAgent::new(
                self.masters.leader_pid(),
                self.shape.agent_resources.clone(),
                self.agents[i].disk.clone(),
                self.ledger.clone(),
            ),
        )?;
        self.agents[i].running = Some((node, agent));
        self.agents[i].follows = self.masters.leader_address();
        Ok(true)
    }

    /// A new node at the address a crashed one had (its port on 127.0.0.1).
    fn node_at(&self, port: u16) -> Result<Node, ClusterError> {
        Ok(self
            .net
            .node(self.seeds.next_u64())
            .bind(([127, 0, 0, 1], port).into())
            .start()?)
    }

    /// What the leading master finds wrong with its own books (nothing while none leads),
    /// and whatever broke "one master acting per epoch".
    pub async fn audit(&self) -> Vec<String> {
        let mut problems = self.masters.violations();
        if let Some(handle) = self.masters.leading() {
            problems.extend(
                handle
                    .master
                    .call(|m, _| m.audit())
                    .await
                    .unwrap_or_else(|_| vec!["the master process has ended".into()]),
            );
        }
        problems
    }

    /// Tasks the leading master holds as live (0 while none leads).
    pub async fn master_tasks(&self) -> usize {
        match self.masters.leading() {
            Some(handle) => handle.master.call(|m, _| m.task_count()).await.unwrap_or(0),
            None => 0,
        }
    }

    /// Over every framework's job: (instances finished, tasks live as the frameworks see
    /// them, whether every job is done).
    pub fn jobs(&self) -> (usize, usize, bool) {
        self.frameworks
            .iter()
            .fold((0, 0, true), |(f, l, d), slot| {
                let job = slot.job.lock();
                (f + job.finished(), l + job.live(), d && job.is_done())
            })
    }

    /// Every framework's live tasks, with the state last heard.
    pub fn live_tasks(&self) -> Vec<(String, protos::v1::TaskState)> {
        self.frameworks
            .iter()
            .flat_map(|slot| slot.job.lock().live_tasks())
            .collect()
    }

    /// Over all agents' disks: (tasks still running, updates not yet acknowledged).
    pub fn agents_outstanding(&self) -> (usize, usize) {
        let mut running = 0;
        let mut updates = 0;
        for slot in &self.agents {
            let disk = slot.disk.lock();
            running += disk
                .tasks
                .values()
                .filter(|t| !t.state.is_terminal())
                .count();
            updates += disk.tasks.values().map(|t| t.updates.len()).sum::<usize>();
        }
        (running, updates)
    }
}

/// Starts a scheduler instance for `job` on `node`: a new framework, or the failover of the
/// one the job already belongs to.
fn start_scheduler(
    node: &Node,
    master: Upid,
    job: &Arc<Mutex<JobState>>,
    ledger: &Ledger,
) -> Result<SchedulerHandle<BatchJob>, ClusterError> {
    let info = FrameworkInfo {
        id: job.lock().framework_id().cloned(),
        name: "simulated batch".into(),
        user: "keel".into(),
        failover_timeout: Some(Duration::from_secs(3600).as_secs_f64()),
        checkpoint: true,
        ..Default::default()
    };
    Ok(scheduler_driver::start(
        node,
        master,
        info,
        BatchJob::new(job.clone(), ledger.clone()),
        SchedulerOptions::default(),
    )?)
}
