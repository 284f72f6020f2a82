//! Running the example frameworks from a binary: start the scheduler on a node, follow its
//! progress, return how it ended. `keel-local` and `keelctl execute` use these; the particles
//! and holding executors' entry point (`<binary> executor particles|hold`) is here too.

use std::path::Path;

use authentication::Credential;
use coordination::Detector;
use frameworks::examples::batch::{BatchEvent, BatchScheduler, BatchSpec, TaskOutcome};
use frameworks::examples::particles::{
    ParticlesConfig, ParticlesExecutor, ParticlesProgress, ParticlesScheduler,
};
use frameworks::{scheduler_driver, DriverStatus, SchedulerOptions};
use libactor::{Node, SpawnError, Upid};

use crate::master_address::follow;
use protos::v1::{CommandInfo, FrameworkInfo};

/// Why an example framework could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Its driver could not start.
    #[error("cannot start the scheduler driver: {0}")]
    Spawn(#[from] SpawnError),
    /// Its driver ended without finishing the job.
    #[error("the scheduler driver ended early: {0:?}")]
    Driver(DriverStatus),
    /// No executor by that name.
    #[error("no example executor called {0:?} (known: particles)")]
    UnknownExecutor(String),
    /// The executor could not run.
    #[error(transparent)]
    Executor(#[from] frameworks::executor_driver::ExecutorDriverError),
}

/// A framework description; the driver fills in the running user's name.
pub fn framework_info(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// How agents start this binary as the executor called `name`: `<binary> executor <name>`.
pub fn executor_command(binary: &Path, name: &str) -> CommandInfo {
    let program = binary.display().to_string();
    CommandInfo {
        shell: Some(false),
        value: program.clone(),
        arguments: vec![program, "executor".into(), name.into()],
        ..Default::default()
    }
}

/// Runs the executor called `name` in this OS process (started by an agent).
pub async fn run_executor(name: &str) -> Result<DriverStatus, RunError> {
    match name {
        "particles" => Ok(frameworks::executor_driver::run(ParticlesExecutor).await?),
        "hold" => Ok(frameworks::executor_driver::run(
            frameworks::examples::holding::HoldingExecutor,
        )
        .await?),
        other => Err(RunError::UnknownExecutor(other.to_owned())),
    }
}

/// Runs the particles job against `master` (authenticating with `credential`, if any), calling `progress` on every change, and returns
/// the final tally.
pub async fn run_particles(
    node: &Node,
    master: &Upid,
    config: ParticlesConfig,
    credential: Option<Credential>,
    mut progress: impl FnMut(&ParticlesProgress),
) -> Result<ParticlesProgress, RunError> {
    let (scheduler, mut rx) = ParticlesScheduler::new(config);
    let handle = scheduler_driver::start(
        node,
        master.clone(),
        framework_info("particles"),
        scheduler,
        SchedulerOptions {
            credential,
            ..Default::default()
        },
    )?;
    let join = handle.join();
    tokio::pin!(join);
    let status = loop {
        tokio::select! {
            status = &mut join => break status,
            changed = rx.changed() => {
                if changed.is_err() { break join.await; }
                progress(&rx.borrow_and_update());
            }
        }
    };
    // Progress is a watch: updates coalesce, and the driver may end before the last one was
    // shown. Show the final state always.
    let last = rx.borrow().clone();
    progress(&last);
    if last.finished {
        Ok(last)
    } else {
        Err(RunError::Driver(status))
    }
}

/// Runs `spec` as a one-off framework called `name`, calling `on_event` for every state
/// change, and returns every task's outcome. With a `leader` detector (a `zk://` master), the
/// framework follows whichever master leads, re-registering with a new one.
pub async fn run_batch(
    node: &Node,
    master: &Upid,
    leader: Option<Detector>,
    name: &str,
    spec: BatchSpec,
    credential: Option<Credential>,
    mut on_event: impl FnMut(&BatchEvent),
) -> Result<Vec<TaskOutcome>, RunError> {
    let (scheduler, mut rx) = BatchScheduler::new(spec);
    let handle = scheduler_driver::start(
        node,
        master.clone(),
        framework_info(name),
        scheduler,
        SchedulerOptions {
            credential,
            ..Default::default()
        },
    )?;
    let following = leader.map(|detector| {
        let handle = handle.clone();
        follow(detector, master.clone(), move |next| {
            handle.set_master(next)
        })
    });
    let outcome = async {
        while let Some(event) = rx.recv().await {
            on_event(&event);
            if let BatchEvent::Done(outcomes) = event {
                handle.join().await;
                return Ok(outcomes);
            }
        }
        Err(RunError::Driver(handle.join().await))
    }
    .await;
    if let Some(following) = following {
        following.abort();
    }
    outcome
}
