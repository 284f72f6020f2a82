//! Example frameworks, each a [`crate::Scheduler`] (and, for `particles`, an
//! [`crate::Executor`]) that `keel-local` and `keelctl` run:
//!
//! - [`batch`]: N shell commands run once each (what `keelctl execute` runs);
//! - [`particles`]: the particle-trajectory exercise, computed by a custom executor;
//! - [`service`]: K long-running instances kept alive;
//! - [`holding`]: a custom executor whose tasks run until killed;
//! - [`omega_batch`] and [`omega_service`]: the Omega paper's two shared-state schedulers, a
//!   fast batch scheduler and a slow, picky service scheduler placing gangs.

pub mod batch;
pub mod holding;
pub mod omega_batch;
pub mod omega_service;
pub mod particles;
pub mod service;
