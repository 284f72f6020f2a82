//! An emulated agent for cluster-scale benchmarks (the Mesos paper's "emulated slaves"): it
//! speaks the agent's side of the real protocol to a real master — registers, answers pings,
//! reports each task RUNNING and then FINISHED after `task_duration` (or, for a task whose
//! command is `sleep SECONDS`, after that long) — but starts no OS process,
//! so one machine can stand in for 100,000 agents. After a master failover it re-registers with
//! the new leader ([`EmulatedAgent::set_master`]) bringing its running tasks, retrying until
//! answered, as a real agent does. Like a real agent's status update manager it sends an
//! update again until the master acknowledges it (a full send queue drops messages: at 400,000
//! tasks on 40,000 agents 4,560 RUNNING updates were lost that way, and the tasks stayed
//! STAGING for good).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libactor::{Context, Process, Upid};
use protos::internal::{
    PingSlaveMessage, PongSlaveMessage, RegisterSlaveMessage, ReregisterSlaveMessage,
    RunTaskMessage, ShutdownFrameworkMessage, SlaveRegisteredMessage, SlaveReregisteredMessage,
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage, Task,
};
use protos::v1::task_status::Source;
use protos::v1::{AgentId, AgentInfo, TaskState, TaskStatus};
use protos::RegistrationBackoff;
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
    /// Agents a new master re-registered.
    pub reregistered: AtomicU64,
    /// Re-registration attempts sent (first tries and retries).
    pub reregistration_attempts: AtomicU64,
}

/// One emulated agent.
pub struct EmulatedAgent {
    master: Upid,
    resources: Resources,
    task_duration: Duration,
    id: Option<AgentId>,
    counters: Arc<EmulationCounters>,
    /// Tasks RUNNING now, by task id: what a re-registration brings.
    running: std::collections::BTreeMap<String, Task>,
    /// Waiting for a new master's `SlaveReregisteredMessage`.
    reregistering: bool,
    /// When to re-register again: a real agent's schedule, with the master's advice.
    backoff: RegistrationBackoff,
    /// Jitter source (xorshift), seeded from the agent's pid.
    jitter: u64,
    /// Updates sent and not acknowledged yet, by uuid.
    unacked: std::collections::BTreeMap<Bytes, StatusUpdateMessage>,
    /// A retry of the unacknowledged updates is scheduled.
    retrying: bool,
}

/// How long an update waits for its acknowledgement before it is sent again (a real agent's
/// first retry interval).
pub const UPDATE_RETRY: Duration = slave::status_update_manager::RETRY_INTERVAL_MIN;

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
            running: Default::default(),
            reregistering: false,
            backoff: RegistrationBackoff::default(),
            jitter: 0,
            unacked: Default::default(),
            retrying: false,
        }
    }

    /// Sends `update` to the master, and again every [`UPDATE_RETRY`] until acknowledged.
    fn send_update(&mut self, ctx: &mut Context<Self>, update: StatusUpdateMessage) {
        let uuid = update
            .update
            .as_ref()
            .map(|u| u.uuid.clone())
            .unwrap_or_default();
        ctx.send(&self.master, update.clone());
        self.unacked.insert(uuid, update);
        if !self.retrying {
            self.retrying = true;
            ctx.delay(UPDATE_RETRY, |a: &mut EmulatedAgent, ctx| {
                a.retry_updates(ctx)
            });
        }
    }

    fn retry_updates(&mut self, ctx: &mut Context<Self>) {
        self.retrying = false;
        if self.unacked.is_empty() {
            return;
        }
        for update in self.unacked.values() {
            ctx.send(&self.master, update.clone());
        }
        self.retrying = true;
        ctx.delay(UPDATE_RETRY, |a: &mut EmulatedAgent, ctx| {
            a.retry_updates(ctx)
        });
    }

    fn info(&self, ctx: &Context<Self>) -> AgentInfo {
        AgentInfo {
            id: self.id.clone(),
            hostname: ctx.pid().id().to_owned(),
            resources: self.resources.to_proto(),
            ..Default::default()
        }
    }

    /// Follows a new leading master: re-registers with it, with the running tasks, until it
    /// answers.
    pub fn set_master(&mut self, ctx: &mut Context<Self>, master: Upid) {
        self.master = master;
        if self.id.is_some() {
            let first = !self.reregistering;
            self.reregistering = true;
            self.backoff.restart();
            if first {
                self.reregister(ctx);
            }
        }
    }

    fn reregister(&mut self, ctx: &mut Context<Self>) {
        if !self.reregistering {
            return;
        }
        self.counters
            .reregistration_attempts
            .fetch_add(1, Ordering::Relaxed);
        let msg = ReregisterSlaveMessage {
            slave: Some(self.info(ctx)),
            tasks: self.running.values().cloned().collect(),
            version: "emulated".into(),
            ..Default::default()
        };
        ctx.send(&self.master, msg);
        let wait = self.next_wait(ctx);
        ctx.delay(wait, |a: &mut EmulatedAgent, ctx| a.reregister(ctx));
    }

    /// The backoff spread by a factor in [0.5, 1.5) (from the agent's xorshift); the backoff
    /// then doubles.
    fn next_wait(&mut self, ctx: &Context<Self>) -> Duration {
        if self.jitter == 0 {
            // FNV-1a of the pid: distinct per agent, never zero after the `| 1`.
            self.jitter = ctx
                .pid()
                .as_str()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
                | 1;
        }
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        self.backoff.next_wait((self.jitter % 1000) as f64 / 1000.0)
    }

    fn reregistered(&mut self, _: &mut Context<Self>, from: Upid, msg: SlaveReregisteredMessage) {
        if from == self.master {
            self.backoff.advise(msg.registration_backoff_seconds);
        }
        if from == self.master && self.reregistering {
            self.reregistering = false;
            self.counters.reregistered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn registered(&mut self, _: &mut Context<Self>, from: Upid, msg: SlaveRegisteredMessage) {
        if from == self.master {
            self.backoff.advise(msg.registration_backoff_seconds);
        }
        if from == self.master && self.id.is_none() {
            self.id = msg.slave_id;
            self.counters.registered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ping(&mut self, ctx: &mut Context<Self>, from: Upid, msg: PingSlaveMessage) {
        if from == self.master {
            self.backoff.advise(msg.registration_backoff_seconds);
        }
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
        let running = update(TaskState::TaskRunning, 1);
        let finished = update(TaskState::TaskFinished, 2);
        self.send_update(ctx, running);
        let duration = task
            .command
            .as_ref()
            .and_then(|c| sleep_duration(&c.value))
            .unwrap_or(self.task_duration);
        if duration.is_zero() {
            self.send_update(ctx, finished);
            return;
        }
        let id = task.task_id.clone().unwrap_or_default().value;
        self.running.insert(
            id.clone(),
            Task {
                name: task.name.clone(),
                task_id: task.task_id.clone(),
                framework_id: msg.framework_id.clone(),
                executor_id: task.executor.as_ref().and_then(|e| e.executor_id.clone()),
                slave_id: self.id.clone(),
                state: TaskState::TaskRunning as i32,
                resources: task.resources.clone(),
                ..Default::default()
            },
        );
        ctx.delay(duration, move |a: &mut EmulatedAgent, ctx| {
            a.running.remove(&id);
            a.send_update(ctx, finished);
        });
    }

    fn ack(&mut self, _: &mut Context<Self>, from: Upid, msg: StatusUpdateAcknowledgementMessage) {
        if from != self.master {
            return;
        }
        if self.unacked.remove(&msg.uuid).is_some() {
            self.counters.acks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How long `sleep SECONDS` (a non-negative decimal) would run; `None` for any other command.
pub fn sleep_duration(command: &str) -> Option<Duration> {
    let seconds: f64 = command.strip_prefix("sleep ")?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

impl Process for EmulatedAgent {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::registered);
        ctx.install(Self::ping);
        ctx.install(Self::run_task);
        ctx.install(Self::ack);
        ctx.install(Self::reregistered);
        // A framework that ends tells every agent it ran on; emulated tasks are over already.
        ctx.install(|_: &mut Self, _: &mut Context<Self>, _: Upid, _: ShutdownFrameworkMessage| {});
        ctx.send(
            &self.master,
            RegisterSlaveMessage {
                slave: Some(self.info(ctx)),
                version: "emulated".into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_command_gives_the_task_its_duration() {
        assert_eq!(
            sleep_duration("sleep 1.5"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(sleep_duration("sleep 0"), Some(Duration::ZERO));
        for other in [
            "true",
            "sleep",
            "sleep -1",
            "sleep x",
            "sleep NaN",
            "sleep 1e400",
        ] {
            assert_eq!(sleep_duration(other), None, "{other}");
        }
    }
}
