//! Hears the kernel's OOM notifications for a cgroup v1 memory cgroup: an `eventfd` registered
//! through `cgroup.event_control` against `memory.oom_control` becomes readable each time the
//! cgroup hits its limit and the OOM killer runs (Mesos's memory isolator does the same).
//!
//! The eventfd is read through tokio's reactor, so a thousand containers cost a thousand file
//! descriptors, not a thousand threads. Removing the cgroup also signals the eventfd; callers
//! confirm an OOM with the cgroup's `oom_kill` count.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::ContainerError;

/// A registered OOM notification, not yet waited on.
#[derive(Debug)]
pub struct OomListener {
    eventfd: OwnedFd,
}

impl OomListener {
    /// Registers for OOM notifications of the v1 memory cgroup at `dir`.
    pub fn register(dir: &Path) -> Result<OomListener, ContainerError> {
        // SAFETY: eventfd(2) creates a new descriptor; ownership passes to OwnedFd below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(ContainerError::io(
                "create eventfd for",
                dir,
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        let control_path = dir.join("memory.oom_control");
        let control = std::fs::File::open(&control_path)
            .map_err(|e| ContainerError::io("open", &control_path, e))?;
        let registration = format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd());
        let event_control = dir.join("cgroup.event_control");
        std::fs::write(&event_control, registration)
            .map_err(|e| ContainerError::io("register OOM event in", &event_control, e))?;
        Ok(OomListener { eventfd })
    }

    /// Resolves at the next OOM notification (or when the cgroup is removed). Must be polled
    /// inside a tokio runtime with IO enabled (an actix arbiter is one); if the reactor cannot
    /// take the descriptor the future never resolves, and the exit-time check of the cgroup's
    /// OOM count still catches OOMs.
    pub async fn notified(self) {
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for
        // the AsyncFd's whole life.
        let registered =
            unsafe { AsyncFd::register_with_interest(self.eventfd, Interest::READABLE) };
        let Ok(fd) = registered else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return std::future::pending().await;
            };
            let mut count = [0u8; 8];
            // SAFETY: reading 8 bytes (the eventfd counter) into a local buffer.
            let n = unsafe {
                libc::read(
                    fd.get_ref().as_raw_fd(),
                    count.as_mut_ptr().cast(),
                    count.len(),
                )
            };
            if n == count.len() as isize {
                return;
            }
            guard.clear_ready();
        }
    }
}
