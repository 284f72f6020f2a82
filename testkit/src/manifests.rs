//! Manifests for Autopilot tests: one shell script run as the manifest's one process.

use std::path::{Path, PathBuf};

use authentication::roles;

/// Writes manifest `version` of `app` for `machine_type` under `dir/v{version}` with its
/// script as `app.sh` (installed as `bin/app.sh`, run with `VERSION` set); returns the
/// manifest's path.
pub fn write_manifest(dir: &Path, machine_type: &str, version: &str, script: &str) -> PathBuf {
    write_manifest_with_watchdog(dir, machine_type, version, script, None)
}

/// [`write_manifest`], the manifest also shipping `watchdog` (a shell script) as the custom
/// watchdog `watchdogs/check`.
pub fn write_manifest_with_watchdog(
    dir: &Path,
    machine_type: &str,
    version: &str,
    script: &str,
    watchdog: Option<&str>,
) -> PathBuf {
    let dir = dir.join(format!("v{version}"));
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(dir.join("app.sh"), script).expect("script");
    let watchdog_file = match watchdog {
        Some(body) => {
            std::fs::write(dir.join("check"), format!("#!/bin/sh\n{body}\n")).expect("watchdog");
            "\n[[files]]\npath = \"watchdogs/check\"\nsource = \"check\"\nexecutable = true\n"
        }
        None => "",
    };
    let text = format!(
        r#"
name = "app"
version = "{version}"
machine_type = "{machine_type}"

[[files]]
path = "bin/app.sh"
source = "app.sh"
executable = true
{watchdog_file}
[[processes]]
name = "app"
argv = ["sh", "bin/app.sh"]
env = {{ VERSION = "{version}" }}
"#
    );
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).expect("manifest");
    path
}

/// Records the running process (`$VERSION $$` in `running`), then runs until stopped.
pub const RECORDS_AND_RUNS: &str = "echo \"$VERSION $$\" > running\nexec sleep 600\n";

/// The TLS directory of `ops`, an operator and framework, from the shared test CA: what
/// `keelctl` runs with in Autopilot tests.
pub fn operator_tls_dir() -> PathBuf {
    crate::test_ca::shared().tls_dir("ops", &[roles::OPERATOR, roles::FRAMEWORK])
}

/// `keelctl deploy` of `manifest` to the master at `master` (`host:port` or `zk://…`) in units
/// of `unit_size`, every machine of a unit Healthy to go on, following it to its end unless
/// not `wait`; whether it succeeded, and what it printed.
pub fn keelctl_deploy(
    keelctl: &str,
    master: &str,
    manifest: &Path,
    unit_size: u32,
    wait: bool,
) -> (bool, String) {
    let out = std::process::Command::new(keelctl)
        .env("KEEL_TLS_DIR", operator_tls_dir())
        .env_remove("KEEL_INSECURE")
        .args(["--master", master, "deploy", "--healthy-threshold", "100"])
        .args(["--unit-size", &unit_size.to_string()])
        .args(if wait { &[][..] } else { &["--no-wait"][..] })
        .arg(manifest)
        .output()
        .expect("keelctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Version and pid in `running` of `version` under an agent's work dir.
pub fn running(agent_work_dir: &Path, version: &str) -> Option<(String, i32)> {
    let path = agent_work_dir
        .join("manifests/app")
        .join(version)
        .join("running");
    let text = std::fs::read_to_string(path).ok()?;
    let (v, pid) = text.trim().split_once(' ')?;
    Some((v.to_owned(), pid.parse().ok()?))
}
