//! Time, including paused time for tests (libprocess's `Clock`).
//!
//! Every timeout in Keel (offer timeouts, ping timeouts, retries, repair probation) runs on a
//! [`Clock`]. By default it follows real time. A test can [`Clock::pause`] it, move it with
//! [`Clock::advance`] (which fires every timer that comes due, at once, in deadline order) and then
//! [`Clock::settle`] until every message those timers caused has been handled. Timeouts are thus
//! tested deterministically, never by sleeping.
//!
//! Nodes that share one `Clock` share its time: a multi-node test pauses them all at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long [`Clock::settle`] waits for quiescence before giving up.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many consecutive idle observations [`Clock::settle`] needs: messages between nodes spend a
/// moment in kernel socket buffers, where no counter sees them.
const SETTLE_IDLE_ROUNDS: u32 = 3;

type Callback = Box<dyn FnOnce() + Send>;

/// Something whose pending work [`Clock::settle`] waits for (a node: its mailboxes and sockets).
pub(crate) trait Activity: Send + Sync {
    /// How many messages are queued or being handled; 0 when idle.
    fn pending(&self) -> u64;
}

struct State {
    /// Virtual now while paused.
    paused_at: Option<Instant>,
    /// Added to the real time: advances made while paused carry over after `resume`.
    offset: Duration,
    timers: BTreeMap<(Instant, u64), Callback>,
    next_timer: u64,
    driver_started: bool,
}

struct Inner {
    /// Unix time when the clock was made, and the instant it was made at: wall-clock readings
    /// move with the clock from there.
    unix_at_start: Duration,
    instant_at_start: Instant,
    state: Mutex<State>,
    changed: Condvar,
    activities: Mutex<Vec<Weak<dyn Activity>>>,
}

impl Inner {
    fn now(state: &State) -> Instant {
        state
            .paused_at
            .unwrap_or_else(|| Instant::now() + state.offset)
    }

    /// Removes and returns the callbacks of every timer due at `now`, in deadline order.
    fn take_due(state: &mut State) -> Vec<Callback> {
        let now = Inner::now(state);
        let later = state.timers.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut state.timers, later);
        due.into_values().collect()
    }
}

/// A clock that real code reads and tests pause. Cheap to clone; clones share time and timers.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("Clock")
            .field("paused", &state.paused_at.is_some())
            .field("timers", &state.timers.len())
            .finish()
    }
}

impl Clock {
    /// A clock following real time.
    pub fn new() -> Clock {
        Clock::starting_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    /// A paused clock whose wall-clock time reads `unix` (since the epoch): a simulation's,
    /// whose replays must stamp the same times.
    pub fn simulated(unix: Duration) -> Clock {
        let clock = Clock::starting_at(unix);
        // Paused at the very instant it was made: no real time may leak into its readings.
        let mut state = clock.inner.state.lock();
        state.paused_at = Some(clock.inner.instant_at_start);
        drop(state);
        clock
    }

    fn starting_at(unix: Duration) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                unix_at_start: unix,
                instant_at_start: Instant::now(),
                state: Mutex::new(State {
                    paused_at: None,
                    offset: Duration::ZERO,
                    timers: BTreeMap::new(),
                    next_timer: 0,
                    driver_started: false,
                }),
                changed: Condvar::new(),
                activities: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A clock that starts paused, for deterministic tests.
    pub fn paused() -> Clock {
        let clock = Clock::new();
        clock.pause();
        clock
    }

    /// The clock's current time: real time plus all advances, frozen while paused.
    pub fn now(&self) -> Instant {
        Inner::now(&self.inner.state.lock())
    }

    /// Wall-clock time, in seconds since the Unix epoch, as this clock tells it: real time
    /// while it runs, frozen while it is paused, moved by [`Clock::advance`]. Every timestamp a
    /// process writes (status updates, audit records, unreachable-since) comes from here, so
    /// that a paused test sees them move with its timers.
    pub fn unix_seconds(&self) -> f64 {
        let since_start = self
            .now()
            .saturating_duration_since(self.inner.instant_at_start);
        (self.inner.unix_at_start + since_start).as_secs_f64()
    }

    /// Whether the clock is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.state.lock().paused_at.is_some()
    }

    /// Freezes time: timers fire only through [`Clock::advance`].
    pub fn pause(&self) {
        let mut state = self.inner.state.lock();
        if state.paused_at.is_none() {
            state.paused_at = Some(Inner::now(&state));
        }
        self.inner.changed.notify_all();
    }

    /// Lets time run again from where it stands (it never moves backwards).
    pub fn resume(&self) {
        let mut state = self.inner.state.lock();
        if let Some(at) = state.paused_at.take() {
            let real = Instant::now();
            state.offset = state.offset.max(at.saturating_duration_since(real));
        }
        self.inner.changed.notify_all();
    }

    /// Moves paused time forward by `d` and fires every timer that comes due, in deadline order,
    /// before returning. Has no effect on a running clock.
    pub fn advance(&self, d: Duration) {
        let due = {
            let mut state = self.inner.state.lock();
            let Some(at) = state.paused_at else {
                tracing::warn!("Clock::advance on a running clock is ignored");
                return;
            };
            state.paused_at = Some(at + d);
            Inner::take_due(&mut state)
        };
        for callback in due {
            callback();
        }
    }

    /// Runs `callback` once `d` has passed on this clock, unless the returned [`Timer`] is
    /// cancelled first. The callback runs on the clock's driver thread (or inside
    /// [`Clock::advance`]) and must only hand work off, e.g. by sending a message.
    pub fn schedule(&self, d: Duration, callback: impl FnOnce() + Send + 'static) -> Timer {
        let mut state = self.inner.state.lock();
        let deadline = Inner::now(&state) + d;
        let id = state.next_timer;
        state.next_timer += 1;
        state.timers.insert((deadline, id), Box::new(callback));
        if !state.driver_started {
            state.driver_started = true;
            spawn_driver(Arc::downgrade(&self.inner));
        }
        // The driver sleeps until the earliest deadline: only a new earliest timer needs to
        // wake it. Waking it for every timer cost a thread hand-off per timer (a failover arms
        // one per returning agent).
        if state.timers.keys().next() == Some(&(deadline, id)) {
            self.inner.changed.notify_all();
        }
        Timer {
            key: (deadline, id),
            clock: Arc::downgrade(&self.inner),
        }
    }

    /// A future that completes once `d` has passed on this clock.
    pub fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let timer = self.schedule(d, move || {
            let _ = tx.send(());
        });
        async move {
            // Dropping the future cancels the timer; a fired timer leaves nothing behind.
            let _guard = TimerGuard(timer);
            let _ = rx.await;
        }
    }

    /// Runs `fut` for at most `d` of this clock's time.
    pub async fn timeout<F: Future>(&self, d: Duration, fut: F) -> Result<F::Output, Elapsed> {
        tokio::select! {
            biased;
            out = fut => Ok(out),
            _ = self.sleep(d) => Err(Elapsed(d)),
        }
    }

    /// Number of timers not yet fired or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.inner.state.lock().timers.len()
    }

    /// The time until the earliest pending timer, if any.
    pub fn next_timer_in(&self) -> Option<Duration> {
        let state = self.inner.state.lock();
        let now = Inner::now(&state);
        state
            .timers
            .keys()
            .next()
            .map(|(deadline, _)| deadline.saturating_duration_since(now))
    }

    /// Waits until every expired timer has run and every node on this clock is idle: no message
    /// queued in a mailbox, being handled, or waiting in a send queue. Bounded by
    /// [`SETTLE_TIMEOUT`] of real time.
    pub async fn settle(&self) -> Result<(), SettleTimeout> {
        let started = Instant::now();
        let mut idle_rounds = 0;
        loop {
            let due = {
                let mut state = self.inner.state.lock();
                if state.paused_at.is_some() {
                    Inner::take_due(&mut state)
                } else {
                    Vec::new()
                }
            };
            let fired = !due.is_empty();
            for callback in due {
                callback();
            }
            let pending: u64 = self
                .inner
                .activities
                .lock()
                .iter()
                .filter_map(Weak::upgrade)
                .map(|a| a.pending())
                .sum();
            if pending == 0 && !fired {
                idle_rounds += 1;
                if idle_rounds >= SETTLE_IDLE_ROUNDS {
                    return Ok(());
                }
            } else {
                idle_rounds = 0;
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                return Err(SettleTimeout { pending });
            }
            // Polling (not a timed wait on an event): settle has no single event to wait on,
            // since work may move between mailboxes, sockets and timers.
            tokio::task::yield_now().await;
            std::thread::yield_now();
            if idle_rounds > 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }

    /// Registers a node whose activity [`Clock::settle`] waits for.
    pub(crate) fn register(&self, activity: Weak<dyn Activity>) {
        let mut activities = self.inner.activities.lock();
        activities.retain(|a| a.strong_count() > 0);
        activities.push(activity);
    }
}

/// A real-time thread that fires timers while the clock runs; it parks while the clock is paused
/// and exits once the clock is dropped.
fn spawn_driver(clock: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("keel-clock".into())
        .spawn(move || loop {
            let Some(inner) = clock.upgrade() else { return };
            let due = {
                let mut state = inner.state.lock();
                if state.paused_at.is_none() {
                    let due = Inner::take_due(&mut state);
                    if due.is_empty() {
                        let wait = state
                            .timers
                            .keys()
                            .next()
                            .map(|(deadline, _)| {
                                deadline.saturating_duration_since(Inner::now(&state))
                            })
                            .unwrap_or(Duration::from_secs(1))
                            .min(Duration::from_secs(1));
                        inner.changed.wait_for(&mut state, wait);
                    }
                    due
                } else {
                    inner.changed.wait_for(&mut state, Duration::from_secs(1));
                    Vec::new()
                }
            };
            drop(inner);
            for callback in due {
                callback();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the clock's timer thread; timers will only fire on advance/settle");
    }
}

/// A scheduled callback that can be cancelled (libprocess's `Timer`).
#[derive(Debug)]
pub struct Timer {
    key: (Instant, u64),
    clock: Weak<Inner>,
}

impl Timer {
    /// Cancels the timer. Returns true if it had not fired yet (it never will now).
    pub fn cancel(&self) -> bool {
        match self.clock.upgrade() {
            Some(inner) => inner.state.lock().timers.remove(&self.key).is_some(),
            None => false,
        }
    }

    /// When the timer fires, on its clock.
    pub fn deadline(&self) -> Instant {
        self.key.0
    }
}

struct TimerGuard(Timer);

impl Drop for TimerGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A [`Clock::timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct Elapsed(pub Duration);

/// [`Clock::settle`] did not see the nodes go idle within [`SETTLE_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("clock did not settle within {SETTLE_TIMEOUT:?}: {pending} messages still pending")]
pub struct SettleTimeout {
    /// Messages still queued when settle gave up.
    pub pending: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn advance_fires_due_timers_in_order() {
        let clock = Clock::paused();
        let order = Arc::new(Mutex::new(Vec::new()));
        for (name, secs) in [("b", 2), ("a", 1), ("c", 3)] {
            let order = order.clone();
            clock.schedule(Duration::from_secs(secs), move || order.lock().push(name));
        }
        clock.advance(Duration::from_millis(1999));
        assert_eq!(*order.lock(), vec!["a"]);
        clock.advance(Duration::from_secs(5));
        assert_eq!(*order.lock(), vec!["a", "b", "c"]);
        assert_eq!(clock.pending_timers(), 0);
    }

    #[test]
    fn wall_clock_readings_stand_still_while_paused_and_move_with_advance() {
        let clock = Clock::paused();
        let before = clock.unix_seconds();
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (real - before).abs() < 60.0,
            "{before} is about now ({real})"
        );
        assert_eq!(clock.unix_seconds(), before);
        clock.advance(Duration::from_secs(90));
        assert!((clock.unix_seconds() - before - 90.0).abs() < 1e-6);
    }

    #[test]
    fn cancel_prevents_firing() {
        let clock = Clock::paused();
        let fired = Arc::new(AtomicU32::new(0));
        let f = fired.clone();
        let timer = clock.schedule(Duration::from_secs(1), move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        assert!(timer.cancel());
        assert!(!timer.cancel());
        clock.advance(Duration::from_secs(2));
        assert_eq!(fired.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn paused_time_stands_still_and_resume_never_goes_back() {
        let clock = Clock::paused();
        let t0 = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now() - t0, Duration::from_secs(3600));
        clock.resume();
        assert!(clock.now() >= t0 + Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn real_clock_fires_on_its_own() {
        let clock = Clock::new();
        clock
            .timeout(
                Duration::from_secs(10),
                clock.sleep(Duration::from_millis(5)),
            )
            .await
            .expect("a 5 ms timer fires well within 10 s");
    }

    #[tokio::test]
    async fn timeout_on_paused_clock() {
        let clock = Clock::paused();
        let c = clock.clone();
        let waiter = tokio::spawn(async move {
            c.timeout(Duration::from_secs(5), std::future::pending::<()>())
                .await
        });
        // Wait for the waiter's timer to exist, then move past it.
        while clock.pending_timers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(5));
        assert_eq!(waiter.await.unwrap(), Err(Elapsed(Duration::from_secs(5))));
    }
}
