//! The cluster as the API process shows it, kept from the master's feed (see
//! `master::feed`), so that reads and subscriptions never ask the master. Records are plain
//! values; protobuf messages (`GET_STATE` and the rest) are built only when read.
//!
//! Besides the live agents, frameworks, tasks and offers it remembers what Mesos's state
//! endpoints show of the past, bounded as Mesos bounds it: the latest
//! [`ViewLimits::completed_frameworks`] frameworks removed, per framework the latest
//! [`ViewLimits::completed_tasks_per_framework`] terminal tasks, and the latest
//! [`ViewLimits::unreachable_tasks`] tasks of agents that were removed (a task its agent brings
//! back leaves that list).

use std::collections::{BTreeMap, HashMap, VecDeque};

use protos::v1::master::response::get_agents::Agent;
use protos::v1::master::response::get_executors::Executor;
use protos::v1::master::response::get_frameworks::Framework;
use protos::v1::master::response::{GetAgents, GetExecutors, GetFrameworks, GetState, GetTasks};
use protos::v1::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Role, Task, TaskId,
    TaskState, TaskStatus,
};
use resources::Resources;

use crate::fast_hash::FastMap;
use crate::master::{time_info, FeedItem, StatusRecord};

/// How much of the past the view keeps (Mesos's `--max_completed_frameworks` and
/// `--max_completed_tasks_per_framework`, and a bound on unreachable tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewLimits {
    /// Removed frameworks kept.
    pub completed_frameworks: usize,
    /// Terminal tasks kept per framework.
    pub completed_tasks_per_framework: usize,
    /// Tasks of removed agents kept.
    pub unreachable_tasks: usize,
    /// Statuses kept per task (the latest).
    pub statuses_per_task: usize,
}

impl Default for ViewLimits {
    fn default() -> Self {
        ViewLimits {
            completed_frameworks: 50,
            completed_tasks_per_framework: 1000,
            unreachable_tasks: 1000,
            statuses_per_task: 16,
        }
    }
}

/// A task's key: (framework id, task id).
pub type TaskKey = (String, String);

/// A registered agent.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// What it registered with (its id set).
    pub info: AgentInfo,
    /// Its process.
    pub pid: String,
    /// What it has.
    pub total: Resources,
    /// When it first registered (seconds since the epoch).
    pub registered: f64,
    /// When it last re-registered.
    pub reregistered: Option<f64>,
}

/// A framework, registered or removed.
#[derive(Debug, Clone)]
pub struct FrameworkRecord {
    /// Its info (its id set).
    pub info: FrameworkInfo,
    /// Its scheduler is connected.
    pub active: bool,
    /// When it registered.
    pub registered: f64,
    /// When it last changed after that.
    pub reregistered: Option<f64>,
    /// When it was removed.
    pub unregistered: Option<f64>,
}

/// A task, live or past.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// Its framework.
    pub framework: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its executor (empty for command tasks).
    pub executor: String,
    /// Its agent.
    pub agent: String,
    /// Its latest state.
    pub state: TaskState,
    /// What it holds.
    pub resources: Resources,
    /// Its latest statuses, oldest first.
    pub statuses: Vec<StatusRecord>,
}

/// The tasks one reader sees, as `GET_TASKS` lists them.
#[derive(Debug, Default)]
pub struct TasksSeen<'a> {
    /// Live tasks.
    pub live: Vec<&'a TaskRecord>,
    /// Tasks of removed agents.
    pub unreachable: Vec<&'a TaskRecord>,
    /// Terminal tasks.
    pub completed: Vec<&'a TaskRecord>,
}

/// An outstanding offer.
#[derive(Debug, Clone)]
pub struct ViewOffer {
    /// To whom.
    pub framework: String,
    /// On which agent.
    pub agent: String,
    /// What.
    pub resources: Resources,
}

/// The view's sums, for Mesos's `master/*` gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewTotals {
    /// Live agents.
    pub agents: usize,
    /// Frameworks whose scheduler is connected.
    pub frameworks_connected: usize,
    /// Registered frameworks whose scheduler is not.
    pub frameworks_disconnected: usize,
    /// Live tasks by state (unreachable ones under `TASK_UNREACHABLE`).
    pub tasks: BTreeMap<TaskState, usize>,
    /// What the live agents have.
    pub total: Resources,
    /// What their live tasks hold.
    pub used: Resources,
}

/// The cluster as the master's feed describes it.
#[derive(Debug, Default)]
pub struct ClusterView {
    limits: ViewLimits,
    agents: BTreeMap<String, AgentRecord>,
    /// What each agent's live tasks hold.
    allocated: HashMap<String, Resources>,
    /// What each framework's live tasks hold.
    used_by_framework: HashMap<String, Resources>,
    frameworks: BTreeMap<String, FrameworkRecord>,
    completed_frameworks: VecDeque<FrameworkRecord>,
    /// Live tasks by framework, then by id. Hashed, not ordered: adding and moving tasks is
    /// the hot path. Grouped by framework because reads (`/master/state`) list them so.
    tasks: FastMap<String, FastMap<String, TaskRecord>>,
    /// How many live tasks `tasks` holds.
    task_count: usize,
    unreachable_tasks: VecDeque<TaskRecord>,
    completed_tasks: HashMap<String, VecDeque<TaskRecord>>,
    /// Live tasks by state.
    live_by_state: BTreeMap<TaskState, usize>,
    /// What the live agents have, together.
    total: Resources,
    offers: HashMap<String, ViewOffer>,
}

fn with_framework_id(mut info: FrameworkInfo, id: &str) -> FrameworkInfo {
    info.id = Some(FrameworkId {
        value: id.to_owned(),
    });
    info
}

impl ClusterView {
    /// An empty view keeping `limits` of the past.
    pub fn new(limits: ViewLimits) -> ClusterView {
        ClusterView {
            limits,
            ..Default::default()
        }
    }

    /// Applies one change of the master's books, arriving at `now` (seconds since the epoch,
    /// on the node's clock).
    pub fn apply(&mut self, item: FeedItem, now: f64) {
        match item {
            FeedItem::AgentAdded {
                id,
                mut info,
                pid,
                total,
                at,
            } => {
                info.id = Some(AgentId { value: id.clone() });
                let _ = self.total.add(&total);
                let mut record = AgentRecord {
                    info,
                    pid,
                    total,
                    registered: at,
                    reregistered: None,
                };
                if let Some(old) = self.agents.get(&id) {
                    // A re-registration: the agent keeps its first registration time.
                    record.registered = old.registered;
                    record.reregistered = Some(at);
                    let _ = self.total.try_sub(&old.total);
                }
                self.agents.insert(id, record);
            }
            FeedItem::AgentRemoved { id } => {
                if let Some(old) = self.agents.remove(&id) {
                    let _ = self.total.try_sub(&old.total);
                }
                self.allocated.remove(&id);
                self.offers.retain(|_, o| o.agent != id);
            }
            FeedItem::FrameworkChanged {
                id,
                info,
                active,
                added,
                at,
            } => {
                let old = self.frameworks.get(&id);
                let record = FrameworkRecord {
                    info: with_framework_id(info, &id),
                    active,
                    registered: old.map_or(at, |o| o.registered),
                    reregistered: (!added || old.is_some()).then_some(at),
                    unregistered: None,
                };
                self.frameworks.insert(id, record);
            }
            FeedItem::FrameworkRemoved { id, info } => {
                let mut record = match self.frameworks.remove(&id) {
                    Some(record) => record,
                    None => FrameworkRecord {
                        info: with_framework_id(info, &id),
                        active: false,
                        registered: now,
                        reregistered: None,
                        unregistered: None,
                    },
                };
                record.active = false;
                record.unregistered = Some(now);
                if self.completed_frameworks.len() == self.limits.completed_frameworks {
                    if let Some(old) = self.completed_frameworks.pop_front() {
                        self.completed_tasks.remove(&framework_id(&old));
                    }
                }
                self.completed_frameworks.push_back(record);
            }
            FeedItem::TaskAdded {
                framework,
                id,
                name,
                executor,
                agent,
                state,
                resources,
            } => {
                if !self.unreachable_tasks.is_empty() {
                    self.unreachable_tasks
                        .retain(|t| t.framework != framework || t.id != id);
                }
                let _ = self
                    .allocated
                    .entry(agent.clone())
                    .or_default()
                    .add(&resources);
                let _ = self
                    .used_by_framework
                    .entry(framework.clone())
                    .or_default()
                    .add(&resources);
                *self.live_by_state.entry(state).or_default() += 1;
                let (key_framework, key_id) = (framework.clone(), id.clone());
                let record = TaskRecord {
                    framework,
                    id,
                    name,
                    executor,
                    agent,
                    state,
                    resources,
                    statuses: Vec::new(),
                };
                let old = self
                    .tasks
                    .entry(key_framework)
                    .or_default()
                    .insert(key_id, record);
                match old {
                    Some(old) => self.release(&old),
                    None => self.task_count += 1,
                }
            }
            FeedItem::TaskUpdated {
                framework,
                id,
                status,
                ..
            } => self.update_task((framework, id), status),
            FeedItem::OfferAdded {
                id,
                framework,
                agent,
                resources,
            } => {
                self.offers.insert(
                    id,
                    ViewOffer {
                        framework,
                        agent,
                        resources,
                    },
                );
            }
            FeedItem::OfferRemoved(id) => {
                self.offers.remove(&id);
            }
        }
    }

    fn update_task(&mut self, key: TaskKey, status: StatusRecord) {
        let state = status.state;
        let Some(task) = self.tasks.get_mut(&key.0).and_then(|t| t.get_mut(&key.1)) else {
            return;
        };
        if let Some(n) = self.live_by_state.get_mut(&task.state) {
            *n = n.saturating_sub(1);
        }
        *self.live_by_state.entry(state).or_default() += 1;
        task.state = state;
        task.statuses.push(status);
        if task.statuses.len() > self.limits.statuses_per_task {
            let excess = task.statuses.len() - self.limits.statuses_per_task;
            task.statuses.drain(..excess);
        }
        if state == TaskState::TaskUnreachable {
            let Some(task) = self.remove_task(&key) else {
                return;
            };
            self.release(&task);
            if self.unreachable_tasks.len() == self.limits.unreachable_tasks {
                self.unreachable_tasks.pop_front();
            }
            self.unreachable_tasks.push_back(task);
        } else if state.is_terminal() {
            let Some(task) = self.remove_task(&key) else {
                return;
            };
            self.release(&task);
            let completed = self.completed_tasks.entry(key.0).or_default();
            if completed.len() == self.limits.completed_tasks_per_framework {
                completed.pop_front();
            }
            completed.push_back(task);
        }
    }

    /// Takes task `key` off the live tasks.
    fn remove_task(&mut self, key: &TaskKey) -> Option<TaskRecord> {
        let of_framework = self.tasks.get_mut(&key.0)?;
        let task = of_framework.remove(&key.1)?;
        if of_framework.is_empty() {
            self.tasks.remove(&key.0);
        }
        self.task_count -= 1;
        Some(task)
    }

    /// Gives back on its agent what `task` held, and stops counting it live.
    fn release(&mut self, task: &TaskRecord) {
        if let Some(n) = self.live_by_state.get_mut(&task.state) {
            *n = n.saturating_sub(1);
        }
        if let Some(allocated) = self.allocated.get_mut(&task.agent) {
            let _ = allocated.try_sub(&task.resources);
        }
        if let Some(used) = self.used_by_framework.get_mut(&task.framework) {
            let _ = used.try_sub(&task.resources);
            if used.is_empty() {
                self.used_by_framework.remove(&task.framework);
            }
        }
    }

    /// Agent `id`, if live.
    pub fn agent(&self, id: &str) -> Option<&AgentRecord> {
        self.agents.get(id)
    }

    /// Framework `id`, if registered.
    pub fn framework(&self, id: &str) -> Option<&FrameworkRecord> {
        self.frameworks.get(id)
    }

    /// Task `key`, if live.
    pub fn task(&self, key: &TaskKey) -> Option<&TaskRecord> {
        self.tasks.get(&key.0)?.get(&key.1)
    }

    /// Live agents by id.
    pub fn agents(&self) -> impl Iterator<Item = (&String, &AgentRecord)> {
        self.agents.iter()
    }

    /// What agent `id`'s live tasks hold.
    pub fn allocated_on(&self, id: &str) -> Resources {
        self.allocated.get(id).cloned().unwrap_or_default()
    }

    /// What framework `id`'s live tasks hold.
    pub fn used_by(&self, id: &str) -> Resources {
        self.used_by_framework.get(id).cloned().unwrap_or_default()
    }

    /// Registered frameworks by id.
    pub fn frameworks(&self) -> impl Iterator<Item = (&String, &FrameworkRecord)> {
        self.frameworks.iter()
    }

    /// Removed frameworks, oldest first.
    pub fn completed_frameworks(&self) -> impl Iterator<Item = &FrameworkRecord> {
        self.completed_frameworks.iter()
    }

    /// Live tasks, framework by framework, in no particular order.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.values().flat_map(|t| t.values())
    }

    /// Live tasks of `framework`, in no particular order.
    pub fn tasks_of(&self, framework: &str) -> impl Iterator<Item = &TaskRecord> {
        self.tasks
            .get(framework)
            .into_iter()
            .flat_map(|t| t.values())
    }

    /// The frameworks with live tasks, in no particular order.
    pub fn frameworks_with_tasks(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// Terminal tasks of `framework`, oldest first.
    pub fn completed_tasks_of(&self, framework: &str) -> impl Iterator<Item = &TaskRecord> {
        self.completed_tasks.get(framework).into_iter().flatten()
    }

    /// Tasks of removed agents.
    pub fn unreachable_tasks(&self) -> impl Iterator<Item = &TaskRecord> {
        self.unreachable_tasks.iter()
    }

    /// Outstanding offers by id.
    pub fn offers(&self) -> impl Iterator<Item = (&String, &ViewOffer)> {
        self.offers.iter()
    }

    /// The framework `id`'s info, live or completed.
    pub fn framework_info(&self, id: &str) -> Option<&FrameworkInfo> {
        self.frameworks
            .get(id)
            .or_else(|| {
                self.completed_frameworks
                    .iter()
                    .find(|f| framework_id(f) == id)
            })
            .map(|f| &f.info)
    }

    /// Live tasks: how many.
    pub fn task_count(&self) -> usize {
        debug_assert_eq!(self.task_count, self.tasks().count());
        self.task_count
    }

    /// The sums behind Mesos's `master/*` gauges.
    pub fn totals(&self) -> ViewTotals {
        let connected = self.frameworks.values().filter(|f| f.active).count();
        let mut used = Resources::new();
        for allocated in self.allocated.values() {
            let _ = used.add(allocated);
        }
        let mut tasks = self.live_by_state.clone();
        tasks.insert(TaskState::TaskUnreachable, self.unreachable_tasks.len());
        ViewTotals {
            agents: self.agents.len(),
            frameworks_connected: connected,
            frameworks_disconnected: self.frameworks.len() - connected,
            tasks,
            total: self.total.clone(),
            used,
        }
    }

    /// `GET_AGENTS`.
    pub fn get_agents(&self) -> GetAgents {
        GetAgents {
            agents: self
                .agents
                .iter()
                .map(|(id, agent)| agent.to_proto(&self.allocated_on(id)))
                .collect(),
            recovered_agents: Vec::new(),
        }
    }

    /// `GET_FRAMEWORKS`: those `visible` admits.
    pub fn get_frameworks(&self, visible: &dyn Fn(&FrameworkInfo) -> bool) -> GetFrameworks {
        GetFrameworks {
            frameworks: self
                .frameworks
                .iter()
                .filter(|(_, f)| visible(&f.info))
                .map(|(id, f)| {
                    let mut proto = f.to_proto();
                    proto.allocated_resources = self
                        .used_by_framework
                        .get(id.as_str())
                        .map(Resources::to_proto)
                        .unwrap_or_default();
                    proto
                })
                .collect(),
            completed_frameworks: self
                .completed_frameworks
                .iter()
                .filter(|f| visible(&f.info))
                .map(FrameworkRecord::to_proto)
                .collect(),
        }
    }

    /// `GET_TASKS`: the tasks of frameworks `visible` admits (by their id).
    pub fn get_tasks(&self, visible: &dyn Fn(&str) -> bool) -> GetTasks {
        let seen = self.tasks_seen(visible);
        let protos =
            |tasks: Vec<&TaskRecord>| tasks.into_iter().map(TaskRecord::to_proto).collect();
        GetTasks {
            tasks: protos(seen.live),
            unreachable_tasks: protos(seen.unreachable),
            completed_tasks: protos(seen.completed),
        }
    }

    /// The tasks of frameworks `visible` admits (by their id), as `GET_TASKS` lists them:
    /// framework by framework in id order, a framework's live tasks in no particular order,
    /// its completed ones oldest first.
    pub fn tasks_seen(&self, visible: &dyn Fn(&str) -> bool) -> TasksSeen<'_> {
        let mut live_frameworks: Vec<(&String, &FastMap<String, TaskRecord>)> = self
            .tasks
            .iter()
            .filter(|(framework, _)| visible(framework))
            .collect();
        live_frameworks.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut completed_frameworks: Vec<(&String, &VecDeque<TaskRecord>)> = self
            .completed_tasks
            .iter()
            .filter(|(framework, _)| visible(framework))
            .collect();
        completed_frameworks.sort_unstable_by(|a, b| a.0.cmp(b.0));
        TasksSeen {
            live: live_frameworks
                .into_iter()
                .flat_map(|(_, tasks)| tasks.values())
                .collect(),
            unreachable: self
                .unreachable_tasks
                .iter()
                .filter(|t| visible(&t.framework))
                .collect(),
            completed: completed_frameworks
                .into_iter()
                .flat_map(|(_, tasks)| tasks.iter())
                .collect(),
        }
    }

    /// `GET_EXECUTORS`: the executors of live tasks (a task names its executor; command
    /// tasks have none).
    pub fn get_executors(&self, visible: &dyn Fn(&str) -> bool) -> GetExecutors {
        let mut seen: BTreeMap<(&str, &str, &str), ()> = BTreeMap::new();
        for task in self.tasks() {
            if !task.executor.is_empty() && visible(&task.framework) {
                seen.insert((&task.framework, &task.executor, &task.agent), ());
            }
        }
        GetExecutors {
            executors: seen
                .into_keys()
                .map(|(framework, executor, agent)| Executor {
                    executor_info: Some(ExecutorInfo {
                        executor_id: Some(ExecutorId {
                            value: executor.to_owned(),
                        }),
                        framework_id: Some(FrameworkId {
                            value: framework.to_owned(),
                        }),
                        ..Default::default()
                    }),
                    agent_id: Some(AgentId {
                        value: agent.to_owned(),
                    }),
                })
                .collect(),
        }
    }

    /// `GET_STATE`: everything above, for one reader.
    pub fn get_state(
        &self,
        framework_visible: &dyn Fn(&FrameworkInfo) -> bool,
        tasks_visible: &dyn Fn(&str) -> bool,
    ) -> GetState {
        GetState {
            get_tasks: Some(self.get_tasks(tasks_visible)),
            get_executors: Some(self.get_executors(tasks_visible)),
            get_frameworks: Some(self.get_frameworks(framework_visible)),
            get_agents: Some(self.get_agents()),
        }
    }

    /// `GET_ROLES`: each role with a framework, its frameworks and what their tasks hold;
    /// `weight` says each role's weight.
    pub fn get_roles(&self, weight: &dyn Fn(&str) -> f64) -> Vec<Role> {
        let mut roles: BTreeMap<&str, (Vec<FrameworkId>, Resources)> = BTreeMap::new();
        for (id, f) in &self.frameworks {
            roles
                .entry(crate::master::role_of(&f.info))
                .or_default()
                .0
                .push(FrameworkId { value: id.clone() });
        }
        for (framework, used) in &self.used_by_framework {
            if let Some(f) = self.frameworks.get(framework) {
                if let Some(entry) = roles.get_mut(crate::master::role_of(&f.info)) {
                    let _ = entry.1.add(used);
                }
            }
        }
        roles
            .into_iter()
            .map(|(name, (frameworks, resources))| Role {
                weight: Some(weight(name)),
                name: name.to_owned(),
                frameworks,
                resources: resources.to_proto(),
            })
            .collect()
    }
}

/// A framework record's id.
pub fn framework_id(f: &FrameworkRecord) -> String {
    f.info
        .id
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

impl AgentRecord {
    /// As `GET_AGENTS` lists it, with what its tasks hold.
    pub fn to_proto(&self, allocated: &Resources) -> Agent {
        Agent {
            agent_info: Some(self.info.clone()),
            active: Some(true),
            deactivated: Some(false),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: self.pid.clone(),
            registered_time: Some(time_info(self.registered)),
            reregistered_time: self.reregistered.map(time_info),
            total_resources: self.total.to_proto(),
            allocated_resources: allocated.to_proto(),
            offered_resources: Vec::new(),
        }
    }
}

impl FrameworkRecord {
    /// As `GET_FRAMEWORKS` lists it.
    pub fn to_proto(&self) -> Framework {
        Framework {
            framework_info: Some(self.info.clone()),
            active: Some(self.active),
            connected: Some(self.active),
            recovered: Some(false),
            registered_time: Some(time_info(self.registered)),
            reregistered_time: self.reregistered.map(time_info),
            unregistered_time: self.unregistered.map(time_info),
            ..Default::default()
        }
    }
}

impl TaskRecord {
    /// As `GET_TASKS` lists it.
    pub fn to_proto(&self) -> Task {
        Task {
            name: self.name.clone(),
            task_id: Some(TaskId {
                value: self.id.clone(),
            }),
            framework_id: Some(FrameworkId {
                value: self.framework.clone(),
            }),
            executor_id: (!self.executor.is_empty()).then(|| ExecutorId {
                value: self.executor.clone(),
            }),
            agent_id: Some(AgentId {
                value: self.agent.clone(),
            }),
            state: Some(self.state as i32),
            resources: self.resources.to_proto(),
            statuses: self
                .statuses
                .iter()
                .map(|s| s.to_proto(&self.id, &self.agent))
                .collect(),
            ..Default::default()
        }
    }
}

impl StatusRecord {
    /// As Mesos's `TaskStatus` of task `task` on `agent`.
    pub fn to_proto(&self, task: &str, agent: &str) -> TaskStatus {
        TaskStatus {
            task_id: Some(TaskId {
                value: task.to_owned(),
            }),
            state: self.state as i32,
            message: self.message.clone(),
            source: self.source,
            reason: self.reason,
            agent_id: Some(AgentId {
                value: agent.to_owned(),
            }),
            timestamp: self.timestamp,
            healthy: self.healthy,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framework_added(id: &str) -> FeedItem {
        FeedItem::FrameworkChanged {
            id: id.into(),
            info: FrameworkInfo {
                user: "u".into(),
                name: "f".into(),
                ..Default::default()
            },
            active: false,
            added: true,
            at: 1.0,
        }
    }

    fn agent_added(id: &str) -> FeedItem {
        FeedItem::AgentAdded {
            id: id.into(),
            info: AgentInfo {
                hostname: "h".into(),
                ..Default::default()
            },
            pid: "slave(1)@127.0.0.1:1".into(),
            total: "cpus:4;mem:1024".parse().unwrap(),
            at: 1.0,
        }
    }

    fn task_added(framework: &str, task: &str) -> FeedItem {
        FeedItem::TaskAdded {
            framework: framework.into(),
            id: task.into(),
            name: task.into(),
            executor: String::new(),
            agent: "a1".into(),
            state: TaskState::TaskStaging,
            resources: "cpus:1;mem:128".parse().unwrap(),
        }
    }

    fn task_updated(framework: &str, task: &str, state: TaskState) -> FeedItem {
        FeedItem::TaskUpdated {
            framework: framework.into(),
            id: task.into(),
            agent: "a1".into(),
            status: StatusRecord {
                state,
                timestamp: 2.0,
                source: 1,
                reason: None,
                message: String::new(),
                healthy: None,
            },
        }
    }

    fn framework_removed(id: &str) -> FeedItem {
        FeedItem::FrameworkRemoved {
            id: id.into(),
            info: FrameworkInfo::default(),
        }
    }

    #[test]
    fn tasks_move_from_live_to_completed_and_free_their_agent() {
        let mut view = ClusterView::new(ViewLimits::default());
        for item in [
            agent_added("a1"),
            framework_added("f1"),
            task_added("f1", "t1"),
            task_added("f1", "t2"),
            task_updated("f1", "t1", TaskState::TaskRunning),
        ] {
            view.apply(item, 0.0);
        }
        let used = |view: &ClusterView| {
            Resources::from_proto(&view.get_agents().agents[0].allocated_resources)
                .unwrap()
                .scalar("cpus")
        };
        assert_eq!(used(&view), 2.0);
        let all = |_: &str| true;
        let tasks = view.get_tasks(&all);
        assert_eq!(tasks.tasks.len(), 2);
        // A framework's live tasks are listed in no set order (as Mesos's).
        let t1 = tasks
            .tasks
            .iter()
            .find(|t| t.task_id.as_ref().is_some_and(|id| id.value == "t1"))
            .unwrap();
        assert_eq!(t1.statuses.len(), 1);
        assert_eq!(t1.state, Some(TaskState::TaskRunning as i32));

        view.apply(task_updated("f1", "t1", TaskState::TaskFinished), 0.0);
        assert_eq!(used(&view), 1.0);
        let totals = view.totals();
        assert_eq!(totals.total.scalar("cpus"), 4.0);
        assert_eq!(totals.used.scalar("cpus"), 1.0);
        assert_eq!(totals.tasks.get(&TaskState::TaskStaging), Some(&1));
        assert_eq!(totals.tasks.get(&TaskState::TaskRunning), Some(&0));
        assert_eq!(totals.frameworks_connected, 0);
        assert_eq!(totals.frameworks_disconnected, 1);
        let tasks = view.get_tasks(&all);
        assert_eq!(tasks.tasks.len(), 1);
        assert_eq!(tasks.completed_tasks.len(), 1);
        assert_eq!(
            tasks.completed_tasks[0].state,
            Some(TaskState::TaskFinished as i32)
        );
        assert!(view.get_tasks(&|_: &str| false).completed_tasks.is_empty());
    }

    #[test]
    fn the_past_is_bounded() {
        let mut view = ClusterView::new(ViewLimits {
            completed_frameworks: 2,
            completed_tasks_per_framework: 3,
            unreachable_tasks: 1,
            statuses_per_task: 2,
        });
        view.apply(agent_added("a1"), 0.0);
        view.apply(framework_added("f0"), 0.0);
        for i in 0..5 {
            let t = format!("t{i}");
            view.apply(task_added("f0", &t), 0.0);
            for state in [
                TaskState::TaskRunning,
                TaskState::TaskKilling,
                TaskState::TaskKilled,
            ] {
                view.apply(task_updated("f0", &t, state), 0.0);
            }
        }
        let tasks = view.get_tasks(&|_: &str| true);
        let ids: Vec<&str> = tasks
            .completed_tasks
            .iter()
            .map(|t| t.task_id.as_ref().unwrap().value.as_str())
            .collect();
        assert_eq!(ids, ["t2", "t3", "t4"]);
        assert!(tasks.completed_tasks.iter().all(|t| t.statuses.len() == 2));
        for f in ["f1", "f2", "f3"] {
            view.apply(framework_added(f), 0.0);
            view.apply(framework_removed(f), 0.0);
        }
        view.apply(framework_removed("f0"), 5.0);
        let all = |_: &FrameworkInfo| true;
        let frameworks = view.get_frameworks(&all);
        assert!(frameworks.frameworks.is_empty());
        let ids: Vec<String> = view.completed_frameworks().map(framework_id).collect();
        assert_eq!(ids, ["f3", "f0"]);
        assert!(frameworks.completed_frameworks[1]
            .unregistered_time
            .is_some());
    }

    #[test]
    fn an_unreachable_task_comes_back_when_its_agent_does() {
        let mut view = ClusterView::new(ViewLimits::default());
        view.apply(agent_added("a1"), 0.0);
        view.apply(task_added("f1", "t1"), 0.0);
        view.apply(task_updated("f1", "t1", TaskState::TaskUnreachable), 0.0);
        let all = |_: &str| true;
        assert_eq!(view.get_tasks(&all).unreachable_tasks.len(), 1);
        assert_eq!(view.task_count(), 0);
        assert_eq!(view.totals().tasks[&TaskState::TaskUnreachable], 1);
        view.apply(task_added("f1", "t1"), 0.0);
        assert!(view.get_tasks(&all).unreachable_tasks.is_empty());
        assert_eq!(view.task_count(), 1);
    }

    #[test]
    fn a_reregistered_agent_keeps_its_first_registration_time() {
        let mut view = ClusterView::new(ViewLimits::default());
        view.apply(agent_added("a1"), 0.0);
        let mut again = agent_added("a1");
        if let FeedItem::AgentAdded { at, .. } = &mut again {
            *at = 9.0;
        }
        view.apply(again, 0.0);
        let agent = &view.get_agents().agents[0];
        assert_eq!(agent.registered_time, Some(time_info(1.0)));
        assert_eq!(agent.reregistered_time, Some(time_info(9.0)));
        assert_eq!(view.totals().total.scalar("cpus"), 4.0, "counted once");
    }
}
