//! Seeded whole-cluster simulation (what FoundationDB's simulator and TigerBeetle's VOPR do,
//! for a cluster manager): a real Keel master with its real allocator (or several contending
//! in a ZooKeeper stand-in), emulated agents that speak the real agent protocol, and real
//! scheduler drivers each running a batch job, each on a node of one
//! [`libactor::SimNetwork`] — one thread, one paused clock, no sockets — with every random
//! choice (node ids and uuids, backoff jitter, task run times, faults, the master's hash
//! seeds) drawn from one seed. A run injects crashes and restarts, partitions (of masters
//! from the ensemble too), message loss, duplication and delay, and clock jumps, and checks
//! invariants after every step, one master acting per epoch among them; a failing seed
//! prints itself and replays message for message ([`Outcome::digest`]).
//!
//! ```
//! use cluster_sim::{run, RunConfig};
//!
//! let config = RunConfig { faults: 2, ..RunConfig::default() };
//! let outcome = run(7, &config);
//! assert!(outcome.passed(), "{outcome}");
//! // The same seed, the same run.
//! assert_eq!(run(7, &config).digest, outcome.digest);
//! ```
//!
//! Modules:
//! - [`cluster`]: the masters, agents and frameworks, and crashing and restarting them;
//! - [`masters`]: one master alone, or several contending, and what `keel-master` does
//!   around each;
//! - [`ensemble`]: the ZooKeeper stand-in several masters contend in (sessions, elections,
//!   the registry's fence);
//! - [`agent`]: the emulated agent and the disk it recovers from;
//! - [`framework`]: the batch job the framework runs;
//! - [`faults`]: the timeline of faults drawn from a seed;
//! - [`ledger`]: what participants saw, and the safety invariants over it;
//! - [`run`](mod@run): one seeded run, its checks and its [`Outcome`].

pub mod agent;
pub mod cluster;
pub mod ensemble;
pub mod faults;
pub mod framework;
pub mod ledger;
pub mod masters;
pub mod run;

pub use cluster::ClusterShape;
pub use run::{run, Outcome, RunConfig};
