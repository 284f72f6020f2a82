//! Keel's cross-crate integration tests, one module per subject, linked into one test binary:
//! each binary links the whole of Keel, and one binary instead of twenty-two keeps a clean build
//! within a few gigabytes of disk and links once. Run one subject with
//! `cargo test -p keel-tests --test clusters operator_http_api::`.

mod autopilot_auth;
mod autopilot_limits;
mod cluster_authentication;
mod cluster_bad_input;
mod cluster_containers;
mod cluster_failover;
mod cluster_fetcher;
mod cluster_full_disk;
mod cluster_health;
mod cluster_omega;
mod cluster_recovery;
mod cluster_revocation;
mod cluster_secure_wire;
mod cluster_tasks;
mod cluster_timeouts;
mod executor_http_api;
mod omega_validation;
mod operator_http_api;
mod scheduler_http_api;
mod separate_processes;
mod zk_election;
mod zk_store;
