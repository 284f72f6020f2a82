//! The `process` repair driver: the machines are agent processes this driver started and
//! supervises (a local cluster, or a test's). Reboot stops the agent (SIGTERM, then SIGKILL
//! after a grace period) and what its manifest left running, and starts it again; Reimage also wipes its work dir first, so it
//! comes back as a new machine with nothing of its past; Replace stops it for good and lists
//! it for replacement.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use protos::autopilot::{RepairAction, RepairOrder};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::RepairDriver;
use crate::machine_gate::GateFuture;

/// How to start one machine's agent.
#[derive(Debug, Clone)]
pub struct MachineProcess {
    /// The agent's executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment added to this process's.
    pub env: Vec<(OsString, OsString)>,
    /// Its work dir (wiped by Reimage).
    pub work_dir: PathBuf,
    /// Where its stdout and stderr go (appended; none: discarded).
    pub log: Option<PathBuf>,
}

struct Supervised {
    spec: MachineProcess,
    child: Option<Child>,
}

/// Supervises agent processes by hostname and repairs them.
#[derive(Clone)]
pub struct ProcessDriver {
    machines: Arc<Mutex<BTreeMap<String, Supervised>>>,
    replaced: Arc<Mutex<Vec<String>>>,
    stop_grace: Duration,
}

impl ProcessDriver {
    /// A driver that gives an agent `stop_grace` to stop on SIGTERM before killing it.
    pub fn new(stop_grace: Duration) -> ProcessDriver {
        ProcessDriver {
            machines: Arc::default(),
            replaced: Arc::default(),
            stop_grace,
        }
    }

    /// Starts `hostname`'s agent and supervises it from now on; returns its OS pid.
    pub async fn start(&self, hostname: &str, spec: MachineProcess) -> std::io::Result<u32> {
        let child = spawn(&spec)?;
        let pid = child.id().unwrap_or(0);
        let old = self.machines.lock().await.insert(
            hostname.to_owned(),
            Supervised {
                spec,
                child: Some(child),
            },
        );
        if let Some(mut old) = old {
            stop(&mut old, self.stop_grace).await;
        }
        Ok(pid)
    }

    /// The OS pid of `hostname`'s agent, while it runs.
    pub async fn pid(&self, hostname: &str) -> Option<u32> {
        let machines = self.machines.lock().await;
        machines.get(hostname)?.child.as_ref()?.id()
    }

    /// Hostnames removed by Replace, oldest first.
    pub async fn replaced(&self) -> Vec<String> {
        self.replaced.lock().await.clone()
    }

    /// Stops every agent (the end of a local cluster).
    pub async fn stop_all(&self) {
        let mut machines = self.machines.lock().await;
        for m in machines.values_mut() {
            stop(m, self.stop_grace).await;
        }
    }

    /// Kills every agent at once, without waiting (a supervisor that is itself going away on
    /// an error path); a repair under way keeps its own agent.
    pub fn kill_all_now(&self) {
        if let Ok(mut machines) = self.machines.try_lock() {
            for m in machines.values_mut() {
                if let Some(child) = m.child.as_mut() {
                    let _ = child.start_kill();
                }
            }
        }
    }

    async fn repair(&self, hostname: String, action: RepairAction) -> Result<String, String> {
        let mut machines = self.machines.lock().await;
        let Some(machine) = machines.get_mut(&hostname) else {
            return Err(format!(
                "{hostname} is not a machine this driver supervises"
            ));
        };
        stop(machine, self.stop_grace).await;
        // As a machine's reboot would: nothing the agent ran survives it (an agent that did
        // not stop in time left its manifest's processes behind).
        let leftovers =
            crate::leftover_processes::stop_leftovers(&machine.spec.work_dir, self.stop_grace)
                .await;
        if leftovers > 0 {
            tracing::info!(%hostname, leftovers, "stopped processes the agent left running");
        }
        match action {
            RepairAction::DoNothing => Err("DoNothing is not carried out".into()),
            RepairAction::Replace => {
                machines.remove(&hostname);
                self.replaced.lock().await.push(hostname.clone());
                Ok(format!("{hostname} stopped and listed for replacement"))
            }
            RepairAction::Reboot | RepairAction::Reimage => {
                let dir = machine.spec.work_dir.clone();
                if action == RepairAction::Reimage {
                    wipe(&dir)
                        .await
                        .map_err(|e| format!("cannot wipe {}: {e}", dir.display()))?;
                }
                let child = spawn(&machine.spec).map_err(|e| format!("cannot restart: {e}"))?;
                let pid = child.id().unwrap_or(0);
                machine.child = Some(child);
                let wiped = if action == RepairAction::Reimage {
                    format!(", {} wiped", dir.display())
                } else {
                    String::new()
                };
                Ok(format!("agent restarted as pid {pid}{wiped}"))
            }
        }
    }
}

impl RepairDriver for ProcessDriver {
    fn name(&self) -> &'static str {
        "process"
    }

    fn carry_out(&self, order: &RepairOrder) -> GateFuture<Result<String, String>> {
        let driver = self.clone();
        let (hostname, action) = (order.hostname.clone(), order.action());
        Box::pin(async move { driver.repair(hostname, action).await })
    }
}

fn spawn(spec: &MachineProcess) -> std::io::Result<Child> {
    std::fs::create_dir_all(&spec.work_dir)?;
    let (stdout, stderr) = match &spec.log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    // The machine's agent is told to stop (SIGTERM) when the process driving it dies without
    // dropping it (a crash, a failed test ending its process): no orphaned agents.
    // SAFETY: prctl(2) is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Asks the agent to stop, and kills it if it has not within `grace`.
async fn stop(machine: &mut Supervised, grace: Duration) {
    let Some(mut child) = machine.child.take() else {
        return;
    };
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on our own child's pid, which `child` has not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Empties `dir`, keeping the directory itself.
async fn wipe(dir: &std::path::Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    tokio::fs::create_dir_all(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(work_dir: PathBuf) -> MachineProcess {
        MachineProcess {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "touch $0/alive; exec sleep 60".into(),
                work_dir.clone().into(),
            ],
            env: Vec::new(),
            work_dir,
            log: None,
        }
    }

    fn order(action: RepairAction) -> RepairOrder {
        RepairOrder {
            machine_id: "host-1".into(),
            hostname: "host-1".into(),
            action: action as i32,
        }
    }

    fn alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid as i32, 0) == 0 }
    }

    #[tokio::test]
    async fn reboot_restarts_reimage_wipes_and_replace_removes() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("agent");
        let driver = ProcessDriver::new(Duration::from_secs(5));
        let first = driver.start("host-1", sleeper(work.clone())).await.unwrap();
        std::fs::write(work.join("checkpoint"), "state").unwrap();

        let done = driver
            .carry_out(&order(RepairAction::Reboot))
            .await
            .unwrap();
        let second = driver.pid("host-1").await.unwrap();
        assert_ne!(first, second, "{done}");
        assert!(!alive(first), "the old agent is gone");
        assert!(
            work.join("checkpoint").exists(),
            "a reboot keeps the work dir"
        );

        driver
            .carry_out(&order(RepairAction::Reimage))
            .await
            .unwrap();
        let third = driver.pid("host-1").await.unwrap();
        assert!(!alive(second));
        assert!(
            !work.join("checkpoint").exists(),
            "a reimage wipes the work dir"
        );

        driver
            .carry_out(&order(RepairAction::Replace))
            .await
            .unwrap();
        assert!(!alive(third));
        assert_eq!(driver.pid("host-1").await, None);
        assert_eq!(driver.replaced().await, ["host-1"]);
        let unknown = driver.carry_out(&order(RepairAction::Reboot)).await;
        assert!(unknown.is_err());
    }
}
