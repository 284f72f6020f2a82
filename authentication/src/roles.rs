//! The roles a principal acts in, as certificates carry them (`urn:keel:role:<role>`) and
//! handlers check them (libactor's `Context::authorize`). Who holds which:
//!
//! | role | held by | may |
//! |------|---------|-----|
//! | [`MASTER`] | masters (and their device manager) | order agents, repair services and application managers |
//! | [`AGENT`] | agents | register as an agent, send status updates and watchdog reports |
//! | [`FRAMEWORK`] | schedulers | register frameworks and act on their own |
//! | [`OPERATOR`] | people and tools | the operator endpoints and `keelctl` commands |
//! | [`REPAIR`] | repair services | report repair outcomes |
//! | [`EXECUTOR`] | executors (certificates from their agent) | talk to their own agent |

/// Masters, and the device manager that runs beside the leading master.
pub const MASTER: &str = "master";
/// Agents.
pub const AGENT: &str = "agent";
/// Framework schedulers.
pub const FRAMEWORK: &str = "framework";
/// Operators: people and tools that change the cluster.
pub const OPERATOR: &str = "operator";
/// Repair services.
pub const REPAIR: &str = "repair";
/// Executors, holding certificates their agent issued.
pub const EXECUTOR: &str = "executor";

/// Every role, for validating what a CA is asked to issue.
pub const ALL: &[&str] = &[MASTER, AGENT, FRAMEWORK, OPERATOR, REPAIR, EXECUTOR];
