//! Stand-in agents and schedulers for the master's tests: libactor processes speaking the real
//! messages that record what the master sends them.
#![allow(dead_code)]

use libactor::{Clock, Context, Process, Upid};
use protos::internal::{
    FrameworkRegisteredMessage, LostSlaveMessage, PingSlaveMessage, PongSlaveMessage,
    RescindResourceOfferMessage, ResourceOffersMessage, RevocationNoticeMessage, RunTaskMessage,
    SlaveRegisteredMessage, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::omega::{CellUpdateMessage, TransactionResultMessage};
use protos::v1::{CommandInfo, TaskId, TaskInfo};
use resources::Resources;
use tokio::sync::mpsc;

/// Everything a stand-in receives.
#[derive(Debug)]
pub enum Got {
    SlaveRegistered(SlaveRegisteredMessage),
    FrameworkRegistered(FrameworkRegisteredMessage),
    Offers(ResourceOffersMessage),
    RunTask(Box<RunTaskMessage>),
    Update(StatusUpdateMessage),
    Ack(StatusUpdateAcknowledgementMessage),
    Rescind(RescindResourceOfferMessage),
    Kill(protos::internal::KillTaskMessage),
    ShutdownFramework(protos::internal::ShutdownFrameworkMessage),
    Shutdown(protos::internal::ShutdownMessage),
    LostSlave(LostSlaveMessage),
    Cell(CellUpdateMessage),
    Revocation(RevocationNoticeMessage),
    Transaction(TransactionResultMessage),
}

/// A stand-in agent or scheduler: records what the master sends it.
pub struct StandIn {
    pub tx: mpsc::UnboundedSender<Got>,
}

impl Process for StandIn {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: SlaveRegisteredMessage| {
                let _ = s.tx.send(Got::SlaveRegistered(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: FrameworkRegisteredMessage| {
                let _ = s.tx.send(Got::FrameworkRegistered(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: ResourceOffersMessage| {
                let _ = s.tx.send(Got::Offers(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: RunTaskMessage| {
                let _ = s.tx.send(Got::RunTask(Box::new(m)));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: StatusUpdateMessage| {
                let _ = s.tx.send(Got::Update(m));
            },
        );
        ctx.install(
            |s: &mut StandIn,
             _: &mut Context<StandIn>,
             _: Upid,
             m: StatusUpdateAcknowledgementMessage| {
                let _ = s.tx.send(Got::Ack(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: RescindResourceOfferMessage| {
                let _ = s.tx.send(Got::Rescind(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: LostSlaveMessage| {
                let _ = s.tx.send(Got::LostSlave(m));
            },
        );
        ctx.install(
            |s: &mut StandIn,
             _: &mut Context<StandIn>,
             _: Upid,
             m: protos::internal::KillTaskMessage| {
                let _ = s.tx.send(Got::Kill(m));
            },
        );
        ctx.install(
            |s: &mut StandIn,
             _: &mut Context<StandIn>,
             _: Upid,
             m: protos::internal::ShutdownFrameworkMessage| {
                let _ = s.tx.send(Got::ShutdownFramework(m));
            },
        );
        ctx.install(
            |s: &mut StandIn,
             _: &mut Context<StandIn>,
             _: Upid,
             m: protos::internal::ShutdownMessage| {
                let _ = s.tx.send(Got::Shutdown(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: CellUpdateMessage| {
                let _ = s.tx.send(Got::Cell(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: TransactionResultMessage| {
                let _ = s.tx.send(Got::Transaction(m));
            },
        );
        ctx.install(
            |s: &mut StandIn, _: &mut Context<StandIn>, _: Upid, m: RevocationNoticeMessage| {
                let _ = s.tx.send(Got::Revocation(m));
            },
        );
        // Agents answer the master's pings.
        ctx.install(
            |_: &mut StandIn, ctx: &mut Context<StandIn>, from: Upid, _: PingSlaveMessage| {
                ctx.send(&from, PongSlaveMessage {});
            },
        );
    }
}

pub fn r(text: &str) -> Resources {
    text.parse().unwrap()
}

pub async fn got(clock: &Clock, rx: &mut mpsc::UnboundedReceiver<Got>) -> Got {
    clock.settle().await.unwrap();
    rx.try_recv().expect("a message arrived")
}

pub async fn nothing(clock: &Clock, rx: &mut mpsc::UnboundedReceiver<Got>) {
    clock.settle().await.unwrap();
    if let Ok(m) = rx.try_recv() {
        panic!("unexpected {m:?}");
    }
}

pub fn task(id: &str, resources: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: Some(TaskId { value: id.into() }),
        resources: r(resources).to_proto(),
        command: Some(CommandInfo {
            value: "true".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn no_filter() -> Option<protos::v1::Filters> {
    Some(protos::v1::Filters {
        refuse_seconds: Some(0.0),
    })
}
