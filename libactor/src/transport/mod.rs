//! The network: one TCP listener per node serving HTTP and the actor protocol, and one
//! persistent outbound connection per peer node.
//!
//! - [`frame`]: the preamble and the length-delimited envelope frames.
//! - `listener`: accepts connections and tells HTTP from the actor protocol by the first byte;
//!   `admission`: which of them it keeps (handshakes bounded, oldest evicted; caps overall
//!   and per peer IP).
//! - `inbound`: reads frames from a peer and delivers them, pausing when mailboxes are full.
//! - `outbound`: one writer task per peer, draining that peer's send buffer.
//!
//! A send encodes its frame straight into the peer's send buffer (bounded in bytes) under a
//! short lock and wakes the writer only when the buffer was empty; the writer swaps the whole
//! buffer out and writes it with one system call. So a burst of messages costs one wake-up and
//! a few large writes, not a channel operation and a write per message.
//!
//! Order: all messages from this node to one peer share one buffer and one connection, so each
//! sender→receiver pair sees its messages in the order sent.

mod admission;
pub mod frame;
mod inbound;
mod listener;
mod outbound;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub(crate) use admission::Ticket;
pub(crate) use frame::WireName;
pub(crate) use inbound::serve_actor;
pub(crate) use inbound::InboundPermit;
pub(crate) use listener::{accept_loop, read_preamble};

use crate::node::NodeInner;
use crate::Upid;

/// Frames waiting for one peer's writer.
#[derive(Default)]
struct SendBuffer {
    bytes: BytesMut,
    /// Frames in `bytes`.
    frames: u64,
    /// The writer has ended; a sender that sees this starts a new one.
    closed: bool,
}

/// The send side of one peer connection.
struct Peer {
    buffer: Mutex<SendBuffer>,
    /// Wakes the writer: the buffer went from empty to non-empty.
    ready: Notify,
    /// Asks the writer to close the connection.
    close: Notify,
    generation: u64,
}

/// Outbound connections by peer address, and counters the node reports.
#[derive(Default)]
pub(crate) struct Transport {
    /// FxHash: looked up on every remote send; only this node inserts keys.
    peers: DashMap<String, Arc<Peer>, rustc_hash::FxBuildHasher>,
    next_generation: AtomicU64,
    inbound_connections: AtomicUsize,
    /// Pending and established inbound connections, and their bounds.
    pub(crate) admission: admission::Admission,
}

/// Why a remote send did not queue its message.
enum Refused {
    /// The peer's writer (of this generation) ended; start another.
    Closed(u64),
    /// The buffer is at `send_queue_bytes`.
    Full,
}

impl Transport {
    /// Encodes `msg` into the send buffer of `to`'s node, starting a connection if there is
    /// none. A full buffer or a message over `max_frame_bytes` is dropped and counted; the
    /// caller never blocks.
    pub(crate) fn send<M: prost::Message>(
        &self,
        node: &NodeInner,
        from: &Upid,
        to: &Upid,
        name: WireName,
        msg: &M,
    ) {
        let body_len = msg.encoded_len();
        let len = frame::frame_len(from.as_str(), to.as_str(), name, body_len);
        if len > node.config.max_frame_bytes {
            node.m.dropped_oversized.inc();
            tracing::warn!(%to, %name, len, max = node.config.max_frame_bytes, "message over max_frame_bytes not sent");
            return;
        }
        if let Some(network) = &node.config.network {
            let mut body = bytes::BytesMut::with_capacity(body_len);
            msg.encode_raw(&mut body);
            network.transmit(node, from, to, name.to_string().into(), body.freeze());
            return;
        }
        let push = |peer: &Peer| -> Result<(), Refused> {
            let mut buffer = peer.buffer.lock();
            if buffer.closed {
                return Err(Refused::Closed(peer.generation));
            }
            if buffer.bytes.len() + len > node.config.send_queue_bytes {
                return Err(Refused::Full);
            }
            let was_empty = buffer.bytes.is_empty();
            frame::encode_frame_with(
                &mut buffer.bytes,
                from.as_str(),
                to.as_str(),
                name,
                body_len,
                |buf| msg.encode_raw(buf),
            );
            buffer.frames += 1;
            drop(buffer);
            if was_empty {
                peer.ready.notify_one();
            }
            Ok(())
        };
        // Two attempts: the first may find a writer that has just ended.
        for _ in 0..2 {
            let pushed = match self.peers.get(to.address()) {
                Some(peer) => push(&peer),
                None => push(&self.peer(node, to.address())),
            };
            match pushed {
                Ok(()) => return,
                Err(Refused::Full) => {
                    node.m.dropped_send_queue_full.inc();
                    tracing::warn!(%to, %name, "send buffer to peer is full; message dropped");
                    return;
                }
                Err(Refused::Closed(generation)) => self.peer_ended(to.address(), generation),
            }
        }
        node.m.dropped_connection_lost.inc();
    }

    /// The peer at `address`, starting its writer if there is none.
    fn peer(&self, node: &NodeInner, address: &str) -> Arc<Peer> {
        if let Some(peer) = self.peers.get(address) {
            return peer.clone();
        }
        self.peers
            .entry(address.to_owned())
            .or_insert_with(|| {
                let peer = Arc::new(Peer {
                    buffer: Mutex::new(SendBuffer::default()),
                    ready: Notify::new(),
                    close: Notify::new(),
                    generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
                });
                match node.me.upgrade() {
                    Some(owner) => {
                        node.spawn_io(outbound::run_peer(owner, address.to_owned(), peer.clone()))
                    }
                    // Only while the node itself is being dropped: nothing will write.
                    None => peer.buffer.lock().closed = true,
                }
                peer
            })
            .clone()
    }

    /// Forgets the peer entry of a writer that ended, unless a newer one replaced it.
    fn peer_ended(&self, address: &str, generation: u64) {
        self.peers
            .remove_if(address, |_, p| p.generation == generation);
    }

    /// Closes the connection to `address`; false if there was none.
    pub(crate) fn disconnect(&self, address: &str) -> bool {
        match self.peers.get(address) {
            Some(peer) => {
                peer.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Frames in send buffers, not yet written to a socket.
    pub(crate) fn queued(&self) -> u64 {
        self.peers.iter().map(|p| p.buffer.lock().frames).sum()
    }

    /// Peers with an outbound connection (or one being made).
    pub(crate) fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Inbound connections open now.
    pub(crate) fn inbound_connections(&self) -> usize {
        self.inbound_connections.load(Ordering::Relaxed)
    }
}
