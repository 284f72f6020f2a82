//! Long-lived HTTP responses: a route answers with a head at once and writes the body in
//! chunks as events happen (chunked encoding), as Mesos's scheduler and operator event streams
//! do.
//!
//! The process keeps the [`HttpStream`] and sends chunks through it; the node serves them to
//! the client. Each stream buffers at most the number of chunks it was opened with (and, with
//! [`crate::HttpResponse::stream_bounded`], at most a number of bytes): a client
//! that stops reading fills it, and the next send **disconnects** that client (its connection
//! is closed without the final chunk, so it sees a broken stream, not an ended one) and is
//! counted (`libactor/http/streams_disconnected`), never buffered without limit. Dropping the
//! stream (the process exits, or lets it go) ends the response cleanly. A stream is not
//! subject to the route timeout: that bounds only the time to the head.
//!
//! ```
//! use libactor::{HttpResponse, HttpStream};
//!
//! let (response, mut stream) = HttpResponse::stream(200, "application/json", 2);
//! assert!(response.is_stream());
//! assert!(stream.send("{\"type\": \"SUBSCRIBED\"}".into()).is_ok());
//! assert!(stream.send("a".into()).is_ok());
//! // Nobody reads: the third chunk would exceed the buffer, so the reader is cut off.
//! assert!(stream.send("b".into()).is_err());
//! assert!(stream.is_closed());
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::metrics::{Counter, Gauge};

/// Why a chunk was not sent: the client is gone (it closed the connection, or was cut off for
/// not reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the HTTP stream is closed")]
pub struct StreamClosed;

/// The writing end of a streamed response.
#[derive(Debug)]
pub struct HttpStream {
    tx: Option<mpsc::Sender<Bytes>>,
    cut_off: Arc<AtomicBool>,
    gone: Arc<Gone>,
    /// Bytes sent and not yet taken by the server, and the most allowed.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// Set, and announced, when the reading end goes (the client left or was cut off, or the
/// response was never served).
#[derive(Debug, Default)]
struct Gone {
    flag: AtomicBool,
    notify: Notify,
}

impl HttpStream {
    /// Queues `chunk` for the client. Fails once the client is gone; a client whose buffer is
    /// full is cut off by this call.
    pub fn send(&mut self, chunk: Bytes) -> Result<(), StreamClosed> {
        let tx = self.tx.as_ref().ok_or(StreamClosed)?;
        let len = chunk.len();
        let queued = self.queued.load(Ordering::Acquire);
        let over_bytes = queued.saturating_add(len) > self.max_bytes && queued > 0;
        let sent = if over_bytes {
            Err(mpsc::error::TrySendError::Full(chunk))
        } else {
            tx.try_send(chunk)
        };
        match sent {
            Ok(()) => {
                self.queued.fetch_add(len, Ordering::AcqRel);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.cut_off.store(true, Ordering::Release);
                // Dropping the only sender wakes the body, which then sees the flag.
                self.tx = None;
                Err(StreamClosed)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.tx = None;
                Err(StreamClosed)
            }
        }
    }

    /// Queues `chunk` with the stream's byte bound widened by its size, for good: for a
    /// first event as large as a whole cluster's state, which would otherwise leave a client
    /// still reading it no room for the events behind it.
    pub fn send_widening(&mut self, chunk: Bytes) -> Result<(), StreamClosed> {
        self.max_bytes = self.max_bytes.saturating_add(chunk.len());
        self.send(chunk)
    }

    /// Whether the client is gone: a process drops such streams from its subscribers.
    pub fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(mpsc::Sender::is_closed)
            || self.gone.flag.load(Ordering::Acquire)
    }

    /// Resolves once the client is gone (for `Context::defer`: a process learns at once that
    /// a subscriber left, without sending to it).
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let gone = self.gone.clone();
        async move {
            loop {
                let notified = gone.notify.notified();
                if gone.flag.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        }
    }
}

/// The reading end, carried by an [`crate::HttpResponse`] to the node that serves it.
#[derive(Clone)]
pub struct StreamBody(Arc<Mutex<Option<Receiving>>>);

struct Receiving {
    rx: mpsc::Receiver<Bytes>,
    cut_off: Arc<AtomicBool>,
    gone: Arc<Gone>,
    queued: Arc<AtomicUsize>,
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.gone.flag.store(true, Ordering::Release);
        self.gone.notify.notify_waiters();
    }
}

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamBody")
    }
}

impl PartialEq for StreamBody {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StreamBody {}

/// A stream's two ends, buffering at most `capacity` chunks (at least one) and `max_bytes`
/// (at least one chunk, however large).
pub(crate) fn channel(capacity: usize, max_bytes: usize) -> (HttpStream, StreamBody) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let cut_off = Arc::new(AtomicBool::new(false));
    let gone = Arc::new(Gone::default());
    let queued = Arc::new(AtomicUsize::new(0));
    (
        HttpStream {
            tx: Some(tx),
            cut_off: cut_off.clone(),
            gone: gone.clone(),
            queued: queued.clone(),
            max_bytes,
        },
        StreamBody(Arc::new(Mutex::new(Some(Receiving {
            rx,
            cut_off,
            gone,
            queued,
        })))),
    )
}

/// The node's counters for the streams it serves.
#[derive(Clone)]
pub(crate) struct StreamMetrics {
    pub(crate) open: Gauge,
    pub(crate) disconnected: Counter,
}

impl StreamBody {
    /// The body hyper serves; `None` if it was served already (a response is served once).
    /// `head`, if not empty, is written before the stream's chunks.
    pub(crate) fn serve(&self, metrics: StreamMetrics, head: Bytes) -> Option<ServedStream> {
        let receiving = self.0.lock().ok()?.take()?;
        metrics.open.add(1);
        Some(ServedStream {
            head: Some(head).filter(|h| !h.is_empty()),
            receiving,
            metrics,
            reported: false,
        })
    }
}

/// A stream's body as the node's HTTP server polls it.
pub(crate) struct ServedStream {
    head: Option<Bytes>,
    receiving: Receiving,
    metrics: StreamMetrics,
    reported: bool,
}

impl Drop for ServedStream {
    fn drop(&mut self) {
        self.metrics.open.add(-1);
    }
}

/// Ends a stream whose client did not keep up.
#[derive(Debug, thiserror::Error)]
#[error("the client did not read its stream fast enough and was cut off")]
pub(crate) struct CutOff;

impl hyper::body::Body for ServedStream {
    type Data = Bytes;
    type Error = CutOff;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, CutOff>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(head))));
        }
        match self.receiving.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                self.receiving
                    .queued
                    .fetch_sub(chunk.len(), Ordering::AcqRel);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
            Poll::Ready(None) if self.receiving.cut_off.load(Ordering::Acquire) => {
                if !self.reported {
                    self.reported = true;
                    self.metrics.disconnected.inc();
                    tracing::warn!("an HTTP stream's client stopped reading; disconnected");
                }
                Poll::Ready(Some(Err(CutOff)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_bound_cuts_off_a_client_that_falls_behind_in_bytes() {
        let (mut stream, _body) = channel(100, 10);
        assert!(stream.send(Bytes::from_static(b"123456")).is_ok());
        assert!(
            stream.send(Bytes::from_static(b"123456")).is_err(),
            "12 bytes would wait, over 10"
        );
        assert!(stream.is_closed());
        let (mut stream, _body) = channel(100, 10);
        assert!(
            stream.send(Bytes::from(vec![0u8; 20])).is_ok(),
            "one chunk is always let through"
        );
    }

    #[test]
    fn a_widening_first_chunk_leaves_the_whole_bound_for_what_follows() {
        let (mut stream, _body) = channel(100, 10);
        assert!(stream.send_widening(Bytes::from(vec![0u8; 50])).is_ok());
        assert!(
            stream.send(Bytes::from_static(b"123456789")).is_ok(),
            "59 bytes wait: within the 10 beyond the first 50"
        );
        assert!(
            stream.send(Bytes::from_static(b"12")).is_err(),
            "61 would not"
        );
    }
}
