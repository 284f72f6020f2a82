//! Request/response over messages: send a request from a temporary address and wait, with a
//! timeout on the node's clock, for the first reply of the expected type sent back to it.
//!
//! The receiving process needs nothing special: its handler answers with
//! `ctx.send(&from, Reply { .. })`, now or later. Because the temporary address is an ordinary
//! UPID, asks work the same across nodes.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::http::{HttpRequest, HttpResponse};
use crate::mailbox::{Mailbox, ProcessSlot};
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
    /// The node shut down while waiting.
    #[error("the node shut down before a reply arrived")]
    NodeStopped,
}

/// A one-shot mailbox that accepts the first message of type `R`.
struct ReplySlot<R> {
    tx: Mutex<Option<oneshot::Sender<R>>>,
    node: Arc<NodeInner>,
}

impl<R: Message> Mailbox for ReplySlot<R> {
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery> {
        if !delivery.payload.is::<R>() {
            self.node.m.dropped_unknown_message.inc();
            return Ok(());
        }
        match delivery.payload.into_typed::<R>() {
            Ok(reply) => {
                if let Some(tx) = self.tx.lock().take() {
                    let _ = tx.send(reply);
                }
            }
            Err(_) => self.node.m.dropped_undecodable.inc(),
        }
        Ok(())
    }

    fn exited(&self, _pid: Upid) {}

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

/// Removes the reply slot however the ask ends (reply, timeout, or the future being dropped).
struct SlotGuard {
    node: Arc<NodeInner>,
    id: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.node.processes.remove(&self.id);
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
                    tx: Mutex::new(Some(tx)),
                    node: self.inner.clone(),
                }),
                done,
            },
        );
        let _guard = SlotGuard {
            node: self.inner.clone(),
            id,
        };
        self.send_from(&pid, to, req);
        match self.clock().timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(AskError::NodeStopped),
            Err(_) => Err(AskError::Timeout {
                to: to.clone(),
                timeout,
            }),
        }
    }
}
