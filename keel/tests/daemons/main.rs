//! Keel's daemons (`keel-master`, `keel-slave`, `keel-local`, the executors, Autopilot's
//! services) as real OS processes, one module per subject, linked into one test binary: each
//! test binary links the whole of Keel, and one instead of eleven keeps a clean build within a
//! few gigabytes of disk. The chaos and network-partition tests stay binaries of their own:
//! they stop, kill and cut off processes and must not share a machine's load with others'
//! timeouts. Run one subject with `cargo test -p keel --test daemons pymesos::`.

mod agent_recovery;
mod autopilot_agent_restart;
mod autopilot_cockpit;
mod autopilot_failover;
mod autopilot_provisioning;
mod autopilot_repair;
mod autopilot_rollout;
mod binaries;
mod ha_failover;
mod pymesos;
mod task_groups;
