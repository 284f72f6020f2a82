//! The framework author's API: what a program implements to run work on a Keel cluster, as in
//! Mesos's two-level scheduling. The master offers resources; a framework's [`Scheduler`]
//! picks which to use and launches tasks through its [`SchedulerDriver`]; tasks run either as
//! shell commands on the agents or inside the framework's own [`Executor`].
//!
//! ```no_run
//! use frameworks::{scheduler_driver, Scheduler, SchedulerDriver, SchedulerOptions};
//! use protos::v1::{CommandInfo, Filters, FrameworkInfo, Offer, TaskId, TaskInfo, TaskStatus};
//!
//! /// Runs `echo hello` once, then ends the framework.
//! struct Hello { launched: bool }
//!
//! impl Scheduler for Hello {
//!     fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>) {
//!         for offer in offers {
//!             let tasks = if self.launched { vec![] } else {
//!                 self.launched = true;
//!                 vec![TaskInfo {
//!                     name: "hello".into(),
//!                     task_id: Some(TaskId { value: "hello-1".into() }),
//!                     resources: "cpus:0.1;mem:16".parse::<resources::Resources>().unwrap().to_proto(),
//!                     command: Some(CommandInfo { value: "echo hello".into(), ..Default::default() }),
//!                     ..Default::default()
//!                 }]
//!             };
//!             driver.launch_tasks(&[offer.id.unwrap()], tasks, Filters::default());
//!         }
//!     }
//!     fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
//!         if status.state().is_terminal() { driver.stop(); }
//!     }
//! }
//!
//! # async fn run(node: libactor::Node, master: libactor::Upid) {
//! let info = FrameworkInfo { name: "hello".into(), user: "ops".into(), ..Default::default() };
//! let handle = scheduler_driver::start(&node, master, info, Hello { launched: false },
//!                                      SchedulerOptions::default()).unwrap();
//! handle.join().await;
//! # }
//! ```
//!
//! Modules:
//! - [`scheduler`] / [`scheduler_driver`]: the [`Scheduler`] trait and the driver process that
//!   registers the framework and relays offers, launches, kills, status updates (acknowledged
//!   for the scheduler by default), reconciliation and framework messages.
//! - [`executor`] / [`executor_driver`]: the [`Executor`] trait and the driver that runs inside
//!   the executor's OS process, started by the agent ([`executor_driver::run`]).
//! - [`shared_state`] / [`cell`]: Omega's shared-state scheduling — a
//!   [`SharedStateScheduler`] reads its copy of the whole cell and commits placements as
//!   transactions, beside offer-based frameworks on the same master.
//! - [`offer_packing`]: filling an offer with tasks of one size; [`agent_rest`]: agents left
//!   alone for a while after one could not start a task.
//! - [`reconciliation`]: asking about live tasks after a re-registration until each is heard of.
//! - [`examples`]: `batch`, `particles` and `service`.

#![warn(missing_docs)]

pub mod agent_rest;
pub mod cell;
pub mod driver_status;
pub mod examples;
pub mod executor;
pub mod executor_driver;
pub mod offer_packing;
pub mod reconciliation;
pub mod scheduler;
pub mod scheduler_driver;
pub mod shared_state;

pub use driver_status::DriverStatus;
pub use executor::Executor;
pub use executor_driver::ExecutorDriver;
pub use scheduler::Scheduler;
pub use scheduler_driver::{CommitOptions, SchedulerDriver, SchedulerHandle, SchedulerOptions};
pub use shared_state::{RetryPolicy, SchedulingStats, SharedStateScheduler};
