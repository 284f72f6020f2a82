//! One subscribed HTTP framework as the master sees it: a process on the master's node that
//! registers the framework the way a scheduler driver does and turns what the master sends a
//! scheduler into v1 events on the subscriber's stream. The subscriber's calls reach the master
//! as the messages a driver would send, from the adapter's pid (the gateway sends them, see
//! `scheduler_calls`). HTTP frameworks therefore get exactly what driver frameworks get: offers
//! under DRF, revocation, failover timeouts, reconciliation.
//!
//! Its life is its stream's: when the client goes (its connection closes, or it is cut off for
//! not reading), the adapter ends, and the master sees the scheduler disconnect (its failover
//! timeout starts); a new SUBSCRIBE with the framework's id is a failover to a new adapter.

use std::time::Duration;

use libactor::{Context, HttpStream, Process, Upid};
use protos::internal::{
    ExecutorToFrameworkMessage, ExitedExecutorMessage, FrameworkErrorMessage,
    FrameworkRegisteredMessage, FrameworkReregisteredMessage, LostSlaveMessage,
    RegisterFrameworkMessage, ReregisterFrameworkMessage, RescindResourceOfferMessage,
    ResourceOffersMessage, StatusUpdateMessage, UnregisterFrameworkMessage,
};
use protos::v1::scheduler::{event, Event};
use protos::v1::{task_status::Source, FrameworkId, FrameworkInfo};

use super::{Subscription, Subscriptions};
use protos::http_api::Encoding;

/// How often an idle stream gets a HEARTBEAT (Mesos's default).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// A subscribed HTTP framework.
pub struct FrameworkAdapter {
    info: FrameworkInfo,
    /// The principal its subscriber proved (`None` on an open master).
    principal: Option<String>,
    /// A re-subscription with the framework's id: a scheduler failover.
    failover: bool,
    master: Upid,
    stream: HttpStream,
    stream_id: String,
    encoding: Encoding,
    subscriptions: Subscriptions,
    subscribed: bool,
}

impl FrameworkAdapter {
    /// An adapter for `info` (with its id when re-subscribing), writing events to `stream`.
    pub fn new(
        info: FrameworkInfo,
        principal: Option<String>,
        master: Upid,
        stream: HttpStream,
        stream_id: String,
        encoding: Encoding,
        subscriptions: Subscriptions,
    ) -> FrameworkAdapter {
        FrameworkAdapter {
            failover: info.id.as_ref().is_some_and(|id| !id.value.is_empty()),
            info,
            principal,
            master,
            stream,
            stream_id,
            encoding,
            subscriptions,
            subscribed: false,
        }
    }

    /// The framework's info as the master now has it (after an `UPDATE_FRAMEWORK`): what the
    /// adapter re-registers with after a master failover.
    pub fn set_info(&mut self, _ctx: &mut Context<Self>, info: FrameworkInfo) {
        self.info = FrameworkInfo {
            id: self.info.id.clone(),
            principal: self.info.principal.clone(),
            ..info
        };
    }

    fn framework_id(&self) -> Option<FrameworkId> {
        self.info.id.clone().filter(|id| !id.value.is_empty())
    }

    /// Writes `event` as a `kind` event; a client that is gone ends the adapter.
    fn emit(&mut self, ctx: &mut Context<Self>, kind: event::Type, event: Event) {
        let event = Event {
            r#type: kind as i32,
            ..event
        };
        let record = self.encoding.record(&event);
        if self.stream.send(record).is_err() {
            tracing::info!(framework = ?self.framework_id().map(|f| f.value), "an HTTP scheduler's stream closed; it is disconnected");
            ctx.terminate();
        }
    }

    /// Who may send the adapter scheduler messages: the master, which runs on the same node
    /// (its messages never cross a connection, so no peer can pose as it).
    fn sent_by_master(&self, ctx: &Context<Self>, from: &Upid) -> bool {
        *from == self.master && ctx.sender_is_local()
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.subscribed {
            self.emit(ctx, event::Type::Heartbeat, Event::default());
        }
        ctx.delay(HEARTBEAT_INTERVAL, |a: &mut Self, ctx| a.heartbeat(ctx));
    }

    fn subscribed(
        &mut self,
        ctx: &mut Context<Self>,
        framework_id: Option<FrameworkId>,
        master_info: Option<protos::v1::MasterInfo>,
    ) {
        let Some(id) = framework_id.filter(|id| !id.value.is_empty()) else {
            return;
        };
        self.info.id = Some(id.clone());
        self.subscribed = true;
        self.subscriptions.insert(
            id.value.clone(),
            Subscription {
                stream_id: self.stream_id.clone(),
                principal: self.principal.clone(),
                adapter: ctx.self_ref(),
            },
        );
        self.emit(
            ctx,
            event::Type::Subscribed,
            Event {
                subscribed: Some(event::Subscribed {
                    framework_id: Some(id),
                    heartbeat_interval_seconds: Some(HEARTBEAT_INTERVAL.as_secs_f64()),
                    master_info,
                }),
                ..Default::default()
            },
        );
    }

    fn registered(&mut self, ctx: &mut Context<Self>, from: Upid, msg: FrameworkRegisteredMessage) {
        if self.sent_by_master(ctx, &from) && !self.subscribed {
            self.subscribed(ctx, msg.framework_id, msg.master_info);
        }
    }

    fn reregistered(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: FrameworkReregisteredMessage,
    ) {
        if self.sent_by_master(ctx, &from) && !self.subscribed {
            self.subscribed(ctx, msg.framework_id, msg.master_info);
        }
    }

    fn offers(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ResourceOffersMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.emit(
            ctx,
            event::Type::Offers,
            Event {
                offers: Some(event::Offers { offers: msg.offers }),
                ..Default::default()
            },
        );
    }

    fn rescinded(&mut self, ctx: &mut Context<Self>, from: Upid, msg: RescindResourceOfferMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.emit(
            ctx,
            event::Type::Rescind,
            Event {
                rescind: Some(event::Rescind {
                    offer_id: msg.offer_id,
                }),
                ..Default::default()
            },
        );
    }

    fn status_update(&mut self, ctx: &mut Context<Self>, from: Upid, msg: StatusUpdateMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        let Some(update) = msg.update else {
            return;
        };
        let Some(mut status) = update.status else {
            return;
        };
        // Only the agent's updates are acknowledged (the master's own carry no uuid to ack).
        if status.source == Source::Master as i32 {
            status.uuid = Default::default();
        } else if status.uuid.is_empty() {
            status.uuid = update.uuid;
        }
        if status.agent_id.is_none() {
            status.agent_id = update.slave_id;
        }
        if status.executor_id.is_none() {
            status.executor_id = update.executor_id;
        }
        self.emit(
            ctx,
            event::Type::Update,
            Event {
                update: Some(event::Update {
                    status: Some(status),
                }),
                ..Default::default()
            },
        );
    }

    fn framework_message(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ExecutorToFrameworkMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.emit(
            ctx,
            event::Type::Message,
            Event {
                message: Some(event::Message {
                    agent_id: msg.slave_id,
                    executor_id: msg.executor_id,
                    data: msg.data,
                }),
                ..Default::default()
            },
        );
    }

    fn lost_agent(&mut self, ctx: &mut Context<Self>, from: Upid, msg: LostSlaveMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.emit(
            ctx,
            event::Type::Failure,
            Event {
                failure: Some(event::Failure {
                    agent_id: msg.slave_id,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }

    fn executor_exited(&mut self, ctx: &mut Context<Self>, from: Upid, msg: ExitedExecutorMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.emit(
            ctx,
            event::Type::Failure,
            Event {
                failure: Some(event::Failure {
                    agent_id: msg.slave_id,
                    executor_id: msg.executor_id,
                    status: Some(msg.status),
                }),
                ..Default::default()
            },
        );
    }

    fn error(&mut self, ctx: &mut Context<Self>, from: Upid, msg: FrameworkErrorMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.emit(
            ctx,
            event::Type::Error,
            Event {
                error: Some(event::Error {
                    message: msg.message,
                }),
                ..Default::default()
            },
        );
        // As Mesos: an ERROR ends the subscription.
        ctx.terminate();
    }

    /// Ends the subscription at the framework's `TEARDOWN`: the master removes it.
    pub fn teardown(&mut self, ctx: &mut Context<Self>) {
        let framework_id = self.framework_id();
        let master = self.master.clone();
        ctx.send(&master, UnregisterFrameworkMessage { framework_id });
        ctx.terminate();
    }
}

impl Process for FrameworkAdapter {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::reregistered);
        ctx.install(Self::offers);
        ctx.install(Self::rescinded);
        ctx.install(Self::status_update);
        ctx.install(Self::framework_message);
        ctx.install(Self::lost_agent);
        ctx.install(Self::executor_exited);
        ctx.install(Self::error);
        ctx.link(&self.master.clone());
        let master = self.master.clone();
        if self.failover {
            ctx.send(
                &master,
                ReregisterFrameworkMessage {
                    framework: Some(self.info.clone()),
                    failover: true,
                },
            );
        } else {
            ctx.send(
                &master,
                RegisterFrameworkMessage {
                    framework: Some(self.info.clone()),
                },
            );
        }
        ctx.delay(HEARTBEAT_INTERVAL, |a: &mut Self, ctx| a.heartbeat(ctx));
        // The subscriber's leaving ends the adapter at once (the scheduler is then disconnected).
        ctx.defer(self.stream.closed(), |_: &mut Self, ctx, ()| {
            ctx.terminate()
        });
    }

    fn exited(&mut self, ctx: &mut Context<Self>, pid: &Upid) {
        if *pid == self.master {
            ctx.terminate();
        }
    }

    fn finalize(&mut self, ctx: &mut Context<Self>) {
        if let Some(id) = self.framework_id() {
            self.subscriptions.remove(&id.value, ctx.pid());
        }
    }
}
