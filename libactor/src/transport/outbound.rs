//! One writer task per peer node: connects (over mutual TLS on a secure node), writes the
//! preamble, then repeatedly swaps the
//! peer's send buffer out and writes it whole. It also watches the socket for EOF, so a peer
//! that goes away is noticed even when nothing is being sent, and linked processes hear
//! `exited`.

use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use protos::libactor::Hello;

use super::frame::{encode_frame_with, WireName, PREAMBLE};
use super::Peer;
use crate::node::NodeInner;

/// How a peer connection ended.
#[derive(Debug)]
enum Ended {
    /// `Node::disconnect` asked for it.
    Closed,
    /// The connection could not be made.
    ConnectFailed(String),
    /// It broke after being made.
    Broken(String),
}

pub(super) async fn run_peer(node: Arc<NodeInner>, address: String, peer: Arc<Peer>) {
    let span = tracing::debug_span!("peer", %address);
    let ended = write_loop(&node, &address, &peer)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let lost = {
        let mut buffer = peer.buffer.lock();
        buffer.closed = true;
        buffer.bytes = BytesMut::new();
        std::mem::take(&mut buffer.frames)
    };
    node.transport.peer_ended(&address, peer.generation);
    node.m.dropped_connection_lost.add(lost);
    match &ended {
        Ended::Closed => {
            tracing::info!(peer = %address, lost, "connection to peer closed on request")
        }
        Ended::ConnectFailed(e) => {
            node.m.connect_failures.inc();
            tracing::warn!(peer = %address, error = %e, lost, "cannot connect to peer");
        }
        Ended::Broken(e) => {
            node.m.connections_broken.inc();
            tracing::warn!(peer = %address, error = %e, lost, "connection to peer broke");
        }
    }
    node.links_on_connection_broken(&address);
}

async fn write_loop(node: &NodeInner, address: &str, peer: &Peer) -> Ended {
    let connect = tokio::time::timeout(node.config.connect_timeout, TcpStream::connect(address));
    let stream = match connect.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Ended::ConnectFailed(e.to_string()),
        Err(_) => {
            return Ended::ConnectFailed(format!(
                "timed out after {:?}",
                node.config.connect_timeout
            ))
        }
    };
    // Connecting to a loopback port nothing listens on can connect the socket to itself (the
    // kernel picked that very port as the local one): no peer is there, and the port is then
    // held from the node that wants to listen on it again (a restarted master).
    if matches!((stream.local_addr(), stream.peer_addr()), (Ok(l), Ok(p)) if l == p) {
        return Ended::ConnectFailed("connected to itself: nothing listens there".into());
    }
    let _ = stream.set_nodelay(true);
    let Some(tls) = &node.config.tls else {
        let (reader, writer) = stream.into_split();
        return pump(node, peer, reader, writer).await;
    };
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let name = match ServerName::try_from(host.trim_matches(['[', ']']).to_owned()) {
        Ok(name) => name,
        Err(e) => return Ended::ConnectFailed(format!("{host} is no TLS server name: {e}")),
    };
    let handshake = tokio::time::timeout(
        node.config.connect_timeout,
        tls.connector().connect(name, stream),
    );
    match handshake.await {
        Ok(Ok(stream)) => {
            let (reader, writer) = tokio::io::split(stream);
            pump(node, peer, reader, writer).await
        }
        Ok(Err(e)) => {
            node.m.tls_handshake_failures.inc();
            Ended::ConnectFailed(format!("TLS handshake: {e}"))
        }
        Err(_) => {
            node.m.tls_handshake_failures.inc();
            Ended::ConnectFailed(format!(
                "TLS handshake timed out after {:?}",
                node.config.connect_timeout
            ))
        }
    }
}

/// Writes the preamble, then the peer's frames as they come, until the connection ends.
async fn pump<R, W>(node: &NodeInner, peer: &Peer, mut reader: R, mut writer: W) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut opening = BytesMut::from(&PREAMBLE[..]);
    let me = node.anonymous.as_str();
    encode_frame_with(&mut opening, me, me, WireName::of::<Hello>(), 0, |_| {});
    if let Err(e) = writer.write_all(&opening).await {
        return Ended::Broken(e.to_string());
    }
    // Two buffers: senders fill one while the writer writes the other, so steady traffic
    // allocates nothing.
    let mut spare = BytesMut::with_capacity(node.config.write_batch_bytes);
    let mut probe = [0u8; 64];
    loop {
        loop {
            let frames = {
                let mut buffer = peer.buffer.lock();
                if buffer.bytes.is_empty() {
                    break;
                }
                std::mem::swap(&mut buffer.bytes, &mut spare);
                std::mem::take(&mut buffer.frames)
            };
            if let Err(e) = writer.write_all(&spare).await {
                node.m.dropped_connection_lost.add(frames);
                return Ended::Broken(e.to_string());
            }
            spare.clear();
            node.m.frames_sent.add(frames);
            node.m.write_batches.inc();
        }
        // A TLS writer may hold the tail of a batch until flushed (a no-op on plain TCP).
        if let Err(e) = writer.flush().await {
            return Ended::Broken(e.to_string());
        }
        tokio::select! {
            biased;
            _ = peer.close.notified() => return Ended::Closed,
            _ = peer.ready.notified() => {}
            read = reader.read(&mut probe) => match read {
                // Peers never write on a connection they did not open; EOF means it is gone.
                Ok(0) => return Ended::Broken("peer closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Ended::Broken(e.to_string()),
            },
        }
    }
}
