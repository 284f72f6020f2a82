//! A scheduler for tests: every callback becomes a [`SchedulerEvent`] on a channel, and the
//! test acts through the driver with [`TestFramework::act`]. Waits are bounded in real time;
//! cluster time (timeouts, filters) is the libactor clock the test controls.

use std::time::Duration;

use frameworks::{scheduler_driver, Scheduler, SchedulerDriver, SchedulerHandle, SchedulerOptions};
use libactor::{Node, Upid};
use protos::v1::{
    AgentId, CommandInfo, ExecutorId, FrameworkId, FrameworkInfo, MasterInfo, Offer, OfferId,
    TaskId, TaskInfo, TaskState, TaskStatus,
};
use tokio::sync::mpsc;

/// How long a test waits for one event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// One scheduler callback.
#[derive(Debug, Clone)]
pub enum SchedulerEvent {
    /// `registered`.
    Registered(FrameworkId),
    /// `reregistered`.
    Reregistered,
    /// `disconnected`.
    Disconnected,
    /// `resource_offers`.
    Offers(Vec<Offer>),
    /// `offer_rescinded`.
    Rescinded(OfferId),
    /// `status_update`.
    Status(TaskStatus),
    /// `agent_lost`.
    AgentLost(AgentId),
    /// `executor_lost`.
    ExecutorLost(ExecutorId, i32),
    /// `framework_message`.
    Message(Vec<u8>),
    /// `error`.
    Error(String),
    /// `tasks_revoked`.
    Revoked(Vec<TaskId>, Duration),
}

/// Forwards every callback to a channel.
pub struct RecordingScheduler {
    tx: mpsc::UnboundedSender<SchedulerEvent>,
}

impl Scheduler for RecordingScheduler {
    fn registered(&mut self, _: &mut SchedulerDriver, id: &FrameworkId, _: &MasterInfo) {
        let _ = self.tx.send(SchedulerEvent::Registered(id.clone()));
    }
    fn reregistered(&mut self, _: &mut SchedulerDriver, _: &MasterInfo) {
        let _ = self.tx.send(SchedulerEvent::Reregistered);
    }
    fn disconnected(&mut self, _: &mut SchedulerDriver) {
        let _ = self.tx.send(SchedulerEvent::Disconnected);
    }
    fn resource_offers(&mut self, _: &mut SchedulerDriver, offers: Vec<Offer>) {
        let _ = self.tx.send(SchedulerEvent::Offers(offers));
    }
    fn offer_rescinded(&mut self, _: &mut SchedulerDriver, id: &OfferId) {
        let _ = self.tx.send(SchedulerEvent::Rescinded(id.clone()));
    }
    fn status_update(&mut self, _: &mut SchedulerDriver, status: &TaskStatus) {
        let _ = self.tx.send(SchedulerEvent::Status(status.clone()));
    }
    fn framework_message(
        &mut self,
        _: &mut SchedulerDriver,
        _: &ExecutorId,
        _: &AgentId,
        data: &[u8],
    ) {
        let _ = self.tx.send(SchedulerEvent::Message(data.to_vec()));
    }
    fn agent_lost(&mut self, _: &mut SchedulerDriver, id: &AgentId) {
        let _ = self.tx.send(SchedulerEvent::AgentLost(id.clone()));
    }
    fn executor_lost(&mut self, _: &mut SchedulerDriver, e: &ExecutorId, _: &AgentId, status: i32) {
        let _ = self
            .tx
            .send(SchedulerEvent::ExecutorLost(e.clone(), status));
    }
    fn tasks_revoked(&mut self, _: &mut SchedulerDriver, tasks: &[TaskId], grace: Duration) {
        let _ = self.tx.send(SchedulerEvent::Revoked(tasks.to_vec(), grace));
    }
    fn error(&mut self, _: &mut SchedulerDriver, message: &str) {
        let _ = self.tx.send(SchedulerEvent::Error(message.to_owned()));
    }
}

/// A framework a test drives by hand.
pub struct TestFramework {
    /// The driver.
    pub handle: SchedulerHandle<RecordingScheduler>,
    events: mpsc::UnboundedReceiver<SchedulerEvent>,
    /// Events an [`TestFramework::until`] passed over, in arrival order: a later wait sees
    /// them, so waiting for task A then task B works whichever arrives first.
    skipped: std::collections::VecDeque<SchedulerEvent>,
}

/// A framework description for tests; the driver fills in the running user's name, so that
/// an agent switching users runs its tasks as the test's own user.
pub fn framework_info(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        name: name.into(),
        ..Default::default()
    }
}

/// A command task asking for `resources` (`cpus:0.1;mem:16`).
pub fn command_task(id: &str, command: &str, resources: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: Some(TaskId { value: id.into() }),
        resources: resources
            .parse::<resources::Resources>()
            .expect("test resources parse")
            .to_proto(),
        command: Some(CommandInfo {
            value: command.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A recording scheduler and the receiver of its events, for tests that start the driver
/// themselves.
pub fn recording_scheduler() -> (RecordingScheduler, mpsc::UnboundedReceiver<SchedulerEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (RecordingScheduler { tx }, rx)
}

impl TestFramework {
    /// Starts a framework `info` on `node` against `master`.
    pub fn start(node: &Node, master: &Upid, info: FrameworkInfo) -> TestFramework {
        TestFramework::start_with(node, master, info, SchedulerOptions::default())
    }

    /// Starts a framework with driver `options` (a credential, explicit acknowledgements).
    pub fn start_with(
        node: &Node,
        master: &Upid,
        info: FrameworkInfo,
        options: SchedulerOptions,
    ) -> TestFramework {
        let (scheduler, events) = recording_scheduler();
        let handle = scheduler_driver::start(node, master.clone(), info, scheduler, options)
            .expect("scheduler driver starts");
        TestFramework {
            handle,
            events,
            skipped: Default::default(),
        }
    }

    /// The next event (passed-over ones first), or a panic after [`EVENT_TIMEOUT`].
    pub async fn next(&mut self) -> SchedulerEvent {
        if let Some(e) = self.skipped.pop_front() {
            return e;
        }
        self.receive().await
    }

    async fn receive(&mut self) -> SchedulerEvent {
        tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
            .await
            .expect("an event within the timeout")
            .expect("the scheduler is alive")
    }

    /// The first event, passed-over ones included, for which `pick` returns something; the
    /// events passed over stay for later waits.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&SchedulerEvent) -> Option<T>) -> T {
        if let Some((i, t)) = self
            .skipped
            .iter()
            .enumerate()
            .find_map(|(i, e)| pick(e).map(|t| (i, t)))
        {
            self.skipped.remove(i);
            return t;
        }
        loop {
            let event = self.receive().await;
            if let Some(t) = pick(&event) {
                return t;
            }
            self.skipped.push_back(event);
        }
    }

    /// Every event not yet consumed, without waiting.
    pub fn drain(&mut self) -> Vec<SchedulerEvent> {
        let mut out: Vec<SchedulerEvent> = self.skipped.drain(..).collect();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Waits for registration; returns the framework id.
    pub async fn registered(&mut self) -> FrameworkId {
        self.until(|e| match e {
            SchedulerEvent::Registered(id) => Some(id.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for the next batch of offers.
    pub async fn offers(&mut self) -> Vec<Offer> {
        self.until(|e| match e {
            SchedulerEvent::Offers(o) => Some(o.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for task `task` to reach `state`; panics if it ends in another terminal state.
    pub async fn status(&mut self, task: &str, state: TaskState) -> TaskStatus {
        self.until(|e| match e {
            SchedulerEvent::Status(s) if s.task_id.as_ref().is_some_and(|t| t.value == task) => {
                let got = s.state();
                if got == state {
                    Some(s.clone())
                } else if got.is_terminal() {
                    panic!(
                        "task {task} ended {} ({}) while waiting for {}",
                        got.as_str_name(),
                        s.message,
                        state.as_str_name()
                    );
                } else {
                    None
                }
            }
            _ => None,
        })
        .await
    }

    /// Launches `task` on the first offer that comes (the offer's rest may come back at once).
    pub async fn launch_on_first_offer(&mut self, task: TaskInfo) {
        let offers = self.offers().await;
        let first = offers[0].id.clone().expect("offer id");
        self.act(move |d| {
            d.launch_tasks(
                &[first],
                vec![task],
                protos::v1::Filters {
                    refuse_seconds: Some(0.0),
                },
            )
        })
        .await;
    }

    /// Asks the master to reconcile `task` (on `agent`, when known) and waits for its answer.
    pub async fn reconcile(&mut self, task: &str, agent: Option<AgentId>) -> TaskStatus {
        let status = TaskStatus {
            task_id: Some(TaskId { value: task.into() }),
            agent_id: agent,
            ..Default::default()
        };
        self.act(move |d| d.reconcile_tasks(vec![status])).await;
        self.until(|e| match e {
            SchedulerEvent::Status(s)
                if s.reason() == protos::v1::task_status::Reason::Reconciliation =>
            {
                Some(s.clone())
            }
            _ => None,
        })
        .await
    }

    /// Runs `f` with the driver inside the scheduler's process.
    pub async fn act(&self, f: impl FnOnce(&mut SchedulerDriver) + Send + 'static) {
        self.handle
            .call(move |_, driver| f(driver))
            .await
            .expect("the scheduler is alive");
    }
}
