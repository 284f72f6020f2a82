//! The simulation's framework: a batch job of `instances` tasks run through the real scheduler
//! driver, as a careful Mesos framework runs one, surviving the failover of its scheduler.
//! Each instance is launched until one of its tasks finishes; a task reported ended any other
//! way is replaced by a new task (a new id, so that the ledger can tell every start apart);
//! tasks are reconciled every [`RECONCILE_EVERY`]; a task still staging after
//! [`STAGING_TIMEOUT`] is killed (Mesos's advice for launches lost on their way), and the kill
//! is sent again at every reconciliation until the task ends (a kill can be lost on its way
//! too).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use frameworks::scheduler::Scheduler;
use frameworks::scheduler_driver::SchedulerDriver;
use parking_lot::Mutex;
use protos::v1::{
    CommandInfo, Filters, FrameworkId, MasterInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus,
};
use protos::IdText;
use resources::Resources;

use crate::ledger::{is_definitive_end, Ledger};

/// How often the framework reconciles its live tasks.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How long a task may stay staging before the framework kills it.
pub const STAGING_TIMEOUT: Duration = Duration::from_secs(120);

const TICK: u64 = 1;

/// One task the framework launched and has not seen end.
#[derive(Debug, Clone)]
struct Live {
    instance: u32,
    state: TaskState,
    launched: Instant,
}

/// The batch job and what the framework knows of it: what a real framework keeps durable (in
/// ZooKeeper, say) so that a new scheduler instance carries on after a failover.
#[derive(Debug)]
pub struct JobState {
    name: String,
    instances: u32,
    task_resources: Resources,
    /// Each task's run time in seconds, drawn per instance when the job is made.
    runtimes: Vec<u64>,
    pending: BTreeSet<u32>,
    attempts: BTreeMap<u32, u32>,
    live: BTreeMap<String, Live>,
    done: BTreeSet<u32>,
    framework_id: Option<FrameworkId>,
}

impl JobState {
    /// A job of `runtimes.len()` tasks of `task_resources`, the i-th running `runtimes[i]`
    /// seconds.
    pub fn new(name: &str, task_resources: Resources, runtimes: Vec<u64>) -> Self {
        let instances = runtimes.len() as u32;
        JobState {
            name: name.to_owned(),
            instances,
            task_resources,
            runtimes,
            pending: (0..instances).collect(),
            attempts: BTreeMap::new(),
            live: BTreeMap::new(),
            done: BTreeSet::new(),
            framework_id: None,
        }
    }

    /// Whether a task of every instance has finished.
    pub fn is_done(&self) -> bool {
        self.done.len() as u32 == self.instances
    }

    /// Instances finished so far.
    pub fn finished(&self) -> usize {
        self.done.len()
    }

    /// Tasks launched and not seen to end.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// The tasks launched and not seen to end, with the state last heard.
    pub fn live_tasks(&self) -> Vec<(String, TaskState)> {
        self.live
            .iter()
            .map(|(id, l)| (id.clone(), l.state))
            .collect()
    }

    /// The id the master gave the framework.
    pub fn framework_id(&self) -> Option<&FrameworkId> {
        self.framework_id.as_ref()
    }

    fn next_task(&mut self, instance: u32, offer: &Offer) -> TaskInfo {
        let attempt = self.attempts.entry(instance).or_default();
        *attempt += 1;
        let id = format!("{}-{instance}-{attempt}", self.name);
        TaskInfo {
            name: id.clone(),
            task_id: Some(TaskId { value: id }),
            agent_id: offer.agent_id.clone(),
            resources: self.task_resources.to_proto(),
            command: Some(CommandInfo {
                value: "simulated".into(),
                ..Default::default()
            }),
            data: Bytes::from(self.runtimes[instance as usize].to_string()),
            ..Default::default()
        }
    }

    /// Asks the master for the state of every live task.
    fn reconcile(&self, driver: &mut SchedulerDriver) {
        let statuses = self.live.keys().map(|id| TaskStatus {
            task_id: Some(TaskId { value: id.clone() }),
            ..Default::default()
        });
        driver.reconcile_tasks(statuses.collect());
    }
}

/// The scheduler of one instance of the framework: its job's state is shared with the
/// instances before and after it.
#[derive(Debug)]
pub struct BatchJob {
    state: Arc<Mutex<JobState>>,
    ledger: Ledger,
    /// This instance's reconciliation timer runs.
    ticking: bool,
}

impl BatchJob {
    /// A scheduler running the job in `state`.
    pub fn new(state: Arc<Mutex<JobState>>, ledger: Ledger) -> Self {
        BatchJob {
            state,
            ledger,
            ticking: false,
        }
    }
}

impl BatchJob {
    fn start_ticking(&mut self, driver: &mut SchedulerDriver) {
        if !self.ticking {
            self.ticking = true;
            driver.set_timer(RECONCILE_EVERY, TICK);
        }
    }
}

impl Scheduler for BatchJob {
    fn registered(
        &mut self,
        driver: &mut SchedulerDriver,
        framework_id: &FrameworkId,
        _: &MasterInfo,
    ) {
        self.state.lock().framework_id = Some(framework_id.clone());
        self.start_ticking(driver);
    }

    fn reregistered(&mut self, driver: &mut SchedulerDriver, _: &MasterInfo) {
        // What happened to the tasks while the master (or this scheduler) was away.
        self.state.lock().reconcile(driver);
        driver.revive_offers();
        self.start_ticking(driver);
    }

    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        let now = driver.node().clock().now();
        let mut job = self.state.lock();
        for offer in offers {
            let Some(offer_id) = offer.id.clone() else {
                continue;
            };
            let mut left = Resources::from_proto(&offer.resources).unwrap_or_default();
            let mut tasks = Vec::new();
            while let Some(&instance) = job.pending.first() {
                if !left.try_sub(&job.task_resources) {
                    break;
                }
                job.pending.remove(&instance);
                let task = job.next_task(instance, &offer);
                job.live.insert(
                    task.task_id.text().to_owned(),
                    Live {
                        instance,
                        state: TaskState::TaskStaging,
                        launched: now,
                    },
                );
                tasks.push(task);
            }
            let refuse = if job.pending.is_empty() { 30.0 } else { 1.0 };
            driver.launch_tasks(
                &[offer_id],
                tasks,
                Filters {
                    refuse_seconds: Some(refuse),
                },
            );
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        let id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        tracing::debug!(task = %id, ?state, reason = ?status.reason, source = status.source, message = %status.message, "status update");
        self.ledger.heard(&id, state);
        let mut job = self.state.lock();
        let Some(live) = job.live.get_mut(&id) else {
            // A task already replaced (reported lost, say) that finished after all.
            if state == TaskState::TaskFinished {
                if let Some(instance) = instance_of(&id) {
                    job.done.insert(instance);
                    job.pending.remove(&instance);
                }
            }
            return;
        };
        live.state = state;
        let instance = live.instance;
        if state == TaskState::TaskFinished {
            job.live.remove(&id);
            job.done.insert(instance);
            job.pending.remove(&instance);
        } else if is_definitive_end(state)
            || matches!(state, TaskState::TaskLost | TaskState::TaskUnreachable)
        {
            job.live.remove(&id);
            if !job.done.contains(&instance) {
                job.pending.insert(instance);
                driver.revive_offers();
            }
        }
    }

    fn timer(&mut self, driver: &mut SchedulerDriver, _token: u64) {
        let now = driver.node().clock().now();
        let job = self.state.lock();
        let stuck: Vec<String> = job
            .live
            .iter()
            .filter(|(_, l)| {
                // A kill can be lost as a launch can: it is sent again until the task ends.
                l.state == TaskState::TaskKilling
                    || l.state == TaskState::TaskStaging
                        && now.duration_since(l.launched) >= STAGING_TIMEOUT
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stuck {
            driver.kill_task(&TaskId { value: id });
        }
        job.reconcile(driver);
        if !job.pending.is_empty() {
            driver.revive_offers();
        }
        driver.set_timer(RECONCILE_EVERY, TICK);
    }
}

/// The instance a task id (`name-instance-attempt`) belongs to.
fn instance_of(task: &str) -> Option<u32> {
    let mut parts = task.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}
