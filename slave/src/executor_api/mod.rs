//! `POST /api/v1/executor`: Mesos's v1 executor HTTP API on the agent, so that executors
//! written against it (pymesos's `MesosExecutorDriver`, …) run on Keel unmodified. The agent
//! starts every custom executor with Mesos's environment (`MESOS_AGENT_ENDPOINT`,
//! `MESOS_FRAMEWORK_ID`, `MESOS_EXECUTOR_ID`, …; see [`crate::executor`]).
//!
//! `SUBSCRIBE` answers `200` with a stream of RecordIO-framed events (`SUBSCRIBED`, `LAUNCH`,
//! `KILL`, `ACKNOWLEDGED`, `MESSAGE`, `SHUTDOWN`, `ERROR`, `HEARTBEAT`) and a
//! `Mesos-Stream-Id`. An executor that subscribes again after its agent restarted (its
//! connection broke; the agent recovered it and waits for it) is taken back, and the updates
//! it lists as unacknowledged are sent again, as Mesos's agent does; `UPDATE` and `MESSAGE` answer `202` (`400` with the reason when
//! malformed, `403` for an executor not subscribed). JSON or protobuf, as for the scheduler
//! API. Each subscription is an [`adapter::ExecutorAdapter`] that registers with the agent the
//! way Keel's executor driver does, so the agent treats both alike (its tasks, status update
//! retries, framework messages, shutdown).
//!
//! Who may call: on an insecure agent, anyone; on a secure one, the executor itself — its
//! certificate from the agent (principal `executor/<framework>/<executor>`) or the token the
//! agent put in its environment (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, sent as
//! `Authorization: Bearer …`, see [`token`]).

pub mod adapter;
pub mod token;

use std::sync::Arc;

use libactor::metrics::Counter;
use libactor::{
    Context, HttpReply, HttpRequest, HttpResponse, Node, Process, ProcessRef, SpawnError, Upid,
};
use protos::http_api::{read_call, read_call_to_answer, stream_encoding, Encoding};
use protos::v1::executor::{call, Call};

use adapter::ExecutorAdapter;
use token::ExecutorTokens;

/// The gateway's process id: requests to `/api/…` reach it.
pub const API_PROCESS: &str = "api";
/// Events an executor may fall behind by before it is cut off.
pub const STREAM_CAPACITY: usize = 4096;
/// The header naming a subscription.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// The subscribed executors (by `framework/executor`): their stream id and adapter.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Arc<dashmap::DashMap<String, (String, ProcessRef<ExecutorAdapter>)>>);

impl Subscriptions {
    fn key(framework: &str, executor: &str) -> String {
        format!("{framework}\u{0}{executor}")
    }

    fn get(
        &self,
        framework: &str,
        executor: &str,
    ) -> Option<(String, ProcessRef<ExecutorAdapter>)> {
        self.0
            .get(&Self::key(framework, executor))
            .map(|e| e.value().clone())
    }

    fn insert(
        &self,
        framework: &str,
        executor: &str,
        stream_id: String,
        adapter: ProcessRef<ExecutorAdapter>,
    ) {
        self.0
            .insert(Self::key(framework, executor), (stream_id, adapter));
    }

    fn remove(&self, framework: &str, executor: &str, adapter: &Upid) {
        self.0
            .remove_if(&Self::key(framework, executor), |_, (_, a)| {
                a.pid() == adapter
            });
    }

    /// How many executors are subscribed over HTTP.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The gateway process.
pub struct ExecutorApi {
    agent: Upid,
    /// The agent, which answers operator API calls.
    slave: ProcessRef<crate::slave::Slave>,
    tokens: Option<ExecutorTokens>,
    subscriptions: Subscriptions,
    refused: Option<Counter>,
    /// The sandboxes, for `LIST_FILES` and `READ_FILE`.
    files: crate::files::SandboxFiles,
}

impl ExecutorApi {
    /// Spawns a gateway on `node` for the agent `slave`, checking executors' tokens with
    /// `tokens` on a secure node; a second agent on the node shares the first one's gateway.
    pub fn spawn(
        node: &Node,
        slave: ProcessRef<crate::slave::Slave>,
        tokens: Option<ExecutorTokens>,
        files: crate::files::SandboxFiles,
    ) -> Result<(), SpawnError> {
        let api = ExecutorApi {
            agent: slave.pid().clone(),
            slave,
            tokens,
            subscriptions: Subscriptions::default(),
            refused: None,
            files,
        };
        match node.spawn(API_PROCESS, api) {
            Ok(_) | Err(SpawnError::DuplicateId(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn refuse(&self, status: u16, why: impl Into<String>) -> HttpResponse {
        if let Some(c) = &self.refused {
            c.inc();
        }
        let why = why.into();
        tracing::debug!(status, %why, "executor API call refused");
        HttpResponse::text(status, format!("{why}\n"))
    }

    /// Whether `req` proves it comes from executor `executor` of `framework` (see the module
    /// docs); the refusal otherwise.
    fn authenticate(
        &self,
        ctx: &Context<Self>,
        req: &HttpRequest,
        framework: &str,
        executor: &str,
    ) -> Result<(), HttpResponse> {
        if !ctx.node().is_secure() {
            return Ok(());
        }
        let expected = crate::executor_tls::executor_principal(framework, executor);
        if let Some(identity) = &req.identity {
            if identity.principal() == expected {
                return Ok(());
            }
            return Err(self.refuse(
                403,
                format!("principal {} is not {expected}", identity.principal()),
            ));
        }
        if self
            .tokens
            .as_ref()
            .is_some_and(|t| t.verify(framework, executor, req.header("authorization")))
        {
            return Ok(());
        }
        Err(self.refuse(
            401,
            "an executor proves itself with its certificate or its MESOS_EXECUTOR_AUTHENTICATION_TOKEN",
        ))
    }

    fn executor(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let read = read_call::<Call>(
            "/api/v1/executor",
            &req.method,
            req.header("content-type"),
            &req.body,
        );
        let (encoding, call) = match read {
            Ok(read) => read,
            Err(r) => return self.refuse(r.status, r.why),
        };
        let framework = call
            .framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let executor = call
            .executor_id
            .as_ref()
            .map(|e| e.value.clone())
            .unwrap_or_default();
        if framework.is_empty() || executor.is_empty() {
            return self.refuse(
                400,
                "expecting 'framework_id' and 'executor_id' to be present",
            );
        }
        if let Err(refusal) = self.authenticate(ctx, &req, &framework, &executor) {
            return refusal;
        }
        match call::Type::try_from(call.r#type).unwrap_or(call::Type::Unknown) {
            call::Type::Subscribe => {
                let unacknowledged = call
                    .subscribe
                    .map(|s| s.unacknowledged_updates)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|u| u.status)
                    .collect();
                self.subscribe(ctx, &req, encoding, framework, executor, unacknowledged)
            }
            call::Type::Update
                if call
                    .update
                    .as_ref()
                    .and_then(|u| u.status.as_ref())
                    .is_none() =>
            {
                self.refuse(400, "expecting 'update.status' to be present")
            }
            call::Type::Message if call.message.is_none() => {
                self.refuse(400, "expecting 'message' to be present")
            }
            call::Type::Update | call::Type::Message | call::Type::Heartbeat => {
                let Some(stream_id) = req.header(STREAM_ID_HEADER) else {
                    // pymesos and Mesos's own executors send calls without it: the
                    // executor's identity was checked above, the subscription is found by it.
                    return self.forward(&framework, &executor, None, call);
                };
                let stream_id = stream_id.to_owned();
                self.forward(&framework, &executor, Some(stream_id), call)
            }
            call::Type::Unknown => self.refuse(400, "unknown call type"),
        }
    }

    fn forward(
        &self,
        framework: &str,
        executor: &str,
        stream_id: Option<String>,
        call: Call,
    ) -> HttpResponse {
        let Some((current, adapter)) = self.subscriptions.get(framework, executor) else {
            return self.refuse(
                403,
                format!("executor {executor} of framework {framework} is not subscribed"),
            );
        };
        if stream_id.is_some_and(|s| s != current) {
            return self.refuse(
                400,
                "the Mesos-Stream-Id is not the executor's current subscription's",
            );
        }
        adapter.dispatch(move |a, ctx| a.call(ctx, call));
        HttpResponse::text(202, "")
    }

    fn subscribe(
        &mut self,
        ctx: &mut Context<Self>,
        req: &HttpRequest,
        encoding: Encoding,
        framework: String,
        executor: String,
        unacknowledged: Vec<protos::v1::TaskStatus>,
    ) -> HttpResponse {
        let accepted = match stream_encoding(req.header("accept"), encoding) {
            Ok(accepted) => accepted,
            Err(r) => return self.refuse(r.status, r.why),
        };
        if let Some((_, old)) = self.subscriptions.get(&framework, &executor) {
            ctx.node().terminate(old.pid());
        }
        let stream_id = ctx.node().random().uuid().to_string();
        let (response, stream) =
            HttpResponse::stream(200, accepted.content_type(), STREAM_CAPACITY);
        let adapter = ExecutorAdapter::new(
            framework,
            executor,
            self.agent.clone(),
            stream,
            stream_id.clone(),
            accepted,
            self.subscriptions.clone(),
        )
        .resending(unacknowledged);
        let id = ctx.node().generate_id("executor-http");
        if let Err(e) = ctx.node().spawn(&id, adapter) {
            return self.refuse(503, format!("cannot start the subscription: {e}"));
        }
        response.with_header(STREAM_ID_HEADER, &stream_id)
    }
}

impl ExecutorApi {
    /// `POST /api/v1`: the agent's operator API (see `slave::operator_api`), JSON or protobuf
    /// as `Content-Type` and `Accept` say. Reads: whoever the node lets in may call; sandbox
    /// files only as the `access_sandboxes` rules allow the request's principal.
    /// `SET_LOGGING_LEVEL`: an operator (on a secure agent, a client certificate in the
    /// `operator` role; anyone on an insecure one).
    fn operator(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        use protos::v1::agent::{call::Type, Call};
        let read = read_call_to_answer::<Call>(
            "/api/v1",
            &req.method,
            req.header("content-type"),
            req.header("accept"),
            &req.body,
        );
        let (encoding, call) = match read {
            Ok(read) => read,
            Err(r) => return self.refuse(r.status, r.why).into(),
        };
        let kind = Type::try_from(call.r#type).unwrap_or(Type::Unknown);
        if kind == Type::SetLoggingLevel {
            let secure = ctx.node().is_secure();
            if let Err(refusal) = authentication::operator::operator_of(&req, None, secure) {
                return self.refuse(refusal.status, refusal.why).into();
            }
            let set = call.set_logging_level.unwrap_or_default();
            let nanoseconds = set.duration.map_or(0, |d| d.nanoseconds);
            return match libactor::log_level::set_for_nanoseconds(
                set.level.unwrap_or(0),
                nanoseconds,
            ) {
                Ok(()) => HttpResponse::text(202, ""),
                Err(e) => self.refuse(e.http_status(), e.to_string()),
            }
            .into();
        }
        if matches!(kind, Type::ListFiles | Type::ReadFile) {
            let answer = crate::files::operator_call(&self.files, &call, req.principal.as_deref());
            return match answer {
                Ok(response) => {
                    HttpResponse::bytes(200, encoding.content_type(), encoding.body(&response))
                }
                Err(refusal) => self.refuse(refusal.status, refusal.why),
            }
            .into();
        }
        let slave = self.slave.clone();
        let refused = self.refused.clone();
        HttpReply::Later(Box::pin(async move {
            match slave.call(move |s, ctx| s.operator_call(ctx, kind)).await {
                Ok(Ok(response)) => {
                    HttpResponse::bytes(200, encoding.content_type(), encoding.body(&response))
                }
                Ok(Err((status, why))) => {
                    if let Some(c) = &refused {
                        c.inc();
                    }
                    HttpResponse::text(status, format!("{why}\n"))
                }
                Err(_) => HttpResponse::text(503, "the agent has stopped\n"),
            }
        }))
    }
}

impl Process for ExecutorApi {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.refused = Some(m.counter("slave/api/calls_refused"));
        let subscriptions = self.subscriptions.clone();
        m.gauge_fn("slave/api/executor_subscribers", move || {
            subscriptions.len() as f64
        });
        ctx.route("/v1/executor", Self::executor);
        ctx.route("/v1", Self::operator);
    }
}
