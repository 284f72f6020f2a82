//! What both benchmarks share: the libactor processes under test, node setup, the timing loop
//! and the ratio report.
#![allow(dead_code)]

pub mod ratio;

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libactor::{Context, Node, Process, ProcessRef, Upid};
use protos::libactor::examples::{Ping, Pong};

/// Counts Pings and signals `done` at every `expect`-th one; without `done`, answers each Ping
/// with a Pong carrying the same sequence number and payload.
pub struct Receiver {
    pub expect: u64,
    pub seen: u64,
    pub done: Option<std_mpsc::Sender<()>>,
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

/// Plays ping-pong with `to`: each Pong is answered with the next Ping until `left` round trips
/// are done, then `done` is signalled. Also used as a plain sender through `dispatch`.
pub struct Pinger {
    pub to: Upid,
    pub left: u64,
    pub done: Option<std_mpsc::Sender<()>>,
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

/// A node with one arbiter and one network thread, the smallest a node can be.
pub fn node() -> Node {
    Node::builder()
        .single_threaded()
        .start()
        .expect("node starts")
}

/// A single-threaded node that runs mutual TLS with a certificate from `ca`.
pub fn secure_node(ca: &libactor::tls::ca::ClusterCa, principal: &str) -> Node {
    let cert = ca
        .issue(&libactor::tls::ca::CertRequest::new(
            principal,
            &["bench"],
            &["127.0.0.1"],
        ))
        .expect("certificate");
    let tls = libactor::TlsConfig::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem)
        .expect("TLS configuration");
    Node::builder()
        .single_threaded()
        .tls(tls)
        .start()
        .expect("node starts")
}

/// Shuts nodes down from outside any runtime.
pub fn shut_down(nodes: &[&Node]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for node in nodes {
            node.shutdown().await;
        }
    });
}

/// Times `iters` iterations of: `start` a round of work, then wait for `done` to signal it.
pub fn time_rounds(iters: u64, mut start: impl FnMut(), done: &std_mpsc::Receiver<()>) -> Duration {
    let began = Instant::now();
    for _ in 0..iters {
        start();
        done.recv().expect("the round signals its end");
    }
    began.elapsed()
}

/// A receiver on `at` that signals every `n`-th Ping, and a sender on `from` aimed at it.
pub fn stream_pair(from: &Node, at: &Node, n: u64) -> (ProcessRef<Pinger>, std_mpsc::Receiver<()>) {
    let (done_tx, done_rx) = std_mpsc::channel();
    let receiver = at
        .spawn(
            "receiver",
            Receiver {
                expect: n,
                seen: 0,
                done: Some(done_tx),
            },
        )
        .expect("spawn");
    let sender = from
        .spawn_ref(
            "sender",
            Pinger {
                to: receiver,
                left: 0,
                done: None,
            },
        )
        .expect("spawn");
    (sender, done_rx)
}

/// Makes `sender` fire `n` Pings carrying `payload` at its receiver, from inside the process.
pub fn start_stream(sender: &ProcessRef<Pinger>, n: u64, payload: Bytes) {
    sender.dispatch(move |p, ctx| {
        let to = p.to.clone();
        for seq in 0..n {
            ctx.send(
                &to,
                Ping {
                    seq,
                    payload: payload.clone(),
                },
            );
        }
    });
}

/// A ponger on `at` and a pinger on `from` that signals after each set of round trips.
pub fn ping_pong_pair(from: &Node, at: &Node) -> (ProcessRef<Pinger>, std_mpsc::Receiver<()>) {
    let ponger = at
        .spawn(
            "ponger",
            Receiver {
                expect: 0,
                seen: 0,
                done: None,
            },
        )
        .expect("spawn");
    let (done_tx, done_rx) = std_mpsc::channel();
    let pinger = from
        .spawn_ref(
            "pinger",
            Pinger {
                to: ponger,
                left: 0,
                done: Some(done_tx),
            },
        )
        .expect("spawn");
    (pinger, done_rx)
}

/// Makes `pinger` play `rounds` round trips, starting with a Ping carrying `payload`.
pub fn start_rounds(pinger: &ProcessRef<Pinger>, rounds: u64, payload: Bytes) {
    pinger.dispatch(move |p, ctx| {
        p.left = rounds;
        let to = p.to.clone();
        ctx.send(&to, Ping { seq: 0, payload });
    });
}
