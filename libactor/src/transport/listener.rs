//! Accepts connections on the node's one port and hands each to the protocol it speaks: the
//! actor protocol opens with a NUL byte, HTTP with a method name.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::frame::PREAMBLE;
use crate::node::NodeInner;

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
        if open.load(Ordering::Relaxed) >= node.config.max_connections {
            node.m.connections_refused.inc();
            tracing::warn!(%peer, max = node.config.max_connections, "refused a connection over max_connections");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        node.m.connections_accepted.inc();
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
                    Ok(stream) => serve(&serving, stream).await,
                    Err(e) => tracing::warn!(error = %e, "cannot register an accepted connection"),
                }
                serving
                    .transport
                    .inbound_connections
                    .fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

async fn serve(node: &Arc<NodeInner>, mut stream: TcpStream) {
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
    if first[0] == PREAMBLE[0] {
        let mut preamble = [0u8; PREAMBLE.len()];
        let read = tokio::time::timeout(
            node.config.handshake_timeout,
            stream.read_exact(&mut preamble),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) || &preamble != PREAMBLE {
            node.m.bad_preambles.inc();
            tracing::warn!(got = ?preamble, "closed a connection with a bad actor-protocol preamble");
            return;
        }
        super::inbound::serve_actor(node.clone(), stream).await;
    } else if first[0].is_ascii_uppercase() {
        crate::http::serve(node.clone(), stream).await;
    } else {
        node.m.bad_preambles.inc();
        tracing::warn!(
            byte = first[0],
            "closed a connection that speaks neither HTTP nor the actor protocol"
        );
    }
}
