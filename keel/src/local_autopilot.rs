//! `keel-local --autopilot`: the agents run as OS processes (`keel-local agent …`) supervised
//! by the `process` repair driver, so that a repair really restarts, wipes or removes one;
//! the repair service runs beside the master. Each agent gets a demo watchdog (`disk`) that
//! errors while its work dir holds a `demo-fault` file: a Reboot keeps the file (the fault
//! persists), a Reimage wipes it (the machine recovers) — what `--fail-agent` shows. A demo
//! manifest (`hello`, a heartbeat process) is rolled out over the agents one per unit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autopilot::device_manager::device_manager_beside;
use autopilot::repair_driver::{MachineProcess, ProcessDriver};
use autopilot::repair_service::{RepairService, REPAIR_SERVICE_ID};
use libactor::{http_client, Node, Upid};
use slave::containerizer::IsolationMode;

use crate::operator_client::OperatorAuth;

/// How long an agent process has to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Errors while the agent's work dir (put in place of `WORK_DIR`) holds `demo-fault`.
const DEMO_WATCHDOG: &str = r#"#!/bin/sh
if [ -e "WORK_DIR/demo-fault" ]; then echo "I/O errors (demo fault)"; exit 2; fi
echo "disk ok"
"#;

/// How to start the agent processes.
#[derive(Debug, Clone)]
pub struct AgentProcesses {
    /// The binary to run as `<binary> agent …` (keel-local itself).
    pub binary: PathBuf,
    /// The master they register with.
    pub master: Upid,
    /// `{work_dir}/agent-{n}` is agent n's work dir.
    pub work_dir: PathBuf,
    /// What each offers.
    pub resources: String,
    /// How they isolate executors.
    pub isolation: IsolationMode,
    /// A file with `principal secret` they authenticate with.
    pub credential: Option<PathBuf>,
    /// Time between watchdog rounds.
    pub watchdog_interval: Duration,
    /// On a secure cluster, agent `host`'s TLS directory is `{tls_root}/{host}` (written by
    /// whoever starts them); `None`: the agents run `--insecure`.
    pub tls_root: Option<PathBuf>,
}

/// The agent processes and the repair service that supervises them.
pub struct LocalMachines {
    /// The repair driver holding the agent processes.
    pub driver: ProcessDriver,
    /// Hostnames, agent 0 first.
    pub hosts: Vec<String>,
    work_dirs: Vec<PathBuf>,
}

impl LocalMachines {
    /// Starts `count` agent processes and a repair service for them on `node` (one whose
    /// identity has the `repair` role, on a secure cluster).
    pub async fn start(
        node: &Node,
        count: usize,
        spec: &AgentProcesses,
    ) -> Result<LocalMachines, std::io::Error> {
        let driver = ProcessDriver::new(STOP_GRACE);
        let mut machines = LocalMachines {
            driver: driver.clone(),
            hosts: Vec::new(),
            work_dirs: Vec::new(),
        };
        for i in 0..count {
            let host = format!("local-agent-{i}");
            let work = spec.work_dir.join(format!("agent-{i}"));
            let watchdogs = spec.work_dir.join("watchdogs").join(format!("agent-{i}"));
            write_demo_watchdog(&watchdogs, &work)?;
            let process = agent_process(spec, &host, &work, &watchdogs);
            driver.start(&host, process).await?;
            machines.hosts.push(host);
            machines.work_dirs.push(work);
        }
        let dm = device_manager_beside(&spec.master)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut repair = RepairService::new(dm, Arc::new(driver));
        if let Some(path) = &spec.credential {
            let credential = authentication::Credential::from_file(path)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            repair = repair.with_credential(credential);
        }
        node.spawn(REPAIR_SERVICE_ID, repair)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(machines)
    }

    /// Makes agent `n`'s demo watchdog fail until the machine is reimaged.
    pub fn inject_fault(&self, n: usize) -> std::io::Result<&str> {
        let (Some(host), Some(work)) = (self.hosts.get(n), self.work_dirs.get(n)) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("there is no agent {n}"),
            ));
        };
        std::fs::write(
            work.join("demo-fault"),
            b"injected by keel-local --fail-agent\n",
        )?;
        Ok(host)
    }

    /// Stops every agent process.
    pub async fn stop(&self) {
        self.driver.stop_all().await;
    }
}

impl Drop for LocalMachines {
    /// keel-local leaving on an error must not leave its agent processes behind.
    fn drop(&mut self) {
        self.driver.kill_all_now();
    }
}

fn write_demo_watchdog(dir: &Path, work: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let script = DEMO_WATCHDOG.replace("WORK_DIR", &work.display().to_string());
    let path = dir.join("disk");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}

fn agent_process(
    spec: &AgentProcesses,
    host: &str,
    work: &Path,
    watchdogs: &Path,
) -> MachineProcess {
    let mut args: Vec<std::ffi::OsString> = vec!["agent".into()];
    let mut flag = |name: &str, value: std::ffi::OsString| {
        args.push(name.into());
        args.push(value);
    };
    flag("--master", spec.master.as_str().into());
    flag("--ip", "127.0.0.1".into());
    flag("--port", "0".into());
    flag("--hostname", host.into());
    flag("--work-dir", work.into());
    flag("--resources", spec.resources.clone().into());
    flag("--isolation", spec.isolation.to_string().into());
    flag("--watchdog-dir", watchdogs.into());
    flag(
        "--watchdog-interval-seconds",
        spec.watchdog_interval.as_secs_f64().to_string().into(),
    );
    if let Some(credential) = &spec.credential {
        flag("--credential", credential.into());
    }
    match &spec.tls_root {
        Some(root) => flag("--tls-dir", root.join(host).into()),
        None => args.push("--insecure".into()),
    }
    args.push("--autopilot".into());
    MachineProcess {
        program: spec.binary.clone(),
        args,
        // The flag above decides, whatever this process inherited.
        env: vec![(
            "KEEL_INSECURE".into(),
            spec.tls_root.is_none().to_string().into(),
        )],
        work_dir: work.to_owned(),
        log: Some(spec.work_dir.join(format!("{host}.log"))),
    }
}

/// Prints each new audit record of the device manager beside `master` as it appears, until
/// aborted.
pub fn print_audit(master: Upid) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut since = 0u64;
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        loop {
            interval.tick().await;
            let path = format!("/device-manager/audit?since={since}");
            let Ok(v) = libactor::http_client::get_json(master.address(), &path).await else {
                continue;
            };
            for r in v["audit"].as_array().into_iter().flatten() {
                since = since.max(r["seq"].as_u64().unwrap_or(0));
                println!(
                    "  autopilot: {} ({}; by {})",
                    r["what"].as_str().unwrap_or_default(),
                    r["why"].as_str().unwrap_or_default(),
                    r["actor"].as_str().unwrap_or_default(),
                );
            }
        }
    })
}

/// The demo manifest: one process writing a heartbeat file every second.
const DEMO_MANIFEST: &str = r#"
name = "hello"
version = "1"
machine_type = "default"

[[files]]
path = "bin/hello.sh"
source = "hello.sh"
executable = true

[[processes]]
name = "hello"
argv = ["sh", "bin/hello.sh"]
"#;
const DEMO_SCRIPT: &str = "while :; do date > heartbeat; sleep 1; done\n";

/// Uploads the demo manifest's file to the deployment server beside `master` and starts its
/// rollout over the agents, one per scale unit.
pub async fn start_demo_rollout(
    master: &Upid,
    dir: &Path,
    operator: &OperatorAuth,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("hello.sh"), DEMO_SCRIPT).map_err(|e| e.to_string())?;
    let mut parsed = autopilot::manifest::parse(DEMO_MANIFEST).map_err(|e| e.to_string())?;
    let contents =
        autopilot::manifest::read_sources(&mut parsed, dir).map_err(|e| e.to_string())?;
    for data in contents {
        let reply = operator
            .post(master.address(), "/deployment/files", &[], data.into())
            .await
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("upload: {}", String::from_utf8_lossy(&reply.body)));
        }
    }
    let body = serde_json::json!({
        "manifest": autopilot::manifest::to_json(&parsed.manifest),
        "unit_size": 1,
        "healthy_threshold": 1.0,
    });
    let reply = operator
        .post(
            master.address(),
            "/device-manager/deploy",
            &[],
            body.to_string().into(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("deploy: {}", String::from_utf8_lossy(&reply.body)));
    }
    Ok(())
}

/// Waits (checking every 100 ms, up to `limit`) until the device manager beside `master` knows
/// `n` machines (each has reported from its registered agent); whether it does.
pub async fn wait_for_machines(master: &Upid, n: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        let known = http_client::get_json(master.address(), "/device-manager/machines")
            .await
            .ok()
            .and_then(|v| v["machines"].as_array().map(Vec::len));
        if known == Some(n) {
            return true;
        }
    }
    false
}

/// Waits (checking every half second, up to `limit`) until the rollout beside `master` has
/// ended; its final state, or `None` if it had not.
pub async fn wait_for_rollout(master: &Upid, limit: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        let Ok(v) = http_client::get_json(master.address(), "/device-manager/rollout").await else {
            continue;
        };
        if let Some(done @ ("Succeeded" | "RolledBack")) = v["rollout"]["state"].as_str() {
            return Some(done.to_owned());
        }
    }
    None
}
