//! Mesos's `master/*` gauges (`docs/monitoring.md`), computed by the API process from its view
//! every [`REFRESH_INTERVAL`], so that the master spends nothing on them: agents, frameworks,
//! live tasks by state, and the cluster's resources (total, used, percent used).

use std::collections::BTreeMap;
use std::time::Duration;

use libactor::metrics::FloatGauge;
use libactor::Metrics;
use protos::v1::TaskState;

use super::view::ViewTotals;

/// How often the gauges are recomputed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Live task states with a `master/tasks_*` gauge (terminal states are the master's
/// counters).
const LIVE_STATES: [TaskState; 5] = [
    TaskState::TaskStaging,
    TaskState::TaskStarting,
    TaskState::TaskRunning,
    TaskState::TaskKilling,
    TaskState::TaskUnreachable,
];

/// Resources with `master/{name}_{total,used,percent}` gauges.
const RESOURCES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// The gauges, by name.
#[derive(Debug, Clone, Default)]
pub struct MesosGauges {
    gauges: BTreeMap<String, FloatGauge>,
}

impl MesosGauges {
    /// Registers every gauge in `metrics` (all 0 until the first [`MesosGauges::update`]).
    pub fn register(metrics: &Metrics) -> MesosGauges {
        MesosGauges {
            gauges: gauge_names()
                .into_iter()
                .map(|name| {
                    let gauge = metrics.float_gauge(&name);
                    (name, gauge)
                })
                .collect(),
        }
    }

    /// Sets every gauge from `totals`, with `subscribers` operator streams open.
    pub fn update(&self, totals: &ViewTotals, subscribers: usize) {
        let set = |name: &str, value: f64| {
            if let Some(g) = self.gauges.get(&format!("master/{name}")) {
                g.set(value);
            }
        };
        set("slaves_active", totals.agents as f64);
        set("slaves_connected", totals.agents as f64);
        set("frameworks_active", totals.frameworks_connected as f64);
        set("frameworks_connected", totals.frameworks_connected as f64);
        set("frameworks_inactive", totals.frameworks_disconnected as f64);
        set(
            "frameworks_disconnected",
            totals.frameworks_disconnected as f64,
        );
        set("operator_event_stream_subscribers", subscribers as f64);
        for state in LIVE_STATES {
            let n = totals.tasks.get(&state).copied().unwrap_or(0);
            set(&format!("tasks_{}", suffix(state)), n as f64);
        }
        for r in RESOURCES {
            let (total, used) = (totals.total.scalar(r), totals.used.scalar(r));
            set(&format!("{r}_total"), total);
            set(&format!("{r}_used"), used);
            set(
                &format!("{r}_percent"),
                if total > 0.0 { used / total } else { 0.0 },
            );
        }
    }
}

/// `TASK_RUNNING` → `running`.
fn suffix(state: TaskState) -> String {
    state
        .as_str_name()
        .trim_start_matches("TASK_")
        .to_ascii_lowercase()
}

fn gauge_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "slaves_active",
        "slaves_connected",
        "frameworks_active",
        "frameworks_connected",
        "frameworks_inactive",
        "frameworks_disconnected",
        "operator_event_stream_subscribers",
    ]
    .iter()
    .map(|n| format!("master/{n}"))
    .collect();
    names.extend(
        LIVE_STATES
            .iter()
            .map(|s| format!("master/tasks_{}", suffix(*s))),
    );
    for r in RESOURCES {
        for kind in ["total", "used", "percent"] {
            names.push(format!("master/{r}_{kind}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_follow_the_totals() {
        let metrics = Metrics::new();
        let gauges = MesosGauges::register(&metrics);
        let totals = ViewTotals {
            agents: 2,
            tasks: [(TaskState::TaskRunning, 3)].into(),
            total: "cpus:8;mem:1024".parse().unwrap(),
            used: "cpus:2;mem:256".parse().unwrap(),
            ..Default::default()
        };
        gauges.update(&totals, 1);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot["master/slaves_active"], 2.0);
        assert_eq!(snapshot["master/tasks_running"], 3.0);
        assert_eq!(snapshot["master/tasks_staging"], 0.0);
        assert_eq!(snapshot["master/cpus_percent"], 0.25);
        assert_eq!(snapshot["master/mem_used"], 256.0);
        assert_eq!(snapshot["master/gpus_percent"], 0.0);
        assert_eq!(snapshot["master/operator_event_stream_subscribers"], 1.0);
    }
}
