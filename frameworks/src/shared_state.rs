//! Shared-state scheduling (Omega) for framework authors: a [`SharedStateScheduler`] sees the
//! whole cell instead of offers, places tasks on its own copy, and commits them as
//! transactions; the master answers each placement committed or in conflict, and the
//! scheduler retries conflicts by its [`RetryPolicy`].
//!
//! [`start`] runs one on the ordinary scheduler driver (registration, failover, status updates
//! and reconciliation are the same as for offer-based frameworks), subscribing to the cell once
//! the framework is registered.

use libactor::{Node, SpawnError, Upid};
use protos::omega::TransactionResultMessage;
use protos::v1::{FrameworkId, FrameworkInfo, MasterInfo, Offer, TaskStatus};

use crate::scheduler::Scheduler;
use crate::scheduler_driver::{self, SchedulerDriver, SchedulerHandle, SchedulerOptions};

/// A shared-state scheduler. It acts through the [`SchedulerDriver`]: reads
/// [`SchedulerDriver::cell`], places with [`SchedulerDriver::commit`], kills and reconciles as
/// any framework does.
pub trait SharedStateScheduler: Send + 'static {
    /// The framework is registered; the cell follows.
    fn registered(&mut self, _driver: &mut SchedulerDriver, framework_id: &FrameworkId) {
        tracing::info!(framework = %framework_id.value, "shared-state framework registered");
    }

    /// The framework re-registered: with a new master after a failover, or with the same one
    /// after a disconnection. The moment to reconcile the tasks it believes live
    /// ([`SchedulerDriver::reconcile_tasks`], each with its agent): a launch that never reached
    /// its agent (the agent was between registrations) is known to nobody once the master that
    /// sent it is gone, and only an explicit question brings back its end (`TASK_LOST`).
    fn reregistered(&mut self, _driver: &mut SchedulerDriver) {}

    /// The copy of the cell changed: the moment to place pending work.
    fn cell_changed(&mut self, driver: &mut SchedulerDriver);

    /// A transaction was answered.
    fn transaction_result(
        &mut self,
        driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    );

    /// A task changed state.
    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus);

    /// A timer set with [`SchedulerDriver::set_timer`] fired.
    fn timer(&mut self, _driver: &mut SchedulerDriver, _token: u64) {}

    /// The master refused the framework (the driver aborts after this returns).
    fn error(&mut self, _driver: &mut SchedulerDriver, message: &str) {
        tracing::error!(%message, "framework error");
    }
}

/// How often a task whose placement conflicted is tried again before its job is abandoned
/// (the paper's schedulers give up on a job after 1,000 attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per task, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 1000 }
    }
}

impl RetryPolicy {
    /// Whether a task tried `attempts` times may be tried again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

/// What a shared-state scheduler has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulingStats {
    /// Transactions answered.
    pub transactions: u64,
    /// Transactions with at least one conflicted placement.
    pub conflicted_transactions: u64,
    /// Placements committed.
    pub committed: u64,
    /// Placements that conflicted.
    pub conflicts: u64,
    /// Tasks (or jobs) given up after too many attempts.
    pub abandoned: u64,
}

impl SchedulingStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &SchedulingStats) {
        self.transactions += other.transactions;
        self.conflicted_transactions += other.conflicted_transactions;
        self.committed += other.committed;
        self.conflicts += other.conflicts;
        self.abandoned += other.abandoned;
    }

    /// Transactions with a conflict, as a fraction of all (the paper's conflict fraction).
    pub fn conflict_fraction(&self) -> f64 {
        if self.transactions == 0 {
            0.0
        } else {
            self.conflicted_transactions as f64 / self.transactions as f64
        }
    }
}

/// Runs a [`SharedStateScheduler`] as a [`Scheduler`]: subscribes once registered, ignores
/// offers made before that, and passes the rest on.
pub struct SharedState<S>(pub S);

impl<S: SharedStateScheduler> Scheduler for SharedState<S> {
    fn registered(
        &mut self,
        driver: &mut SchedulerDriver,
        framework_id: &FrameworkId,
        _master: &MasterInfo,
    ) {
        driver.subscribe_cell();
        self.0.registered(driver, framework_id);
    }

    fn reregistered(&mut self, driver: &mut SchedulerDriver, master: &MasterInfo) {
        tracing::info!(master = %master.pid, "shared-state framework re-registered");
        self.0.reregistered(driver);
    }

    fn resource_offers(&mut self, _driver: &mut SchedulerDriver, offers: Vec<Offer>) {
        // Made before the subscription reached the master, which withdrew them with it: they
        // are void already.
        tracing::debug!(
            offers = offers.len(),
            "offers made before the cell subscription ignored"
        );
    }

    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus) {
        self.0.status_update(driver, status);
    }

    fn cell_changed(&mut self, driver: &mut SchedulerDriver) {
        self.0.cell_changed(driver);
    }

    fn transaction_result(
        &mut self,
        driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    ) {
        self.0.transaction_result(driver, result);
    }

    fn timer(&mut self, driver: &mut SchedulerDriver, token: u64) {
        self.0.timer(driver, token);
    }

    fn error(&mut self, driver: &mut SchedulerDriver, message: &str) {
        self.0.error(driver, message);
    }
}

/// Starts `scheduler` on `node` as framework `info`, registering with `master` and then
/// subscribing to the cell.
pub fn start<S: SharedStateScheduler>(
    node: &Node,
    master: Upid,
    info: FrameworkInfo,
    scheduler: S,
    options: SchedulerOptions,
) -> Result<SchedulerHandle<SharedState<S>>, SpawnError> {
    scheduler_driver::start(node, master, info, SharedState(scheduler), options)
}
