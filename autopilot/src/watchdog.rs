//! The watchdog service: a satellite on every agent that looks at its machine every interval
//! and reports what it saw to the device manager (`WatchdogReport`). It never repairs anything
//! itself (Autopilot, Isard 2007: satellites report, the device manager decides).
//!
//! Built-in watchdogs:
//! - `work_dir`: the agent's work dir accepts a new file, and its file system has at least
//!   [`WatchdogConfig::min_free_bytes`] free (Warning below it, Error when nothing is free or
//!   the file cannot be written).
//! - `memory`: `MemAvailable` of `/proc/meminfo` above 10% of memory (Warning below, Error
//!   below 2%).
//! - `manifest`: the active manifest's files still match their sha256 (Error otherwise).
//! - `tasks` and `agent`: see [`agent_checks`](crate::agent_checks).
//!
//! Custom watchdogs are the executables in `--watchdog-dir` and, deployed like any application
//! (Autopilot, Isard 2007), those in the [`MANIFEST_WATCHDOGS`] directory of the active manifest, run one
//! after the other each round with a timeout. A new version that ships a failing check thus
//! fails its rollout in the first scale unit. Exit status 0, 1, 2 is OK, Warning, Error; 3 is an Error marked fatal
//! (the strongest repair at once, e.g. a disk error). The first [`MAX_OUTPUT`] bytes of stdout
//! are the text. A watchdog that hangs past its timeout is killed, and one that exits with
//! any other status or by a signal is itself reported, as a Warning named
//! `watchdog:<name>`, so that a broken check never gets a healthy machine repaired.

use std::path::{Path, PathBuf};
use std::time::Duration;

use authentication::roles;
use libactor::metrics::Counter;
use libactor::{Context, Process, Upid};
use protos::autopilot::{Kick, WatchdogReport, WatchdogResult, WatchdogStatus};

use crate::agent_checks::{self_check, TaskFailureRate};
use crate::bounded_command::run_bounded;

/// The watchdog service's process id (on the agent's node).
pub const WATCHDOG_ID: &str = "watchdog";

/// Bytes of a custom watchdog's stdout kept as its text.
pub const MAX_OUTPUT: usize = 256;
/// Custom watchdogs run in one round at most (more are reported as one Warning).
pub const MAX_CUSTOM: usize = 32;
/// The directory of a manifest whose executables are custom watchdogs while it is active.
pub const MANIFEST_WATCHDOGS: &str = "watchdogs";

/// What the watchdog service watches and where it reports.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// The machine's id in the device manager: its hostname.
    pub hostname: String,
    /// The machine type the agent declares (provisioning may assign one).
    pub machine_type: String,
    /// The agent's id, for the record.
    pub agent_id: String,
    /// The device manager's address.
    pub device_manager: Upid,
    /// The agent's work dir.
    pub work_dir: PathBuf,
    /// Custom watchdog executables, if any.
    pub watchdog_dir: Option<PathBuf>,
    /// Time between rounds.
    pub interval: Duration,
    /// How long one custom watchdog may run.
    pub timeout: Duration,
    /// Free bytes below which the work dir's file system is a Warning.
    pub min_free_bytes: u64,
    /// The agent process to self-check (none: no `agent` watchdog).
    pub agent: Option<Upid>,
    /// The agent's attributes, by name (text and scalar ones), reported for provisioning.
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl WatchdogConfig {
    /// Watching `work_dir` for `hostname`, reporting to `device_manager` every 10 s.
    pub fn new(hostname: &str, device_manager: Upid, work_dir: PathBuf) -> WatchdogConfig {
        WatchdogConfig {
            hostname: hostname.to_owned(),
            machine_type: "default".into(),
            agent_id: String::new(),
            device_manager,
            work_dir,
            watchdog_dir: None,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            min_free_bytes: 100 << 20,
            agent: None,
            attributes: Default::default(),
        }
    }

    /// Reports the agent's `attributes` with a text or scalar value (ranges and sets are not
    /// something a type rule matches).
    pub fn with_attributes(mut self, attributes: &[protos::v1::Attribute]) -> WatchdogConfig {
        for a in attributes {
            let value = match (&a.text, &a.scalar) {
                (Some(text), _) => text.value.clone(),
                (None, Some(scalar)) => scalar.value.to_string(),
                (None, None) => continue,
            };
            self.attributes.insert(a.name.clone(), value);
        }
        self
    }
}

/// The watchdog service process (`watchdog` on the agent's node).
pub struct WatchdogService {
    config: WatchdogConfig,
    running: bool,
    rounds: Option<Counter>,
    tasks: TaskFailureRate,
}

impl WatchdogService {
    /// A service running `config`'s watchdogs.
    pub fn new(config: WatchdogConfig) -> WatchdogService {
        WatchdogService {
            config,
            running: false,
            rounds: None,
            tasks: TaskFailureRate::default(),
        }
    }

    /// Reports to `device_manager` from now on (it moved with a new leading master).
    pub fn set_device_manager(&mut self, _ctx: &mut Context<Self>, device_manager: Upid) {
        self.config.device_manager = device_manager;
    }

    /// Runs a round now (an operator's `kick`, or a test), unless one is running.
    pub fn run_now(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let config = self.config.clone();
        // The agent's task counters live on this node.
        let tasks = self.tasks.observe(&ctx.node().metrics().snapshot());
        let work = async move {
            let (mut results, version) = round(config.clone()).await;
            results.push(tasks);
            if let Some(agent) = &config.agent {
                results.push(self_check(agent).await);
            }
            (results, version)
        };
        ctx.defer(
            work,
            |s: &mut WatchdogService, ctx, (results, manifest_version)| {
                s.running = false;
                if let Some(c) = &s.rounds {
                    c.inc();
                }
                let report = WatchdogReport {
                    agent_id: s.config.agent_id.clone(),
                    hostname: s.config.hostname.clone(),
                    machine_type: s.config.machine_type.clone(),
                    results,
                    manifest_version,
                    attributes: s.config.attributes.clone().into_iter().collect(),
                };
                ctx.send(&s.config.device_manager, report);
            },
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.run_now(ctx);
        ctx.delay(self.config.interval, |s: &mut WatchdogService, ctx| {
            s.tick(ctx)
        });
    }
}

impl Process for WatchdogService {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        self.rounds = Some(ctx.metrics().counter("autopilot/watchdog_rounds"));
        ctx.route(
            "/log",
            |_: &mut WatchdogService, _: &mut Context<Self>, _| {
                libactor::HttpResponse::json(&crate::log_tail::LogTail::global().lines())
            },
        );
        ctx.install(
            |s: &mut WatchdogService, ctx: &mut Context<Self>, from: Upid, _: Kick| {
                // Who may send: the device manager, proven by the `master` role.
                if from == s.config.device_manager && ctx.authorize(roles::MASTER) {
                    s.run_now(ctx);
                }
            },
        );
        self.tick(ctx);
    }
}

/// `manifest`: the active manifest's files still hash to what the manifest says (none is
/// checked while no manifest is active).
async fn manifest_integrity(
    work_dir: &Path,
    active: &Option<Result<protos::autopilot::Manifest, ()>>,
) -> Option<WatchdogResult> {
    let Ok(manifest) = active.as_ref()? else {
        return Some(result(
            "manifest",
            WatchdogStatus::Error,
            "the active manifest record is corrupt",
        ));
    };
    let dir = crate::manifest::install_dir(work_dir, manifest);
    Some(match crate::filesync::verify(manifest, &dir).await {
        Ok(()) => result(
            "manifest",
            WatchdogStatus::Ok,
            format!(
                "{} {}: {} files intact",
                manifest.name,
                manifest.version,
                manifest.files.len()
            ),
        ),
        Err(why) => result(
            "manifest",
            WatchdogStatus::Error,
            format!("{} {}: {why}", manifest.name, manifest.version),
        ),
    })
}

/// The manifest the application manager runs (none: nothing runs; an error: its record is
/// corrupt).
async fn active_manifest(work_dir: &Path) -> Option<Result<protos::autopilot::Manifest, ()>> {
    use prost::Message;
    let record = tokio::fs::read(crate::app_manager::active_manifest_file(work_dir))
        .await
        .ok()?;
    Some(protos::autopilot::Manifest::decode(record.as_slice()).map_err(|_| ()))
}

fn result(name: &str, status: WatchdogStatus, text: impl Into<String>) -> WatchdogResult {
    WatchdogResult {
        name: name.to_owned(),
        status: status as i32,
        text: text.into(),
        fatal: false,
    }
}

/// One round: the built-in watchdogs, then the custom ones; with the version of the active
/// manifest the round looked at (read once: the results and the version reported with them
/// belong together, even if the application manager switches meanwhile).
pub async fn round(config: WatchdogConfig) -> (Vec<WatchdogResult>, String) {
    let active = active_manifest(&config.work_dir).await;
    let mut out = vec![
        work_dir(&config.work_dir, config.min_free_bytes).await,
        memory().await,
    ];
    out.extend(manifest_integrity(&config.work_dir, &active).await);
    if let Some(dir) = &config.watchdog_dir {
        out.extend(custom(dir, config.timeout).await);
    }
    let version = match &active {
        Some(Ok(manifest)) => {
            let dir =
                crate::manifest::install_dir(&config.work_dir, manifest).join(MANIFEST_WATCHDOGS);
            if tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
                out.extend(custom(&dir, config.timeout).await);
            }
            manifest.version.clone()
        }
        _ => String::new(),
    };
    (out, version)
}

async fn work_dir(dir: &Path, min_free: u64) -> WatchdogResult {
    let probe = dir.join(".watchdog-probe");
    if let Err(e) = tokio::fs::write(&probe, b"probe").await {
        return result(
            "work_dir",
            WatchdogStatus::Error,
            format!("{} is not writable: {e}", dir.display()),
        );
    }
    let _ = tokio::fs::remove_file(&probe).await;
    match free_bytes(dir) {
        Some(0) => result(
            "work_dir",
            WatchdogStatus::Error,
            format!("no space left on {}", dir.display()),
        ),
        Some(free) if free < min_free => result(
            "work_dir",
            WatchdogStatus::Warning,
            format!("{} MiB free on {}", free >> 20, dir.display()),
        ),
        _ => result("work_dir", WatchdogStatus::Ok, ""),
    }
}

/// Bytes available to unprivileged users on `dir`'s file system.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid C string and `stat` a properly sized out-parameter.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

async fn memory() -> WatchdogResult {
    let Ok(meminfo) = tokio::fs::read_to_string("/proc/meminfo").await else {
        return result(
            "memory",
            WatchdogStatus::Warning,
            "cannot read /proc/meminfo",
        );
    };
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (Some(total), Some(available)) = (field("MemTotal:"), field("MemAvailable:")) else {
        return result(
            "memory",
            WatchdogStatus::Warning,
            "no MemAvailable in /proc/meminfo",
        );
    };
    let percent = available as f64 * 100.0 / total.max(1) as f64;
    let text = format!("{percent:.1}% of memory available");
    let status = if percent < 2.0 {
        WatchdogStatus::Error
    } else if percent < 10.0 {
        WatchdogStatus::Warning
    } else {
        WatchdogStatus::Ok
    };
    result("memory", status, text)
}

/// Runs every executable in `dir`, sorted by name.
async fn custom(dir: &Path, timeout: Duration) -> Vec<WatchdogResult> {
    let mut names = Vec::new();
    match tokio::fs::read_dir(dir).await {
        Ok(mut entries) => {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let executable = entry.metadata().await.is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.is_file() && m.permissions().mode() & 0o111 != 0
                });
                if executable {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) => {
            return vec![result(
                "watchdog_dir",
                WatchdogStatus::Warning,
                format!("cannot read {}: {e}", dir.display()),
            )]
        }
    }
    names.sort();
    let mut out = Vec::new();
    if names.len() > MAX_CUSTOM {
        out.push(result(
            "watchdog_dir",
            WatchdogStatus::Warning,
            format!("{} watchdogs; only the first {MAX_CUSTOM} run", names.len()),
        ));
        names.truncate(MAX_CUSTOM);
    }
    for name in names {
        out.push(run_custom(&dir.join(&name), &name, timeout).await);
    }
    out
}

async fn run_custom(path: &Path, name: &str, timeout: Duration) -> WatchdogResult {
    let broken = |text: String| result(&format!("watchdog:{name}"), WatchdogStatus::Warning, text);
    let command = tokio::process::Command::new(path);
    let (status, text) = match run_bounded(command, timeout, MAX_OUTPUT).await {
        Ok(done) => done,
        Err(e) => return broken(e.to_string()),
    };
    match status.code() {
        Some(0) => result(name, WatchdogStatus::Ok, text),
        Some(1) => result(name, WatchdogStatus::Warning, text),
        Some(2) => result(name, WatchdogStatus::Error, text),
        Some(3) => WatchdogResult {
            fatal: true,
            ..result(name, WatchdogStatus::Error, text)
        },
        _ => broken(format!("crashed ({status})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[tokio::test]
    async fn custom_watchdogs_map_exit_status_and_broken_ones_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        script(dir.path(), "a_ok", "echo fine; exit 0");
        script(dir.path(), "b_warn", "echo slow disk; exit 1");
        script(dir.path(), "c_error", "echo bad fan; exit 2");
        script(dir.path(), "d_fatal", "echo disk gone; exit 3");
        script(dir.path(), "e_crash", "kill -9 $$");
        script(dir.path(), "f_hang", "exec sleep 30");
        std::fs::write(dir.path().join("g_not_executable"), "exit 2").expect("write");
        let results = custom(dir.path(), Duration::from_millis(300)).await;
        let seen: Vec<(String, i32, bool, String)> = results
            .into_iter()
            .map(|r| (r.name, r.status, r.fatal, r.text))
            .collect();
        let w = |s: WatchdogStatus| s as i32;
        assert_eq!(
            seen[0],
            ("a_ok".into(), w(WatchdogStatus::Ok), false, "fine".into())
        );
        assert_eq!(
            seen[1],
            (
                "b_warn".into(),
                w(WatchdogStatus::Warning),
                false,
                "slow disk".into()
            )
        );
        assert_eq!(
            seen[2],
            (
                "c_error".into(),
                w(WatchdogStatus::Error),
                false,
                "bad fan".into()
            )
        );
        assert_eq!(
            seen[3],
            (
                "d_fatal".into(),
                w(WatchdogStatus::Error),
                true,
                "disk gone".into()
            )
        );
        assert_eq!(seen[4].0, "watchdog:e_crash");
        assert_eq!(seen[4].1, w(WatchdogStatus::Warning));
        assert!(seen[4].3.contains("crashed"), "{:?}", seen[4]);
        assert_eq!(seen[5].0, "watchdog:f_hang");
        assert!(seen[5].3.contains("hung"), "{:?}", seen[5]);
        assert_eq!(seen.len(), 6, "the non-executable file is not a watchdog");
    }

    #[tokio::test]
    async fn an_unwritable_work_dir_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = work_dir(dir.path(), 0).await;
        assert_eq!(ok.status(), WatchdogStatus::Ok, "{ok:?}");
        let missing = work_dir(&dir.path().join("gone"), 0).await;
        assert_eq!(missing.status(), WatchdogStatus::Error);
        let huge = work_dir(dir.path(), u64::MAX).await;
        assert_eq!(huge.status(), WatchdogStatus::Warning);
    }
}
