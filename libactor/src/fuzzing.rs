//! Entry points for fuzzers: each takes arbitrary bytes, drives one parser of outside input
//! the way a peer's bytes reach it, and panics only when an invariant breaks (a panic is the
//! finding). The cargo-fuzz targets under `fuzz/` and the stable smoke test of `keel-fuzz`
//! call these; nothing else should.

use std::net::{IpAddr, Ipv4Addr};

use bytes::{Bytes, BytesMut};
use prost::Message;
use protos::libactor::Envelope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::frame::{parse_envelope, Decoded, FrameDecoder, PREAMBLE};
use crate::{Node, Upid};

/// How long an inbound connection's answer is read before it counts as a stream.
const STREAM_BOUND: std::time::Duration = std::time::Duration::from_millis(300);
/// How long a streamed HTTP answer (its head says `chunked`) is read after its head: its
/// first records come with it, and waiting the whole [`STREAM_BOUND`] for every stream cut
/// the master's fuzz targets to a third of their speed.
const STREAM_TAIL: std::time::Duration = std::time::Duration::from_millis(20);

/// Largest frame the fuzzed decoder accepts: small, so skipping is exercised too.
const FUZZ_MAX_FRAME: usize = 4096;

/// Decodes `data` as an actor-protocol byte stream twice, whole and cut into chunks whose
/// sizes its first byte picks, and checks both give the same frames; parses each frame's
/// envelope, and checks it reads what prost reads.
pub fn frame_stream(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = decode_all(&[stream]);
    let step = usize::from(cut % 61) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(step).collect();
    assert_eq!(
        whole,
        decode_all(&chunks),
        "chunking changed the frames decoded"
    );
    for frame in whole.iter().filter_map(|d| match d {
        Decoded::Frame(f) => Some(f),
        Decoded::Skipped(len) => {
            assert!(
                *len > FUZZ_MAX_FRAME as u64,
                "skipped a frame within the limit"
            );
            None
        }
    }) {
        assert!(frame.len() <= FUZZ_MAX_FRAME);
        let parsed = parse_envelope(frame);
        // prost is the reference decoder: whatever it reads, the copy-free parser reads the
        // same (the reverse need not hold: prost refuses a known field of the wrong wire
        // type, which the parser skips as unknown).
        if let Ok(reference) = Envelope::decode(frame.clone()) {
            let envelope = parsed.expect("an envelope prost decodes parses");
            assert_eq!(
                (
                    envelope.from,
                    envelope.to,
                    &*envelope.name,
                    &envelope.body[..]
                ),
                (
                    reference.from.as_str(),
                    reference.to.as_str(),
                    reference.name.as_str(),
                    &reference.body[..]
                )
            );
        }
    }
}

fn decode_all(chunks: &[&[u8]]) -> Vec<Decoded> {
    let mut decoder = FrameDecoder::new(FUZZ_MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(d) = decoder.decode(&mut buf) {
            out.push(d);
        }
    }
    out
}

/// Parses `data` as a process address; one that parses prints back to text that parses to
/// the same address.
pub fn upid(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pid) = Upid::parse(text) {
        let printed = pid.to_string();
        let again = Upid::parse(&printed).expect("a printed pid parses");
        assert_eq!(again, pid, "{text:?} printed as {printed:?}");
    }
}

/// Serves `data` on `node` as one inbound plaintext connection from 127.0.0.1 that sends it
/// and closes its side (HTTP requests, libprocess-style message posts, or the actor protocol
/// after its preamble), and returns what the node wrote back. Call it from outside any
/// runtime: it runs on the node's own.
pub fn inbound_connection(node: &Node, data: &[u8]) -> Vec<u8> {
    let inner = node.inner.clone();
    let data = Bytes::copy_from_slice(data);
    node.inner.rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let ticket = inner
            .transport
            .admission
            .pending(&inner, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let first = data.first().copied();
        let served = tokio::spawn(async move {
            let mut server = server;
            match first {
                Some(byte)
                    if byte == PREAMBLE[0]
                        && crate::transport::read_preamble(&inner, &mut server).await =>
                {
                    crate::transport::serve_actor(inner.clone(), server, None, &ticket).await;
                }
                Some(byte) if byte.is_ascii_uppercase() => {
                    crate::http::serve(inner.clone(), server, None, ticket, true).await
                }
                _ => {}
            }
        });
        let (mut read, mut write) = tokio::io::split(&mut client);
        let writing = async {
            // The node may close before reading everything: that is an answer too.
            let _ = write.write_all(&data).await;
            let _ = write.shutdown().await;
        };
        let mut answer = Vec::new();
        // A stream (an event subscription) stays open: what came within the bound is its answer.
        let reading = tokio::time::timeout(STREAM_BOUND, read_answer(&mut read, &mut answer));
        let (_, read) = tokio::join!(writing, reading);
        drop(client);
        if read.is_ok_and(|ended| ended) {
            served.await.expect("serving a connection does not panic");
        } else {
            served.abort();
            if let Err(e) = served.await {
                assert!(e.is_cancelled(), "serving a connection panicked: {e}");
            }
        }
        answer
    })
}

/// Reads a connection's answer into `answer` until the node closes it (true), or, when the
/// answer is a streamed HTTP response, for [`STREAM_TAIL`] after its head (false).
async fn read_answer(read: &mut (impl tokio::io::AsyncRead + Unpin), answer: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        if !head.contains("transfer-encoding: chunked") {
            // A whole answer (and any pipelined after it): to the end.
            return read.read_to_end(answer).await.is_ok();
        }
        let _ = tokio::time::timeout(STREAM_TAIL, async {
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        return false;
    }
}
