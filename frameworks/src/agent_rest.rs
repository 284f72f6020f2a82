//! Agents a batch scheduler leaves alone for a while after one could not start a task
//! (`TASK_DROPPED`, `REASON_CONTAINER_LAUNCH_FAILED`: its disk full, or as many tasks as it may
//! run): launching there again at once would fail the same way, in a loop as fast as offers
//! or cell changes come — hundreds of launches a second, or, for a scheduler that gives up
//! after so many attempts, its tasks abandoned within a second of a passing full disk.
//!
//! ```
//! use frameworks::agent_rest::RestingAgents;
//! let agents = RestingAgents::default();
//! assert!(!agents.is_resting("S1"));
//! ```

use std::collections::HashMap;
use std::time::Duration;

use crate::scheduler_driver::SchedulerDriver;

/// How long an agent rests.
pub const REST: Duration = Duration::from_secs(5);

/// Timer tokens of rests carry this bit (the reconciler's carry
/// [`crate::reconciliation::TIMER_TAG`]), so that they never collide with a scheduler's own.
pub const REST_TAG: u64 = 1 << 62;

/// The agents resting now, each with the token of the timer that ends its rest.
#[derive(Debug, Default)]
pub struct RestingAgents {
    resting: HashMap<String, u64>,
    next_token: u64,
}

impl RestingAgents {
    /// Rests `agent` for [`REST`] from now (a rest under way starts again).
    pub fn rest(&mut self, driver: &mut SchedulerDriver, agent: &str) {
        self.next_token += 1;
        let token = REST_TAG | self.next_token;
        self.resting.insert(agent.to_owned(), token);
        driver.set_timer(REST, token);
    }

    /// Whether `agent` rests now.
    pub fn is_resting(&self, agent: &str) -> bool {
        self.resting.contains_key(agent)
    }

    /// A timer fired: true if it was a rest's (its agent may take tasks again unless a later
    /// rest began), false if it was another's.
    pub fn timer(&mut self, token: u64) -> bool {
        if token & REST_TAG == 0 || token & crate::reconciliation::TIMER_TAG != 0 {
            return false;
        }
        self.resting.retain(|_, t| *t != token);
        true
    }
}
