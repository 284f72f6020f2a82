//! Agent health (Mesos's slave observer): a ping every `ping_timeout`, and an agent that misses
//! `max_missed` pongs in a row is removed.

use super::Master;
use libactor::{Context, Upid};
use protos::internal::{PingSlaveMessage, PongSlaveMessage};

impl Master {
    /// The first registration retry, in seconds, this master advises its agents: the time a
    /// new leader takes to answer all of them, at [`super::AgentHealth::readmission_cost`]
    /// each (agents never wait less than Mesos's 1 s; see [`protos::RegistrationBackoff`]).
    pub(super) fn registration_backoff_advice(&self) -> f64 {
        self.health.readmission_cost.as_secs_f64() * self.books.agent_count() as f64
    }

    /// Starts pinging a newly (re-)registered agent: its registration counts as its first pong,
    /// so the first ping goes out one ping timeout later (a failover's burst of thousands of
    /// re-registrations is not doubled by as many pings).
    pub(super) fn watch_agent(&mut self, ctx: &mut Context<Self>, agent: String) {
        let Some(entry) = self.books.agent_mut(&agent) else {
            return;
        };
        entry.pong_received = true;
        ctx.delay(self.health.ping_timeout, move |m: &mut Master, ctx| {
            m.ping_timeout(ctx, agent)
        });
    }

    pub(super) fn ping(&mut self, ctx: &mut Context<Self>, agent: String) {
        let Some(entry) = self.books.agent_mut(&agent) else {
            return;
        };
        entry.pong_received = false;
        let pid = entry.pid().clone();
        // Armed before the ping leaves (see the status update manager).
        ctx.delay(self.health.ping_timeout, move |m: &mut Master, ctx| {
            m.ping_timeout(ctx, agent)
        });
        let advice = self.registration_backoff_advice();
        ctx.send(
            &pid,
            PingSlaveMessage {
                connected: true,
                registration_backoff_seconds: advice,
            },
        );
    }

    pub(super) fn ping_timeout(&mut self, ctx: &mut Context<Self>, agent: String) {
        let Some(entry) = self.books.agent_mut(&agent) else {
            return;
        };
        if entry.pong_received {
            entry.missed_pings = 0;
        } else {
            entry.missed_pings += 1;
            tracing::warn!(%agent, missed = entry.missed_pings, "agent missed a ping");
        }
        if entry.missed_pings >= self.health.max_missed {
            self.remove_agent(ctx, &agent, "agent did not answer pings");
        } else {
            self.ping(ctx, agent);
        }
    }

    pub(super) fn pong(&mut self, ctx: &mut Context<Self>, from: Upid, _msg: PongSlaveMessage) {
        let id = self.books.agent_id_by_pid(&from).cloned();
        let id = id.and_then(|id| self.sender_agent(ctx, &from, Some(&id)));
        match id.and_then(|id| self.books.agent_mut(&id)) {
            Some(entry) => entry.pong_received = true,
            None => self.metrics.inc(|m| &m.invalid_messages),
        }
    }
}
