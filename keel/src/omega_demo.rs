//! Omega beside offers on one cluster: several shared-state batch schedulers in parallel, a
//! slow shared-state service scheduler placing gangs, and an offer-based batch framework, all
//! at once on the same agents (`keel-local --framework omega`, and the cluster tests).

use std::time::Duration;

use authentication::Credential;
use frameworks::examples::batch::{BatchEvent, BatchScheduler, BatchSpec, TaskOutcome};
use frameworks::examples::omega_batch::{OmegaBatch, OmegaBatchSpec};
use frameworks::examples::omega_service::{
    OmegaService, OmegaServiceSpec, Reliability, ServiceEvent,
};
use frameworks::{scheduler_driver, shared_state, SchedulerOptions, SchedulingStats};
use libactor::{Node, Upid};
use protos::v1::TaskState;
use resources::Resources;

use crate::example_runs::{framework_info, RunError};

/// What to run.
#[derive(Debug, Clone)]
pub struct OmegaDemo {
    /// Shared-state batch schedulers running in parallel.
    pub batch_schedulers: usize,
    /// Tasks per batch scheduler.
    pub batch_tasks: usize,
    /// What each batch task runs.
    pub batch_command: String,
    /// Service jobs.
    pub service_jobs: usize,
    /// Tasks per service job (a gang, one per machine).
    pub tasks_per_job: usize,
    /// How long the service scheduler takes to decide a job.
    pub decision_time: Duration,
    /// Tasks of the offer-based batch framework beside them.
    pub offer_tasks: usize,
    /// Resources of every task.
    pub task_resources: Resources,
}

/// How it went.
#[derive(Debug, Clone, Default)]
pub struct OmegaReport {
    /// Each batch scheduler's transactions.
    pub batch: Vec<SchedulingStats>,
    /// The service scheduler's transactions.
    pub service: SchedulingStats,
    /// Batch tasks (shared-state) that finished.
    pub batch_finished: usize,
    /// Service jobs all of whose tasks ran.
    pub jobs_running: usize,
    /// Offer-based tasks that finished.
    pub offer_finished: usize,
}

impl OmegaReport {
    /// Whether everything asked for ran.
    pub fn complete(&self, demo: &OmegaDemo) -> bool {
        self.batch_finished == demo.batch_schedulers * demo.batch_tasks
            && self.jobs_running == demo.service_jobs
            && self.offer_finished == demo.offer_tasks
    }
}

/// How a service task's command keeps running until the demo stops its framework.
const SERVICE_COMMAND: &str = "sleep 600";

/// Runs `demo` against `master`, reporting progress lines through `say`; the service scheduler
/// ranks machines by `reliability` when given (Autopilot's records, see
/// [`crate::machine_reliability`]).
pub async fn run_omega(
    node: &Node,
    master: &Upid,
    credential: Option<Credential>,
    demo: &OmegaDemo,
    reliability: Option<Reliability>,
    mut say: impl FnMut(String),
) -> Result<OmegaReport, RunError> {
    let options = || SchedulerOptions {
        credential: credential.clone(),
        ..Default::default()
    };
    let mut batch_runs = Vec::new();
    for i in 0..demo.batch_schedulers {
        let mut spec = OmegaBatchSpec::new(
            &format!("omega-batch{i}"),
            demo.batch_tasks,
            &demo.batch_command,
            demo.task_resources.clone(),
        );
        spec.start_at = i as f64 / demo.batch_schedulers.max(1) as f64;
        let (scheduler, rx) = OmegaBatch::new(spec);
        let stats = scheduler.stats();
        let handle = shared_state::start(
            node,
            master.clone(),
            framework_info(&format!("omega-batch{i}")),
            scheduler,
            options(),
        )?;
        batch_runs.push((handle, rx, stats));
    }
    let spec = OmegaServiceSpec::new(
        "omega-service",
        demo.service_jobs,
        demo.tasks_per_job,
        SERVICE_COMMAND,
        demo.task_resources.clone(),
        demo.decision_time,
    );
    let spec = OmegaServiceSpec {
        reliability,
        ..spec
    };
    let (service, mut service_rx) = OmegaService::new(spec);
    let service_stats = service.stats();
    let service_handle = shared_state::start(
        node,
        master.clone(),
        framework_info("omega-service"),
        service,
        options(),
    )?;
    let (offers, offers_rx) = BatchScheduler::new(BatchSpec {
        task_prefix: "offers".into(),
        commands: vec![demo.batch_command.clone(); demo.offer_tasks],
        task_resources: demo.task_resources.clone(),
    });
    let offers_handle = scheduler_driver::start(
        node,
        master.clone(),
        framework_info("offers-batch"),
        offers,
        options(),
    )?;

    let mut report = OmegaReport::default();
    // The schedulers run side by side in their own processes; their events wait in the
    // channels meanwhile, so the batches can be awaited one after the other.
    let batches = async {
        let mut all = Vec::new();
        for (_, rx, stats) in batch_runs {
            all.push((finished_of(rx).await, stats));
        }
        all
    };
    let service = async {
        let mut running = std::collections::BTreeSet::new();
        let mut ended = 0;
        while running.len() + ended < demo.service_jobs * demo.tasks_per_job {
            match service_rx.recv().await {
                Some(ServiceEvent::JobPlaced { job, agents }) => {
                    say(format!(
                        "  omega-service: {job} placed on {}",
                        agents.join(", ")
                    ));
                }
                Some(ServiceEvent::Status {
                    task_id,
                    state: TaskState::TaskRunning,
                }) => {
                    running.insert(task_id);
                }
                Some(ServiceEvent::Status { state, .. }) if state.is_terminal() => ended += 1,
                Some(ServiceEvent::JobAbandoned { job, why }) => {
                    say(format!("  omega-service: {job} abandoned {why}"));
                    ended += demo.tasks_per_job;
                }
                Some(_) => {}
                None => break,
            }
        }
        running.len() / demo.tasks_per_job.max(1)
    };
    let (finished, jobs_running, offers_done) =
        tokio::join!(batches, service, finished_of(offers_rx));
    for (done, stats) in finished {
        report.batch_finished += done;
        report.batch.push(stats.borrow().clone());
    }
    report.jobs_running = jobs_running;
    report.offer_finished = offers_done;
    report.service = service_stats.borrow().clone();
    service_handle.stop();
    service_handle.join().await;
    offers_handle.join().await;
    Ok(report)
}

/// Waits for a batch scheduler's `Done`; returns how many of its tasks finished.
async fn finished_of(mut rx: tokio::sync::mpsc::UnboundedReceiver<BatchEvent>) -> usize {
    while let Some(event) = rx.recv().await {
        if let BatchEvent::Done(outcomes) = event {
            return finished(&outcomes);
        }
    }
    0
}

fn finished(outcomes: &[TaskOutcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| o.state == TaskState::TaskFinished)
        .count()
}
