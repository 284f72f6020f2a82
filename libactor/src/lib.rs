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
//! - [`process`]: the [`Process`] trait and typed [`ProcessRef`]s; [`context`]: what a handler
//!   can do ([`Context`]: send, install, route, link, delay, defer, ask, terminate).
//! - [`node`]: a runtime instance ([`Node`]): spawn, send, terminate, wait, shutdown;
//!   [`config`]: its address and limits ([`NodeConfig`]) and the [`NodeBuilder`].
//! - [`clock`]: time that tests pause, advance and settle ([`Clock`], [`Timer`]).
//! - [`link`]: `exited` notifications, local and remote.
//! - [`ask`]: request/response over messages with a timeout.
//! - [`filter`]: test filters that capture or drop messages.
//! - [`http`]: routes, metrics endpoints and message posts on the node's port.
//! - [`metrics`]: counters, gauges and timers.
//! - [`transport`]: frames, the listener, inbound readers and outbound writers.
//!
//! Execution: processes run on actix arbiters (one per core by default), which are tokio
//! current-thread runtimes; inbound connections are read on the arbiters too, while the
//! listener and outbound writers run on a small tokio runtime owned by the node. A process never
//! blocks (that would also stall the connections read on its arbiter): blocking work goes to
//! `tokio::task::spawn_blocking` and comes back through [`Context::defer`].

#![warn(missing_docs)]

pub mod ask;
pub(crate) mod cell;
pub mod clock;
pub mod config;
pub mod context;
pub mod filter;
pub mod http;
pub mod http_client;
pub mod id;
pub mod link;
pub(crate) mod mailbox;
pub mod message;
pub mod metrics;
pub mod node;
pub(crate) mod node_metrics;
pub mod process;
pub mod reservation;
pub mod transport;
pub mod upid;

pub use ask::AskError;
pub use clock::{Clock, Elapsed, SettleTimeout, Timer};
pub use config::{NodeBuilder, NodeConfig, NodeError};
pub use context::Context;
pub use filter::{Captured, FilterClosed, FilterGuard, Match, MessageFuture, MessageInfo};
pub use http::{HttpReply, HttpRequest, HttpResponse};
pub use id::IdGenerator;
pub use message::Message;
pub use metrics::Metrics;
pub use node::{Node, SpawnError};
pub use process::{Process, ProcessGone, ProcessRef};
pub use reservation::Reservation;
pub use upid::{Host, Upid, UpidError};
