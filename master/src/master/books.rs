//! The master's bookkeeping: agents, frameworks, offers and tasks, and the indexes between
//! them, owned by one type whose methods keep them consistent (Mesos keeps the same on its
//! `Slave` and `Framework` structs: `addTask`, `removeTask`, `addOffer`, `removeOffer`).
//! Handlers read through it freely and change it only through these methods.
//!
//! Invariants, checked after every change in debug builds:
//! - every offer's and task's agent is registered, and every offer's framework;
//! - an agent's used and offered resources fit in its total together, so no resource is
//!   offered twice or offered while a task holds it, and none is ever negative;
//! - the by-pid index names exactly the registered agents, an agent's offer index exactly the
//!   offers on it, and its task index the tasks on it;
//! - an agent's version changes with every change to it or to what its tasks hold.
//!
//! A task's framework need not be registered: after a failover an agent brings back the
//! tasks of frameworks that have not re-registered yet.

use std::collections::BTreeSet;

use libactor::Upid;
use protos::v1::{AgentInfo, FrameworkInfo, TaskState};
use resources::Resources;

use crate::fast_hash::{FastMap, FastSet};
use protos::v1::TaskStatus;
use protos::IllegalTaskMove;

use super::cell_log::CellLog;
use super::feed::Feed;

/// A task's key: (framework id, task id).
pub(super) type TaskKey = (String, String);

/// A registered agent.
pub(super) struct AgentEntry {
    pid: Upid,
    /// What the agent registered with.
    pub(super) info: AgentInfo,
    total: Resources,
    /// Neither used nor offered: `free + used + offered == total`, always.
    free: Resources,
    /// Held by its live tasks.
    used: Resources,
    /// In outstanding offers.
    offered: Resources,
    /// Its live tasks (the cell state lists them, and removing the agent finds them).
    tasks: FastSet<TaskKey>,
    /// The number of the latest change to it or to what it holds (see `cell_log`).
    version: u64,
    offers: FastSet<String>,
    /// A pong arrived since the last ping.
    pub(super) pong_received: bool,
    /// Pings in a row that got no pong.
    pub(super) missed_pings: u32,
    /// The principal its connection proved when it registered (secure masters only); every
    /// later message for this agent must come from the same principal.
    pub(super) principal: Option<String>,
}

impl AgentEntry {
    /// The agent's process.
    pub(super) fn pid(&self) -> &Upid {
        &self.pid
    }

    /// Everything it offers the cluster.
    pub(super) fn total(&self) -> &Resources {
        &self.total
    }

    /// What its live tasks hold.
    #[cfg(test)]
    pub(super) fn used(&self) -> &Resources {
        &self.used
    }

    /// What outstanding offers hold.
    #[cfg(test)]
    pub(super) fn offered(&self) -> &Resources {
        &self.offered
    }

    /// What is neither used nor offered.
    #[cfg(test)]
    pub(super) fn free(&self) -> &Resources {
        &self.free
    }

    /// How many live tasks it runs.
    pub(super) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Its live tasks.
    pub(super) fn task_keys(&self) -> impl Iterator<Item = &TaskKey> {
        self.tasks.iter()
    }

    /// What its live tasks hold.
    pub(super) fn used_resources(&self) -> &Resources {
        &self.used
    }

    /// What may be committed here: neither used by a task (offered resources included).
    pub(super) fn committable(&self) -> Resources {
        let mut left = self.free.clone();
        add(&mut left, &self.offered);
        left
    }

    /// What is neither used nor offered.
    pub(super) fn unheld(&self) -> &Resources {
        &self.free
    }

    /// The number of the latest change to it or to what it holds.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// Its outstanding offers.
    pub(super) fn offer_ids(&self) -> impl Iterator<Item = &String> {
        self.offers.iter()
    }
}

/// A registered framework.
pub(super) struct FrameworkEntry {
    /// Its scheduler.
    pub(super) pid: Upid,
    /// What it registered with.
    pub(super) info: FrameworkInfo,
    /// Its scheduler is connected; an inactive framework gets no offers.
    pub(super) active: bool,
    /// It asked for no offers (until it revives).
    pub(super) suppressed: bool,
    /// It subscribed to the cell (Omega): it schedules by transactions and is never offered
    /// anything, even after its scheduler reconnects.
    pub(super) shared_state: bool,
    /// Agents it has launched work on: its executors may live there after its tasks ended, so
    /// a teardown tells each of them.
    pub(super) agents: BTreeSet<String>,
}

impl FrameworkEntry {
    /// A framework just registered (or re-registered) by its scheduler at `pid`.
    pub(super) fn new(pid: Upid, info: FrameworkInfo) -> FrameworkEntry {
        FrameworkEntry {
            pid,
            info,
            active: true,
            suppressed: false,
            shared_state: false,
            agents: BTreeSet::new(),
        }
    }
}

/// An outstanding offer.
pub(super) struct OfferEntry {
    /// Offered to.
    pub(super) framework: String,
    /// On.
    pub(super) agent: String,
    /// What.
    pub(super) resources: Resources,
}

/// A live task (terminal tasks leave the books).
pub(super) struct TaskEntry {
    /// Launch order (revocation takes the newest first).
    pub(super) launched: u64,
    /// Its name.
    pub(super) name: String,
    /// Its executor's id.
    pub(super) executor: String,
    agent: String,
    /// Its state; moved only by [`TaskState::move_to`].
    pub(super) state: TaskState,
    resources: Resources,
    /// Its priority (Omega placements; 0 for tasks launched on offers).
    pub(super) priority: i32,
}

impl TaskEntry {
    /// A task on `agent` holding `resources`.
    pub(super) fn new(
        launched: u64,
        name: String,
        executor: String,
        agent: String,
        state: TaskState,
        resources: Resources,
    ) -> TaskEntry {
        TaskEntry {
            launched,
            name,
            executor,
            agent,
            state,
            resources,
            priority: 0,
        }
    }

    /// The same task with `priority`.
    pub(super) fn with_priority(mut self, priority: i32) -> TaskEntry {
        self.priority = priority;
        self
    }

    /// The agent it runs on.
    pub(super) fn agent(&self) -> &str {
        &self.agent
    }

    /// What it holds.
    pub(super) fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Its agent and what it held, once it is off the books.
    pub(super) fn into_placement(self) -> (String, Resources) {
        (self.agent, self.resources)
    }
}

/// What leaves the books with an agent.
pub(super) struct RemovedAgent {
    /// The agent.
    pub(super) entry: AgentEntry,
    /// Its outstanding offers, by id.
    pub(super) offers: Vec<(String, OfferEntry)>,
    /// Its live tasks.
    pub(super) tasks: Vec<(TaskKey, TaskEntry)>,
}

/// What leaves the books with a framework.
pub(super) struct RemovedFramework {
    /// The framework.
    pub(super) entry: FrameworkEntry,
    /// Its live tasks.
    pub(super) tasks: Vec<(TaskKey, TaskEntry)>,
}

/// Why the books refused a change.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum BooksError {
    /// No registered agent by that id.
    #[error("agent {0} is not registered")]
    UnknownAgent(String),
    /// No registered framework by that id.
    #[error("framework {0} is not registered")]
    UnknownFramework(String),
    /// The id is taken.
    #[error("{0} exists already")]
    Exists(String),
    /// It does not fit in what the agent has free.
    #[error("agent {agent} has {free} free, not {asked}")]
    DoesNotFit {
        /// The agent.
        agent: String,
        /// What it has neither offered nor used.
        free: Resources,
        /// What was asked.
        asked: Resources,
    },
}

/// The master's agents, frameworks, offers and tasks.
#[derive(Default)]
pub(super) struct Books {
    agents: FastMap<String, AgentEntry>,
    /// Agent id by agent pid: pongs and registrations find their agent without a scan.
    agent_by_pid: FastMap<Upid, String>,
    frameworks: FastMap<String, FrameworkEntry>,
    offers: FastMap<String, OfferEntry>,
    tasks: FastMap<TaskKey, TaskEntry>,
    /// The agents' versions.
    cell: CellLog,
    /// Where every change is reported (the API process), once the master has one.
    feed: Option<Feed>,
}

impl Books {
    /// Reports every change from now on to `feed`.
    pub(super) fn set_feed(&mut self, feed: Feed) {
        self.feed = Some(feed);
    }

    /// The agents' versions and the changes not yet sent to cell subscribers.
    pub(super) fn cell(&self) -> &CellLog {
        &self.cell
    }

    /// The same, to collect or take changes.
    pub(super) fn cell_mut(&mut self) -> &mut CellLog {
        &mut self.cell
    }

    /// Gives agent `id` a new version (a change the books do not see, such as a drain).
    pub(super) fn touch_agent(&mut self, id: &str) {
        if let Some(agent) = self.agents.get_mut(id) {
            agent.version = self.cell.next(id);
        }
    }

    // Agents.

    /// The agent `id`.
    pub(super) fn agent(&self, id: &str) -> Option<&AgentEntry> {
        self.agents.get(id)
    }

    /// The agent `id`, for its ping bookkeeping and info (its pid and resources change only
    /// through [`Books`]).
    pub(super) fn agent_mut(&mut self, id: &str) -> Option<&mut AgentEntry> {
        self.agents.get_mut(id)
    }

    /// Whether agent `id` is registered.
    pub(super) fn has_agent(&self, id: &str) -> bool {
        self.agents.contains_key(id)
    }

    /// The id of the agent whose process is `pid`.
    pub(super) fn agent_id_by_pid(&self, pid: &Upid) -> Option<&String> {
        self.agent_by_pid.get(pid)
    }

    /// Every registered agent.
    pub(super) fn agents(&self) -> impl Iterator<Item = (&String, &AgentEntry)> {
        self.agents.iter()
    }

    /// How many agents are registered.
    pub(super) fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Registers agent `id` at `pid` with `total` resources and nothing used or offered yet.
    pub(super) fn add_agent(
        &mut self,
        id: &str,
        pid: Upid,
        info: AgentInfo,
        total: Resources,
    ) -> Result<(), BooksError> {
        if self.agents.contains_key(id) {
            return Err(BooksError::Exists(format!("agent {id}")));
        }
        self.agent_by_pid.insert(pid.clone(), id.to_owned());
        self.agents.insert(
            id.to_owned(),
            AgentEntry {
                pid,
                info,
                free: total.clone(),
                total,
                used: Resources::new(),
                offered: Resources::new(),
                tasks: FastSet::default(),
                version: self.cell.next(id),
                offers: FastSet::default(),
                pong_received: false,
                missed_pings: 0,
                principal: None,
            },
        );
        self.check_agent(id);
        if let (Some(feed), Some(entry)) = (&self.feed, self.agents.get(id)) {
            feed.agent_added(id, entry);
        }
        Ok(())
    }

    /// The agent `id` now speaks from `pid` (it restarted, or reconnected); returns its old
    /// pid.
    /// The tasks on agent `id`.
    pub(super) fn tasks_on(&self, id: &str) -> Vec<TaskKey> {
        self.agents
            .get(id)
            .map(|a| a.tasks.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn rebind_agent(&mut self, id: &str, pid: Upid) -> Option<Upid> {
        let entry = self.agents.get_mut(id)?;
        let old = std::mem::replace(&mut entry.pid, pid.clone());
        self.agent_by_pid.remove(&old);
        self.agent_by_pid.insert(pid, id.to_owned());
        self.check_agent(id);
        if let (Some(feed), Some(entry)) = (&self.feed, self.agents.get(id)) {
            feed.agent_added(id, entry);
        }
        Some(old)
    }

    /// Takes agent `id` off the books with its offers and tasks; the view hears its tasks
    /// went to `tasks_end` (unreachable, or gone by operator).
    pub(super) fn remove_agent(&mut self, id: &str, tasks_end: TaskState) -> Option<RemovedAgent> {
        let entry = self.agents.remove(id)?;
        self.agent_by_pid.remove(&entry.pid);
        let offers: Vec<(String, OfferEntry)> = entry
            .offers
            .iter()
            .filter_map(|o| self.offers.remove_entry(o))
            .collect();
        let tasks: Vec<(TaskKey, TaskEntry)> = entry
            .tasks
            .iter()
            .filter_map(|k| self.tasks.remove_entry(k))
            .collect();
        debug_assert_eq!(tasks.len(), entry.tasks.len());
        self.cell.removed(id);
        debug_assert!(self.agent_by_pid.len() == self.agents.len());
        if let Some(feed) = &self.feed {
            for (offer, _) in &offers {
                feed.offer_removed(offer);
            }
            for (key, _) in &tasks {
                feed.task_updated(key, id, tasks_end, None);
            }
            feed.agent_removed(id);
        }
        Some(RemovedAgent {
            entry,
            offers,
            tasks,
        })
    }

    // Frameworks.

    /// The framework `id`.
    pub(super) fn framework(&self, id: &str) -> Option<&FrameworkEntry> {
        self.frameworks.get(id)
    }

    /// The framework `id`, to change.
    pub(super) fn framework_mut(&mut self, id: &str) -> Option<&mut FrameworkEntry> {
        self.frameworks.get_mut(id)
    }

    /// Whether framework `id` is registered.
    pub(super) fn has_framework(&self, id: &str) -> bool {
        self.frameworks.contains_key(id)
    }

    /// The id of the framework whose scheduler is `pid`.
    pub(super) fn framework_id_by_pid(&self, pid: &Upid) -> Option<&String> {
        self.frameworks
            .iter()
            .find(|(_, f)| f.pid == *pid)
            .map(|(id, _)| id)
    }

    /// Every registered framework.
    pub(super) fn frameworks(&self) -> impl Iterator<Item = (&String, &FrameworkEntry)> {
        self.frameworks.iter()
    }

    /// How many frameworks are registered.
    pub(super) fn framework_count(&self) -> usize {
        self.frameworks.len()
    }

    /// Registers framework `id`.
    pub(super) fn add_framework(
        &mut self,
        id: &str,
        entry: FrameworkEntry,
    ) -> Result<(), BooksError> {
        if self.frameworks.contains_key(id) {
            return Err(BooksError::Exists(format!("framework {id}")));
        }
        if let Some(feed) = &self.feed {
            feed.framework_changed(id, &entry, true);
        }
        self.frameworks.insert(id.to_owned(), entry);
        Ok(())
    }

    /// Reports framework `id` changed (its scheduler moved, connected or disconnected): every
    /// change made through [`Books::framework_mut`] that a reader can see ends with this.
    pub(super) fn framework_updated(&self, id: &str) {
        if let (Some(feed), Some(entry)) = (&self.feed, self.frameworks.get(id)) {
            feed.framework_changed(id, entry, false);
        }
    }

    /// Takes framework `id` off the books with its tasks; its offers are void (the allocator
    /// forgets what it held with it).
    pub(super) fn remove_framework(&mut self, id: &str) -> Option<RemovedFramework> {
        let entry = self.frameworks.remove(id)?;
        self.take_offers_where(|o| o.framework == id);
        let tasks = self.remove_tasks_of(id);
        if let Some(feed) = &self.feed {
            feed.framework_removed(id, &entry);
        }
        Some(RemovedFramework { entry, tasks })
    }

    // Offers.

    /// The offer `id`.
    pub(super) fn offer(&self, id: &str) -> Option<&OfferEntry> {
        self.offers.get(id)
    }

    /// Every outstanding offer.
    pub(super) fn offers(&self) -> impl Iterator<Item = (&String, &OfferEntry)> {
        self.offers.iter()
    }

    /// How many offers are outstanding.
    pub(super) fn offer_count(&self) -> usize {
        self.offers.len()
    }

    /// Records offer `id`: its resources must be free on its agent (neither used nor offered).
    pub(super) fn add_offer(&mut self, id: &str, offer: OfferEntry) -> Result<(), BooksError> {
        if !self.frameworks.contains_key(&offer.framework) {
            return Err(BooksError::UnknownFramework(offer.framework));
        }
        if self.offers.contains_key(id) {
            return Err(BooksError::Exists(format!("offer {id}")));
        }
        let Some(agent) = self.agents.get_mut(&offer.agent) else {
            return Err(BooksError::UnknownAgent(offer.agent));
        };
        take_free(&offer.agent, agent, &offer.resources)?;
        add(&mut agent.offered, &offer.resources);
        agent.offers.insert(id.to_owned());
        let on = offer.agent.clone();
        if let Some(feed) = &self.feed {
            feed.offer_added(id, &offer);
        }
        self.offers.insert(id.to_owned(), offer);
        self.check_agent(&on);
        Ok(())
    }

    /// Takes offer `id` out of circulation; its resources are no longer offered.
    pub(super) fn take_offer(&mut self, id: &str) -> Option<OfferEntry> {
        let offer = self.offers.remove(id)?;
        if let Some(feed) = &self.feed {
            feed.offer_removed(id);
        }
        if let Some(agent) = self.agents.get_mut(&offer.agent) {
            agent.offers.remove(id);
            release(&mut agent.offered, &mut agent.free, &offer.resources);
        }
        self.check_agent(&offer.agent);
        Some(offer)
    }

    /// Takes every offer on agent `id` out of circulation.
    pub(super) fn take_offers_on(&mut self, agent: &str) -> Vec<(String, OfferEntry)> {
        let ids: Vec<String> = self
            .agents
            .get(agent)
            .map(|a| a.offers.iter().cloned().collect())
            .unwrap_or_default();
        self.take_offers(ids)
    }

    /// Takes every offer `pick` chooses out of circulation.
    pub(super) fn take_offers_where(
        &mut self,
        pick: impl Fn(&OfferEntry) -> bool,
    ) -> Vec<(String, OfferEntry)> {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| pick(o))
            .map(|(id, _)| id.clone())
            .collect();
        self.take_offers(ids)
    }

    fn take_offers(&mut self, ids: Vec<String>) -> Vec<(String, OfferEntry)> {
        ids.into_iter()
            .filter_map(|id| self.take_offer(&id).map(|o| (id, o)))
            .collect()
    }

    // Tasks.

    /// The task `key`.
    pub(super) fn task(&self, key: &TaskKey) -> Option<&TaskEntry> {
        self.tasks.get(key)
    }

    /// Moves task `key` to `state` as the task-state table allows (`status`: the update that
    /// moves it, if one does). `None` if there is no such task.
    pub(super) fn move_task(
        &mut self,
        key: &TaskKey,
        state: TaskState,
        status: Option<&TaskStatus>,
    ) -> Option<Result<(), IllegalTaskMove>> {
        let task = self.tasks.get_mut(key)?;
        let moved = task.state.move_to(state);
        if let (Ok(()), Some(feed)) = (&moved, &self.feed) {
            feed.task_updated(key, &task.agent, state, status);
        }
        Some(moved)
    }

    /// Every live task.
    pub(super) fn tasks(&self) -> impl Iterator<Item = (&TaskKey, &TaskEntry)> {
        self.tasks.iter()
    }

    /// How many tasks are live.
    pub(super) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Records task `key` on its agent: its resources must be free there (a launch takes its
    /// offer first; a re-registering agent's tasks are checked against its total first).
    pub(super) fn add_task(&mut self, key: TaskKey, task: TaskEntry) -> Result<(), BooksError> {
        if self.tasks.contains_key(&key) {
            return Err(BooksError::Exists(format!("task {} of {}", key.1, key.0)));
        }
        let Some(agent) = self.agents.get_mut(&task.agent) else {
            return Err(BooksError::UnknownAgent(task.agent));
        };
        take_free(&task.agent, agent, &task.resources)?;
        add(&mut agent.used, &task.resources);
        agent.tasks.insert(key.clone());
        agent.version = self.cell.next(&task.agent);
        self.check_agent(&task.agent);
        if let Some(feed) = &self.feed {
            feed.task_added(&key, &task);
        }
        self.tasks.insert(key, task);
        Ok(())
    }

    /// Takes task `key` off the books; its resources are free on its agent again. A task that
    /// leaves before reaching a terminal state (its framework went away) is reported killed.
    pub(super) fn remove_task(&mut self, key: &TaskKey) -> Option<TaskEntry> {
        let task = self.tasks.remove(key)?;
        if let Some(feed) = self.feed.as_ref().filter(|_| !task.state.is_terminal()) {
            feed.task_updated(key, &task.agent, TaskState::TaskKilled, None);
        }
        if let Some(agent) = self.agents.get_mut(&task.agent) {
            agent.tasks.remove(key);
            agent.version = self.cell.next(&task.agent);
            release(&mut agent.used, &mut agent.free, &task.resources);
        }
        self.check_agent(&task.agent);
        Some(task)
    }

    /// Takes every task of `framework` off the books.
    pub(super) fn remove_tasks_of(&mut self, framework: &str) -> Vec<(TaskKey, TaskEntry)> {
        let keys: Vec<TaskKey> = self
            .tasks
            .keys()
            .filter(|(f, _)| f == framework)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.remove_task(&k).map(|t| (k, t)))
            .collect()
    }

    /// What is wrong with the books' accounting, in any build: for each agent whose free,
    /// used and offered resources do not add up to its total, or whose offers or tasks are not
    /// its own, one line. Empty when they are sound (a simulation checks it after every step).
    pub(super) fn audit(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, agent) in &self.agents {
            let mut sum = agent.free.clone();
            if sum.add(&agent.used).is_err()
                || sum.add(&agent.offered).is_err()
                || sum != agent.total
            {
                problems.push(format!(
                    "agent {id}: free {} + used {} + offered {} is not its total {}",
                    agent.free, agent.used, agent.offered, agent.total
                ));
            }
            if let Some(offer) = agent
                .offers
                .iter()
                .find(|o| self.offers.get(*o).is_none_or(|o| o.agent != *id))
            {
                problems.push(format!(
                    "agent {id} lists offer {offer}, which is not on it"
                ));
            }
            if let Some(task) = agent
                .tasks
                .iter()
                .find(|k| self.tasks.get(*k).is_none_or(|t| t.agent != *id))
            {
                problems.push(format!(
                    "agent {id} lists task {task:?}, which is not on it"
                ));
            }
        }
        problems.sort();
        problems
    }

    /// Checks the invariants that involve agent `id` (debug builds).
    fn check_agent(&self, id: &str) {
        if !cfg!(debug_assertions) {
            return;
        }
        let Some(agent) = self.agents.get(id) else {
            return;
        };
        let mut sum = agent.free.clone();
        add(&mut sum, &agent.used);
        add(&mut sum, &agent.offered);
        debug_assert!(
            sum == agent.total,
            "agent {id}: free {} + used {} + offered {} is not its total {}",
            agent.free,
            agent.used,
            agent.offered,
            agent.total
        );
        debug_assert_eq!(
            self.agent_by_pid.get(&agent.pid).map(String::as_str),
            Some(id)
        );
        debug_assert!(agent
            .offers
            .iter()
            .all(|o| self.offers.get(o).is_some_and(|o| o.agent == id)));
        debug_assert_eq!(self.agent_by_pid.len(), self.agents.len());
    }

    /// Checks every invariant over the whole books (tests).
    #[cfg(test)]
    fn check_all(&self) {
        for id in self.agents.keys() {
            self.check_agent(id);
        }
        for (key, task) in &self.tasks {
            assert!(self.agents.contains_key(&task.agent), "{key:?}");
        }
        for (id, offer) in &self.offers {
            assert!(self.frameworks.contains_key(&offer.framework), "{id}");
            let agent = self.agents.get(&offer.agent);
            assert!(agent.is_some_and(|a| a.offers.contains(id)), "{id}");
        }
        for (id, agent) in &self.agents {
            let on = self.tasks.values().filter(|t| t.agent == *id).count();
            assert_eq!(on, agent.tasks.len(), "{id}");
            assert!(agent.tasks.iter().all(|k| self.tasks[k].agent == *id));
            assert!(agent.version <= self.cell.seq());
        }
    }
}

/// Takes `asked` out of what `agent` has neither used nor offered, or says it does not fit.
fn take_free(id: &str, agent: &mut AgentEntry, asked: &Resources) -> Result<(), BooksError> {
    if agent.free.try_sub(asked) {
        Ok(())
    } else {
        Err(BooksError::DoesNotFit {
            agent: id.to_owned(),
            free: agent.free.clone(),
            asked: asked.clone(),
        })
    }
}

/// Adds `more` to an agent's running sum (checked to fit before).
fn add(sum: &mut Resources, more: &Resources) {
    let added = sum.add(more);
    debug_assert!(added.is_ok(), "{more} does not add to {sum}: {added:?}");
}

/// Moves `less` from an agent's used or offered resources back to its free ones; they never
/// go negative.
fn release(from: &mut Resources, free: &mut Resources, less: &Resources) {
    let taken = from.try_sub(less);
    debug_assert!(taken, "releasing {less} from {from}");
    if taken {
        add(free, less);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Resources {
        text.parse().unwrap()
    }

    fn pid(id: &str) -> Upid {
        format!("{id}@127.0.0.1:1").parse().unwrap()
    }

    fn books() -> Books {
        let mut b = Books::default();
        b.add_agent(
            "a1",
            pid("slave(1)"),
            AgentInfo::default(),
            r("cpus:4;mem:1024"),
        )
        .unwrap();
        b.add_framework(
            "f1",
            FrameworkEntry::new(pid("scheduler(1)"), FrameworkInfo::default()),
        )
        .unwrap();
        b
    }

    fn offer(resources: &str) -> OfferEntry {
        OfferEntry {
            framework: "f1".into(),
            agent: "a1".into(),
            resources: r(resources),
        }
    }

    fn task(resources: &str) -> TaskEntry {
        TaskEntry::new(
            1,
            "t".into(),
            "t".into(),
            "a1".into(),
            TaskState::TaskStaging,
            r(resources),
        )
    }

    #[test]
    fn a_resource_is_never_offered_twice_nor_while_a_task_holds_it() {
        let mut b = books();
        b.add_offer("o1", offer("cpus:3;mem:512")).unwrap();
        let err = b.add_offer("o2", offer("cpus:2")).unwrap_err();
        assert!(matches!(err, BooksError::DoesNotFit { .. }), "{err}");
        b.add_offer("o2", offer("cpus:1;mem:512")).unwrap();
        let taken = b.take_offer("o1").unwrap();
        b.add_task(("f1".into(), "t1".into()), task("cpus:3;mem:256"))
            .unwrap();
        assert_eq!(taken.resources, r("cpus:3;mem:512"));
        let err = b.add_offer("o3", offer("cpus:1")).unwrap_err();
        assert!(matches!(err, BooksError::DoesNotFit { .. }), "{err}");
        assert_eq!(b.agent("a1").unwrap().used(), &r("cpus:3;mem:256"));
        assert_eq!(b.agent("a1").unwrap().free(), &r("mem:256"));
        b.check_all();
    }

    #[test]
    fn offers_and_tasks_need_their_agent_and_an_offer_its_framework() {
        let mut b = books();
        let mut o = offer("cpus:1");
        o.agent = "ghost".into();
        assert_eq!(
            b.add_offer("o1", o).unwrap_err(),
            BooksError::UnknownAgent("ghost".into())
        );
        let mut o = offer("cpus:1");
        o.framework = "gone".into();
        assert_eq!(
            b.add_offer("o1", o).unwrap_err(),
            BooksError::UnknownFramework("gone".into())
        );
        let mut t = task("cpus:1");
        t.agent = "ghost".into();
        assert!(b.add_task(("f1".into(), "t1".into()), t).is_err());
        // A task's framework may be away (a failover): the agent's report is what counts.
        b.add_task(("away".into(), "t1".into()), task("cpus:1"))
            .unwrap();
        b.check_all();
    }

    #[test]
    fn removing_an_agent_or_a_framework_takes_what_hangs_on_it() {
        let mut b = books();
        b.add_offer("o1", offer("cpus:1")).unwrap();
        b.add_task(("f1".into(), "t1".into()), task("cpus:1"))
            .unwrap();
        b.add_task(("f2".into(), "t2".into()), task("cpus:1"))
            .unwrap();
        let removed = b.remove_framework("f1").unwrap();
        assert_eq!(removed.tasks.len(), 1);
        assert_eq!(b.offer_count(), 0);
        assert_eq!(b.agent("a1").unwrap().used(), &r("cpus:1"));
        assert!(b.agent("a1").unwrap().offered().is_empty());
        b.check_all();
        let removed = b.remove_agent("a1", TaskState::TaskUnreachable).unwrap();
        assert_eq!(removed.tasks.len(), 1);
        assert_eq!(b.task_count(), 0);
        assert!(b.agent_id_by_pid(&pid("slave(1)")).is_none());
        b.check_all();
    }

    #[test]
    fn a_rebound_agent_is_found_by_its_new_pid_only() {
        let mut b = books();
        assert_eq!(b.rebind_agent("a1", pid("slave(2)")), Some(pid("slave(1)")));
        assert!(b.agent_id_by_pid(&pid("slave(1)")).is_none());
        assert_eq!(b.agent_id_by_pid(&pid("slave(2)")).unwrap(), "a1");
        b.check_all();
    }
}
