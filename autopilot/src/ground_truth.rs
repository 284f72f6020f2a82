//! Where the device manager keeps its ground truth: machine records in [`SHARDS`] keys of the
//! registrar's store (ZooKeeper or a local directory), the audit log in one more and the
//! deployments (active manifests, the rollout) in another, each written by compare-and-set. A write that loses its race means another device manager
//! writes: this one must stop deciding (as a master whose registrar fails).
//!
//! Records are sharded by machine id so that one change rewrites a sixteenth of the machines,
//! and bounded (history, text) so that a shard stays far below ZooKeeper's 1 MiB per znode.

use std::collections::BTreeMap;

use coordination::{AnyStore, Store, StoreError};
use prost::Message;
use protos::autopilot::{AuditRecord, DeploymentState, DeviceManagerState, MachineRecord};

/// Shards of machine records.
pub const SHARDS: usize = 16;
/// Events kept in each machine's history (oldest dropped first).
pub const MAX_HISTORY: usize = 16;
/// Audit records kept (oldest dropped first).
pub const MAX_AUDIT: usize = 2000;

/// Why the ground truth could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GroundTruthError {
    /// The store failed or another writer won a race.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode.
    #[error("ground truth key {key} is corrupt: {why}")]
    Corrupt {
        /// The key.
        key: String,
        /// The decoder's complaint.
        why: String,
    },
}

/// The key of machine shard `i`.
pub fn shard_key(i: usize) -> String {
    format!("autopilot.machines.{i}")
}

/// The audit log's key.
pub const AUDIT_KEY: &str = "autopilot.audit";
/// The deployments' key.
pub const DEPLOYMENT_KEY: &str = "autopilot.deployments";
/// The audit log's index among the keys (after the shards).
pub const AUDIT: usize = SHARDS;
/// The deployments' index among the keys.
pub const DEPLOYMENT: usize = SHARDS + 1;
/// Keys in all.
pub const KEYS: usize = SHARDS + 2;

/// The key at index `i` (a shard, [`AUDIT`] or [`DEPLOYMENT`]).
pub fn key(i: usize) -> String {
    match i {
        AUDIT => AUDIT_KEY.to_owned(),
        DEPLOYMENT => DEPLOYMENT_KEY.to_owned(),
        shard => shard_key(shard),
    }
}

/// The order in which one write puts the `dirty` keys. The keys are written one by one, so a
/// device manager that dies in the middle of a write leaves some written and some not: the
/// deployments go first (a new leader then knows of a rollout even if the machines it moved
/// were not written yet, and moves them again when it resumes it), the audit log last (so
/// every change it records is durable).
pub fn write_order(dirty: &std::collections::BTreeSet<usize>) -> impl Iterator<Item = usize> + '_ {
    let first = dirty.contains(&DEPLOYMENT).then_some(DEPLOYMENT);
    let last = dirty.contains(&AUDIT).then_some(AUDIT);
    first
        .into_iter()
        .chain(
            dirty
                .iter()
                .copied()
                .filter(|i| *i != DEPLOYMENT && *i != AUDIT),
        )
        .chain(last)
}

/// Which shard holds `machine` (FNV-1a: stable across builds and platforms).
pub fn shard_of(machine: &str) -> usize {
    let h = machine.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % SHARDS as u64) as usize
}

/// The ground truth as read, with the versions the next writes must name.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// Machines by id.
    pub machines: BTreeMap<String, MachineRecord>,
    /// The audit log, oldest first, and the next sequence number.
    pub audit: Vec<AuditRecord>,
    /// The next audit sequence number.
    pub next_audit_seq: u64,
    /// Active manifests and the rollout.
    pub deployment: DeploymentState,
    /// Version of each key by index (`None`: not written yet).
    pub versions: Vec<Option<u64>>,
}

/// Reads the whole ground truth.
pub async fn recover(store: &AnyStore) -> Result<Recovered, GroundTruthError> {
    let mut out = Recovered {
        versions: vec![None; KEYS],
        next_audit_seq: 1,
        ..Default::default()
    };
    for i in 0..KEYS {
        let key = key(i);
        let Some(entry) = store.get(&key).await? else {
            continue;
        };
        out.versions[i] = Some(entry.version);
        let corrupt = |e: prost::DecodeError| GroundTruthError::Corrupt {
            key: key.clone(),
            why: e.to_string(),
        };
        if i == DEPLOYMENT {
            out.deployment = DeploymentState::decode(entry.data.as_slice()).map_err(corrupt)?;
            continue;
        }
        let state = DeviceManagerState::decode(entry.data.as_slice()).map_err(corrupt)?;
        for m in state.machines {
            out.machines.insert(m.id.clone(), m);
        }
        if i == AUDIT {
            out.audit = state.audit;
            out.next_audit_seq = state.next_audit_seq.max(1);
        }
    }
    Ok(out)
}

/// What the device manager holds, to encode key by key.
pub struct Snapshot<'a> {
    /// Machines by id.
    pub machines: &'a BTreeMap<String, MachineRecord>,
    /// The audit log.
    pub audit: &'a [AuditRecord],
    /// The next audit sequence number.
    pub next_audit_seq: u64,
    /// Active manifests and the rollout.
    pub deployment: &'a DeploymentState,
}

/// Encodes key `i` of `snapshot`.
pub fn encode_key(i: usize, snapshot: &Snapshot<'_>) -> Vec<u8> {
    match i {
        DEPLOYMENT => snapshot.deployment.encode_to_vec(),
        AUDIT => DeviceManagerState {
            machines: vec![],
            audit: snapshot.audit.to_vec(),
            next_audit_seq: snapshot.next_audit_seq,
        }
        .encode_to_vec(),
        shard => DeviceManagerState {
            machines: snapshot
                .machines
                .values()
                .filter(|m| shard_of(&m.id) == shard)
                .map(|m| MachineRecord {
                    // The last watchdog results are soft state: the next round brings them.
                    watchdogs: vec![],
                    ..m.clone()
                })
                .collect(),
            audit: vec![],
            next_audit_seq: 0,
        }
        .encode_to_vec(),
    }
}

/// Writes `data` as key `i`, naming the version it had; returns the new one.
pub async fn write_key(
    store: &AnyStore,
    i: usize,
    data: Vec<u8>,
    expected: Option<u64>,
) -> Result<u64, GroundTruthError> {
    Ok(store.put(&key(i), &data, expected).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_are_written_first_and_the_audit_last() {
        let dirty = [AUDIT, 3, DEPLOYMENT, 0].into_iter().collect();
        assert_eq!(
            write_order(&dirty).collect::<Vec<_>>(),
            vec![DEPLOYMENT, 0, 3, AUDIT]
        );
        let only_shards = [5].into_iter().collect();
        assert_eq!(write_order(&only_shards).collect::<Vec<_>>(), vec![5]);
    }
}
