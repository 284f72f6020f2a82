//! A minimal HTTP/1.1 client for talking to a node's routes (keelctl, filesync, tests):
//! one request per connection, bounded in time and in response size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// How long one request may take, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response body read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// Where.
        addr: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The exchange failed.
    #[error("HTTP exchange with {addr} failed: {why}")]
    Exchange {
        /// Where.
        addr: String,
        /// What went wrong.
        why: String,
    },
    /// No answer in time.
    #[error("{addr} did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// Where.
        addr: String,
    },
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `addr` (`host:port`) and reads the whole reply.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Reply, HttpError> {
    request_over(addr, None, method, path, headers, body).await
}

/// As [`request`], over HTTPS when `tls` is given: the node's certificate is checked against
/// `tls`'s CA and `tls`'s certificate is presented as the client's.
pub async fn request_over(
    addr: &str,
    tls: Option<&crate::TlsConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Reply, HttpError> {
    let exchange = async {
        let resp = send(addr, tls, method, path, headers, body).await?;
        let (status, headers) = head(&resp);
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Exchange {
                addr: addr.to_owned(),
                why: e.to_string(),
            })?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout {
            addr: addr.to_owned(),
        })?
}

/// A response whose body is read as it comes (an event stream).
#[derive(Debug)]
pub struct StreamReply {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    body: hyper::body::Incoming,
    addr: String,
}

impl StreamReply {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next bytes of the body; `None` once it ended cleanly, an error if it broke (the
    /// server cut the connection off).
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, HttpError>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(_) => continue,
                },
                Err(e) => {
                    return Some(Err(HttpError::Exchange {
                        addr: self.addr.clone(),
                        why: e.to_string(),
                    }))
                }
            }
        }
    }
}

/// Sends one request and returns once the response head has arrived (within
/// [`REQUEST_TIMEOUT`]); the body is then read, without a time limit, through
/// [`StreamReply::next_chunk`].
pub async fn open_stream(
    addr: &str,
    tls: Option<&crate::TlsConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<StreamReply, HttpError> {
    let resp = tokio::time::timeout(
        REQUEST_TIMEOUT,
        send(addr, tls, method, path, headers, body),
    )
    .await
    .map_err(|_| HttpError::Timeout {
        addr: addr.to_owned(),
    })??;
    let (status, headers) = head(&resp);
    Ok(StreamReply {
        status,
        headers,
        body: resp.into_body(),
        addr: addr.to_owned(),
    })
}

fn head(resp: &hyper::Response<hyper::body::Incoming>) -> (u16, Vec<(String, String)>) {
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    (resp.status().as_u16(), headers)
}

/// Connects (over TLS when `tls` is given), sends the request, and returns the response with
/// its body unread.
async fn send(
    addr: &str,
    tls: Option<&crate::TlsConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<hyper::Response<hyper::body::Incoming>, HttpError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|error| HttpError::Connect {
            addr: addr.to_owned(),
            error,
        })?;
    let Some(tls) = tls else {
        return send_on(addr, stream, method, path, headers, body).await;
    };
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| HttpError::Exchange {
            addr: addr.to_owned(),
            why: format!("{host} is no TLS server name: {e}"),
        })?;
    let stream = tokio_rustls::TlsConnector::from(tls.https_client())
        .connect(name, stream)
        .await
        .map_err(|e| HttpError::Exchange {
            addr: addr.to_owned(),
            why: format!("TLS handshake: {e}"),
        })?;
    send_on(addr, stream, method, path, headers, body).await
}

async fn send_on<S>(
    addr: &str,
    stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<hyper::Response<hyper::body::Incoming>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let fail = |why: String| HttpError::Exchange {
        addr: addr.to_owned(),
        why,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = req.body(Full::new(body)).map_err(|e| fail(e.to_string()))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// GETs `path` and parses the body as JSON; a non-200 status is an error with the body's text.
pub async fn get_json(addr: &str, path: &str) -> Result<serde_json::Value, HttpError> {
    get_json_over(addr, None, path).await
}

/// As [`get_json`], over HTTPS with `tls`'s certificate when given (a node that authenticates
/// its reads wants one).
pub async fn get_json_over(
    addr: &str,
    tls: Option<&crate::TlsConfig>,
    path: &str,
) -> Result<serde_json::Value, HttpError> {
    let reply = request_over(addr, tls, "GET", path, &[], Bytes::new()).await?;
    if reply.status != 200 {
        return Err(HttpError::Exchange {
            addr: addr.to_owned(),
            why: format!(
                "GET {path}: status {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ),
        });
    }
    serde_json::from_slice(&reply.body).map_err(|e| HttpError::Exchange {
        addr: addr.to_owned(),
        why: format!("GET {path}: body is not JSON: {e}"),
    })
}
