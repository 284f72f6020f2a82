//! Remote messaging between two nodes on 127.0.0.1 against raw tokio length-delimited TCP doing
//! the same work, in the same run. Bodies carry 100 bytes.
//!
//! ```text
//! cargo bench -p libactor --bench remote
//! ```
//!
//! - `remote_throughput`: one sender streams N messages to one receiver, which signals at the Nth.
//! - `remote_ping_pong`: N sequential round trips.

mod support;

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use futures::{SinkExt, StreamExt};
use support::{
    node, ping_pong_pair, shut_down, start_rounds, start_stream, stream_pair, time_rounds,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const N_STREAM: u64 = 50_000;
const N_ROUNDS: u64 = 2_000;
const BODY_BYTES: usize = 100;

fn body() -> Bytes {
    Bytes::from(vec![0x5a; BODY_BYTES])
}

// ---------- raw tokio ----------

/// A client/server pair of tokio runtimes (one worker thread each, like two nodes) joined by
/// one TCP connection carrying length-delimited frames.
struct RawPair {
    _server: tokio::runtime::Runtime,
    client: tokio::runtime::Runtime,
    commands: mpsc::UnboundedSender<(u64, bool)>,
    done: std_mpsc::Receiver<()>,
}

fn raw_pair() -> RawPair {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (server, client) = (runtime(), runtime());
    let listener = server
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (done_tx, done) = std_mpsc::channel();
    // Server: count frames of a stream (echo = false) or echo each frame (echo = true); the
    // first byte of a frame says which.
    let server_done = done_tx.clone();
    server.spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).ok();
        let (r, w) = stream.into_split();
        let mut frames = FramedRead::new(r, LengthDelimitedCodec::new());
        let mut out = FramedWrite::new(w, LengthDelimitedCodec::new());
        let mut seen = 0u64;
        while let Some(Ok(frame)) = frames.next().await {
            if frame[0] == 1 {
                out.send(frame.freeze()).await.expect("echo");
            } else {
                seen += 1;
                if seen == N_STREAM {
                    seen = 0;
                    let _ = server_done.send(());
                }
            }
        }
    });
    let (commands, mut rx) = mpsc::unbounded_channel::<(u64, bool)>();
    client.spawn(async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        let (r, w) = stream.into_split();
        let mut frames = FramedRead::new(r, LengthDelimitedCodec::new());
        let mut out = FramedWrite::new(w, LengthDelimitedCodec::new());
        let mut stream_body = body().to_vec();
        stream_body[0] = 0;
        let stream_body = Bytes::from(stream_body);
        let mut echo_body = body().to_vec();
        echo_body[0] = 1;
        let echo_body = Bytes::from(echo_body);
        while let Some((n, echo)) = rx.recv().await {
            if echo {
                for _ in 0..n {
                    out.send(echo_body.clone()).await.expect("send");
                    frames.next().await.expect("reply").expect("frame");
                }
                let _ = done_tx.send(());
            } else {
                for _ in 0..n {
                    out.feed(stream_body.clone()).await.expect("feed");
                }
                SinkExt::<Bytes>::flush(&mut out).await.expect("flush");
            }
        }
    });
    RawPair {
        _server: server,
        client,
        commands,
        done,
    }
}

fn remote(c: &mut Criterion) {
    let (a, b) = (node(), node());
    let raw = raw_pair();

    let mut group = c.benchmark_group("remote_throughput");
    group.throughput(Throughput::Elements(N_STREAM));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let (sender, done_rx) = stream_pair(&a, &b, N_STREAM);
    group.bench_function("libactor", |bench| {
        bench.iter_custom(|iters| {
            time_rounds(iters, || start_stream(&sender, N_STREAM, body()), &done_rx)
        })
    });
    group.bench_function("raw_tokio", |bench| {
        bench.iter_custom(|iters| {
            let stream = || raw.commands.send((N_STREAM, false)).expect("client runs");
            time_rounds(iters, stream, &raw.done)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("remote_ping_pong");
    group.throughput(Throughput::Elements(N_ROUNDS));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let (pinger, pp_rx) = ping_pong_pair(&a, &b);
    group.bench_function("libactor", |bench| {
        bench.iter_custom(|iters| {
            time_rounds(iters, || start_rounds(&pinger, N_ROUNDS, body()), &pp_rx)
        })
    });
    group.bench_function("raw_tokio", |bench| {
        bench.iter_custom(|iters| {
            let rounds = || raw.commands.send((N_ROUNDS, true)).expect("client runs");
            time_rounds(iters, rounds, &raw.done)
        })
    });
    group.finish();

    let sent = a.metrics().snapshot();
    println!(
        "sender node: {} frames in {} socket writes ({:.1} frames per write)",
        sent["libactor/transport/frames_sent"],
        sent["libactor/transport/write_batches"],
        sent["libactor/transport/frames_sent"] / sent["libactor/transport/write_batches"].max(1.0)
    );
    shut_down(&[&a, &b]);
    drop(raw.client);
}

criterion_group!(benches, remote);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    support::ratio::report(&[
        ("remote_throughput", "libactor", "raw_tokio", N_STREAM),
        ("remote_ping_pong", "libactor", "raw_tokio", N_ROUNDS),
    ]);
}
