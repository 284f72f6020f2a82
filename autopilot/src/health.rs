//! The failure / recovery state machine (Autopilot, Isard 2007): when a machine counts as failed, which
//! repair it gets, and when it is healthy again. Pure functions of reports and times, so that
//! every transition is testable without a cluster.
//!
//! ```text
//!            errors persist (threshold within window)          action carried out
//!  Healthy ─────────────────────────────────────────▶ Failure ───────────────────▶ Probation
//!     ▲                                                  ▲                            │
//!     │            quiet for the probation period        │   errors persist again     │
//!     └──────────────────────────────────────────────────┼────────────────────────────┘
//!                                                        └── next, stronger action
//! ```
//!
//! The legal moves, in one table ([`can_move`]): Healthy → Failure or Probation (a rollout's
//! unit switching); Failure → Failure (a stronger action ordered) or Probation (the action
//! carried out); Probation → Healthy, Failure or Probation (a rollout or rollback switching it
//! again). Nothing else: a failed machine is Healthy again only through Probation.
//!
//! Actions escalate within an *episode* (failures not separated by a long quiet time):
//! Reboot, then Reimage, then Replace. A machine that failed before but then ran quietly for
//! [`HealthPolicy::quiet_after`] gets DoNothing first (one error after a long good run is most
//! likely transient). A fatal error (a disk error) goes straight to Replace. A Warning never
//! counts.

use std::collections::VecDeque;
use std::time::Duration;

use protos::autopilot::{HealthState, MachineEvent, RepairAction, WatchdogResult, WatchdogStatus};

/// When errors count as a failure and how repairs escalate.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Reports with an Error needed within [`HealthPolicy::error_window`] to declare Failure.
    pub error_threshold: u32,
    /// How far back erroring reports are counted.
    pub error_window: Duration,
    /// How long a machine in Probation must stay free of errors to be Healthy again.
    pub probation: Duration,
    /// A failure this long after the last one starts a new episode (DoNothing first).
    pub quiet_after: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            error_threshold: 3,
            error_window: Duration::from_secs(300),
            probation: Duration::from_secs(600),
            quiet_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The erroring reports of one machine still inside the window (soft state: after a failover
/// the count starts again, which only delays a verdict).
#[derive(Debug, Default, Clone)]
pub struct ErrorWindow {
    /// Times (seconds since the Unix epoch) of reports that carried an Error, oldest first.
    times: VecDeque<f64>,
}

/// What one report means for a machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to change.
    Quiet,
    /// Errors persist: the machine should be declared failed, for `error`.
    Failed {
        /// The erroring watchdogs' names and text.
        error: String,
        /// One of them asked for the strongest repair.
        fatal: bool,
    },
    /// A machine in Probation stayed quiet long enough.
    Recovered,
}

impl ErrorWindow {
    /// Records a report made at `now` with `results`, for a machine in `state` since `since`.
    pub fn observe(
        &mut self,
        policy: &HealthPolicy,
        state: HealthState,
        since: f64,
        results: &[WatchdogResult],
        now: f64,
    ) -> Verdict {
        let errors: Vec<&WatchdogResult> = results
            .iter()
            .filter(|r| r.status() == WatchdogStatus::Error)
            .collect();
        let horizon = now - policy.error_window.as_secs_f64();
        while self.times.front().is_some_and(|t| *t < horizon) {
            self.times.pop_front();
        }
        if !errors.is_empty() {
            self.times.push_back(now);
        }
        let fatal = errors.iter().any(|r| r.fatal);
        let persists = self.times.len() >= policy.error_threshold.max(1) as usize;
        match state {
            HealthState::Failure => Verdict::Quiet,
            _ if !errors.is_empty() && (persists || fatal) => Verdict::Failed {
                error: describe(&errors),
                fatal,
            },
            HealthState::Probation
                if errors.is_empty()
                    && self.times.is_empty()
                    && now - since >= policy.probation.as_secs_f64() =>
            {
                Verdict::Recovered
            }
            _ => Verdict::Quiet,
        }
    }

    /// Forgets the errors counted so far (the machine was just repaired).
    pub fn clear(&mut self) {
        self.times.clear();
    }
}

/// `name: text; name: text`, bounded.
fn describe(errors: &[&WatchdogResult]) -> String {
    let mut out = String::new();
    for r in errors {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&r.name);
        if !r.text.is_empty() {
            out.push_str(": ");
            out.push_str(r.text.trim());
        }
        if out.len() > 512 {
            out.truncate(512);
            break;
        }
    }
    out
}

/// The repair for a failure at `now`, from the machine's `history` (oldest first).
pub fn choose_action(
    policy: &HealthPolicy,
    history: &[MachineEvent],
    fatal: bool,
    now: f64,
) -> RepairAction {
    if fatal {
        return RepairAction::Replace;
    }
    let failures: Vec<&MachineEvent> = history
        .iter()
        .filter(|e| e.state() == HealthState::Failure)
        .collect();
    let Some(last) = failures.last() else {
        return RepairAction::Reboot;
    };
    let last_healthy = history
        .iter()
        .rev()
        .find(|e| e.state() == HealthState::Healthy && e.at >= last.at);
    let quiet = policy.quiet_after.as_secs_f64();
    if let Some(healthy) = last_healthy {
        if now - healthy.at >= quiet {
            return RepairAction::DoNothing;
        }
    }
    match last.action() {
        RepairAction::DoNothing => RepairAction::Reboot,
        RepairAction::Reboot => RepairAction::Reimage,
        RepairAction::Reimage | RepairAction::Replace => RepairAction::Replace,
    }
}

/// Whether a machine in `from` may move to `to` (see the module's table). The device manager
/// refuses, logs and counts any other move.
pub fn can_move(from: HealthState, to: HealthState) -> bool {
    use HealthState::*;
    matches!(
        (from, to),
        (Healthy, Failure | Probation) | (Failure, Failure | Probation) | (Probation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: WatchdogStatus, fatal: bool) -> WatchdogResult {
        WatchdogResult {
            name: "disk".into(),
            status: status as i32,
            text: "sector errors".into(),
            fatal,
        }
    }

    fn event(at: f64, state: HealthState, action: RepairAction) -> MachineEvent {
        MachineEvent {
            at,
            state: state as i32,
            action: action as i32,
            detail: String::new(),
        }
    }

    #[test]
    fn one_transient_error_is_not_a_failure() {
        let policy = HealthPolicy::default();
        let mut w = ErrorWindow::default();
        let err = [result(WatchdogStatus::Error, false)];
        let ok = [result(WatchdogStatus::Ok, false)];
        assert_eq!(
            w.observe(&policy, HealthState::Healthy, 0.0, &err, 10.0),
            Verdict::Quiet
        );
        for t in 1..100 {
            assert_eq!(
                w.observe(&policy, HealthState::Healthy, 0.0, &ok, 10.0 + t as f64),
                Verdict::Quiet
            );
        }
    }

    #[test]
    fn errors_that_persist_fail_the_machine_and_old_ones_expire() {
        let policy = HealthPolicy {
            error_threshold: 3,
            error_window: Duration::from_secs(60),
            ..Default::default()
        };
        let mut w = ErrorWindow::default();
        let err = [result(WatchdogStatus::Error, false)];
        assert_eq!(
            w.observe(&policy, HealthState::Healthy, 0.0, &err, 0.0),
            Verdict::Quiet
        );
        assert_eq!(
            w.observe(&policy, HealthState::Healthy, 0.0, &err, 10.0),
            Verdict::Quiet
        );
        // The first error is out of the window by now: two in it, not three.
        assert_eq!(
            w.observe(&policy, HealthState::Healthy, 0.0, &err, 65.0),
            Verdict::Quiet
        );
        assert!(matches!(
            w.observe(&policy, HealthState::Healthy, 0.0, &err, 70.0),
            Verdict::Failed { fatal: false, ref error } if error == "disk: sector errors"
        ));
    }

    #[test]
    fn warnings_never_fail_a_machine_and_fatal_errors_do_at_once() {
        let policy = HealthPolicy::default();
        let mut w = ErrorWindow::default();
        let warn = [result(WatchdogStatus::Warning, true)];
        for t in 0..50 {
            assert_eq!(
                w.observe(&policy, HealthState::Healthy, 0.0, &warn, t as f64),
                Verdict::Quiet
            );
        }
        let fatal = [result(WatchdogStatus::Error, true)];
        assert!(matches!(
            w.observe(&policy, HealthState::Healthy, 0.0, &fatal, 60.0),
            Verdict::Failed { fatal: true, .. }
        ));
    }

    #[test]
    fn probation_ends_after_a_quiet_period_only() {
        let policy = HealthPolicy {
            probation: Duration::from_secs(100),
            ..Default::default()
        };
        let mut w = ErrorWindow::default();
        let ok = [result(WatchdogStatus::Ok, false)];
        let err = [result(WatchdogStatus::Error, false)];
        assert_eq!(
            w.observe(&policy, HealthState::Probation, 1000.0, &ok, 1050.0),
            Verdict::Quiet
        );
        assert_eq!(
            w.observe(&policy, HealthState::Probation, 1000.0, &err, 1060.0),
            Verdict::Quiet
        );
        // An error inside the window keeps the machine in Probation.
        assert_eq!(
            w.observe(&policy, HealthState::Probation, 1000.0, &ok, 1110.0),
            Verdict::Quiet
        );
        assert_eq!(
            w.observe(&policy, HealthState::Probation, 1000.0, &ok, 1400.0),
            Verdict::Recovered
        );
    }

    #[test]
    fn repairs_escalate_within_an_episode() {
        use HealthState::*;
        use RepairAction::*;
        let policy = HealthPolicy::default();
        let mut history = vec![];
        assert_eq!(choose_action(&policy, &history, false, 0.0), Reboot);
        history.push(event(0.0, Failure, Reboot));
        history.push(event(10.0, Probation, Reboot));
        assert_eq!(choose_action(&policy, &history, false, 20.0), Reimage);
        history.push(event(20.0, Failure, Reimage));
        assert_eq!(choose_action(&policy, &history, false, 30.0), Replace);
        assert_eq!(choose_action(&policy, &[], true, 0.0), Replace);
    }

    #[test]
    fn a_failure_after_a_long_quiet_time_gets_do_nothing_first() {
        use HealthState::*;
        use RepairAction::*;
        let policy = HealthPolicy::default();
        let day = policy.quiet_after.as_secs_f64();
        let history = vec![
            event(0.0, Failure, Reimage),
            event(10.0, Probation, Reimage),
            event(700.0, Healthy, DoNothing),
        ];
        assert_eq!(choose_action(&policy, &history, false, 800.0), Replace);
        assert_eq!(
            choose_action(&policy, &history, false, 700.0 + day),
            DoNothing
        );
        let mut after = history.clone();
        after.push(event(700.0 + day, Failure, DoNothing));
        assert_eq!(choose_action(&policy, &after, false, 800.0 + day), Reboot);
    }

    #[test]
    fn a_failed_machine_is_healthy_again_only_through_probation() {
        use HealthState::*;
        assert!(can_move(Healthy, Failure));
        assert!(can_move(Failure, Probation));
        assert!(can_move(Probation, Healthy));
        assert!(can_move(Probation, Failure));
        assert!(can_move(Failure, Failure), "a stronger action");
        assert!(!can_move(Failure, Healthy));
        assert!(!can_move(Healthy, Healthy));
    }
}
