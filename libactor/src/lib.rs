//! libactor: Keel's actor runtime, Mesos's libprocess rebuilt in Rust.
//!
//! Every Keel component (master, allocator, agent, status update manager, watchdog, repair,
//! deployment) is a *process*: an actor with an address `id@host:port` ([`Upid`]) that handles
//! protobuf messages one at a time. Processes on one [`Node`] exchange typed values without
//! encoding; processes on different nodes exchange length-delimited protobuf frames over one
//! persistent TCP connection per peer. The same port serves HTTP: per-process routes, metrics,
//! and libprocess-style message posts.
//!
//! ```
//! use std::time::Duration;
//! use libactor::{Context, Node, Process, Upid};
//! use protos::libactor::examples::{Ping, Pong};
//!
//! struct Echo;
//!
//! impl Process for Echo {
//!     fn initialize(&mut self, ctx: &mut Context<Self>) {
//!         ctx.install(|_: &mut Echo, ctx: &mut Context<Echo>, from: Upid, ping: Ping| {
//!             ctx.send(&from, Pong { seq: ping.seq, payload: ping.payload });
//!         });
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let node = Node::builder().start().expect("node starts on 127.0.0.1");
//! let echo = node.spawn("echo", Echo).unwrap();
//! let pong: Pong = node
//!     .ask(&echo, Ping { seq: 7, payload: Default::default() }, Duration::from_secs(5))
//!     .await
//!     .unwrap();
//! assert_eq!(pong.seq, 7);
//! node.shutdown().await;
//! # }
//! ```
//!
//! Modules, one concept each:
//! - [`upid`]: process addresses; [`id`]: `slave(1)`-style id generation.
//! - [`message`]: what a [`Message`] is (any prost type with a full name).
//! - [`process`]: the [`Process`] trait and typed [`ProcessRef`]s; [`context`]: what a handler
//!   can do ([`Context`]: send, install, route, link, delay, defer, ask, terminate).
//! - [`node`]: a runtime instance ([`Node`]): spawn, send, terminate, wait, shutdown;
//!   [`config`]: its address and limits ([`NodeConfig`]) and the [`NodeBuilder`];
//!   [`reservation`]: a process id taken before its process exists, messages held meanwhile.
//! - [`clock`]: time that tests pause, advance and settle ([`Clock`], [`Timer`]);
//!   [`random`]: the node's randomness, seedable for simulations ([`NodeRandom`]).
//! - [`link`]: `exited` notifications, local and remote.
//! - [`ask`]: request/response over messages with a timeout, failing fast ([`AskError`]).
//! - [`filter`]: test filters that capture or drop messages.
//! - [`http`]: routes, metrics endpoints and message posts on the node's port;
//!   [`http_client`]: minimal HTTP/1.1 requests to a node.
//! - [`metrics`]: counters, gauges and duration metrics; [`metrics::ProcessMetrics`] holds a
//!   process's own.
//! - [`transport`]: frames, the listener, inbound readers and outbound writers;
//!   [`simulation`]: a network inside one process for seeded whole-cluster simulations.
//! - [`tls`]: mutual TLS, proven [`Identity`]s, and a cluster CA that issues certificates.
//!
//! Execution: processes run on actix arbiters (one per core by default), which are tokio
//! current-thread runtimes; inbound connections are read on the arbiters too, while the
//! listener and outbound writers run on a small tokio runtime owned by the node. A process never
//! blocks (that would also stall the connections read on its arbiter): blocking work goes to
//! `tokio::task::spawn_blocking` and comes back through [`Context::defer`].
//!
//! # Your own messages
//!
//! A message is any prost message with a full protobuf name ([`prost::Name`]). Two ways:
//! - A `.proto` file compiled by `prost-build` with `enable_type_names()` (Keel's `protos`
//!   crate does this, with the pure-Rust `protox` in place of `protoc`).
//! - A Rust struct with `#[derive(prost::Message)]` and a two-line `impl prost::Name`, as below:
//!   no build script. The name is what handlers are keyed by and what travels in frames, so
//!   both nodes must agree on it.
//!
//! A two-node counter: node `b` counts, node `a` adds and reads the total remotely with `ask`.
//!
//! ```
//! use std::time::Duration;
//! use libactor::{Context, Node, Process, Upid};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! pub struct Add {
//!     #[prost(uint64, tag = "1")]
//!     pub n: u64,
//! }
//! impl prost::Name for Add {
//!     const NAME: &'static str = "Add";
//!     const PACKAGE: &'static str = "counter";
//! }
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! pub struct Total {
//!     #[prost(uint64, tag = "1")]
//!     pub total: u64,
//! }
//! impl prost::Name for Total {
//!     const NAME: &'static str = "Total";
//!     const PACKAGE: &'static str = "counter";
//! }
//!
//! #[derive(Default)]
//! struct Counter {
//!     total: u64,
//! }
//!
//! impl Process for Counter {
//!     fn initialize(&mut self, ctx: &mut Context<Self>) {
//!         // Only the message type needs naming; the rest is inferred.
//!         ctx.install(|c: &mut Counter, ctx, from: Upid, add: Add| {
//!             c.total += add.n;
//!             ctx.send(&from, Total { total: c.total });
//!         });
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let a = Node::builder().start().unwrap();
//! let b = Node::builder().start().unwrap();
//! let counter = b.spawn("counter", Counter::default()).unwrap();
//! for n in [2, 3] {
//!     let total: Total = a.ask(&counter, Add { n }, Duration::from_secs(5)).await.unwrap();
//!     assert!(total.total >= n);
//! }
//! let total: Total = a.ask(&counter, Add { n: 0 }, Duration::from_secs(5)).await.unwrap();
//! assert_eq!(total.total, 5);
//! a.shutdown().await;
//! b.shutdown().await;
//! # }
//! ```
//!
//! # What happens when
//!
//! - A message for a process with no handler for its type is dropped, logged at WARN with its
//!   sender and name, and counted in `libactor/dropped/unknown_message`; one for a process
//!   that does not run on the node, in `libactor/dropped/unknown_process`. Nothing panics.
//! - An [`ask`](Node::ask) fails at once, with its own [`AskError`], when the target's node
//!   cannot be reached, when the target does not exist there or terminates, or when it answers
//!   with another message type; otherwise it waits for its timeout on the node's clock.
//! - A [`Timer`] (from [`Context::delay`], [`Clock::schedule`]) fires unless
//!   [`Timer::cancel`] is called; dropping the handle does not cancel it.
//! - A timer a handler arms again when it fires counts from the clock's time at that moment: on
//!   a paused clock, one `advance(3 × period)` fires it once, then re-arms it for one period
//!   later; advance period by period to see every tick.
//! - Every node publishes `libactor/*` metrics at `/metrics/snapshot` (JSON) and `/metrics`
//!   (Prometheus text): messages sent and received, each `dropped/*` reason, processes,
//!   mailbox depth, and the transport's frames, connections, refusals and malformed input
//!   (the full list, with a sentence each, is in `node_metrics.rs`).
//!
//! # Testing with the paused clock and filters
//!
//! Tests never sleep. A node built on a paused [`Clock`] only moves when the test calls
//! [`Clock::advance`]; [`Clock::settle`] then waits until every message those timers caused
//! has been handled. [`Node::expect_message`] resolves with a copy of the next matching
//! message, [`Node::drop_message`] drops one, [`Node::drop_messages`] drops them while its
//! guard lives (libprocess's `FUTURE_MESSAGE`, `DROP_MESSAGE`, `DROP_MESSAGES`).
//!
//! ```
//! use std::time::Duration;
//! use libactor::{Clock, Context, Match, Node, Process, Upid};
//! use protos::libactor::examples::Note;
//!
//! /// Sends a Note to `to` every second.
//! struct Heartbeat {
//!     to: Upid,
//! }
//!
//! impl Heartbeat {
//!     fn beat(&mut self, ctx: &mut Context<Self>) {
//!         ctx.send(&self.to, Note { text: "beat".into() });
//!         ctx.delay(Duration::from_secs(1), |h: &mut Heartbeat, ctx| h.beat(ctx));
//!     }
//! }
//!
//! impl Process for Heartbeat {
//!     fn initialize(&mut self, ctx: &mut Context<Self>) {
//!         ctx.delay(Duration::from_secs(1), |h: &mut Heartbeat, ctx| h.beat(ctx));
//!     }
//! }
//!
//! /// Receives the Notes (and handles them by doing nothing).
//! struct Sink;
//! impl Process for Sink {
//!     fn initialize(&mut self, ctx: &mut Context<Self>) {
//!         ctx.install(|_: &mut Sink, _, _: Upid, _: Note| {});
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = Clock::paused();
//! let node = Node::builder().clock(clock.clone()).start().unwrap();
//! let sink = node.spawn("sink", Sink).unwrap();
//! let heart = node.spawn("heart", Heartbeat { to: sink.clone() }).unwrap();
//! clock.settle().await.unwrap();
//!
//! // The next beat, captured on its way: nothing arrives until the clock moves.
//! let beat = node.expect_message::<Note>(&heart, &sink);
//! clock.advance(Duration::from_secs(1));
//! assert_eq!(beat.await.unwrap().message.text, "beat");
//! // The beat is seen before its handler re-arms the timer: settle first, or the next advance
//! // could come before the timer exists.
//! clock.settle().await.unwrap();
//!
//! // While the guard lives, beats are dropped before the sink sees them.
//! let dropped = node.drop_messages::<Note>(Match::Any, &sink);
//! clock.advance(Duration::from_secs(1));
//! clock.settle().await.unwrap();
//! assert_eq!(node.metrics().snapshot()["libactor/dropped/filtered"], 1.0);
//! drop(dropped);
//! node.shutdown().await;
//! # }
//! ```
//!
//! More, one concept each, in `libactor/examples/`: `ping_pong`, `links`, `timers`,
//! `routes_and_metrics`, `ask_and_defer`.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod ask;
pub(crate) mod cell;
pub mod clock;
pub mod config;
pub mod context;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod http_client;
pub mod http_stream;
pub mod id;
pub mod link;
pub mod log_level;
pub(crate) mod mailbox;
pub mod message;
pub mod metrics;
pub mod node;
pub(crate) mod node_metrics;
pub mod process;
pub mod random;
pub mod reservation;
pub mod simulation;
pub mod tls;
pub mod transport;
pub mod upid;

pub use ask::AskError;
pub use cell::{QueueDepths, QueueGauge};
pub use clock::{Clock, Elapsed, SettleTimeout, Timer};
pub use config::{
    BasicCheck, EndpointCheck, HttpAuthentication, NodeBuilder, NodeConfig, NodeError,
};
pub use context::Context;
pub use filter::{
    partition, Captured, FilterClosed, FilterGuard, Match, MessageFuture, MessageInfo,
    NetworkFaults,
};
pub use http::{HttpReply, HttpRequest, HttpResponse};
pub use http_stream::{HttpStream, StreamClosed};
/// The headers of an [`HttpRequest`] (hyper's map: names match case-insensitively).
pub use hyper::header::HeaderMap;
pub use id::IdGenerator;
pub use message::Message;
pub use metrics::Metrics;
pub use node::{Node, SpawnError};
pub use process::{Process, ProcessGone, ProcessRef};
pub use random::NodeRandom;
pub use reservation::Reservation;
pub use simulation::SimNetwork;
pub use tls::{Identity, TlsConfig};
pub use upid::{Host, Upid, UpidError};
