//! What an actor is: the [`Process`] trait (libprocess's `ProcessBase`) and [`ProcessRef`], a
//! typed handle for dispatching closures into a running process.
//!
//! A process handles one message at a time on its arbiter and never blocks; work that blocks
//! goes to `tokio::task::spawn_blocking` and comes back through [`Context::defer`].

use crate::cell::CellHandle;
use crate::{Context, Upid};

/// An actor: state plus handlers installed in [`Process::initialize`].
///
/// ```
/// use libactor::{Context, Process, Upid};
/// use protos::libactor::examples::{Ping, Pong};
///
/// struct Echo;
///
/// impl Echo {
///     fn ping(&mut self, ctx: &mut Context<Self>, from: Upid, ping: Ping) {
///         ctx.send(&from, Pong { seq: ping.seq, payload: ping.payload });
///     }
/// }
///
/// impl Process for Echo {
///     fn initialize(&mut self, ctx: &mut Context<Self>) {
///         ctx.install(Self::ping);
///     }
/// }
/// ```
pub trait Process: Sized + Send + 'static {
    /// Runs once, before the first message: install handlers and routes, link, start timers.
    fn initialize(&mut self, _ctx: &mut Context<Self>) {}

    /// Runs once, after the last message, when the process terminates.
    fn finalize(&mut self, _ctx: &mut Context<Self>) {}

    /// A linked process terminated, or the connection to its node broke.
    fn exited(&mut self, _ctx: &mut Context<Self>, _pid: &Upid) {}
}

/// The process a [`ProcessRef`] points to has terminated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("process {0} has terminated")]
pub struct ProcessGone(pub Upid);

/// A typed handle to a local process: its [`Upid`] plus the ability to run closures inside it
/// (libprocess's `dispatch`). Cloning is cheap.
pub struct ProcessRef<P: Process> {
    pub(crate) pid: Upid,
    pub(crate) handle: CellHandle<P>,
}

impl<P: Process> Clone for ProcessRef<P> {
    fn clone(&self) -> Self {
        ProcessRef {
            pid: self.pid.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<P: Process> std::fmt::Debug for ProcessRef<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessRef({})", self.pid)
    }
}

impl<P: Process> ProcessRef<P> {
    /// The process's address.
    pub fn pid(&self) -> &Upid {
        &self.pid
    }

    /// Runs `f` inside the process, after the messages already queued. Returns false if the
    /// process has terminated.
    pub fn dispatch(&self, f: impl FnOnce(&mut P, &mut Context<P>) + Send + 'static) -> bool {
        self.handle.dispatch(Box::new(f))
    }

    /// Runs `f` inside the process and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut P, &mut Context<P>) -> R + Send + 'static,
    ) -> Result<R, ProcessGone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.dispatch(move |p, ctx| {
            let _ = tx.send(f(p, ctx));
        });
        if !sent {
            return Err(ProcessGone(self.pid.clone()));
        }
        rx.await.map_err(|_| ProcessGone(self.pid.clone()))
    }
}
