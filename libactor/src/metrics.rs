//! Counters, gauges and timers in one registry per node (libprocess's `process::metrics`).
//!
//! Handles are looked up once and then updated with a single atomic operation (a timer takes an
//! uncontended lock), so they are cheap enough for every message. The registry renders a flat
//! JSON snapshot (`/metrics/snapshot`) and Prometheus text (`/metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;

/// How many recent samples a [`Durations`] keeps for its percentiles.
pub const DURATIONS_WINDOW_SAMPLES: usize = 1024;

/// A monotonically increasing count (messages sent, frames dropped, …).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue depth, connected peers, …).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `d` (which may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge of a fractional value (CPUs, a percentage), set by its owner and read with the
/// rest.
#[derive(Debug, Clone, Default)]
pub struct FloatGauge(Arc<AtomicU64>);

impl FloatGauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
struct DurationsState {
    count: u64,
    min_ns: u64,
    max_ns: u64,
    window: VecDeque<u64>,
}

/// Durations of an operation: count, min and max over all time, percentiles over the last
/// [`DURATIONS_WINDOW_SAMPLES`] samples.
#[derive(Debug, Clone, Default)]
pub struct Durations(Arc<Mutex<DurationsState>>);

/// A summary of a [`Durations`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DurationStats {
    /// Samples recorded since start.
    pub count: u64,
    /// Shortest sample, in milliseconds.
    pub min_ms: f64,
    /// Longest sample, in milliseconds.
    pub max_ms: f64,
    /// Median of the recent window, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile of the recent window, in milliseconds.
    pub p90_ms: f64,
    /// 99th percentile of the recent window, in milliseconds.
    pub p99_ms: f64,
}

impl Durations {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let mut s = self.0.lock();
        s.min_ns = if s.count == 0 { ns } else { s.min_ns.min(ns) };
        s.max_ns = s.max_ns.max(ns);
        s.count += 1;
        if s.window.len() == DURATIONS_WINDOW_SAMPLES {
            s.window.pop_front();
        }
        s.window.push_back(ns);
    }

    /// Count, min, max and percentiles.
    pub fn stats(&self) -> DurationStats {
        let s = self.0.lock();
        let mut sorted: Vec<u64> = s.window.iter().copied().collect();
        drop(s);
        sorted.sort_unstable();
        let pct = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
            sorted[rank.min(sorted.len() - 1)] as f64 / 1e6
        };
        let s = self.0.lock();
        DurationStats {
            count: s.count,
            min_ms: s.min_ns as f64 / 1e6,
            max_ms: s.max_ns as f64 / 1e6,
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
        }
    }
}

type GaugeFn = Arc<dyn Fn() -> f64 + Send + Sync>;

#[derive(Clone)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    GaugeFn(GaugeFn),
    Durations(Durations),
}

/// A process's own metric handles (a struct of [`Counter`]s, [`Gauge`]s and [`Durations`]s), made
/// in `Process::initialize` where the node's registry is at hand, and absent before: every
/// count before then (a process handled nothing yet) is a no-op instead of an `Option` check
/// at each call site.
#[derive(Debug)]
pub struct ProcessMetrics<M>(Option<M>);

impl<M> Default for ProcessMetrics<M> {
    fn default() -> Self {
        ProcessMetrics(None)
    }
}

impl<M> ProcessMetrics<M> {
    /// Installs the handles (from `initialize`).
    pub fn set(&mut self, handles: M) {
        self.0 = Some(handles);
    }

    /// Adds one to the counter `pick` chooses.
    pub fn inc(&self, pick: impl FnOnce(&M) -> &Counter) {
        if let Some(m) = &self.0 {
            pick(m).inc();
        }
    }

    /// Adds `n` to the counter `pick` chooses.
    pub fn add(&self, pick: impl FnOnce(&M) -> &Counter, n: u64) {
        if let Some(m) = &self.0 {
            pick(m).add(n);
        }
    }

    /// The handles, once they exist.
    pub fn get(&self) -> Option<&M> {
        self.0.as_ref()
    }

    /// Runs `f` on the handles, once they exist.
    pub fn with(&self, f: impl FnOnce(&M)) {
        if let Some(m) = &self.0 {
            f(m);
        }
    }
}

/// One registry of named metrics. Names use `/` as separator, as libprocess's do
/// (`libactor/messages_received`, `master/offers_sent`).
#[derive(Clone, Default)]
pub struct Metrics {
    metrics: Arc<DashMap<String, Metric>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("len", &self.metrics.len())
            .finish()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The counter called `name`, created on first use. If `name` is taken by another kind of
    /// metric, a detached counter is returned (and the clash logged) rather than panicking.
    pub fn counter(&self, name: &str) -> Counter {
        let entry = self
            .metrics
            .entry(name.to_owned())
            .or_insert_with(|| Metric::Counter(Counter::default()));
        match entry.value() {
            Metric::Counter(c) => c.clone(),
            _ => {
                tracing::error!(name, "metric name already used by another kind of metric");
                Counter::default()
            }
        }
    }

    /// The gauge called `name`, created on first use.
    pub fn gauge(&self, name: &str) -> Gauge {
        let entry = self
            .metrics
            .entry(name.to_owned())
            .or_insert_with(|| Metric::Gauge(Gauge::default()));
        match entry.value() {
            Metric::Gauge(g) => g.clone(),
            _ => {
                tracing::error!(name, "metric name already used by another kind of metric");
                Gauge::default()
            }
        }
    }

    /// A gauge whose value is computed by `f` whenever metrics are read (replaces any earlier
    /// metric of that name).
    pub fn gauge_fn(&self, name: &str, f: impl Fn() -> f64 + Send + Sync + 'static) {
        self.metrics
            .insert(name.to_owned(), Metric::GaugeFn(Arc::new(f)));
    }

    /// A fractional gauge called `name` (replacing any earlier metric of that name), 0 until
    /// set.
    pub fn float_gauge(&self, name: &str) -> FloatGauge {
        let gauge = FloatGauge::default();
        let read = gauge.clone();
        self.gauge_fn(name, move || read.get());
        gauge
    }

    /// The duration metric called `name` (what Mesos calls a timer), created on first use.
    pub fn durations(&self, name: &str) -> Durations {
        let entry = self
            .metrics
            .entry(name.to_owned())
            .or_insert_with(|| Metric::Durations(Durations::default()));
        match entry.value() {
            Metric::Durations(t) => t.clone(),
            _ => {
                tracing::error!(name, "metric name already used by another kind of metric");
                Durations::default()
            }
        }
    }

    /// Removes a metric (e.g. a per-process gauge when the process ends).
    pub fn remove(&self, name: &str) {
        self.metrics.remove(name);
    }

    /// Every metric as a flat map name → number. A timer `t` appears as `t/count`, `t/min_ms`,
    /// `t/max_ms`, `t/p50_ms`, `t/p90_ms` and `t/p99_ms`.
    pub fn snapshot(&self) -> BTreeMap<String, f64> {
        // Clone the handles first: a gauge function may read this registry itself.
        let metrics: Vec<(String, Metric)> = self
            .metrics
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        let mut out = BTreeMap::new();
        for (name, metric) in metrics {
            match metric {
                Metric::Counter(c) => {
                    out.insert(name, c.get() as f64);
                }
                Metric::Gauge(g) => {
                    out.insert(name, g.get() as f64);
                }
                Metric::GaugeFn(f) => {
                    out.insert(name, f());
                }
                Metric::Durations(t) => {
                    let s = t.stats();
                    for (suffix, v) in [
                        ("count", s.count as f64),
                        ("min_ms", s.min_ms),
                        ("max_ms", s.max_ms),
                        ("p50_ms", s.p50_ms),
                        ("p90_ms", s.p90_ms),
                        ("p99_ms", s.p99_ms),
                    ] {
                        out.insert(format!("{name}/{suffix}"), v);
                    }
                }
            }
        }
        out
    }

    /// Every metric in Prometheus's text exposition format, each with `# HELP` (its libprocess
    /// name) and `# TYPE`: counters as `…_total` counters, gauges as gauges, timers as
    /// `…_seconds` summaries (quantiles 0.5, 0.9, 0.99 of the recent window, and `_count`).
    /// `/` and other characters Prometheus does not allow in names become `_`.
    pub fn prometheus(&self) -> String {
        let mut metrics: Vec<(String, Metric)> = self
            .metrics
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        metrics.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        for (name, metric) in metrics {
            let base = prometheus_name(&name);
            match metric {
                Metric::Counter(c) => {
                    let _ = writeln!(out, "# HELP {base}_total {name}");
                    let _ = writeln!(out, "# TYPE {base}_total counter");
                    let _ = writeln!(out, "{base}_total {}", c.get());
                }
                Metric::Gauge(g) => {
                    let _ = writeln!(out, "# HELP {base} {name}");
                    let _ = writeln!(out, "# TYPE {base} gauge");
                    let _ = writeln!(out, "{base} {}", g.get());
                }
                Metric::GaugeFn(f) => {
                    let _ = writeln!(out, "# HELP {base} {name}");
                    let _ = writeln!(out, "# TYPE {base} gauge");
                    let _ = writeln!(out, "{base} {}", f());
                }
                Metric::Durations(t) => {
                    let s = t.stats();
                    let _ = writeln!(out, "# HELP {base}_seconds {name}");
                    let _ = writeln!(out, "# TYPE {base}_seconds summary");
                    for (q, ms) in [("0.5", s.p50_ms), ("0.9", s.p90_ms), ("0.99", s.p99_ms)] {
                        let _ = writeln!(out, "{base}_seconds{{quantile=\"{q}\"}} {}", ms / 1000.0);
                    }
                    let _ = writeln!(out, "{base}_seconds_count {}", s.count);
                }
            }
        }
        out
    }
}

/// `name` with the characters Prometheus does not allow in metric names made `_`.
fn prometheus_name(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_timers() {
        let m = Metrics::new();
        m.counter("a/sent").inc();
        m.counter("a/sent").add(2);
        m.gauge("a/depth").set(7);
        m.gauge_fn("a/computed", || 1.5);
        let t = m.durations("a/latency");
        for ms in 1..=100 {
            t.record(Duration::from_millis(ms));
        }
        let s = m.snapshot();
        assert_eq!(s["a/sent"], 3.0);
        assert_eq!(s["a/depth"], 7.0);
        assert_eq!(s["a/computed"], 1.5);
        assert_eq!(s["a/latency/count"], 100.0);
        assert_eq!(s["a/latency/min_ms"], 1.0);
        assert_eq!(s["a/latency/max_ms"], 100.0);
        assert!((s["a/latency/p50_ms"] - 50.0).abs() <= 1.0);
        assert!((s["a/latency/p99_ms"] - 99.0).abs() <= 1.0);
        let text = m.prometheus();
        assert!(
            text.contains("# TYPE a_sent_total counter\na_sent_total 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE a_depth gauge\na_depth 7\n"), "{text}");
        assert!(
            text.contains("# TYPE a_latency_seconds summary\n"),
            "{text}"
        );
        assert!(text.contains("a_latency_seconds_count 100\n"), "{text}");
    }

    #[test]
    fn kind_clash_does_not_panic() {
        let m = Metrics::new();
        m.counter("x").inc();
        m.gauge("x").set(5);
        assert_eq!(m.snapshot()["x"], 1.0);
    }

    #[test]
    fn timer_window_is_bounded() {
        let t = Durations::default();
        for _ in 0..(DURATIONS_WINDOW_SAMPLES * 3) {
            t.record(Duration::from_micros(5));
        }
        assert_eq!(t.0.lock().window.len(), DURATIONS_WINDOW_SAMPLES);
        assert_eq!(t.stats().count, (DURATIONS_WINDOW_SAMPLES * 3) as u64);
    }
}
