//! The agent's default executor (Mesos's `mesos-default-executor`), run as
//! `keel-default-executor` for a task group whose executor is `DEFAULT`. It speaks the v1
//! executor API to its agent like any HTTP executor (`MESOS_AGENT_ENDPOINT`, the agent's TLS
//! and executor token when it has them) and runs each task of a `LAUNCH_GROUP` as an OS
//! process of its own, in the executor's container, in a sandbox of its own
//! (`tasks/<task id>` in the executor's, its `MESOS_SANDBOX`).
//!
//! A group lives and dies together, as Mesos's: a task that fails, or a kill of any task,
//! kills the rest of its group (SIGTERM to each task's process group, SIGKILL after the
//! task's kill grace period). The executor ends once every task it was given has ended and
//! its updates were acknowledged (or [`ACK_WAIT`] passed). When its agent's stream breaks it
//! subscribes again, with its unacknowledged updates, until `MESOS_RECOVERY_TIMEOUT`; with no
//! recovery timeout it kills its tasks and ends.
//!
//! ```no_run
//! # async fn demo() -> Result<(), slave::default_executor::DefaultExecutorError> {
//! // In a process the agent started for a DEFAULT executor:
//! slave::default_executor::run().await
//! # }
//! ```

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libactor::http_client::{open_stream, request_over, HttpError, StreamReply};
use libactor::TlsConfig;
use prost::Message;
use protos::http_api::{next_record, Encoding};
use protos::v1::executor::{call, event, Call, Event};
use protos::v1::{ExecutorId, FrameworkId, TaskId, TaskInfo, TaskState, TaskStatus};
use protos::IdText;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::executor::path_safe;
use crate::task_process::DEFAULT_KILL_GRACE;

/// How long the executor waits for its last updates to be acknowledged before it ends.
pub const ACK_WAIT: Duration = Duration::from_secs(5);
/// The executor API's path on the agent.
const EXECUTOR_API: &str = "/api/v1/executor";
/// What a task's own process never sees of the executor's environment: the executor's
/// credentials are the executor's, not its tasks'.
const EXECUTOR_SECRETS: [&str; 2] = ["MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "KEEL_TLS_DIR"];

/// Why the default executor ended other than by finishing its work.
#[derive(Debug, thiserror::Error)]
pub enum DefaultExecutorError {
    /// A variable the agent sets is missing: the program was not started by an agent.
    #[error("{0} is not set: keel-default-executor is started by a Keel agent")]
    MissingEnv(&'static str),
    /// `KEEL_TLS_DIR` names TLS material that does not load.
    #[error("KEEL_TLS_DIR: {0}")]
    Tls(#[from] libactor::tls::TlsError),
    /// The agent could not be reached.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The agent refused a call.
    #[error("the agent answered {call} with {status}: {why}")]
    Refused {
        /// The call's type.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The agent's reason.
        why: String,
    },
    /// The agent's stream is not well-formed RecordIO of events.
    #[error("the agent's event stream: {0}")]
    Stream(String),
    /// The agent sent ERROR.
    #[error("the agent sent an error: {0}")]
    Agent(String),
    /// The agent did not come back within the recovery timeout.
    #[error("the agent did not come back within {0:?}")]
    AgentGone(Duration),
}

/// Runs the default executor from the environment its agent gave it, until its work is done.
pub async fn run() -> Result<(), DefaultExecutorError> {
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let mut executor = DefaultExecutor::from_env(exits_tx)?;
    let mut stream = executor.agent.subscribe(&executor.subscribe()).await?;
    let mut buffer = Vec::new();
    loop {
        if executor.finished() {
            return Ok(());
        }
        let ack_deadline = executor.ack_deadline;
        tokio::select! {
            chunk = stream.next_chunk() => match chunk {
                Some(Ok(chunk)) => {
                    buffer.extend_from_slice(&chunk);
                    while let Some(record) =
                        next_record(&mut buffer).map_err(DefaultExecutorError::Stream)?
                    {
                        let event = Event::decode(&record[..])
                            .map_err(|e| DefaultExecutorError::Stream(e.to_string()))?;
                        executor.handle(event).await?;
                    }
                }
                _ => {
                    buffer.clear();
                    stream = executor.resubscribe().await?;
                }
            },
            Some((task, status)) = exits.recv() => executor.exited(&task, status).await?,
            _ = tokio::time::sleep_until(ack_deadline.unwrap_or_else(Instant::now)),
                if ack_deadline.is_some() => {
                tracing::warn!(unacknowledged = executor.unacked.len(), "ending with updates the agent did not acknowledge");
                return Ok(());
            }
        }
    }
}

/// The agent's executor API, as this executor reaches it.
struct Agent {
    endpoint: String,
    tls: Option<TlsConfig>,
    token: Option<String>,
    framework: FrameworkId,
    executor: ExecutorId,
}

impl Agent {
    fn headers(&self) -> Vec<(&'static str, String)> {
        let content = Encoding::Protobuf.content_type().to_owned();
        let mut headers = vec![("content-type", content.clone()), ("accept", content)];
        if let Some(token) = &self.token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        headers
    }

    fn call(&self, kind: call::Type) -> Call {
        Call {
            framework_id: Some(self.framework.clone()),
            executor_id: Some(self.executor.clone()),
            r#type: kind as i32,
            ..Default::default()
        }
    }

    async fn post(&self, call: &Call) -> Result<(), DefaultExecutorError> {
        let body = Bytes::from(Encoding::Protobuf.body(call));
        let reply = request_over(
            &self.endpoint,
            self.tls.as_ref(),
            "POST",
            EXECUTOR_API,
            &self.headers(),
            body,
        )
        .await?;
        if reply.status != 202 {
            return Err(DefaultExecutorError::Refused {
                call: call_name(call),
                status: reply.status,
                why: String::from_utf8_lossy(&reply.body).into_owned(),
            });
        }
        Ok(())
    }

    async fn subscribe(&self, subscribe: &Call) -> Result<StreamReply, DefaultExecutorError> {
        let body = Bytes::from(Encoding::Protobuf.body(subscribe));
        let reply = open_stream(
            &self.endpoint,
            self.tls.as_ref(),
            "POST",
            EXECUTOR_API,
            &self.headers(),
            body,
        )
        .await?;
        if reply.status != 200 {
            return Err(DefaultExecutorError::Refused {
                call: "SUBSCRIBE",
                status: reply.status,
                why: String::new(),
            });
        }
        Ok(reply)
    }
}

fn call_name(call: &Call) -> &'static str {
    call::Type::try_from(call.r#type).map_or("UNKNOWN", |t| t.as_str_name())
}

/// One task of a group, as the executor runs it.
struct GroupTask {
    info: TaskInfo,
    /// Which `LAUNCH_GROUP` it came in.
    group: u64,
    /// Its process (and process group) id once started.
    pid: Option<u32>,
    /// Set by its waiter once its process was reaped: its pid may be reused after that.
    reaped: Arc<AtomicBool>,
    /// The latest state reported for it.
    state: TaskState,
    /// It is being killed: its end is TASK_KILLED.
    killing: bool,
    /// An update about it was acknowledged (it is no longer an unacknowledged task).
    acknowledged: bool,
}

/// The default executor's state: its tasks and the updates the agent has not acknowledged.
struct DefaultExecutor {
    agent: Agent,
    sandbox: PathBuf,
    tasks: BTreeMap<String, GroupTask>,
    unacked: BTreeMap<Bytes, call::Update>,
    groups: u64,
    exits: mpsc::UnboundedSender<(String, std::io::Result<ExitStatus>)>,
    shutting_down: bool,
    /// Every task ended: when to stop waiting for acknowledgements.
    ack_deadline: Option<Instant>,
    recovery_timeout: Option<Duration>,
    backoff_max: Duration,
}

impl DefaultExecutor {
    fn from_env(
        exits: mpsc::UnboundedSender<(String, std::io::Result<ExitStatus>)>,
    ) -> Result<DefaultExecutor, DefaultExecutorError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(DefaultExecutorError::MissingEnv(name))
        };
        let tls = match std::env::var_os("KEEL_TLS_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => Some(libactor::tls::dir::load(std::path::Path::new(&dir))?),
            None => None,
        };
        Ok(DefaultExecutor {
            agent: Agent {
                endpoint: var("MESOS_AGENT_ENDPOINT")?,
                tls,
                token: var("MESOS_EXECUTOR_AUTHENTICATION_TOKEN").ok(),
                framework: FrameworkId {
                    value: var("MESOS_FRAMEWORK_ID")?,
                },
                executor: ExecutorId {
                    value: var("MESOS_EXECUTOR_ID")?,
                },
            },
            sandbox: PathBuf::from(var("MESOS_SANDBOX")?),
            tasks: BTreeMap::new(),
            unacked: BTreeMap::new(),
            groups: 0,
            exits,
            shutting_down: false,
            ack_deadline: None,
            recovery_timeout: var("MESOS_RECOVERY_TIMEOUT")
                .ok()
                .and_then(|t| protos::parse_mesos_duration(&t)),
            backoff_max: var("MESOS_SUBSCRIPTION_BACKOFF_MAX")
                .ok()
                .and_then(|t| protos::parse_mesos_duration(&t))
                .unwrap_or(Duration::from_secs(2)),
        })
    }

    /// Done: it ran something (or was told to shut down), nothing runs any more, and every
    /// update was acknowledged.
    fn finished(&self) -> bool {
        (self.groups > 0 || self.shutting_down) && self.all_ended() && self.unacked.is_empty()
    }

    fn all_ended(&self) -> bool {
        self.tasks.values().all(|t| t.state.is_terminal())
    }

    /// SUBSCRIBE, with what the agent may not have seen yet.
    fn subscribe(&self) -> Call {
        Call {
            subscribe: Some(call::Subscribe {
                unacknowledged_tasks: self
                    .tasks
                    .values()
                    .filter(|t| !t.acknowledged)
                    .map(|t| t.info.clone())
                    .collect(),
                unacknowledged_updates: self.unacked.values().cloned().collect(),
            }),
            ..self.agent.call(call::Type::Subscribe)
        }
    }

    /// The agent's stream broke: subscribe again until its recovery timeout passes.
    async fn resubscribe(&mut self) -> Result<StreamReply, DefaultExecutorError> {
        let Some(timeout) = self.recovery_timeout else {
            self.kill_all();
            return Err(DefaultExecutorError::AgentGone(Duration::ZERO));
        };
        tracing::warn!(?timeout, "the agent's stream ended; subscribing again");
        let give_up = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(250);
        while Instant::now() < give_up {
            match self.agent.subscribe(&self.subscribe()).await {
                Ok(stream) => return Ok(stream),
                Err(e) => tracing::debug!(error = %e, "the agent is not back yet"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.backoff_max);
        }
        self.kill_all();
        Err(DefaultExecutorError::AgentGone(timeout))
    }

    async fn handle(&mut self, event: Event) -> Result<(), DefaultExecutorError> {
        match event::Type::try_from(event.r#type).unwrap_or(event::Type::Unknown) {
            event::Type::Subscribed => tracing::info!("subscribed to the agent"),
            event::Type::LaunchGroup => {
                let tasks = event
                    .launch_group
                    .and_then(|l| l.task_group)
                    .map(|g| g.tasks)
                    .unwrap_or_default();
                self.launch_group(tasks).await?;
            }
            event::Type::Launch => {
                if let Some(task) = event.launch.and_then(|l| l.task) {
                    let why = "the default executor runs task groups (LAUNCH_GROUP) only";
                    self.update(task.task_id, TaskState::TaskFailed, why.into())
                        .await?;
                }
            }
            event::Type::Kill => {
                let kill = event.kill.unwrap_or_default();
                let grace = kill.kill_policy.as_ref().and_then(grace_of);
                let group = self.tasks.get(kill.task_id.text()).map(|t| t.group);
                match group {
                    Some(group) => self.kill_group(group, grace),
                    None => {
                        tracing::warn!(task = %kill.task_id.text(), "KILL of a task this executor does not run")
                    }
                }
            }
            event::Type::Acknowledged => {
                let ack = event.acknowledged.unwrap_or_default();
                self.unacked.remove(&ack.uuid);
                if let Some(task) = self.tasks.get_mut(ack.task_id.text()) {
                    task.acknowledged = true;
                }
            }
            event::Type::Shutdown => {
                tracing::info!("the agent asks the executor to shut down");
                self.shutting_down = true;
                self.kill_all();
                self.check_all_ended();
            }
            event::Type::Error => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                self.kill_all();
                return Err(DefaultExecutorError::Agent(message));
            }
            event::Type::Message | event::Type::Heartbeat | event::Type::Unknown => {}
        }
        Ok(())
    }

    async fn launch_group(&mut self, tasks: Vec<TaskInfo>) -> Result<(), DefaultExecutorError> {
        self.groups += 1;
        self.ack_deadline = None;
        let group = self.groups;
        let mut failed = false;
        for info in tasks {
            let id = info.task_id.text().to_owned();
            if self.tasks.contains_key(&id) {
                tracing::warn!(task = %id, "a task this executor already runs was sent again");
                continue;
            }
            let reaped = Arc::new(AtomicBool::new(false));
            let started = self.start(&id, &info, reaped.clone());
            self.tasks.insert(
                id.clone(),
                GroupTask {
                    info,
                    group,
                    pid: started.as_ref().ok().copied(),
                    reaped,
                    state: TaskState::TaskStaging,
                    killing: false,
                    acknowledged: false,
                },
            );
            let (state, message) = match started {
                Ok(_) => (TaskState::TaskRunning, String::new()),
                Err(e) => {
                    failed = true;
                    (TaskState::TaskFailed, format!("could not start: {e}"))
                }
            };
            self.update(Some(TaskId { value: id }), state, message)
                .await?;
        }
        if failed {
            self.kill_group(group, None);
        }
        self.check_all_ended();
        Ok(())
    }

    /// Starts a task's command in its own sandbox and process group; its exit comes back on
    /// the executor's channel.
    fn start(&self, id: &str, info: &TaskInfo, reaped: Arc<AtomicBool>) -> std::io::Result<u32> {
        let command = info.command.clone().unwrap_or_default();
        let sandbox = self.sandbox.join("tasks").join(path_safe(id));
        std::fs::create_dir_all(&sandbox)?;
        let stdout = std::fs::File::create(sandbox.join("stdout"))?;
        let stderr = std::fs::File::create(sandbox.join("stderr"))?;
        let mut cmd = if command.shell.unwrap_or(true) {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.arg("-c").arg(&command.value);
            cmd
        } else {
            let mut cmd = tokio::process::Command::new(&command.value);
            cmd.args(command.arguments.iter().skip(1));
            cmd
        };
        for name in EXECUTOR_SECRETS {
            cmd.env_remove(name);
        }
        let variables = command.environment.iter().flat_map(|e| &e.variables);
        cmd.envs(variables.map(|v| (&v.name, &v.value)))
            .env("MESOS_SANDBOX", &sandbox)
            .env("MESOS_TASK_ID", id)
            .current_dir(&sandbox)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        let (exits, id) = (self.exits.clone(), id.to_owned());
        tokio::spawn(async move {
            let status = child.wait().await;
            reaped.store(true, Ordering::SeqCst);
            let _ = exits.send((id, status));
        });
        Ok(pid)
    }

    /// A task's process ended: its last update, and its group killed if it failed.
    async fn exited(
        &mut self,
        id: &str,
        status: std::io::Result<ExitStatus>,
    ) -> Result<(), DefaultExecutorError> {
        let Some(task) = self.tasks.get(id) else {
            return Ok(());
        };
        let (state, message) = match status {
            _ if task.killing => (TaskState::TaskKilled, "killed with its task group".into()),
            Ok(status) if status.success() => (TaskState::TaskFinished, String::new()),
            Ok(status) => (TaskState::TaskFailed, describe(status)),
            Err(e) => (TaskState::TaskFailed, format!("lost track of it: {e}")),
        };
        let group = task.group;
        self.update(
            Some(TaskId {
                value: id.to_owned(),
            }),
            state,
            message,
        )
        .await?;
        if state == TaskState::TaskFailed {
            self.kill_group(group, None);
        }
        self.check_all_ended();
        Ok(())
    }

    /// Kills every live task of `group` (SIGTERM, then SIGKILL after the grace period).
    fn kill_group(&mut self, group: u64, grace: Option<Duration>) {
        for task in self.tasks.values_mut().filter(|t| t.group == group) {
            if task.state.is_terminal() || task.killing {
                continue;
            }
            task.killing = true;
            let Some(pid) = task.pid else {
                continue;
            };
            let grace = grace
                .or_else(|| task.info.kill_policy.as_ref().and_then(grace_of))
                .unwrap_or(DEFAULT_KILL_GRACE);
            signal_group(pid, libc::SIGTERM);
            let reaped = task.reaped.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if !reaped.load(Ordering::SeqCst) {
                    signal_group(pid, libc::SIGKILL);
                }
            });
        }
    }

    fn kill_all(&mut self) {
        let groups: Vec<u64> = self.tasks.values().map(|t| t.group).collect();
        for group in groups {
            self.kill_group(group, None);
        }
    }

    /// Once every task ended, the executor waits [`ACK_WAIT`] at most for acknowledgements.
    fn check_all_ended(&mut self) {
        if self.all_ended() && self.ack_deadline.is_none() && !self.unacked.is_empty() {
            self.ack_deadline = Some(Instant::now() + ACK_WAIT);
        }
    }

    async fn update(
        &mut self,
        task_id: Option<TaskId>,
        state: TaskState,
        message: String,
    ) -> Result<(), DefaultExecutorError> {
        if let Some(task) = self.tasks.get_mut(task_id.text()) {
            task.state = state;
        }
        let uuid = Bytes::copy_from_slice(&random_uuid());
        let update = call::Update {
            status: Some(TaskStatus {
                task_id,
                state: state as i32,
                message,
                uuid: uuid.clone(),
                ..Default::default()
            }),
        };
        self.unacked.insert(uuid, update.clone());
        let call = Call {
            update: Some(update),
            ..self.agent.call(call::Type::Update)
        };
        self.agent.post(&call).await
    }
}

/// A kill policy's grace period.
fn grace_of(policy: &protos::v1::KillPolicy) -> Option<Duration> {
    let nanos = policy.grace_period.as_ref()?.nanoseconds;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// How a failed task's process ended, as Mesos words it.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("Command exited with status {code}"),
        (None, Some(signal)) => format!("Command terminated by signal {signal}"),
        (None, None) => "Command ended".into(),
    }
}

fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pgid <= 0 {
        return;
    }
    // SAFETY: killpg(2) on the process group this executor created for the task; no memory
    // is involved.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// A fresh update uuid (the executor names its updates, as Mesos's do).
fn random_uuid() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into the buffer it is given.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    debug_assert_eq!(filled, 16, "getrandom fills 16 bytes");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_process_is_described_as_mesos_does() {
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "Command exited with status 3"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "Command terminated by signal 9"
        );
    }
}
