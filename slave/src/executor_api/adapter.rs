//! One subscribed HTTP executor as its agent sees it: a process on the agent's node that
//! registers as the executor (as Keel's executor driver does) and turns what the agent sends an
//! executor into v1 events on the subscriber's stream, and the executor's calls into the
//! driver's messages. It ends with its stream: the agent then sees its executor's connection
//! break, and ends the executor's container.

use std::time::Duration;

use libactor::{Context, HttpStream, Process, Upid};
use protos::http_api::Encoding;
use protos::internal::{
    ExecutorRegisteredMessage, ExecutorToFrameworkMessage, FrameworkToExecutorMessage,
    KillTaskMessage, RegisterExecutorMessage, RunTaskGroupMessage, RunTaskMessage,
    ShutdownExecutorMessage, StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::v1::executor::{call, event, Call, Event};
use protos::v1::task_status::Source;
use protos::v1::{AgentId, ExecutorId, FrameworkId};

use super::Subscriptions;

/// How often an idle stream gets a HEARTBEAT.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// A subscribed HTTP executor.
pub struct ExecutorAdapter {
    framework: String,
    executor: String,
    agent: Upid,
    agent_id: Option<AgentId>,
    stream: HttpStream,
    stream_id: String,
    encoding: Encoding,
    subscriptions: Subscriptions,
    /// Updates the executor had not seen acknowledged when it subscribed (after its agent
    /// restarted), sent again once the agent takes it.
    unacknowledged: Vec<protos::v1::TaskStatus>,
}

impl ExecutorAdapter {
    /// An adapter for executor `executor` of `framework` under the agent at `agent`.
    pub fn new(
        framework: String,
        executor: String,
        agent: Upid,
        stream: HttpStream,
        stream_id: String,
        encoding: Encoding,
        subscriptions: Subscriptions,
    ) -> ExecutorAdapter {
        ExecutorAdapter {
            framework,
            executor,
            agent,
            agent_id: None,
            stream,
            stream_id,
            encoding,
            subscriptions,
            unacknowledged: Vec::new(),
        }
    }

    /// Sends `updates` again once the agent has taken the executor (its SUBSCRIBE's
    /// `unacknowledged_updates`).
    pub fn resending(mut self, updates: Vec<protos::v1::TaskStatus>) -> ExecutorAdapter {
        self.unacknowledged = updates;
        self
    }

    fn framework_id(&self) -> Option<FrameworkId> {
        Some(FrameworkId {
            value: self.framework.clone(),
        })
    }

    fn executor_id(&self) -> Option<ExecutorId> {
        Some(ExecutorId {
            value: self.executor.clone(),
        })
    }

    /// Who may send the adapter executor messages: its agent, on the same node (its messages
    /// cross no connection, so no peer can pose as it).
    fn sent_by_agent(&self, ctx: &Context<Self>, from: &Upid) -> bool {
        *from == self.agent && ctx.sender_is_local()
    }

    /// Writes `event`; a client that is gone ends the adapter.
    fn emit(&mut self, ctx: &mut Context<Self>, kind: event::Type, event: Event) {
        let event = Event {
            r#type: kind as i32,
            ..event
        };
        if self.stream.send(self.encoding.record(&event)).is_err() {
            tracing::info!(framework = %self.framework, executor = %self.executor, "an HTTP executor's stream closed");
            ctx.terminate();
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        self.emit(ctx, event::Type::Heartbeat, Event::default());
        ctx.delay(HEARTBEAT_INTERVAL, |a: &mut Self, ctx| a.heartbeat(ctx));
    }

    fn registered(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ExecutorRegisteredMessage) {
        if !self.sent_by_agent(ctx, &from) {
            return;
        }
        self.agent_id = msg.slave_id.clone();
        self.subscriptions.insert(
            &self.framework,
            &self.executor,
            self.stream_id.clone(),
            ctx.self_ref(),
        );
        let mut agent_info = msg.slave_info.unwrap_or_default();
        if agent_info.id.is_none() {
            agent_info.id = msg.slave_id;
        }
        let mut framework_info = msg.framework_info.unwrap_or_default();
        if framework_info.id.is_none() {
            framework_info.id = self.framework_id();
        }
        self.emit(
            ctx,
            event::Type::Subscribed,
            Event {
                subscribed: Some(event::Subscribed {
                    executor_info: msg.executor_info,
                    framework_info: Some(framework_info),
                    agent_info: Some(agent_info),
                    container_id: None,
                }),
                ..Default::default()
            },
        );
        for status in std::mem::take(&mut self.unacknowledged) {
            self.call(
                ctx,
                Call {
                    r#type: call::Type::Update as i32,
                    update: Some(call::Update {
                        status: Some(status),
                    }),
                    ..Default::default()
                },
            );
        }
    }

    fn run_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskMessage) {
        if self.sent_by_agent(ctx, &from) {
            let launch = Some(event::Launch { task: msg.task });
            self.emit(
                ctx,
                event::Type::Launch,
                Event {
                    launch,
                    ..Default::default()
                },
            );
        }
    }

    fn run_task_group(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RunTaskGroupMessage) {
        if self.sent_by_agent(ctx, &from) {
            let launch_group = Some(event::LaunchGroup {
                task_group: msg.task_group,
            });
            self.emit(
                ctx,
                event::Type::LaunchGroup,
                Event {
                    launch_group,
                    ..Default::default()
                },
            );
        }
    }

    fn kill_task(&mut self, ctx: &mut Context<Self>, from: Upid, msg: KillTaskMessage) {
        if self.sent_by_agent(ctx, &from) {
            let kill = Some(event::Kill {
                task_id: msg.task_id,
                kill_policy: msg.kill_policy,
            });
            self.emit(
                ctx,
                event::Type::Kill,
                Event {
                    kill,
                    ..Default::default()
                },
            );
        }
    }

    fn acknowledged(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: StatusUpdateAcknowledgementMessage,
    ) {
        if self.sent_by_agent(ctx, &from) {
            let acknowledged = Some(event::Acknowledged {
                task_id: msg.task_id,
                uuid: msg.uuid,
            });
            self.emit(
                ctx,
                event::Type::Acknowledged,
                Event {
                    acknowledged,
                    ..Default::default()
                },
            );
        }
    }

    fn framework_message(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: FrameworkToExecutorMessage,
    ) {
        if self.sent_by_agent(ctx, &from) {
            let message = Some(event::Message { data: msg.data });
            self.emit(
                ctx,
                event::Type::Message,
                Event {
                    message,
                    ..Default::default()
                },
            );
        }
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>, from: Upid, _: ShutdownExecutorMessage) {
        if self.sent_by_agent(ctx, &from) {
            self.emit(ctx, event::Type::Shutdown, Event::default());
        }
    }

    /// Carries out a call the gateway checked.
    pub fn call(&mut self, ctx: &mut Context<Self>, call: Call) {
        let agent = self.agent.clone();
        match call::Type::try_from(call.r#type).unwrap_or(call::Type::Unknown) {
            call::Type::Update => {
                let Some(mut status) = call.update.and_then(|u| u.status) else {
                    return;
                };
                if status.uuid.is_empty() {
                    status.uuid = ctx.node().random().uuid().as_bytes().to_vec().into();
                }
                status.source = Source::Executor as i32;
                status.executor_id = self.executor_id();
                status.agent_id = self.agent_id.clone();
                let now = ctx.node().clock().unix_seconds();
                if status.timestamp == 0.0 {
                    status.timestamp = now;
                }
                let update = StatusUpdate {
                    framework_id: self.framework_id(),
                    executor_id: self.executor_id(),
                    slave_id: self.agent_id.clone(),
                    uuid: status.uuid.clone(),
                    status: Some(status),
                    timestamp: now,
                    latest_state: None,
                };
                ctx.send(
                    &agent,
                    StatusUpdateMessage {
                        update: Some(update),
                        pid: ctx.pid().to_string(),
                    },
                );
            }
            call::Type::Message => {
                let data = call.message.map(|m| m.data).unwrap_or_default();
                ctx.send(
                    &agent,
                    ExecutorToFrameworkMessage {
                        slave_id: self.agent_id.clone(),
                        framework_id: self.framework_id(),
                        executor_id: self.executor_id(),
                        data,
                    },
                );
            }
            _ => {}
        }
    }
}

impl Process for ExecutorAdapter {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::run_task);
        ctx.install(Self::run_task_group);
        ctx.install(Self::kill_task);
        ctx.install(Self::acknowledged);
        ctx.install(Self::framework_message);
        ctx.install(Self::shutdown);
        let agent = self.agent.clone();
        ctx.link(&agent);
        ctx.send(
            &agent,
            RegisterExecutorMessage {
                framework_id: self.framework_id(),
                executor_id: self.executor_id(),
            },
        );
        ctx.delay(HEARTBEAT_INTERVAL, |a: &mut Self, ctx| a.heartbeat(ctx));
        // The subscriber's leaving ends the adapter at once (the executor is then disconnected).
        ctx.defer(self.stream.closed(), |_: &mut Self, ctx, ()| {
            ctx.terminate()
        });
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        if *pid == self.agent {
            ctx.terminate();
        }
    }

    fn finalize(&mut self, ctx: &mut Context<Self>) {
        self.subscriptions
            .remove(&self.framework, &self.executor, ctx.pid());
    }
}
