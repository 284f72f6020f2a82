//! Many emulated agents on a few libactor nodes: how the benchmarks stand in for a fleet.

use std::sync::Arc;
use std::time::Duration;

use libactor::{Node, ProcessRef, TlsConfig, Upid};
use resources::Resources;

use crate::emulated_agent::{EmulatedAgent, EmulationCounters};

/// Emulated agents per libactor node.
pub const AGENTS_PER_NODE: usize = 25_000;

/// Starts `n` emulated agents on nodes of [`AGENTS_PER_NODE`] each (secure nodes with `tls`).
pub fn start_agents(
    n: usize,
    master: &Upid,
    resources: &Resources,
    task_duration: Duration,
    counters: &Arc<EmulationCounters>,
    tls: Option<&TlsConfig>,
) -> anyhow::Result<Vec<Node>> {
    Ok(start_agent_refs(n, master, resources, task_duration, counters, tls)?.0)
}

/// [`start_agents`], also returning each agent's process.
pub fn start_agent_refs(
    n: usize,
    master: &Upid,
    resources: &Resources,
    task_duration: Duration,
    counters: &Arc<EmulationCounters>,
    tls: Option<&TlsConfig>,
) -> anyhow::Result<(Vec<Node>, Vec<ProcessRef<EmulatedAgent>>)> {
    let mut nodes = Vec::new();
    let mut agents = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(AGENTS_PER_NODE) {
        let mut builder = Node::builder().single_threaded();
        if let Some(tls) = tls {
            builder = builder.tls(tls.clone());
        }
        let node = builder.start()?;
        let count = AGENTS_PER_NODE.min(n - chunk * AGENTS_PER_NODE);
        for i in 0..count {
            let agent = node.spawn_ref(
                &format!("agent{i}"),
                EmulatedAgent::new(
                    master.clone(),
                    resources.clone(),
                    task_duration,
                    counters.clone(),
                ),
            )?;
            agents.push(agent);
        }
        nodes.push(node);
    }
    Ok((nodes, agents))
}
