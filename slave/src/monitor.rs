//! What the agent's containers use: `GET /slave(N)/monitor/statistics` (Mesos's
//! `/monitor/statistics`: one entry per executor with its `ResourceStatistics`) and the
//! agent-wide container gauges in its metrics.

use std::sync::Arc;

use dashmap::DashMap;
use libactor::metrics::Metrics;
use protos::v1::{ContainerId, ExecutorId, ExecutorInfo, FrameworkId, ResourceUsage};

use crate::containerizer::ContainerHandle;
use crate::executor::Executor;

/// One executor whose usage is reported.
pub struct ExecutorUsage<'a> {
    /// Its framework's id.
    pub framework: &'a str,
    /// The executor.
    pub executor: &'a Executor,
    /// Its container.
    pub handle: &'a dyn ContainerHandle,
}

/// The usage of `executors`, sampled now (Unix time `now`), as a `ResourceUsage` message.
pub fn resource_usage<'a>(
    executors: impl Iterator<Item = ExecutorUsage<'a>>,
    now: f64,
) -> ResourceUsage {
    ResourceUsage {
        executors: executors
            .map(|u| {
                let info = u.executor.info.clone().unwrap_or_else(|| ExecutorInfo {
                    executor_id: Some(ExecutorId {
                        value: u.executor.id.clone(),
                    }),
                    name: format!("Command Executor (Task: {})", u.executor.id),
                    ..Default::default()
                });
                protos::v1::resource_usage::Executor {
                    executor_info: Some(info),
                    framework_id: Some(FrameworkId {
                        value: u.framework.to_owned(),
                    }),
                    container_id: Some(ContainerId {
                        value: u.handle.id().to_owned(),
                    }),
                    isolation: u.handle.isolation().to_owned(),
                    statistics: Some(protos::v1::ResourceStatistics {
                        timestamp: now,
                        ..u.handle.statistics()
                    }),
                }
            })
            .collect(),
    }
}

/// The JSON of `/monitor/statistics`: a list in Mesos's shape
/// (`executor_id`, `executor_name`, `framework_id`, `container_id`, `source`, `statistics`).
pub fn statistics_json<'a>(
    executors: impl Iterator<Item = ExecutorUsage<'a>>,
    now: f64,
) -> serde_json::Value {
    let usage = resource_usage(executors, now);
    serde_json::Value::Array(
        usage
            .executors
            .iter()
            .map(|e| {
                let info = e.executor_info.clone().unwrap_or_default();
                serde_json::json!({
                    "executor_id": info.executor_id.map(|i| i.value),
                    "executor_name": info.name,
                    "framework_id": e.framework_id.as_ref().map(|f| f.value.clone()),
                    "container_id": e.container_id.as_ref().map(|c| c.value.clone()),
                    "isolation": e.isolation,
                    "source": info.name,
                    "statistics": e.statistics.as_ref().map(statistics_to_json),
                })
            })
            .collect(),
    )
}

/// A `ResourceStatistics` as JSON with Mesos's field names, leaving out what was not measured.
pub fn statistics_to_json(s: &protos::v1::ResourceStatistics) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("timestamp".into(), s.timestamp.into());
    let mut put = |name: &str, value: Option<serde_json::Value>| {
        if let Some(v) = value {
            out.insert(name.into(), v);
        }
    };
    put("processes", s.processes.map(Into::into));
    put("threads", s.threads.map(Into::into));
    put("cpus_user_time_secs", s.cpus_user_time_secs.map(Into::into));
    put(
        "cpus_system_time_secs",
        s.cpus_system_time_secs.map(Into::into),
    );
    put("cpus_limit", s.cpus_limit.map(Into::into));
    put("cpus_quota", s.cpus_quota.map(Into::into));
    put("cpus_nr_periods", s.cpus_nr_periods.map(Into::into));
    put("cpus_nr_throttled", s.cpus_nr_throttled.map(Into::into));
    put(
        "cpus_throttled_time_secs",
        s.cpus_throttled_time_secs.map(Into::into),
    );
    put("mem_rss_bytes", s.mem_rss_bytes.map(Into::into));
    put("mem_cache_bytes", s.mem_cache_bytes.map(Into::into));
    put("mem_limit_bytes", s.mem_limit_bytes.map(Into::into));
    put("mem_max_usage_bytes", s.mem_max_usage_bytes.map(Into::into));
    put("mem_oom_kills", s.mem_oom_kills.map(Into::into));
    serde_json::Value::Object(out)
}

/// Agent-wide container gauges, sampled when metrics are read: how many containers run, and
/// what they use together (per-executor figures are at `/monitor/statistics`, so that metric
/// names stay bounded however many executors come and go).
pub fn register_gauges(
    metrics: &Metrics,
    containers: &Arc<DashMap<String, Arc<dyn ContainerHandle>>>,
) {
    let c = containers.clone();
    metrics.gauge_fn("slave/containers_running", move || c.len() as f64);
    let sum = |pick: fn(&protos::v1::ResourceStatistics) -> f64| {
        let c = containers.clone();
        move || {
            c.iter()
                .map(|entry| pick(&entry.value().statistics()))
                .sum::<f64>()
        }
    };
    metrics.gauge_fn(
        "slave/containers_mem_rss_bytes",
        sum(|s| s.mem_rss_bytes.unwrap_or(0) as f64),
    );
    metrics.gauge_fn(
        "slave/containers_cpus_time_secs",
        sum(|s| s.cpus_user_time_secs.unwrap_or(0.0) + s.cpus_system_time_secs.unwrap_or(0.0)),
    );
    metrics.gauge_fn(
        "slave/containers_oom_kills",
        sum(|s| s.mem_oom_kills.unwrap_or(0) as f64),
    );
}
