//! The simulated cluster's masters, and what `keel-master` does around a [`Master`].
//!
//! With one master (as `keel-master` without `--zk`) it runs at one address; a restarted
//! master takes that address and recovers the registry (or, with soft state, starts empty).
//!
//! With several (as `keel-master --zk`), every master node runs a [`StandbyMaster`] and holds a
//! session in the [`Ensemble`]; the one whose session leads replaces its standby with a
//! [`Master`] that recovers the registry through its session's fence. The harness plays
//! `keel-master`'s part: a leader exits once it has not reached the ensemble for
//! [`LEADER_PATIENCE`](crate::ensemble::LEADER_PATIENCE), or once its registrar fails, and
//! its supervisor starts it again at once as a standby. Electing a master while another still
//! leads is recorded as a violation.

use std::collections::BTreeSet;
use std::time::Instant;

use coordination::{AnyStore, MemoryStore};
use libactor::{Node, NodeRandom, SimNetwork, Upid};
use master::master::{AuthenticationPolicy, Master, MasterHandle};
use master::registrar::Registrar;
use master::standby::StandbyMaster;
use tokio::sync::watch;

use crate::cluster::{ClusterError, ClusterShape};
use crate::ensemble::{Ensemble, ZOOKEEPER};
use crate::faults::MasterPick;

/// A master that leads: its processes, and its registrar's failure (with a registry).
struct Leading {
    handle: MasterHandle,
    registry_failure: Option<watch::Receiver<Option<String>>>,
}

/// One master's place: its address, and its node, session and leadership while it runs.
struct MasterSlot {
    port: u16,
    node: Option<Node>,
    session: Option<u64>,
    /// The standby process, while it stands by.
    standby: Option<Upid>,
    leading: Option<Leading>,
}

/// The masters of a simulated cluster.
pub struct Masters {
    net: SimNetwork,
    shape: ClusterShape,
    slots: Vec<MasterSlot>,
    /// The registry's store, which outlives the masters (with [`ClusterShape::registry`]).
    store: MemoryStore,
    /// With several masters, the ZooKeeper stand-in they contend in.
    ensemble: Option<Ensemble>,
    /// The master agents and frameworks are told leads (the first, until one is elected).
    leader: usize,
    /// Leaders elected so far.
    elections: u64,
}

impl Masters {
    /// Starts `shape.masters` masters on `net`; with several, the first is elected before
    /// this returns.
    pub async fn start(
        net: &SimNetwork,
        shape: &ClusterShape,
        seeds: &NodeRandom,
    ) -> Result<Masters, ClusterError> {
        let mut masters = Masters {
            net: net.clone(),
            shape: shape.clone(),
            slots: Vec::new(),
            store: MemoryStore::default(),
            ensemble: (shape.masters > 1).then(|| Ensemble::new(shape.leader_patience)),
            leader: 0,
            elections: 0,
        };
        for _ in 0..shape.masters.max(1) {
            let node = net.node(seeds.next_u64()).start()?;
            masters.slots.push(MasterSlot {
                port: node.socket_addr().port(),
                node: Some(node),
                session: None,
                standby: None,
                leading: None,
            });
        }
        for k in 0..masters.slots.len() {
            masters.begin(k).await?;
        }
        masters.tick(seeds).await?;
        Ok(masters)
    }

    /// How many masters there are (running or not).
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// Master `k`'s address.
    pub fn address(&self, k: usize) -> String {
        format!("127.0.0.1:{}", self.slots[k].port)
    }

    /// Every master's address.
    pub fn addresses(&self) -> Vec<String> {
        (0..self.slots.len()).map(|k| self.address(k)).collect()
    }

    /// The address of the master that leads (or led last, or is being waited for).
    pub fn leader_address(&self) -> String {
        self.address(self.leader)
    }

    /// The pid agents and frameworks send to: the leader's `master`.
    pub fn leader_pid(&self) -> Upid {
        Upid::parse(&format!("master@{}", self.leader_address()))
            .expect("a simulated master's pid parses")
    }

    /// Whether masters contend in an ensemble (more than one).
    pub fn is_replicated(&self) -> bool {
        self.ensemble.is_some()
    }

    /// Leaders elected so far (with one master: 0).
    pub fn elections(&self) -> u64 {
        self.elections
    }

    /// The processes of the master acting as leader, if one does.
    pub fn leading(&self) -> Option<&MasterHandle> {
        self.slots
            .iter()
            .find_map(|s| s.leading.as_ref().map(|l| &l.handle))
    }

    /// The masters' nodes running now.
    pub fn running_nodes(&self) -> Vec<Node> {
        self.slots.iter().filter_map(|s| s.node.clone()).collect()
    }

    /// Which master `pick` names now.
    pub fn resolve(&self, pick: MasterPick) -> usize {
        match pick {
            MasterPick::Leader => self.leader,
            MasterPick::Nth(k) => k % self.slots.len(),
        }
    }

    /// Kills master `pick`'s node; false if it was down.
    pub async fn crash(&mut self, pick: MasterPick) -> bool {
        let k = self.resolve(pick);
        let Some(node) = self.slots[k].node.take() else {
            return false;
        };
        self.slots[k].session = None;
        self.slots[k].standby = None;
        self.slots[k].leading = None;
        self.net.crash(&node).await;
        true
    }

    /// Starts every master that is down again at its address, its node seeded from `seeds`;
    /// false if none was.
    pub async fn restart_down(&mut self, seeds: &NodeRandom) -> Result<bool, ClusterError> {
        let mut any = false;
        for k in 0..self.slots.len() {
            if self.slots[k].node.is_none() {
                let node = self
                    .net
                    .node(seeds.next_u64())
                    .bind(([127, 0, 0, 1], self.slots[k].port).into())
                    .start()?;
                self.slots[k].node = Some(node);
                self.begin(k).await?;
                any = true;
            }
        }
        Ok(any)
    }

    /// What a master process does when it starts: alone, it leads at once; in an ensemble it
    /// stands by until elected.
    async fn begin(&mut self, k: usize) -> Result<(), ClusterError> {
        let Some(node) = self.slots[k].node.clone() else {
            return Ok(());
        };
        if self.ensemble.is_none() {
            let leading = self.lead(&node, None).await?;
            self.slots[k].leading = Some(leading);
        } else {
            self.slots[k].standby = Some(node.spawn("master", StandbyMaster::new())?);
        }
        Ok(())
    }

    /// Spawns the master on `node`, with a registrar recovering from the store (through
    /// `session`'s fence, in an ensemble) or with soft state only.
    async fn lead(&self, node: &Node, session: Option<u64>) -> Result<Leading, ClusterError> {
        let id = master_id(node);
        if !self.shape.registry {
            return Ok(Leading {
                handle: Master::spawn(node, &id)?,
                registry_failure: None,
            });
        }
        let store = match (&self.ensemble, session) {
            (Some(ensemble), Some(session)) => {
                let (net, address) = (self.net.clone(), node.address().to_owned());
                self.store
                    .fenced(ensemble.fence(session, move || !net.is_cut(&address, ZOOKEEPER)))
            }
            _ => self.store.clone(),
        };
        // Taken before the registry is read, as keel-master does: agents that come back
        // meanwhile wait in its queue.
        let reserved = node.reserve("master")?;
        let registrar = Registrar::recover(AnyStore::Memory(store)).await?;
        let registry_failure = Some(registrar.failure());
        let handle = Master::spawn_recovered(
            node,
            reserved,
            &id,
            AuthenticationPolicy::default(),
            registrar,
            self.shape.agent_reregister_timeout,
        )?;
        Ok(Leading {
            handle,
            registry_failure,
        })
    }

    /// Plays ZooKeeper and `keel-master` up to now: sessions heard, leaders that must give up
    /// exiting (and starting again as standbys, on nodes seeded from `seeds`), sessions
    /// expiring, new sessions contending, and the elected master taking over. Returns whether
    /// anything changed.
    pub async fn tick(&mut self, seeds: &NodeRandom) -> Result<bool, ClusterError> {
        let Some(ensemble) = self.ensemble.clone() else {
            return Ok(false);
        };
        let now = self.net.clock().now();
        let mut changed = false;
        let heard: BTreeSet<u64> = (0..self.slots.len())
            .filter(|&k| self.reaches_ensemble(k))
            .filter_map(|k| self.slots[k].session)
            .collect();
        ensemble.hear(now, &heard);
        for k in 0..self.slots.len() {
            if self.slots[k].leading.is_some() && self.must_give_up(&ensemble, k, now) {
                self.exit_and_restart(k, seeds).await?;
                changed = true;
            }
        }
        ensemble.expire(now);
        for k in 0..self.slots.len() {
            let slot = &mut self.slots[k];
            if slot.session.is_some_and(|s| !ensemble.is_alive(s)) {
                slot.session = None;
            }
            if slot.node.is_some() && slot.session.is_none() && self.reaches_ensemble(k) {
                self.slots[k].session = Some(ensemble.open(k, now));
                changed = true;
            }
        }
        let Some(elected) = ensemble.elect() else {
            return Ok(changed);
        };
        let k = elected.master;
        if self.slots[k].session != Some(elected.session)
            || self.slots[k].leading.is_some()
            || !self.reaches_ensemble(k)
        {
            // A lingering session of a master that is gone (or cannot hear it won yet).
            if self.leader != k {
                self.leader = k;
                changed = true;
            }
            return Ok(changed);
        }
        if let Some(other) = self.slots.iter().position(|s| s.leading.is_some()) {
            ensemble.violation(format!(
                "master {k} elected in epoch {} while master {other} still leads",
                elected.epoch
            ));
        }
        let Some(node) = self.slots[k].node.clone() else {
            return Ok(changed);
        };
        if let Some(standby) = self.slots[k].standby.take() {
            node.terminate(&standby);
            node.wait(&standby).await;
        }
        let leading = self.lead(&node, Some(elected.session)).await?;
        self.slots[k].leading = Some(leading);
        self.leader = k;
        self.elections += 1;
        Ok(true)
    }

    /// Whether leader `k` must exit, as `keel-master` does: it has not reached the ensemble
    /// for the ensemble's patience, or its registrar failed.
    fn must_give_up(&self, ensemble: &Ensemble, k: usize, now: Instant) -> bool {
        let slot = &self.slots[k];
        let silent = slot
            .session
            .and_then(|s| ensemble.cut_for(s, now))
            .is_none_or(|d| d >= ensemble.patience());
        let failed = slot
            .leading
            .as_ref()
            .and_then(|l| l.registry_failure.as_ref())
            .is_some_and(|f| f.borrow().is_some());
        silent || failed
    }

    /// `keel-master` exits; its supervisor starts it again as a new contender.
    async fn exit_and_restart(&mut self, k: usize, seeds: &NodeRandom) -> Result<(), ClusterError> {
        tracing::info!(master = k, "the leader gives up leading and exits");
        self.crash(MasterPick::Nth(k)).await;
        self.restart_down(seeds).await?;
        Ok(())
    }

    /// Whether master `k` runs and can reach the ensemble.
    fn reaches_ensemble(&self, k: usize) -> bool {
        self.slots[k].node.is_some() && !self.net.is_cut(&self.address(k), ZOOKEEPER)
    }

    /// When the ensemble next has something to do on its own (a session expiring, a silent
    /// leader giving up).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = self.net.clock().now();
        self.ensemble.as_ref()?.next_deadline(now)
    }

    /// What broke "one master acting per epoch".
    pub fn violations(&self) -> Vec<String> {
        self.ensemble
            .as_ref()
            .map(Ensemble::violations)
            .unwrap_or_default()
    }
}

/// A master id as `keel-master` makes one (the time in milliseconds, in hex), from the
/// simulated clock.
fn master_id(node: &Node) -> String {
    let millis = (node.clock().unix_seconds() * 1000.0) as u64;
    format!("{:x}", millis % (1 << 40))
}
