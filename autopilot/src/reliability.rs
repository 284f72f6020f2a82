//! How far a machine can be trusted with long-running work, read from the device manager's
//! record of it: what a shared-state service scheduler ranks machines by, so that services go
//! to machines with a clean history and flaky ones are left to batch work (seed 000's notes on
//! Omega). Higher is better; a healthy machine that never failed scores 0.

use protos::autopilot::{HealthState, MachineRecord};

/// What a machine loses while it is not Healthy (in Failure or on Probation after a repair):
/// more than any history of past failures costs, so a healthy machine always ranks above it.
pub const UNHEALTHY_PENALTY: i64 = 1_000;

/// `record`'s score: minus its failures in the (bounded) history, and minus
/// [`UNHEALTHY_PENALTY`] while it is not Healthy.
pub fn reliability(record: &MachineRecord) -> i64 {
    let failures = record
        .history
        .iter()
        .filter(|e| e.state() == HealthState::Failure)
        .count() as i64;
    let now = if record.state() == HealthState::Healthy {
        0
    } else {
        UNHEALTHY_PENALTY
    };
    -(failures + now)
}

/// Failures in `record`'s (bounded) history.
pub fn failures(record: &MachineRecord) -> usize {
    record
        .history
        .iter()
        .filter(|e| e.state() == HealthState::Failure)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protos::autopilot::MachineEvent;

    fn event(state: HealthState) -> MachineEvent {
        MachineEvent {
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_clean_machine_ranks_above_one_that_failed_and_both_above_an_unhealthy_one() {
        let clean = MachineRecord::default();
        let flaky = MachineRecord {
            history: vec![
                event(HealthState::Failure),
                event(HealthState::Probation),
                event(HealthState::Healthy),
                event(HealthState::Failure),
                event(HealthState::Probation),
                event(HealthState::Healthy),
            ],
            ..Default::default()
        };
        let on_probation = MachineRecord {
            state: HealthState::Probation as i32,
            history: vec![event(HealthState::Failure), event(HealthState::Probation)],
            ..Default::default()
        };
        assert_eq!(reliability(&clean), 0);
        assert_eq!(reliability(&flaky), -2);
        assert_eq!(failures(&flaky), 2);
        assert_eq!(reliability(&on_probation), -(1 + UNHEALTHY_PENALTY));
    }
}
