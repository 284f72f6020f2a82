//! A shared-state scheduler's copy of the cell (Omega): every agent as the master last said,
//! less what this scheduler's own transactions in flight are taking, so that it does not place
//! two tasks on the same resources before the master answers.

use std::collections::BTreeMap;

use protos::omega::{CellAgent, CellPosition, CellUpdateMessage, TransactionResultMessage};
use protos::IdText;
use resources::Resources;

/// The copy: agents by id, the position it reached, and the resources of transactions in
/// flight.
#[derive(Debug, Default, Clone)]
pub struct Cell {
    position: Option<CellPosition>,
    /// Each agent as the master sent it, and what is free there by that (total less used,
    /// empty while inactive), worked out once per update rather than on every read.
    agents: BTreeMap<String, (CellAgent, Resources)>,
    /// Resources placed by transactions not yet answered, by transaction and agent.
    pending: BTreeMap<String, Vec<(String, Resources)>>,
    /// The same, summed by agent.
    held: BTreeMap<String, Resources>,
    /// A multi-message update is half applied.
    partial: bool,
}

impl Cell {
    /// Where the copy stands: the master's epoch and the last version it has seen; `None`
    /// before the first update.
    pub fn position(&self) -> Option<&CellPosition> {
        self.position.as_ref()
    }

    /// The master's epoch the copy was numbered by (empty before the first update).
    pub fn epoch(&self) -> &str {
        self.position.as_ref().map_or("", |p| p.epoch.as_str())
    }

    /// Whether the copy is whole: an update has arrived and no part of one is missing.
    pub fn is_current(&self) -> bool {
        self.position.is_some() && !self.partial
    }

    /// Every agent, in id order.
    pub fn agents(&self) -> impl Iterator<Item = &CellAgent> {
        self.agents.values().map(|(a, _)| a)
    }

    /// How many agents the cell has.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether the cell has no agent.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The agent `id`.
    pub fn agent(&self, id: &str) -> Option<&CellAgent> {
        self.agents.get(id).map(|(a, _)| a)
    }

    /// What may be placed on agent `id` now: its total less what tasks hold and what this
    /// scheduler's transactions in flight take. Empty for an unknown or inactive agent.
    pub fn free(&self, id: &str) -> Resources {
        let Some((_, free)) = self.agents.get(id) else {
            return Resources::new();
        };
        match self.held.get(id) {
            Some(held) => free.checked_sub(held).unwrap_or_default(),
            None => free.clone(),
        }
    }

    /// Applies an update from the master; returns true once the update is whole (the last of
    /// its messages).
    pub fn apply(&mut self, update: CellUpdateMessage) -> bool {
        if update.reset {
            self.agents.clear();
        }
        self.position = update.position;
        for removed in &update.removed {
            self.agents.remove(removed.text());
        }
        self.merge(update.agents);
        self.partial = update.more;
        !update.more
    }

    /// Records the placements of a transaction just sent, until its result.
    pub fn hold(&mut self, transaction: &str, placements: Vec<(String, Resources)>) {
        for (agent, resources) in &placements {
            // Types agree with the agent's: they were cut from what it has free.
            let _ = self.held.entry(agent.clone()).or_default().add(resources);
        }
        self.pending.insert(transaction.to_owned(), placements);
    }

    /// Ends the holds of `transaction`.
    fn release(&mut self, transaction: &str) {
        for (agent, resources) in self.pending.remove(transaction).unwrap_or_default() {
            if let Some(held) = self.held.get_mut(&agent) {
                *held = held.checked_sub(&resources).unwrap_or_default();
                if held.is_empty() {
                    self.held.remove(&agent);
                }
            }
        }
    }

    /// Applies a transaction's result: its holds end and the agents it touched are taken as
    /// the master sent them.
    pub fn settle(&mut self, result: &TransactionResultMessage) {
        self.release(&result.transaction_id);
        self.merge(result.agents.clone());
    }

    /// Forgets every hold (the master was lost: its answers will not come).
    pub fn drop_holds(&mut self) -> Vec<String> {
        self.held.clear();
        std::mem::take(&mut self.pending).into_keys().collect()
    }

    /// Replaces agents by newer versions of themselves.
    fn merge(&mut self, agents: Vec<CellAgent>) {
        for agent in agents {
            let id = agent.agent_id.text().to_owned();
            match self.agents.get(&id) {
                Some((known, _)) if known.version > agent.version => {}
                _ => {
                    let free = free_on(&agent);
                    self.agents.insert(id, (agent, free));
                }
            }
        }
    }
}

/// What the master says is free on `agent`: its total less what its tasks use; nothing while
/// it is inactive or its resources do not parse.
fn free_on(agent: &CellAgent) -> Resources {
    if !agent.active {
        return Resources::new();
    }
    match (
        Resources::from_proto(&agent.total),
        Resources::from_proto(&agent.used),
    ) {
        (Ok(total), Ok(used)) => total.checked_sub(&used).unwrap_or_default(),
        _ => Resources::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protos::v1::AgentId;

    fn r(text: &str) -> Resources {
        text.parse().unwrap()
    }

    fn agent(id: &str, version: u64, used: &str) -> CellAgent {
        CellAgent {
            agent_id: Some(AgentId { value: id.into() }),
            total: r("cpus:4;mem:1024").to_proto(),
            used: r(used).to_proto(),
            version,
            active: true,
            ..Default::default()
        }
    }

    fn update(seq: u64, reset: bool, agents: Vec<CellAgent>, more: bool) -> CellUpdateMessage {
        CellUpdateMessage {
            position: Some(CellPosition {
                epoch: "e".into(),
                seq,
            }),
            reset,
            agents,
            removed: Vec::new(),
            more,
        }
    }

    #[test]
    fn a_copy_follows_resets_changes_and_removals() {
        let mut cell = Cell::default();
        assert!(!cell.is_current());
        assert!(!cell.apply(update(2, true, vec![agent("a1", 1, "cpus:1")], true)));
        assert!(!cell.is_current());
        assert!(cell.apply(update(2, false, vec![agent("a2", 2, "cpus:0")], false)));
        assert!(cell.is_current());
        assert_eq!(cell.len(), 2);
        assert_eq!(cell.free("a1"), r("cpus:3;mem:1024"));
        let mut gone = update(3, false, vec![], false);
        gone.removed.push(AgentId { value: "a2".into() });
        cell.apply(gone);
        assert!(cell.agent("a2").is_none());
        cell.apply(update(4, true, vec![agent("a3", 4, "cpus:0")], false));
        assert_eq!(cell.agents().count(), 1, "a reset replaces the copy");
    }

    #[test]
    fn holds_take_from_free_until_the_result_and_old_versions_never_win() {
        let mut cell = Cell::default();
        cell.apply(update(5, true, vec![agent("a1", 5, "cpus:1")], false));
        cell.hold("t1", vec![("a1".into(), r("cpus:2;mem:100"))]);
        assert_eq!(cell.free("a1"), r("cpus:1;mem:924"));
        cell.settle(&TransactionResultMessage {
            transaction_id: "t1".into(),
            agents: vec![agent("a1", 7, "cpus:3;mem:100")],
            ..Default::default()
        });
        assert_eq!(cell.free("a1"), r("cpus:1;mem:924"));
        // An older version of an agent never replaces a newer one.
        cell.apply(update(6, false, vec![agent("a1", 6, "cpus:1")], false));
        assert_eq!(cell.agent("a1").unwrap().version, 7);
    }
}
