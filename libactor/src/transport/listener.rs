//! Accepts connections on the node's one port and hands each to the protocol it speaks: the
//! actor protocol opens with a NUL byte, HTTP with a method name.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::frame::PREAMBLE;
use super::Ticket;
use crate::node::NodeInner;
use crate::tls::{Identity, TlsConfig, ALPN_ACTOR};

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn accept_loop(
    node: Arc<NodeInner>,
    listener: TcpListener,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    closed: tokio::sync::oneshot::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => {
                drop(listener);
                let _ = closed.send(());
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let open = &node.transport.inbound_connections;
        open.fetch_add(1, Ordering::Relaxed);
        node.m.connections_accepted.inc();
        let ticket = node.transport.admission.pending(&node, peer.ip());
        // Served on an arbiter: messages then reach the mailboxes of that arbiter's processes
        // without waking another thread. A socket belongs to the reactor of the thread that
        // serves it, so it moves there as a std socket.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "cannot hand over an accepted connection");
                continue;
            }
        };
        let serving = node.clone();
        let span = tracing::debug_span!("connection", %peer);
        node.spawn_on_arbiter(
            async move {
                match TcpStream::from_std(stream) {
                    Ok(stream) => tokio::select! {
                        _ = serve(&serving, stream, &ticket) => {}
                        _ = ticket.evicted() => {
                            tracing::debug!("closed a connection still in its handshake to admit a newer one");
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot register an accepted connection"),
                }
                drop(ticket);
                serving
                    .transport
                    .inbound_connections
                    .fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

async fn serve(node: &Arc<NodeInner>, mut stream: TcpStream, ticket: &Arc<Ticket>) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(node.config.handshake_timeout, stream.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) => {}
        Ok(Ok(_)) | Ok(Err(_)) => return,
        Err(_) => {
            node.m.bad_preambles.inc();
            tracing::debug!("connection said nothing within the handshake timeout");
            return;
        }
    }
    match (first[0], &node.config.tls) {
        (TLS_HANDSHAKE, Some(tls)) => serve_tls(node, stream, tls, ticket).await,
        (byte, Some(_)) if byte == PREAMBLE[0] => {
            node.m.refused_plaintext.inc();
            tracing::warn!("refused a plaintext actor-protocol connection: this node speaks it only over mutual TLS");
        }
        (byte, None) if byte == PREAMBLE[0] => {
            if read_preamble(node, &mut stream).await {
                super::inbound::serve_actor(node.clone(), stream, None, ticket).await;
            }
        }
        (byte, _) if byte.is_ascii_uppercase() => {
            crate::http::serve(node.clone(), stream, None, ticket.clone(), false).await
        }
        (byte, _) => {
            node.m.bad_preambles.inc();
            tracing::warn!(
                byte,
                "closed a connection that speaks neither HTTP nor the actor protocol"
            );
        }
    }
}

/// The first byte of a TLS ClientHello record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Runs the TLS handshake, then serves the actor protocol (ALPN `keel-actor/1`, a client
/// certificate required) or HTTPS (a client certificate optional) inside it.
async fn serve_tls(
    node: &Arc<NodeInner>,
    stream: TcpStream,
    tls: &TlsConfig,
    ticket: &Arc<Ticket>,
) {
    let accepted =
        tokio::time::timeout(node.config.handshake_timeout, tls.acceptor().accept(stream)).await;
    let mut stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            node.m.tls_handshake_failures.inc();
            tracing::warn!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            node.m.tls_handshake_failures.inc();
            tracing::debug!("TLS handshake did not finish within the handshake timeout");
            return;
        }
    };
    let session = &stream.get_ref().1;
    let actor = session.alpn_protocol() == Some(ALPN_ACTOR);
    let identity = match session.peer_certificates().and_then(|c| c.first()) {
        None => None,
        Some(der) => match Identity::from_der(der) {
            Ok(identity) => Some(Arc::new(identity)),
            Err(e) => {
                node.m.tls_handshake_failures.inc();
                tracing::warn!(error = %e, "refused a connection: its certificate names no identity");
                return;
            }
        },
    };
    if !actor {
        return crate::http::serve(node.clone(), stream, identity, ticket.clone(), false).await;
    }
    let Some(identity) = identity else {
        node.m.refused_unauthenticated.inc();
        tracing::warn!("refused an actor-protocol connection without a client certificate");
        return;
    };
    if read_preamble(node, &mut stream).await {
        tracing::debug!(peer = %identity, "authenticated actor-protocol connection");
        super::inbound::serve_actor(node.clone(), stream, Some(identity), ticket).await;
    }
}

/// Reads and checks the actor-protocol preamble; false (counted) if it is wrong or late.
pub(crate) async fn read_preamble<S: AsyncRead + Unpin>(node: &NodeInner, stream: &mut S) -> bool {
    let mut preamble = [0u8; PREAMBLE.len()];
    let read = tokio::time::timeout(
        node.config.handshake_timeout,
        stream.read_exact(&mut preamble),
    )
    .await;
    if !matches!(read, Ok(Ok(_))) || &preamble != PREAMBLE {
        node.m.bad_preambles.inc();
        tracing::warn!(got = ?preamble, "closed a connection with a bad actor-protocol preamble");
        return false;
    }
    true
}
