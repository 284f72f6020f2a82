//! How the device manager takes a machine out of scheduling and gives it back: the master it
//! runs beside implements this (Keel's binaries pass a gate onto their master); the device
//! manager only decides when.

use std::future::Future;
use std::pin::Pin;

/// A future the gate hands back.
pub type GateFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What draining a machine did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Tasks killed there.
    pub tasks_killed: usize,
}

/// The scheduler's side of repairs.
pub trait MachineGate: Send + Sync + 'static {
    /// Stops offering `hostname`'s resources; with `kill_tasks`, kills its tasks with a reason
    /// frameworks can act on, and resolves once none is left (or with why not).
    fn drain(
        &self,
        hostname: &str,
        kill_tasks: bool,
        reason: &str,
    ) -> GateFuture<Result<Drained, String>>;

    /// Offers `hostname`'s resources again.
    fn reactivate(&self, hostname: &str);

    /// The hostname of the agent registered at node `address` (`host:port`), if any: reports
    /// about a machine are taken only from its own agent's node.
    fn agent_at(&self, address: &str) -> Option<String>;

    /// The principal `pid` authenticated with the master as, if it did.
    fn principal_of(&self, pid: &libactor::Upid) -> Option<String>;
}
