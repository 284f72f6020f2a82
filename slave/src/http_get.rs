//! One plain HTTP/1.1 GET from the agent (the fetcher's downloads, HTTP health checks): a
//! connection per request, the response returned with its body unread so that callers stream
//! or drop it. Errors are sentences for a task's status message.

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;

/// GETs `path` from `connect_to` (`host:port`), naming `authority` in the `Host` header.
pub async fn get(
    connect_to: &str,
    authority: &str,
    path: &str,
) -> Result<hyper::Response<Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(connect_to)
        .await
        .map_err(|e| format!("cannot connect to {connect_to}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", authority)
        .header(
            "user-agent",
            concat!("keel-agent/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}
