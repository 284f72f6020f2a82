//! What Keel's tests and benchmarks share to drive real clusters: daemons started as OS
//! processes and followed through their first stdout line, a real ZooKeeper server on a free
//! loopback port, a recording scheduler that drives a framework by hand, bounded waiting
//! ([`eventually`]) instead of sleeps, and Autopilot's fixtures (manifests, watchdogs,
//! machine records), and a raised open-file limit ([`fd_limit`]) for connection floods. It
//! depends on no binary crate, so `keel`'s own tests can use it.
//!
//! ```no_run
//! # async fn demo() {
//! use keel_testkit::eventually::eventually;
//! use keel_testkit::zookeeper_server::ZooKeeperServer;
//! let zk = ZooKeeperServer::start().expect("Debian's zookeeper package is installed");
//! let url = zk.url("/keel");
//! let ok = eventually("ZooKeeper answers ruok", || async {
//!     zk.four_letter("ruok").ok().filter(|r| r == "imok")
//! })
//! .await;
//! println!("{url}: {ok}");
//! # }
//! ```
//!
//! Modules:
//! - [`daemon`]: a Keel binary run as a daemon (SIGTERM to stop, SIGKILL to crash);
//!   [`autopilot_daemons`]: `keel-master --autopilot` and `keel-slave --autopilot` as tests
//!   start them.
//! - [`pid_line`]: the `<word> <pid>` first line every daemon prints once it listens.
//! - [`child_node`]: a bare libactor node in its own OS process.
//! - [`zookeeper_server`]: a real ZooKeeper server per test; [`leader`]: waiting for a leader.
//! - [`recording_scheduler`]: a framework whose every callback becomes an event to await.
//! - [`eventually`]: waiting for a state no event announces, bounded.
//! - [`small_disk`]: a small tmpfs to fill, for what a full disk does.
//! - [`v1_client`]: Mesos's v1 HTTP APIs as a test speaks them (calls, `SUBSCRIBE` streams).
//! - [`machines`], [`manifests`], [`watchdogs`]: Autopilot's device manager, manifests and
//!   custom watchdogs as tests read and write them.

#![warn(missing_docs)]

pub mod autopilot_daemons;
pub mod child_node;
pub mod daemon;
pub mod eventually;
pub mod fd_limit;
pub mod leader;
pub mod machines;
pub mod manifests;
pub mod pid_line;
pub mod recording_scheduler;
pub mod small_disk;
pub mod test_ca;
pub mod v1_client;
pub mod watchdogs;
pub mod zookeeper_server;

pub use child_node::ChildNode;

/// How long a test cluster's agents may take to register.
pub const AGENTS_UP: std::time::Duration = std::time::Duration::from_secs(30);
