//! Which finished sandboxes the agent removes, and when (Mesos's garbage collector): each is
//! kept for `--gc_delay` after its executor ended, and for less when the disk fills: every
//! `--disk_watch_interval` the agent prunes those older than
//! `gc_delay × max(0, 1 − gc_disk_headroom − disk usage)`.
//!
//! One ordered queue and one timer serve every sandbox, so a busy agent holds a path per
//! finished run, not a timer per run for a day.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How finished sandboxes are collected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcPolicy {
    /// Longest a finished sandbox is kept (`--gc_delay`).
    pub delay: Duration,
    /// Fraction of the disk to keep free (`--gc_disk_headroom`, 0.0–1.0).
    pub disk_headroom: f64,
    /// How often the disk's usage is checked (`--disk_watch_interval`).
    pub disk_watch_interval: Duration,
}

/// Default `--gc_delay` (Mesos keeps sandboxes a week; an agent here keeps them a day).
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(24 * 3600);
/// Mesos's default `--gc_disk_headroom`.
pub const DEFAULT_DISK_HEADROOM: f64 = 0.1;
/// Mesos's default `--disk_watch_interval`.
pub const DEFAULT_DISK_WATCH_INTERVAL: Duration = Duration::from_secs(60);

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            delay: DEFAULT_GC_DELAY,
            disk_headroom: DEFAULT_DISK_HEADROOM,
            disk_watch_interval: DEFAULT_DISK_WATCH_INTERVAL,
        }
    }
}

impl GcPolicy {
    /// The oldest a finished sandbox may be when `usage` (0.0–1.0) of the disk is used.
    pub fn max_age(&self, usage: f64) -> Duration {
        let usage = if usage.is_finite() {
            usage.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.delay
            .mul_f64((1.0 - self.disk_headroom.clamp(0.0, 1.0) - usage).max(0.0))
    }
}

/// Finished sandboxes waiting for removal, in the order they finished.
#[derive(Debug, Default)]
pub struct SandboxGc {
    /// By when the sandbox finished (and a sequence number: many finish at one instant).
    queue: BTreeMap<(Instant, u64), PathBuf>,
    next: u64,
}

impl SandboxGc {
    /// An empty queue.
    pub fn new() -> SandboxGc {
        SandboxGc::default()
    }

    /// Queues `path`, whose executor finished at `finished`.
    pub fn schedule(&mut self, path: PathBuf, finished: Instant) {
        self.queue.insert((finished, self.next), path);
        self.next += 1;
    }

    /// Takes every path that finished at least `age` before `now`, oldest first.
    pub fn take_older_than(&mut self, age: Duration, now: Instant) -> Vec<PathBuf> {
        let Some(cutoff) = now.checked_sub(age) else {
            return Vec::new();
        };
        let keep = self.queue.split_off(&(cutoff, u64::MAX));
        let due = std::mem::replace(&mut self.queue, keep);
        debug_assert!(self.queue.keys().all(|(finished, _)| *finished > cutoff));
        due.into_values().collect()
    }

    /// When the oldest queued path finished.
    pub fn oldest(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(finished, _)| *finished)
    }

    /// The paths waiting, oldest first.
    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.queue.values()
    }

    /// Paths waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Every executor run's sandbox under `work_dir`
/// (`slaves/*/frameworks/*/executors/*/runs/*`), with how long ago it last changed: what an
/// earlier run of the agent left for collection.
pub fn run_dirs(work_dir: &std::path::Path) -> Vec<(PathBuf, Duration)> {
    fn children(dir: &std::path::Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
    let mut level = vec![work_dir.join("slaves")];
    for step in ["", "frameworks", "", "executors", "", "runs", ""] {
        level = level
            .iter()
            .flat_map(|dir| {
                if step.is_empty() {
                    children(dir)
                } else {
                    vec![dir.join(step)]
                }
            })
            .collect();
    }
    let now = std::time::SystemTime::now();
    level
        .into_iter()
        .map(|dir| {
            let age = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            (dir, age)
        })
        .collect()
}

/// The fraction (0.0–1.0) of the filesystem holding `path` that is in use, as `df` counts it
/// (blocks not available to unprivileged users count as used); `None` if it cannot be read.
pub fn disk_usage(path: &std::path::Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs(3) with a valid C string and a zeroed out-parameter of the right type.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 || stat.f_blocks == 0 {
        return None;
    }
    Some(1.0 - stat.f_bavail as f64 / stat.f_blocks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leave_in_the_order_they_finished_once_old_enough() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut gc = SandboxGc::new();
        gc.schedule("/a".into(), t0);
        gc.schedule("/b".into(), t0);
        gc.schedule("/c".into(), t0 + s(10));
        assert_eq!(gc.oldest(), Some(t0));
        assert!(gc.take_older_than(s(5), t0 + s(4)).is_empty());
        assert_eq!(
            gc.take_older_than(s(5), t0 + s(5)),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(gc.len(), 1);
        assert_eq!(gc.oldest(), Some(t0 + s(10)));
        assert_eq!(gc.take_older_than(Duration::ZERO, t0 + s(10)).len(), 1);
        assert!(gc.is_empty());
    }

    #[test]
    fn a_fuller_disk_shortens_the_age_as_mesos_computes_it() {
        let policy = GcPolicy {
            delay: Duration::from_secs(1000),
            disk_headroom: 0.1,
            disk_watch_interval: DEFAULT_DISK_WATCH_INTERVAL,
        };
        assert_eq!(policy.max_age(0.0), Duration::from_secs(900));
        assert_eq!(policy.max_age(0.5), Duration::from_secs(400));
        assert_eq!(policy.max_age(0.95), Duration::ZERO);
        assert_eq!(policy.max_age(f64::NAN), Duration::ZERO);
    }

    #[test]
    fn run_dirs_are_found_at_their_depth_only() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir
            .path()
            .join("slaves/a1/frameworks/f1/executors/e1/runs/3");
        std::fs::create_dir_all(run.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("slaves/a1/frameworks/f2/executors")).unwrap();
        std::fs::write(
            dir.path()
                .join("slaves/a1/frameworks/f1/executors/e1/runs/file"),
            "",
        )
        .unwrap();
        let found: Vec<PathBuf> = run_dirs(dir.path()).into_iter().map(|(p, _)| p).collect();
        assert_eq!(found, vec![run]);
    }

    #[test]
    fn this_machines_disk_usage_is_a_fraction() {
        let usage = disk_usage(std::path::Path::new("/tmp/does/not/exist")).unwrap();
        assert!((0.0..=1.0).contains(&usage), "{usage}");
    }
}
