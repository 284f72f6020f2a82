//! Limits that keep automatic repair from making an outage worse (Autopilot, Isard 2007): at most a few
//! machines in repair at once across the cluster, and never fewer healthy machines of a type
//! than its floor. A machine whose errors persist while a limit is reached waits in the repair
//! queue, still serving, until repairs finish.

use std::collections::HashMap;

use protos::autopilot::{HealthState, MachineRecord};

/// The cluster's repair limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairLimits {
    /// Fraction of all machines that may be in repair (Failure or Probation) at once.
    pub max_fraction: f64,
    /// Healthy machines each machine type keeps at least (types not listed: none).
    pub floors: HashMap<String, usize>,
}

impl Default for RepairLimits {
    fn default() -> Self {
        RepairLimits {
            max_fraction: 0.05,
            floors: HashMap::new(),
        }
    }
}

/// Why a failing machine may not be taken out of service now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Deferral {
    /// As many machines as the cap allows are in repair.
    #[error("{in_repair} machines in repair, the cap is {cap}")]
    Cap {
        /// Machines in repair now.
        in_repair: usize,
        /// The cap.
        cap: usize,
    },
    /// Its type would fall below its floor of healthy machines.
    #[error("machine type {machine_type} keeps at least {floor} healthy machines ({healthy} now)")]
    Floor {
        /// The machine type.
        machine_type: String,
        /// Its floor.
        floor: usize,
        /// Its healthy machines now.
        healthy: usize,
    },
}

impl RepairLimits {
    /// Machines that may be in repair at once among `machines`: max(1, fraction × machines).
    pub fn cap(&self, machines: usize) -> usize {
        ((machines as f64 * self.max_fraction).floor() as usize).max(1)
    }

    /// Whether `candidate` (Healthy now) may be declared failed among `machines`.
    pub fn admit(
        &self,
        machines: &[&MachineRecord],
        candidate: &MachineRecord,
    ) -> Result<(), Deferral> {
        let live: Vec<&&MachineRecord> = machines.iter().filter(|m| !m.replaced).collect();
        let in_repair = live
            .iter()
            .filter(|m| m.state() != HealthState::Healthy)
            .count();
        let cap = self.cap(live.len());
        if candidate.state() == HealthState::Healthy && in_repair >= cap {
            return Err(Deferral::Cap { in_repair, cap });
        }
        if let Some(&floor) = self.floors.get(&candidate.machine_type) {
            let healthy = live
                .iter()
                .filter(|m| {
                    m.machine_type == candidate.machine_type && m.state() == HealthState::Healthy
                })
                .count();
            let after = healthy - usize::from(candidate.state() == HealthState::Healthy);
            if after < floor {
                return Err(Deferral::Floor {
                    machine_type: candidate.machine_type.clone(),
                    floor,
                    healthy,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(id: usize, machine_type: &str, state: HealthState) -> MachineRecord {
        MachineRecord {
            id: format!("m{id}"),
            machine_type: machine_type.into(),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn the_cap_is_five_percent_and_at_least_one() {
        let limits = RepairLimits::default();
        assert_eq!(limits.cap(3), 1);
        assert_eq!(limits.cap(100), 5);
        assert_eq!(limits.cap(1000), 50);
    }

    #[test]
    fn a_failure_waits_while_the_cap_is_reached() {
        let limits = RepairLimits::default();
        let mut all: Vec<MachineRecord> = (0..40)
            .map(|i| machine(i, "web", HealthState::Healthy))
            .collect();
        all[0].state = HealthState::Failure as i32;
        all[1].state = HealthState::Probation as i32;
        let refs: Vec<&MachineRecord> = all.iter().collect();
        assert_eq!(
            limits.admit(&refs, &all[5]),
            Err(Deferral::Cap {
                in_repair: 2,
                cap: 2
            })
        );
        // A machine already in Probation failing again is not a new one in repair.
        assert_eq!(limits.admit(&refs, &all[1]), Ok(()));
    }

    #[test]
    fn the_floor_of_healthy_machines_holds() {
        let limits = RepairLimits {
            max_fraction: 1.0,
            floors: [("db".to_owned(), 2)].into(),
        };
        let all = [
            machine(0, "db", HealthState::Healthy),
            machine(1, "db", HealthState::Healthy),
            machine(2, "db", HealthState::Failure),
            machine(3, "web", HealthState::Healthy),
        ];
        let refs: Vec<&MachineRecord> = all.iter().collect();
        assert!(matches!(
            limits.admit(&refs, &all[0]),
            Err(Deferral::Floor { healthy: 2, .. })
        ));
        assert_eq!(limits.admit(&refs, &all[3]), Ok(()));
    }
}
