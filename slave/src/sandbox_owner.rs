//! Whose sandboxes a framework's directory holds: its user, written into
//! `{work_dir}/slaves/{agent}/frameworks/{framework}/owner` when the agent makes the first
//! sandbox there (out of reach of the tasks, whose sandboxes lie further down), and read by
//! `/files` to apply `access_sandboxes` (Mesos's ACL whose object is the user). The file
//! outlives the agent and its executors, so a sandbox kept for `--gc_delay` after its framework
//! ended still has an owner.

use std::path::{Component, Path};

/// The file in a framework's directory naming its user.
pub const OWNER_FILE: &str = "owner";

/// Records `user` as the owner of the framework directory `framework_dir` (made if needed),
/// unless one is recorded already.
pub fn record(framework_dir: &Path, user: &str) -> std::io::Result<()> {
    let file = framework_dir.join(OWNER_FILE);
    if file.exists() {
        return Ok(());
    }
    crate::checkpoint::write_atomic(&file, user.as_bytes()).map_err(std::io::Error::other)
}

/// The framework directory of a sandbox `{…}/frameworks/{framework}/executors/{e}/runs/{n}`.
pub fn framework_dir(sandbox: &Path) -> Option<&Path> {
    sandbox.ancestors().nth(4)
}

/// Whose sandboxes `path` (resolved, under `root` = `{work_dir}/slaves`) lies among:
/// `None` above any framework's directory (the agent and framework lists), `Some("")` in a
/// framework directory with no owner recorded, else the recorded user.
pub fn of(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let mut parts = rest.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n),
        _ => None,
    });
    let agent = parts.next()?;
    if parts.next()? != "frameworks" {
        return None;
    }
    let framework = parts.next()?;
    let file = root
        .join(agent)
        .join("frameworks")
        .join(framework)
        .join(OWNER_FILE);
    Some(
        std::fs::read_to_string(file)
            .map(|user| user.trim().to_owned())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_found_from_any_path_below_a_framework() {
        let root = tempfile::tempdir().unwrap();
        let sandbox = root.path().join("S1/frameworks/F1/executors/e/runs/0");
        let dir = framework_dir(&sandbox).unwrap();
        assert_eq!(dir, root.path().join("S1/frameworks/F1"));
        record(dir, "alice").unwrap();
        record(dir, "mallory").unwrap();
        assert_eq!(
            of(root.path(), &sandbox.join("stdout")).as_deref(),
            Some("alice")
        );
        assert_eq!(of(root.path(), dir).as_deref(), Some("alice"));
        assert_eq!(of(root.path(), &root.path().join("S1/frameworks")), None);
        assert_eq!(
            of(root.path(), &root.path().join("S1/frameworks/F2/executors")).as_deref(),
            Some("")
        );
    }
}
