//! HTTP on the node's port: process routes, libprocess-style message posts, metrics endpoints.

mod common;

use std::collections::BTreeMap;

use common::*;
use libactor::{Clock, Context, HttpReply, HttpRequest, HttpResponse, Node, Process, Upid};
use prost::Message;
use protos::libactor::examples::Note;

/// Serves its count of notes and an echo of the query at `/{id}/state` and `/{id}/echo`.
struct Stateful {
    notes: Vec<String>,
}

impl Process for Stateful {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |s: &mut Stateful, _: &mut Context<Stateful>, _: Upid, n: Note| s.notes.push(n.text),
        );
        ctx.route("/state", |s: &mut Stateful, _, _req: HttpRequest| {
            HttpResponse::json(&serde_json::json!({ "notes": s.notes }))
        });
        ctx.route("/echo", |_: &mut Stateful, _, req: HttpRequest| {
            HttpResponse::text(
                200,
                format!(
                    "{} {} q={}",
                    req.method,
                    req.path,
                    req.query_param("q").unwrap_or("-")
                ),
            )
        });
        ctx.route("/items/*", |_: &mut Stateful, _, req: HttpRequest| {
            HttpResponse::text(200, format!("item {}", req.path))
        });
        ctx.route("/later", |s: &mut Stateful, _, _| {
            let n = s.notes.len();
            HttpReply::Later(Box::pin(async move {
                HttpResponse::text(200, format!("later {n}"))
            }))
        });
    }
}

fn start() -> (Node, Upid) {
    let node = node_with(&Clock::new(), |c| c.max_frame_bytes = 1024);
    let pid = node.spawn("svc", Stateful { notes: Vec::new() }).unwrap();
    (node, pid)
}

#[tokio::test]
async fn process_routes() {
    let (node, _pid) = start();
    let addr = node.socket_addr();
    let (status, body) = http(addr, "GET", "/svc/echo?q=hello%20world", &[], b"").await;
    assert_eq!((status, body.as_str()), (200, "GET /echo q=hello world"));
    let (status, body) = http(addr, "GET", "/svc/state", &[], b"").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["notes"], serde_json::json!([]));
    let (status, body) = http(addr, "GET", "/svc/later", &[], b"").await;
    assert_eq!((status, body.as_str()), (200, "later 0"));
    // A `/*` route serves the paths below it that have no route of their own.
    let (status, body) = http(addr, "GET", "/svc/items/a/b", &[], b"").await;
    assert_eq!((status, body.as_str()), (200, "item /items/a/b"));
    let (status, _) = http(addr, "GET", "/svc/items", &[], b"").await;
    assert_eq!(status, 404, "the route serves what is below it, not itself");
    let (status, body) = http(addr, "GET", "/svc/nope", &[], b"").await;
    assert_eq!(status, 404);
    assert!(body.contains("/state"), "the 404 lists the routes: {body}");
    let (status, _) = http(addr, "GET", "/ghost/state", &[], b"").await;
    assert_eq!(status, 404);
    let (status, _) = http(addr, "GET", "/", &[], b"").await;
    assert_eq!(status, 404);
    node.shutdown().await;
}

#[tokio::test]
async fn libprocess_style_message_posts() {
    let (node, _svc) = start();
    let addr = node.socket_addr();
    let body = Note {
        text: "posted".into(),
    }
    .encode_to_vec();
    let from = [("Libprocess-From", "keelctl@127.0.0.1:1")];
    let (status, _) = http(
        addr,
        "POST",
        "/svc/keel.libactor.examples.Note",
        &from,
        &body,
    )
    .await;
    assert_eq!(status, 202);
    // The older libprocess form: the sender in the user agent.
    let ua = [("User-Agent", "libprocess/keelctl@127.0.0.1:1")];
    let (status, _) = http(addr, "POST", "/svc/keel.libactor.examples.Note", &ua, &body).await;
    assert_eq!(status, 202);
    let (status, _) = http(
        addr,
        "POST",
        "/ghost/keel.libactor.examples.Note",
        &from,
        &body,
    )
    .await;
    assert_eq!(status, 404);
    let bad_from = [("Libprocess-From", "not a pid")];
    let (status, text) = http(
        addr,
        "POST",
        "/svc/keel.libactor.examples.Note",
        &bad_from,
        &body,
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("id@host:port"), "{text}");
    let (status, _) = http(addr, "GET", "/svc/keel.libactor.examples.Note", &from, b"").await;
    assert_eq!(status, 405);
    let (status, _) = http(addr, "POST", "/svc/", &from, &body).await;
    assert_eq!(status, 400);
    let (status, _) = http(
        addr,
        "POST",
        "/svc/keel.libactor.examples.Note",
        &from,
        &[7u8; 2048],
    )
    .await;
    assert_eq!(status, 413, "bodies over max_frame_bytes are refused");
    let (status, body) = http(addr, "GET", "/svc/state", &[], b"").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["notes"], serde_json::json!(["posted", "posted"]));
    node.shutdown().await;
}

#[tokio::test]
async fn metrics_and_processes_endpoints() {
    let (node, pid) = start();
    node.metrics().counter("test/things").add(5);
    node.metrics()
        .durations("test/latency")
        .record(std::time::Duration::from_millis(3));
    node.send(&pid, Note { text: "x".into() });
    node.clock().settle().await.unwrap();
    let addr = node.socket_addr();
    let (status, body) = http(addr, "GET", "/metrics/snapshot", &[], b"").await;
    assert_eq!(status, 200);
    let snapshot: BTreeMap<String, f64> = serde_json::from_str(&body).unwrap();
    assert_eq!(snapshot["test/things"], 5.0);
    assert_eq!(snapshot["test/latency/count"], 1.0);
    assert_eq!(snapshot["test/latency/p50_ms"], 3.0);
    assert_eq!(snapshot["libactor/messages_received"], 1.0);
    assert_eq!(snapshot["libactor/processes"], 1.0);
    assert_eq!(
        snapshot["libactor/http/request_time/count"], 0.0,
        "the snapshot request itself is not over yet"
    );
    let (status, text) = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    // Prometheus's exposition format: a type for each metric, counters ending in _total.
    assert!(
        text.contains("# TYPE libactor_http_request_time_seconds summary\n"),
        "{text}"
    );
    assert!(
        text.contains("libactor_http_request_time_seconds_count 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE test_things_total counter\ntest_things_total 5\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE libactor_messages_received gauge\nlibactor_messages_received 1\n"),
        "{text}"
    );
    let (status, body) = http(addr, "GET", "/version", &[], b"").await;
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let (status, body) = http(addr, "GET", "/__processes__", &[], b"").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["id"], "svc");
    assert_eq!(list[0]["pid"], pid.to_string());
    assert_eq!(list[0]["queue_depth"], 0);
    node.shutdown().await;
}
