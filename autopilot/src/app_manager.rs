//! The application manager (Autopilot, Isard 2007): the satellite on each agent that runs the processes of
//! the machine's active manifest and restarts them when they die. The device manager tells it
//! what to run (`SyncManifest`); it has [`filesync`](crate::filesync) fetch and pre-load the
//! files, switches over (old processes stopped, new ones started in the manifest's directory)
//! and reports where it stands (`ManifestStatus`). A process that dies is restarted after a
//! pause; one that dies [`RestartPolicy::max_crashes`] times within the window fails the
//! manifest (the rollout then rolls back), and the manifest's processes are stopped.
//!
//! It records the active manifest in `{work_dir}/manifests/active.pb` (read by the manifest
//! integrity watchdog) and each process's pid ([`leftover_processes`]). An application manager
//! starting on a work dir where an earlier one died without stopping its processes (the agent
//! was killed) first stops those, then runs the recorded active manifest again: a manifest
//! keeps running across agent restarts, and never twice.
//!
//! It serves the files of its manifests by digest at [`FILE_ROUTE`], in chunks as the
//! deployment server does: a new leader's deployment server fetches from machines the files
//! that were uploaded to the old leader.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authentication::roles;
use libactor::http::HttpReply;
use libactor::metrics::{Counter, ProcessMetrics};
use libactor::{Context, HttpRequest, HttpResponse, Process, Upid};
use prost::Message;
use protos::autopilot::{Kick, Manifest, ManifestState, ManifestStatus, SyncManifest};
use tokio::sync::watch;

use crate::deployment_server::{chunk_response, read_range, ChunkRequest};
use crate::filesync::{self, FilesyncCounters, FilesyncLimits};
use crate::leftover_processes;
use crate::manifest::{install_dir, relative_path, validate};

/// The application manager's process id (on the agent's node).
pub const APP_MANAGER_ID: &str = "app-manager";
/// How long a process has to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The route serving chunks of the files of the manifests installed here, as the deployment
/// server does (a new leader's deployment server fetches what it lacks from machines).
pub const FILE_ROUTE: &str = "/app-manager/file";
/// Chunk requests served at once; more are answered 503 (the client backs off).
const MAX_SERVING: usize = 2;

/// When a crashing process fails its manifest.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Crashes within `window` that fail the manifest.
    pub max_crashes: usize,
    /// How far back crashes count.
    pub window: Duration,
    /// Pause before a restart (times the crashes so far).
    pub backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_crashes: 3,
            window: Duration::from_secs(60),
            backoff: Duration::from_millis(250),
        }
    }
}

/// What the application manager needs to know.
#[derive(Debug, Clone)]
pub struct AppManagerConfig {
    /// This machine's id.
    pub hostname: String,
    /// The agent's work dir (manifests go under `manifests/`).
    pub work_dir: PathBuf,
    /// Where reports go.
    pub device_manager: Upid,
    /// Bounds on fetching.
    pub filesync: FilesyncLimits,
    /// When crashes fail a manifest.
    pub restart: RestartPolicy,
}

/// The file naming the active manifest, under the work dir.
pub fn active_manifest_file(work_dir: &std::path::Path) -> PathBuf {
    work_dir.join("manifests").join("active.pb")
}

struct Metrics {
    syncs: Counter,
    failures: Counter,
    restarts: Counter,
    refused: Counter,
}

/// The application manager process.
pub struct AppManager {
    config: AppManagerConfig,
    /// What the device manager last asked to run, and from where.
    target: Option<(Manifest, String)>,
    /// What runs now.
    active: Option<Manifest>,
    /// Bumped at every switch: events of older processes are ignored.
    generation: u64,
    /// Stops the current generation's processes.
    stop: Option<watch::Sender<bool>>,
    crashes: HashMap<String, VecDeque<std::time::Instant>>,
    syncing: bool,
    /// Stopping an earlier application manager's processes: switches wait for it.
    recovering: bool,
    /// The switch asked for while recovering (the last one wins).
    switch_after_recovery: Option<Option<Manifest>>,
    counters: Arc<FilesyncCounters>,
    /// Chunk requests being served.
    serving: Arc<std::sync::atomic::AtomicUsize>,
    metrics: ProcessMetrics<Metrics>,
}

impl AppManager {
    /// An application manager running nothing yet.
    pub fn new(config: AppManagerConfig) -> AppManager {
        AppManager {
            config,
            target: None,
            active: None,
            generation: 0,
            stop: None,
            crashes: HashMap::new(),
            syncing: false,
            recovering: false,
            switch_after_recovery: None,
            counters: Arc::default(),
            serving: Arc::default(),
            metrics: ProcessMetrics::default(),
        }
    }

    /// Reports to `device_manager` from now on (it moved with a new leading master).
    pub fn set_device_manager(&mut self, _ctx: &mut Context<Self>, device_manager: Upid) {
        self.config.device_manager = device_manager;
    }

    /// The manifest running now.
    pub fn active(&self) -> Option<&Manifest> {
        self.active.as_ref()
    }

    /// What fetching counted.
    pub fn counters(&self) -> &FilesyncCounters {
        &self.counters
    }

    fn report(&self, ctx: &mut Context<Self>, m: &Manifest, state: ManifestState, detail: String) {
        ctx.send(
            &self.config.device_manager,
            ManifestStatus {
                hostname: self.config.hostname.clone(),
                name: m.name.clone(),
                version: m.version.clone(),
                state: state as i32,
                detail,
            },
        );
    }

    fn sync_manifest(&mut self, ctx: &mut Context<Self>, from: Upid, msg: SyncManifest) {
        let _span = tracing::info_span!("sync_manifest", %from, activate = msg.activate).entered();
        let elsewhere = !msg.hostname.is_empty() && msg.hostname != self.config.hostname;
        // Only the device manager this agent follows may say what runs here: its pid, proven
        // (on a secure node) by the `master` role of the message's connection.
        if from != self.config.device_manager || elsewhere || !ctx.authorize(roles::MASTER) {
            self.metrics.inc(|m| &m.refused);
            tracing::warn!(%from, hostname = %msg.hostname, "refused a manifest not from the device manager or not for this machine");
            return;
        }
        let manifest = msg.manifest.unwrap_or_default();
        if manifest.name.is_empty() {
            if msg.activate {
                self.switch(ctx, None);
            }
            return;
        }
        if let Err(e) = validate(&manifest, true) {
            self.report(ctx, &manifest, ManifestState::Failed, e.to_string());
            return;
        }
        if msg.activate {
            self.target = Some((manifest.clone(), msg.deployment_server.clone()));
        }
        self.sync(ctx, manifest, msg.deployment_server, msg.activate);
    }

    fn sync(
        &mut self,
        ctx: &mut Context<Self>,
        manifest: Manifest,
        server: String,
        activate: bool,
    ) {
        self.metrics.inc(|m| &m.syncs);
        self.syncing = true;
        let (work_dir, limits, counters) = (
            self.config.work_dir.clone(),
            self.config.filesync.clone(),
            self.counters.clone(),
        );
        let wanted = manifest.clone();
        ctx.defer(
            async move { filesync::preload(&wanted, &server, &work_dir, &limits, counters).await },
            move |am: &mut AppManager, ctx, result| {
                am.syncing = false;
                // A newer target came meanwhile: this one is moot.
                let current = am
                    .target
                    .as_ref()
                    .is_none_or(|(t, _)| t.name == manifest.name && t.version == manifest.version);
                match result {
                    Err(e) => {
                        am.metrics.inc(|m| &m.failures);
                        am.report(ctx, &manifest, ManifestState::Failed, e.to_string());
                    }
                    Ok(_) if activate && current => am.switch(ctx, Some(manifest)),
                    Ok(_) if !activate => {
                        am.report(ctx, &manifest, ManifestState::Preloaded, String::new())
                    }
                    Ok(_) => {}
                }
            },
        );
    }

    /// Stops what runs and starts `manifest`'s processes (none: nothing runs).
    fn switch(&mut self, ctx: &mut Context<Self>, manifest: Option<Manifest>) {
        if self.recovering {
            self.switch_after_recovery = Some(manifest);
            return;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.generation += 1;
        self.crashes.clear();
        let (tx, _) = watch::channel(false);
        self.stop = Some(tx);
        let record = active_manifest_file(&self.config.work_dir);
        match &manifest {
            Some(m) => {
                if let Err(e) = std::fs::write(&record, m.encode_to_vec()) {
                    tracing::warn!(error = %e, "cannot record the active manifest");
                }
                for p in &m.processes {
                    self.start_process(ctx, m, &p.name);
                }
                tracing::info!(manifest = %m.name, version = %m.version, "manifest active");
                self.report(ctx, m, ManifestState::Active, String::new());
            }
            None => {
                let _ = std::fs::remove_file(&record);
                if let Some(old) = &self.active {
                    let stopped = Manifest {
                        name: String::new(),
                        version: String::new(),
                        ..old.clone()
                    };
                    self.report(ctx, &stopped, ManifestState::Active, "nothing runs".into());
                }
            }
        }
        self.active = manifest;
    }

    fn start_process(&mut self, ctx: &mut Context<Self>, manifest: &Manifest, name: &str) {
        let Some(spec) = manifest.processes.iter().find(|p| p.name == name).cloned() else {
            return;
        };
        let Some(stop) = self.stop.as_ref().map(|s| s.subscribe()) else {
            return;
        };
        let dir = install_dir(&self.config.work_dir, manifest);
        let log = dir.join(format!("{name}.log"));
        let generation = self.generation;
        let name = name.to_owned();
        let work_dir = self.config.work_dir.clone();
        ctx.defer(
            run_until_stopped(spec, dir, log, work_dir, stop),
            move |am: &mut AppManager, ctx, ended| am.process_ended(ctx, generation, name, ended),
        );
    }

    fn process_ended(
        &mut self,
        ctx: &mut Context<Self>,
        generation: u64,
        name: String,
        ended: Ended,
    ) {
        if generation != self.generation {
            return;
        }
        let Some(manifest) = self.active.clone() else {
            return;
        };
        let why = match &ended {
            Ended::Exited(status) => format!("process {name} {status}"),
            Ended::NotStarted(e) => format!("process {name} did not start: {e}"),
            Ended::Stopped => return,
        };
        let now = std::time::Instant::now();
        let policy = self.config.restart.clone();
        let crashes = self.crashes.entry(name.clone()).or_default();
        crashes.push_back(now);
        while crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            crashes.pop_front();
        }
        let count = crashes.len();
        tracing::warn!(%why, crashes = count, "manifest process ended");
        if count >= policy.max_crashes {
            self.metrics.inc(|m| &m.failures);
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(true);
            }
            self.generation += 1;
            // Nothing runs now: the record says so too (the watchdog reports it).
            self.active = None;
            let _ = std::fs::remove_file(active_manifest_file(&self.config.work_dir));
            let detail = format!("{why}; {count} times within {:?}", policy.window);
            self.report(ctx, &manifest, ManifestState::Failed, detail);
            return;
        }
        self.metrics.inc(|m| &m.restarts);
        ctx.delay(
            policy.backoff * count as u32,
            move |am: &mut AppManager, ctx| {
                if am.generation == generation {
                    am.start_process(ctx, &manifest, &name);
                }
            },
        );
    }

    /// The earlier application manager's processes are stopped: runs what the device manager
    /// asked for meanwhile, else the manifest recorded as active (its files are installed).
    fn recovered(&mut self, ctx: &mut Context<Self>, stopped: usize, recorded: Option<Manifest>) {
        self.recovering = false;
        if stopped > 0 {
            tracing::warn!(
                stopped,
                "stopped manifest processes an earlier agent left running"
            );
        }
        if let Some(manifest) = self.switch_after_recovery.take() {
            self.switch(ctx, manifest);
            return;
        }
        match recorded {
            Some(m) if validate(&m, true).is_ok() => {
                tracing::info!(manifest = %m.name, version = %m.version, "running the recorded active manifest again");
                self.switch(ctx, Some(m));
            }
            Some(_) => {
                tracing::warn!("the recorded active manifest is invalid; nothing runs");
                let _ = std::fs::remove_file(active_manifest_file(&self.config.work_dir));
            }
            None => {}
        }
    }

    /// A chunk of a file of the active or the target manifest, by digest ([`FILE_ROUTE`]).
    fn file(&mut self, _ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        use std::sync::atomic::Ordering;
        let chunk = match ChunkRequest::parse(&req) {
            Ok(c) => c,
            Err(refusal) => {
                self.metrics.inc(|m| &m.refused);
                return refusal.into();
            }
        };
        let held = [self.active.as_ref(), self.target.as_ref().map(|(m, _)| m)]
            .into_iter()
            .flatten()
            .find_map(|m| {
                let file = m.files.iter().find(|f| f.sha256 == chunk.sha)?;
                Some(install_dir(&self.config.work_dir, m).join(relative_path(&file.path)?))
            });
        let Some(path) = held else {
            return HttpResponse::text(404, format!("no file {}\n", chunk.sha)).into();
        };
        /// Counts a request served until dropped, also when its client goes away mid-read.
        struct Serving(Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Serving {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let serving = Serving(self.serving.clone());
        if serving.0.fetch_add(1, Ordering::AcqRel) >= MAX_SERVING {
            return HttpResponse::text(503, "busy; retry later\n").into();
        }
        HttpReply::Later(Box::pin(async move {
            let _serving = serving;
            let read = read_range(&path, chunk.offset, chunk.length).await;
            chunk_response(read, &chunk.sha)
        }))
    }

    fn kick(&mut self, ctx: &mut Context<Self>, from: Upid, _: Kick) {
        if from != self.config.device_manager || self.syncing || !ctx.authorize(roles::MASTER) {
            return;
        }
        if let Some((manifest, server)) = self.target.clone() {
            // Files are checked again; a switch happens only if something is wrong.
            let running = self
                .active
                .as_ref()
                .is_some_and(|a| a.version == manifest.version);
            self.sync(ctx, manifest, server, !running);
        }
    }
}

/// How a manifest process ended.
enum Ended {
    /// Asked to stop (a switch): not a crash.
    Stopped,
    /// It exited or was killed by a signal.
    Exited(std::process::ExitStatus),
    /// It could not start.
    NotStarted(std::io::Error),
}

async fn run_until_stopped(
    spec: protos::autopilot::ManifestProcess,
    dir: PathBuf,
    log: PathBuf,
    work_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log);
    let (stdout, stderr) = match output.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok((a, b)) => (std::process::Stdio::from(a), std::process::Stdio::from(b)),
        Err(_) => (std::process::Stdio::null(), std::process::Stdio::null()),
    };
    let mut command = tokio::process::Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .envs(spec.env.iter())
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own group: stopping it stops what it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return Ended::NotStarted(e),
    };
    let pid = child.id().unwrap_or(0);
    if let Err(e) = leftover_processes::record(&work_dir, &spec.name, pid) {
        tracing::warn!(error = %e, process = %spec.name, "cannot record a manifest process's pid");
    }
    let ended = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Ended::Exited(s),
            Err(e) => Ended::NotStarted(e),
        },
        _ = stop.wait_for(|s| *s) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on our own child's group (it leads it), not reaped yet.
                unsafe { libc::kill(-pid, libc::SIGTERM); }
            }
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            Ended::Stopped
        }
    };
    leftover_processes::forget(&work_dir, &spec.name, pid);
    ended
}

impl Process for AppManager {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(Metrics {
            syncs: m.counter("autopilot/app_manager/syncs"),
            failures: m.counter("autopilot/app_manager/failures"),
            restarts: m.counter("autopilot/app_manager/restarts"),
            refused: m.counter("autopilot/app_manager/refused"),
        });
        let counters = self.counters.clone();
        m.gauge_fn("autopilot/filesync/checksum_failures", move || {
            counters
                .checksum_failures
                .load(std::sync::atomic::Ordering::Relaxed) as f64
        });
        let counters = self.counters.clone();
        m.gauge_fn("autopilot/filesync/busy_retries", move || {
            counters.busy.load(std::sync::atomic::Ordering::Relaxed) as f64
        });
        ctx.install(Self::sync_manifest);
        ctx.install(Self::kick);
        ctx.route("/file", Self::file);
        let _ = std::fs::create_dir_all(self.config.work_dir.join("manifests"));
        self.recovering = true;
        let work_dir = self.config.work_dir.clone();
        ctx.defer(
            async move {
                let stopped = leftover_processes::stop_leftovers(&work_dir, STOP_GRACE).await;
                let recorded = tokio::fs::read(active_manifest_file(&work_dir))
                    .await
                    .ok()
                    .and_then(|b| Manifest::decode(b.as_slice()).ok());
                (stopped, recorded)
            },
            |am: &mut AppManager, ctx, (stopped, recorded)| am.recovered(ctx, stopped, recorded),
        );
    }

    fn finalize(&mut self, _ctx: &mut Context<Self>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}
