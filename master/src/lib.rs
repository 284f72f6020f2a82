//! The Keel master: the master process, the hierarchical DRF allocator and the registrar. Built
//! on `libactor`; talks to the other crates only through `protos` messages. Leader election
//! (contender and detector) lives in the `coordination` crate. Omega-style shared-state
//! transactions (a versioned cell state, optimistic commits, preemption) run in the master
//! beside offers.
//!
//! Modules:
//! - [`master`]: the master process — registration and re-registration, authentication,
//!   offers, accept with launch validation, decline filters, rescinds, kills, reconciliation,
//!   agent health, revocation, teardown, recovery after a failover, `/master/state`, metrics.
//! - [`allocator`]: the allocation policy (hierarchical DRF, refusal filters, suppress/revive,
//!   minimum offer size) and the allocator process that runs it; its [`allocator::sorter`]
//!   orders roles and frameworks by dominant resource fairness (Ghodsi et al., NSDI 2011: 100
//!   CPUs and 100 GB shared by a framework whose tasks need 4 CPUs and 1 GB and one whose tasks
//!   need 1 CPU and 8 GB end with 20 and 10 tasks).
//! - [`registrar`]: keeps the registry (admitted agents and frameworks) in a `coordination`
//!   store, ZooKeeper or a local directory.
//! - [`standby`]: what a master that does not lead serves (HTTP redirected to the leader).
//! - [`api`]: Mesos's v1 HTTP APIs (JSON and protobuf, RecordIO event streams): the scheduler
//!   API (`/api/v1/scheduler`, each HTTP framework adapted onto the master) and the operator
//!   API (`/api/v1`, reads and `SUBSCRIBE` served from the API process's own view of the
//!   cluster, kept from the master's events).
//! - [`fast_hash`]: the hasher of the master's maps.
//!
//! ```
//! use master::allocator::sorter::drf::DrfSorter;
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
pub mod api;
pub mod fast_hash;
pub mod master;
pub mod registrar;
pub mod standby;
