//! Quota, by scalar resource name: *limits*, the most a role may hold (Mesos 1.9's model), and
//! *guarantees*, what of a role's tasks is never revoked or preempted.
//!
//! One set of limits serves both ways of scheduling: the allocator offers a role only what its
//! limits leave (offers outstanding count, as in Mesos), and a transaction that would take a
//! role's tasks over its limits is refused (`transactions::over_limit`). `UPDATE_QUOTA` sets
//! roles' limits all or none, writes them to the registry first (a new leader keeps them) and
//! then rescinds the role's outstanding offers, so that what it is offered next fits. Lowering
//! a limit below what a role's tasks already hold needs `force`; its tasks keep running (Keel,
//! like Mesos, does not kill for quota) and it is offered nothing more until under the limit.
//! `--role-limit` gives roles the registry has no limits for their first limits.
//!
//! Guarantees are those of revocation and preemption (`--guarantee` gives the first ones):
//! tasks of a role within its guarantee are never revoked or preempted for others. Keel does
//! not hold unallocated resources back for unmet guarantees, as Mesos before 1.9 did; Mesos
//! 1.9 deprecated that for the model Keel follows, limits with priority-based preemption. A
//! guarantee may not exceed the role's limit for the same resource.
//!
//! Who may: the operator API lets only proven operators in (`operator` role); reads are open
//! to whoever the node lets in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use libactor::Context;
use protos::v1::quota::{QuotaConfig, QuotaInfo, QuotaStatus};
use protos::v1::value::Scalar;
use resources::Resources;
use tokio::sync::oneshot;

use super::operator::OperatorRefusal;
use super::registration::role_of;
use super::Master;
use crate::registrar::Operation;

/// A role name quota may be set for: Mesos's rules for role names (no nesting in quota).
fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role != "."
        && role != ".."
        && !role.starts_with('-')
        && !role
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '\u{8}')
}

/// A role's quota as resources.
#[derive(Debug, Clone, Default, PartialEq)]
struct Quota {
    limits: Resources,
    guarantees: Resources,
}

/// `config` as resources, or why it is not valid.
fn quota_of(config: &QuotaConfig) -> Result<Quota, OperatorRefusal> {
    let bad = |why: String| OperatorRefusal { status: 400, why };
    let role = &config.role;
    if !valid_role(role) {
        return Err(bad(format!("{role:?} is not a role quota can be set for")));
    }
    let scalars = |map: &HashMap<String, Scalar>| -> Result<Resources, OperatorRefusal> {
        let mut out = Resources::new();
        for (name, scalar) in map {
            if name == "ports" {
                return Err(bad(format!(
                    "role {role}: only scalar resources take quota, not {name}"
                )));
            }
            out = out
                .with_scalar(name, resources::UNRESERVED_ROLE, scalar.value)
                .map_err(|e| bad(format!("role {role}: {e}")))?;
        }
        Ok(out)
    };
    let quota = Quota {
        limits: scalars(&config.limits)?,
        guarantees: scalars(&config.guarantees)?,
    };
    for (name, guaranteed) in quota.guarantees.scalar_totals() {
        let limited = config.limits.contains_key(&name);
        if limited && guaranteed > quota.limits.scalar(&name) + 1e-9 {
            return Err(bad(format!(
                "role {role}: the guarantee of {guaranteed} {name} exceeds its limit {}",
                quota.limits.scalar(&name)
            )));
        }
    }
    Ok(quota)
}

/// `resources`' scalars as a quota map.
fn scalar_map(resources: Option<&Resources>) -> HashMap<String, Scalar> {
    resources
        .map(Resources::scalar_totals)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, Scalar { value }))
        .collect()
}

impl Master {
    /// Every role's quota, as `GET_QUOTA` answers.
    pub fn quota_status(&self) -> QuotaStatus {
        let guarantees = &self.revocations.policy.guarantees;
        let roles: BTreeSet<&String> = self.role_limits.keys().chain(guarantees.keys()).collect();
        let mut infos: Vec<QuotaInfo> = guarantees
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(role, guarantee)| QuotaInfo {
                role: role.clone(),
                principal: String::new(),
                guarantee: guarantee.to_proto(),
            })
            .collect();
        infos.sort_by(|a, b| a.role.cmp(&b.role));
        QuotaStatus {
            infos,
            configs: roles
                .into_iter()
                .map(|role| QuotaConfig {
                    role: role.clone(),
                    guarantees: scalar_map(guarantees.get(role)),
                    limits: scalar_map(self.role_limits.get(role)),
                })
                .collect(),
        }
    }

    /// Sets the quotas `configs` name, all or none (see the module docs); the receiver fires
    /// once they are durable and in force. Refused (`400`) for an invalid config, a role named
    /// twice, or, without `force`, a limit below what the role's tasks hold.
    pub fn update_quota(
        &mut self,
        ctx: &mut Context<Self>,
        operator: &str,
        force: bool,
        configs: Vec<QuotaConfig>,
    ) -> Result<oneshot::Receiver<()>, OperatorRefusal> {
        let mut updates: BTreeMap<String, Quota> = BTreeMap::new();
        for config in &configs {
            let quota = quota_of(config)?;
            if updates.insert(config.role.clone(), quota).is_some() {
                return Err(OperatorRefusal {
                    status: 400,
                    why: format!("role {} is named twice", config.role),
                });
            }
        }
        if !force {
            for (role, quota) in &updates {
                let held = self.held_by_tasks_of(role);
                for (name, most) in quota.limits.scalar_totals() {
                    if held.scalar(&name) > most + 1e-9 {
                        return Err(OperatorRefusal {
                            status: 400,
                            why: format!(
                                "role {role}'s tasks hold {} {name}, over the limit {most}; set force to apply it anyway",
                                held.scalar(&name)
                            ),
                        });
                    }
                }
            }
        }
        tracing::info!(%operator, roles = ?updates.keys().collect::<Vec<_>>(), "quota updated");
        let (done, durable) = oneshot::channel();
        let mut ops: Vec<Operation> = updates
            .iter()
            .map(|(role, quota)| Operation::SetQuota {
                role: role.clone(),
                limits: quota.limits.to_proto(),
                guarantees: quota.guarantees.to_proto(),
            })
            .collect();
        // The registrar writes in order: once the last is durable, all are.
        let last = ops.pop();
        for op in ops {
            self.persist(ctx, op, |_, _| {});
        }
        let apply = move |m: &mut Master, ctx: &mut Context<Master>| {
            for (role, quota) in updates {
                m.set_guarantee(&role, quota.guarantees);
                m.set_quota_limits(ctx, &role, quota.limits);
            }
            let _ = done.send(());
        };
        match last {
            Some(op) => self.persist(ctx, op, apply),
            None => apply(self, ctx),
        }
        Ok(durable)
    }

    /// Puts `role`'s limits in force (none lifts them) and rescinds its outstanding offers, so
    /// that what it is offered next fits them.
    pub(super) fn set_quota_limits(
        &mut self,
        ctx: &mut Context<Self>,
        role: &str,
        limits: Resources,
    ) {
        let totals = (!limits.is_empty()).then(|| limits.scalar_totals());
        if limits.is_empty() {
            self.role_limits.remove(role);
        } else {
            self.role_limits.insert(role.to_owned(), limits);
        }
        let owned = role.to_owned();
        self.tell_allocator("allocator refused a quota", move |a| {
            crate::allocator::Allocator::set_quota_limits(a, &owned, totals);
            Ok(())
        });
        let frameworks: Vec<String> = self
            .books
            .frameworks()
            .filter(|(_, f)| role_of(&f.info) == role)
            .map(|(id, _)| id.clone())
            .collect();
        let offers = self
            .books
            .take_offers_where(|o| frameworks.contains(&o.framework));
        self.rescind(ctx, offers);
    }

    /// Sets what of `role`'s tasks is never revoked or preempted (none lifts it).
    pub(super) fn set_guarantee(&mut self, role: &str, guarantee: Resources) {
        let guarantees = &mut self.revocations.policy.guarantees;
        if guarantee.is_empty() {
            guarantees.remove(role);
        } else {
            guarantees.insert(role.to_owned(), guarantee);
        }
    }

    /// Sets the limits of roles that have none yet (`--role-limit`: first limits; quotas in the
    /// registry, set by operators, win).
    pub fn set_role_limits(&mut self, ctx: &mut Context<Self>, limits: HashMap<String, Resources>) {
        for (role, limits) in limits {
            if !self.role_limits.contains_key(&role) {
                self.set_quota_limits(ctx, &role, limits);
            }
        }
    }

    /// What the tasks of `role`'s frameworks hold, scalars only.
    fn held_by_tasks_of(&self, role: &str) -> Resources {
        let mut held = Resources::new();
        for ((framework, _), task) in self.books.tasks() {
            if self
                .books
                .framework(framework)
                .is_some_and(|f| role_of(&f.info) == role)
            {
                let _ = held.add_scalars(task.resources());
            }
        }
        held
    }
}
