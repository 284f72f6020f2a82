//! HTTP on the node's one port (libprocess's `route`).
//!
//! - `GET /metrics/snapshot`: every metric as flat JSON, name → number.
//! - `GET /metrics`: the same in Prometheus text format.
//! - `GET /__processes__`: the processes of the node with their mailbox depths.
//! - `GET /version`: `{"version": …}`, as Mesos's `/version` (clients such as pymesos read it).
//! - `POST /{process}/{MessageName}` with a `Libprocess-From` header (or a `libprocess/{pid}`
//!   user agent): delivers the body, an encoded protobuf, as a message from that sender, the way
//!   libprocess peers and `curl` post messages. 202 if delivered to a live process, 404 if no
//!   such process runs here.
//! - `/{process}/{route}`: a route the process installed with [`crate::Context::route`].
//!
//! Request bodies are limited to `max_frame_bytes`; a larger one gets 413. A route may answer
//! with a stream ([`HttpResponse::stream`], see [`crate::http_stream`]): its head at once, its
//! body as the process sends it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use crate::http_stream::{HttpStream, ServedStream, StreamBody, StreamMetrics};
use crate::message::{Delivery, Payload, Proof};
use crate::node::NodeInner;
use crate::tls::Identity;
use crate::transport::Ticket;
use crate::Upid;

/// Largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTP request for a process route, with the process prefix removed from the path.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route part of the path, e.g. `/state` for `/master/state`.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Headers, as the client sent them (names match case-insensitively).
    pub headers: crate::HeaderMap,
    /// The request body.
    pub body: Bytes,
    /// The client's proven identity: its TLS client certificate, if it presented one.
    pub identity: Option<Arc<crate::Identity>>,
    /// The principal the request proved: its certificate's, or (on a node that authenticates
    /// HTTP) the one its HTTP Basic credentials prove. `None`: anonymous.
    pub principal: Option<String>,
}

impl HttpRequest {
    /// The first query parameter called `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A header by its (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// An HTTP response from a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: String,
    /// Other headers.
    pub headers: Vec<(String, String)>,
    /// Body (of a streamed response: written before the stream's chunks).
    pub body: Bytes,
    /// The rest of the body, written as the process sends it (see [`crate::http_stream`]).
    pub stream: Option<StreamBody>,
}

impl HttpResponse {
    /// A response with `status`, a plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Vec::new(),
            body: Bytes::from(body.into()),
            stream: None,
        }
    }

    /// A response with `status` and `body` of `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        HttpResponse {
            status,
            content_type: content_type.to_owned(),
            headers: Vec::new(),
            body: body.into(),
            stream: None,
        }
    }

    /// A streamed response: `status` and `content_type` now, then the chunks sent through the
    /// returned [`HttpStream`], of which at most `capacity` wait for a slow client.
    pub fn stream(status: u16, content_type: &str, capacity: usize) -> (Self, HttpStream) {
        Self::stream_bounded(status, content_type, capacity, usize::MAX)
    }

    /// [`HttpResponse::stream`] where a slow client may also fall at most `max_bytes` behind:
    /// a stream of many small events can then be allowed many chunks while what it holds stays
    /// bounded in bytes.
    pub fn stream_bounded(
        status: u16,
        content_type: &str,
        capacity: usize,
        max_bytes: usize,
    ) -> (Self, HttpStream) {
        let (stream, body) = crate::http_stream::channel(capacity, max_bytes);
        let response = HttpResponse {
            status,
            content_type: content_type.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            stream: Some(body),
        };
        (response, stream)
    }

    /// Whether the body is streamed.
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// 200 with `value` as JSON (500 if it cannot be serialized).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec_pretty(value) {
            Ok(body) => HttpResponse {
                status: 200,
                content_type: "application/json".into(),
                headers: Vec::new(),
                body: Bytes::from(body),
                stream: None,
            },
            Err(e) => HttpResponse::text(500, format!("cannot serialize response: {e}")),
        }
    }

    /// 404 with an explanation.
    pub fn not_found(why: impl Into<String>) -> Self {
        HttpResponse::text(404, why)
    }

    /// 400 with an explanation.
    pub fn bad_request(why: impl Into<String>) -> Self {
        HttpResponse::text(400, why)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a route returns: a response now, or a future of one (run on the process's arbiter while
/// the process goes on handling messages).
pub enum HttpReply {
    /// The response is ready.
    Now(HttpResponse),
    /// The response will be ready later.
    Later(Pin<Box<dyn Future<Output = HttpResponse>>>),
}

impl std::fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpReply::Now(resp) => f.debug_tuple("Now").field(resp).finish(),
            HttpReply::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl From<HttpResponse> for HttpReply {
    fn from(resp: HttpResponse) -> Self {
        HttpReply::Now(resp)
    }
}

/// Serves HTTP/1.1 on one accepted connection (plaintext or TLS); `identity` is the client's
/// certificate identity, if it presented one.
///
/// The first request head parsed ends the connection's handshake (`ticket`); a connection over
/// the node's limits gets 503 and is closed. With `half_close`, a client that shuts its side
/// after its request still gets the answer (the fuzzer's connections); without it, as on the
/// node's port, a client's end of input ends the connection, so that a stream's reader that
/// left is noticed at once.
pub(crate) async fn serve<S>(
    node: Arc<NodeInner>,
    stream: S,
    identity: Option<Arc<Identity>>,
    ticket: Arc<Ticket>,
    half_close: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let node = node.clone();
        let identity = identity.clone();
        let admitted = ticket.establish();
        async move {
            if !admitted {
                let resp = HttpResponse::text(503, "too many connections")
                    .with_header("connection", "close");
                return Ok::<_, Infallible>(to_hyper(resp, None));
            }
            Ok::<_, Infallible>(handle(&node, req, identity).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .half_close(half_close)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// A response body: whole, or streamed as the process sends it.
type Body = http_body_util::Either<Full<Bytes>, ServedStream>;

async fn handle(
    node: &Arc<NodeInner>,
    req: Request<Incoming>,
    identity: Option<Arc<Identity>>,
) -> Response<Body> {
    node.m.http_requests.inc();
    let started = std::time::Instant::now();
    let span =
        tracing::info_span!("http_request", method = %req.method(), path = %req.uri().path());
    let resp = route(node, req, identity).instrument(span).await;
    node.m.http_request_time.record(started.elapsed());
    if resp.status >= 400 && resp.status != 404 && resp.status != 504 {
        node.m.http_bad_requests.inc();
    }
    let metrics = StreamMetrics {
        open: node.m.http_streams_open.clone(),
        disconnected: node.m.http_streams_disconnected.clone(),
    };
    to_hyper(resp, Some(metrics))
}

/// The hyper response for `resp`; its stream, if any, is served with `metrics` (a response
/// that cannot be served as asked becomes a 500).
fn to_hyper(resp: HttpResponse, metrics: Option<StreamMetrics>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", resp.content_type.as_str());
    for (name, value) in &resp.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = match (&resp.stream, metrics) {
        (None, _) => http_body_util::Either::Left(Full::new(resp.body.clone())),
        (Some(stream), Some(metrics)) => match stream.serve(metrics, resp.body.clone()) {
            Some(served) => http_body_util::Either::Right(served),
            None => return internal_error("a streamed response can be served once"),
        },
        (Some(_), None) => return internal_error("a streamed response cannot be served here"),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| internal_error("invalid response header"))
}

fn internal_error(why: &'static str) -> Response<Body> {
    let mut fallback = Response::new(http_body_util::Either::Left(Full::new(Bytes::from_static(
        why.as_bytes(),
    ))));
    *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    fallback
}

#[derive(Serialize)]
struct ProcessInfo {
    id: String,
    pid: String,
    queue_depth: u64,
}

async fn route(
    node: &Arc<NodeInner>,
    req: Request<Incoming>,
    identity: Option<Arc<Identity>>,
) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let principal = match authenticate(node, &req, identity.as_deref(), &path) {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let sender = message_sender(&req);
    if sender.is_none() && !path.ends_with("/health") {
        if let Some(check) = &node.config.endpoint_authorization {
            if !check.permits(principal.as_deref(), &path) {
                node.m.http_unauthorized.inc();
                return HttpResponse::text(
                    403,
                    format!(
                        "{} may not call {path}",
                        principal.as_deref().unwrap_or("an unauthenticated client")
                    ),
                );
            }
        }
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/metrics/snapshot") => return HttpResponse::json(&node.metrics.snapshot()),
        (&Method::GET, "/version") => {
            // Every crate of the workspace shares one version: libactor's is the product's.
            return HttpResponse::json(&serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "build": "keel",
            }));
        }
        (&Method::GET, "/metrics") => {
            return HttpResponse {
                content_type: "text/plain; version=0.0.4".into(),
                ..HttpResponse::text(200, node.metrics.prometheus())
            }
        }
        (&Method::GET, "/__processes__") => {
            let mut list: Vec<ProcessInfo> = node
                .processes
                .iter()
                .filter(|e| !e.key().starts_with("__ask__"))
                .map(|e| ProcessInfo {
                    id: e.key().clone(),
                    pid: e.pid.to_string(),
                    queue_depth: e.mailbox.depth(),
                })
                .collect();
            list.sort_by(|a, b| a.id.cmp(&b.id));
            return HttpResponse::json(&list);
        }
        _ => {}
    }
    // `/{process}` alone is its route `/` (a page such as `/cockpit`).
    let Some((process, rest)) = path
        .strip_prefix('/')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('/').unwrap_or((p, "")))
        .map(|(process, rest)| (process.to_owned(), format!("/{rest}")))
    else {
        return HttpResponse::not_found(format!(
            "no route {path}: paths are /{{process}}/{{route}}, /metrics/snapshot, /metrics, /version or /__processes__"
        ));
    };
    let query = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let max = node.config.max_frame_bytes;
    let body = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return HttpResponse::text(413, format!("request body over the limit of {max} bytes"))
        }
        Err(e) => return HttpResponse::bad_request(format!("cannot read request body: {e}")),
    };

    if let Some(sender) = sender {
        if method != Method::POST {
            return HttpResponse::text(405, "messages are posted with POST");
        }
        return post_message(node, sender, identity, &process, &rest, body);
    }

    let Some(mailbox_reply) = node.processes.get(process.as_str()).map(|slot| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        slot.mailbox.http(
            HttpRequest {
                method: method.to_string(),
                path: rest.clone(),
                query,
                headers,
                body,
                identity,
                principal,
            },
            tx,
        );
        rx
    }) else {
        return HttpResponse::not_found(format!("no process {process} on this node"));
    };
    match tokio::time::timeout(node.config.http_request_timeout, mailbox_reply).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => HttpResponse::text(
            503,
            format!("process {process} terminated before answering"),
        ),
        Err(_) => HttpResponse::text(
            504,
            format!(
                "process {process} did not answer within {:?}",
                node.config.http_request_timeout
            ),
        ),
    }
}

/// The principal a request proves (its certificate's, else its HTTP Basic credentials' where
/// the node checks them); on a node that authenticates every HTTP request, the 401 for one
/// that proves no one. Health checks pass anonymously.
fn authenticate(
    node: &NodeInner,
    req: &Request<Incoming>,
    identity: Option<&Identity>,
    path: &str,
) -> Result<Option<String>, HttpResponse> {
    if let Some(identity) = identity {
        return Ok(Some(identity.principal().to_owned()));
    }
    let Some(auth) = node.config.http_authentication.as_ref() else {
        return Ok(None);
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let basic = header.and_then(|h| auth.basic.as_ref().and_then(|check| check(h)));
    if basic.is_some() || path.ends_with("/health") {
        return Ok(basic);
    }
    node.m.http_unauthenticated.inc();
    Err(HttpResponse::text(
        401,
        "this node authenticates every request: present a client certificate or HTTP Basic credentials",
    )
    .with_header("www-authenticate", "Basic realm=\"keel\""))
}

/// The sender of a libprocess-style message post, if the request is one: `Libprocess-From:
/// pid`, or (older libprocess) `User-Agent: libprocess/pid`. A malformed sender is reported.
fn message_sender(req: &Request<Incoming>) -> Option<Result<Upid, String>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().map(str::to_owned))
    };
    let text = match header("libprocess-from") {
        Some(v) => v,
        None => match header("user-agent") {
            Some(Ok(ua)) => Ok(ua.strip_prefix("libprocess/")?.to_owned()),
            _ => return None,
        },
    };
    Some(match text {
        Ok(text) => Upid::parse(&text).map_err(|e| e.to_string()),
        Err(_) => Err("Libprocess-From is not valid text".into()),
    })
}

/// Delivers a posted message. Who may post: anyone on an insecure node; on a secure node only
/// a client with a certificate naming the sender's host (the sender's process is then its
/// claim, checked by the handler's [`crate::Context::authorize`] like any remote message).
fn post_message(
    node: &Arc<NodeInner>,
    sender: Result<Upid, String>,
    identity: Option<Arc<Identity>>,
    process: &str,
    rest: &str,
    body: Bytes,
) -> HttpResponse {
    let from = match sender {
        Ok(from) => from,
        Err(e) => return HttpResponse::bad_request(format!("bad message sender: {e}")),
    };
    let proof = match (&node.config.tls, identity) {
        (None, _) => Proof::Unproven,
        (Some(_), None) => {
            node.m.refused_unauthenticated.inc();
            return HttpResponse::text(
                401,
                "this node is secure: post messages over TLS with a client certificate",
            );
        }
        (Some(_), Some(identity)) if !identity.may_advertise(from.host()) => {
            node.m.dropped_unauthenticated_sender.inc();
            return HttpResponse::text(
                403,
                format!("sender {from} is not on a host that {identity} may speak for"),
            );
        }
        (Some(_), Some(identity)) => Proof::Peer(identity),
    };
    let name = &rest[1..];
    if name.is_empty() || name.contains('/') {
        return HttpResponse::bad_request(format!(
            "bad message name {name:?}: post to /{{process}}/{{full.protobuf.Name}}"
        ));
    }
    node.m.http_message_posts.inc();
    let delivery = Delivery {
        from,
        proof,
        payload: Payload::Encoded {
            name: name.into(),
            body,
        },
        permit: None,
    };
    if node.deliver_local(process, delivery) {
        HttpResponse::text(202, "")
    } else {
        HttpResponse::not_found(format!("no process {process} on this node"))
    }
}
