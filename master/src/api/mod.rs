//! The master's public HTTP APIs, Mesos's v1: `POST /api/v1/scheduler` (the scheduler API,
//! [`scheduler`]) and `POST /api/v1` (the operator API, [`operator`]), served by one process on
//! the master's node, `api`, beside the master so that neither API's clients ever wait on it
//! for reads: the process keeps its own [`view::ClusterView`] of the cluster from the master's
//! events.
//!
//! Modules: [`scheduler`] (calls and subscriptions of HTTP frameworks), [`adapter`] (each
//! subscribed framework as the master sees it: a scheduler), [`operator`] (the operator
//! calls and the `SUBSCRIBE` event stream), [`view`] (the cluster from the master's events).

pub mod adapter;
pub mod events;
pub mod json_out;
pub mod mesos_gauges;
pub mod operator;
mod prefetch;
pub mod scheduler;
mod scheduler_calls;
pub mod state_json;
pub mod state_shape;
pub mod state_thread;
pub mod task_wire;
pub mod view;

use std::sync::{Arc, OnceLock};

use authentication::acls::Acls;
use authentication::{roles, Credentials};
use libactor::metrics::Counter;
use libactor::{Context, HttpRequest, HttpResponse, Node, Process, ProcessRef, SpawnError, Upid};

use crate::master::{FeedQueue, Master};
use adapter::FrameworkAdapter;
pub use scheduler::validate;

/// The gateway's process id: requests to `/api/…` reach it.
pub const API_PROCESS: &str = "api";
/// Events a subscriber may fall behind by before it is cut off: a scheduler launching tasks
/// in thousands per accept gets two updates per task in a burst, which its reader drains
/// while the master keeps producing.
pub const STREAM_CAPACITY: usize = 256 * 1024;
/// Bytes a subscriber may fall behind by before it is cut off (what bounds its memory).
pub const STREAM_MAX_BYTES: usize = 64 << 20;
/// The header naming a subscription.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// Which adapter holds each subscribed framework's stream, shared by the gateway and the
/// adapters (which add themselves once subscribed and remove themselves when they end).
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Arc<dashmap::DashMap<String, Subscription>>);

/// A subscribed framework's stream id, the principal that subscribed it, and its adapter.
#[derive(Debug, Clone)]
struct Subscription {
    stream_id: String,
    principal: Option<String>,
    adapter: ProcessRef<FrameworkAdapter>,
}

impl Subscriptions {
    fn insert(&self, framework: String, subscription: Subscription) {
        self.0.insert(framework, subscription);
    }

    fn remove(&self, framework: &str, adapter: &Upid) {
        self.0
            .remove_if(framework, |_, s| s.adapter.pid() == adapter);
    }

    fn get(&self, framework: &str) -> Option<Subscription> {
        self.0.get(framework).map(|e| e.value().clone())
    }

    /// How many frameworks are subscribed over HTTP.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no framework is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who may use the APIs: credentials for HTTP Basic, and the ACLs that decide what each reader
/// sees and which frameworks each operator may tear down.
#[derive(Debug, Clone, Default)]
pub struct ApiAuthentication {
    /// Principals and secrets for HTTP Basic.
    pub credentials: Option<Credentials>,
    /// An insecure master that requires frameworks to authenticate.
    pub required: bool,
    /// `--acls` (`view_frameworks`, `view_tasks`).
    pub acls: Acls,
}

/// The master the gateway serves, once it runs (the gateway starts first, so that it hears the
/// master's first events).
pub type MasterCell = Arc<OnceLock<ProcessRef<Master>>>;

/// The API process.
pub struct ApiGateway {
    master: Upid,
    master_cell: MasterCell,
    auth: ApiAuthentication,
    subscriptions: Subscriptions,
    operator: operator::OperatorState,
    /// The master's changes not yet applied to the view.
    feed: Arc<FeedQueue>,
    /// Where large reads are built.
    state: Option<state_thread::StateThread>,
    /// What waits for the changes held back while the state thread reads the view.
    waiting: Vec<state_thread::Deferred>,
    refused: Option<Counter>,
    subscribed: Option<Counter>,
}

impl ApiGateway {
    /// A gateway for the master at `master` (on the same node), reachable through `cell` once
    /// it runs, whose changes arrive in `feed`; `master_id` names it in `GET_MASTER`.
    pub fn new(
        master: Upid,
        cell: MasterCell,
        feed: Arc<FeedQueue>,
        master_id: &str,
        auth: ApiAuthentication,
    ) -> ApiGateway {
        ApiGateway {
            master,
            master_cell: cell,
            auth,
            subscriptions: Subscriptions::default(),
            operator: operator::OperatorState::new(master_id),
            feed,
            state: None,
            waiting: Vec::new(),
            refused: None,
            subscribed: None,
        }
    }

    /// Spawns the gateway on `node` for its `master` process (before the master, so that it
    /// hears the master's first events).
    pub fn spawn(
        node: &Node,
        cell: MasterCell,
        feed: Arc<FeedQueue>,
        master_id: &str,
        auth: ApiAuthentication,
    ) -> Result<ProcessRef<ApiGateway>, SpawnError> {
        let master = node.pid("master")?;
        let gateway = ApiGateway::new(master, cell, feed, master_id, auth);
        node.spawn_ref_dedicated(API_PROCESS, gateway)
    }

    /// Records the master's flags as `GET_FLAGS` reports them.
    pub fn set_flags(&mut self, _ctx: &mut Context<Self>, flags: Vec<(String, String)>) {
        self.operator.set_flags(flags);
    }

    fn refuse(&self, status: u16, why: impl Into<String>) -> HttpResponse {
        if let Some(c) = &self.refused {
            c.inc();
        }
        let why = why.into();
        tracing::debug!(status, %why, "API call refused");
        HttpResponse::text(status, format!("{why}\n"))
    }

    /// The framework principal `req` proves, or the refusal (see [`scheduler`]).
    fn principal(
        &self,
        ctx: &Context<Self>,
        req: &HttpRequest,
    ) -> Result<Option<String>, HttpResponse> {
        if let Some(identity) = &req.identity {
            if identity.has_role(roles::FRAMEWORK) {
                return Ok(Some(identity.principal().to_owned()));
            }
            return Err(self.refuse(
                403,
                format!(
                    "principal {} lacks the framework role",
                    identity.principal()
                ),
            ));
        }
        let secure = ctx.node().is_secure();
        if !secure && !self.auth.required {
            return Ok(None);
        }
        let Some(credentials) = &self.auth.credentials else {
            return Err(self.refuse(
                401,
                "frameworks prove themselves with a client certificate in the framework role",
            ));
        };
        match credentials.check_basic(req.header("authorization")) {
            Ok(p) if credentials.has_role(&p, roles::FRAMEWORK) => Ok(Some(p)),
            Ok(p) => Err(self.refuse(403, format!("principal {p} lacks the framework role"))),
            Err(e) => Err(self
                .refuse(401, e.to_string())
                .with_header("www-authenticate", "Basic realm=\"keel\"")),
        }
    }
}

impl Process for ApiGateway {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.refused = Some(m.counter("master/api/calls_refused"));
        self.subscribed = Some(m.counter("master/api/subscriptions"));
        let subscriptions = self.subscriptions.clone();
        m.gauge_fn("master/api/subscribers", move || subscriptions.len() as f64);
        self.operator.initialize(ctx);
        match state_thread::StateThread::spawn(
            self.operator.view.clone(),
            self.auth.acls.clone(),
            ctx.self_ref(),
        ) {
            Ok(thread) => self.state = Some(thread),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the state thread; state reads answer 503")
            }
        }
        operator::drain_periodically(self, ctx);
        ctx.route("/v1/scheduler", Self::scheduler);
        ctx.route("/v1", Self::operator);
    }
}
