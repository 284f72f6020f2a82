//! The `posix` containerizer: no limits, only a process group per container (which the task
//! process has anyway) and usage read from `/proc`. Used where the kernel offers no writable
//! cgroups, or when `--isolation posix` asks for it.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use protos::v1::ResourceStatistics;
use resources::Resources;

use super::{Container, ContainerError, ContainerHandle, ContainerSpec, Containerizer, Limitation};
use crate::task_process::{LaunchError, TaskProcess};

/// Runs containers as plain process groups.
#[derive(Debug, Default)]
pub struct PosixContainerizer;

impl Containerizer for PosixContainerizer {
    fn isolation(&self) -> &'static str {
        "posix"
    }

    fn launch(&self, spec: ContainerSpec<'_>) -> Result<Container, LaunchError> {
        let process = TaskProcess::spawn_joined(
            spec.command,
            spec.sandbox,
            spec.env,
            Vec::new(),
            spec.checkpoint,
            spec.run_as,
        )?;
        let handle = PosixContainer {
            id: spec.id.to_owned(),
            pgid: process.pid() as i32,
            cpus: spec.resources.scalar("cpus"),
        };
        Ok(Container {
            process,
            handle: Arc::new(handle),
        })
    }

    fn recover(&self, _known: &std::collections::HashSet<String>) -> Vec<String> {
        // A process group is found again only through the executor's checkpoint, which the
        // agent's recovery reads (and ends the groups it does not adopt).
        Vec::new()
    }

    fn reattach(
        &self,
        id: &str,
        pgid: i32,
        resources: &Resources,
    ) -> Result<Arc<dyn ContainerHandle>, ContainerError> {
        Ok(Arc::new(PosixContainer {
            id: id.to_owned(),
            pgid,
            cpus: resources.scalar("cpus"),
        }))
    }

    fn shutdown(&self) {}
}

/// A process group standing for a container.
#[derive(Debug)]
struct PosixContainer {
    id: String,
    pgid: i32,
    cpus: f64,
}

impl ContainerHandle for PosixContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn isolation(&self) -> &'static str {
        "posix"
    }

    fn statistics(&self) -> ResourceStatistics {
        let mut s = process_group_usage(Path::new("/proc"), self.pgid);
        s.cpus_limit = Some(self.cpus);
        s
    }

    fn update(&self, _resources: &Resources) -> Result<(), ContainerError> {
        Ok(())
    }

    fn limitation(&self) -> Pin<Box<dyn Future<Output = Limitation> + Send>> {
        Box::pin(std::future::pending())
    }

    fn limitation_after_exit(&self) -> Option<Limitation> {
        None
    }

    fn destroy(&self) -> Result<(), ContainerError> {
        if self.pgid > 0 {
            // SAFETY: killpg(2) on the group the container's process leads.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
        Ok(())
    }
}

/// CPU time, resident memory, processes and threads of every process in group `pgid`, read
/// from `proc` (`/proc/<pid>/stat`).
pub fn process_group_usage(proc: &Path, pgid: i32) -> ResourceStatistics {
    // SAFETY: sysconf(3) reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let (mut user, mut system, mut rss, mut processes, mut threads) =
        (0u64, 0u64, 0u64, 0u32, 0u32);
    if let Ok(entries) = std::fs::read_dir(proc) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(fields) = stat_fields(&stat) else {
                continue;
            };
            // Fields after the command, numbered as in proc(5) from 3 (state).
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
            if field(5) != Some(pgid as u64) {
                continue;
            }
            processes += 1;
            user += field(14).unwrap_or(0);
            system += field(15).unwrap_or(0);
            threads += field(20).unwrap_or(0) as u32;
            rss += field(24).unwrap_or(0) * page;
        }
    }
    ResourceStatistics {
        processes: Some(processes),
        threads: Some(threads),
        cpus_user_time_secs: Some(user as f64 / ticks),
        cpus_system_time_secs: Some(system as f64 / ticks),
        mem_rss_bytes: Some(rss),
        ..Default::default()
    }
}

/// The fields of a `/proc/<pid>/stat` line after the parenthesised command (which may itself
/// hold spaces and parentheses).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let end = stat.rfind(')')?;
    Some(stat.get(end + 1..)?.split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_command_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 2 0 1 100 5";
        let fields = stat_fields(line).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[5 - 3], "42");
        assert_eq!(fields[14 - 3], "7");
        assert_eq!(fields[15 - 3], "3");
        assert_eq!(fields[20 - 3], "2");
        assert_eq!(fields[24 - 3], "5");
    }

    #[test]
    fn the_usage_of_this_test_process_group_is_seen() {
        // SAFETY: getpgrp(2) has no failure mode.
        let pgid = unsafe { libc::getpgrp() };
        let s = process_group_usage(Path::new("/proc"), pgid);
        assert!(s.processes.unwrap() >= 1);
        assert!(s.mem_rss_bytes.unwrap() > 0);
    }
}
