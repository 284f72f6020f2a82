//! Schedulers that launch one task at a time and time each from the decision leaving the
//! scheduler to the task's TASK_RUNNING arriving back: [`OfferProbe`] by accepting an offer,
//! [`CommitProbe`] by committing a one-placement transaction.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frameworks::{CommitOptions, Scheduler, SchedulerDriver, SharedStateScheduler};
use protos::omega::{Outcome, Placement, TransactionResultMessage};
use protos::v1::{AgentId, CommandInfo, Filters, Offer, TaskId, TaskInfo, TaskState, TaskStatus};
use protos::IdText;
use resources::Resources;

/// Latencies measured so far, shared with the benchmark.
pub type Samples = Arc<Mutex<Vec<Duration>>>;

/// What both probes share: how many to take, the task, and the one in flight.
struct Probe {
    want: usize,
    task_resources: Resources,
    samples: Samples,
    in_flight: Option<(String, Instant)>,
    next: usize,
}

impl Probe {
    fn new(want: usize, task_resources: Resources, samples: Samples) -> Probe {
        Probe {
            want,
            task_resources,
            samples,
            in_flight: None,
            next: 0,
        }
    }

    /// The next task to launch, timed from now; `None` once enough were timed or one is in
    /// flight.
    fn launch(&mut self) -> Option<TaskInfo> {
        if self.in_flight.is_some() || self.next >= self.want {
            return None;
        }
        self.next += 1;
        let id = format!("probe-{}", self.next);
        self.in_flight = Some((id.clone(), Instant::now()));
        Some(TaskInfo {
            name: id.clone(),
            task_id: Some(TaskId { value: id }),
            resources: self.task_resources.to_proto(),
            command: Some(CommandInfo {
                value: "true".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// A status arrived: a RUNNING of the task in flight ends its timing. True when another
    /// may go.
    fn status(&mut self, status: &TaskStatus) -> bool {
        let running = status.state == TaskState::TaskRunning as i32;
        match &self.in_flight {
            Some((id, started)) if running && id == status.task_id.text() => {
                if let Ok(mut samples) = self.samples.lock() {
                    samples.push(started.elapsed());
                }
                self.in_flight = None;
                true
            }
            _ => false,
        }
    }

    fn done(&self) -> bool {
        self.next >= self.want && self.in_flight.is_none()
    }
}

/// Launches by accepting offers, one task at a time.
pub struct OfferProbe(Probe);

impl OfferProbe {
    /// A probe timing `want` launches of `task_resources` into `samples`.
    pub fn new(want: usize, task_resources: Resources, samples: Samples) -> OfferProbe {
        OfferProbe(Probe::new(want, task_resources, samples))
    }
}

impl Scheduler for OfferProbe {
    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        let no_filter = Filters {
            refuse_seconds: Some(0.0),
        };
        for offer in offers {
            let Some(id) = offer.id.clone() else { continue };
            let fits = Resources::from_proto(&offer.resources)
                .is_ok_and(|r| r.contains(&self.0.task_resources));
            let task = fits.then(|| self.0.launch()).flatten();
            driver.launch_tasks(&[id], task.into_iter().collect(), no_filter);
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        self.0.status(status);
        if self.0.done() {
            driver.stop();
        }
    }
}

/// Launches by committing one-placement transactions on its copy of the cell.
pub struct CommitProbe(Probe);

impl CommitProbe {
    /// A probe timing `want` launches of `task_resources` into `samples`.
    pub fn new(want: usize, task_resources: Resources, samples: Samples) -> CommitProbe {
        CommitProbe(Probe::new(want, task_resources, samples))
    }

    fn commit_next(&mut self, driver: &mut SchedulerDriver) {
        let cell = driver.cell();
        if !cell.is_current() || self.0.in_flight.is_some() {
            return;
        }
        let Some(agent) = cell
            .agents()
            .find(|a| {
                cell.free(a.agent_id.text())
                    .contains(&self.0.task_resources)
            })
            .map(|a| (a.agent_id.text().to_owned(), a.version))
        else {
            return;
        };
        let Some(task) = self.0.launch() else { return };
        driver.commit(
            vec![Placement {
                agent_id: Some(AgentId { value: agent.0 }),
                seen_version: agent.1,
                task: Some(task),
                priority: 0,
            }],
            CommitOptions::default(),
        );
    }
}

impl SharedStateScheduler for CommitProbe {
    fn cell_changed(&mut self, driver: &mut SchedulerDriver) {
        self.commit_next(driver);
    }

    fn transaction_result(
        &mut self,
        driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    ) {
        let committed = result.error.is_empty()
            && result
                .results
                .iter()
                .all(|r| r.outcome() == Outcome::Committed);
        if !committed {
            // Placed on a stale copy: try again on the refreshed one.
            self.0.in_flight = None;
            self.0.next -= 1;
            self.commit_next(driver);
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        if self.0.status(status) {
            self.commit_next(driver);
        }
        if self.0.done() {
            driver.stop();
        }
    }
}

/// The median and 99th percentile of `samples`.
pub fn median_p99(samples: &Samples) -> (Duration, Duration) {
    let mut all = samples.lock().map(|s| s.clone()).unwrap_or_default();
    all.sort();
    if all.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
