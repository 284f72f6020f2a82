//! Targets that send their input to a running master, on a node started once per fuzzing
//! process: whole inbound connections (HTTP, libprocess-style posts, the actor protocol) and
//! the bodies of v1 scheduler and operator calls.

use std::sync::OnceLock;

use libactor::Node;

/// The master every node target talks to.
fn master_node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let node = Node::builder()
            .configure(|c| {
                c.arbiters = 1;
                c.io_threads = 1;
            })
            .start()
            .expect("a node starts on 127.0.0.1");
        master::master::Master::spawn(&node, "fuzz-master").expect("the master spawns");
        node
    })
}

/// The status of an HTTP answer, which must be well formed and not a server error (`501`, a
/// call Keel does not implement, and `503` are answers, not failures).
fn check_http(answer: &[u8]) {
    if answer.is_empty() {
        return;
    }
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]);
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head:?}"));
    assert!(
        status < 500 || status == 501 || status == 503,
        "server error: {}",
        String::from_utf8_lossy(answer)
    );
}

/// Raw bytes of one connection to the master's port.
pub(crate) fn master_connection(data: &[u8]) {
    let answer = libactor::fuzzing::inbound_connection(master_node(), data);
    if data.first().is_some_and(u8::is_ascii_uppercase) {
        check_http(&answer);
    }
}

/// `data` as the body of `POST path`, JSON when its first byte is even, protobuf when odd.
fn post(path: &str, data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = if kind % 2 == 0 {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: {content_type}\r\n\
         Accept: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let answer = libactor::fuzzing::inbound_connection(master_node(), &request);
    assert!(!answer.is_empty(), "no answer to a whole request");
    check_http(&answer);
}

/// Bodies of `POST /api/v1/scheduler`.
pub(crate) fn scheduler_api(data: &[u8]) {
    post("/api/v1/scheduler", data)
}

/// Bodies of `POST /api/v1` (the operator API).
pub(crate) fn operator_api(data: &[u8]) {
    post("/api/v1", data)
}
