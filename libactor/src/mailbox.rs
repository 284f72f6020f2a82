//! What the node's process table holds for each process: somewhere to put messages, exit
//! notices, HTTP requests and the request to terminate.

use tokio::sync::oneshot;

use crate::http::{HttpRequest, HttpResponse};
use crate::message::Delivery;
use crate::Upid;

/// A process's mailbox as the node sees it. Implemented by actix-hosted processes and by the
/// one-shot reply slots of `ask`.
pub(crate) trait Mailbox: Send + Sync {
    /// Queues a message; gives it back if the process is gone.
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery>;
    /// Tells the process that a linked process terminated.
    fn exited(&self, pid: crate::Upid);
    /// [`Mailbox::exited`], saying whether the linkee is known to have ended or its node can
    /// no longer be reached; processes hear only `exited`, an ask tells its caller which.
    fn exited_because(&self, pid: crate::Upid, _cause: ExitCause) {
        self.exited(pid);
    }
    /// Queues an HTTP request for one of the process's routes.
    fn http(&self, req: HttpRequest, reply: oneshot::Sender<HttpResponse>);
    /// Asks the process to stop after the events already queued.
    fn terminate(&self);
    /// Events queued or being handled.
    fn depth(&self) -> u64;
    /// Messages handled since the process started.
    fn messages_handled(&self) -> u64;
}

/// Why a link fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitCause {
    /// The linkee terminated, or never existed (its node said so).
    Terminated,
    /// The connection to the linkee's node could not be made or broke.
    Unreachable,
}

/// One entry of the node's process table.
pub(crate) struct ProcessSlot {
    pub(crate) pid: Upid,
    pub(crate) mailbox: std::sync::Arc<dyn Mailbox>,
    /// Set to true once the process has terminated; `wait` subscribes to it.
    pub(crate) done: tokio::sync::watch::Sender<bool>,
}
