//! What an operator may change through the operator API (`POST /api/v1`, served by the API
//! process, which calls these on the master): teardowns, role weights, and Mesos's
//! maintenance primitives mapped onto Keel's drains.
//!
//! Maintenance: the schedule names machines by hostname (Keel drains hostnames); a scheduled
//! machine is *draining* until `START_MAINTENANCE` takes it *down* (drained: out of offers, its
//! tasks killed with `REASON_AGENT_DRAINING`), and `STOP_MAINTENANCE` brings it back and takes
//! it off the schedule, as in Mesos. A machine Autopilot drained for repair is down too. Like
//! drains, the schedule is soft state (Mesos keeps it in the registry): a new leading master
//! starts with none. Keel makes no inverse offers, so frameworks learn of maintenance only
//! when their tasks are killed.
//!
//! Who may: the API process lets only proven operators in; teardowns are checked against
//! `--acls` here, where the framework's principal is known.

use std::collections::BTreeSet;

use authentication::acls::Action;
use libactor::Context;
use protos::v1::maintenance::{cluster_status::DrainingMachine, ClusterStatus, Schedule};
use protos::v1::MachineId;

use super::Master;
use crate::allocator::Allocator as _;

/// Why an operator's change was refused: an HTTP status and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRefusal {
    /// 400 for a bad request, 403 for one the ACLs refuse.
    pub status: u16,
    /// What was wrong.
    pub why: String,
}

impl OperatorRefusal {
    fn bad(why: impl Into<String>) -> OperatorRefusal {
        OperatorRefusal {
            status: 400,
            why: why.into(),
        }
    }
}

/// The most machines a maintenance schedule may name.
pub const MAX_SCHEDULED_MACHINES: usize = 100_000;

/// The hostnames of `machines`, refusing a machine named by IP alone.
fn hostnames(machines: &[MachineId]) -> Result<Vec<String>, OperatorRefusal> {
    machines
        .iter()
        .map(|m| {
            if m.hostname.is_empty() {
                Err(OperatorRefusal::bad(format!(
                    "machine {:?} has no hostname: Keel names machines by hostname",
                    m.ip
                )))
            } else {
                Ok(m.hostname.clone())
            }
        })
        .collect()
}

/// Refuses weights that are not positive numbers, or of no named role.
pub fn validate_weights(weights: &[(String, f64)]) -> Result<(), OperatorRefusal> {
    match weights
        .iter()
        .find(|(role, w)| role.is_empty() || !w.is_finite() || *w <= 0.0)
    {
        Some((role, w)) => Err(OperatorRefusal::bad(format!(
            "role {role:?}: a weight must be a positive number, not {w}"
        ))),
        None => Ok(()),
    }
}

impl Master {
    /// Tears down framework `id` for `operator` (if the ACLs let that operator tear down the
    /// framework's principal): its scheduler is told, its tasks killed, its resources freed.
    pub fn teardown_framework(
        &mut self,
        ctx: &mut Context<Self>,
        operator: &str,
        id: &str,
    ) -> Result<(), OperatorRefusal> {
        let Some(framework) = self.books.framework(id) else {
            return Err(OperatorRefusal::bad(format!(
                "no framework {id} is registered"
            )));
        };
        let principal = framework.info.principal.clone();
        let scheduler = framework.pid.clone();
        if let Some(why) = self.acls_refusal(Action::TeardownFramework, Some(operator), &principal)
        {
            self.metrics.inc(|m| &m.operator_requests_refused);
            return Err(OperatorRefusal { status: 403, why });
        }
        tracing::info!(framework = %id, %operator, "framework torn down by an operator");
        ctx.send(
            &scheduler,
            protos::internal::FrameworkErrorMessage {
                message: format!("framework {id} was torn down by operator {operator}"),
            },
        );
        self.remove_framework(ctx, id);
        Ok(())
    }

    /// The hostname of registered agent `id`.
    pub fn agent_hostname(&self, id: &str) -> Option<String> {
        self.books.agent(id).map(|a| a.info.hostname.clone())
    }

    /// Sets DRF weights of roles (from the next allocation on); see [`validate_weights`].
    pub fn set_weights(&mut self, weights: Vec<(String, f64)>) -> Result<(), OperatorRefusal> {
        validate_weights(&weights)?;
        self.tell_allocator("allocator refused a weight", move |a| {
            for (role, weight) in &weights {
                a.set_weight(role, *weight);
            }
            Ok(())
        });
        Ok(())
    }

    /// The maintenance schedule.
    pub fn maintenance_schedule(&self) -> Schedule {
        self.schedule.clone()
    }

    /// Replaces the maintenance schedule. A machine may be in one window only, and a machine
    /// that is down must stay scheduled until `STOP_MAINTENANCE`.
    pub fn update_maintenance_schedule(
        &mut self,
        schedule: Schedule,
    ) -> Result<(), OperatorRefusal> {
        let mut seen = BTreeSet::new();
        for window in &schedule.windows {
            if window.unavailability.is_none() {
                return Err(OperatorRefusal::bad("a window without 'unavailability'"));
            }
            for hostname in hostnames(&window.machine_ids)? {
                if !seen.insert(hostname.clone()) {
                    return Err(OperatorRefusal::bad(format!(
                        "machine {hostname} is in more than one window"
                    )));
                }
            }
        }
        if seen.len() > MAX_SCHEDULED_MACHINES {
            return Err(OperatorRefusal::bad(format!(
                "a schedule may name at most {MAX_SCHEDULED_MACHINES} machines"
            )));
        }
        if let Some(down) = self
            .scheduled_hostnames()
            .find(|h| self.is_drained(h) && !seen.contains(h.as_str()))
        {
            return Err(OperatorRefusal::bad(format!(
                "machine {down} is down: STOP_MAINTENANCE before taking it off the schedule"
            )));
        }
        self.schedule = schedule;
        Ok(())
    }

    fn scheduled_hostnames(&self) -> impl Iterator<Item = String> + '_ {
        self.schedule
            .windows
            .iter()
            .flat_map(|w| w.machine_ids.iter().map(|m| m.hostname.clone()))
    }

    /// Takes scheduled `machines` down: each is drained, its tasks killed.
    pub fn start_maintenance(
        &mut self,
        ctx: &mut Context<Self>,
        machines: &[MachineId],
    ) -> Result<(), OperatorRefusal> {
        let hostnames = hostnames(machines)?;
        let scheduled: BTreeSet<String> = self.scheduled_hostnames().collect();
        if let Some(h) = hostnames.iter().find(|h| !scheduled.contains(*h)) {
            return Err(OperatorRefusal::bad(format!(
                "machine {h} is not in the maintenance schedule"
            )));
        }
        for hostname in hostnames {
            self.drain_machine(ctx, &hostname, true, "maintenance")
                .map_err(|e| OperatorRefusal::bad(e.to_string()))?;
        }
        Ok(())
    }

    /// Brings `machines` (down) back into offers and takes them off the schedule.
    pub fn stop_maintenance(
        &mut self,
        ctx: &mut Context<Self>,
        machines: &[MachineId],
    ) -> Result<(), OperatorRefusal> {
        let hostnames = hostnames(machines)?;
        if let Some(h) = hostnames.iter().find(|h| !self.is_drained(h)) {
            return Err(OperatorRefusal::bad(format!("machine {h} is not down")));
        }
        for hostname in &hostnames {
            self.reactivate_machine(ctx, hostname);
        }
        for window in &mut self.schedule.windows {
            window
                .machine_ids
                .retain(|m| !hostnames.contains(&m.hostname));
        }
        self.schedule.windows.retain(|w| !w.machine_ids.is_empty());
        Ok(())
    }

    /// Where each machine stands: scheduled and up (draining), or down (drained, for
    /// maintenance or by Autopilot).
    pub fn maintenance_status(&self) -> ClusterStatus {
        let machine = |hostname: String| MachineId {
            hostname,
            ip: String::new(),
        };
        ClusterStatus {
            draining_machines: self
                .scheduled_hostnames()
                .filter(|h| !self.is_drained(h))
                .map(|h| DrainingMachine {
                    id: Some(machine(h)),
                })
                .collect(),
            down_machines: self
                .drained_machines()
                .into_iter()
                .map(|(h, _)| machine(h))
                .collect(),
        }
    }
}
