//! Checkpointing and recovery: what the agent writes as executors come and go, and how a
//! restarted agent with the same work dir takes its executors back.
//!
//! ```text
//!  checkpoint of an executor run          what the restarted agent does with it
//!  ─────────────────────────────          ──────────────────────────────────────────────────
//!  supervisor never started (no pid)   ─▶ the run is claimed (the supervisor can no longer
//!                                         start) and its tasks DROPPED
//!                                         (REASON_AGENT_RESTARTED): they never ran
//!  command task, supervisor alive      ─▶ adopted: watched through a pidfd, killable, its
//!                                         container re-attached; RUNNING reported if the
//!                                         earlier run had not yet
//!  command task, supervisor gone       ─▶ its recorded exit status ends the task (FINISHED /
//!                                         FAILED / KILLED as if the agent had watched)
//!  custom executor, alive, registered ─▶ adopted and asked back (ReconnectExecutorMessage);
//!                                         it re-registers with its unacknowledged updates
//!                                         (ReregisterExecutorMessage; an HTTP executor
//!                                         subscribes again), or is ended after
//!                                         EXECUTOR_REREGISTRATION_TIMEOUT: tasks KILLED
//!                                         (REASON_AGENT_RESTARTED)
//!  custom executor, never registered   ─▶ adopted and ended the same way
//! ```
//!
//! The agent then keeps every recovered container (destroying only unknown ones), ends the
//! previous run's executor reaper, and re-registers with its checkpointed id and its tasks;
//! the status update manager resends what its log holds unacknowledged.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use libactor::Context;

use protos::internal::{
    AgentCheckpoint, CheckpointedTask, ExecutorCheckpoint, ExecutorReregisteredMessage,
    ReconnectExecutorMessage, ReregisterExecutorMessage, StatusUpdateMessage,
};
use protos::v1::task_status::Reason;
use protos::v1::{AgentId, FrameworkId, TaskState};
use protos::IdText;
use resources::Resources;
use tokio::sync::oneshot;

use super::{FrameworkRecord, Slave, TaskHealth, EXECUTOR_REREGISTRATION_TIMEOUT};
use crate::checkpoint::{read_message, write_message, CheckpointError, ExecutorDir, MetaDir};
use crate::containerizer::Container;
use crate::executor::{AgentTask, Executor, ExecutorKind, ExecutorState};
use crate::health_check::{HealthCheckSpec, HealthState};
use crate::task_process::TaskProcess;

/// What the tasks of an executor run that never started are told.
const UNSTARTED: &str = "the agent restarted before the executor started";

/// Run numbers are reserved this many at a time, so that the agent checkpoint is written once
/// per this many launches rather than at each (a restarted agent starts past the reservation).
pub const RUN_RESERVATION: u64 = 1024;

/// What an earlier run of the agent left under `meta`.
#[derive(Debug, Default)]
pub struct Checkpointed {
    /// The agent's id and run reservation.
    pub agent: Option<AgentCheckpoint>,
    /// Executor runs with their checkpoint.
    pub executors: Vec<(ExecutorDir, ExecutorCheckpoint)>,
}

impl Checkpointed {
    /// Reads the checkpoints under `meta`; unreadable ones are logged and skipped.
    pub fn read(meta: &MetaDir) -> Checkpointed {
        let agent = match read_message::<AgentCheckpoint>(&meta.agent()) {
            Ok(agent) => agent.filter(|a| !a.agent_id.is_empty()),
            Err(e) => {
                tracing::error!(error = %e, "agent checkpoint unreadable; registering as a new agent");
                None
            }
        };
        let mut executors = Vec::new();
        for dir in meta.executor_dirs() {
            match read_message::<ExecutorCheckpoint>(&dir.checkpoint()) {
                Ok(Some(checkpoint)) => executors.push((dir, checkpoint)),
                Ok(None) => dir.remove(),
                Err(e) => {
                    tracing::error!(error = %e, "executor checkpoint unreadable; its executor is lost");
                    dir.remove();
                }
            }
        }
        Checkpointed { agent, executors }
    }
}

impl Slave {
    /// Writes the agent checkpoint: its id and the run numbers reserved so far.
    pub(super) fn checkpoint_agent(&mut self) {
        let Some(id) = self.id.clone() else {
            return;
        };
        let checkpoint = AgentCheckpoint {
            agent_id: id,
            next_run: self.runs_reserved,
        };
        if let Err(e) = write_message(&self.meta.agent(), &checkpoint) {
            tracing::error!(error = %e, "agent checkpoint not written");
            self.metrics.inc(|m| &m.checkpoint_failures);
        }
    }

    /// The next executor run number; reserves (and checkpoints) another block when needed.
    pub(super) fn next_run(&mut self) -> u64 {
        self.next_run += 1;
        if self.next_run > self.runs_reserved {
            self.runs_reserved = self.next_run + RUN_RESERVATION;
            self.checkpoint_agent();
        }
        self.next_run
    }

    /// Writes the checkpoint of `executor_id` of `framework` (its framework, tasks, sandbox and
    /// container), replacing the previous one. A failure (a full disk) is logged and counted,
    /// and returned: a launch must not go ahead unrecorded (see `Slave::drop_unrecorded`).
    pub(super) fn checkpoint_executor(
        &mut self,
        framework: &str,
        executor_id: &str,
    ) -> Result<(), CheckpointError> {
        let Some(f) = self.frameworks.get(framework) else {
            return Ok(());
        };
        let Some(e) = f.executors.get(executor_id) else {
            return Ok(());
        };
        let checkpoint = ExecutorCheckpoint {
            framework_id: framework.to_owned(),
            framework: Some(f.info.clone()),
            scheduler: f.scheduler.clone(),
            executor_id: e.id.clone(),
            custom: e.kind == ExecutorKind::Custom,
            executor: e.info.clone(),
            run: e.run,
            sandbox: e.sandbox.display().to_string(),
            container_id: e.container_id.clone(),
            pid: e.pid.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            tasks: e
                .tasks
                .values()
                .map(|t| CheckpointedTask {
                    info: Some(t.info.clone()),
                    state: t.state as i32,
                    delivered: t.delivered,
                    group: t.group.clone().unwrap_or_default(),
                })
                .collect(),
        };
        let path = self.meta.executor(&e.container_id).checkpoint();
        let written = write_message(&path, &checkpoint);
        if let Err(e) = &written {
            tracing::error!(error = %e, "executor checkpoint not written");
            self.metrics.inc(|m| &m.checkpoint_failures);
        }
        written
    }

    /// Removes an ended executor run's checkpoint once the status update manager has logged
    /// the updates reported before this call (messages to it are handled in order).
    pub(super) fn forget_checkpoint(&self, container_id: &str) {
        let dir = self.meta.executor(container_id);
        self.sum.dispatch(move |_, _| dir.remove());
    }

    /// Takes back what an earlier run of the agent left: its id, its executors (adopted,
    /// ended, or reported), its containers.
    pub(super) fn recover(&mut self, ctx: &mut Context<Self>, checkpointed: Checkpointed) {
        if let Some(agent) = checkpointed.agent {
            tracing::info!(agent = %agent.agent_id, executors = checkpointed.executors.len(), "recovering the agent's earlier run");
            self.id = Some(agent.agent_id);
            self.next_run = agent.next_run;
            self.runs_reserved = agent.next_run;
        }
        let mut keep = HashSet::new();
        for (dir, checkpoint) in checkpointed.executors {
            self.next_run = self.next_run.max(checkpoint.run);
            keep.insert(dir.container.clone());
            self.recover_executor(ctx, dir, checkpoint);
        }
        if self.next_run > self.runs_reserved {
            self.runs_reserved = self.next_run;
        }
        let orphans = self.containerizer.containerizer.recover(&keep);
        if !orphans.is_empty() {
            tracing::warn!(
                count = orphans.len(),
                "destroyed containers an earlier run of this agent left behind"
            );
            if let Some(metrics) = self.metrics.get() {
                metrics.orphans_destroyed.add(orphans.len() as u64);
            }
        }
    }

    fn recover_executor(
        &mut self,
        ctx: &mut Context<Self>,
        dir: ExecutorDir,
        checkpoint: ExecutorCheckpoint,
    ) {
        let framework = checkpoint.framework_id.clone();
        let executor_id = checkpoint.executor_id.clone();
        let kind = if checkpoint.custom {
            ExecutorKind::Custom
        } else {
            ExecutorKind::Command
        };
        let tasks: BTreeMap<String, AgentTask> = checkpoint
            .tasks
            .iter()
            .filter_map(|t| {
                let info = t.info.clone()?;
                Some((
                    info.task_id.text().to_owned(),
                    AgentTask {
                        resources: Resources::from_proto(&info.resources).unwrap_or_default(),
                        info,
                        state: TaskState::try_from(t.state).unwrap_or(TaskState::TaskStaging),
                        delivered: t.delivered,
                        kill_reason: None,
                        healthy: None,
                        group: Some(t.group.clone()).filter(|g| !g.is_empty()),
                    },
                ))
            })
            .collect();
        let live = tasks.values().any(|t| !t.state.is_terminal());
        let mut info = checkpoint.framework.clone().unwrap_or_default();
        info.id = Some(FrameworkId {
            value: framework.clone(),
        });
        let record = self
            .frameworks
            .entry(framework.clone())
            .or_insert_with(|| FrameworkRecord {
                info,
                scheduler: checkpoint.scheduler.clone(),
                executors: Default::default(),
                shut_down: false,
            });
        if record.executors.contains_key(&executor_id) || !live {
            // A second run of one executor id (the first ended and was not yet cleared) or
            // a run whose tasks all ended: nothing to take back.
            tracing::info!(%framework, executor = %executor_id, "dropping the checkpoint of an ended executor run");
            if let Some(pid) = dir.live_pid() {
                kill_group(pid);
            }
            dir.remove();
            return;
        }
        let (tx, kill) = oneshot::channel();
        let mut executor = Executor {
            id: executor_id.clone(),
            framework: framework.clone(),
            kind,
            info: checkpoint.executor.clone(),
            state: ExecutorState::Running,
            pid: None,
            os_pid: 0,
            sandbox: PathBuf::from(&checkpoint.sandbox),
            run: checkpoint.run,
            container_id: dir.container.clone(),
            tasks,
            kill: Some(tx),
            shutting_down: false,
            container: None,
            health: None,
        };
        let run = executor.run;
        if !dir.started() {
            match dir.claim_unstarted() {
                Ok(true) => {
                    // It can never start now: its tasks never ran, and may be launched again.
                    tracing::warn!(%framework, executor = %executor_id, "executor had not started when the agent stopped; its tasks are dropped");
                    self.end_recovered_unrun(
                        ctx,
                        executor,
                        Reason::AgentRestarted,
                        UNSTARTED.into(),
                    );
                    return;
                }
                // The supervisor started meanwhile: taken back as any started one.
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(%framework, executor = %executor_id, error = %e, "cannot claim an executor run that had not started");
                    self.end_recovered_unrun(
                        ctx,
                        executor,
                        Reason::ExecutorTerminated,
                        UNSTARTED.into(),
                    );
                    return;
                }
            }
        }
        let pid = dir.live_pid();
        let resources = executor.resources();
        let handle = match self.containerizer.containerizer.reattach(
            &dir.container,
            pid.unwrap_or(0) as i32,
            &resources,
        ) {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(%framework, executor = %executor_id, error = %e, "container not re-attached; ending its executor");
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                self.end_recovered_unrun(
                    ctx,
                    executor,
                    Reason::ExecutorTerminated,
                    format!("the agent restarted and could not take the executor back: {e}"),
                );
                return;
            }
        };
        let process = TaskProcess::adopt(pid, dir.clone(), &executor.sandbox);
        executor.os_pid = process.pid();
        executor.container = Some(handle.clone());
        self.launcher.adopt(handle.clone());
        tracing::info!(%framework, executor = %executor_id, os_pid = ?pid, container = %dir.container, alive = pid.is_some(), "recovered an executor");
        self.metrics.inc(|m| &m.executors_recovered);
        let task_id = executor.tasks.keys().next().cloned().unwrap_or_default();
        let starting = executor
            .tasks
            .values()
            .any(|t| matches!(t.state, TaskState::TaskStaging | TaskState::TaskStarting));
        if kind == ExecutorKind::Command {
            executor.health = executor
                .tasks
                .values()
                .next()
                .and_then(|t| t.info.health_check.as_ref())
                .and_then(|c| HealthCheckSpec::from_proto(c).ok())
                .map(|spec| TaskHealth {
                    spec,
                    state: HealthState::new(),
                    started: ctx.node().clock().now(),
                });
        }
        let first_check = executor.health.as_ref().map(|h| h.spec.interval);
        self.insert_executor(&framework, executor);
        self.supervise(
            ctx,
            &framework,
            &executor_id,
            Container { process, handle },
            run,
            kill,
        );
        match kind {
            ExecutorKind::Command => {
                if let Some(after) = first_check {
                    self.schedule_health_check(ctx, &framework, &executor_id, run, after);
                }
                if pid.is_some() && starting {
                    // The earlier run died before it reported the start.
                    self.report(
                        ctx,
                        &framework,
                        &executor_id,
                        &task_id,
                        TaskState::TaskRunning,
                        Reason::CommandExecutorFailed,
                        String::new(),
                    );
                }
            }
            ExecutorKind::Custom => {
                let registered = checkpoint.pid.parse::<libactor::Upid>().ok();
                match (pid, registered) {
                    (Some(_), Some(executor_pid)) => {
                        if let Some(e) = self.executor_mut(&framework, &executor_id) {
                            e.state = ExecutorState::Reconnecting;
                        }
                        tracing::info!(%framework, executor = %executor_id, pid = %executor_pid, "asking a recovered executor to re-register");
                        ctx.send(
                            &executor_pid,
                            ReconnectExecutorMessage {
                                slave_id: self.id.clone().map(|value| AgentId { value }),
                            },
                        );
                        ctx.delay(EXECUTOR_REREGISTRATION_TIMEOUT, move |s: &mut Slave, _| {
                            let waiting = s.executor(&framework, &executor_id).is_some_and(|e| {
                                e.run == run && e.state == ExecutorState::Reconnecting
                            });
                            if waiting {
                                tracing::warn!(%framework, executor = %executor_id, "recovered executor did not re-register; ending it");
                                s.end_recovered(&framework, &executor_id);
                            }
                        });
                    }
                    _ => self.end_recovered(&framework, &executor_id),
                }
            }
        }
    }

    /// Records a recovered executor that cannot run again and ends its tasks with `reason`:
    /// DROPPED with `AgentRestarted` (the run was claimed before its supervisor started, so
    /// its command never ran and a framework may launch it again), FAILED otherwise (it may
    /// have run).
    fn end_recovered_unrun(
        &mut self,
        ctx: &mut Context<Self>,
        executor: Executor,
        reason: Reason,
        message: String,
    ) {
        let (framework, id, run) = (
            executor.framework.clone(),
            executor.id.clone(),
            executor.run,
        );
        self.insert_executor(&framework, executor);
        self.ended_before_start(ctx, &framework, &id, run, reason, message);
    }

    /// Ends a recovered custom executor that cannot serve again: its tasks are KILLED
    /// (REASON_AGENT_RESTARTED) once its process is gone.
    fn end_recovered(&mut self, framework: &str, executor_id: &str) {
        if let Some(e) = self.executor_mut(framework, executor_id) {
            e.shutting_down = true;
            for task in e.tasks.values_mut() {
                task.kill_reason = Some(Reason::AgentRestarted);
            }
            e.kill(Duration::ZERO);
        }
    }

    /// A recovered executor answers `ReconnectExecutorMessage`: it serves again from `from`,
    /// its queued tasks go to it, and the updates it had not seen acknowledged are delivered.
    pub(super) fn reregister_executor(
        &mut self,
        ctx: &mut Context<Self>,
        from: libactor::Upid,
        msg: ReregisterExecutorMessage,
    ) {
        let framework = msg.framework_id.text().to_owned();
        let executor_id = msg.executor_id.text().to_owned();
        if !self.sent_by_executor(ctx, &framework, &executor_id) {
            return;
        }
        let Some(executor) = self
            .executor_mut(&framework, &executor_id)
            .filter(|e| e.state == ExecutorState::Reconnecting)
        else {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, %framework, executor = %executor_id, "re-registration from an executor this agent is not waiting for");
            return;
        };
        executor.state = ExecutorState::Running;
        executor.pid = Some(from.clone());
        let queued = executor.take_undelivered();
        tracing::info!(%framework, executor = %executor_id, pid = %from, updates = msg.updates.len(), "recovered executor re-registered");
        ctx.link(&from);
        ctx.send(
            &from,
            ExecutorReregisteredMessage {
                slave_id: self.id.clone().map(|value| AgentId { value }),
                slave_info: Some(self.agent_info()),
            },
        );
        // Not written (a full disk): the checkpoint of its launch stands, with the old pid.
        let _ = self.checkpoint_executor(&framework, &executor_id);
        for update in msg.updates {
            self.executor_update(
                ctx,
                from.clone(),
                StatusUpdateMessage {
                    update: Some(update),
                    pid: from.to_string(),
                },
            );
        }
        for delivery in queued {
            self.deliver(ctx, &framework, &executor_id, &from, delivery);
        }
    }
}

/// Ends the process group a recovered executor's supervisor leads (its pid was checked with
/// [`ExecutorDir::live_pid`], so it is not a reused one).
fn kill_group(pid: u32) {
    // SAFETY: killpg(2) on a group id; no memory is involved.
    unsafe {
        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
    }
}
