//! Mesos's `slave/*` gauges (`docs/monitoring.md`), recomputed every [`REFRESH_INTERVAL`] from
//! the agent's own records (a pass over its frameworks, executors and tasks: a few hundred at
//! most): whether it is registered, its frameworks, executors and live tasks by state, and
//! its resources (total, used by live tasks, percent used).

use std::collections::BTreeMap;
use std::time::Duration;

use libactor::metrics::FloatGauge;
use libactor::{Context, Metrics};
use protos::v1::TaskState;
use resources::Resources;

use super::{Registration, Slave};
use crate::executor::ExecutorState;

/// How often the gauges are recomputed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

const LIVE_STATES: [(TaskState, &str); 4] = [
    (TaskState::TaskStaging, "staging"),
    (TaskState::TaskStarting, "starting"),
    (TaskState::TaskRunning, "running"),
    (TaskState::TaskKilling, "killing"),
];

const RESOURCES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// The agent's gauges, by name.
pub(crate) struct AgentGauges(BTreeMap<String, FloatGauge>);

impl AgentGauges {
    /// Registers every gauge (0 until the first refresh) and `slave/uptime_secs`.
    pub(crate) fn register(metrics: &Metrics, clock: libactor::Clock) -> AgentGauges {
        let mut names: Vec<String> = [
            "registered",
            "frameworks_active",
            "executors_registering",
            "executors_running",
            "executors_terminating",
        ]
        .iter()
        .map(|n| format!("slave/{n}"))
        .collect();
        names.extend(LIVE_STATES.iter().map(|(_, n)| format!("slave/tasks_{n}")));
        for r in RESOURCES {
            for kind in ["total", "used", "percent"] {
                names.push(format!("slave/{r}_{kind}"));
            }
        }
        let start = clock.unix_seconds();
        metrics.gauge_fn("slave/uptime_secs", move || clock.unix_seconds() - start);
        AgentGauges(
            names
                .into_iter()
                .map(|n| {
                    let g = metrics.float_gauge(&n);
                    (n, g)
                })
                .collect(),
        )
    }

    fn set(&self, name: &str, value: f64) {
        if let Some(g) = self.0.get(&format!("slave/{name}")) {
            g.set(value);
        }
    }
}

impl Slave {
    /// Recomputes the gauges, and again after [`REFRESH_INTERVAL`].
    pub(super) fn refresh_gauges(&mut self, ctx: &mut Context<Self>) {
        if let Some(gauges) = &self.gauges {
            let registered = matches!(self.registration, Registration::Registered);
            gauges.set("registered", if registered { 1.0 } else { 0.0 });
            gauges.set("frameworks_active", self.frameworks.len() as f64);
            let mut executors = [0usize; 3];
            let mut tasks: BTreeMap<TaskState, usize> = BTreeMap::new();
            let mut used = Resources::new();
            for executor in self.frameworks.values().flat_map(|f| f.executors.values()) {
                let slot = match executor.state {
                    ExecutorState::Running => 1,
                    ExecutorState::Terminating => 2,
                    _ => 0,
                };
                executors[slot] += 1;
                for task in executor.live_tasks() {
                    *tasks.entry(task.state).or_default() += 1;
                    let _ = used.add(&task.resources);
                }
            }
            for (name, n) in ["registering", "running", "terminating"]
                .iter()
                .zip(executors)
            {
                gauges.set(&format!("executors_{name}"), n as f64);
            }
            for (state, name) in LIVE_STATES {
                let n = tasks.get(&state).copied().unwrap_or(0);
                gauges.set(&format!("tasks_{name}"), n as f64);
            }
            for r in RESOURCES {
                let total = self.config.resources.scalar(r);
                let used = used.scalar(r);
                gauges.set(&format!("{r}_total"), total);
                gauges.set(&format!("{r}_used"), used);
                let percent = if total > 0.0 { used / total } else { 0.0 };
                gauges.set(&format!("{r}_percent"), percent);
            }
        }
        ctx.delay(REFRESH_INTERVAL, |s: &mut Slave, ctx| s.refresh_gauges(ctx));
    }
}
