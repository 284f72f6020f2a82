//! The allocator: which framework is offered which agent's free resources, and when.
//!
//! [`Allocator`] is the policy interface (Mesos's allocator module): the master tells it about
//! frameworks, agents and resources coming back, and asks it for allocations. The policy Keel
//! ships is [`HierarchicalAllocator`]: hierarchical DRF over roles with weights and quota
//! limits, refusal filters, suppress/revive and a minimum offer size. [`AllocatorProcess`] wraps an `Allocator` in a
//! libactor process and runs [`Allocator::allocate`] on events (batched) and on every
//! `--allocation_interval`.
//!
//! Time is passed in (`now`) rather than read, so the process can drive it from libactor's
//! pausable clock and tests need no sleeping.

mod filters;
mod hierarchical;
pub mod process;
pub mod sorter;

use std::collections::BTreeMap;
use std::time::Instant;

use resources::Resources;

pub use filters::RefuseFilter;
pub use hierarchical::{HierarchicalAllocator, MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE};
pub use process::{AllocatorProcess, OfferSink, DEFAULT_ALLOCATION_INTERVAL};

/// Resources of one agent given to one framework: the content of one offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The framework offered to.
    pub framework: String,
    /// The role the resources are allocated to.
    pub role: String,
    /// The agent the resources are on.
    pub agent: String,
    /// What is offered.
    pub resources: Resources,
}

/// Why the allocator refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllocatorError {
    /// No framework by that id.
    #[error("unknown framework {0:?}")]
    UnknownFramework(String),
    /// No agent by that id.
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    /// The framework or agent is already known.
    #[error("{0:?} is already known to the allocator")]
    Duplicate(String),
    /// Recovering resources that were not allocated there.
    #[error("agent {agent:?} has not allocated {resources} to {framework:?}")]
    NotAllocated {
        /// The framework.
        framework: String,
        /// The agent.
        agent: String,
        /// What was to be recovered.
        resources: String,
    },
    /// Inconsistent resource types.
    #[error(transparent)]
    Drf(#[from] crate::allocator::sorter::drf::DrfError),
}

/// A resource allocation policy.
pub trait Allocator: Send {
    /// A framework registered, offered resources in `role` (suppressed ones get none until
    /// revived).
    fn add_framework(
        &mut self,
        framework: &str,
        role: &str,
        suppressed: bool,
    ) -> Result<(), AllocatorError>;

    /// A framework was removed; its allocations are forgotten (the master recovers its tasks'
    /// resources through [`Allocator::recover`] first, or removes agents).
    fn remove_framework(&mut self, framework: &str) -> Result<(), AllocatorError>;

    /// An agent registered with `total` resources, of which `used` are already held by
    /// frameworks' running tasks (a re-registering agent).
    fn add_agent(
        &mut self,
        agent: &str,
        total: Resources,
        used: &[(String, Resources)],
    ) -> Result<(), AllocatorError>;

    /// An agent was removed: everything allocated on it is gone with it.
    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError>;

    /// Stops offering the agent's resources (it is drained for maintenance or repair); what
    /// frameworks hold there stays theirs.
    fn deactivate_agent(&mut self, agent: &str) -> Result<(), AllocatorError>;

    /// Offers the agent's resources again.
    fn activate_agent(&mut self, agent: &str) -> Result<(), AllocatorError>;

    /// Resources on `agent` held by `framework` came back (offer declined or rescinded, task
    /// ended). With `refuse`, the framework is not offered them again until the filter expires.
    fn recover(
        &mut self,
        framework: &str,
        agent: &str,
        resources: &Resources,
        refuse: Option<RefuseFilter>,
    ) -> Result<(), AllocatorError>;

    /// A transaction placed `resources` on `agent` for `framework` outside any offer (Omega).
    /// The master decided from its own books, which may be ahead of this allocator by an
    /// allocation it has not received yet; it refuses that allocation and recovers it, so the
    /// agent may hold more than its total here until that recovery arrives.
    fn claim(
        &mut self,
        framework: &str,
        agent: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError>;

    /// Clears the framework's filters and resumes offers to it.
    fn revive(&mut self, framework: &str) -> Result<(), AllocatorError>;

    /// Stops offers to the framework until it revives.
    fn suppress(&mut self, framework: &str) -> Result<(), AllocatorError>;

    /// Sets a role's weight.
    fn set_weight(&mut self, role: &str, weight: f64);

    /// Sets the most `role` may hold, offered or used, by scalar name (Mesos's quota limits);
    /// `None` lifts its limits. Offers to the role are cut to what the limits leave.
    fn set_quota_limits(&mut self, role: &str, limits: Option<BTreeMap<String, f64>>);

    /// One allocation cycle: offers each agent's free resources to the framework that DRF puts
    /// first among those that may take them.
    fn allocate(&mut self, now: Instant) -> Vec<Allocation>;
}
