//! How long an agent waits before sending an unanswered (re-)registration again.
//!
//! Every agent of a cluster loses a failed master at the same moment and re-registers with the
//! new leader within the same second; the leader answers them one after another. An agent
//! whose first retry comes before its answer sends its tasks a second time, and the leader
//! decodes them again behind everyone else's first attempts: with Mesos's fixed 1 s first
//! wait, a 40,000-agent failover cost 1.4–1.7 attempts per agent. So the master advises, in
//! every registration answer and ping, a first wait sized to its number of agents
//! (`registration_backoff_seconds`), and the agent's first wait is the longer of that advice
//! and [`REGISTRATION_BACKOFF_MIN`]. Each wait is spread by ±50 % and then doubles, up to
//! [`REGISTRATION_BACKOFF_MAX`].

use std::time::Duration;

/// First wait before re-sending a registration the master has not answered, when the master
/// advised nothing longer (Mesos's `--registration_backoff_factor`).
pub const REGISTRATION_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between registration attempts.
pub const REGISTRATION_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// An agent's registration retry schedule: the first wait (as the master last advised) and the
/// next one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegistrationBackoff {
    first: Duration,
    next: Duration,
}

impl Default for RegistrationBackoff {
    fn default() -> Self {
        RegistrationBackoff {
            first: REGISTRATION_BACKOFF_MIN,
            next: REGISTRATION_BACKOFF_MIN,
        }
    }
}

impl RegistrationBackoff {
    /// Takes the master's advice for the first wait, in seconds; it is kept within
    /// [`REGISTRATION_BACKOFF_MIN`, `REGISTRATION_BACKOFF_MAX`]. Returns false (and keeps the
    /// old first wait) for a value that is not a finite number of seconds.
    pub fn advise(&mut self, seconds: f64) -> bool {
        if !seconds.is_finite() || seconds < 0.0 {
            return false;
        }
        self.first = Duration::from_secs_f64(seconds.min(REGISTRATION_BACKOFF_MAX.as_secs_f64()))
            .max(REGISTRATION_BACKOFF_MIN);
        true
    }

    /// Starts a new round of attempts from the first wait.
    pub fn restart(&mut self) {
        self.next = self.first;
    }

    /// The wait before the next attempt, spread by `fraction` in [0, 1) to [0.5, 1.5) of the
    /// schedule's; the schedule then doubles.
    pub fn next_wait(&mut self, fraction: f64) -> Duration {
        debug_assert!(
            self.next >= REGISTRATION_BACKOFF_MIN && self.next <= REGISTRATION_BACKOFF_MAX
        );
        let wait = self.next.mul_f64(0.5 + fraction.clamp(0.0, 1.0));
        self.next = (self.next * 2).min(REGISTRATION_BACKOFF_MAX);
        wait
    }

    /// The first wait of a round, as last advised.
    pub fn first(&self) -> Duration {
        self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_advice_the_first_wait_is_mesos_s_and_doubles_to_the_cap() {
        let mut b = RegistrationBackoff::default();
        b.restart();
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait(0.5)).collect();
        assert_eq!(waits[0], Duration::from_secs(1));
        assert_eq!(waits[1], Duration::from_secs(2));
        assert_eq!(waits[6], Duration::from_secs(60));
        assert_eq!(waits[7], Duration::from_secs(60));
    }

    #[test]
    fn the_master_s_advice_sets_the_first_wait_of_the_next_round_within_bounds() {
        let mut b = RegistrationBackoff::default();
        assert!(b.advise(4.0));
        b.restart();
        assert_eq!(b.next_wait(0.0), Duration::from_secs(2));
        assert_eq!(b.next_wait(0.0), Duration::from_secs(4));
        assert!(b.advise(0.2));
        assert_eq!(b.first(), REGISTRATION_BACKOFF_MIN);
        assert!(b.advise(1e9));
        assert_eq!(b.first(), REGISTRATION_BACKOFF_MAX);
        assert!(!b.advise(f64::NAN));
        assert!(!b.advise(-1.0));
        assert!(!b.advise(f64::INFINITY));
        assert_eq!(b.first(), REGISTRATION_BACKOFF_MAX);
    }

    #[test]
    fn advice_does_not_change_a_round_under_way() {
        let mut b = RegistrationBackoff::default();
        b.restart();
        assert!(b.advise(10.0));
        assert_eq!(b.next_wait(0.5), Duration::from_secs(1));
    }
}
