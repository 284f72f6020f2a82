//! The [`Scheduler`] trait: what a framework's scheduler is told (Mesos's `Scheduler`).
//!
//! Every callback runs inside the driver's libactor process, one at a time, with the
//! [`SchedulerDriver`] to act through. A callback must not block: long work belongs on another
//! thread, whose results come back through [`crate::scheduler_driver::SchedulerHandle::dispatch`].

use protos::v1::{
    AgentId, ExecutorId, FrameworkId, MasterInfo, Offer, OfferId, TaskId, TaskStatus,
};

use protos::omega::TransactionResultMessage;

use crate::scheduler_driver::SchedulerDriver;

/// A framework's scheduler. Only [`Scheduler::resource_offers`] and
/// [`Scheduler::status_update`] must be written; the rest default to logging.
pub trait Scheduler: Send + 'static {
    /// The master accepted the framework and gave it `framework_id`.
    fn registered(
        &mut self,
        _driver: &mut SchedulerDriver,
        framework_id: &FrameworkId,
        master: &MasterInfo,
    ) {
        tracing::info!(framework = %framework_id.value, master = %master.pid, "framework registered");
    }

    /// The framework re-registered (after a scheduler or master failover).
    fn reregistered(&mut self, _driver: &mut SchedulerDriver, master: &MasterInfo) {
        tracing::info!(master = %master.pid, "framework re-registered");
    }

    /// The scheduler lost the master; the driver keeps trying to re-register.
    fn disconnected(&mut self, _driver: &mut SchedulerDriver) {
        tracing::warn!("disconnected from the master");
    }

    /// Resources offered: accept with [`SchedulerDriver::launch_tasks`] or give them back with
    /// [`SchedulerDriver::decline_offer`].
    fn resource_offers(&mut self, driver: &mut SchedulerDriver, offers: Vec<Offer>);

    /// An offer is no longer valid (timed out, or its agent was lost).
    fn offer_rescinded(&mut self, _driver: &mut SchedulerDriver, offer_id: &OfferId) {
        tracing::debug!(offer = %offer_id.value, "offer rescinded");
    }

    /// A task changed state. With implicit acknowledgements (the default) the driver
    /// acknowledges it once this returns.
    fn status_update(&mut self, driver: &mut SchedulerDriver, status: &TaskStatus);

    /// An executor sent the framework a message.
    fn framework_message(
        &mut self,
        _driver: &mut SchedulerDriver,
        executor_id: &ExecutorId,
        agent_id: &AgentId,
        data: &[u8],
    ) {
        tracing::debug!(executor = %executor_id.value, agent = %agent_id.value, bytes = data.len(), "framework message");
    }

    /// An agent was removed from the cluster; its tasks are reported lost separately.
    fn agent_lost(&mut self, _driver: &mut SchedulerDriver, agent_id: &AgentId) {
        tracing::warn!(agent = %agent_id.value, "agent lost");
    }

    /// A custom executor exited with `status`.
    fn executor_lost(
        &mut self,
        _driver: &mut SchedulerDriver,
        executor_id: &ExecutorId,
        agent_id: &AgentId,
        status: i32,
    ) {
        tracing::info!(executor = %executor_id.value, agent = %agent_id.value, status, "executor lost");
    }

    /// The master will kill these tasks after `grace` (they run above the framework's fair
    /// share while another framework starves), unless the starvation ends first. A scheduler
    /// may checkpoint them, or kill others of its choice instead.
    fn tasks_revoked(
        &mut self,
        _driver: &mut SchedulerDriver,
        task_ids: &[TaskId],
        grace: std::time::Duration,
    ) {
        tracing::warn!(tasks = task_ids.len(), ?grace, "tasks will be revoked");
    }

    /// A timer set with [`SchedulerDriver::set_timer`] fired.
    fn timer(&mut self, _driver: &mut SchedulerDriver, _token: u64) {}

    /// The copy of the cell changed ([`SchedulerDriver::cell`]; shared-state schedulers only,
    /// after [`SchedulerDriver::subscribe_cell`]).
    fn cell_changed(&mut self, _driver: &mut SchedulerDriver) {}

    /// The master answered a transaction ([`SchedulerDriver::commit`]): one result per
    /// placement, or `error` when it refused the whole transaction.
    fn transaction_result(
        &mut self,
        _driver: &mut SchedulerDriver,
        result: &TransactionResultMessage,
    ) {
        tracing::debug!(transaction = %result.transaction_id, error = %result.error, "transaction answered");
    }

    /// The master refused the framework (the driver aborts after this returns).
    fn error(&mut self, _driver: &mut SchedulerDriver, message: &str) {
        tracing::error!(%message, "framework error");
    }
}
