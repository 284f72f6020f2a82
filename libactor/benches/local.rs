//! Local messaging: libactor processes on one node against raw actix actors doing the same work
//! on one arbiter, in the same run.
//!
//! ```text
//! cargo bench -p libactor --bench local
//! ```
//!
//! - `local_throughput`: one sender fires N Pings at one receiver, which signals at the Nth.
//! - `local_ping_pong`: N sequential round trips Ping → Pong.

mod ratio;

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Handler};
use criterion::{criterion_group, Criterion, Throughput};
use libactor::{Context, Node, Process, ProcessRef, Upid};
use protos::libactor::examples::{Ping, Pong};

const N: u64 = 20_000;

fn ping(seq: u64) -> Ping {
    Ping {
        seq,
        payload: Default::default(),
    }
}

// ---------- libactor ----------

/// Counts Pings (throughput) and answers them (ping-pong).
struct Receiver {
    expect: u64,
    seen: u64,
    done: Option<std_mpsc::Sender<()>>,
    reply: bool,
}

impl Process for Receiver {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |r: &mut Receiver, ctx: &mut Context<Receiver>, from: Upid, p: Ping| {
                if r.reply {
                    ctx.send(
                        &from,
                        Pong {
                            seq: p.seq,
                            payload: p.payload,
                        },
                    );
                    return;
                }
                r.seen += 1;
                if r.seen == r.expect {
                    r.seen = 0;
                    if let Some(done) = &r.done {
                        let _ = done.send(());
                    }
                }
            },
        );
    }
}

/// Plays ping-pong with a receiver and signals after `rounds` round trips.
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
                    ctx.send(&p.to, ping(pong.seq + 1));
                }
            },
        );
    }
}

fn libactor_node() -> Node {
    Node::builder()
        .configure(|c| {
            c.arbiters = 1;
            c.io_threads = 1;
        })
        .start()
        .expect("node starts")
}

// ---------- raw actix ----------

struct RawReceiver {
    expect: u64,
    seen: u64,
    done: std_mpsc::Sender<()>,
}

impl Actor for RawReceiver {
    type Context = actix::Context<Self>;
}

struct RawPing(Ping, Option<Addr<RawPinger>>);

impl actix::Message for RawPing {
    type Result = ();
}

impl Handler<RawPing> for RawReceiver {
    type Result = ();
    fn handle(&mut self, RawPing(p, reply_to): RawPing, _: &mut Self::Context) {
        if let Some(reply_to) = reply_to {
            reply_to.do_send(RawPong(Pong {
                seq: p.seq,
                payload: p.payload,
            }));
            return;
        }
        self.seen += 1;
        if self.seen == self.expect {
            self.seen = 0;
            let _ = self.done.send(());
        }
    }
}

struct RawPinger {
    to: Addr<RawReceiver>,
    left: u64,
    done: std_mpsc::Sender<()>,
}

impl Actor for RawPinger {
    type Context = actix::Context<Self>;
}

struct RawPong(Pong);

impl actix::Message for RawPong {
    type Result = ();
}

impl Handler<RawPong> for RawPinger {
    type Result = ();
    fn handle(&mut self, RawPong(pong): RawPong, ctx: &mut Self::Context) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.send(());
        } else {
            use actix::AsyncContext;
            self.to
                .do_send(RawPing(ping(pong.seq + 1), Some(ctx.address())));
        }
    }
}

/// Starts `f` inside a fresh actix system with one arbiter and returns what it returns.
fn in_actix<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        let arbiter = actix_rt::Arbiter::new();
        arbiter.spawn_fn(move || {
            let _ = tx.send(f());
        });
        system.run().ok();
    });
    rx.recv().expect("actix thread starts")
}

fn local(c: &mut Criterion) {
    let mut group = c.benchmark_group("local_throughput");
    group.throughput(Throughput::Elements(N));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));

    // libactor: the sender dispatches N sends from inside a process on the same arbiter.
    let node = libactor_node();
    let (done_tx, done_rx) = std_mpsc::channel();
    let receiver = node
        .spawn(
            "receiver",
            Receiver {
                expect: N,
                seen: 0,
                done: Some(done_tx),
                reply: false,
            },
        )
        .expect("spawn");
    let sender: ProcessRef<Pinger> = node
        .spawn_ref(
            "sender",
            Pinger {
                to: receiver.clone(),
                left: 0,
                done: None,
            },
        )
        .expect("spawn");
    group.bench_function("libactor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let to = receiver.clone();
                sender.dispatch(move |_, ctx| {
                    for seq in 0..N {
                        ctx.send(&to, ping(seq));
                    }
                });
                done_rx.recv().expect("receiver signals");
            }
            start.elapsed()
        })
    });

    // raw actix: a sender actor fires N Pings at a receiver on the same arbiter.
    let (raw_done_tx, raw_done_rx) = std_mpsc::channel();
    let raw_sender = in_actix(move || {
        let (unused_tx, _unused_rx) = std_mpsc::channel();
        let receiver = RawReceiver {
            expect: N,
            seen: 0,
            done: raw_done_tx,
        }
        .start();
        RawPinger {
            to: receiver,
            left: 0,
            done: unused_tx,
        }
        .start()
    });
    group.bench_function("raw_actix", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                raw_sender.do_send(Burst(N));
                raw_done_rx.recv().expect("receiver signals");
            }
            start.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("local_ping_pong");
    group.throughput(Throughput::Elements(N));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let ponger = node
        .spawn(
            "ponger",
            Receiver {
                expect: 0,
                seen: 0,
                done: None,
                reply: true,
            },
        )
        .expect("spawn");
    let (pp_done_tx, pp_done_rx) = std_mpsc::channel();
    let pinger: ProcessRef<Pinger> = node
        .spawn_ref(
            "pinger",
            Pinger {
                to: ponger.clone(),
                left: 0,
                done: Some(pp_done_tx),
            },
        )
        .expect("spawn");
    group.bench_function("libactor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                pinger.dispatch(|p, ctx| {
                    p.left = N;
                    let to = p.to.clone();
                    ctx.send(&to, ping(0));
                });
                pp_done_rx.recv().expect("pinger signals");
            }
            start.elapsed()
        })
    });

    let (raw_pp_tx, raw_pp_rx) = std_mpsc::channel();
    let (raw_pinger, raw_ponger) = in_actix(move || {
        let (unused_tx, _unused_rx) = std_mpsc::channel();
        let ponger = RawReceiver {
            expect: 0,
            seen: 0,
            done: unused_tx,
        }
        .start();
        let pinger = RawPinger {
            to: ponger.clone(),
            left: 0,
            done: raw_pp_tx,
        }
        .start();
        (pinger, ponger)
    });
    group.bench_function("raw_actix", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                raw_pinger.do_send(StartRounds(N));
                raw_pp_rx.recv().expect("pinger signals");
            }
            start.elapsed()
        })
    });
    group.finish();
    drop(raw_ponger);
    shut_down(node);
}

fn shut_down(node: Node) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(node.shutdown());
}

/// Fire `n` Pings at the receiver, as the libactor sender does.
struct Burst(u64);

impl actix::Message for Burst {
    type Result = ();
}

impl Handler<Burst> for RawPinger {
    type Result = ();
    fn handle(&mut self, Burst(n): Burst, _: &mut Self::Context) {
        for seq in 0..n {
            self.to.do_send(RawPing(ping(seq), None));
        }
    }
}

struct StartRounds(u64);

impl actix::Message for StartRounds {
    type Result = ();
}

impl Handler<StartRounds> for RawPinger {
    type Result = ();
    fn handle(&mut self, StartRounds(n): StartRounds, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        self.left = n;
        self.to.do_send(RawPing(ping(0), Some(ctx.address())));
    }
}

criterion_group!(benches, local);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio::report(&[
        ("local_throughput", "libactor", "raw_actix", N),
        ("local_ping_pong", "libactor", "raw_actix", N),
    ]);
}
