//! keel-bench's Autopilot runs: a real device manager (its ground truth in a file store)
//! driven by an emulated fleet, one libactor process standing in for many machines' watchdog
//! services and application managers over real TCP.
//!
//! - [`rollout`]: a manifest rolled out to every machine in scale units; wall time against the
//!   floor the probation period sets (units × probation), and CPU used against the same
//!   fleet's CPU while nothing rolls out (the baseline, measured in the same run).
//! - [`repairs`]: machines failing at once; repair decisions per second against watchdog
//!   reports processed per second without a decision (the baseline).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot::device_manager::{DeviceManager, DeviceManagerConfig, DEVICE_MANAGER_ID};
use autopilot::health::HealthPolicy;
use autopilot::repair_limits::RepairLimits;
use coordination::{AnyStore, FileStore};
use libactor::{http_client, Context, Node, Process, ProcessRef, Upid};
use protos::autopilot::{
    ManifestState, ManifestStatus, RepairOrder, SyncManifest, WatchdogReport, WatchdogResult,
    WatchdogStatus,
};
use serde_json::json;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting up nodes or processes failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The run did not finish in time.
    #[error("{0}")]
    Timeout(String),
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// Many machines' satellites in one process: it reports for every machine each round and
/// answers each `SyncManifest` at once with `ACTIVE`.
struct Fleet {
    device_manager: Upid,
    hosts: Vec<String>,
    failing: HashSet<String>,
    interval: Option<Duration>,
    /// The manifest version each machine runs.
    versions: std::collections::HashMap<String, String>,
}

impl Fleet {
    fn report(&self, ctx: &mut Context<Self>, host: &str) {
        let status = if self.failing.contains(host) {
            WatchdogStatus::Error
        } else {
            WatchdogStatus::Ok
        };
        ctx.send(
            &self.device_manager,
            WatchdogReport {
                agent_id: String::new(),
                hostname: host.to_owned(),
                machine_type: "default".into(),
                results: vec![WatchdogResult {
                    name: "fan".into(),
                    status: status as i32,
                    text: String::new(),
                    fatal: false,
                }],
                manifest_version: self.versions.get(host).cloned().unwrap_or_default(),
                attributes: Default::default(),
            },
        );
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        for host in self.hosts.clone() {
            self.report(ctx, &host);
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.round(ctx);
        if let Some(interval) = self.interval {
            ctx.delay(interval, |f: &mut Fleet, ctx| f.tick(ctx));
        }
    }

    fn sync(&mut self, ctx: &mut Context<Self>, from: Upid, msg: SyncManifest) {
        let m = msg.manifest.unwrap_or_default();
        if msg.activate {
            self.versions
                .insert(msg.hostname.clone(), m.version.clone());
        }
        ctx.send(
            &from,
            ManifestStatus {
                hostname: msg.hostname,
                name: m.name,
                version: m.version,
                state: if msg.activate {
                    ManifestState::Active
                } else {
                    ManifestState::Preloaded
                } as i32,
                detail: String::new(),
            },
        );
    }
}

impl Process for Fleet {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::sync);
        self.tick(ctx);
    }
}

/// Counts repair orders.
struct Sink(Arc<AtomicU64>);

impl Process for Sink {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |s: &mut Sink, _: &mut Context<Sink>, _: Upid, _: RepairOrder| {
                s.0.fetch_add(1, Ordering::Relaxed);
            },
        );
    }
}

/// User plus system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Bench {
    dm_node: Node,
    fleet_node: Node,
    dm: ProcessRef<DeviceManager>,
    fleet: ProcessRef<Fleet>,
    _dir: tempfile::TempDir,
}

async fn start(
    machines: usize,
    config: DeviceManagerConfig,
    report_interval: Option<Duration>,
    failing: HashSet<String>,
) -> Result<Bench, BenchError> {
    let dir = tempfile::tempdir().map_err(setup)?;
    let store = AnyStore::File(FileStore::open(dir.path()).map_err(setup)?);
    let dm_node = Node::builder()
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .single_threaded()
        .start()
        .map_err(setup)?;
    let dm = dm_node
        .spawn_ref(
            DEVICE_MANAGER_ID,
            DeviceManager::new(config, Some(Arc::new(store)), Default::default()),
        )
        .map_err(setup)?;
    let fleet_node = Node::builder()
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .single_threaded()
        .start()
        .map_err(setup)?;
    let hosts: Vec<String> = (0..machines).map(|i| format!("machine-{i:05}")).collect();
    let fleet = fleet_node
        .spawn_ref(
            "app-manager",
            Fleet {
                device_manager: dm.pid().clone(),
                hosts,
                failing,
                interval: report_interval,
                versions: Default::default(),
            },
        )
        .map_err(setup)?;
    let bench = Bench {
        dm_node,
        fleet_node,
        dm,
        fleet,
        _dir: dir,
    };
    bench
        .until("every machine known", Duration::from_secs(120), move |dm| {
            dm.machines().len() == machines
        })
        .await?;
    Ok(bench)
}

impl Bench {
    /// Waits (checking every few milliseconds, up to `limit`) until `done` holds of the device
    /// manager.
    async fn until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&DeviceManager) -> bool + Send + Sync + Clone + 'static,
    ) -> Result<Duration, BenchError> {
        let begun = Instant::now();
        loop {
            let check = done.clone();
            if self.dm.call(move |dm, _| check(dm)).await.unwrap_or(false) {
                return Ok(begun.elapsed());
            }
            if begun.elapsed() > limit {
                return Err(BenchError::Timeout(format!("{what}: not within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn dm_counter(&self, name: &str) -> f64 {
        self.dm_node
            .metrics()
            .snapshot()
            .get(name)
            .copied()
            .unwrap_or(0.0)
    }

    async fn shutdown(self) {
        self.fleet_node.shutdown().await;
        self.dm_node.shutdown().await;
    }
}

/// What a rollout run measured.
#[derive(Debug, Clone)]
pub struct RolloutFigures {
    /// Machines, units.
    pub machines: usize,
    /// Scale units.
    pub units: usize,
    /// From the deploy request until the rollout succeeded.
    pub wall: Duration,
    /// The floor: units × probation.
    pub floor: Duration,
    /// Process CPU during the rollout.
    pub cpu: Duration,
    /// Process CPU over as long with the same fleet reporting and nothing rolling out.
    pub baseline_cpu: Duration,
}

/// Rolls a manifest out to `machines` emulated machines in units of `unit_size`, machines
/// reporting every `report_interval`, `probation` per unit.
pub async fn rollout(
    machines: usize,
    unit_size: u32,
    probation: Duration,
    report_interval: Duration,
) -> Result<RolloutFigures, BenchError> {
    let config = DeviceManagerConfig {
        health: HealthPolicy {
            probation,
            ..Default::default()
        },
        limits: RepairLimits {
            max_fraction: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let bench = start(machines, config, Some(report_interval), HashSet::new()).await?;
    let units = machines.div_ceil(unit_size as usize);
    let floor = probation * units as u32;

    // Baseline: the same fleet reporting, nothing rolling out, as long as the floor.
    let cpu0 = cpu_time();
    tokio::time::sleep(floor).await;
    let baseline_cpu = cpu_time() - cpu0;

    let body = json!({
        "manifest": {"name": "app", "version": "2", "machine_type": "default", "files": [], "processes": []},
        "unit_size": unit_size,
        "healthy_threshold": 1.0,
    });
    let cpu0 = cpu_time();
    let begun = Instant::now();
    let reply = http_client::request(
        bench.dm_node.address(),
        "POST",
        "/device-manager/deploy",
        &[],
        body.to_string().into(),
    )
    .await
    .map_err(setup)?;
    if reply.status != 200 {
        return Err(setup(String::from_utf8_lossy(&reply.body)));
    }
    bench
        .until(
            "the rollout succeeds",
            floor * 4 + Duration::from_secs(120),
            |dm| dm.rollout_state() == Some(protos::autopilot::RolloutState::Succeeded),
        )
        .await?;
    let wall = begun.elapsed();
    let cpu = cpu_time() - cpu0;
    bench.shutdown().await;
    Ok(RolloutFigures {
        machines,
        units,
        wall,
        floor,
        cpu,
        baseline_cpu: baseline_cpu.mul_f64(wall.as_secs_f64() / floor.as_secs_f64().max(1e-9)),
    })
}

/// What a repair run measured.
#[derive(Debug, Clone)]
pub struct RepairFigures {
    /// Machines reporting.
    pub machines: usize,
    /// Machines that failed (each one decision).
    pub failing: usize,
    /// Baseline: one OK report from every machine, processed.
    pub reports_time: Duration,
    /// `failing` Error reports turned into failures, repairs chosen and orders sent.
    pub decisions_time: Duration,
}

/// `machines` emulated machines report once; then `failing` of them report an Error (the
/// threshold is one report) and the device manager decides each repair.
pub async fn repairs(machines: usize, failing: usize) -> Result<RepairFigures, BenchError> {
    let orders = Arc::new(AtomicU64::new(0));
    let failing_hosts: HashSet<String> = (0..failing).map(|i| format!("machine-{i:05}")).collect();
    let config = DeviceManagerConfig {
        health: HealthPolicy {
            error_threshold: 1,
            probation: Duration::from_secs(3600),
            ..Default::default()
        },
        limits: RepairLimits {
            max_fraction: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    // One round at start (registration), then rounds on demand.
    let bench = start(machines, config, None, HashSet::new()).await?;
    let sink = bench
        .dm_node
        .spawn("repair", Sink(orders.clone()))
        .map_err(setup)?;
    bench
        .dm
        .dispatch(move |dm, ctx| dm.set_repair_service(ctx, Some(sink)));

    // Baseline: a round of OK reports, no decision to make.
    let before = bench.dm_counter("autopilot/watchdog_reports");
    let begun = Instant::now();
    fleet_round(&bench.fleet, HashSet::new());
    while bench.dm_counter("autopilot/watchdog_reports") < before + machines as f64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if begun.elapsed() > Duration::from_secs(300) {
            return Err(BenchError::Timeout("baseline reports".into()));
        }
    }
    let reports_time = begun.elapsed();

    // The run: the failing machines report an Error, every other machine OK.
    let begun = Instant::now();
    fleet_round(&bench.fleet, failing_hosts);
    while orders.load(Ordering::Relaxed) < failing as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if begun.elapsed() > Duration::from_secs(300) {
            return Err(BenchError::Timeout(format!(
                "{} of {failing} repair orders",
                orders.load(Ordering::Relaxed)
            )));
        }
    }
    let decisions_time = begun.elapsed();
    bench.shutdown().await;
    Ok(RepairFigures {
        machines,
        failing,
        reports_time,
        decisions_time,
    })
}

/// Has the fleet send one round, the `failing` machines reporting an Error.
fn fleet_round(fleet: &ProcessRef<Fleet>, failing: HashSet<String>) {
    fleet.dispatch(move |f, ctx| {
        f.failing = failing;
        f.round(ctx);
    });
}

/// `keel-bench autopilot-rollout`: checks the flags, runs [`rollout`] and prints its figures.
pub async fn run_rollout(
    machines: usize,
    unit_size: u32,
    probation: Duration,
    interval: Duration,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        machines > 0 && unit_size > 0,
        "--machines and --unit-size must be at least 1"
    );
    let f = rollout(machines, unit_size, probation, interval).await?;
    let over = f.cpu.saturating_sub(f.baseline_cpu);
    println!(
        "autopilot rollout: {} machines in {} units of {unit_size}, probation {probation:?}: {:.2?} (floor {:.2?}, {:.2}x); CPU {:.2?} vs {:.2?} for the fleet reporting alone over as long: {:.2?} for the rollout ({:.2} ms per machine)",
        f.machines,
        f.units,
        f.wall,
        f.floor,
        f.wall.as_secs_f64() / f.floor.as_secs_f64(),
        f.cpu,
        f.baseline_cpu,
        over,
        over.as_secs_f64() * 1000.0 / f.machines as f64,
    );
    Ok(())
}

/// `keel-bench autopilot-repairs`: checks the flags, runs [`repairs`] and prints its figures.
pub async fn run_repairs(machines: usize, failing: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        failing > 0 && failing <= machines,
        "--failing must be in 1..=--machines"
    );
    let f = repairs(machines, failing).await?;
    let reports_rate = f.machines as f64 / f.reports_time.as_secs_f64();
    let decisions = f.decisions_time.saturating_sub(f.reports_time);
    println!(
        "autopilot repairs: {} machines reporting: a round of OK reports in {:.2?} ({:.0} reports/s, baseline); the same round with {} failing in {:.2?}: {:.0} repair decisions/s beyond the baseline ({:.1} µs each), {:.2}x the round's time",
        f.machines,
        f.reports_time,
        reports_rate,
        f.failing,
        f.decisions_time,
        f.failing as f64 / decisions.as_secs_f64().max(1e-9),
        decisions.as_secs_f64() * 1e6 / f.failing as f64,
        f.decisions_time.as_secs_f64() / f.reports_time.as_secs_f64(),
    );
    Ok(())
}
