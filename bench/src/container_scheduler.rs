//! `keel-bench containers`: how fast one real agent starts isolated containers. A scheduler
//! launches long-running command tasks (`sleep`) with at most `window` of them not yet
//! RUNNING, and records each task's time from its launch to its TASK_RUNNING at the
//! scheduler. With a window of 1 that is the launch latency on an idle agent; with the whole
//! count it is a burst.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frameworks::{Scheduler, SchedulerDriver};
use protos::v1::{CommandInfo, Filters, Offer, OfferId, TaskId, TaskInfo, TaskState, TaskStatus};
use resources::Resources;

/// What the scheduler measured, shared with the benchmark's driver loop.
#[derive(Debug, Default)]
pub struct ContainerLaunches {
    /// Launch → RUNNING of each task that got there.
    pub latencies: Vec<Duration>,
    /// When the first task was launched and when the last became RUNNING.
    pub first_launch: Option<Instant>,
    /// When the last task became RUNNING.
    pub last_running: Option<Instant>,
    /// Tasks that ended before RUNNING (with the first reason seen).
    pub failed: u64,
    /// The first failure's message.
    pub first_failure: Option<String>,
}

/// Launches `target` `sleep` tasks of `task_resources`, at most `window` awaiting RUNNING.
pub struct ContainerLaunchScheduler {
    target: u64,
    window: u64,
    task_resources: Resources,
    results: Arc<Mutex<ContainerLaunches>>,
    next: u64,
    launched_at: std::collections::HashMap<String, Instant>,
    /// An offer kept while the window is full, to launch from as soon as a task is RUNNING.
    held: Option<Offer>,
}

impl ContainerLaunchScheduler {
    /// A scheduler for `target` tasks in a window of `window`.
    pub fn new(
        target: u64,
        window: u64,
        task_resources: Resources,
        results: Arc<Mutex<ContainerLaunches>>,
    ) -> Self {
        ContainerLaunchScheduler {
            target,
            window: window.max(1),
            task_resources,
            results,
            next: 0,
            launched_at: std::collections::HashMap::new(),
            held: None,
        }
    }

    fn in_flight(&self) -> u64 {
        self.launched_at.len() as u64
    }

    /// Launches as many tasks from `offer` as the window and the offer allow; returns the
    /// offer back if nothing could be launched.
    fn launch_from(&mut self, driver: &mut SchedulerDriver, offer: Offer) -> Option<Offer> {
        let id: OfferId = offer.id.clone()?;
        let mut left = Resources::from_proto(&offer.resources).unwrap_or_default();
        let mut tasks = Vec::new();
        while self.next < self.target && self.in_flight() + (tasks.len() as u64) < self.window {
            let Some(rest) = left.checked_sub(&self.task_resources) else {
                break;
            };
            left = rest;
            self.next += 1;
            tasks.push(TaskInfo {
                name: String::new(),
                task_id: Some(TaskId {
                    value: format!("c{}", self.next),
                }),
                resources: self.task_resources.to_proto(),
                command: Some(CommandInfo {
                    value: "exec sleep 600".into(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if tasks.is_empty() {
            return Some(offer);
        }
        let now = Instant::now();
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        results.first_launch.get_or_insert(now);
        drop(results);
        for t in &tasks {
            if let Some(id) = &t.task_id {
                self.launched_at.insert(id.value.clone(), now);
            }
        }
        driver.launch_tasks(
            &[id],
            tasks,
            Filters {
                refuse_seconds: Some(0.0),
            },
        );
        None
    }
}

impl Scheduler for ContainerLaunchScheduler {
    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        for offer in offers {
            if let Some(unused) = self.launch_from(driver, offer) {
                match (&self.held, self.next < self.target) {
                    (None, true) => self.held = Some(unused),
                    _ => {
                        if let Some(id) = &unused.id {
                            driver.decline_offer(
                                id,
                                Filters {
                                    refuse_seconds: Some(0.0),
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    fn offer_rescinded(&mut self, _driver: &mut SchedulerDriver, offer: &OfferId) {
        if self.held.as_ref().and_then(|o| o.id.as_ref()) == Some(offer) {
            self.held = None;
        }
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        let task = status.task_id.as_ref().map_or("", |t| t.value.as_str());
        let state = status.state();
        if state != TaskState::TaskRunning && !state.is_terminal() {
            return;
        }
        let Some(launched) = self.launched_at.remove(task) else {
            return;
        };
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        if state == TaskState::TaskRunning {
            let now = Instant::now();
            results.latencies.push(now - launched);
            results.last_running = Some(now);
        } else {
            results.failed += 1;
            results
                .first_failure
                .get_or_insert_with(|| format!("{}: {}", state.as_str_name(), status.message));
        }
        drop(results);
        if let Some(offer) = self.held.take() {
            self.held = self.launch_from(driver, offer);
        }
    }
}

/// The floor every containerizer stands on: `count` bare `sh -c 'exec sleep 600'` processes
/// started with `posix_spawn` from `threads` threads (no agent, no cgroup, no sandbox), timed
/// until the last is started; then all are killed.
pub fn raw_spawn(count: u64, threads: usize) -> std::io::Result<Duration> {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    let per_thread = count.div_ceil(threads.max(1) as u64);
    let spawned: Vec<std::io::Result<Vec<std::process::Child>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1) as u64)
            .map(|t| {
                let n = per_thread.min(count.saturating_sub(t * per_thread));
                scope.spawn(move || {
                    (0..n)
                        .map(|_| {
                            std::process::Command::new("/bin/sh")
                                .args(["-c", "exec sleep 600"])
                                .stdin(std::process::Stdio::null())
                                .stdout(std::process::Stdio::null())
                                .process_group(0)
                                .spawn()
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("spawner panicked")))
            })
            .collect()
    });
    let took = start.elapsed();
    let mut first_error = None;
    for children in spawned {
        match children {
            Ok(children) => {
                for mut child in children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(took),
    }
}

/// The `q` quantile (0..=1) of `sorted` durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_by_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
