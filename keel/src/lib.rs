//! Keel's binaries and their daemons: `keel-master`, `keel-slave`, `keel-local` (a master and
//! N agents in one process, then an example framework), `keel-repair` and `keelctl` (the ops
//! CLI). Each binary only parses its flags and starts what this library holds.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use keel::local_cluster::{LocalCluster, LocalClusterConfig};
//! let cluster = LocalCluster::start(LocalClusterConfig::new(3, "/tmp/keel-demo")).await?;
//! cluster.wait_for_agents(std::time::Duration::from_secs(10)).await?;
//! println!("master at {}", cluster.master_pid());
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`keel_local`]: `keel-local`, a cluster and an example framework in one command;
//!   [`keelctl`]: the operator's command line; [`keelctl_ca`]: `keelctl ca`, a cluster CA on
//!   disk; [`keelctl_operator`]: keelctl's maintenance, drain and event commands over the v1
//!   operator API.
//! - [`security_flags`]: `--tls-dir` and `--insecure`, every binary's (secure by default);
//!   [`operator_client`]: how keelctl and keel-local prove an operator over HTTP(S), and
//!   call the v1 operator API.
//! - [`local_cluster`]: a master and N agents on their own loopback ports in one process.
//! - [`local_autopilot`]: `keel-local --autopilot`'s agent processes under the repair driver.
//! - [`example_runs`]: run the example frameworks and follow their progress; the particles
//!   executor's entry point.
//! - [`master_daemon`]: a master as a daemon (`keel-master`): standing by, leading, exiting
//!   once it may no longer lead.
//! - [`agent_daemon`]: an agent as a daemon (`keel-slave`, and `keel-local agent`).
//! - [`autopilot_services`]: the device manager beside the master, and its flags.
//! - [`send_message`]: `keelctl send` — JSON to protobuf by message name, posted to a process.
//! - [`tables`]: keelctl's tables over `/master/state`.
//! - [`machine_tables`]: keelctl's tables of Autopilot's machines and audit log.
//! - [`global_allocator`]: mimalloc, declared by every binary with [`global_allocator!`].
//! - [`shutdown_signal`]: SIGINT or SIGTERM; [`duration_flag`]: every duration flag's parser.
//! - [`flag_values`]: the flags a daemon runs with, for `GET_FLAGS`.
//! - [`announce`]: the daemons' stdout lines, which a closed stdout cannot turn into a panic.
//! - [`logging`]: the binaries' tracing setup; [`logging_toggle`]: libprocess's `/logging/toggle`;
//!   [`master_address`]: `host:port` or a pid.

#![warn(missing_docs)]

pub mod agent_daemon;
pub mod announce;
pub mod autopilot_services;
pub mod duration_flag;
pub mod example_runs;
pub mod flag_values;
pub mod global_allocator;
pub mod keel_local;
pub mod keelctl;
pub mod keelctl_ca;
pub mod keelctl_operator;
pub mod local_autopilot;
pub mod local_cluster;
pub mod logging;
pub mod logging_toggle;
pub mod machine_reliability;
pub mod machine_tables;
pub mod master_address;
pub mod master_daemon;
pub mod omega_demo;
pub mod operator_client;
pub mod security_flags;
pub mod send_message;
pub mod shutdown_signal;
pub mod tables;
