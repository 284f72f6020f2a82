//! One writer task per peer node: connects, writes the preamble, then drains the peer's send
//! queue into batched socket writes. It also watches the socket for EOF, so a peer that goes
//! away is noticed even when nothing is being sent, and linked processes hear `exited`.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use super::frame::{encode_frame, PREAMBLE};
use super::OutMessage;
use crate::node::NodeInner;

/// How a peer connection ended.
#[derive(Debug)]
enum Ended {
    /// The node dropped the queue: nothing more to send.
    Idle,
    /// `Node::disconnect` asked for it.
    Closed,
    /// The connection could not be made.
    ConnectFailed(String),
    /// It broke after being made.
    Broken(String),
}

pub(super) async fn run_peer(
    node: Arc<NodeInner>,
    address: String,
    generation: u64,
    mut rx: mpsc::Receiver<OutMessage>,
    close: Arc<Notify>,
) {
    let span = tracing::debug_span!("peer", %address);
    let ended = write_loop(&node, &address, &mut rx, &close)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    node.transport.peer_ended(&address, generation);
    rx.close();
    let mut lost = 0u64;
    while rx.try_recv().is_ok() {
        lost += 1;
    }
    node.transport
        .queued
        .fetch_sub(lost as i64, std::sync::atomic::Ordering::Relaxed);
    node.m.dropped_connection_lost.add(lost);
    match &ended {
        Ended::Idle => return,
        Ended::Closed => tracing::info!(lost, "connection to peer closed on request"),
        Ended::ConnectFailed(e) => {
            node.m.connect_failures.inc();
            tracing::warn!(error = %e, lost, "cannot connect to peer");
        }
        Ended::Broken(e) => {
            node.m.connections_broken.inc();
            tracing::warn!(error = %e, lost, "connection to peer broke");
        }
    }
    node.links_on_connection_broken(&address);
}

async fn write_loop(
    node: &NodeInner,
    address: &str,
    rx: &mut mpsc::Receiver<OutMessage>,
    close: &Notify,
) -> Ended {
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
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    if let Err(e) = writer.write_all(PREAMBLE).await {
        return Ended::Broken(e.to_string());
    }
    let batch_bytes = node.config.write_batch_bytes;
    let mut buf = BytesMut::with_capacity(batch_bytes);
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            biased;
            _ = close.notified() => return Ended::Closed,
            next = rx.recv() => {
                let Some(first) = next else { return Ended::Idle };
                let mut count = 1u64;
                encode(&mut buf, &first);
                while buf.len() < batch_bytes {
                    match rx.try_recv() {
                        Ok(msg) => {
                            encode(&mut buf, &msg);
                            count += 1;
                        }
                        Err(_) => break,
                    }
                }
                node.transport
                    .queued
                    .fetch_sub(count as i64, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = writer.write_all(&buf).await {
                    node.m.dropped_connection_lost.add(count);
                    return Ended::Broken(e.to_string());
                }
                buf.clear();
                node.m.frames_sent.add(count);
                node.m.write_batches.inc();
            }
            read = reader.read(&mut probe) => match read {
                // Peers never write on a connection they did not open; EOF means it is gone.
                Ok(0) => return Ended::Broken("peer closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Ended::Broken(e.to_string()),
            },
        }
    }
}

fn encode(buf: &mut BytesMut, msg: &OutMessage) {
    encode_frame(buf, msg.from.as_str(), msg.to.as_str(), msg.name, &msg.body);
}
