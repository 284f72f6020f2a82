//! Message filters for tests (libprocess's `FUTURE_MESSAGE`, `DROP_MESSAGE`, `DROP_MESSAGES`).
//!
//! A filter sees every message as it is delivered to a process on its node, local or remote,
//! before the process does. It can capture a copy (the message still arrives), drop one message,
//! or drop every matching message while its guard lives. [`Node::inject_faults`] makes a
//! network misbehave, from a seed: matching messages are dropped, duplicated or held back on
//! the node's clock (so later ones overtake them) with given chances; [`partition`] cuts groups
//! of nodes apart. With no filter installed the check is one relaxed atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use crate::message::Payload;
use crate::{Message, Node, Upid};

/// Which sender or receiver a filter applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Match {
    /// Any process.
    #[default]
    Any,
    /// Exactly this process.
    Pid(Upid),
}

impl Match {
    fn matches(&self, pid: &Upid) -> bool {
        match self {
            Match::Any => true,
            Match::Pid(p) => p == pid,
        }
    }
}

impl From<&Upid> for Match {
    fn from(pid: &Upid) -> Self {
        Match::Pid(pid.clone())
    }
}

impl From<Upid> for Match {
    fn from(pid: Upid) -> Self {
        Match::Pid(pid)
    }
}

/// What a predicate filter sees of a message.
#[derive(Debug)]
pub struct MessageInfo<'a> {
    /// The sender.
    pub from: &'a Upid,
    /// The receiving process (on this node).
    pub to: &'a Upid,
    /// The full protobuf name of the message.
    pub name: String,
}

/// A message caught by [`Node::expect_message`] or [`Node::drop_message`].
#[derive(Debug, Clone)]
pub struct Captured<M> {
    /// Who sent it.
    pub from: Upid,
    /// The process it was for.
    pub to: Upid,
    /// A copy of the message.
    pub message: M,
}

/// The filter's node shut down before a matching message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the filter was removed before a matching message arrived")]
pub struct FilterClosed;

type Test = Box<dyn Fn(&Upid, &Upid, &Payload) -> bool + Send + Sync>;
type Capture = Box<dyn FnOnce(&Upid, &Upid, &Payload) + Send>;

enum Action {
    /// Resolve a future with a copy, let the message through, remove the filter.
    Capture(Capture),
    /// Resolve a future with a copy, drop the message, remove the filter.
    DropOnce(Capture),
    /// Drop every matching message while the filter is installed, counting them for its
    /// guard.
    DropAll(watch::Sender<u64>),
    /// Drop, duplicate or delay matching messages by chance, from a seeded generator.
    Faults(NetworkFaults, Mutex<u64>),
}

/// What a fault-injecting filter does to each message it matches, drawn in turn (one draw per
/// message, from the filter's seed: the same messages in the same order meet the same fate).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetworkFaults {
    /// Chance (0.0–1.0) that the message is lost.
    pub drop: f64,
    /// Chance that it is delivered twice.
    pub duplicate: f64,
    /// Chance that it is held back, for a drawn time up to `max_delay` on the node's clock.
    pub delay: f64,
    /// The longest hold.
    pub max_delay: std::time::Duration,
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    Drop,
    Duplicate,
    Delay(std::time::Duration),
}

impl NetworkFaults {
    fn verdict(&self, state: &mut u64) -> Verdict {
        let mut draw = || {
            // xorshift64*: small, seedable, and good enough to pick fates.
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        let roll = draw();
        if roll < self.drop {
            return Verdict::Drop;
        }
        if roll < self.drop + self.duplicate {
            return Verdict::Duplicate;
        }
        if roll < self.drop + self.duplicate + self.delay {
            return Verdict::Delay(self.max_delay.mul_f64(draw()));
        }
        Verdict::Deliver
    }
}

struct Entry {
    id: u64,
    test: Test,
    action: Action,
}

/// The filters installed on one node.
#[derive(Default)]
pub(crate) struct Filters {
    active: AtomicBool,
    next_id: AtomicU64,
    entries: Mutex<Vec<Entry>>,
}

impl Filters {
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    fn add(&self, test: Test, action: Action) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock();
        entries.push(Entry { id, test, action });
        self.active.store(true, Ordering::Release);
        id
    }

    fn remove(&self, id: u64) {
        let mut entries = self.entries.lock();
        entries.retain(|e| e.id != id);
        self.active.store(!entries.is_empty(), Ordering::Release);
    }

    /// Runs the first matching filter; says what becomes of the message.
    pub(crate) fn intercept(&self, from: &Upid, to: &Upid, payload: &Payload) -> Verdict {
        let mut entries = self.entries.lock();
        let Some(index) = entries.iter().position(|e| (e.test)(from, to, payload)) else {
            return Verdict::Deliver;
        };
        match &entries[index].action {
            Action::DropAll(dropped) => {
                dropped.send_modify(|n| *n += 1);
                return Verdict::Drop;
            }
            Action::Faults(faults, state) => return faults.verdict(&mut state.lock()),
            Action::Capture(_) | Action::DropOnce(_) => {}
        }
        let entry = entries.remove(index);
        self.active.store(!entries.is_empty(), Ordering::Release);
        drop(entries);
        match entry.action {
            Action::Capture(capture) => {
                capture(from, to, payload);
                Verdict::Deliver
            }
            Action::DropOnce(capture) => {
                capture(from, to, payload);
                Verdict::Drop
            }
            Action::DropAll(_) | Action::Faults(..) => unreachable!("answered above"),
        }
    }
}

/// Resolves to the first message matching a filter; see [`Node::expect_message`].
#[derive(Debug)]
pub struct MessageFuture<M> {
    rx: oneshot::Receiver<Captured<M>>,
}

impl<M> Future for MessageFuture<M> {
    type Output = Result<Captured<M>, FilterClosed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map_err(|_| FilterClosed)
    }
}

/// Keeps a [`Node::drop_messages`] filter installed; dropping the guard removes it.
#[must_use = "the filter is removed when the guard is dropped"]
#[derive(Debug)]
pub struct FilterGuard {
    filters: Weak<crate::node::NodeInner>,
    id: u64,
    /// How many messages a dropping filter dropped so far (`None` for fault injection).
    dropped: Option<watch::Receiver<u64>>,
}

impl FilterGuard {
    /// Waits until the filter has dropped `count` messages in all: the event a test awaits
    /// when nothing follows a dropped message. A guard of [`Node::inject_faults`] counts
    /// nothing and answers at once.
    pub async fn dropped(&mut self, count: u64) {
        if let Some(dropped) = &mut self.dropped {
            // The sender lives in the filter, which this guard keeps installed.
            let _ = dropped.wait_for(|n| *n >= count).await;
        }
    }

    /// How many messages the filter has dropped so far (0 for [`Node::inject_faults`]'s).
    pub fn dropped_so_far(&self) -> u64 {
        self.dropped.as_ref().map_or(0, |d| *d.borrow())
    }
}

impl Drop for FilterGuard {
    fn drop(&mut self) {
        if let Some(node) = self.filters.upgrade() {
            node.filters.remove(self.id);
        }
    }
}

fn predicate_test(predicate: impl Fn(&MessageInfo<'_>) -> bool + Send + Sync + 'static) -> Test {
    Box::new(move |from, to, payload| {
        predicate(&MessageInfo {
            from,
            to,
            name: payload.full_name(),
        })
    })
}

fn typed_test<M: Message>(from: Match, to: Match) -> Test {
    Box::new(move |f, t, payload| payload.is::<M>() && from.matches(f) && to.matches(t))
}

fn typed_capture<M: Message>(tx: oneshot::Sender<Captured<M>>) -> Capture {
    Box::new(move |from, to, payload| {
        if let Some(message) = payload.to_typed::<M>() {
            let _ = tx.send(Captured {
                from: from.clone(),
                to: to.clone(),
                message,
            });
        }
    })
}

impl Node {
    /// Resolves with a copy of the next message of type `M` from `from` to `to` delivered on this
    /// node; the message itself still arrives (`FUTURE_MESSAGE`). Install it before the action
    /// that causes the message.
    pub fn expect_message<M: Message>(
        &self,
        from: impl Into<Match>,
        to: impl Into<Match>,
    ) -> MessageFuture<M> {
        let (tx, rx) = oneshot::channel();
        self.inner.filters.add(
            typed_test::<M>(from.into(), to.into()),
            Action::Capture(typed_capture(tx)),
        );
        MessageFuture { rx }
    }

    /// Drops the next message of type `M` from `from` to `to` and resolves with it
    /// (`DROP_MESSAGE`).
    pub fn drop_message<M: Message>(
        &self,
        from: impl Into<Match>,
        to: impl Into<Match>,
    ) -> MessageFuture<M> {
        let (tx, rx) = oneshot::channel();
        self.inner.filters.add(
            typed_test::<M>(from.into(), to.into()),
            Action::DropOnce(typed_capture(tx)),
        );
        MessageFuture { rx }
    }

    /// Drops every message of type `M` from `from` to `to` while the guard lives
    /// (`DROP_MESSAGES`).
    pub fn drop_messages<M: Message>(
        &self,
        from: impl Into<Match>,
        to: impl Into<Match>,
    ) -> FilterGuard {
        let (counter, dropped) = watch::channel(0);
        let id = self.inner.filters.add(
            typed_test::<M>(from.into(), to.into()),
            Action::DropAll(counter),
        );
        FilterGuard {
            filters: Arc::downgrade(&self.inner),
            id,
            dropped: Some(dropped),
        }
    }

    /// Drops every message for which `predicate` is true while the guard lives.
    pub fn drop_messages_where(
        &self,
        predicate: impl Fn(&MessageInfo<'_>) -> bool + Send + Sync + 'static,
    ) -> FilterGuard {
        let test = predicate_test(predicate);
        let (counter, dropped) = watch::channel(0);
        let id = self.inner.filters.add(test, Action::DropAll(counter));
        FilterGuard {
            filters: Arc::downgrade(&self.inner),
            id,
            dropped: Some(dropped),
        }
    }

    /// Drops, duplicates or holds back the messages for which `predicate` is true, by the
    /// chances in `faults`, drawn from `seed`, while the guard lives. Held messages are
    /// delivered (past every filter) once their hold has passed on the node's clock.
    pub fn inject_faults(
        &self,
        faults: NetworkFaults,
        seed: u64,
        predicate: impl Fn(&MessageInfo<'_>) -> bool + Send + Sync + 'static,
    ) -> FilterGuard {
        let test = predicate_test(predicate);
        // A zero state would stay zero.
        let state = Mutex::new(seed.max(1));
        let id = self.inner.filters.add(test, Action::Faults(faults, state));
        FilterGuard {
            filters: Arc::downgrade(&self.inner),
            id,
            dropped: None,
        }
    }
}

/// Cuts the nodes of `a` off from those of `b`, both ways, while the guards live: every
/// message between the groups is dropped where it arrives.
pub fn partition(a: &[&Node], b: &[&Node]) -> Vec<FilterGuard> {
    let side = |from: &[&Node], to: &[&Node]| -> Vec<FilterGuard> {
        let others: Vec<String> = from.iter().map(|n| n.address().to_owned()).collect();
        to.iter()
            .map(|node| {
                let others = others.clone();
                node.drop_messages_where(move |m| others.iter().any(|o| o == m.from.address()))
            })
            .collect()
    };
    let mut guards = side(a, b);
    guards.extend(side(b, a));
    guards
}
