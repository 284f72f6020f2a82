//! An emulated agent for cluster-scale benchmarks (the Mesos paper's "emulated slaves"): it
//! speaks the agent's side of the real protocol to a real master — registers, answers pings,
//! reports each task RUNNING and then FINISHED after `task_duration` — but starts no OS process,
//! so one machine can stand in for 100,000 agents.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libactor::{Context, Process, Upid};
use protos::internal::{
    PingSlaveMessage, PongSlaveMessage, RegisterSlaveMessage, RunTaskMessage,
    SlaveRegisteredMessage, StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::v1::task_status::Source;
use protos::v1::{AgentId, AgentInfo, TaskState, TaskStatus};
use resources::Resources;

/// Counters shared by every emulated agent of a run.
#[derive(Debug, Default)]
pub struct EmulationCounters {
    /// Agents the master registered.
    pub registered: AtomicU64,
    /// Pings answered.
    pub pings: AtomicU64,
    /// Tasks received.
    pub tasks: AtomicU64,
    /// Acknowledgements received.
    pub acks: AtomicU64,
}

/// One emulated agent.
pub struct EmulatedAgent {
    master: Upid,
    resources: Resources,
    task_duration: Duration,
    id: Option<AgentId>,
    counters: Arc<EmulationCounters>,
}

impl EmulatedAgent {
    /// An agent offering `resources` whose tasks take `task_duration` (on the node's clock).
    pub fn new(
        master: Upid,
        resources: Resources,
        task_duration: Duration,
        counters: Arc<EmulationCounters>,
    ) -> Self {
        EmulatedAgent {
            master,
            resources,
            task_duration,
            id: None,
            counters,
        }
    }

    fn registered(&mut self, _: &mut Context<Self>, from: Upid, msg: SlaveRegisteredMessage) {
        if from == self.master && self.id.is_none() {
            self.id = msg.slave_id;
            self.counters.registered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ping(&mut self, ctx: &mut Context<Self>, from: Upid, _: PingSlaveMessage) {
        self.counters.pings.fetch_add(1, Ordering::Relaxed);
        ctx.send(&from, PongSlaveMessage {});
    }

    fn run_task(&mut self, ctx: &mut Context<Self>, _from: Upid, msg: RunTaskMessage) {
        self.counters.tasks.fetch_add(1, Ordering::Relaxed);
        let Some(task) = msg.task else {
            return;
        };
        let update = |state: TaskState, seq: u8| {
            let mut uuid = [0u8; 16];
            uuid[0] = seq;
            let n = self.counters.tasks.load(Ordering::Relaxed).to_le_bytes();
            uuid[1..9].copy_from_slice(&n);
            let uuid = Bytes::copy_from_slice(&uuid);
            StatusUpdateMessage {
                update: Some(StatusUpdate {
                    framework_id: msg.framework_id.clone(),
                    slave_id: self.id.clone(),
                    status: Some(TaskStatus {
                        task_id: task.task_id.clone(),
                        state: state as i32,
                        source: Source::Executor as i32,
                        agent_id: self.id.clone(),
                        uuid: uuid.clone(),
                        ..Default::default()
                    }),
                    uuid,
                    ..Default::default()
                }),
                pid: ctx.pid().to_string(),
            }
        };
        ctx.send(&self.master, update(TaskState::TaskRunning, 1));
        let finished = update(TaskState::TaskFinished, 2);
        if self.task_duration.is_zero() {
            ctx.send(&self.master, finished);
        } else {
            ctx.delay_send(self.task_duration, &self.master, finished);
        }
    }

    fn ack(&mut self, _: &mut Context<Self>, _: Upid, _: StatusUpdateAcknowledgementMessage) {
        self.counters.acks.fetch_add(1, Ordering::Relaxed);
    }
}

impl Process for EmulatedAgent {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::ping);
        ctx.install(Self::run_task);
        ctx.install(Self::ack);
        let id = ctx.pid().id().to_owned();
        ctx.send(
            &self.master,
            RegisterSlaveMessage {
                slave: Some(AgentInfo {
                    hostname: id,
                    resources: self.resources.to_proto(),
                    ..Default::default()
                }),
                version: "emulated".into(),
            },
        );
    }
}
