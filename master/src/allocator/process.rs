//! The allocator process: an [`Allocator`] policy inside a libactor process, so that the master
//! never waits on an allocation cycle.
//!
//! Handles: no network messages. The master (same crate) dispatches events into it with
//! [`AllocatorProcess::update`]: framework and agent changes, recovered resources, revive,
//! suppress. Sends: each cycle's allocations to its [`OfferSink`] (the master, which turns
//! them into offers).
//!
//! Cycles run on events, batched — all events already queued are applied before the one cycle
//! they cause — and every `allocation_interval` on the node's clock (Mesos's
//! `--allocation_interval`, 1 s), which is when refusal filters that expired are noticed.

use std::time::{Duration, Instant};

use libactor::metrics::{Counter, Durations, ProcessMetrics};
use libactor::{Context, Process};

use super::{Allocation, Allocator, AllocatorError};

/// Mesos's default `--allocation_interval`.
pub const DEFAULT_ALLOCATION_INTERVAL: Duration = Duration::from_secs(1);

/// Where a cycle's allocations go, with how many events the allocator had applied when it
/// made them (the master drops allocations on agents it admitted again since).
pub type OfferSink = Box<dyn FnMut(Vec<Allocation>, u64) + Send>;

/// Runs an allocation policy as a process.
pub struct AllocatorProcess<A: Allocator> {
    allocator: A,
    sink: OfferSink,
    interval: Duration,
    /// An event-driven cycle is queued.
    cycle_queued: bool,
    /// Events applied so far.
    applied: u64,
    metrics: ProcessMetrics<AllocatorMetrics>,
}

struct AllocatorMetrics {
    cycles: Counter,
    allocations: Counter,
    cycle_time: Durations,
}

impl<A: Allocator + 'static> AllocatorProcess<A> {
    /// A process running `allocator` every `interval` and after events, sending allocations to
    /// `sink`.
    pub fn new(allocator: A, interval: Duration, sink: OfferSink) -> Self {
        AllocatorProcess {
            allocator,
            sink,
            interval,
            cycle_queued: false,
            applied: 0,
            metrics: ProcessMetrics::default(),
        }
    }

    /// Applies an event to the policy and queues a cycle behind the events already waiting.
    pub fn update<T>(
        &mut self,
        ctx: &mut Context<Self>,
        event: impl FnOnce(&mut A) -> Result<T, AllocatorError>,
    ) -> Result<T, AllocatorError> {
        let out = event(&mut self.allocator);
        self.applied += 1;
        if !self.cycle_queued {
            self.cycle_queued = true;
            ctx.self_ref().dispatch(|p, ctx| p.cycle(ctx));
        }
        out
    }

    /// The policy, to read its state.
    pub fn allocator(&self) -> &A {
        &self.allocator
    }

    fn periodic(&mut self, ctx: &mut Context<Self>) {
        self.cycle(ctx);
        ctx.delay(self.interval, |p, ctx| p.periodic(ctx));
    }

    fn cycle(&mut self, ctx: &mut Context<Self>) {
        self.cycle_queued = false;
        let started = Instant::now();
        let allocations = self.allocator.allocate(ctx.node().clock().now());
        self.metrics.with(|m| {
            m.cycle_time.record(started.elapsed());
            m.cycles.inc();
            m.allocations.add(allocations.len() as u64);
        });
        if !allocations.is_empty() {
            tracing::debug!(count = allocations.len(), "allocation cycle");
            (self.sink)(allocations, self.applied);
        }
    }
}

impl<A: Allocator + 'static> Process for AllocatorProcess<A> {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let metrics = ctx.metrics();
        self.metrics.set(AllocatorMetrics {
            cycles: metrics.counter("allocator/cycles"),
            allocations: metrics.counter("allocator/allocations"),
            cycle_time: metrics.durations("allocator/cycle_time"),
        });
        ctx.delay(self.interval, |p, ctx| p.periodic(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{HierarchicalAllocator, RefuseFilter};
    use libactor::{Clock, Node};
    use resources::Resources;
    use tokio::sync::mpsc;

    fn r(text: &str) -> Resources {
        text.parse().unwrap()
    }

    fn start(
        clock: &Clock,
    ) -> (
        Node,
        libactor::ProcessRef<AllocatorProcess<HierarchicalAllocator>>,
        mpsc::UnboundedReceiver<Vec<Allocation>>,
    ) {
        let node = Node::builder()
            .clock(clock.clone())
            .single_threaded()
            .start()
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let process = AllocatorProcess::new(
            HierarchicalAllocator::default(),
            DEFAULT_ALLOCATION_INTERVAL,
            Box::new(move |allocations, _| {
                let _ = tx.send(allocations);
            }),
        );
        let allocator = node.spawn_ref("allocator", process).unwrap();
        (node, allocator, rx)
    }

    #[tokio::test]
    async fn queued_events_are_batched_into_one_cycle() {
        let clock = Clock::paused();
        let (node, allocator, mut rx) = start(&clock);
        // Hold the process until all four events are queued behind each other.
        let (release, held) = std::sync::mpsc::channel::<()>();
        allocator.dispatch(move |_, _| {
            let _ = held.recv_timeout(Duration::from_secs(10));
        });
        allocator.dispatch(|p, ctx| {
            p.update(ctx, |a| a.add_framework("f", "*", false)).unwrap();
        });
        for i in 0..3 {
            allocator.dispatch(move |p, ctx| {
                p.update(ctx, |a| {
                    a.add_agent(&format!("a{i}"), r("cpus:1;mem:128"), &[])
                })
                .unwrap();
            });
        }
        release.send(()).unwrap();
        clock.settle().await.unwrap();
        let offers = rx.try_recv().expect("one batch of offers");
        assert_eq!(offers.len(), 3, "all three agents in the one cycle");
        assert!(rx.try_recv().is_err());
        assert_eq!(node.metrics().snapshot()["allocator/cycles"], 1.0);
        node.shutdown().await;
    }

    #[tokio::test]
    async fn periodic_cycles_notice_expired_filters() {
        let clock = Clock::paused();
        let (node, allocator, mut rx) = start(&clock);
        allocator.dispatch(|p, ctx| {
            p.update(ctx, |a| a.add_framework("f", "*", false)).unwrap();
            p.update(ctx, |a| a.add_agent("a1", r("cpus:1;mem:128"), &[]))
                .unwrap();
        });
        clock.settle().await.unwrap();
        let offer = rx.try_recv().unwrap().remove(0);
        // Declined for 3 s.
        let until = clock.now() + Duration::from_secs(3);
        allocator.dispatch(move |p, ctx| {
            let filter = RefuseFilter {
                resources: offer.resources.clone(),
                until,
            };
            p.update(ctx, |a| {
                a.recover("f", "a1", &offer.resources, Some(filter))
            })
            .unwrap();
        });
        clock.settle().await.unwrap();
        for second in 1..=2 {
            clock.advance(Duration::from_secs(1));
            clock.settle().await.unwrap();
            assert!(rx.try_recv().is_err(), "still filtered after {second} s");
        }
        clock.advance(Duration::from_secs(1));
        clock.settle().await.unwrap();
        assert_eq!(
            rx.try_recv().unwrap().len(),
            1,
            "re-offered by the periodic cycle at 3 s"
        );
        let cycles = node.metrics().snapshot()["allocator/cycles"];
        assert!(
            cycles >= 5.0,
            "2 event cycles and 3 periodic ones, got {cycles}"
        );
        node.shutdown().await;
    }
}
