//! Remote messaging between two nodes on 127.0.0.1 against raw tokio length-delimited TCP doing
//! the same work, in the same run. Bodies carry 100 bytes.
//!
//! ```text
//! cargo bench -p libactor --bench remote
//! ```
//!
//! - `remote_throughput`: one sender streams N messages to one receiver, which signals at the Nth.
//! - `remote_ping_pong`: N sequential round trips.

mod ratio;

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use futures::{SinkExt, StreamExt};
use libactor::{Context, Node, Process, ProcessRef, Upid};
use protos::libactor::examples::{Ping, Pong};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const N_STREAM: u64 = 50_000;
const N_ROUNDS: u64 = 2_000;
const BODY_BYTES: usize = 100;

fn body() -> Bytes {
    Bytes::from(vec![0x5a; BODY_BYTES])
}

// ---------- libactor ----------

/// Counts Pings and signals at `expect`, or answers each with a Pong.
struct Receiver {
    expect: u64,
    seen: u64,
    done: Option<std_mpsc::Sender<()>>,
}

impl Process for Receiver {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |r: &mut Receiver, ctx: &mut Context<Receiver>, from: Upid, p: Ping| {
                let Some(done) = &r.done else {
                    ctx.send(
                        &from,
                        Pong {
                            seq: p.seq,
                            payload: p.payload,
                        },
                    );
                    return;
                };
                r.seen += 1;
                if r.seen == r.expect {
                    r.seen = 0;
                    let _ = done.send(());
                }
            },
        );
    }
}

/// Streams Pings on request, or plays ping-pong and signals after its rounds.
struct Pinger {
    to: Upid,
    left: u64,
    done: Option<std_mpsc::Sender<()>>,
}

impl Process for Pinger {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |p: &mut Pinger, ctx: &mut Context<Pinger>, _: Upid, pong: Pong| {
                p.left -= 1;
                if p.left == 0 {
                    if let Some(done) = &p.done {
                        let _ = done.send(());
                    }
                } else {
                    let to = p.to.clone();
                    ctx.send(
                        &to,
                        Ping {
                            seq: pong.seq + 1,
                            payload: pong.payload,
                        },
                    );
                }
            },
        );
    }
}

fn node() -> Node {
    Node::builder()
        .configure(|c| {
            c.arbiters = 1;
            c.io_threads = 1;
        })
        .start()
        .expect("node starts")
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
    let (done_tx, done_rx) = std_mpsc::channel();
    let receiver = b
        .spawn(
            "receiver",
            Receiver {
                expect: N_STREAM,
                seen: 0,
                done: Some(done_tx),
            },
        )
        .expect("spawn");
    let sender: ProcessRef<Pinger> = a
        .spawn_ref(
            "sender",
            Pinger {
                to: receiver.clone(),
                left: 0,
                done: None,
            },
        )
        .expect("spawn");
    group.bench_function("libactor", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                sender.dispatch(|p, ctx| {
                    let to = p.to.clone();
                    let payload = body();
                    for seq in 0..N_STREAM {
                        ctx.send(
                            &to,
                            Ping {
                                seq,
                                payload: payload.clone(),
                            },
                        );
                    }
                });
                done_rx.recv().expect("receiver signals");
            }
            start.elapsed()
        })
    });
    group.bench_function("raw_tokio", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                raw.commands.send((N_STREAM, false)).expect("client runs");
                raw.done.recv().expect("server signals");
            }
            start.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("remote_ping_pong");
    group.throughput(Throughput::Elements(N_ROUNDS));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let ponger = b
        .spawn(
            "ponger",
            Receiver {
                expect: 0,
                seen: 0,
                done: None,
            },
        )
        .expect("spawn");
    let (pp_tx, pp_rx) = std_mpsc::channel();
    let pinger: ProcessRef<Pinger> = a
        .spawn_ref(
            "pinger",
            Pinger {
                to: ponger,
                left: 0,
                done: Some(pp_tx),
            },
        )
        .expect("spawn");
    group.bench_function("libactor", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                pinger.dispatch(|p, ctx| {
                    p.left = N_ROUNDS;
                    let to = p.to.clone();
                    ctx.send(
                        &to,
                        Ping {
                            seq: 0,
                            payload: body(),
                        },
                    );
                });
                pp_rx.recv().expect("pinger signals");
            }
            start.elapsed()
        })
    });
    group.bench_function("raw_tokio", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                raw.commands.send((N_ROUNDS, true)).expect("client runs");
                raw.done.recv().expect("client signals");
            }
            start.elapsed()
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        a.shutdown().await;
        b.shutdown().await;
    });
    drop(raw.client);
}

criterion_group!(benches, remote);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio::report(&[
        ("remote_throughput", "libactor", "raw_tokio", N_STREAM),
        ("remote_ping_pong", "libactor", "raw_tokio", N_ROUNDS),
    ]);
}
