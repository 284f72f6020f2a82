//! The cluster as the operator API shows it, kept by the API process from the master's events
//! (see `master::feed`), so that reads and subscriptions never ask the master.
//!
//! Besides the live agents, frameworks and tasks it remembers what Mesos's state endpoints
//! show of the past, bounded as Mesos bounds it: the latest [`ViewLimits::completed_frameworks`]
//! frameworks removed, per framework the latest [`ViewLimits::completed_tasks_per_framework`]
//! terminal tasks, and the latest [`ViewLimits::unreachable_tasks`] tasks of agents that were
//! removed (a task its agent brings back leaves that list).
//!
//! Offers, which have no operator event, come as `keel.internal.OfferChanges`; the operator
//! API lists none (Mesos's lists a framework's offers only in `GET_FRAMEWORKS`, which Keel
//! leaves empty), `/master/state` shows them.

use std::collections::{BTreeMap, HashMap, VecDeque};

use protos::v1::master::event::Type;
use protos::v1::master::response::get_agents::Agent;
use protos::v1::master::response::get_executors::Executor;
use protos::v1::master::response::get_frameworks::Framework;
use protos::v1::master::response::{GetAgents, GetExecutors, GetFrameworks, GetState, GetTasks};
use protos::v1::master::Event;
use protos::v1::{ExecutorId, ExecutorInfo, FrameworkInfo, Role, Task, TaskState, TaskStatus};
use resources::Resources;

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

/// The cluster as the master's events describe it.
#[derive(Debug, Default)]
pub struct ClusterView {
    limits: ViewLimits,
    agents: BTreeMap<String, Agent>,
    /// What each agent's live tasks hold.
    allocated: HashMap<String, Resources>,
    frameworks: BTreeMap<String, Framework>,
    completed_frameworks: VecDeque<Framework>,
    tasks: BTreeMap<TaskKey, Task>,
    unreachable_tasks: VecDeque<Task>,
    completed_tasks: HashMap<String, VecDeque<Task>>,
    /// Live tasks by state.
    live_by_state: BTreeMap<i32, usize>,
    /// What the live agents have, together.
    total: Resources,
    /// Outstanding offers by id.
    offers: HashMap<String, protos::v1::Offer>,
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
    /// Live tasks by state.
    pub tasks: BTreeMap<TaskState, usize>,
    /// What the live agents have.
    pub total: Resources,
    /// What their live tasks hold.
    pub used: Resources,
}

fn key_of(task: &Task) -> TaskKey {
    (
        task.framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default(),
        task.task_id
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_default(),
    )
}

fn agent_of(task: &Task) -> &str {
    task.agent_id.as_ref().map_or("", |a| a.value.as_str())
}

fn resources_of(task: &Task) -> Resources {
    Resources::from_proto(&task.resources).unwrap_or_default()
}

impl ClusterView {
    /// An empty view keeping `limits` of the past.
    pub fn new(limits: ViewLimits) -> ClusterView {
        ClusterView {
            limits,
            ..Default::default()
        }
    }

    /// Applies one of the master's events, arriving at `now` (seconds since the epoch, on the
    /// node's clock). Returns false for an event that is malformed (missing its payload),
    /// which changes nothing.
    pub fn apply(&mut self, event: &Event, now: f64) -> bool {
        match Type::try_from(event.r#type).unwrap_or(Type::Unknown) {
            Type::AgentAdded => {
                let Some(agent) = event.agent_added.as_ref().and_then(|a| a.agent.as_ref()) else {
                    return false;
                };
                let id = agent
                    .agent_info
                    .as_ref()
                    .and_then(|i| i.id.as_ref())
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                let mut agent = agent.clone();
                if let Some(old) = self.agents.get(&id) {
                    // A re-registration: the agent keeps its first registration time.
                    agent.reregistered_time = agent.registered_time.take();
                    agent.registered_time = old.registered_time;
                }
                let _ = self
                    .total
                    .add(&Resources::from_proto(&agent.total_resources).unwrap_or_default());
                if let Some(old) = self.agents.insert(id, agent) {
                    let _ = self
                        .total
                        .try_sub(&Resources::from_proto(&old.total_resources).unwrap_or_default());
                }
            }
            Type::AgentRemoved => {
                let Some(id) = event
                    .agent_removed
                    .as_ref()
                    .and_then(|a| a.agent_id.as_ref())
                else {
                    return false;
                };
                if let Some(old) = self.agents.remove(&id.value) {
                    let _ = self
                        .total
                        .try_sub(&Resources::from_proto(&old.total_resources).unwrap_or_default());
                }
                self.allocated.remove(&id.value);
            }
            Type::FrameworkAdded | Type::FrameworkUpdated => {
                let framework = event
                    .framework_added
                    .as_ref()
                    .and_then(|f| f.framework.as_ref())
                    .or_else(|| {
                        event
                            .framework_updated
                            .as_ref()
                            .and_then(|f| f.framework.as_ref())
                    });
                let Some(framework) = framework else {
                    return false;
                };
                let id = framework_id(framework);
                let mut framework = framework.clone();
                if let Some(old) = self.frameworks.get(&id) {
                    framework.registered_time = old.registered_time;
                }
                self.frameworks.insert(id, framework);
            }
            Type::FrameworkRemoved => {
                let Some(info) = event
                    .framework_removed
                    .as_ref()
                    .and_then(|f| f.framework_info.as_ref())
                else {
                    return false;
                };
                let id = info
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                if let Some(mut framework) = self.frameworks.remove(&id) {
                    framework.active = Some(false);
                    framework.connected = Some(false);
                    framework.unregistered_time = Some(crate::master::time_info(now));
                    if self.completed_frameworks.len() == self.limits.completed_frameworks {
                        if let Some(old) = self.completed_frameworks.pop_front() {
                            self.completed_tasks.remove(&framework_id(&old));
                        }
                    }
                    self.completed_frameworks.push_back(framework);
                }
            }
            Type::TaskAdded => {
                let Some(task) = event.task_added.as_ref().and_then(|t| t.task.as_ref()) else {
                    return false;
                };
                let key = key_of(task);
                self.unreachable_tasks.retain(|t| key_of(t) != key);
                let resources = resources_of(task);
                let _ = self
                    .allocated
                    .entry(agent_of(task).to_owned())
                    .or_default()
                    .add(&resources);
                *self
                    .live_by_state
                    .entry(task.state.unwrap_or_default())
                    .or_default() += 1;
                if let Some(old) = self.tasks.insert(key, task.clone()) {
                    self.release(&old);
                }
            }
            Type::TaskUpdated => {
                let Some(update) = event.task_updated.as_ref() else {
                    return false;
                };
                let Some(status) = update.status.as_ref() else {
                    return false;
                };
                let framework = update
                    .framework_id
                    .as_ref()
                    .map(|f| f.value.clone())
                    .unwrap_or_default();
                let task_id = status
                    .task_id
                    .as_ref()
                    .map(|t| t.value.clone())
                    .unwrap_or_default();
                let state = update
                    .state
                    .and_then(|s| TaskState::try_from(s).ok())
                    .unwrap_or(TaskState::TaskUnknown);
                self.update_task((framework, task_id), state, status);
            }
            Type::Subscribed | Type::Heartbeat | Type::Unknown => return false,
        }
        true
    }

    /// Applies offers made and withdrawn.
    pub fn apply_offers(&mut self, changes: &protos::internal::OfferChanges) {
        for offer in &changes.added {
            let id = offer
                .id
                .as_ref()
                .map(|i| i.value.clone())
                .unwrap_or_default();
            self.offers.insert(id, offer.clone());
        }
        for id in &changes.removed {
            self.offers.remove(&id.value);
        }
    }

    /// Outstanding offers.
    pub fn offers(&self) -> impl Iterator<Item = &protos::v1::Offer> {
        self.offers.values()
    }

    /// Live agents by id.
    pub fn agents(&self) -> impl Iterator<Item = (&String, &Agent)> {
        self.agents.iter()
    }

    /// What agent `id`'s live tasks hold.
    pub fn allocated_on(&self, id: &str) -> Resources {
        self.allocated.get(id).cloned().unwrap_or_default()
    }

    /// Registered frameworks by id.
    pub fn frameworks(&self) -> impl Iterator<Item = (&String, &Framework)> {
        self.frameworks.iter()
    }

    /// Removed frameworks, oldest first.
    pub fn completed_frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.completed_frameworks.iter()
    }

    /// Live tasks by (framework, task).
    pub fn tasks(&self) -> impl Iterator<Item = (&TaskKey, &Task)> {
        self.tasks.iter()
    }

    /// Terminal tasks of `framework`, oldest first.
    pub fn completed_tasks_of(&self, framework: &str) -> impl Iterator<Item = &Task> {
        self.completed_tasks.get(framework).into_iter().flatten()
    }

    /// Tasks of removed agents.
    pub fn unreachable_tasks(&self) -> impl Iterator<Item = &Task> {
        self.unreachable_tasks.iter()
    }

    fn update_task(&mut self, key: TaskKey, state: TaskState, status: &TaskStatus) {
        let Some(task) = self.tasks.get_mut(&key) else {
            return;
        };
        if let Some(n) = self.live_by_state.get_mut(&task.state.unwrap_or_default()) {
            *n = n.saturating_sub(1);
        }
        *self.live_by_state.entry(state as i32).or_default() += 1;
        task.state = Some(state as i32);
        let mut status = status.clone();
        // Task data can be large and is the framework's business, not the operator's.
        status.data = Default::default();
        task.statuses.push(status);
        if task.statuses.len() > self.limits.statuses_per_task {
            let excess = task.statuses.len() - self.limits.statuses_per_task;
            task.statuses.drain(..excess);
        }
        if state == TaskState::TaskUnreachable {
            let Some(task) = self.tasks.remove(&key) else {
                return;
            };
            self.release(&task);
            if self.unreachable_tasks.len() == self.limits.unreachable_tasks {
                self.unreachable_tasks.pop_front();
            }
            self.unreachable_tasks.push_back(task);
        } else if state.is_terminal() {
            let Some(task) = self.tasks.remove(&key) else {
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

    /// Gives back on its agent what `task` held, and stops counting it live.
    fn release(&mut self, task: &Task) {
        if let Some(n) = self.live_by_state.get_mut(&task.state.unwrap_or_default()) {
            *n = n.saturating_sub(1);
        }
        if let Some(allocated) = self.allocated.get_mut(agent_of(task)) {
            let _ = allocated.try_sub(&resources_of(task));
        }
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
            .and_then(|f| f.framework_info.as_ref())
    }

    /// Live agents: how many, for gauges and tests.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Live tasks: how many.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The sums behind Mesos's `master/*` gauges.
    pub fn totals(&self) -> ViewTotals {
        let connected = self
            .frameworks
            .values()
            .filter(|f| f.connected == Some(true))
            .count();
        let mut used = Resources::new();
        for allocated in self.allocated.values() {
            let _ = used.add(allocated);
        }
        ViewTotals {
            agents: self.agents.len(),
            frameworks_connected: connected,
            frameworks_disconnected: self.frameworks.len() - connected,
            tasks: self
                .live_by_state
                .iter()
                .filter_map(|(s, n)| Some((TaskState::try_from(*s).ok()?, *n)))
                .chain([(TaskState::TaskUnreachable, self.unreachable_tasks.len())])
                .collect(),
            total: self.total.clone(),
            used,
        }
    }

    /// `GET_AGENTS`.
    pub fn get_agents(&self) -> GetAgents {
        let agents = self
            .agents
            .iter()
            .map(|(id, agent)| {
                let mut agent = agent.clone();
                agent.allocated_resources = self
                    .allocated
                    .get(id)
                    .map(Resources::to_proto)
                    .unwrap_or_default();
                agent
            })
            .collect();
        GetAgents {
            agents,
            recovered_agents: Vec::new(),
        }
    }

    /// `GET_FRAMEWORKS`: those `visible` admits.
    pub fn get_frameworks(&self, visible: &dyn Fn(&FrameworkInfo) -> bool) -> GetFrameworks {
        let shown = |f: &&Framework| f.framework_info.as_ref().is_some_and(visible);
        let mut allocated: HashMap<&str, Resources> = HashMap::new();
        for ((framework, _), task) in &self.tasks {
            let _ = allocated
                .entry(framework)
                .or_default()
                .add(&resources_of(task));
        }
        GetFrameworks {
            frameworks: self
                .frameworks
                .iter()
                .filter(|(_, f)| shown(f))
                .map(|(id, f)| {
                    let mut f = f.clone();
                    f.allocated_resources = allocated
                        .get(id.as_str())
                        .map(Resources::to_proto)
                        .unwrap_or_default();
                    f
                })
                .collect(),
            completed_frameworks: self
                .completed_frameworks
                .iter()
                .filter(shown)
                .cloned()
                .collect(),
        }
    }

    /// `GET_TASKS`: the tasks of frameworks `visible` admits (by their id).
    pub fn get_tasks(&self, visible: &dyn Fn(&str) -> bool) -> GetTasks {
        let mut completed: Vec<Task> = self
            .completed_tasks
            .iter()
            .filter(|(framework, _)| visible(framework))
            .flat_map(|(_, tasks)| tasks.iter().cloned())
            .collect();
        completed.sort_by_key(key_of);
        GetTasks {
            tasks: self
                .tasks
                .iter()
                .filter(|((framework, _), _)| visible(framework))
                .map(|(_, t)| t.clone())
                .collect(),
            unreachable_tasks: self
                .unreachable_tasks
                .iter()
                .filter(|t| visible(&key_of(t).0))
                .cloned()
                .collect(),
            completed_tasks: completed,
        }
    }

    /// `GET_EXECUTORS`: the executors of live tasks (a task names its executor; command
    /// tasks have none).
    pub fn get_executors(&self, visible: &dyn Fn(&str) -> bool) -> GetExecutors {
        let mut seen: BTreeMap<(String, String, &str), ()> = BTreeMap::new();
        for ((framework, _), task) in &self.tasks {
            if let Some(executor) = task.executor_id.as_ref().filter(|_| visible(framework)) {
                seen.insert(
                    (framework.clone(), executor.value.clone(), agent_of(task)),
                    (),
                );
            }
        }
        GetExecutors {
            executors: seen
                .into_keys()
                .map(|(framework, executor, agent)| Executor {
                    executor_info: Some(ExecutorInfo {
                        executor_id: Some(ExecutorId { value: executor }),
                        framework_id: Some(protos::v1::FrameworkId { value: framework }),
                        ..Default::default()
                    }),
                    agent_id: Some(protos::v1::AgentId {
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
        let mut roles: BTreeMap<String, (Vec<protos::v1::FrameworkId>, Resources)> =
            BTreeMap::new();
        let mut role_of_framework: HashMap<&str, String> = HashMap::new();
        for (id, f) in &self.frameworks {
            let Some(info) = f.framework_info.as_ref() else {
                continue;
            };
            let role = crate::master::role_of(info).to_owned();
            role_of_framework.insert(id, role.clone());
            roles
                .entry(role)
                .or_default()
                .0
                .push(protos::v1::FrameworkId { value: id.clone() });
        }
        for ((framework, _), task) in &self.tasks {
            if let Some(role) = role_of_framework.get(framework.as_str()) {
                if let Some(entry) = roles.get_mut(role) {
                    let _ = entry.1.add(&resources_of(task));
                }
            }
        }
        roles
            .into_iter()
            .map(|(name, (frameworks, resources))| Role {
                weight: Some(weight(&name)),
                name,
                frameworks,
                resources: resources.to_proto(),
            })
            .collect()
    }
}

fn framework_id(f: &Framework) -> String {
    f.framework_info
        .as_ref()
        .and_then(|i| i.id.as_ref())
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protos::v1::master::event::{
        AgentAdded, FrameworkAdded, FrameworkRemoved, TaskAdded, TaskUpdated,
    };
    use protos::v1::{AgentId, AgentInfo, FrameworkId, TaskId};

    fn framework_added(id: &str) -> Event {
        Event {
            r#type: Type::FrameworkAdded as i32,
            framework_added: Some(FrameworkAdded {
                framework: Some(Framework {
                    framework_info: Some(FrameworkInfo {
                        id: Some(FrameworkId { value: id.into() }),
                        user: "u".into(),
                        name: "f".into(),
                        ..Default::default()
                    }),
                    active: Some(true),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn agent_added(id: &str) -> Event {
        Event {
            r#type: Type::AgentAdded as i32,
            agent_added: Some(AgentAdded {
                agent: Some(Agent {
                    agent_info: Some(AgentInfo {
                        id: Some(AgentId { value: id.into() }),
                        hostname: "h".into(),
                        ..Default::default()
                    }),
                    total_resources: "cpus:4;mem:1024".parse::<Resources>().unwrap().to_proto(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn task_added(framework: &str, task: &str) -> Event {
        Event {
            r#type: Type::TaskAdded as i32,
            task_added: Some(TaskAdded {
                task: Some(Task {
                    name: task.into(),
                    task_id: Some(TaskId { value: task.into() }),
                    framework_id: Some(FrameworkId {
                        value: framework.into(),
                    }),
                    agent_id: Some(AgentId { value: "a1".into() }),
                    state: Some(TaskState::TaskStaging as i32),
                    resources: "cpus:1;mem:128".parse::<Resources>().unwrap().to_proto(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn task_updated(framework: &str, task: &str, state: TaskState) -> Event {
        Event {
            r#type: Type::TaskUpdated as i32,
            task_updated: Some(TaskUpdated {
                framework_id: Some(FrameworkId {
                    value: framework.into(),
                }),
                status: Some(TaskStatus {
                    task_id: Some(TaskId { value: task.into() }),
                    state: state as i32,
                    ..Default::default()
                }),
                state: Some(state as i32),
            }),
            ..Default::default()
        }
    }

    fn framework_removed(id: &str) -> Event {
        Event {
            r#type: Type::FrameworkRemoved as i32,
            framework_removed: Some(FrameworkRemoved {
                framework_info: Some(FrameworkInfo {
                    id: Some(FrameworkId { value: id.into() }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn tasks_move_from_live_to_completed_and_free_their_agent() {
        let mut view = ClusterView::new(ViewLimits::default());
        for e in [
            agent_added("a1"),
            framework_added("f1"),
            task_added("f1", "t1"),
            task_added("f1", "t2"),
            task_updated("f1", "t1", TaskState::TaskRunning),
        ] {
            assert!(view.apply(&e, 0.0));
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
        assert_eq!(tasks.tasks[0].statuses.len(), 1);
        assert_eq!(tasks.tasks[0].state, Some(TaskState::TaskRunning as i32));

        assert!(view.apply(&task_updated("f1", "t1", TaskState::TaskFinished), 0.0));
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
        view.apply(&agent_added("a1"), 0.0);
        view.apply(&framework_added("f0"), 0.0);
        for i in 0..5 {
            let t = format!("t{i}");
            view.apply(&task_added("f0", &t), 0.0);
            view.apply(&task_updated("f0", &t, TaskState::TaskRunning), 0.0);
            view.apply(&task_updated("f0", &t, TaskState::TaskKilling), 0.0);
            view.apply(&task_updated("f0", &t, TaskState::TaskKilled), 0.0);
        }
        let tasks = view.get_tasks(&|_: &str| true);
        let ids: Vec<String> = tasks.completed_tasks.iter().map(|t| key_of(t).1).collect();
        assert_eq!(ids, ["t2", "t3", "t4"]);
        assert!(tasks.completed_tasks.iter().all(|t| t.statuses.len() == 2));
        for f in ["f1", "f2", "f3"] {
            view.apply(&framework_added(f), 0.0);
            view.apply(&framework_removed(f), 0.0);
        }
        view.apply(&framework_removed("f0"), 0.0);
        let all = |_: &FrameworkInfo| true;
        let frameworks = view.get_frameworks(&all);
        assert!(frameworks.frameworks.is_empty());
        let ids: Vec<String> = frameworks
            .completed_frameworks
            .iter()
            .map(framework_id)
            .collect();
        assert_eq!(ids, ["f3", "f0"]);
        assert!(frameworks.completed_frameworks[0]
            .unregistered_time
            .is_some());
    }

    #[test]
    fn an_unreachable_task_comes_back_when_its_agent_does() {
        let mut view = ClusterView::new(ViewLimits::default());
        view.apply(&agent_added("a1"), 0.0);
        view.apply(&task_added("f1", "t1"), 0.0);
        view.apply(&task_updated("f1", "t1", TaskState::TaskUnreachable), 0.0);
        let all = |_: &str| true;
        assert_eq!(view.get_tasks(&all).unreachable_tasks.len(), 1);
        assert_eq!(view.task_count(), 0);
        view.apply(&task_added("f1", "t1"), 0.0);
        assert!(view.get_tasks(&all).unreachable_tasks.is_empty());
        assert_eq!(view.task_count(), 1);
    }

    #[test]
    fn malformed_events_change_nothing() {
        let mut view = ClusterView::new(ViewLimits::default());
        let empty = Event {
            r#type: Type::TaskAdded as i32,
            ..Default::default()
        };
        assert!(!view.apply(&empty, 0.0));
        assert!(!view.apply(&Event::default(), 0.0));
        assert_eq!(view.task_count(), 0);
    }
}
