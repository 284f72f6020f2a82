//! Request/response over messages: send a request from a temporary address and wait, with a
//! timeout on the node's clock, for the first reply of the expected type sent back to it.
//!
//! The receiving process needs nothing special: its handler answers with
//! `ctx.send(&from, Reply { .. })`, now or later. Because the temporary address is an ordinary
//! UPID, asks work the same across nodes.
//!
//! An ask fails fast where the node already knows the answer will not come: the temporary
//! address links to the target, so a target that does not exist (here, or on a peer that says
//! so), that terminates, or whose node cannot be reached ends the ask at once with its own
//! [`AskError`]; so does a reply of another type than the one asked for.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::http::{HttpRequest, HttpResponse};
use crate::mailbox::{ExitCause, Mailbox, ProcessSlot};
use crate::message::Delivery;
use crate::node::NodeInner;
use crate::{Message, Node, Upid};

/// Why an ask got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// No reply arrived in time.
    #[error("no reply from {to} within {timeout:?}")]
    Timeout {
        /// Who was asked.
        to: Upid,
        /// How long we waited, on the node's clock.
        timeout: Duration,
    },
    /// The target is a local process that does not exist.
    #[error("no process {0} on this node")]
    UnknownProcess(Upid),
    /// The target does not exist on its node (the node said so) or terminated before replying.
    #[error("{0} does not exist or terminated before replying")]
    Exited(Upid),
    /// The target's node cannot be reached: the connection was refused, timed out or broke.
    #[error("cannot reach the node of {0}")]
    Unreachable(Upid),
    /// The target answered with another message than the one asked for.
    #[error("{to} replied with {got}, not the {expected} asked for")]
    UnexpectedReply {
        /// Who was asked.
        to: Upid,
        /// The full name of the message type asked for.
        expected: String,
        /// The full name of the message that came back.
        got: String,
    },
    /// The node shut down while waiting.
    #[error("the node shut down before a reply arrived")]
    NodeStopped,
}

/// A one-shot mailbox that takes the first message of type `R`, or ends the ask with why
/// none will come.
struct ReplySlot<R> {
    to: Upid,
    tx: Mutex<Option<oneshot::Sender<Result<R, AskError>>>>,
    node: Arc<NodeInner>,
}

impl<R> ReplySlot<R> {
    fn finish(&self, result: Result<R, AskError>) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(result);
        }
    }
}

impl<R: Message> Mailbox for ReplySlot<R> {
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery> {
        // Who may answer: on a secure node, only a process on the node asked (the transport
        // has proven the sender's node); anyone else is dropped and counted, the ask goes on.
        if self.node.config.tls.is_some() && delivery.from.address() != self.to.address() {
            self.node.m.dropped_unauthenticated_sender.inc();
            tracing::warn!(to = %self.to, from = %delivery.from, "dropped an answer to an ask from another node than the one asked");
            return Ok(());
        }
        if !delivery.payload.is::<R>() {
            self.node.m.dropped_unknown_message.inc();
            let got = delivery.payload.full_name();
            let expected = R::full_name();
            tracing::warn!(to = %self.to, %expected, %got, "ask answered with another message type");
            self.finish(Err(AskError::UnexpectedReply {
                to: self.to.clone(),
                expected,
                got,
            }));
            return Ok(());
        }
        match delivery.payload.into_typed::<R>() {
            Ok(reply) => self.finish(Ok(reply)),
            Err(_) => self.node.m.dropped_undecodable.inc(),
        }
        Ok(())
    }

    fn exited(&self, pid: Upid) {
        self.exited_because(pid, ExitCause::Terminated);
    }

    fn exited_because(&self, _pid: Upid, cause: ExitCause) {
        self.finish(Err(match cause {
            ExitCause::Terminated => AskError::Exited(self.to.clone()),
            ExitCause::Unreachable => AskError::Unreachable(self.to.clone()),
        }));
    }

    fn http(&self, _req: HttpRequest, reply: oneshot::Sender<HttpResponse>) {
        let _ = reply.send(HttpResponse::not_found("reply slots serve no routes"));
    }

    fn terminate(&self) {
        self.tx.lock().take();
    }

    fn depth(&self) -> u64 {
        0
    }

    fn messages_handled(&self) -> u64 {
        0
    }
}

/// Removes the reply slot and its link however the ask ends (reply, error, timeout, or the
/// future being dropped).
struct SlotGuard {
    node: Arc<NodeInner>,
    id: String,
    pid: Upid,
    to: Upid,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.node.processes.remove(&self.id);
        self.node.unlink(&self.pid, &self.to);
    }
}

impl Node {
    /// Sends `req` to `to` and waits up to `timeout` (on the node's clock) for the first `Resp`
    /// sent back to the request's sender.
    pub async fn ask<Req: Message, Resp: Message>(
        &self,
        to: &Upid,
        req: Req,
        timeout: Duration,
    ) -> Result<Resp, AskError> {
        if self.is_stopped() {
            return Err(AskError::NodeStopped);
        }
        if to.address() == self.address() && !self.is_running(to) {
            return Err(AskError::UnknownProcess(to.clone()));
        }
        let id = self.generate_id("__ask__");
        let pid = self.pid(&id).expect("generated ids are valid process ids");
        let (tx, rx) = oneshot::channel();
        let (done, _) = tokio::sync::watch::channel(false);
        self.inner.processes.insert(
            id.clone(),
            ProcessSlot {
                pid: pid.clone(),
                mailbox: Arc::new(ReplySlot::<Resp> {
                    to: to.clone(),
                    tx: Mutex::new(Some(tx)),
                    node: self.inner.clone(),
                }),
                done,
            },
        );
        let _guard = SlotGuard {
            node: self.inner.clone(),
            id,
            pid: pid.clone(),
            to: to.clone(),
        };
        // Linked first: the link request and the request travel in order, so the target's node
        // answers the link before it could have handled the request.
        self.inner.link(&pid, to);
        self.send_from(&pid, to, req);
        match self.clock().timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AskError::NodeStopped),
            Err(_) => Err(AskError::Timeout {
                to: to.clone(),
                timeout,
            }),
        }
    }
}
