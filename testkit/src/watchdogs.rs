//! Custom watchdogs for Autopilot tests: shell scripts installed as executables in a
//! `--watchdog-dir`.

use std::path::{Path, PathBuf};

/// Writes `script` as the executable watchdog `name` in `dir` (created if missing).
pub fn install_watchdog(dir: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("watchdog dir");
    let path = dir.join(name);
    std::fs::write(&path, script).expect("watchdog script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("watchdog mode");
    path
}
