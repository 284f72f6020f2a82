//! `service`: keeps K instances of a long-running command alive. An instance that ends, for
//! whatever reason, is launched again (as a new task), until the framework is stopped.

use protos::IdText;
use std::collections::BTreeMap;

use protos::v1::{CommandInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus};
use resources::Resources;
use tokio::sync::watch;

use crate::offer_packing::launch_packed;
use crate::scheduler::Scheduler;
use crate::scheduler_driver::SchedulerDriver;

/// What to keep running.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The service's name (task ids are `{name}-{instance}-{attempt}`).
    pub name: String,
    /// The command each instance runs (`sh -c`).
    pub command: String,
    /// How many instances.
    pub instances: usize,
    /// Resources of each instance.
    pub task_resources: Resources,
}

/// Where the service stands; published after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceProgress {
    /// Instances RUNNING now.
    pub running: usize,
    /// Instances launched again after they ended.
    pub relaunches: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Launched,
    Running,
}

/// The service scheduler.
pub struct ServiceScheduler {
    spec: ServiceSpec,
    /// Per instance: its state and current attempt.
    slots: Vec<(Slot, u64)>,
    /// Live task id → instance.
    tasks: BTreeMap<String, usize>,
    progress: ServiceProgress,
    publish: watch::Sender<ServiceProgress>,
}

impl ServiceScheduler {
    /// A scheduler for `spec` and the receiver of its progress.
    pub fn new(spec: ServiceSpec) -> (Self, watch::Receiver<ServiceProgress>) {
        let (publish, rx) = watch::channel(ServiceProgress::default());
        let slots = vec![(Slot::Waiting, 0); spec.instances];
        (
            ServiceScheduler {
                spec,
                slots,
                tasks: BTreeMap::new(),
                progress: ServiceProgress::default(),
                publish,
            },
            rx,
        )
    }

    fn publish(&mut self) {
        self.progress.running = self.slots.iter().filter(|s| s.0 == Slot::Running).count();
        let _ = self.publish.send(self.progress.clone());
    }
}

impl Scheduler for ServiceScheduler {
    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        for offer in &offers {
            let per_task = self.spec.task_resources.clone();
            let ServiceScheduler {
                spec, slots, tasks, ..
            } = self;
            let mut waiting = slots
                .iter_mut()
                .enumerate()
                .filter(|(_, slot)| slot.0 == Slot::Waiting);
            launch_packed(
                driver,
                offer,
                &per_task,
                || waiting.next(),
                |(instance, slot)| {
                    slot.0 = Slot::Launched;
                    slot.1 += 1;
                    let task_id = format!("{}-{instance}-{}", spec.name, slot.1);
                    tasks.insert(task_id.clone(), instance);
                    TaskInfo {
                        name: format!("{} instance {instance}", spec.name),
                        task_id: Some(TaskId { value: task_id }),
                        command: Some(CommandInfo {
                            value: spec.command.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                },
            );
        }
        if self.slots.iter().all(|s| s.0 != Slot::Waiting) {
            driver.suppress_offers();
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        let task_id = status.task_id.text().to_owned();
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let Some(&instance) = self.tasks.get(&task_id) else {
            return;
        };
        if state == TaskState::TaskRunning {
            self.slots[instance].0 = Slot::Running;
        } else if state.is_terminal() {
            self.tasks.remove(&task_id);
            tracing::info!(task = %task_id, state = state.as_str_name(), message = %status.message, "service instance ended; launching it again");
            self.slots[instance].0 = Slot::Waiting;
            self.progress.relaunches += 1;
            driver.revive_offers();
        }
        self.publish();
    }
}
