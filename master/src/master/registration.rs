//! Registration: agents and frameworks admitted (durably, with a registrar) and told their
//! ids; retried registrations answered again and changed nothing; refusals explained.

use libactor::{Context, Upid};
use protos::internal::{
    FrameworkRegisteredMessage, RegisterFrameworkMessage, RegisterSlaveMessage,
    SlaveRegisteredMessage,
};
use protos::v1::{AgentId, AgentInfo, FrameworkId, FrameworkInfo};
use resources::Resources;

use crate::allocator::Allocator;
use crate::registrar::Operation;

use super::books::FrameworkEntry;
use super::{Master, Registrant};
use authentication::acls::Action;

/// A framework's role: the one it names, or `*`.
pub(crate) fn role_of(info: &FrameworkInfo) -> &str {
    if info.role.is_empty() {
        "*"
    } else {
        &info.role
    }
}

impl Master {
    /// Admits the scheduler at `from` (authenticated when the policy asks) and stamps the
    /// principal it proved on its `info`; refuses it, telling it why, otherwise.
    pub(super) fn admitted_scheduler(
        &mut self,
        ctx: &mut Context<Self>,
        from: &Upid,
        mut info: FrameworkInfo,
    ) -> Option<FrameworkInfo> {
        match self.admit(ctx, from, Registrant::Framework, &info.principal) {
            Ok(principal) => {
                if let Some(p) = principal {
                    info.principal = p;
                }
                let principal = Some(info.principal.as_str()).filter(|p| !p.is_empty());
                let refusal =
                    self.acls_refusal(Action::RegisterFramework, principal, role_of(&info));
                if let Some(why) = refusal {
                    self.refuse_framework(ctx, from, &why);
                    return None;
                }
                Some(info)
            }
            Err(why) => {
                self.refuse_framework(ctx, from, &why);
                None
            }
        }
    }

    pub(super) fn register_slave(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: RegisterSlaveMessage,
    ) {
        let principal = match self.admit(ctx, &from, Registrant::Agent, "") {
            Ok(principal) => principal,
            Err(why) => {
                self.metrics.inc(|m| &m.registrations_refused);
                tracing::warn!(%from, %why, "refused an agent registration");
                return;
            }
        };
        let info = msg.slave.unwrap_or_default();
        let total = match validate_agent(&info) {
            Ok(total) => total,
            Err(why) => {
                self.metrics.inc(|m| &m.invalid_messages);
                tracing::warn!(%from, %why, "refused an agent registration");
                return;
            }
        };
        if let Some(id) = self.books.agent_id_by_pid(&from) {
            // A retried registration: answer again, change nothing.
            ctx.send(
                &from,
                SlaveRegisteredMessage {
                    slave_id: Some(AgentId { value: id.clone() }),
                    registration_backoff_seconds: self.registration_backoff_advice(),
                },
            );
            return;
        }
        if !self.admitting.insert(from.clone()) {
            return; // a retry while its admission is being written
        }
        let id = self.next("S");
        let mut info = info;
        info.id = Some(AgentId { value: id.clone() });
        self.persist(ctx, Operation::AdmitAgent(info.clone()), move |m, ctx| {
            m.admitting.remove(&from);
            m.admit_agent(ctx, from, id, info, total, principal);
        });
    }

    /// Adds an agent whose admission is durable, and tells it its id.
    pub(super) fn admit_agent(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        id: String,
        info: AgentInfo,
        total: Resources,
        principal: Option<String>,
    ) {
        tracing::info!(agent = %id, %from, resources = %total, principal = principal.as_deref().unwrap_or(""), "agent registered");
        self.directory.insert(&from, &info.hostname);
        if let Err(e) = self.books.add_agent(&id, from.clone(), info, total.clone()) {
            tracing::error!(agent = %id, error = %e, "a fresh agent id is taken");
            return;
        }
        if let Some(entry) = self.books.agent_mut(&id) {
            entry.principal = principal;
        }
        self.watch_agent(ctx, id.clone());
        self.metrics.inc(|m| &m.agents_registered);
        self.add_to_allocator(&id, total, Vec::new());
        ctx.send(
            &from,
            SlaveRegisteredMessage {
                slave_id: Some(AgentId { value: id }),
                registration_backoff_seconds: self.registration_backoff_advice(),
            },
        );
    }

    pub(super) fn register_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: RegisterFrameworkMessage,
    ) {
        let Some(mut info) = self.admitted_scheduler(ctx, &from, msg.framework.unwrap_or_default())
        else {
            return;
        };
        if info.name.trim().is_empty() || info.user.trim().is_empty() {
            self.metrics.inc(|m| &m.invalid_messages);
            tracing::warn!(%from, "refused a framework registration without a name or user");
            return;
        }
        let role = role_of(&info).to_owned();
        if let Some((id, _)) = self.books.frameworks().find(|(_, f)| f.pid == from) {
            // A retried registration: answer again, change nothing.
            let reply = FrameworkRegisteredMessage {
                framework_id: Some(FrameworkId { value: id.clone() }),
                master_info: Some(self.info(ctx)),
            };
            ctx.send(&from, reply);
            return;
        }
        if !self.admitting.insert(from.clone()) {
            return; // a retry while its admission is being written
        }
        let id = self.next("F");
        info.id = Some(FrameworkId { value: id.clone() });
        self.persist(ctx, Operation::AddFramework(info.clone()), move |m, ctx| {
            m.admitting.remove(&from);
            m.admit_framework(ctx, from, id, info, role);
        });
    }

    /// Adds a framework whose admission is durable, and tells its scheduler its id.
    pub(super) fn admit_framework(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        id: String,
        info: FrameworkInfo,
        role: String,
    ) {
        tracing::info!(framework = %id, name = %info.name, %role, "framework registered");
        ctx.link(&from);
        if let Err(e) = self
            .books
            .add_framework(&id, FrameworkEntry::new(from.clone(), info))
        {
            tracing::error!(framework = %id, error = %e, "a fresh framework id is taken");
            return;
        }
        self.metrics.inc(|m| &m.frameworks_registered);
        let framework = id.clone();
        self.tell_allocator("allocator refused a new framework", move |a| {
            a.add_framework(&framework, &role, false)
        });
        let master_info = self.info(ctx);
        ctx.send(
            &from,
            FrameworkRegisteredMessage {
                framework_id: Some(FrameworkId { value: id }),
                master_info: Some(master_info),
            },
        );
    }

    /// Tells a scheduler its registration is refused (its driver aborts with the reason).
    pub(super) fn refuse_framework(&self, ctx: &mut Context<Self>, from: &Upid, why: &str) {
        self.metrics.inc(|m| &m.registrations_refused);
        tracing::warn!(%from, %why, "refused a framework registration");
        ctx.send(
            from,
            protos::internal::FrameworkErrorMessage {
                message: format!("registration refused: {why}"),
            },
        );
    }
}

/// An agent's resources, if its registration is acceptable.
pub(super) fn validate_agent(info: &AgentInfo) -> Result<Resources, String> {
    if info.hostname.trim().is_empty() {
        return Err("agent has no hostname".into());
    }
    let total = Resources::from_proto(&info.resources).map_err(|e| e.to_string())?;
    if total.is_empty() {
        return Err("agent offers no resources".into());
    }
    Ok(total)
}
