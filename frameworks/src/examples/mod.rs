//! Example frameworks, each a [`crate::Scheduler`] (and, for `particles`, an
//! [`crate::Executor`]) that `keel-local` and `keelctl` run:
//!
//! - [`batch`]: N shell commands run once each (what `keelctl execute` runs);
//! - [`particles`]: the particle-trajectory exercise, computed by a custom executor;
//! - [`service`]: K long-running instances kept alive;
//! - [`holding`]: a custom executor whose tasks run until killed.

pub mod batch;
pub mod holding;
pub mod particles;
pub mod service;
