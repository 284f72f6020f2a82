//! The executor driver (Mesos's `MesosExecutorDriver`): a libactor process inside a custom
//! executor's OS process that registers with the agent which started it, turns the agent's
//! messages into [`Executor`] callbacks and sends the executor's status updates back.
//!
//! The agent passes everything the driver needs in the environment (`KEEL_SLAVE_PID`,
//! `KEEL_FRAMEWORK_ID`, `KEEL_EXECUTOR_ID`, `KEEL_SLAVE_ID`, `KEEL_SANDBOX_DIRECTORY`); [`run`]
//! reads it, starts a node on the agent's host and runs the executor until it stops.
//!
//! Handles (from the agent only): `ExecutorRegisteredMessage`, `RunTaskMessage`,
//! `RunTaskGroupMessage` (each of its tasks launched in turn),
//! `KillTaskMessage`, `StatusUpdateAcknowledgementMessage`, `FrameworkToExecutorMessage`,
//! `ShutdownExecutorMessage`, `ExecutorReregisteredMessage`; from a restarted agent with the
//! same id, `ReconnectExecutorMessage`. Sends: `RegisterExecutorMessage` (retried until
//! answered), `ReregisterExecutorMessage`, `StatusUpdateMessage`, `ExecutorToFrameworkMessage`.
//!
//! Status updates are kept until the agent acknowledges them; a stopping driver waits (up to
//! [`ACK_WAIT`]) for the last ones, so that an executor's final TASK_FINISHED is not lost with
//! its process.
//!
//! Agent restarts: when the agent's connection breaks and the agent said it recovers executors
//! (`KEEL_RECOVERY_TIMEOUT_SECONDS`), the driver waits that long for the restarted agent's
//! `ReconnectExecutorMessage` (naming the same agent id), answers with
//! `ReregisterExecutorMessage` carrying its unacknowledged updates, and carries on with the new
//! agent process. Without it, or past the timeout, it aborts.

use std::collections::BTreeMap;
use std::time::Duration;

use authentication::roles;
use bytes::Bytes;
use libactor::{Context, Node, Process, SpawnError, Upid};
use protos::internal::{
    ExecutorRegisteredMessage, ExecutorReregisteredMessage, ExecutorToFrameworkMessage,
    FrameworkToExecutorMessage, KillTaskMessage, ReconnectExecutorMessage, RegisterExecutorMessage,
    ReregisterExecutorMessage, RunTaskGroupMessage, RunTaskMessage, ShutdownExecutorMessage,
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::v1::task_status::Source;
use protos::v1::{AgentId, ExecutorId, FrameworkId, TaskStatus};
use tokio::sync::watch;

use crate::driver_status::DriverStatus;
use crate::executor::Executor;

/// How often an unanswered registration is re-sent.
pub const REGISTRATION_RETRY: Duration = Duration::from_secs(1);
/// How long a stopping driver waits for its last status updates to be acknowledged.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// Why an executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorDriverError {
    /// A `KEEL_*` variable is missing: the program was not started by an agent.
    #[error("{0} is not set: executors are started by a Keel agent")]
    MissingEnv(&'static str),
    /// `KEEL_SLAVE_PID` is not a pid.
    #[error("KEEL_SLAVE_PID: {0}")]
    BadAgentPid(#[from] libactor::UpidError),
    /// The node could not start.
    #[error(transparent)]
    Node(#[from] libactor::NodeError),
    /// The driver process could not start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// `KEEL_TLS_DIR` names TLS material that does not load.
    #[error("KEEL_TLS_DIR: {0}")]
    Tls(#[from] libactor::tls::TlsError),
}

/// What an executor acts through: sends status updates and messages to its agent.
pub struct ExecutorDriver {
    node: Node,
    pid: Upid,
    agent: Upid,
    framework_id: FrameworkId,
    executor_id: ExecutorId,
    agent_id: Option<AgentId>,
    registered: bool,
    /// Updates sent and not yet acknowledged, by uuid.
    unacked: BTreeMap<Bytes, StatusUpdate>,
    ending: Option<DriverStatus>,
    /// How long to wait for a restarted agent after its connection broke (none: abort).
    recovery_timeout: Option<Duration>,
    /// The agent's connection broke; waiting for its `ReconnectExecutorMessage`.
    disconnected: bool,
}

impl ExecutorDriver {
    /// This executor's id.
    pub fn executor_id(&self) -> &ExecutorId {
        &self.executor_id
    }

    /// Its framework's id.
    pub fn framework_id(&self) -> &FrameworkId {
        &self.framework_id
    }

    /// The node the driver runs on (its clock and metrics).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Status updates sent and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len()
    }

    /// Reports a task's state to the agent, which delivers it to the scheduler at least once.
    pub fn send_status_update(&mut self, mut status: TaskStatus) {
        let uuid = Bytes::copy_from_slice(self.node.random().uuid().as_bytes());
        status.uuid = uuid.clone();
        status.source = Source::Executor as i32;
        status.executor_id = Some(self.executor_id.clone());
        status.agent_id = self.agent_id.clone();
        let now = self.node.clock().unix_seconds();
        if status.timestamp == 0.0 {
            status.timestamp = now;
        }
        let update = StatusUpdate {
            framework_id: Some(self.framework_id.clone()),
            executor_id: Some(self.executor_id.clone()),
            slave_id: self.agent_id.clone(),
            status: Some(status),
            timestamp: now,
            uuid: uuid.clone(),
            latest_state: None,
        };
        self.unacked.insert(uuid, update.clone());
        self.node.send_from(
            &self.pid,
            &self.agent,
            StatusUpdateMessage {
                update: Some(update),
                pid: self.pid.to_string(),
            },
        );
    }

    /// Sends `data` to the framework's scheduler.
    pub fn send_framework_message(&mut self, data: Bytes) {
        self.node.send_from(
            &self.pid,
            &self.agent,
            ExecutorToFrameworkMessage {
                slave_id: self.agent_id.clone(),
                framework_id: Some(self.framework_id.clone()),
                executor_id: Some(self.executor_id.clone()),
                data,
            },
        );
    }

    /// Stops the driver once the updates already sent are acknowledged.
    pub fn stop(&mut self) {
        self.ending.get_or_insert(DriverStatus::Stopped);
    }

    /// Stops the driver with an error.
    pub fn abort(&mut self, why: impl Into<String>) {
        self.ending = Some(DriverStatus::Aborted(why.into()));
    }
}

/// The libactor process that runs an [`Executor`].
pub struct ExecutorProcess<E: Executor> {
    executor: E,
    driver: ExecutorDriver,
    done: watch::Sender<Option<DriverStatus>>,
    /// The stop deadline passed, or everything was acknowledged.
    stopping_since: Option<std::time::Instant>,
}

impl<E: Executor> ExecutorProcess<E> {
    /// Who may send: the executor's agent, proven (on a secure node) by the `agent` role of
    /// the message's connection.
    fn sent_by_agent(&self, ctx: &Context<Self>, from: &Upid) -> bool {
        let ok = *from == self.driver.agent && ctx.authorize(roles::AGENT);
        if !ok {
            tracing::warn!(%from, agent = %self.driver.agent, "message for the executor from a process that is not its agent; dropped");
        }
        ok
    }

    fn after_callback(&mut self, ctx: &mut Context<Self>) {
        let Some(status) = self.driver.ending.clone() else {
            return;
        };
        let now = ctx.node().clock().now();
        let since = *self.stopping_since.get_or_insert(now);
        let waited_enough = now.duration_since(since) >= ACK_WAIT;
        if !self.driver.unacked.is_empty() && !waited_enough && status == DriverStatus::Stopped {
            if since == now {
                ctx.delay(ACK_WAIT, |p: &mut Self, ctx| p.after_callback(ctx));
            }
            return;
        }
        tracing::info!(
            ?status,
            unacknowledged = self.driver.unacked.len(),
            "executor driver ending"
        );
        let _ = self.done.send(Some(status));
        ctx.terminate();
    }

    fn register(&mut self, ctx: &mut Context<Self>) {
        if self.driver.registered || self.driver.ending.is_some() {
            return;
        }
        ctx.link(&self.driver.agent);
        ctx.delay(REGISTRATION_RETRY, |p: &mut Self, ctx| p.register(ctx));
        ctx.send(
            &self.driver.agent.clone(),
            RegisterExecutorMessage {
                framework_id: Some(self.driver.framework_id.clone()),
                executor_id: Some(self.driver.executor_id.clone()),
            },
        );
    }

    fn registered(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ExecutorRegisteredMessage) {
        if !self.sent_by_agent(ctx, &from) || self.driver.registered {
            return;
        }
        self.driver.registered = true;
        self.driver.agent_id = msg.slave_id.clone();
        self.executor.registered(
            &mut self.driver,
            &msg.executor_info.unwrap_or_default(),
            &msg.framework_info.unwrap_or_default(),
            &msg.slave_info.unwrap_or_default(),
        );
        self.after_callback(ctx);
    }

    fn run_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskMessage) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        if let Some(task) = msg.task {
            self.executor.launch_task(&mut self.driver, task);
        }
        self.after_callback(ctx);
    }

    /// A task group: the driver's executors take its tasks one by one, in the group's order,
    /// all in this one callback turn (nothing reaches the executor between them).
    fn run_task_group(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskGroupMessage) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        for task in msg.task_group.into_iter().flat_map(|g| g.tasks) {
            self.executor.launch_task(&mut self.driver, task);
        }
        self.after_callback(ctx);
    }

    fn kill_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: KillTaskMessage) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        if let Some(task) = msg.task_id {
            self.executor.kill_task(&mut self.driver, &task);
        }
        self.after_callback(ctx);
    }

    fn acknowledged(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: StatusUpdateAcknowledgementMessage,
    ) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        self.driver.unacked.remove(&msg.uuid);
        self.after_callback(ctx);
    }

    fn framework_message(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: FrameworkToExecutorMessage,
    ) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        self.executor.framework_message(&mut self.driver, &msg.data);
        self.after_callback(ctx);
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>, from: Upid, _msg: ShutdownExecutorMessage) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        self.executor.shutdown(&mut self.driver);
        self.driver.stop();
        self.after_callback(ctx);
    }
}

impl<E: Executor> ExecutorProcess<E> {
    /// A restarted agent asks this executor back: accepted if it is the same agent (by id).
    fn reconnect(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ReconnectExecutorMessage) {
        if !self.driver.registered
            || msg.slave_id.is_none()
            || msg.slave_id != self.driver.agent_id
            || self.driver.ending.is_some()
        {
            tracing::warn!(%from, "reconnect request from an agent this executor did not run under; ignored");
            return;
        }
        tracing::info!(agent = %from, "the agent restarted; re-registering with it");
        ctx.unlink(&self.driver.agent);
        self.driver.agent = from.clone();
        ctx.link(&from);
        ctx.send(
            &from,
            ReregisterExecutorMessage {
                executor_id: Some(self.driver.executor_id.clone()),
                framework_id: Some(self.driver.framework_id.clone()),
                updates: self.driver.unacked.values().cloned().collect(),
            },
        );
    }

    fn reregistered(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        _msg: ExecutorReregisteredMessage,
    ) {
        if self.sent_by_agent(ctx, &from) {
            self.driver.disconnected = false;
        }
    }
}

impl<E: Executor> Process for ExecutorProcess<E> {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::run_task);
        ctx.install(Self::run_task_group);
        ctx.install(Self::kill_task);
        ctx.install(Self::acknowledged);
        ctx.install(Self::framework_message);
        ctx.install(Self::shutdown);
        ctx.install(Self::reconnect);
        ctx.install(Self::reregistered);
        self.register(ctx);
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        if *pid != self.driver.agent {
            return;
        }
        if let Some(timeout) = self
            .driver
            .recovery_timeout
            .filter(|_| self.driver.registered)
        {
            tracing::warn!(agent = %pid, ?timeout, "lost the connection to the agent; waiting for it to come back");
            self.driver.disconnected = true;
            ctx.delay(timeout, |p: &mut Self, ctx| {
                if p.driver.disconnected {
                    p.executor
                        .error(&mut p.driver, "the agent did not come back in time");
                    p.driver.abort("the agent did not come back in time");
                    p.after_callback(ctx);
                }
            });
            return;
        }
        self.executor
            .error(&mut self.driver, "lost the connection to the agent");
        self.driver.abort("lost the connection to the agent");
        self.after_callback(ctx);
    }

    fn finalize(&mut self, _ctx: &mut Context<Self>) {
        if self.done.borrow().is_none() {
            let _ = self.done.send(Some(DriverStatus::Aborted(
                "the driver's process ended".into(),
            )));
        }
    }
}

fn env(name: &'static str) -> Result<String, ExecutorDriverError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ExecutorDriverError::MissingEnv(name))
}

/// Runs `executor` as the agent that started this OS process expects: registers, serves it
/// until it stops or loses the agent, then shuts the node down. Returns how the driver ended.
pub async fn run<E: Executor>(executor: E) -> Result<DriverStatus, ExecutorDriverError> {
    let agent: Upid = env("KEEL_SLAVE_PID")?.parse()?;
    let framework_id = FrameworkId {
        value: env("KEEL_FRAMEWORK_ID")?,
    };
    let executor_id = ExecutorId {
        value: env("KEEL_EXECUTOR_ID")?,
    };
    let bind = format!("{}:0", agent.host())
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    // A secure agent gives its custom executors a certificate of their own.
    let mut builder = Node::builder().bind(bind).single_threaded();
    if let Some(dir) = std::env::var_os("KEEL_TLS_DIR").filter(|d| !d.is_empty()) {
        builder = builder.tls(libactor::tls::dir::load(std::path::Path::new(&dir))?);
    }
    let node = builder.start()?;
    let id = node.generate_id("executor");
    let pid = node.pid(&id)?;
    let (tx, mut rx) = watch::channel(None);
    node.spawn(
        &id,
        ExecutorProcess {
            executor,
            driver: ExecutorDriver {
                node: node.clone(),
                pid,
                agent,
                framework_id,
                executor_id,
                agent_id: None,
                registered: false,
                unacked: BTreeMap::new(),
                ending: None,
                recovery_timeout: std::env::var("KEEL_RECOVERY_TIMEOUT_SECONDS")
                    .ok()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64),
                disconnected: false,
            },
            done: tx,
            stopping_since: None,
        },
    )?;
    let status = match rx.wait_for(Option::is_some).await {
        Ok(status) => status.clone().unwrap_or(DriverStatus::Stopped),
        Err(_) => DriverStatus::Aborted("the driver's process ended".into()),
    };
    node.shutdown().await;
    Ok(status)
}
