//! Numbers the events the master sends its allocator, so that an allocation made before the
//! allocator heard of an agent's latest admission is recognised as stale.
//!
//! The allocator works behind the master: an allocation for an agent can be on its way when the
//! master removes that agent and admits it again (it missed its pings, then re-registered). The
//! allocator forgot the first allocation when it removed the agent; were the master to offer
//! it, the same resources would be offered twice — the books refuse the second offer and the
//! allocator, which made it, holds those resources for ever. (Found by the whole-cluster
//! simulation, seeds 170 and 182 of `keel-cluster-sim --faults 40`.) Each allocation batch
//! carries how many events the allocator had applied; an allocation for an agent admitted by
//! a later event is dropped.

use std::cell::Cell;

use crate::fast_hash::FastMap;

/// The master's count of events sent to its allocator, and the event that admitted each agent.
#[derive(Debug, Default)]
pub(super) struct AllocatorSequence {
    sent: Cell<u64>,
    admitted_at: FastMap<String, u64>,
}

impl AllocatorSequence {
    /// One more event has been sent.
    pub(super) fn sent_one(&self) {
        self.sent.set(self.sent.get() + 1);
    }

    /// The event just sent admitted `agent`.
    pub(super) fn admitted(&mut self, agent: &str) {
        debug_assert!(self.sent.get() > 0, "an admission is an event sent");
        self.admitted_at.insert(agent.to_owned(), self.sent.get());
    }

    /// The agent is gone.
    pub(super) fn removed(&mut self, agent: &str) {
        self.admitted_at.remove(agent);
    }

    /// Whether an allocation on `agent`, made once the allocator had applied `applied` events,
    /// predates the agent's latest admission.
    pub(super) fn is_stale(&self, agent: &str, applied: u64) -> bool {
        self.admitted_at.get(agent).is_some_and(|at| *at > applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_from_before_the_latest_admission_is_stale() {
        let mut seq = AllocatorSequence::default();
        seq.sent_one();
        seq.admitted("a1");
        seq.sent_one();
        assert!(!seq.is_stale("a1", 1));
        seq.sent_one();
        seq.removed("a1");
        seq.sent_one();
        seq.admitted("a1");
        assert!(
            seq.is_stale("a1", 3),
            "made before the allocator re-added it"
        );
        assert!(!seq.is_stale("a1", 4));
        assert!(
            !seq.is_stale("a2", 0),
            "an agent never admitted is the books' business"
        );
    }
}
