//! How the agent starts an executor: a sandbox of its own run, its URIs fetched into it (when
//! it lists any), then its container launched and supervised until it ends.
//!
//! ```text
//!  RunTaskMessage ──▶ Fetching ──fetched──▶ container launched ──▶ Running (command task)
//!                        │                        │                 Launching (custom: waits
//!                        │ fetch failed / killed  │ launch failed              to register)
//!                        └────────────────────────┴──▶ executor_exited: tasks FAILED
//!                                                       (FETCHER_FAILURE / CONTAINER_LAUNCH_FAILED)
//!                                                       or KILLED
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use libactor::Context;
use protos::v1::task_status::Reason;
use protos::v1::{CommandInfo, TaskState};
use protos::IdText;
use resources::Resources;
use tokio::sync::oneshot;

use super::{Slave, TaskHealth, EXECUTOR_REGISTRATION_TIMEOUT};
use crate::checkpoint::CheckpointError;
use crate::containerizer::launcher::LaunchRequest;
use crate::containerizer::{self, Container, ContainerExit, Limitation};
use crate::executor::{
    AgentTask, Delivery, Executor, ExecutorKind, ExecutorState, ENV_EXECUTOR_ID, ENV_FRAMEWORK_ID,
    ENV_RECOVERY_TIMEOUT, ENV_SANDBOX, ENV_SLAVE_ID, ENV_SLAVE_PID,
};
use crate::executor_tls::ENV_TLS_DIR;
use crate::fetcher::FetchError;
use crate::health_check::{HealthCheckSpec, HealthState};
use crate::run_as::{RunAs, RunAsError};
use crate::task_process::LaunchError;

/// What became of an executor's fetch.
enum Fetched {
    /// Every URI is in the sandbox; the kill channel goes on to the container.
    Done(oneshot::Receiver<Duration>),
    /// A URI could not be fetched.
    Failed(FetchError),
    /// The executor was killed while fetching.
    Killed,
}

impl Slave {
    /// A command task: its own executor, whose OS process is the task's command.
    pub(super) fn launch_command(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        task: AgentTask,
    ) {
        let task_id = task.info.task_id.text().to_owned();
        let command = task.info.command.clone().unwrap_or_default();
        if self.executor(framework, &task_id).is_some() {
            self.report(
                ctx,
                framework,
                &task_id,
                &task_id,
                TaskState::TaskError,
                Reason::TaskInvalid,
                format!("task {task_id} is already running on this agent"),
            );
            return;
        }
        let health = match task
            .info
            .health_check
            .as_ref()
            .map(HealthCheckSpec::from_proto)
        {
            None => None,
            Some(Ok(spec)) => Some(spec),
            Some(Err(why)) => {
                self.report(
                    ctx,
                    framework,
                    &task_id,
                    &task_id,
                    TaskState::TaskError,
                    Reason::TaskInvalid,
                    format!("invalid health check: {why}"),
                );
                return;
            }
        };
        let resources = task.resources.clone();
        let mut executor = self.new_executor(ctx, framework, &task_id, ExecutorKind::Command, None);
        executor.health = health.map(|spec| TaskHealth {
            spec,
            state: HealthState::new(),
            started: ctx.node().clock().now(),
        });
        executor.tasks.insert(task_id, task);
        self.launch_executor(ctx, executor, command, resources);
    }

    /// Tasks for a custom executor (one, or a task group): the executor is started (and
    /// waited for) if it is not running yet.
    pub(super) fn launch_on_executor(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        info: protos::v1::ExecutorInfo,
        tasks: Vec<AgentTask>,
    ) {
        let executor_id = info.executor_id.text().to_owned();
        let refuse = |s: &mut Self, ctx: &mut Context<Self>, state, reason, why: String| {
            for task in &tasks {
                let task_id = task.info.task_id.text();
                s.report(
                    ctx,
                    framework,
                    &executor_id,
                    task_id,
                    state,
                    reason,
                    why.clone(),
                );
            }
        };
        if executor_id.is_empty() || info.command.as_ref().is_none_or(|c| c.value.is_empty()) {
            let why = "executor has no id or no command".to_owned();
            refuse(self, ctx, TaskState::TaskError, Reason::TaskInvalid, why);
            return;
        }
        if let Some(executor) = self.executor_mut(framework, &executor_id) {
            if executor.state == ExecutorState::Terminating {
                let why = format!("executor {executor_id} is shutting down");
                refuse(
                    self,
                    ctx,
                    TaskState::TaskLost,
                    Reason::ExecutorTerminated,
                    why,
                );
                return;
            }
            let deliver_to = executor.pid.clone();
            let group = tasks.first().and_then(|t| t.group.is_some().then_some(()));
            let mut infos = Vec::with_capacity(tasks.len());
            for mut task in tasks {
                task.delivered = deliver_to.is_some();
                infos.push(task.info.clone());
                executor
                    .tasks
                    .insert(task.info.task_id.text().to_owned(), task);
            }
            executor.update_container();
            if let Err(e) = self.checkpoint_executor(framework, &executor_id) {
                let ids: Vec<String> = infos.iter().map(|t| t.task_id.text().to_owned()).collect();
                if let Some(executor) = self.executor_mut(framework, &executor_id) {
                    for id in &ids {
                        executor.tasks.remove(id);
                    }
                    executor.update_container();
                }
                self.drop_unrecorded(ctx, framework, &executor_id, &ids, &e);
                return;
            }
            if let Some(pid) = deliver_to {
                let deliveries = match group {
                    Some(()) => vec![Delivery::Group(infos)],
                    None => infos
                        .into_iter()
                        .map(|t| Delivery::Task(Box::new(t)))
                        .collect(),
                };
                for delivery in deliveries {
                    self.deliver(ctx, framework, &executor_id, &pid, delivery);
                }
            }
            return;
        }
        let command = info.command.clone().unwrap_or_default();
        let mut executor = self.new_executor(
            ctx,
            framework,
            &executor_id,
            ExecutorKind::Custom,
            Some(info),
        );
        for task in tasks {
            executor
                .tasks
                .insert(task.info.task_id.text().to_owned(), task);
        }
        let resources = executor.resources();
        self.launch_executor(ctx, executor, command, resources);
    }

    /// The record of a new run of `executor_id`, with a sandbox of its own.
    fn new_executor(
        &mut self,
        ctx: &Context<Self>,
        framework: &str,
        executor_id: &str,
        kind: ExecutorKind,
        info: Option<protos::v1::ExecutorInfo>,
    ) -> Executor {
        let (sandbox, run) = self.sandbox(framework, executor_id);
        Executor {
            id: executor_id.to_owned(),
            framework: framework.to_owned(),
            kind,
            info,
            state: ExecutorState::Fetching,
            pid: None,
            os_pid: 0,
            sandbox,
            run,
            container_id: ctx.node().random().uuid().simple().to_string(),
            tasks: BTreeMap::new(),
            kill: None,
            shutting_down: false,
            container: None,
            health: None,
        }
    }

    /// Fetches the executor's URIs (if any) into its sandbox, then starts its container.
    fn launch_executor(
        &mut self,
        ctx: &mut Context<Self>,
        mut executor: Executor,
        command: CommandInfo,
        resources: Resources,
    ) {
        let (tx, kill) = oneshot::channel();
        executor.kill = Some(tx);
        let (framework, id, run) = (
            executor.framework.clone(),
            executor.id.clone(),
            executor.run,
        );
        let sandbox = executor.sandbox.clone();
        let tasks: Vec<String> = executor.tasks.keys().cloned().collect();
        let container_id = executor.container_id.clone();
        self.insert_executor(&framework, executor);
        if let Err(e) = self.checkpoint_executor(&framework, &id) {
            let kind = self
                .frameworks
                .get_mut(&framework)
                .and_then(|f| f.executors.remove(&id))
                .map(|e| e.kind);
            self.meta.executor(&container_id).remove();
            self.drop_unrecorded(ctx, &framework, &id, &tasks, &e);
            // Nothing of it ran: the master frees a custom executor's resources, and a
            // framework with nothing else here is forgotten (no shutdown will come for it).
            if kind == Some(ExecutorKind::Custom) {
                self.tell_master_executor_exited(ctx, &framework, &id, -1);
            }
            self.forget_framework_if_idle(&framework);
            return;
        }
        if command.uris.is_empty() {
            self.start_container(ctx, &framework, &id, run, &command, &resources, kill);
            return;
        }
        let fetcher = self.fetcher.clone();
        let uris = command.uris.clone();
        let mut kill = kill;
        ctx.defer(
            async move {
                tokio::select! {
                    fetched = fetcher.fetch_all(&uris, &sandbox) => match fetched {
                        Ok(()) => Fetched::Done(kill),
                        Err(e) => Fetched::Failed(e),
                    },
                    _ = &mut kill => Fetched::Killed,
                }
            },
            move |s: &mut Slave, ctx, fetched| match fetched {
                Fetched::Done(kill) => {
                    let still_wanted = s
                        .executor(&framework, &id)
                        .is_some_and(|e| e.run == run && e.state == ExecutorState::Fetching);
                    if still_wanted {
                        s.start_container(ctx, &framework, &id, run, &command, &resources, kill);
                    }
                }
                Fetched::Failed(e) => {
                    tracing::warn!(%framework, executor = %id, error = %e, "fetch failed");
                    s.metrics.inc(|m| &m.fetch_failures);
                    let message = e.to_string();
                    s.ended_before_start(
                        ctx,
                        &framework,
                        &id,
                        run,
                        Reason::FetcherFailure,
                        message,
                    );
                }
                Fetched::Killed => {
                    let exit = ContainerExit {
                        termination: Err(std::io::Error::other(
                            "killed while its URIs were being fetched",
                        )),
                        limitation: None,
                    };
                    s.executor_exited(ctx, &framework, &id, run, exit);
                }
            },
        );
    }

    /// Tasks of `executor_id` whose launch could not be checkpointed (a full disk): they are
    /// not started, since a restarted agent would not know them and a task the framework then
    /// launched again would run twice. Each is reported `TASK_DROPPED`
    /// (`REASON_CONTAINER_LAUNCH_FAILED`): it never ran, and may be launched again.
    fn drop_unrecorded(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        tasks: &[String],
        error: &CheckpointError,
    ) {
        for task in tasks {
            tracing::warn!(%framework, %task, error = %error, "launch not checkpointed: the task is dropped, not started");
            self.report(
                ctx,
                framework,
                executor_id,
                task,
                TaskState::TaskDropped,
                Reason::ContainerLaunchFailed,
                format!("the agent could not record the launch, so did not start it: {error}"),
            );
        }
    }

    /// Ends an executor that never got a running container: its tasks fail with `reason`.
    pub(super) fn ended_before_start(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        run: u64,
        reason: Reason,
        message: String,
    ) {
        let exit = ContainerExit {
            termination: Err(std::io::Error::other(message.clone())),
            limitation: Some(Limitation { reason, message }),
        };
        self.executor_exited(ctx, framework, executor_id, run, exit);
    }

    /// Starts the executor's container on the launcher (off this thread); the executor
    /// record must exist. The executor stays `Starting` until the container runs.
    #[allow(clippy::too_many_arguments)]
    fn start_container(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        run: u64,
        command: &CommandInfo,
        resources: &Resources,
        kill: oneshot::Receiver<Duration>,
    ) {
        let Some((sandbox, container_id)) = self
            .executor(framework, executor_id)
            .map(|e| (e.sandbox.clone(), e.container_id.clone()))
        else {
            return;
        };
        let run_as = match self.run_as(framework, command) {
            Ok(run_as) => run_as,
            Err(e) => {
                let why = format!("cannot run the executor as its user: {e}");
                self.launch_failed(ctx, framework, executor_id, run, why);
                return;
            }
        };
        let env = self.executor_env(ctx, framework, executor_id, &sandbox);
        if let Some(executor) = self.executor_mut(framework, executor_id) {
            executor.state = ExecutorState::Starting;
        }
        let request = LaunchRequest {
            run_as,
            checkpoint: Some(self.meta.executor(&container_id).path),
            id: container_id,
            command: command.clone(),
            sandbox,
            env,
            resources: resources.clone(),
        };
        let launcher = self.launcher.clone();
        let (framework, executor_id) = (framework.to_owned(), executor_id.to_owned());
        ctx.defer(
            async move { (launcher.launch(request).await, kill) },
            move |s: &mut Slave, ctx, (launched, kill)| {
                s.container_launched(ctx, &framework, &executor_id, run, launched, kill)
            },
        );
    }

    /// An executor whose container could not start: its tasks fail with
    /// `REASON_CONTAINER_LAUNCH_FAILED` and `why`.
    fn launch_failed(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        run: u64,
        why: String,
    ) {
        tracing::warn!(%framework, executor = %executor_id, %why, "container did not start");
        self.metrics.inc(|m| &m.container_launch_errors);
        self.ended_before_start(
            ctx,
            framework,
            executor_id,
            run,
            Reason::ContainerLaunchFailed,
            why,
        );
    }

    /// Whom `command` of `framework` runs as under `--switch-user`: its own user, else the
    /// framework's; `None` without the flag or when that is the agent's own user.
    fn run_as(&self, framework: &str, command: &CommandInfo) -> Result<Option<RunAs>, RunAsError> {
        if !self.config.switch_user {
            return Ok(None);
        }
        let user = Some(command.user.as_str())
            .filter(|u| !u.is_empty())
            .or_else(|| self.frameworks.get(framework).map(|f| f.info.user.as_str()))
            .unwrap_or_default();
        RunAs::for_user(user)
    }

    /// A launch ended: supervise the container, or fail the executor's tasks.
    fn container_launched(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        run: u64,
        launched: Result<Container, LaunchError>,
        kill: oneshot::Receiver<Duration>,
    ) {
        let container = match launched {
            Ok(container) => container,
            Err(e) => {
                self.launch_failed(ctx, framework, executor_id, run, e.to_string());
                return;
            }
        };
        let clock = ctx.node().clock().clone();
        let Some(executor) = self
            .executor_mut(framework, executor_id)
            .filter(|e| e.run == run && e.state == ExecutorState::Starting)
        else {
            // Killed while it started, or no longer known: the container ends now, with the
            // grace a kill asked for; its supervisor reports whatever is left to report.
            let mut kill = kill;
            let grace = kill.try_recv().unwrap_or(Duration::ZERO);
            let (tx, now) = oneshot::channel();
            let _ = tx.send(grace);
            self.supervise(ctx, framework, executor_id, container, run, now);
            return;
        };
        executor.os_pid = container.process.pid();
        executor.container = Some(container.handle.clone());
        let kind = executor.kind;
        executor.state = match kind {
            ExecutorKind::Command => ExecutorState::Running,
            ExecutorKind::Custom => ExecutorState::Launching,
        };
        let first_check = executor.health.as_mut().map(|h| {
            h.started = clock.now();
            h.spec.delay
        });
        tracing::info!(%framework, executor = %executor_id, os_pid = container.process.pid(), container = %container.handle.id(), "executor started");
        self.supervise(ctx, framework, executor_id, container, run, kill);
        match kind {
            ExecutorKind::Command => {
                // On the clock before TASK_RUNNING is out: whoever advances a paused clock on
                // seeing it finds the first check due.
                if let Some(delay) = first_check {
                    self.schedule_health_check(ctx, framework, executor_id, run, delay);
                }
                self.report(
                    ctx,
                    framework,
                    executor_id,
                    executor_id,
                    TaskState::TaskRunning,
                    Reason::CommandExecutorFailed,
                    String::new(),
                );
                // A restarted agent then knows the task had started (not written on a full
                // disk: the launch's checkpoint stands, and recovery finds the process).
                let _ = self.checkpoint_executor(framework, executor_id);
            }
            ExecutorKind::Custom => {
                self.metrics.inc(|m| &m.executors_launched);
                let (framework, executor_id) = (framework.to_owned(), executor_id.to_owned());
                ctx.delay(EXECUTOR_REGISTRATION_TIMEOUT, move |s: &mut Slave, _| {
                    if let Some(e) = s.executor_mut(&framework, &executor_id) {
                        if e.run == run && e.state == ExecutorState::Launching {
                            tracing::warn!(%framework, executor = %executor_id, "executor did not register in time; killing it");
                            e.kill(Duration::ZERO);
                        }
                    }
                });
            }
        }
    }

    pub(super) fn executor_env(
        &self,
        ctx: &Context<Self>,
        framework: &str,
        executor: &str,
        sandbox: &std::path::Path,
    ) -> Vec<(String, String)> {
        // Only a custom executor talks to the agent; a command task's process never does.
        let custom = self
            .executor(framework, executor)
            .is_some_and(|e| e.kind == ExecutorKind::Custom);
        let issuer = self.config.executor_tls.as_ref().filter(|_| custom);
        let tls = issuer.and_then(|issuer| {
            let host = ctx.pid().host().to_string();
            let host = host.trim_matches(['[', ']']);
            match issuer.issue(framework, executor, host, sandbox) {
                Ok(dir) => Some((ENV_TLS_DIR.to_owned(), dir.display().to_string())),
                // The executor then cannot connect: it fails to register, and its tasks with it.
                Err(e) => {
                    tracing::error!(%framework, %executor, error = %e, "cannot issue the executor its certificate");
                    None
                }
            }
        });
        let sandbox_text = sandbox.display().to_string();
        // Mesos's environment, so that executors written for Mesos (its v1 executor API at
        // MESOS_AGENT_ENDPOINT) run unmodified; every task sees where its sandbox is.
        let mut mesos = vec![
            ("MESOS_SANDBOX".to_owned(), sandbox_text.clone()),
            ("MESOS_DIRECTORY".to_owned(), sandbox_text.clone()),
        ];
        if custom {
            let agent_id = self.id.clone().unwrap_or_default();
            mesos.extend([
                (
                    "MESOS_AGENT_ENDPOINT".to_owned(),
                    ctx.pid().address().to_owned(),
                ),
                ("MESOS_FRAMEWORK_ID".to_owned(), framework.to_owned()),
                ("MESOS_EXECUTOR_ID".to_owned(), executor.to_owned()),
                ("MESOS_SLAVE_ID".to_owned(), agent_id.clone()),
                ("MESOS_AGENT_ID".to_owned(), agent_id),
                ("MESOS_SLAVE_PID".to_owned(), ctx.pid().to_string()),
                // Executors outlive their agent (under their supervisor) and wait for it.
                ("MESOS_CHECKPOINT".to_owned(), "1".to_owned()),
                (
                    "MESOS_SUBSCRIPTION_BACKOFF_MAX".to_owned(),
                    "2secs".to_owned(),
                ),
                (
                    "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".to_owned(),
                    format!("{}secs", crate::task_process::DEFAULT_KILL_GRACE.as_secs()),
                ),
            ]);
            if let Some(t) = self.config.executor_recovery_timeout {
                mesos.push((
                    "MESOS_RECOVERY_TIMEOUT".to_owned(),
                    format!("{}secs", t.as_secs()),
                ));
            }
            if let Some(tokens) = &self.executor_tokens {
                mesos.push((
                    "MESOS_EXECUTOR_AUTHENTICATION_TOKEN".to_owned(),
                    tokens.token(framework, executor),
                ));
            }
        }
        vec![
            (ENV_SLAVE_PID.into(), ctx.pid().to_string()),
            (ENV_SLAVE_ID.into(), self.id.clone().unwrap_or_default()),
            (ENV_FRAMEWORK_ID.into(), framework.to_owned()),
            (ENV_EXECUTOR_ID.into(), executor.to_owned()),
            (ENV_SANDBOX.into(), sandbox_text),
        ]
        .into_iter()
        .chain(
            self.config
                .executor_recovery_timeout
                .map(|t| (ENV_RECOVERY_TIMEOUT.into(), t.as_secs().to_string())),
        )
        .chain(tls)
        .chain(mesos)
        .collect()
    }

    /// Runs the executor's container on this process's arbiter until it ends; a kill request
    /// through `kill` ends it with a grace period.
    pub(super) fn supervise(
        &self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        container: Container,
        run: u64,
        kill: oneshot::Receiver<Duration>,
    ) {
        let clock = ctx.node().clock().clone();
        let (framework, id) = (framework.to_owned(), executor_id.to_owned());
        ctx.defer(
            containerizer::supervise(container, kill, clock),
            move |s: &mut Slave, ctx, exit| s.executor_exited(ctx, &framework, &id, run, exit),
        );
    }
}
