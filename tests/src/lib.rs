//! Keel's cross-crate integration tests: whole clusters in one process
//! (`keel::local_cluster`) and libactor nodes as separate OS processes, driven by hand through
//! [`keel_testkit`]'s recording scheduler. This library holds the one fixture those tests share
//! that needs the in-process cluster ([`cluster`]); everything else is in `keel_testkit`.
//!
//! ```no_run
//! # async fn demo() {
//! use keel::local_cluster::LocalClusterConfig;
//! let dir = tempfile::tempdir().unwrap();
//! let c = keel_tests::cluster::ClusterWithFramework::start(LocalClusterConfig::new(1, dir.path())).await;
//! println!("master {}", c.cluster.master_pid());
//! c.shutdown().await;
//! # }
//! ```

pub mod cluster;
