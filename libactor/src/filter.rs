//! Message filters for tests (libprocess's `FUTURE_MESSAGE`, `DROP_MESSAGE`, `DROP_MESSAGES`).
//!
//! A filter sees every message as it is delivered to a process on its node, local or remote,
//! before the process does. It can capture a copy (the message still arrives), drop one message,
//! or drop every matching message while its guard lives. With no filter installed the check is
//! one relaxed atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};

use parking_lot::Mutex;
use tokio::sync::oneshot;

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
    /// Drop every matching message while the filter is installed.
    DropAll,
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

    /// Runs the first matching filter; true if the message must be dropped.
    pub(crate) fn intercept(&self, from: &Upid, to: &Upid, payload: &Payload) -> bool {
        let mut entries = self.entries.lock();
        let Some(index) = entries.iter().position(|e| (e.test)(from, to, payload)) else {
            return false;
        };
        if matches!(entries[index].action, Action::DropAll) {
            return true;
        }
        let entry = entries.remove(index);
        self.active.store(!entries.is_empty(), Ordering::Release);
        drop(entries);
        match entry.action {
            Action::Capture(capture) => {
                capture(from, to, payload);
                false
            }
            Action::DropOnce(capture) => {
                capture(from, to, payload);
                true
            }
            Action::DropAll => true,
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
}

impl Drop for FilterGuard {
    fn drop(&mut self) {
        if let Some(node) = self.filters.upgrade() {
            node.filters.remove(self.id);
        }
    }
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
        let id = self
            .inner
            .filters
            .add(typed_test::<M>(from.into(), to.into()), Action::DropAll);
        FilterGuard {
            filters: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// Drops every message for which `predicate` is true while the guard lives.
    pub fn drop_messages_where(
        &self,
        predicate: impl Fn(&MessageInfo<'_>) -> bool + Send + Sync + 'static,
    ) -> FilterGuard {
        let test: Test = Box::new(move |from, to, payload| {
            predicate(&MessageInfo {
                from,
                to,
                name: payload.full_name(),
            })
        });
        let id = self.inner.filters.add(test, Action::DropAll);
        FilterGuard {
            filters: Arc::downgrade(&self.inner),
            id,
        }
    }
}
