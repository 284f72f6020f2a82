//! Reads frames from one peer connection and delivers them to local processes.
//!
//! Nothing a peer sends can panic or stall the node: every malformed input is counted and
//! dropped, oversized frames are skipped unread, and a connection that stops mid-frame is
//! closed. When too many remote messages wait in mailboxes the reader stops reading, so TCP
//! pushes back on the sender instead of the node's memory growing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use protos::libactor::Hello;

use super::frame::{parse_envelope, Decoded, FrameDecoder, RawEnvelope};
use crate::message::names_equal;
use crate::message::{Delivery, Payload, Proof};
use crate::node::{NodeInner, ReceiverCache};
use crate::tls::Identity;
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
///
/// `identity` is the peer's proven identity on a secure node (`None` on an insecure one): the
/// first frame pins the peer's node address (a host its certificate names), and a frame that
/// claims a sender elsewhere is dropped and counted.
pub(crate) async fn serve_actor<S: AsyncRead + Unpin>(
    node: Arc<NodeInner>,
    mut stream: S,
    identity: Option<Arc<Identity>>,
    ticket: &super::Ticket,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut decoder = FrameDecoder::new(node.config.max_frame_bytes);
    let mut cache = ConnectionCache {
        sender: None,
        receiver: ReceiverCache::default(),
        peer: PeerProof {
            identity,
            node: None,
        },
    };
    loop {
        while let Some(decoded) = decoder.decode(&mut buf) {
            // The first frame (the hello) ends the handshake.
            if !ticket.establish() {
                return;
            }
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
struct ConnectionCache {
    sender: Option<Upid>,
    receiver: ReceiverCache,
    peer: PeerProof,
}

/// What the connection proved about its peer.
struct PeerProof {
    /// The peer's certificate identity; `None` on an insecure node.
    identity: Option<Arc<Identity>>,
    /// The peer node's address (`host:port`), from its [`Hello`]: every frame on one
    /// connection comes from one node.
    node: Option<String>,
}

impl PeerProof {
    /// Takes the connection's first frame, which must be the peer's [`Hello`] from a host its
    /// certificate names; anything else is counted and the connection's later frames are
    /// dropped (its node stays unknown, so nothing is admitted).
    fn hello(&mut self, node: &NodeInner, envelope: &RawEnvelope<'_>) {
        let pid = match Upid::parse(envelope.from) {
            Ok(pid) if names_equal::<Hello>(&envelope.name) => pid,
            _ => {
                node.m.dropped_unauthenticated_sender.inc();
                tracing::warn!(name = %envelope.name, "dropped a frame sent before the connection's hello");
                return;
            }
        };
        if let Some(identity) = &self.identity {
            if !identity.may_advertise(pid.host()) {
                node.m.dropped_unauthenticated_sender.inc();
                tracing::warn!(node = %pid.address(), peer = %identity, "a peer's hello names a host its certificate does not");
                return;
            }
        }
        self.node = Some(pid.address().to_owned());
    }

    /// Whether `from` may be believed on this connection: it is on the connection's node. An
    /// insecure node proves nothing and believes every claim.
    fn admits(&self, from: &Upid) -> bool {
        self.identity.is_none() || self.node.as_deref() == Some(from.address())
    }

    fn proof(&self) -> Proof {
        match &self.identity {
            Some(identity) => Proof::Peer(identity.clone()),
            None => Proof::Unproven,
        }
    }
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
    if cache.peer.node.is_none() {
        return cache.peer.hello(node, &envelope);
    }
    let from = match &cache.sender {
        Some(pid) if pid.as_str() == envelope.from => pid.clone(),
        _ => match Upid::parse(envelope.from) {
            Ok(pid) if cache.peer.admits(&pid) => {
                cache.sender = Some(pid.clone());
                pid
            }
            Ok(pid) => {
                node.m.dropped_unauthenticated_sender.inc();
                tracing::warn!(
                    from = %pid,
                    peer = %cache.peer.identity.as_deref().map_or(String::new(), |i| i.to_string()),
                    connection_node = cache.peer.node.as_deref().unwrap_or("(none yet)"),
                    "dropped a frame whose sender is not on the node its connection proved"
                );
                return;
            }
            Err(e) => {
                node.m.invalid_envelopes.inc();
                tracing::warn!(error = %e, "dropped a frame with an invalid sender");
                return;
            }
        },
    };
    if envelope.name.starts_with("keel.libactor.")
        && node.handle_control(&envelope.name, envelope.body.clone(), from.address())
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
        proof: cache.peer.proof(),
        payload: Payload::Encoded {
            name: envelope.name,
            body: envelope.body,
        },
        permit: Some(InboundPermit::new(node)),
    };
    node.deliver_cached(&mut cache.receiver, to_id, delivery);
}
