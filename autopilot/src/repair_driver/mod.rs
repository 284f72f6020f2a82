//! Repair drivers: how the repair service carries an action out on a machine. The `process`
//! driver restarts, wipes or removes agent processes it supervises (local clusters and
//! tests); the `command` driver runs an operator's command per action (an IPMI or cloud API
//! script).

mod command;
mod process;

pub use command::CommandDriver;
pub use process::{MachineProcess, ProcessDriver};

use crate::machine_gate::GateFuture;
use protos::autopilot::RepairOrder;

/// Carries repair actions out.
pub trait RepairDriver: Send + Sync + 'static {
    /// The driver's name, as announced to the device manager.
    fn name(&self) -> &'static str;

    /// Carries `order` out; resolves with what was done, or why it could not be.
    fn carry_out(&self, order: &RepairOrder) -> GateFuture<Result<String, String>>;
}
