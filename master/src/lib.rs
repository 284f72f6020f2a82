//! The Keel master: master process, hierarchical DRF allocator, registrar, leader contender and
//! detector, HTTP APIs and Omega-style shared-state transactions. Built on `libactor`; talks to
//! the other crates only through `protos` messages.
//!
//! Modules: [`drf`], the dominant resource fairness sorter the allocator orders roles and
//! frameworks with (seed 000's example: 100 CPUs and 100 GB shared by a framework whose tasks
//! need 4 CPUs and 1 GB and one whose tasks need 1 CPU and 8 GB end with 20 and 10 tasks), and
//! [`allocator`], the allocation policy (hierarchical DRF, refusal filters, suppress/revive,
//! minimum offer size, reservations) and the allocator process that runs it; and [`master`],
//! the master process (registration and re-registration, authentication, offers, accept with
//! launch validation, decline filters, rescinds, kills, reconciliation, agent health,
//! revocation, teardown, recovery after a failover, `/master/state` and metrics); and
//! [`fast_hash`], the hasher of its maps; and [`registrar`], the process that keeps the registry (admitted agents and frameworks) in a
//! `coordination` store, ZooKeeper or a local directory; and [`standby`], what a master that
//! does not lead serves (HTTP redirected to the leader). Election itself lives in the
//! `coordination` crate.
//!
//! ```
//! use master::drf::DrfSorter;
//! use resources::Resources;
//!
//! let mut sorter = DrfSorter::new();
//! sorter.set_total(&"cpus:100;mem:100".parse().unwrap());
//! sorter.add_client("f1", 1.0);
//! sorter.add_client("f2", 1.0);
//! sorter.allocate("f1", &"cpus:4;mem:1".parse().unwrap()).unwrap();
//! assert_eq!(sorter.share("f1"), 0.04);
//! assert_eq!(sorter.sort(), vec!["f2", "f1"], "the lowest dominant share comes first");
//! ```
//!
#![warn(missing_docs)]

pub mod allocator;
pub mod drf;
pub mod fast_hash;
pub mod master;
pub mod registrar;
pub mod standby;
