//! The network: one TCP listener per node serving HTTP and the actor protocol, and one
//! persistent outbound connection per peer node.
//!
//! - [`frame`]: the preamble and the length-delimited envelope frames.
//! - [`listener`]: accepts connections and tells HTTP from the actor protocol by the first byte.
//! - [`inbound`]: reads frames from a peer and delivers them, pausing when mailboxes are full.
//! - [`outbound`]: one writer task per peer; batches queued messages into few socket writes.
//!
//! Order: all messages from this node to one peer share one queue and one connection, so each
//! sender→receiver pair sees its messages in the order sent.

pub mod frame;
mod inbound;
mod listener;
mod outbound;

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

pub(crate) use frame::WireName;
pub(crate) use inbound::InboundPermit;
pub(crate) use listener::accept_loop;

use crate::node::NodeInner;
use crate::Upid;

/// A message waiting in a peer's send queue, encoded except for its envelope.
pub(crate) struct OutMessage {
    pub(crate) from: Upid,
    pub(crate) to: Upid,
    pub(crate) name: WireName,
    pub(crate) body: Bytes,
}

/// The send side of one peer connection.
struct Peer {
    tx: mpsc::Sender<OutMessage>,
    generation: u64,
    close: Arc<Notify>,
}

/// Outbound connections by peer address, and counters the node reports.
#[derive(Default)]
pub(crate) struct Transport {
    peers: DashMap<String, Peer>,
    next_generation: AtomicU64,
    /// Messages accepted into send queues and not yet written.
    queued: Arc<AtomicI64>,
    inbound_connections: AtomicUsize,
}

impl Transport {
    /// Queues `msg` on the connection to its receiver's node, connecting first if needed.
    /// A full queue drops the message (counted); the caller never blocks.
    pub(crate) fn send(&self, node: &NodeInner, msg: OutMessage) {
        let mut msg = msg;
        // Two attempts: the first may find a writer that has just died.
        for _ in 0..2 {
            let address = msg.to.address();
            let peer = match self.peers.get(address) {
                Some(peer) => peer,
                None => {
                    self.peers
                        .entry(address.to_owned())
                        .or_insert_with(|| self.start_peer(node, address));
                    match self.peers.get(address) {
                        Some(peer) => peer,
                        None => continue,
                    }
                }
            };
            self.queued.fetch_add(1, Ordering::Relaxed);
            match peer.tx.try_send(msg) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(m)) => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    node.m.dropped_send_queue_full.inc();
                    tracing::warn!(to = %m.to, name = %m.name, "send queue to peer is full; message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(m)) => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    let generation = peer.generation;
                    drop(peer);
                    self.peers
                        .remove_if(m.to.address(), |_, p| p.generation == generation);
                    msg = m;
                }
            }
        }
        node.m.dropped_connection_lost.inc();
    }

    fn start_peer(&self, node: &NodeInner, address: &str) -> Peer {
        let (tx, rx) = mpsc::channel(node.config.send_queue_messages);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        // No strong reference only while the node itself is being dropped: then the receiver is
        // dropped here and the send fails as `Closed`.
        if let Some(node) = node.me.upgrade() {
            let rt = node.rt.clone();
            rt.spawn(outbound::run_peer(
                node,
                address.to_owned(),
                generation,
                rx,
                close.clone(),
            ));
        }
        Peer {
            tx,
            generation,
            close,
        }
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

    /// Messages in send queues, not yet written to a socket.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed).max(0) as u64
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
