//! Registration with the master: Disconnected → Registering → Registered, retried with
//! backoff; authentication first when the agent has a credential; re-registration with the
//! agent's id and live tasks; the master's pings, and registering again when they stop.

use authentication::roles;

use crate::executor_tls::executor_principal;
use libactor::{Context, Upid};
use protos::internal::{
    AuthenticationChallengeMessage, AuthenticationCompletedMessage, AuthenticationFailedMessage,
    PingSlaveMessage, PongSlaveMessage, ReconcileTasksMessage, RegisterSlaveMessage,
    ReregisterSlaveMessage, SlaveRegisteredMessage, SlaveReregisteredMessage, Task,
};
use protos::v1::task_status::Reason;
use protos::v1::{AgentId, AgentInfo, ExecutorId, FrameworkId, TaskId, TaskState};
use protos::IdText;

use super::{Registration, Slave, REGISTRATION_BACKOFF_MIN};

impl Slave {
    pub(super) fn agent_info(&self) -> AgentInfo {
        AgentInfo {
            hostname: self.config.hostname.clone(),
            port: 0,
            resources: self.config.resources.to_proto(),
            attributes: self.config.attributes.clone(),
            id: self.id.clone().map(|value| AgentId { value }),
        }
    }

    /// Who may send: the master this agent follows, proven (on a secure node) by the `master`
    /// role of the connection the message arrived on.
    pub(super) fn sent_by_master(&self, ctx: &Context<Self>, from: &Upid) -> bool {
        let ok = *from == self.config.master && ctx.authorize(roles::MASTER);
        if !ok {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, master = %self.config.master, "message that only the master may send, from another process");
        }
        ok
    }

    /// Who may speak for executor `executor` of `framework`: on a secure agent, only the
    /// certificate this agent issued it (role `executor`, its own principal), or this node's
    /// own v1 API adapter for it (which checked the executor's token or certificate); anyone on
    /// an insecure one (the executor's pid, bound at registration, is then checked alone).
    pub(super) fn sent_by_executor(
        &self,
        ctx: &Context<Self>,
        framework: &str,
        executor: &str,
    ) -> bool {
        // An HTTP executor's adapter runs on this node and checked the executor's proof.
        if !ctx.node().is_secure() || ctx.sender_is_local() {
            return true;
        }
        let expected = executor_principal(framework, executor);
        let identity = ctx.sender_identity();
        if identity.is_some_and(|i| i.has_role(roles::EXECUTOR) && i.principal() == expected) {
            return true;
        }
        self.metrics.inc(|m| &m.invalid_messages);
        tracing::warn!(
            expected,
            proven = identity.map_or("(none)", |i| i.principal()),
            "refused an executor message: its connection proved another principal"
        );
        false
    }

    pub(super) fn register(&mut self, ctx: &mut Context<Self>) {
        if self.registration == Registration::Registered {
            return;
        }
        self.registration = Registration::Registering;
        let master = self.config.master.clone();
        ctx.link(&master);
        // The retry is armed before the attempt leaves (see the status update manager).
        // Spread by [0.5, 1.5) (from the node's randomness, seeded in simulations): every agent
        // of a cluster loses the same master at once, and in step their retries would reach
        // the new one as waves of duplicates.
        let wait = self.backoff.next_wait(ctx.node().random().fraction());
        // Only a registration still under way is retried: an agent the master shut down
        // (`Disconnected` since) must not come back on a retry armed before, as a new agent.
        ctx.delay(wait, |s: &mut Slave, ctx| {
            if s.registration == Registration::Registering {
                tracing::debug!(master = %s.config.master, "master has not answered; registering again");
                s.register(ctx);
            }
        });
        if let Some(auth) = self
            .authenticatee
            .as_mut()
            .filter(|a| !a.is_authenticated())
        {
            // Authenticate first; the completion registers at once, the retry above repeats
            // the attempt if the master does not answer.
            ctx.send(&master, auth.begin());
        } else {
            self.send_registration(ctx, &master);
        }
    }

    pub(super) fn send_registration(&self, ctx: &mut Context<Self>, master: &Upid) {
        match &self.id {
            None => ctx.send(
                master,
                RegisterSlaveMessage {
                    slave: Some(self.agent_info()),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
            ),
            Some(_) => {
                let msg = self.reregistration();
                ctx.send(master, msg);
            }
        }
    }

    pub(super) fn challenged(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticationChallengeMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(auth) = &self.authenticatee {
            ctx.send(&from, auth.answer(&msg.nonce, ctx.pid().as_str()));
        }
    }

    pub(super) fn authenticated(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        _msg: AuthenticationCompletedMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(auth) = self.authenticatee.as_mut() {
            tracing::info!(principal = %auth.principal(), "authenticated with the master");
            auth.completed();
            self.send_registration(ctx, &from);
        }
    }

    pub(super) fn authentication_failed(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticationFailedMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(auth) = self.authenticatee.as_mut() {
            // Retried with the registration backoff: the master's credentials may be fixed.
            tracing::error!(principal = %auth.principal(), reason = %msg.reason, "the master refused this agent's credential");
            auth.failed(&msg.reason);
        }
    }

    pub(super) fn reregistration(&self) -> ReregisterSlaveMessage {
        let agent_id = self.id.clone().map(|value| AgentId { value });
        let mut tasks = Vec::new();
        let mut executor_infos = Vec::new();
        let mut frameworks = Vec::new();
        for (fid, framework) in &self.frameworks {
            let mut info = framework.info.clone();
            info.id = Some(FrameworkId { value: fid.clone() });
            frameworks.push(info);
            for executor in framework.executors.values() {
                if let Some(info) = &executor.info {
                    executor_infos.push(info.clone());
                }
                for task in executor.live_tasks() {
                    tasks.push(Task {
                        name: task.info.name.clone(),
                        task_id: task.info.task_id.clone(),
                        framework_id: Some(FrameworkId { value: fid.clone() }),
                        executor_id: Some(ExecutorId {
                            value: executor.id.clone(),
                        }),
                        slave_id: agent_id.clone(),
                        state: task.state as i32,
                        resources: task.resources.to_proto(),
                        ..Default::default()
                    });
                }
            }
        }
        // Tasks that ended and whose end the framework has not acknowledged: their executors
        // may be gone, but they ran here.
        for ((fid, task_id), update) in &self.unacknowledged_ends {
            let state = update.status.as_ref().map_or(0, |s| s.state);
            tasks.push(Task {
                name: task_id.clone(),
                task_id: Some(TaskId {
                    value: task_id.clone(),
                }),
                framework_id: Some(FrameworkId { value: fid.clone() }),
                executor_id: update.executor_id.clone(),
                slave_id: agent_id.clone(),
                state,
                ..Default::default()
            });
        }
        ReregisterSlaveMessage {
            slave: Some(self.agent_info()),
            executor_infos,
            tasks,
            frameworks,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    pub(super) fn registered(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: SlaveRegisteredMessage,
    ) {
        self.on_registered(ctx, from, msg.slave_id, msg.registration_backoff_seconds);
    }

    pub(super) fn reregistered(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: SlaveReregisteredMessage,
    ) {
        // Who may send: the master, proven by its connection.
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.on_registered(ctx, from, msg.slave_id, msg.registration_backoff_seconds);
        self.reconcile_unlisted(ctx, msg.reconciliations);
    }

    /// The master asks about tasks it does not know that a framework believes run here (its
    /// explicit reconciliation after a master failover: the failed master's launch may never
    /// have arrived). Who may send: the master, proven by its connection, to a registered
    /// agent; between registrations the question is dropped and the framework asks again.
    pub(super) fn reconcile_asked(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: ReconcileTasksMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if self.registration != Registration::Registered {
            tracing::debug!("reconciliation asked between registrations: dropped");
            return;
        }
        self.reconcile_unlisted(ctx, vec![msg]);
    }

    /// Tasks the master placed here that the re-registration did not list. A launch that
    /// raced with the re-registration has arrived by now (it came first on the connection)
    /// and runs; the others never will: each is reported LOST, through the status update
    /// manager like any other update, so the master frees it and its framework hears.
    fn reconcile_unlisted(&mut self, ctx: &mut Context<Self>, asked: Vec<ReconcileTasksMessage>) {
        for reconcile in asked {
            let framework = reconcile.framework_id.text().to_owned();
            for status in reconcile.statuses {
                let task = status.task_id.text().to_owned();
                let known = self.executor_of(&framework, &task).is_some()
                    || self
                        .unacknowledged_ends
                        .contains_key(&(framework.clone(), task.clone()));
                if known || task.is_empty() {
                    continue;
                }
                tracing::warn!(%framework, %task, "a task the master placed here never arrived: reporting it lost");
                self.report_status(
                    ctx,
                    &framework,
                    &task,
                    &task,
                    TaskState::TaskLost,
                    Reason::TaskUnknown,
                    "the task is unknown to its agent: its launch never arrived".into(),
                    None,
                );
            }
        }
    }

    pub(super) fn on_registered(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        id: Option<AgentId>,
        backoff_advice: f64,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.take_backoff_advice(backoff_advice);
        let Some(id) = id.map(|a| a.value).filter(|v| !v.is_empty()) else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        if self.registration == Registration::Registered && self.id.as_deref() == Some(&id) {
            return; // an answer to a retried registration
        }
        tracing::info!(agent = %id, master = %from, "registered with the master");
        let new_id = self.id.as_deref() != Some(&id);
        self.id = Some(id);
        if new_id {
            self.checkpoint_agent();
        }
        self.registration = Registration::Registered;
        self.backoff.restart();
        self.pinged = true;
        let master = from.clone();
        self.sum
            .dispatch(move |sum, ctx| sum.set_master(ctx, master));
        self.arm_ping_check(ctx);
    }

    /// The master's advice for the first registration retry (see
    /// [`protos::RegistrationBackoff`]); a value that is not a number of seconds is refused.
    fn take_backoff_advice(&mut self, seconds: f64) {
        if !self.backoff.advise(seconds) {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(seconds, "refused the master's registration backoff advice");
        }
    }

    /// Checks for the master's pings one timeout from now, replacing any check pending: two
    /// checks would each reset what the other waits for, and one of them would find no ping
    /// in a window shorter than the master's interval.
    fn arm_ping_check(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.ping_check.take() {
            old.cancel();
        }
        self.ping_check = Some(ctx.delay(self.config.master_ping_timeout, Self::check_pings));
    }

    pub(super) fn ping(&mut self, ctx: &mut Context<Self>, from: Upid, msg: PingSlaveMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.take_backoff_advice(msg.registration_backoff_seconds);
        self.pinged = true;
        ctx.send(&from, PongSlaveMessage {});
    }

    pub(super) fn check_pings(&mut self, ctx: &mut Context<Self>) {
        self.ping_check = None;
        if self.registration != Registration::Registered {
            return;
        }
        if !self.pinged {
            self.metrics.inc(|m| &m.master_ping_timeouts);
            tracing::warn!(master = %self.config.master, timeout = ?self.config.master_ping_timeout, "no ping from the master; registering again");
            self.disconnected(ctx);
            return;
        }
        self.pinged = false;
        self.arm_ping_check(ctx);
    }

    pub(super) fn disconnected(&mut self, ctx: &mut Context<Self>) {
        self.registration = Registration::Disconnected;
        if let Some(auth) = self.authenticatee.as_mut() {
            auth.reset();
        }
        self.backoff.restart();
        ctx.delay(REGISTRATION_BACKOFF_MIN, |s: &mut Slave, ctx| {
            s.register(ctx)
        });
    }
}
