//! Rolling deployment (Autopilot, Isard 2007) as a state machine over the device manager's records: a
//! machine type moves to a manifest one scale unit at a time. A unit's machines enter
//! Probation and switch; the rollout goes on only once at least the threshold of the unit is
//! Healthy again on the new version. If that can no longer happen (too many of the unit failed
//! the new version, or the unit took too long), every updated unit goes back to the previous
//! manifest.
//!
//! ```text
//!  Running(unit k) --threshold Healthy--> Running(unit k+1) ... --last unit--> Succeeded
//!       |  too many failed / unit timeout
//!       v
//!  RollingBack --every updated machine back on the previous version--> RolledBack
//! ```
//!
//! The functions here decide; the device manager carries decisions out (messages, records).

use std::collections::BTreeMap;

use protos::autopilot::{HealthState, MachineRecord, Manifest, Rollout, RolloutState, RolloutUnit};

/// Default machines per scale unit.
pub const DEFAULT_UNIT_SIZE: u32 = 500;
/// Default fraction of a unit that must be Healthy on the new version.
pub const DEFAULT_HEALTHY_THRESHOLD: f64 = 0.9;

/// What a rollout should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing yet.
    Wait,
    /// The current unit made it: start the next one.
    Advance,
    /// The last unit made it.
    Succeeded,
    /// Stop and take every updated unit back, for this reason.
    RollBack(String),
    /// Every updated machine is back on the previous version.
    RolledBack,
}

/// Why a rollout could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No machine of the manifest's type.
    #[error("no machine of type {0:?}")]
    NoMachines(String),
    /// Unit size 0, or a threshold outside (0, 1].
    #[error("{0}")]
    Invalid(String),
}

/// Plans rollout `id` of `manifest` over its type's machines (sorted by id), in units of
/// `unit_size`.
pub fn plan(
    id: u64,
    manifest: Manifest,
    previous: Option<Manifest>,
    machines: &BTreeMap<String, MachineRecord>,
    unit_size: u32,
    healthy_threshold: f64,
    now: f64,
) -> Result<Rollout, PlanError> {
    if unit_size == 0 {
        return Err(PlanError::Invalid("unit size must be at least 1".into()));
    }
    if !(healthy_threshold > 0.0 && healthy_threshold <= 1.0) {
        return Err(PlanError::Invalid(
            "healthy threshold must be in (0, 1]".into(),
        ));
    }
    let targets: Vec<String> = machines
        .values()
        // Machines in Failure are the repair's; they catch up once Healthy again.
        .filter(|m| {
            m.machine_type == manifest.machine_type
                && !m.replaced
                && m.state() != HealthState::Failure
        })
        .map(|m| m.id.clone())
        .collect();
    if targets.is_empty() {
        return Err(PlanError::NoMachines(manifest.machine_type.clone()));
    }
    let units = targets
        .chunks(unit_size as usize)
        .map(|c| RolloutUnit {
            machines: c.to_vec(),
        })
        .collect();
    Ok(Rollout {
        id,
        manifest: Some(manifest),
        previous,
        unit_size,
        healthy_threshold,
        units,
        current_unit: 0,
        state: RolloutState::Running as i32,
        started: now,
        unit_started: now,
        detail: String::new(),
        failed: Vec::new(),
    })
}

/// Machines of `unit` that must be Healthy on the new version to go on.
pub fn needed(rollout: &Rollout, unit: &RolloutUnit) -> usize {
    let n = unit.machines.len();
    ((rollout.healthy_threshold * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// Machines of `unit` Healthy on `version` since the unit began.
pub fn healthy_on(
    rollout: &Rollout,
    unit: &RolloutUnit,
    version: &str,
    machines: &BTreeMap<String, MachineRecord>,
) -> usize {
    unit.machines
        .iter()
        .filter_map(|id| machines.get(id))
        .filter(|m| {
            m.state() == HealthState::Healthy
                && m.since >= rollout.unit_started
                && m.manifest_version == version
        })
        .count()
}

/// The machines updated so far (every unit up to the current one).
pub fn updated(rollout: &Rollout) -> impl Iterator<Item = &String> {
    rollout
        .units
        .iter()
        .take(rollout.current_unit as usize + 1)
        .flat_map(|u| u.machines.iter())
}

/// What `rollout` should do now, given the machines' records at `now` and how long a unit
/// may take.
pub fn assess(
    rollout: &Rollout,
    machines: &BTreeMap<String, MachineRecord>,
    unit_timeout: f64,
    now: f64,
) -> Step {
    let target = rollout.manifest.as_ref().map_or("", |m| m.version.as_str());
    match rollout.state() {
        RolloutState::Running => {
            let Some(unit) = rollout.units.get(rollout.current_unit as usize) else {
                return Step::Succeeded;
            };
            let needed = needed(rollout, unit);
            let failed = rollout
                .failed
                .iter()
                .filter(|f| unit.machines.contains(f))
                .count();
            if failed > unit.machines.len() - needed {
                return Step::RollBack(format!(
                    "{failed} of {} machines in unit {} failed version {target}: {}",
                    unit.machines.len(),
                    rollout.current_unit + 1,
                    rollout.failed.join(", ")
                ));
            }
            if healthy_on(rollout, unit, target, machines) >= needed {
                return if (rollout.current_unit as usize) + 1 < rollout.units.len() {
                    Step::Advance
                } else {
                    Step::Succeeded
                };
            }
            if now - rollout.unit_started > unit_timeout {
                return Step::RollBack(format!(
                    "unit {} not Healthy on version {target} within {unit_timeout:.0} s",
                    rollout.current_unit + 1
                ));
            }
            Step::Wait
        }
        RolloutState::RollingBack => {
            let previous = rollout.previous.as_ref().map_or("", |m| m.version.as_str());
            let back = updated(rollout)
                .filter_map(|id| machines.get(id))
                .all(|m| m.replaced || m.manifest_version == previous);
            if back {
                Step::RolledBack
            } else {
                Step::Wait
            }
        }
        RolloutState::Succeeded | RolloutState::RolledBack => Step::Wait,
    }
}

/// Whether `rollout` is under way (a new one must wait).
pub fn in_progress(rollout: &Rollout) -> bool {
    matches!(
        rollout.state(),
        RolloutState::Running | RolloutState::RollingBack
    )
}

/// `Running`, `Succeeded`, `RollingBack`, `RolledBack`.
pub fn state_name(state: RolloutState) -> &'static str {
    match state {
        RolloutState::Running => "Running",
        RolloutState::Succeeded => "Succeeded",
        RolloutState::RollingBack => "RollingBack",
        RolloutState::RolledBack => "RolledBack",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machines(n: usize) -> BTreeMap<String, MachineRecord> {
        (0..n)
            .map(|i| {
                let id = format!("m{i:02}");
                let m = MachineRecord {
                    id: id.clone(),
                    machine_type: "web".into(),
                    state: HealthState::Healthy as i32,
                    manifest_version: "1".into(),
                    ..Default::default()
                };
                (id, m)
            })
            .collect()
    }

    fn manifest(version: &str) -> Manifest {
        Manifest {
            name: "app".into(),
            version: version.into(),
            machine_type: "web".into(),
            ..Default::default()
        }
    }

    #[test]
    fn advances_when_the_threshold_is_healthy_and_rolls_back_when_it_cannot_be() {
        let mut ms = machines(10);
        let mut r = plan(1, manifest("2"), Some(manifest("1")), &ms, 4, 0.75, 100.0).unwrap();
        assert_eq!(r.units.len(), 3, "4 + 4 + 2");
        assert_eq!(needed(&r, &r.units[0]), 3);
        assert_eq!(
            assess(&r, &ms, 60.0, 101.0),
            Step::Wait,
            "healthy before the unit began"
        );
        for id in ["m00", "m01", "m02"] {
            let m = ms.get_mut(id).unwrap();
            m.manifest_version = "2".into();
            m.since = 130.0;
        }
        assert_eq!(assess(&r, &ms, 60.0, 131.0), Step::Advance);
        r.current_unit = 1;
        r.unit_started = 131.0;
        r.failed = vec!["m04".into(), "m05".into()];
        assert!(
            matches!(assess(&r, &ms, 60.0, 132.0), Step::RollBack(why) if why.contains("2 of 4"))
        );
        r.failed.clear();
        assert!(
            matches!(assess(&r, &ms, 60.0, 200.0), Step::RollBack(why) if why.contains("within 60"))
        );

        r.set_state(RolloutState::RollingBack);
        assert_eq!(
            assess(&r, &ms, 60.0, 201.0),
            Step::Wait,
            "m00..m02 still on 2"
        );
        for id in ["m00", "m01", "m02"] {
            ms.get_mut(id).unwrap().manifest_version = "1".into();
        }
        assert_eq!(assess(&r, &ms, 60.0, 202.0), Step::RolledBack);
    }

    #[test]
    fn bad_plans_are_refused() {
        let ms = machines(2);
        assert!(plan(1, manifest("2"), None, &ms, 0, 0.5, 0.0).is_err());
        assert!(plan(1, manifest("2"), None, &ms, 1, 1.5, 0.0).is_err());
        let other = Manifest {
            machine_type: "db".into(),
            ..manifest("2")
        };
        assert_eq!(
            plan(1, other, None, &ms, 1, 0.5, 0.0),
            Err(PlanError::NoMachines("db".into()))
        );
    }
}
