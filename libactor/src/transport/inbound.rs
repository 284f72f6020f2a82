//! Reads frames from one peer connection and delivers them to local processes.
//!
//! Nothing a peer sends can panic or stall the node: every malformed input is counted and
//! dropped, oversized frames are skipped unread, and a connection that stops mid-frame is
//! closed. When too many remote messages wait in mailboxes the reader stops reading, so TCP
//! pushes back on the sender instead of the node's memory growing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::frame::{parse_envelope, Decoded, FrameDecoder};
use crate::message::{Delivery, Payload};
use crate::node::{NodeInner, ReceiverCache};
use crate::Upid;

/// Bytes read from the socket at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Counts one message from the network until it has been handled or dropped.
pub(crate) struct InboundPermit(Arc<NodeInner>);

impl InboundPermit {
    fn new(node: &Arc<NodeInner>) -> Self {
        node.inbound_acquire();
        InboundPermit(node.clone())
    }
}

impl Drop for InboundPermit {
    fn drop(&mut self) {
        self.0.inbound_release();
    }
}

/// Serves an actor-protocol connection whose preamble has been read.
pub(super) async fn serve_actor(node: Arc<NodeInner>, mut stream: TcpStream) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut decoder = FrameDecoder::new(node.config.max_frame_bytes);
    let mut cache = ConnectionCache::default();
    loop {
        while let Some(decoded) = decoder.decode(&mut buf) {
            match decoded {
                Decoded::Frame(frame) => {
                    node.inbound_capacity().await;
                    handle_frame(&node, frame, &mut cache);
                }
                Decoded::Skipped(len) => {
                    node.m.oversized_frames.inc();
                    tracing::warn!(
                        len,
                        max = node.config.max_frame_bytes,
                        "skipped a frame over max_frame_bytes"
                    );
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER_BYTES);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                if decoder.mid_frame(&buf) {
                    node.m.truncated_frames.inc();
                    tracing::warn!(
                        buffered = buf.len(),
                        "connection ended in the middle of a frame"
                    );
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "inbound connection failed");
                return;
            }
        }
    }
}

/// What a connection remembers between frames: peers send many frames from few processes to
/// few processes.
#[derive(Default)]
struct ConnectionCache {
    sender: Option<Upid>,
    receiver: ReceiverCache,
}

fn handle_frame(node: &Arc<NodeInner>, frame: Bytes, cache: &mut ConnectionCache) {
    let envelope = match parse_envelope(&frame) {
        Ok(envelope) => envelope,
        Err(e) => {
            node.m.malformed_frames.inc();
            tracing::warn!(error = %e, "dropped a frame whose envelope does not decode");
            return;
        }
    };
    node.m.frames_received.inc();
    let from = match &cache.sender {
        Some(pid) if pid.as_str() == envelope.from => pid.clone(),
        _ => match Upid::parse(envelope.from) {
            Ok(pid) => {
                cache.sender = Some(pid.clone());
                pid
            }
            Err(e) => {
                node.m.invalid_envelopes.inc();
                tracing::warn!(error = %e, "dropped a frame with an invalid sender");
                return;
            }
        },
    };
    if envelope.name.starts_with("keel.libactor.")
        && node.handle_control(&envelope.name, envelope.body.clone())
    {
        return;
    }
    let Some((to_id, _)) = envelope.to.split_once('@') else {
        node.m.invalid_envelopes.inc();
        tracing::warn!(to = %envelope.to, "dropped a frame with an invalid receiver");
        return;
    };
    let delivery = Delivery {
        from,
        payload: Payload::Encoded {
            name: envelope.name,
            body: envelope.body,
        },
        permit: Some(InboundPermit::new(node)),
    };
    node.deliver_cached(&mut cache.receiver, to_id, delivery);
}
