//! Autopilot's daemons as a test starts them: `keel-master --autopilot` and `keel-slave
//! --autopilot` on 127.0.0.1 with ephemeral ports, plus each test's own flags. The binaries'
//! paths come from the calling test (`env!("CARGO_BIN_EXE_…")` exists only there). Every
//! daemon runs mutual TLS on a certificate from the test binary's [`test_ca::shared`] CA: the
//! master as `master`, the agent of machine `host` as `agent-{host}`.

use std::path::Path;

use authentication::roles;
use libactor::Upid;

use crate::daemon::Daemon;
use crate::test_ca;

/// `keel-master --autopilot` with its registry under `work_dir` and `extra` flags; the daemon
/// and the master's pid.
pub async fn autopilot_master(binary: &str, work_dir: &Path, extra: &[&str]) -> (Daemon, Upid) {
    let work = work_dir.to_str().expect("a UTF-8 work dir");
    let tls = master_tls_arg();
    let mut args = vec![
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--work-dir",
        work,
        "--autopilot",
        "--tls-dir",
        &tls,
    ];
    args.extend_from_slice(extra);
    let (daemon, pid) = Daemon::start(binary, &args).await;
    (daemon, pid.parse().expect("the master prints its pid"))
}

/// `keel-slave --autopilot` of machine `host` following `master` (a pid, `host:port` or a
/// `zk://` URL), its work dir `work_dir`, `cpus:1;mem:256`, watchdog rounds every 0.2 s, and
/// `extra` flags.
pub async fn autopilot_agent(
    binary: &str,
    master: &str,
    host: &str,
    work_dir: &Path,
    extra: &[&str],
) -> Daemon {
    let mut args = autopilot_agent_args(master, host, work_dir);
    args.extend(["--resources", "cpus:1;mem:256"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(binary, &args).await.0
}

/// A master's `--tls-dir` from the shared test CA.
pub fn master_tls_arg() -> String {
    test_ca::shared().tls_arg("master", &[roles::MASTER])
}

/// The flags of an Autopilot agent of machine `host` following `master`, its work dir
/// `work_dir`, on an ephemeral port, watchdog rounds every 0.2 s (no `--resources`), on its
/// certificate from the shared test CA.
pub fn autopilot_agent_args(master: &str, host: &str, work_dir: &Path) -> Vec<String> {
    let work = work_dir.to_str().expect("a UTF-8 work dir");
    let tls = test_ca::shared().tls_arg(&format!("agent-{host}"), &[roles::AGENT]);
    [
        "--master",
        master,
        "--ip",
        "127.0.0.1",
        "--port",
        "0",
        "--hostname",
        host,
        "--work-dir",
        work,
        "--isolation",
        "posix",
        "--autopilot",
        "--watchdog-interval-seconds",
        "0.2",
        "--tls-dir",
        &tls,
    ]
    .map(String::from)
    .to_vec()
}

/// Whether `pid` runs: it exists and is not a zombie waiting for its parent to reap it.
pub fn runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 1..)?.to_owned();
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}
