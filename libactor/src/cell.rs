//! The actix actor that hosts one [`Process`]: its mailbox, its dispatch of messages to the
//! installed handlers, and its lifecycle (initialize → messages → finalize → exited links).
//!
//! Every event that enters the mailbox is counted; the depth (entered minus handled) is what
//! `/__processes__` reports and [`crate::Clock::settle`] waits to reach zero.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix::{Actor, ActorContext, Addr, AsyncContext, Handler};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::http::{HttpReply, HttpRequest, HttpResponse};
use crate::mailbox::Mailbox;
use crate::message::{Delivery, Proof};
use crate::node::NodeInner;
use crate::{Context, Node, Process, Upid};

/// A closure run inside the process (dispatch, timers, deferred futures).
pub(crate) type DispatchFn<P> = Box<dyn FnOnce(&mut P, &mut Context<P>) + Send>;

pub(crate) struct Cell<P: Process> {
    /// Boxed because actix actors must be `Unpin` and processes need not be.
    process: Box<P>,
    ctx: Context<P>,
    stats: Arc<MailboxStats>,
    node: Arc<NodeInner>,
}

/// The kinds of event a mailbox counts apart (libprocess's event queue reports them apart:
/// Mesos's `master/event_queue_messages`, `…_dispatches`, `…_http_requests`).
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A message from another process.
    Message = 0,
    /// Everything the process gives itself: dispatches, timers, deferred futures, link exits,
    /// its start and its stop.
    Dispatch = 1,
    /// An HTTP request for one of its routes.
    Http = 2,
}

impl<P: Process> Event<P> {
    fn kind(&self) -> Kind {
        match self {
            Event::Deliver(_) => Kind::Message,
            Event::Http(_) => Kind::Http,
            Event::Dispatch(_) | Event::Exited(_) | Event::Terminate => Kind::Dispatch,
        }
    }
}

/// Mailbox counters, by [`Kind`]. `handled` has one writer (the process's arbiter), so it is
/// bumped with a plain store instead of a locked read-modify-write.
pub(crate) struct MailboxStats {
    /// False once the process has stopped: senders that cached this mailbox must not queue
    /// into it (actix may still accept messages for a moment, and would drop them).
    alive: AtomicBool,
    /// Events queued since start (any thread).
    enqueued: [AtomicU64; 3],
    /// Events handled since start.
    handled: [AtomicU64; 3],
}

impl Default for MailboxStats {
    fn default() -> Self {
        MailboxStats {
            alive: AtomicBool::new(true),
            enqueued: Default::default(),
            handled: Default::default(),
        }
    }
}

impl MailboxStats {
    fn queued(&self, kind: Kind) -> u64 {
        let handled = self.handled[kind as usize].load(Ordering::Acquire);
        self.enqueued[kind as usize]
            .load(Ordering::Acquire)
            .saturating_sub(handled)
    }

    /// Events queued or being handled.
    pub(crate) fn depth(&self) -> u64 {
        let d = self.depths();
        d.messages + d.dispatches + d.http_requests
    }

    /// Events queued or being handled, by kind.
    pub(crate) fn depths(&self) -> QueueDepths {
        QueueDepths {
            messages: self.queued(Kind::Message),
            dispatches: self.queued(Kind::Dispatch),
            http_requests: self.queued(Kind::Http),
        }
    }

    /// Messages handled since start.
    pub(crate) fn messages(&self) -> u64 {
        self.handled[Kind::Message as usize].load(Ordering::Relaxed)
    }
}

/// What waits in a process's mailbox, by kind; the event being handled counts until it
/// returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Messages from other processes.
    pub messages: u64,
    /// Dispatches, timers, deferred futures and link exits.
    pub dispatches: u64,
    /// HTTP requests for its routes.
    pub http_requests: u64,
}

/// A handle on one process's mailbox counters that any thread may read (e.g. a metrics
/// gauge computed when a snapshot is taken).
#[derive(Clone)]
pub struct QueueGauge(Arc<MailboxStats>);

impl QueueGauge {
    /// What waits in the mailbox now.
    pub fn depths(&self) -> QueueDepths {
        self.0.depths()
    }
}

impl std::fmt::Debug for QueueGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("QueueGauge").field(&self.depths()).finish()
    }
}

/// Adds `n` to a counter that only the calling thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Release);
}

/// The address of a [`Cell`] plus its counters: what the node's process table, timers and
/// [`crate::ProcessRef`]s hold.
pub(crate) struct CellHandle<P: Process> {
    addr: Addr<Cell<P>>,
    stats: Arc<MailboxStats>,
}

impl<P: Process> Clone for CellHandle<P> {
    fn clone(&self) -> Self {
        CellHandle {
            addr: self.addr.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<P: Process> CellHandle<P> {
    /// A handle on this process's mailbox counters.
    pub(crate) fn queue_gauge(&self) -> QueueGauge {
        QueueGauge(self.stats.clone())
    }

    /// Queues `event`, counting it; gives it back if the actor has stopped.
    fn enqueue(&self, event: Event<P>) -> Result<(), Event<P>> {
        if !self.stats.alive.load(Ordering::Acquire) || !self.addr.connected() {
            return Err(event);
        }
        self.stats.enqueued[event.kind() as usize].fetch_add(1, Ordering::AcqRel);
        self.addr.do_send(event);
        Ok(())
    }

    pub(crate) fn dispatch(&self, f: DispatchFn<P>) -> bool {
        self.enqueue(Event::Dispatch(f)).is_ok()
    }
}

/// Starts a process on `arbiter`; returns its handle at once (initialize runs on the arbiter,
/// before any message).
pub(crate) fn start<P: Process>(
    process: P,
    pid: Upid,
    node: Node,
    arbiter: &actix_rt::ArbiterHandle,
) -> CellHandle<P> {
    let stats = Arc::new(MailboxStats::default());
    // Starting counts as an event, so that `settle` waits for `initialize` too.
    stats.enqueued[Kind::Dispatch as usize].store(1, Ordering::Release);
    let cell_stats = stats.clone();
    let addr = Cell::start_in_arbiter(arbiter, move |actx: &mut actix::Context<Cell<P>>| {
        let me = CellHandle {
            addr: actx.address(),
            stats: cell_stats.clone(),
        };
        let inner = node.inner.clone();
        Cell {
            process: Box::new(process),
            ctx: Context::new(pid, node, me),
            stats: cell_stats,
            node: inner,
        }
    });
    CellHandle { addr, stats }
}

impl<P: Process> Actor for Cell<P> {
    type Context = actix::Context<Self>;

    fn started(&mut self, actx: &mut Self::Context) {
        let span = tracing::debug_span!("initialize", pid = %self.ctx.pid());
        let _entered = span.enter();
        self.process.initialize(&mut self.ctx);
        bump(&self.stats.handled[Kind::Dispatch as usize], 1);
        if self.ctx.stop_requested {
            actx.stop();
        }
    }

    fn stopped(&mut self, _actx: &mut Self::Context) {
        self.stats.alive.store(false, Ordering::Release);
        self.node
            .messages_of_terminated
            .fetch_add(self.stats.messages(), Ordering::Relaxed);
        {
            let span = tracing::debug_span!("finalize", pid = %self.ctx.pid());
            let _entered = span.enter();
            self.process.finalize(&mut self.ctx);
        }
        self.node.process_terminated(self.ctx.pid());
    }
}

/// Everything that enters a process's mailbox.
pub(crate) enum Event<P: Process> {
    /// A message from another process.
    Deliver(Delivery),
    /// A closure to run inside the process (dispatch, timers, deferred futures).
    Dispatch(DispatchFn<P>),
    /// A linked process has terminated.
    Exited(Upid),
    /// An HTTP request for one of the process's routes (boxed: rare, and large enough to
    /// slow down every message if it were inline).
    Http(Box<(HttpRequest, oneshot::Sender<HttpResponse>)>),
    /// Stop the process.
    Terminate,
}

impl<P: Process> actix::Message for Event<P> {
    type Result = ();
}

impl<P: Process> Handler<Event<P>> for Cell<P> {
    type Result = ();

    fn handle(&mut self, event: Event<P>, actx: &mut Self::Context) {
        let kind = event.kind();
        match event {
            Event::Deliver(delivery) => self.deliver(delivery),
            Event::Dispatch(f) => {
                let span = tracing::debug_span!("dispatch", pid = %self.ctx.pid());
                let _entered = span.enter();
                f(&mut *self.process, &mut self.ctx);
            }
            Event::Exited(pid) => {
                let span = tracing::debug_span!("exited", pid = %self.ctx.pid(), linked = %pid);
                let _entered = span.enter();
                self.process.exited(&mut self.ctx, &pid);
            }
            Event::Http(call) => self.http(call.0, call.1),
            Event::Terminate => self.ctx.stop_requested = true,
        }
        bump(&self.stats.handled[kind as usize], 1);
        if self.ctx.stop_requested {
            actx.stop();
        }
    }
}

impl<P: Process> Cell<P> {
    fn deliver(&mut self, delivery: Delivery) {
        let Delivery {
            from,
            proof,
            payload,
            permit,
        } = delivery;
        let m = &self.node.m;
        match self.ctx.handler_for(&payload) {
            Some(handler) => {
                let span = tracing::debug_span!(
                    "message",
                    pid = %self.ctx.pid(),
                    from = %from,
                    name = payload.short_name()
                );
                let _entered = span.enter();
                self.ctx.proof = proof;
                let handled = handler(&mut *self.process, &mut self.ctx, from, payload);
                self.ctx.proof = Proof::Local;
                if let Err(e) = handled {
                    m.dropped_undecodable.inc();
                    tracing::warn!(pid = %self.ctx.pid(), error = %e, "dropped a message whose body does not decode");
                }
            }
            None => {
                m.dropped_unknown_message.inc();
                tracing::warn!(
                    pid = %self.ctx.pid(),
                    from = %from,
                    name = %payload.full_name(),
                    "dropped a message with no installed handler"
                );
            }
        }
        drop(permit);
    }

    fn http(&mut self, req: HttpRequest, reply: oneshot::Sender<HttpResponse>) {
        let span = tracing::debug_span!("http", pid = %self.ctx.pid(), path = %req.path);
        let Some(route) = self.ctx.route_for(&req.path) else {
            let _ = reply.send(HttpResponse::not_found(format!(
                "process {} has no route {}; routes: {:?}",
                self.ctx.pid().id(),
                req.path,
                self.ctx.routes()
            )));
            return;
        };
        let out = {
            let _entered = span.enter();
            route(&mut *self.process, &mut self.ctx, req)
        };
        match out {
            HttpReply::Now(resp) => {
                let _ = reply.send(resp);
            }
            HttpReply::Later(fut) => {
                actix_rt::spawn(
                    async move {
                        let _ = reply.send(fut.await);
                    }
                    .instrument(span),
                );
            }
        }
    }
}

impl<P: Process> Mailbox for CellHandle<P> {
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery> {
        self.enqueue(Event::Deliver(delivery)).map_err(|e| match e {
            Event::Deliver(d) => d,
            _ => unreachable!("enqueue gives back the event it was given"),
        })
    }

    fn exited(&self, pid: Upid) {
        let _ = self.enqueue(Event::Exited(pid));
    }

    fn http(&self, req: HttpRequest, reply: oneshot::Sender<HttpResponse>) {
        let _ = self.enqueue(Event::Http(Box::new((req, reply))));
    }

    fn terminate(&self) {
        let _ = self.enqueue(Event::Terminate);
    }

    fn depth(&self) -> u64 {
        self.stats.depth()
    }

    fn messages_handled(&self) -> u64 {
        self.stats.messages()
    }
}
