//! What a master does with its registrar: persist admissions and removals before answering,
//! and, as a new leader, wait for the registry's agents and frameworks to come back.
//!
//! After a failover (Mesos's master recovery):
//! - agents in the registry are *recovered*: expected back. Those that have not re-registered
//!   within the agent re-registration timeout are marked unreachable in the registry and every
//!   framework is told (`LostSlaveMessage`); an unreachable agent may still come back later.
//! - frameworks in the registry are expected back within their `failover_timeout`, counted
//!   from the recovery and never shorter than the agents' window (a scheduler needs as long as
//!   an agent to find the new leader). One that does not come back is removed: its tasks on
//!   the agents that returned are killed and it leaves the registry.
//! - tasks an agent brings back for a framework the registry does not hold (removed meanwhile)
//!   are orphans: the agent is told to shut that framework down.
//!
//! Reconciliation answers for a task the master does not know by its agent: nothing while the
//! agent is still expected back, TASK_UNREACHABLE (TASK_LOST for frameworks that are not
//! partition-aware) once it is unreachable, TASK_LOST otherwise.

use crate::fast_hash::FastMap;
use std::time::Duration;

use libactor::Context;
use protos::internal::{LostSlaveMessage, ShutdownFrameworkMessage};
use protos::v1::{AgentId, AgentInfo, FrameworkId, FrameworkInfo};
use protos::IdText;
use tokio::sync::oneshot;

use super::reregistration::failover_timeout;
use super::Master;
use crate::registrar::{Operation, Registry};

/// How long a new leader waits for the registry's agents to re-register (Mesos's
/// `--agent_reregister_timeout` is 10 minutes; Keel's agents find a new leader in seconds).
pub const DEFAULT_AGENT_REREGISTER_TIMEOUT: Duration = Duration::from_secs(120);

/// The registry's agents and frameworks not back yet, and agents known unreachable.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    /// Agents expected to re-register.
    pub agents: FastMap<String, AgentInfo>,
    /// Frameworks expected to re-register.
    pub frameworks: FastMap<String, FrameworkInfo>,
    /// Unreachable agents and since when (seconds since the Unix epoch).
    pub unreachable: FastMap<String, f64>,
    /// Agents an operator marked gone, and since when: refused for ever.
    pub gone: FastMap<String, f64>,
    /// Agents being marked gone (the registry write is under way).
    pub marking_gone: crate::fast_hash::FastSet<String>,
}

impl Master {
    /// Starts waiting for the registry's agents and frameworks (called once, at start).
    pub(super) fn start_recovery(
        &mut self,
        ctx: &mut Context<Self>,
        registry: &Registry,
        agent_reregister_timeout: Duration,
    ) {
        for agent in registry.agents() {
            let Some(info) = &agent.info else { continue };
            let id = info.id.text().to_owned();
            if let Some(since) = agent.gone_since {
                self.recovery.gone.insert(id, since);
            } else if let Some(since) = agent.unreachable_since {
                self.recovery.unreachable.insert(id, since);
            } else {
                self.recovery.agents.insert(id, info.clone());
            }
        }
        for quota in registry.quotas() {
            let decoded = resources::Resources::from_proto(&quota.limits).and_then(|limits| {
                Ok((limits, resources::Resources::from_proto(&quota.guarantees)?))
            });
            match decoded {
                Ok((limits, guarantees)) => {
                    self.set_guarantee(&quota.role, guarantees);
                    self.set_quota_limits(ctx, &quota.role, limits);
                }
                Err(e) => {
                    tracing::error!(role = %quota.role, error = %e, "a quota in the registry does not decode; the role has none")
                }
            }
        }
        for info in registry.frameworks() {
            let id = info.id.text().to_owned();
            let timeout = failover_timeout(info).max(agent_reregister_timeout);
            self.recovery.frameworks.insert(id.clone(), info.clone());
            ctx.delay(timeout, move |m: &mut Master, ctx| {
                m.recovered_framework_timeout(ctx, &id)
            });
        }
        tracing::info!(
            agents = self.recovery.agents.len(),
            unreachable = self.recovery.unreachable.len(),
            gone = self.recovery.gone.len(),
            frameworks = self.recovery.frameworks.len(),
            timeout = ?agent_reregister_timeout,
            "recovered the registry; waiting for agents and frameworks to re-register"
        );
        if !self.recovery.agents.is_empty() {
            ctx.delay(agent_reregister_timeout, |m: &mut Master, ctx| {
                m.agent_reregister_timeout(ctx)
            });
        }
    }

    /// Changes the registry, then runs `then`; without a registrar (soft state only) runs it
    /// at once. If the registry cannot be written this master stops: another may lead.
    pub(super) fn persist(
        &mut self,
        ctx: &mut Context<Self>,
        op: Operation,
        then: impl FnOnce(&mut Master, &mut Context<Master>) + Send + 'static,
    ) {
        let Some(registrar) = &self.registrar else {
            then(self, ctx);
            return;
        };
        let (reply, answer) = oneshot::channel();
        registrar.dispatch(move |r, ctx| r.apply(ctx, op, reply));
        ctx.defer(answer, move |m: &mut Master, ctx, answer| match answer {
            Ok(Ok(())) => then(m, ctx),
            Ok(Err(e)) => m.registry_failed(ctx, &e.to_string()),
            Err(_) => m.registry_failed(ctx, "the registrar stopped"),
        });
    }

    fn registry_failed(&mut self, ctx: &mut Context<Self>, why: &str) {
        tracing::error!(%why, "the registry cannot be written; this master stops leading");
        ctx.metrics().counter("master/registry_failures").inc();
        ctx.terminate();
    }

    /// An agent came back (or registered anew under an id it had): it is expected no more.
    /// The registry is written only if the agent was unreachable, unknown, or changed.
    pub(super) fn agent_returned(&mut self, ctx: &mut Context<Self>, info: &AgentInfo) {
        let id = info.id.text();
        let recovered = self.recovery.agents.remove(id);
        let unreachable = self.recovery.unreachable.remove(id).is_some();
        if unreachable || recovered.as_ref() != Some(info) {
            self.persist(ctx, Operation::AdmitAgent(info.clone()), |_, _| {});
        }
    }

    /// A framework came back: it is expected no more.
    pub(super) fn framework_returned(&mut self, ctx: &mut Context<Self>, info: &FrameworkInfo) {
        self.recovery.frameworks.remove(info.id.text());
        self.persist(ctx, Operation::AddFramework(info.clone()), |_, _| {});
    }

    /// Whether tasks of `framework` brought back by an agent belong to no framework this master
    /// has or expects (only knowable with a registry).
    pub(super) fn is_orphan(&self, framework: &str) -> bool {
        self.registrar.is_some()
            && !self.books.has_framework(framework)
            && !self.recovery.frameworks.contains_key(framework)
    }

    /// Tells an agent to shut down a framework this master no longer has.
    pub(super) fn shut_down_orphan(
        &self,
        ctx: &mut Context<Self>,
        agent: &libactor::Upid,
        framework: &str,
    ) {
        tracing::warn!(%agent, %framework, "agent brought tasks of a removed framework; shutting it down");
        ctx.send(
            agent,
            ShutdownFrameworkMessage {
                framework_id: Some(FrameworkId {
                    value: framework.to_owned(),
                }),
            },
        );
    }

    /// An agent left the cluster without asking: unreachable until it comes back.
    pub(super) fn mark_unreachable(&mut self, ctx: &mut Context<Self>, agent: &str) {
        let since = ctx.node().clock().unix_seconds();
        self.recovery.unreachable.insert(agent.to_owned(), since);
        let op = Operation::MarkUnreachable {
            agent: agent.to_owned(),
            since,
        };
        self.persist(ctx, op, |_, _| {});
    }

    fn agent_reregister_timeout(&mut self, ctx: &mut Context<Self>) {
        let missing: Vec<String> = self.recovery.agents.drain().map(|(id, _)| id).collect();
        if missing.is_empty() {
            return;
        }
        tracing::warn!(
            agents = missing.len(),
            "agents did not re-register in time; marking them unreachable"
        );
        ctx.metrics()
            .counter("master/recovered_agents_unreachable")
            .add(missing.len() as u64);
        for agent in missing {
            self.mark_unreachable(ctx, &agent);
            for (_, f) in self.books.frameworks() {
                ctx.send(
                    &f.pid,
                    LostSlaveMessage {
                        slave_id: Some(AgentId {
                            value: agent.clone(),
                        }),
                    },
                );
            }
        }
    }

    fn recovered_framework_timeout(&mut self, ctx: &mut Context<Self>, framework: &str) {
        if self.recovery.frameworks.remove(framework).is_none() {
            return;
        }
        tracing::warn!(%framework, "framework did not re-register within its failover timeout; removing it");
        ctx.metrics()
            .counter("master/recovered_frameworks_removed")
            .inc();
        let mut agents = std::collections::BTreeSet::new();
        for (_, task) in self.books.remove_tasks_of(framework) {
            agents.insert(task.agent().to_owned());
            self.recover(framework, task.agent(), task.resources().clone(), None);
        }
        for agent in agents {
            if let Some(pid) = self.books.agent(&agent).map(|a| a.pid().clone()) {
                self.shut_down_orphan(ctx, &pid, framework);
            }
        }
        self.persist(
            ctx,
            Operation::RemoveFramework(framework.to_owned()),
            |_, _| {},
        );
    }

    /// Whether a task the master does not know may still come back with its agent (no answer
    /// to reconcile yet), its agent is here to ask, or its agent is unreachable.
    pub(super) fn unknown_task_agent(&self, agent: &str) -> UnknownTaskAgent {
        if self.recovery.gone.contains_key(agent) {
            UnknownTaskAgent::MarkedGone
        } else if self.books.agent(agent).is_some() {
            UnknownTaskAgent::Registered
        } else if self.recovery.agents.contains_key(agent) {
            UnknownTaskAgent::Expected
        } else if self.recovery.unreachable.contains_key(agent) {
            UnknownTaskAgent::Unreachable
        } else {
            UnknownTaskAgent::Gone
        }
    }
}

/// Where the agent of a task the master does not know stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnknownTaskAgent {
    /// Recovered from the registry, not back yet.
    Expected,
    /// Registered now, without the task: only the agent can tell whether a launch of it is
    /// still on its way there or never arrived (sent by a master that has since failed).
    Registered,
    /// Marked unreachable.
    Unreachable,
    /// Marked gone by an operator.
    MarkedGone,
    /// Not known at all.
    Gone,
}
