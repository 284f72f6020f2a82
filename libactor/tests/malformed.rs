//! Bad input from the network against a live node: every case is counted and dropped, nothing
//! panics, and a well-behaved peer keeps being served throughout.

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use libactor::transport::frame::PREAMBLE;
use libactor::{Clock, Node, Upid};
use prost::Message;
use protos::libactor::examples::{Note, Pong};
use protos::libactor::Envelope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_FRAME: usize = 4096;

fn frame(envelope: &Envelope) -> BytesMut {
    let body = envelope.encode_to_vec();
    let mut buf = BytesMut::new();
    buf.put_u32(body.len() as u32);
    buf.put_slice(&body);
    buf
}

fn envelope(from: &str, to: &Upid, name: &str, body: Vec<u8>) -> Envelope {
    Envelope {
        from: from.into(),
        to: to.to_string(),
        name: name.into(),
        body: body.into(),
    }
}

fn note_frame(from: &str, to: &Upid, text: &str) -> BytesMut {
    frame(&envelope(
        from,
        to,
        "keel.libactor.examples.Note",
        note(text).encode_to_vec(),
    ))
}

async fn actor_connection(node: &Node) -> TcpStream {
    let mut s = within(TcpStream::connect(node.socket_addr()))
        .await
        .unwrap();
    s.write_all(PREAMBLE).await.unwrap();
    // Every connection opens with the peer node's hello.
    let hello = envelope(
        "__node__@127.0.0.1:9",
        node.anonymous_pid(),
        "keel.libactor.Hello",
        Vec::new(),
    );
    s.write_all(&frame(&hello)).await.unwrap();
    s
}

/// Waits for the node to close `stream` (reads until EOF or reset).
async fn closed_by_node(mut stream: TcpStream) {
    let mut sink = Vec::new();
    let _ = within(stream.read_to_end(&mut sink)).await;
}

/// A well-behaved peer node asks the victim's recorder for a Pong.
async fn peer_still_served(peer: &Node, target: &Upid, seq: u64) {
    let pong: Pong = peer
        .ask(target, ping(seq), EVENT_TIMEOUT)
        .await
        .expect("the well-behaved peer is still served");
    assert_eq!(pong.seq, seq);
}

#[tokio::test]
async fn every_kind_of_malformed_input_is_counted_and_survived() {
    let victim = node_with(&Clock::new(), |c| c.max_frame_bytes = MAX_FRAME);
    let peer = node();
    let (rec, mut rx) = Recorder::new();
    let target = victim.spawn("target", rec).unwrap();
    let me = "attacker@127.0.0.1:9";
    let attacker: Upid = me.parse().unwrap();
    let metric = |name: &str| victim.metrics().snapshot()[name];

    peer_still_served(&peer, &target, 1).await;
    rx.recv().await;

    // 1. Random bytes that are neither HTTP nor the actor protocol: closed at once.
    let mut s = within(TcpStream::connect(victim.socket_addr()))
        .await
        .unwrap();
    s.write_all(&[0x9c, 0x01, 0xff, 0x42, 0x00, 0x17])
        .await
        .unwrap();
    closed_by_node(s).await;
    assert_eq!(metric("libactor/transport/bad_preambles"), 1.0);

    // 2. A NUL byte then a wrong preamble.
    let mut s = within(TcpStream::connect(victim.socket_addr()))
        .await
        .unwrap();
    s.write_all(b"\0NOPE!").await.unwrap();
    closed_by_node(s).await;
    assert_eq!(metric("libactor/transport/bad_preambles"), 2.0);
    peer_still_served(&peer, &target, 2).await;
    rx.recv().await;

    // 3–8 share one connection: after each bad frame a good one proves the stream resynced.
    let mut s = actor_connection(&victim).await;

    // 3. An oversized frame is skipped without being buffered.
    let mut big = BytesMut::new();
    big.put_u32((MAX_FRAME * 4) as u32);
    big.put_slice(&vec![0xab; MAX_FRAME * 4]);
    s.write_all(&big).await.unwrap();
    s.write_all(&note_frame(me, &target, "after oversized"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(attacker.clone(), note("after oversized"))
    );
    assert_eq!(metric("libactor/transport/oversized_frames"), 1.0);

    // 4. A frame whose envelope is not a protobuf.
    let mut junk = BytesMut::new();
    junk.put_u32(7);
    junk.put_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    s.write_all(&junk).await.unwrap();
    s.write_all(&note_frame(me, &target, "after junk"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(attacker.clone(), note("after junk"))
    );
    assert_eq!(metric("libactor/transport/malformed_frames"), 1.0);

    // 5. An envelope with an invalid sender.
    s.write_all(&note_frame("no-at-sign", &target, "bad sender"))
        .await
        .unwrap();
    s.write_all(&note_frame(me, &target, "after bad sender"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(attacker.clone(), note("after bad sender"))
    );
    assert_eq!(metric("libactor/transport/invalid_envelopes"), 1.0);

    // 6. An unknown message name.
    s.write_all(&frame(&envelope(
        me,
        &target,
        "keel.nope.Unknown",
        vec![1, 2, 3],
    )))
    .await
    .unwrap();
    // 7. A known name whose body does not decode.
    s.write_all(&frame(&envelope(
        me,
        &target,
        "keel.libactor.examples.Ping",
        vec![0xff; 9],
    )))
    .await
    .unwrap();
    // 8. A process that does not exist.
    let ghost = victim.pid("ghost").unwrap();
    s.write_all(&note_frame(me, &ghost, "to nobody"))
        .await
        .unwrap();
    s.write_all(&note_frame(me, &target, "after 6-8"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Seen::Note(attacker.clone(), note("after 6-8"))
    );
    assert_eq!(metric("libactor/dropped/unknown_message"), 1.0);
    assert_eq!(metric("libactor/dropped/undecodable_body"), 1.0);
    assert_eq!(metric("libactor/dropped/unknown_process"), 1.0);
    peer_still_served(&peer, &target, 3).await;
    rx.recv().await;

    // 9. A truncated frame: the peer stops writing mid-frame.
    let mut half = note_frame(me, &target, "never completes");
    half.truncate(half.len() - 3);
    s.write_all(&half).await.unwrap();
    s.shutdown().await.unwrap();
    closed_by_node(s).await;
    assert_eq!(metric("libactor/transport/truncated_frames"), 1.0);

    // 10. HTTP garbage gets a 400, and the node goes on.
    let mut s = within(TcpStream::connect(victim.socket_addr()))
        .await
        .unwrap();
    s.write_all(b"GARBAGE \x01\x02 nonsense\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = within(s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 400"),
        "{text}"
    );

    // 11. Random bytes after a valid preamble: framing garbage is dropped or skipped.
    let mut s = actor_connection(&victim).await;
    let mut noise = Vec::with_capacity(10_000);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    s.write_all(&noise).await.unwrap();
    s.shutdown().await.unwrap();
    closed_by_node(s).await;

    peer_still_served(&peer, &target, 4).await;
    assert!(matches!(next(&mut rx).await, Seen::Ping(_, p) if p.seq == 4));
    victim.clock().settle().await.unwrap();
    assert_quiet(&mut rx);
    victim.shutdown().await;
    peer.shutdown().await;
}

#[tokio::test]
async fn too_many_connections_are_refused_and_counted() {
    let victim = node_with(&Clock::new(), |c| c.max_connections = 2);
    let (rec, mut rx) = Recorder::new();
    let target = victim.spawn("target", rec).unwrap();
    let first = actor_connection(&victim).await;
    let mut second = actor_connection(&victim).await;
    // Both are being served: a note on the second arrives.
    second
        .write_all(&note_frame("a@127.0.0.1:9", &target, "served"))
        .await
        .unwrap();
    assert!(matches!(next(&mut rx).await, Seen::Note(_, n) if n == Note { text: "served".into() }));
    // A third is served until its handshake ends, then refused.
    let third = actor_connection(&victim).await;
    closed_by_node(third).await;
    assert_eq!(
        victim.metrics().snapshot()["libactor/transport/connections_refused"],
        1.0
    );
    drop(first);
    drop(second);
    victim.shutdown().await;
}

#[tokio::test]
async fn a_flood_from_one_peer_is_throttled_not_buffered_without_bound() {
    const LIMIT: usize = 64;
    let victim = node_with(&Clock::new(), |c| c.max_inbound_inflight = LIMIT);
    let sender = node();
    let (rec, mut rx) = Recorder::new();
    let target = victim.spawn_ref("target", rec).unwrap();
    // Hold the target's arbiter so that its mailbox cannot drain. Processes and inbound
    // connections take the victim's two arbiters in turn: the target has the first, so the
    // sender's connection is read on the second, which stays free.
    let (release, held) = std::sync::mpsc::channel::<()>();
    target.dispatch(move |_, _| {
        let _ = held.recv_timeout(EVENT_TIMEOUT);
    });
    const N: u64 = 5_000;
    for seq in 0..N {
        sender.send(target.pid(), note(&seq.to_string()));
    }
    let metric = |name: &str| victim.metrics().snapshot()[name];
    within(async {
        while metric("libactor/transport/inbound_throttled") < 1.0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let depth = metric("libactor/mailbox_depth");
    assert!(
        depth <= (LIMIT + 2) as f64,
        "reading stopped near the limit, not after buffering everything: depth {depth}"
    );
    release.send(()).unwrap();
    for seq in 0..N {
        assert_eq!(
            next(&mut rx).await,
            Seen::Note(sender.anonymous_pid().clone(), note(&seq.to_string()))
        );
    }
    victim.shutdown().await;
    sender.shutdown().await;
}

/// Raises this process's open-file limit as far as allowed; returns the soft limit now.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_and_half_open_connections_do_not_lock_anyone_out() {
    let victim = node_with(&Clock::new(), |c| {
        c.max_pending_connections = 64;
        c.max_connections = 128;
    });
    let (rec, _rx) = Recorder::new();
    let target = victim.spawn("target", rec).unwrap();
    // Up to 10,000 held connections (fewer where the open-file limit is lower): nine in ten
    // say nothing at all, one in ten only the actor protocol's preamble.
    let held_max = (raise_fd_limit().saturating_sub(512) / 2).min(10_000) as usize;
    let mut held = Vec::with_capacity(held_max);
    for i in 0..held_max {
        let mut s = within(TcpStream::connect(victim.socket_addr()))
            .await
            .unwrap();
        if i % 10 == 0 {
            let _ = s.write_all(PREAMBLE).await;
        }
        held.push(s);
    }
    // Every connection so far has been accepted once this one is: the accept loop takes them
    // in order.
    let reply = libactor::http_client::request(
        victim.address(),
        "GET",
        "/metrics/snapshot",
        &[],
        Default::default(),
    )
    .await
    .expect("a prompt HTTP client is served");
    assert_eq!(reply.status, 200);
    let peer = node();
    peer_still_served(&peer, &target, 1).await;
    let m = victim.metrics().snapshot();
    assert!(
        m["libactor/transport/pending_evicted"] >= (held_max - 64) as f64,
        "{held_max} held, {} evicted",
        m["libactor/transport/pending_evicted"]
    );
    assert!(m["libactor/transport/pending_connections"] <= 64.0);
    drop(held);
    peer.shutdown().await;
    victim.shutdown().await;
}
