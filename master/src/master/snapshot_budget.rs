//! How many whole-cell snapshots each framework gets: a scheduler that subscribes to the cell
//! in a loop would otherwise make the master serialize every agent again and again. Each
//! framework has a bucket of [`BURST`] snapshots that refills one per [`REFILL`]; a subscription
//! beyond it is deferred until the bucket has one, and subscriptions made meanwhile join it
//! (one snapshot, to the latest scheduler). Resuming from a position costs nothing here: it
//! sends only what changed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libactor::Upid;

/// Snapshots a framework may get at once.
pub(super) const BURST: f64 = 3.0;
/// How long the bucket takes to earn one snapshot back.
pub(super) const REFILL: Duration = Duration::from_secs(1);

struct Budget {
    tokens: f64,
    at: Instant,
    /// The scheduler a deferred snapshot goes to.
    deferred: Option<Upid>,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(BURST);
        self.at = now;
        debug_assert!((0.0..=BURST).contains(&self.tokens));
    }
}

/// The frameworks' buckets (a framework's goes when the framework does).
#[derive(Default)]
pub(super) struct SnapshotBudgets {
    by_framework: HashMap<String, Budget>,
}

/// What a subscription asking for a snapshot gets.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Snapshot {
    /// Send it now.
    Now,
    /// Wait this long, then send it ([`SnapshotBudgets::take_deferred`]).
    After(Duration),
    /// A deferred snapshot is already waiting; this subscription joins it.
    Joined,
}

impl SnapshotBudgets {
    /// Asks `framework`'s bucket at `now` for a snapshot to `to`.
    pub(super) fn ask(&mut self, framework: &str, to: &Upid, now: Instant) -> Snapshot {
        let budget = self
            .by_framework
            .entry(framework.to_owned())
            .or_insert(Budget {
                tokens: BURST,
                at: now,
                deferred: None,
            });
        budget.refill(now);
        if let Some(deferred) = &mut budget.deferred {
            *deferred = to.clone();
            return Snapshot::Joined;
        }
        if budget.tokens >= 1.0 {
            budget.tokens -= 1.0;
            return Snapshot::Now;
        }
        budget.deferred = Some(to.clone());
        Snapshot::After(REFILL.mul_f64(1.0 - budget.tokens))
    }

    /// The scheduler a deferred snapshot of `framework` goes to, taking its token.
    pub(super) fn take_deferred(&mut self, framework: &str, now: Instant) -> Option<Upid> {
        let budget = self.by_framework.get_mut(framework)?;
        let to = budget.deferred.take()?;
        budget.refill(now);
        budget.tokens = (budget.tokens - 1.0).max(0.0);
        Some(to)
    }

    /// `framework` is gone: its bucket goes too.
    pub(super) fn forget(&mut self, framework: &str) {
        self.by_framework.remove(framework);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_snapshot_per_refill_and_later_asks_join_the_deferred_one() {
        let mut budgets = SnapshotBudgets::default();
        let t0 = Instant::now();
        let a = Upid::parse("scheduler(1)@127.0.0.1:5051").unwrap();
        let b = Upid::parse("scheduler(2)@127.0.0.1:5051").unwrap();
        for _ in 0..3 {
            assert_eq!(budgets.ask("f", &a, t0), Snapshot::Now);
        }
        assert_eq!(budgets.ask("f", &a, t0), Snapshot::After(REFILL));
        assert_eq!(budgets.ask("f", &b, t0), Snapshot::Joined);
        // Another framework has its own bucket.
        assert_eq!(budgets.ask("g", &a, t0), Snapshot::Now);
        let t1 = t0 + REFILL;
        assert_eq!(budgets.take_deferred("f", t1), Some(b));
        assert_eq!(budgets.take_deferred("f", t1), None);
        assert_eq!(budgets.ask("f", &a, t1), Snapshot::After(REFILL));
        // A framework that is gone takes its bucket, and its deferred snapshot, with it.
        budgets.forget("f");
        assert_eq!(budgets.take_deferred("f", t1 + REFILL), None);
        assert_eq!(budgets.ask("f", &a, t1 + REFILL), Snapshot::Now);
    }
}
