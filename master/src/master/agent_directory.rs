//! Which node each registered agent is at, readable from other threads without asking the
//! master: Autopilot's device manager, beside it, accepts a machine's watchdog reports only
//! from the node of the agent registered (and authenticated, when the master requires it)
//! under that hostname.

use std::sync::Arc;

use dashmap::DashMap;
use libactor::Upid;

use crate::fast_hash::FastHasher;

/// Node address (`host:port`) → hostname of the agent registered there.
#[derive(Debug, Clone, Default)]
pub struct AgentDirectory(Arc<DashMap<String, String, FastHasher>>);

impl AgentDirectory {
    /// The hostname of the agent registered at node `address`, if any.
    pub fn hostname_at(&self, address: &str) -> Option<String> {
        self.0.get(address).map(|h| h.value().clone())
    }

    pub(super) fn insert(&self, pid: &Upid, hostname: &str) {
        self.0.insert(pid.address().to_owned(), hostname.to_owned());
    }

    pub(super) fn remove(&self, pid: &Upid) {
        self.0.remove(pid.address());
    }
}
