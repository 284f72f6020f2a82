//! What a process can do while it handles a message: send, install handlers and routes, link,
//! set timers, defer async work and terminate. One [`Context`] per process.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::ask::AskError;
use crate::cell::CellHandle;
use crate::http::{HttpReply, HttpRequest};
use crate::message::{DecodeError, Delivery, Payload, Proof};
use crate::node::ReceiverCache;
use crate::{Message, Metrics, Node, Process, ProcessRef, Timer, Upid};

pub(crate) type HandlerFn<P> =
    Rc<dyn Fn(&mut P, &mut Context<P>, Upid, Payload) -> Result<(), DecodeError>>;
pub(crate) type RouteFn<P> = Rc<dyn Fn(&mut P, &mut Context<P>, HttpRequest) -> HttpReply>;

/// A process's handlers, keyed by type for local sends and by full name for remote ones.
pub(crate) struct Handlers<P: Process> {
    by_type: FxHashMap<TypeId, HandlerFn<P>>,
    by_name: FxHashMap<String, HandlerFn<P>>,
    routes: HashMap<String, RouteFn<P>>,
}

impl<P: Process> Handlers<P> {
    fn new() -> Self {
        Handlers {
            by_type: FxHashMap::default(),
            by_name: FxHashMap::default(),
            routes: HashMap::new(),
        }
    }
}

/// The route path that serves every path of a process without a route of its own.
pub const FALLBACK_ROUTE: &str = "/*";

/// The running process's view of the runtime. Passed to every handler with the process itself.
pub struct Context<P: Process> {
    pid: Upid,
    node: Node,
    me: CellHandle<P>,
    handlers: Handlers<P>,
    /// The last local process this one sent to: processes mostly talk to the same few peers,
    /// and this skips the node's table on repeated sends.
    last_receiver: RefCell<ReceiverCache>,
    /// What proves the sender of the message being handled.
    pub(crate) proof: Proof,
    pub(crate) stop_requested: bool,
}

impl<P: Process> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("pid", &self.pid).finish()
    }
}

impl<P: Process> Context<P> {
    pub(crate) fn new(pid: Upid, node: Node, me: CellHandle<P>) -> Self {
        Context {
            pid,
            node,
            me,
            handlers: Handlers::new(),
            last_receiver: RefCell::new(ReceiverCache::default()),
            proof: Proof::Local,
            stop_requested: false,
        }
    }

    /// The proven identity of the sender of the message being handled: the peer's
    /// certificate for a message from another node, this node's own for a local one. `None`
    /// on an insecure node, or outside a message handler's view of a remote sender.
    ///
    /// The `from` a handler receives is a claim; this is the proof. On a secure node the
    /// transport has already dropped messages whose `from` is on another node than the
    /// connection proved, so `from`'s host belongs to this identity.
    pub fn sender_identity(&self) -> Option<&crate::Identity> {
        match &self.proof {
            Proof::Local => self.node.identity(),
            Proof::Peer(identity) => Some(identity),
            Proof::Unproven => None,
        }
    }

    /// Whether the message being handled came from a process of this node (no connection:
    /// the node's own code, trusted as the node is).
    pub fn sender_is_local(&self) -> bool {
        matches!(self.proof, Proof::Local)
    }

    /// Whether the sender of the message being handled has proven it acts in `role`. A refusal
    /// is counted (`libactor/refused/unauthorized`) and logged with the principal; the handler
    /// then ignores the message. On an insecure node nothing is proven and everyone is
    /// admitted: that is what `--insecure` gives up.
    pub fn authorize(&self, role: &str) -> bool {
        self.authorize_any(&[role])
    }

    /// As [`Context::authorize`], for a message that any of `roles` may send.
    pub fn authorize_any(&self, roles: &[&str]) -> bool {
        if !self.node.is_secure() {
            return true;
        }
        let identity = self.sender_identity();
        if identity.is_some_and(|i| roles.iter().any(|r| i.has_role(r))) {
            return true;
        }
        self.node.inner.m.refused_unauthorized.inc();
        tracing::warn!(
            pid = %self.pid,
            principal = identity.map_or("(none)", |i| i.principal()),
            needs = ?roles,
            "refused a message: its proven sender lacks the role"
        );
        false
    }

    /// This process's address.
    pub fn pid(&self) -> &Upid {
        &self.pid
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        self.node.metrics()
    }

    /// What waits in this process's mailbox, readable from any thread (for gauges such as
    /// Mesos's `master/event_queue_messages`).
    pub fn queue_gauge(&self) -> crate::QueueGauge {
        self.me.queue_gauge()
    }

    /// A typed handle to this process, e.g. to give to a helper that dispatches back into it.
    pub fn self_ref(&self) -> ProcessRef<P> {
        ProcessRef {
            pid: self.pid.clone(),
            handle: self.me.clone(),
        }
    }

    /// Sends `msg` to `to` (fire-and-forget). A local receiver gets the typed value without any
    /// encoding; a remote one gets it encoded once, over the node's connection to that peer.
    pub fn send<M: Message>(&self, to: &Upid, msg: M) {
        let inner = &self.node.inner;
        if to.address() != inner.address {
            return self.node.send_from(&self.pid, to, msg);
        }
        let delivery = Delivery {
            from: self.pid.clone(),
            proof: Proof::Local,
            payload: Payload::local(msg),
            permit: None,
        };
        inner.deliver_cached(&mut self.last_receiver.borrow_mut(), to.id(), delivery);
    }

    /// Installs `handler` for messages of type `M` (keyed by `M`'s full protobuf name), replacing
    /// any earlier handler for `M`. The handler sees the sender's address.
    pub fn install<M: Message>(
        &mut self,
        handler: impl Fn(&mut P, &mut Context<P>, Upid, M) + 'static,
    ) {
        let f: HandlerFn<P> = Rc::new(move |p, ctx, from, payload| {
            let msg = payload.into_typed::<M>()?;
            handler(p, ctx, from, msg);
            Ok(())
        });
        self.handlers.by_type.insert(TypeId::of::<M>(), f.clone());
        self.handlers.by_name.insert(M::full_name(), f);
    }

    /// Serves `handler` at `/{id}{path}` on the node's HTTP port (`path` starts with `/`).
    /// A path ending in `/*` serves every path below it that has no route of its own (`/quota/*`
    /// serves `/quota/dev`); the nearest such route wins, and [`FALLBACK_ROUTE`] (`/*`) serves
    /// whatever is left (a standby master redirecting every path, say).
    pub fn route<R: Into<HttpReply>>(
        &mut self,
        path: &str,
        handler: impl Fn(&mut P, &mut Context<P>, HttpRequest) -> R + 'static,
    ) {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        self.handlers.routes.insert(
            path,
            Rc::new(move |p, ctx, req| handler(p, ctx, req).into()),
        );
    }

    pub(crate) fn handler_for(&self, payload: &Payload) -> Option<HandlerFn<P>> {
        match payload {
            Payload::Local { value, .. } => self
                .handlers
                .by_type
                .get(&std::any::Any::type_id(&**value))
                .cloned(),
            Payload::Encoded { name, .. } => self.handlers.by_name.get(&**name).cloned(),
        }
    }

    pub(crate) fn route_for(&self, path: &str) -> Option<RouteFn<P>> {
        if let Some(route) = self.handlers.routes.get(path) {
            return Some(route.clone());
        }
        let mut below = path;
        while let Some(slash) = below.rfind('/') {
            below = &below[..slash];
            if let Some(route) = self.handlers.routes.get(&format!("{below}/*")) {
                return Some(route.clone());
            }
        }
        None
    }

    /// The paths of this process's HTTP routes.
    pub fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = self.handlers.routes.keys().cloned().collect();
        routes.sort();
        routes
    }

    /// Links to `pid`: [`Process::exited`] runs when it terminates (at once if it is already
    /// gone) or, for a remote process, when the connection to its node breaks.
    pub fn link(&self, pid: &Upid) {
        self.node.inner.link(&self.pid, pid);
    }

    /// Removes a link made by [`Context::link`].
    pub fn unlink(&self, pid: &Upid) {
        self.node.inner.unlink(&self.pid, pid);
    }

    /// Runs `f` inside this process once `d` has passed on the node's clock (libprocess's
    /// `delay`). Cancel the returned [`Timer`] to prevent it.
    pub fn delay(
        &self,
        d: Duration,
        f: impl FnOnce(&mut P, &mut Context<P>) + Send + 'static,
    ) -> Timer {
        let me = self.me.clone();
        self.node.clock().schedule(d, move || {
            me.dispatch(Box::new(f));
        })
    }

    /// Sends `msg` to `to` once `d` has passed on the node's clock, as this process.
    pub fn delay_send<M: Message>(&self, d: Duration, to: &Upid, msg: M) -> Timer {
        let (node, from, to) = (self.node.clone(), self.pid.clone(), to.clone());
        self.node
            .clock()
            .schedule(d, move || node.send_from(&from, &to, msg))
    }

    /// Runs `fut` on this process's arbiter and, when it completes, runs `then` inside the
    /// process with its output (libprocess's `defer`). The process keeps handling messages
    /// meanwhile.
    pub fn defer<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + 'static,
        then: impl FnOnce(&mut P, &mut Context<P>, T) + Send + 'static,
    ) {
        let me = self.me.clone();
        actix_rt::spawn(async move {
            let out = fut.await;
            me.dispatch(Box::new(move |p, ctx| then(p, ctx, out)));
        });
    }

    /// Sends `req` to `to` and returns a future of the first `Resp` sent back to the request's
    /// sender, bounded by `timeout` on the node's clock. Combine with [`Context::defer`].
    pub fn ask<Req: Message, Resp: Message>(
        &self,
        to: &Upid,
        req: Req,
        timeout: Duration,
    ) -> impl Future<Output = Result<Resp, AskError>> + Send + 'static {
        let node = self.node.clone();
        let to = to.clone();
        async move { node.ask::<Req, Resp>(&to, req, timeout).await }
    }

    /// Terminates this process once the current handler returns.
    pub fn terminate(&mut self) {
        self.stop_requested = true;
    }
}
