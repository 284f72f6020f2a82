//! What the scheduler driver and the executor driver share: how a driver ended.

/// How a driver ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverStatus {
    /// The driver was stopped (`stop`, or a scheduler's `stop_for_failover`).
    Stopped,
    /// The master refused the framework, the driver was aborted, or its process ended.
    Aborted(String),
}
