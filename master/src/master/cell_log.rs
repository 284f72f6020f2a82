//! The cell's versions (Omega): every change to what an agent holds, or to the agent itself,
//! takes the next number of one counter, and the agent carries the number of its latest change
//! as its version. "What changed after n" is then every agent whose version is above n, plus
//! the agents removed after n — so a scheduler resumes from one number, with no log of deltas.

use std::collections::VecDeque;

use crate::fast_hash::FastSet;

/// Removed agents remembered for resuming subscribers; a position older than the oldest
/// dropped gets the whole cell again.
pub(super) const MAX_TOMBSTONES: usize = 100_000;

/// Called when a change is recorded and none was waiting: the master flushes the changes to
/// its subscribers once the handlers queued before the flush have run.
pub(super) type Wake = Box<dyn Fn() + Send>;

/// The counter, the removed agents, and (while someone subscribes) the agents changed since
/// the subscribers last heard.
#[derive(Default)]
pub(super) struct CellLog {
    wake: Option<Wake>,
    seq: u64,
    /// Agents removed, with the number of their removal, oldest first.
    removed: VecDeque<(u64, String)>,
    /// Positions below this cannot be resumed from: tombstones after them were dropped.
    horizon: u64,
    /// Agents changed since the last [`CellLog::take_changed`]; `None` while nobody listens.
    changed: Option<FastSet<String>>,
}

impl CellLog {
    /// The number of the latest change.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Numbers a change to `agent` and returns the number: its new version.
    pub(super) fn next(&mut self, agent: &str) -> u64 {
        self.seq += 1;
        if let Some(changed) = &mut self.changed {
            let first = changed.is_empty();
            changed.insert(agent.to_owned());
            if let Some(wake) = self.wake.as_ref().filter(|_| first) {
                wake();
            }
        }
        self.seq
    }

    /// Numbers the removal of `agent`.
    pub(super) fn removed(&mut self, agent: &str) {
        let seq = self.next(agent);
        if self.removed.len() == MAX_TOMBSTONES {
            if let Some((dropped, _)) = self.removed.pop_front() {
                self.horizon = dropped;
            }
        }
        self.removed.push_back((seq, agent.to_owned()));
        debug_assert!(self.removed.len() <= MAX_TOMBSTONES);
    }

    /// Agents removed after `seq`, or `None` if that position is too old to resume from.
    pub(super) fn removed_after(&self, seq: u64) -> Option<Vec<&str>> {
        if seq < self.horizon || seq > self.seq {
            return None;
        }
        let start = self.removed.partition_point(|(s, _)| *s <= seq);
        Some(
            self.removed
                .range(start..)
                .map(|(_, a)| a.as_str())
                .collect(),
        )
    }

    /// Calls `wake` whenever a change arrives with none waiting.
    pub(super) fn set_wake(&mut self, wake: Wake) {
        self.wake = Some(wake);
    }

    /// Starts or stops collecting changed agents (only subscribers need them).
    pub(super) fn track(&mut self, on: bool) {
        match (on, self.changed.is_some()) {
            (true, false) => self.changed = Some(FastSet::default()),
            (false, true) => self.changed = None,
            _ => {}
        }
    }

    /// The agents changed since the last call, sorted.
    pub(super) fn take_changed(&mut self) -> Vec<String> {
        let mut changed: Vec<String> = self
            .changed
            .as_mut()
            .map(|c| c.drain().collect())
            .unwrap_or_default();
        changed.sort();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_grow_and_removals_are_found_after_a_position() {
        let mut log = CellLog::default();
        assert_eq!(log.next("a1"), 1);
        assert_eq!(log.next("a2"), 2);
        log.removed("a1");
        assert_eq!(log.seq(), 3);
        assert_eq!(log.removed_after(2), Some(vec!["a1"]));
        assert_eq!(log.removed_after(3), Some(vec![]));
        assert_eq!(log.removed_after(4), None, "a position from the future");
    }

    #[test]
    fn changes_are_collected_only_while_tracked() {
        let mut log = CellLog::default();
        log.next("a1");
        assert!(log.take_changed().is_empty());
        log.track(true);
        let wakes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = wakes.clone();
        log.set_wake(Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        log.next("a2");
        log.next("a1");
        log.next("a2");
        assert_eq!(log.take_changed(), vec!["a1", "a2"]);
        assert!(log.take_changed().is_empty());
        assert_eq!(wakes.load(std::sync::atomic::Ordering::Relaxed), 1);
        log.next("a3");
        assert_eq!(wakes.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn a_position_older_than_the_dropped_tombstones_cannot_resume() {
        let mut log = CellLog::default();
        for i in 0..=MAX_TOMBSTONES {
            log.removed(&format!("a{i}"));
        }
        assert_eq!(log.removed_after(0), None);
        assert_eq!(log.removed_after(1).map(|r| r.len()), Some(MAX_TOMBSTONES));
    }
}
