//! The registry in memory: admitted agents and frameworks, split into [`SHARDS`] shards by a
//! stable hash of their ids, and the operations that change it.
//!
//! Each shard is stored as one value (`shard-NN`), so a change rewrites only its shard, and a
//! registry of 40,000 agents (about 300 bytes each) keeps every value near 200 KB, far below
//! the store's limit.

use std::collections::BTreeMap;

use prost::Message;
use protos::internal::{RegistryAgent, RegistryFramework, RegistryQuota, RegistryShard};
use protos::v1::{AgentInfo, FrameworkInfo};
use protos::IdText;

/// Shards the registry is split into.
pub const SHARDS: usize = 64;

/// The store key of shard `index`.
pub fn shard_key(index: usize) -> String {
    format!("shard-{index:02}")
}

/// The shard an agent or framework id lives in (FNV-1a: stable across processes and versions,
/// unlike the standard library's hasher).
pub fn shard_of(id: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % SHARDS as u64) as usize
}

/// A change to the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Admits an agent, or marks a returning one reachable again (its info carries its id).
    AdmitAgent(AgentInfo),
    /// Marks an agent unreachable since a time (seconds since the Unix epoch).
    MarkUnreachable {
        /// The agent's id.
        agent: String,
        /// When it became unreachable.
        since: f64,
    },
    /// Marks an agent gone since a time (seconds since the Unix epoch): it never comes back
    /// under its id. Kept like unreachable marks, so a new leader refuses it too.
    MarkGone {
        /// The agent's id.
        agent: String,
        /// When an operator marked it gone.
        since: f64,
    },
    /// Forgets an agent.
    RemoveAgent(String),
    /// Admits a framework or updates its info (its info carries its id).
    AddFramework(FrameworkInfo),
    /// Forgets a framework.
    RemoveFramework(String),
    /// Sets a role's quota (scalars by name); neither limits nor guarantees lifts it.
    SetQuota {
        /// The role.
        role: String,
        /// The most it may hold.
        limits: Vec<protos::v1::Resource>,
        /// What of its tasks is never revoked or preempted.
        guarantees: Vec<protos::v1::Resource>,
    },
}

impl Operation {
    /// The id the operation is about (which decides its shard).
    pub fn id(&self) -> &str {
        match self {
            Operation::AdmitAgent(info) => info.id.text(),
            Operation::AddFramework(info) => info.id.text(),
            Operation::MarkUnreachable { agent: id, .. }
            | Operation::MarkGone { agent: id, .. }
            | Operation::RemoveAgent(id)
            | Operation::RemoveFramework(id) => id,
            Operation::SetQuota { role, .. } => role,
        }
    }
}

/// One shard's entries, by id.
#[derive(Debug, Clone, Default, PartialEq)]
struct Shard {
    agents: BTreeMap<String, RegistryAgent>,
    frameworks: BTreeMap<String, RegistryFramework>,
    quotas: BTreeMap<String, RegistryQuota>,
}

/// The whole registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    shards: Vec<Shard>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: vec![Shard::default(); SHARDS],
        }
    }
}

impl Registry {
    /// Applies `op`; returns the shard it changed, or `None` if it changed nothing (an agent
    /// re-admitted with the same info, a removal of something unknown), which needs no write.
    pub fn apply(&mut self, op: Operation) -> Option<usize> {
        let index = shard_of(op.id());
        let shard = &mut self.shards[index];
        let changed = match op {
            // Gone is for ever: the master refuses a gone agent before it gets here.
            Operation::AdmitAgent(info)
                if shard
                    .agents
                    .get(info.id.text())
                    .is_some_and(|a| a.gone_since.is_some()) =>
            {
                false
            }
            Operation::AdmitAgent(info) => {
                let entry = RegistryAgent {
                    info: Some(info.clone()),
                    unreachable_since: None,
                    gone_since: None,
                };
                shard
                    .agents
                    .insert(info.id.text().to_owned(), entry.clone())
                    != Some(entry)
            }
            Operation::MarkUnreachable { agent, since } => match shard.agents.get_mut(&agent) {
                Some(entry) if entry.unreachable_since.is_none() => {
                    entry.unreachable_since = Some(since);
                    true
                }
                _ => false,
            },
            Operation::MarkGone { agent, since } => {
                let entry = shard
                    .agents
                    .entry(agent.clone())
                    .or_insert_with(|| RegistryAgent {
                        info: Some(AgentInfo {
                            id: Some(protos::v1::AgentId { value: agent }),
                            ..Default::default()
                        }),
                        unreachable_since: None,
                        gone_since: None,
                    });
                let marked = entry.gone_since.is_none();
                if marked {
                    entry.gone_since = Some(since);
                }
                marked
            }
            Operation::RemoveAgent(id) => shard.agents.remove(&id).is_some(),
            Operation::AddFramework(info) => {
                let entry = RegistryFramework {
                    info: Some(info.clone()),
                };
                shard
                    .frameworks
                    .insert(info.id.text().to_owned(), entry.clone())
                    != Some(entry)
            }
            Operation::RemoveFramework(id) => shard.frameworks.remove(&id).is_some(),
            Operation::SetQuota {
                role,
                limits,
                guarantees,
            } if limits.is_empty() && guarantees.is_empty() => shard.quotas.remove(&role).is_some(),
            Operation::SetQuota {
                role,
                limits,
                guarantees,
            } => {
                let entry = RegistryQuota {
                    role: role.clone(),
                    limits,
                    guarantees,
                };
                shard.quotas.insert(role, entry.clone()) != Some(entry)
            }
        };
        changed.then_some(index)
    }

    /// Shard `index` as stored.
    pub fn encode_shard(&self, index: usize) -> Vec<u8> {
        let shard = &self.shards[index];
        RegistryShard {
            agents: shard.agents.values().cloned().collect(),
            frameworks: shard.frameworks.values().cloned().collect(),
            quotas: shard.quotas.values().cloned().collect(),
        }
        .encode_to_vec()
    }

    /// Loads shard `index` from its stored bytes, replacing what the registry held there.
    pub fn decode_shard(&mut self, index: usize, bytes: &[u8]) -> Result<(), prost::DecodeError> {
        let stored = RegistryShard::decode(bytes)?;
        let shard = &mut self.shards[index];
        shard.agents = stored
            .agents
            .into_iter()
            .map(|a| (a.info.as_ref().map_or("", |i| i.id.text()).to_owned(), a))
            .collect();
        shard.frameworks = stored
            .frameworks
            .into_iter()
            .map(|f| (f.info.as_ref().map_or("", |i| i.id.text()).to_owned(), f))
            .collect();
        shard.quotas = stored
            .quotas
            .into_iter()
            .map(|q| (q.role.clone(), q))
            .collect();
        Ok(())
    }

    /// Every admitted agent, reachable or not.
    pub fn agents(&self) -> impl Iterator<Item = &RegistryAgent> {
        self.shards.iter().flat_map(|s| s.agents.values())
    }

    /// Every role's quota limits.
    pub fn quotas(&self) -> impl Iterator<Item = &RegistryQuota> {
        self.shards.iter().flat_map(|s| s.quotas.values())
    }

    /// Every admitted framework.
    pub fn frameworks(&self) -> impl Iterator<Item = &FrameworkInfo> {
        self.shards
            .iter()
            .flat_map(|s| s.frameworks.values())
            .filter_map(|f| f.info.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protos::v1::{AgentId, FrameworkId};

    fn agent(id: &str, hostname: &str) -> AgentInfo {
        AgentInfo {
            id: Some(AgentId { value: id.into() }),
            hostname: hostname.into(),
            ..Default::default()
        }
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("m-S0001"), shard_of("m-S0001"));
        let used: std::collections::BTreeSet<usize> =
            (0..1000).map(|i| shard_of(&format!("m-S{i:04}"))).collect();
        assert!(
            used.len() > SHARDS / 2,
            "ids spread over the shards: {used:?}"
        );
        assert_eq!(shard_key(7), "shard-07");
    }

    #[test]
    fn operations_change_only_what_differs_and_round_trip() {
        let mut registry = Registry::default();
        let shard = registry.apply(Operation::AdmitAgent(agent("S1", "a")));
        assert_eq!(shard, Some(shard_of("S1")));
        assert_eq!(
            registry.apply(Operation::AdmitAgent(agent("S1", "a"))),
            None,
            "the same info again is no change"
        );
        assert_eq!(registry.apply(Operation::RemoveAgent("S9".into())), None);
        let since = 1_700_000_000.0;
        assert!(registry
            .apply(Operation::MarkUnreachable {
                agent: "S1".into(),
                since,
            })
            .is_some());
        assert_eq!(
            registry.apply(Operation::MarkUnreachable {
                agent: "S1".into(),
                since: since + 1.0,
            }),
            None,
            "already unreachable: the first time is kept"
        );
        let framework = FrameworkInfo {
            id: Some(FrameworkId { value: "F1".into() }),
            name: "f".into(),
            failover_timeout: Some(30.0),
            ..Default::default()
        };
        registry.apply(Operation::AddFramework(framework.clone()));

        let mut reloaded = Registry::default();
        for index in 0..SHARDS {
            reloaded
                .decode_shard(index, &registry.encode_shard(index))
                .unwrap();
        }
        assert_eq!(reloaded, registry);
        let agents: Vec<_> = reloaded.agents().collect();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].unreachable_since, Some(since));
        assert_eq!(reloaded.frameworks().collect::<Vec<_>>(), vec![&framework]);

        // Re-admission marks the agent reachable again.
        assert!(reloaded
            .apply(Operation::AdmitAgent(agent("S1", "a")))
            .is_some());
        assert_eq!(reloaded.agents().next().unwrap().unreachable_since, None);
        assert!(reloaded
            .apply(Operation::RemoveFramework("F1".into()))
            .is_some());
        assert_eq!(reloaded.frameworks().count(), 0);

        // Gone is kept across a reload, and for ever.
        let gone = |agent: &str| Operation::MarkGone {
            agent: agent.into(),
            since,
        };
        assert!(reloaded.apply(gone("S1")).is_some());
        assert_eq!(reloaded.apply(gone("S1")), None, "gone once");
        assert!(
            reloaded.apply(gone("S7")).is_some(),
            "an agent the registry never held can be marked gone"
        );
        assert_eq!(
            reloaded.apply(Operation::AdmitAgent(agent("S1", "a"))),
            None,
            "a gone agent is never admitted again"
        );
        let mut again = Registry::default();
        for index in 0..SHARDS {
            again
                .decode_shard(index, &reloaded.encode_shard(index))
                .unwrap();
        }
        let gone_since: Vec<_> = again.agents().map(|a| a.gone_since).collect();
        assert_eq!(gone_since, vec![Some(since), Some(since)]);

        // Quotas: set, kept across a reload, lifted.
        let limits = "cpus:4;mem:512"
            .parse::<resources::Resources>()
            .unwrap()
            .to_proto();
        let quota = |limits: Vec<protos::v1::Resource>| Operation::SetQuota {
            role: "dev".into(),
            limits,
            guarantees: Vec::new(),
        };
        assert!(again.apply(quota(limits.clone())).is_some());
        assert_eq!(again.apply(quota(limits.clone())), None, "no change");
        let mut reloaded = Registry::default();
        for index in 0..SHARDS {
            reloaded
                .decode_shard(index, &again.encode_shard(index))
                .unwrap();
        }
        let quotas: Vec<_> = reloaded.quotas().collect();
        assert_eq!(quotas.len(), 1);
        assert_eq!(
            (quotas[0].role.as_str(), &quotas[0].limits),
            ("dev", &limits)
        );
        assert!(reloaded.apply(quota(Vec::new())).is_some());
        assert_eq!(reloaded.quotas().count(), 0);
    }

    #[test]
    fn a_corrupt_shard_is_an_error() {
        let mut registry = Registry::default();
        assert!(registry.decode_shard(0, &[0xff, 0xff, 0xff]).is_err());
    }
}
