//! Local messaging: libactor processes on one node against raw actix actors doing the same work
//! on one arbiter, in the same run.
//!
//! ```text
//! cargo bench -p libactor --bench local
//! ```
//!
//! - `local_throughput`: one sender fires N Pings at one receiver, which signals at the Nth.
//! - `local_ping_pong`: N sequential round trips Ping → Pong.

mod support;

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use actix::{Actor, Addr, Handler};
use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use protos::libactor::examples::{Ping, Pong};
use support::{
    node, ping_pong_pair, shut_down, start_rounds, start_stream, stream_pair, time_rounds,
};

const N: u64 = 20_000;

fn ping(seq: u64) -> Ping {
    Ping {
        seq,
        payload: Default::default(),
    }
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
    let node = node();

    let mut group = c.benchmark_group("local_throughput");
    group.throughput(Throughput::Elements(N));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));

    // libactor: a sender process fires N Pings at a receiver on the same arbiter.
    let (sender, done_rx) = stream_pair(&node, &node, N);
    group.bench_function("libactor", |b| {
        b.iter_custom(|iters| {
            time_rounds(iters, || start_stream(&sender, N, Bytes::new()), &done_rx)
        })
    });

    // raw actix: the same with Addr::do_send.
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
        b.iter_custom(|iters| time_rounds(iters, || raw_sender.do_send(Burst(N)), &raw_done_rx))
    });
    group.finish();

    let mut group = c.benchmark_group("local_ping_pong");
    group.throughput(Throughput::Elements(N));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let (pinger, pp_done_rx) = ping_pong_pair(&node, &node);
    group.bench_function("libactor", |b| {
        b.iter_custom(|iters| {
            time_rounds(
                iters,
                || start_rounds(&pinger, N, Bytes::new()),
                &pp_done_rx,
            )
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
        b.iter_custom(|iters| time_rounds(iters, || raw_pinger.do_send(StartRounds(N)), &raw_pp_rx))
    });
    group.finish();
    drop(raw_ponger);
    shut_down(&[&node]);
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
    support::ratio::report(&[
        ("local_throughput", "libactor", "raw_actix", N),
        ("local_ping_pong", "libactor", "raw_actix", N),
    ]);
}
