//! Which inbound connections a node keeps. A connection is *pending* until it has shown it
//! speaks a protocol (its TLS handshake done and its actor-protocol hello read, or its first
//! HTTP request head parsed), then *established*.
//!
//! - Pending connections are bounded (`max_pending_connections`); when a new one arrives at
//!   the bound, the oldest pending one is closed. A flood of connections that never finish
//!   their handshake therefore only churns itself: anyone who completes a handshake promptly
//!   gets in (a health check, an agent), however many half-open connections are held.
//! - Established connections are bounded overall (`max_connections`) and per peer IP
//!   (`max_connections_per_ip`); one over either is closed when it would become established.
//!
//! Who may hold a connection: anyone may try; only a peer that completes a handshake keeps it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::node::NodeInner;

/// The node's inbound connections by phase.
#[derive(Default)]
pub(crate) struct Admission {
    state: Mutex<AdmissionState>,
}

#[derive(Default)]
struct AdmissionState {
    next_id: u64,
    /// Pending connections, oldest first: id → the signal that closes it.
    pending: BTreeMap<u64, Arc<Notify>>,
    established: usize,
    per_ip: HashMap<IpAddr, usize>,
}

const PENDING: u8 = 0;
const ESTABLISHED: u8 = 1;
const REFUSED: u8 = 2;

/// One inbound connection's place; dropping it gives the place back.
pub(crate) struct Ticket {
    node: Arc<NodeInner>,
    id: u64,
    ip: IpAddr,
    phase: AtomicU8,
    evict: Arc<Notify>,
}

impl Admission {
    /// Admits a new connection from `ip` as pending, closing the oldest pending connection if
    /// there are already `max_pending_connections`.
    pub(crate) fn pending(&self, node: &Arc<NodeInner>, ip: IpAddr) -> Arc<Ticket> {
        let evict = Arc::new(Notify::new());
        let id = {
            let mut state = self.state.lock();
            if state.pending.len() >= node.config.max_pending_connections {
                if let Some((_, oldest)) = state.pending.pop_first() {
                    oldest.notify_one();
                    node.m.pending_evicted.inc();
                }
            }
            let id = state.next_id;
            state.next_id += 1;
            state.pending.insert(id, evict.clone());
            id
        };
        Arc::new(Ticket {
            node: node.clone(),
            id,
            ip,
            phase: AtomicU8::new(PENDING),
            evict,
        })
    }

    /// Connections still in their handshake.
    pub(crate) fn pending_count(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// Connections past their handshake.
    pub(crate) fn established_count(&self) -> usize {
        self.state.lock().established
    }
}

impl Ticket {
    /// Resolves once the connection has been evicted while pending (never after it is
    /// established).
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Moves the connection to established; false (counted, logged) if that would exceed
    /// `max_connections` or `max_connections_per_ip`, and the connection must close. Later
    /// calls return the first call's answer.
    pub(crate) fn establish(&self) -> bool {
        match self.phase.load(Ordering::Acquire) {
            ESTABLISHED => return true,
            REFUSED => return false,
            _ => {}
        }
        let config = &self.node.config;
        let admission = &self.node.transport.admission;
        let mut state = admission.state.lock();
        if state.pending.remove(&self.id).is_none() {
            // Evicted a moment ago: its task is closing it.
            self.phase.store(REFUSED, Ordering::Release);
            return false;
        }
        let from_ip = state.per_ip.get(&self.ip).copied().unwrap_or(0);
        if state.established >= config.max_connections || from_ip >= config.max_connections_per_ip {
            drop(state);
            self.phase.store(REFUSED, Ordering::Release);
            self.node.m.connections_refused.inc();
            tracing::warn!(
                peer = %self.ip,
                max = config.max_connections,
                max_per_ip = config.max_connections_per_ip,
                "refused a connection over max_connections or max_connections_per_ip"
            );
            return false;
        }
        state.established += 1;
        *state.per_ip.entry(self.ip).or_default() += 1;
        self.phase.store(ESTABLISHED, Ordering::Release);
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.node.transport.admission.state.lock();
        match self.phase.load(Ordering::Acquire) {
            ESTABLISHED => {
                state.established -= 1;
                if let Some(n) = state.per_ip.get_mut(&self.ip) {
                    *n -= 1;
                    if *n == 0 {
                        state.per_ip.remove(&self.ip);
                    }
                }
            }
            _ => {
                state.pending.remove(&self.id);
            }
        }
    }
}
