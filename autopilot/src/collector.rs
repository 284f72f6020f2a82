//! The collection service (Autopilot, Isard 2007): every interval it gathers each machine's performance
//! counters (its node's `/metrics/snapshot`) and recent warning and error log lines (its
//! watchdog service's `/watchdog/log`) into bounded in-memory time series at the master,
//! for the cockpit and operators.
//!
//! Routes: `GET /collector/series?name=COUNTER` (each machine's points), `GET
//! /collector/logs` (each machine's recent lines), `GET /collector/counters` (the names kept).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use libactor::metrics::Counter;
use libactor::{http_client, Context, HttpRequest, HttpResponse, Process, ProcessRef};
use serde_json::{json, Value};

use crate::device_manager::DeviceManager;

/// The collection service's process id.
pub const COLLECTOR_ID: &str = "collector";
/// Counters kept unless told otherwise.
pub const DEFAULT_COUNTERS: &[&str] = &[
    "slave/tasks_launched",
    "slave/tasks_finished",
    "slave/containers_running",
    "autopilot/watchdog_rounds",
];
/// Log lines kept per machine.
const MAX_LOG_LINES: usize = 50;
/// Machines asked at once.
const CONCURRENCY: usize = 32;

/// What the collection service gathers and keeps.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// Points kept per machine and counter.
    pub max_points: usize,
    /// The counters kept.
    pub counters: Vec<String>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            interval: Duration::from_secs(5),
            max_points: 360,
            counters: DEFAULT_COUNTERS.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

/// What one machine gave in one round.
struct Sample {
    machine: String,
    counters: Option<BTreeMap<String, f64>>,
    logs: Option<Vec<String>>,
}

/// The collection service process.
pub struct Collector {
    config: CollectorConfig,
    device_manager: ProcessRef<DeviceManager>,
    /// Counter → machine → (time, value), oldest first.
    series: BTreeMap<String, BTreeMap<String, VecDeque<(f64, f64)>>>,
    logs: BTreeMap<String, Vec<String>>,
    collecting: bool,
    failures: Option<Counter>,
    /// Series times are seconds since this.
    started: Option<std::time::Instant>,
}

impl Collector {
    /// Gathers from the machines `device_manager` knows.
    pub fn new(config: CollectorConfig, device_manager: ProcessRef<DeviceManager>) -> Collector {
        Collector {
            config,
            device_manager,
            series: BTreeMap::new(),
            logs: BTreeMap::new(),
            collecting: false,
            failures: None,
            started: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.collect(ctx);
        let interval = self.config.interval;
        ctx.delay(interval, |c: &mut Collector, ctx| c.tick(ctx));
    }

    fn collect(&mut self, ctx: &mut Context<Self>) {
        if self.collecting {
            return;
        }
        self.collecting = true;
        let dm = self.device_manager.clone();
        let wanted = self.config.counters.clone();
        ctx.defer(
            async move {
                let machines = dm
                    .call(|d, _| {
                        d.machines()
                            .values()
                            .filter(|m| !m.replaced && !m.agent_address.is_empty())
                            .map(|m| (m.id.clone(), m.agent_address.clone()))
                            .collect::<Vec<_>>()
                    })
                    .await
                    .unwrap_or_default();
                let mut samples = Vec::new();
                for chunk in machines.chunks(CONCURRENCY) {
                    let round = chunk
                        .iter()
                        .map(|(id, address)| sample(id, address, &wanted));
                    samples.extend(futures::future::join_all(round).await);
                }
                samples
            },
            |c: &mut Collector, ctx, samples| {
                c.collecting = false;
                c.store(ctx, samples);
            },
        );
    }

    fn store(&mut self, ctx: &mut Context<Self>, samples: Vec<Sample>) {
        let clock = ctx.node().clock().now();
        let now = clock
            .saturating_duration_since(*self.started.get_or_insert(clock))
            .as_secs_f64();
        for s in samples {
            match s.counters {
                Some(values) => {
                    for (name, value) in values {
                        let points = self
                            .series
                            .entry(name)
                            .or_default()
                            .entry(s.machine.clone())
                            .or_default();
                        if points.len() == self.config.max_points {
                            points.pop_front();
                        }
                        points.push_back((now, value));
                    }
                }
                None => {
                    if let Some(f) = &self.failures {
                        f.inc();
                    }
                }
            }
            if let Some(mut lines) = s.logs {
                let excess = lines.len().saturating_sub(MAX_LOG_LINES);
                lines.drain(..excess);
                self.logs.insert(s.machine, lines);
            }
        }
    }

    fn series_route(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let Some(name) = req.query_param("name") else {
            return HttpResponse::text(400, "needs ?name=COUNTER\n");
        };
        let machines: BTreeMap<&String, Vec<[f64; 2]>> = self
            .series
            .get(name)
            .map(|m| {
                m.iter()
                    .map(|(id, points)| (id, points.iter().map(|(t, v)| [*t, *v]).collect()))
                    .collect()
            })
            .unwrap_or_default();
        HttpResponse::json(&json!({ "name": name, "machines": machines }))
    }
}

async fn sample(machine: &str, address: &str, wanted: &[String]) -> Sample {
    let counters = http_client::get_json(address, "/metrics/snapshot")
        .await
        .ok()
        .and_then(|v| match v {
            Value::Object(map) => Some(
                wanted
                    .iter()
                    .filter_map(|name| Some((name.clone(), map.get(name)?.as_f64()?)))
                    .collect(),
            ),
            _ => None,
        });
    let logs = http_client::get_json(address, "/watchdog/log")
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v).ok());
    Sample {
        machine: machine.to_owned(),
        counters,
        logs,
    }
}

impl Process for Collector {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        self.failures = Some(ctx.metrics().counter("autopilot/collector/failures"));
        self.started = Some(ctx.node().clock().now());
        ctx.route("/series", Self::series_route);
        ctx.route("/logs", |c: &mut Collector, _: &mut Context<Self>, _| {
            HttpResponse::json(&json!({ "logs": c.logs }))
        });
        ctx.route(
            "/counters",
            |c: &mut Collector, _: &mut Context<Self>, _| {
                HttpResponse::json(&json!({ "counters": c.config.counters }))
            },
        );
        self.tick(ctx);
    }
}
