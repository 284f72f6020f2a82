//! Streamed HTTP responses: chunks arrive as the process sends them, past the route timeout;
//! a client that does not keep up is cut off and counted; a client that leaves is noticed; a
//! process that exits ends its streams cleanly.

mod common;

use std::time::Duration;

use common::*;
use libactor::http_client::open_stream;
use libactor::{Clock, Context, HttpResponse, HttpStream, Node, Process, ProcessRef};

/// Opens a stream at `/{id}/events` (buffer `?capacity=`, default 16), keeping its end.
#[derive(Default)]
struct Events {
    streams: Vec<HttpStream>,
}

impl Process for Events {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.route(
            "/events",
            |e: &mut Events, _, req: libactor::HttpRequest| {
                let capacity = req
                    .query_param("capacity")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(16);
                let (mut response, mut stream) = HttpResponse::stream(200, "text/plain", capacity);
                response.body = "hello\n".into();
                let _ = stream.send("first\n".into());
                e.streams.push(stream);
                response
            },
        );
    }
}

impl Events {
    /// Sends `chunk` to every open stream; how many took it.
    fn broadcast(&mut self, chunk: &str) -> usize {
        let chunk = bytes::Bytes::copy_from_slice(chunk.as_bytes());
        self.streams
            .iter_mut()
            .filter_map(|s| s.send(chunk.clone()).ok())
            .count()
    }
}

fn start(timeout: Duration) -> (Node, ProcessRef<Events>) {
    let node = node_with(&Clock::new(), |c| c.http_request_timeout = timeout);
    let events = node.spawn_ref("events", Events::default()).unwrap();
    (node, events)
}

async fn text(reply: &mut libactor::http_client::StreamReply) -> String {
    let chunk = within(reply.next_chunk()).await.expect("a chunk").unwrap();
    String::from_utf8(chunk.to_vec()).unwrap()
}

#[tokio::test]
async fn chunks_arrive_as_sent_past_the_route_timeout_and_end_with_the_process() {
    let (node, events) = start(Duration::from_millis(100));
    let addr = node.socket_addr().to_string();
    let mut reply = within(open_stream(
        &addr,
        None,
        "GET",
        "/events/events",
        &[],
        Default::default(),
    ))
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(text(&mut reply).await, "hello\n");
    assert_eq!(text(&mut reply).await, "first\n");
    // A chunk sent later than the route timeout still arrives: the timeout bounds the head.
    events.dispatch(|_, ctx| {
        ctx.delay(Duration::from_millis(300), |e: &mut Events, _| {
            e.broadcast("late\n");
        });
    });
    assert_eq!(text(&mut reply).await, "late\n");
    assert_eq!(node.metrics().snapshot()["libactor/http/streams_open"], 1.0);
    // The process exits: its stream ends cleanly (no error, no more chunks).
    events.dispatch(|_, ctx| ctx.terminate());
    assert!(within(reply.next_chunk()).await.is_none());
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_keep_up_is_cut_off_and_counted() {
    let (node, events) = start(Duration::from_secs(5));
    let addr = node.socket_addr().to_string();
    let mut reply = within(open_stream(
        &addr,
        None,
        "GET",
        "/events/events?capacity=4",
        &[],
        Default::default(),
    ))
    .await
    .unwrap();
    // More than the buffer and both sockets' buffers hold while the client reads nothing
    // (small chunks could be drained to the socket as fast as they are sent): the stream is
    // cut off.
    const CHUNKS: usize = 1000;
    let chunk = format!("{}\n", "x".repeat(64 * 1024));
    let taken = events
        .call(move |e, _| (0..CHUNKS).map(|_| e.broadcast(&chunk)).sum::<usize>())
        .await
        .unwrap();
    assert!(taken < CHUNKS, "{taken}");
    assert!(events.call(|e, _| e.streams[0].is_closed()).await.unwrap());
    // The client reads what was buffered, then sees a broken stream, not an ended one.
    let ended = within(async {
        loop {
            match reply.next_chunk().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(matches!(ended, Some(Err(_))), "{ended:?}");
    assert_eq!(
        node.metrics().snapshot()["libactor/http/streams_disconnected"],
        1.0
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_is_noticed() {
    let (node, events) = start(Duration::from_secs(5));
    let addr = node.socket_addr().to_string();
    let mut reply = within(open_stream(
        &addr,
        None,
        "GET",
        "/events/events",
        &[],
        Default::default(),
    ))
    .await
    .unwrap();
    assert_eq!(text(&mut reply).await, "hello\n");
    drop(reply);
    // The process learns of it from the stream's `closed` future.
    let closed = events.call(|e, _| e.streams[0].closed()).await.unwrap();
    within(closed).await;
    assert!(events.call(|e, _| e.streams[0].is_closed()).await.unwrap());
    assert_eq!(node.metrics().snapshot()["libactor/http/streams_open"], 0.0);
    node.shutdown().await;
}
