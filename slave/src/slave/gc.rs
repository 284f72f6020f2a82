//! The agent's side of sandbox collection ([`crate::sandbox_gc`]): finished runs' sandboxes
//! queue with the time they finished; one timer removes each once `--gc_delay` has passed,
//! and a disk watch every `--disk_watch_interval` removes earlier those the disk's usage says
//! it cannot keep. Removal runs on the blocking pool; Mesos's `gc/*` metrics count it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use libactor::metrics::{Counter, Gauge};
use libactor::{Context, Timer};

use super::Slave;
use crate::sandbox_gc::{disk_usage, run_dirs, SandboxGc};

/// The queue of finished sandboxes, its timer and its metrics.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    queue: SandboxGc,
    /// Armed for the oldest queued sandbox while any is queued.
    timer: Option<Timer>,
    succeeded: Counter,
    failed: Counter,
    pending: Gauge,
}

impl Collector {
    /// Registers Mesos's `gc/*` metrics.
    pub(crate) fn register(&mut self, m: &libactor::Metrics) {
        self.succeeded = m.counter("gc/path_removals_succeeded");
        self.failed = m.counter("gc/path_removals_failed");
        self.pending = m.gauge("gc/path_removals_pending");
    }
}

impl Slave {
    /// Queues a finished run's sandbox for removal after `--gc_delay` (or sooner if the disk
    /// fills).
    pub(super) fn schedule_gc(&mut self, ctx: &mut Context<Self>, sandbox: PathBuf) {
        let now = ctx.node().clock().now();
        self.gc.queue.schedule(sandbox, now);
        self.gc.pending.add(1);
        if self.gc.timer.is_none() {
            self.arm_gc(ctx);
        }
    }

    /// Starts the periodic disk watch, and queues the sandboxes an earlier run of the agent
    /// left (found off the actor thread; aged by when they last changed), except those of
    /// executors it recovered.
    pub(super) fn start_gc(&mut self, ctx: &mut Context<Self>) {
        ctx.delay(self.config.gc.disk_watch_interval, Self::watch_disk);
        let work_dir = self.config.work_dir.clone();
        let found = async move {
            tokio::task::spawn_blocking(move || run_dirs(&work_dir))
                .await
                .unwrap_or_default()
        };
        ctx.defer(found, |s: &mut Slave, ctx, found| {
            let mut taken: HashSet<PathBuf> = s.gc.queue.paths().cloned().collect();
            for framework in s.frameworks.values() {
                taken.extend(framework.executors.values().map(|e| e.sandbox.clone()));
            }
            let now = ctx.node().clock().now();
            let mut queued = 0;
            for (path, age) in found.into_iter().filter(|(p, _)| !taken.contains(p)) {
                let finished = now.checked_sub(age.min(s.config.gc.delay)).unwrap_or(now);
                s.gc.queue.schedule(path, finished);
                queued += 1;
            }
            if queued > 0 {
                tracing::info!(
                    sandboxes = queued,
                    "queued an earlier run's sandboxes for collection"
                );
                s.gc.pending.add(queued);
                if let Some(timer) = s.gc.timer.take() {
                    timer.cancel();
                }
                s.arm_gc(ctx);
            }
        });
    }

    fn arm_gc(&mut self, ctx: &mut Context<Self>) {
        let Some(oldest) = self.gc.queue.oldest() else {
            self.gc.timer = None;
            return;
        };
        let now = ctx.node().clock().now();
        let due = (oldest + self.config.gc.delay).saturating_duration_since(now);
        self.gc.timer = Some(ctx.delay(due, |s: &mut Slave, ctx| {
            s.gc.timer = None;
            s.collect(ctx, s.config.gc.delay);
            s.arm_gc(ctx);
        }));
    }

    fn watch_disk(&mut self, ctx: &mut Context<Self>) {
        let policy = self.config.gc;
        match disk_usage(&self.config.work_dir) {
            Some(usage) => {
                let age = policy.max_age(usage);
                if age < policy.delay && !self.gc.queue.is_empty() {
                    tracing::info!(
                        usage = format_args!("{:.1}%", usage * 100.0),
                        max_age = ?age,
                        "disk filling: pruning sandboxes sooner than --gc-delay"
                    );
                    self.collect(ctx, age);
                }
            }
            None => {
                tracing::warn!(work_dir = %self.config.work_dir.display(), "disk usage unreadable")
            }
        }
        ctx.delay(policy.disk_watch_interval, Self::watch_disk);
    }

    /// Removes every queued sandbox that finished at least `age` ago.
    fn collect(&mut self, ctx: &mut Context<Self>, age: Duration) {
        let now = ctx.node().clock().now();
        let paths = self.gc.queue.take_older_than(age, now);
        if paths.is_empty() {
            return;
        }
        self.gc.pending.add(-(paths.len() as i64));
        let (succeeded, failed) = (self.gc.succeeded.clone(), self.gc.failed.clone());
        let removal = tokio::task::spawn_blocking(move || {
            let mut removed = Vec::with_capacity(paths.len());
            for path in paths {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => succeeded.inc(),
                    // Gone already (a framework's removal, an operator): nothing to count.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => succeeded.inc(),
                    Err(e) => {
                        failed.inc();
                        tracing::warn!(sandbox = %path.display(), error = %e, "sandbox not removed");
                        continue;
                    }
                }
                removed.push(path);
            }
            removed
        });
        ctx.defer(removal, |s: &mut Slave, _, removed| {
            if let Ok(removed) = removed {
                s.remove_emptied_parents(&removed);
            }
        });
    }

    /// Removes what removing `runs` left empty: their executors' directories, and the
    /// directories of frameworks no longer on the agent (with the file naming their owner).
    /// On the actor, where no sandbox is being made in a directory at the same time: the
    /// agent makes sandboxes only for executors and frameworks it holds, and those are kept.
    fn remove_emptied_parents(&mut self, runs: &[PathBuf]) {
        let live: HashSet<&std::path::Path> = self
            .frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .flat_map(|e| e.sandbox.ancestors().skip(1).take(4))
            .collect();
        let agent = self.id.as_deref().unwrap_or("unregistered");
        let live_frameworks: HashSet<PathBuf> = self
            .frameworks
            .keys()
            .filter_map(|f| {
                let any = crate::executor::sandbox_path(&self.config.work_dir, agent, f, "x", 0);
                crate::sandbox_owner::framework_dir(&any).map(std::path::Path::to_owned)
            })
            .collect();
        for run in runs {
            // run = {framework}/executors/{executor}/runs/{n}
            let Some(framework) = crate::sandbox_owner::framework_dir(run) else {
                continue;
            };
            for dir in run.ancestors().skip(1).take(3) {
                if live.contains(dir) || std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
            if !live.contains(framework) && !live_frameworks.contains(framework) {
                remove_framework_dir(framework);
            }
        }
    }
}

/// Removes a framework's directory if nothing but its owner file is left in it.
fn remove_framework_dir(dir: &std::path::Path) {
    let only_owner = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .all(|e| e.file_name() == crate::sandbox_owner::OWNER_FILE)
    });
    if only_owner {
        let _ = std::fs::remove_file(dir.join(crate::sandbox_owner::OWNER_FILE));
        let _ = std::fs::remove_dir(dir);
    }
}
