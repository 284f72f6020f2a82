//! Mesos's hierarchical DRF allocator: each cycle, each agent's free resources go, whole, to the
//! first framework in DRF order (roles by weighted dominant share, then frameworks within the
//! role) that is not suppressed, not filtered for them, and may use them (unreserved resources,
//! plus those reserved for its role). A role under quota limits is offered only what its
//! limits leave (what it holds, offered or used, counts against them).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use resources::{Resources, UNRESERVED_ROLE};

use super::{Allocation, Allocator, AllocatorError, RefuseFilter};
use crate::allocator::sorter::drf::HierarchicalDrf;

/// Offers smaller than all of these are not made (Mesos's `--min_allocatable_resources`
/// default: `cpus:0.01|mem:32`).
pub const DEFAULT_MIN_ALLOCATABLE: &[&str] = &["cpus:0.01", "mem:32"];

#[derive(Debug, Clone)]
struct FrameworkState {
    role: String,
    suppressed: bool,
    /// Agents newly allocated to it in the cycle under way.
    given_this_cycle: usize,
    /// Refusal filters by agent.
    filters: HashMap<String, Vec<RefuseFilter>>,
}

#[derive(Debug, Clone)]
struct AgentState {
    total: Resources,
    /// What each framework holds here (offered or used by tasks).
    allocated: BTreeMap<String, Resources>,
    /// The sum of `allocated`.
    allocated_sum: Resources,
    /// Offered at all (a drained agent is not).
    active: bool,
}

impl AgentState {
    /// Records that `framework` now also holds `resources` here.
    fn hold(&mut self, framework: &str, resources: &Resources) -> Result<(), AllocatorError> {
        let mut sum = self.allocated_sum.clone();
        sum.add(resources)
            .map_err(crate::allocator::sorter::drf::DrfError::from)?;
        self.allocated
            .entry(framework.to_owned())
            .or_default()
            .add(resources)
            .map_err(crate::allocator::sorter::drf::DrfError::from)?;
        self.allocated_sum = sum;
        Ok(())
    }

    fn available(&self) -> Resources {
        // Allocations are only ever made from what is available, so this fails only while a
        // claim overlaps an allocation the master is about to refuse: nothing is available
        // until that allocation is recovered.
        self.total
            .checked_sub(&self.allocated_sum)
            .unwrap_or_default()
    }
}

/// Agents newly allocated to one framework in one cycle. On a large cluster a framework would
/// otherwise be offered every agent at once (100,000 offers to make, send, and decline) when it
/// needs a few; the rest go to the next framework in DRF order, or wait for the next cycle.
pub const MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE: usize = 1000;

/// The hierarchical DRF allocation policy.
#[derive(Debug, Clone)]
pub struct HierarchicalAllocator {
    drf: HierarchicalDrf,
    frameworks: BTreeMap<String, FrameworkState>,
    agents: BTreeMap<String, AgentState>,
    /// Agent ids in the order cycles visit them (registration order), kept beside `agents` so
    /// a cycle neither copies every id nor looks each one up by range.
    agent_order: Vec<String>,
    total: Resources,
    /// `total` changed since DRF last saw it.
    total_changed: bool,
    /// Minimum offer sizes, as scalar quantities by name (any one suffices).
    min_allocatable: Vec<BTreeMap<String, f64>>,
    /// Quota limits by role: the most each may hold, by scalar name.
    quota_limits: HashMap<String, BTreeMap<String, f64>>,
}

impl Default for HierarchicalAllocator {
    fn default() -> Self {
        HierarchicalAllocator::new(
            DEFAULT_MIN_ALLOCATABLE
                .iter()
                .filter_map(|m| m.parse().ok())
                .collect(),
        )
    }
}

impl HierarchicalAllocator {
    /// An allocator that makes no offer smaller than every one of `min_allocatable`.
    pub fn new(min_allocatable: Vec<Resources>) -> HierarchicalAllocator {
        HierarchicalAllocator {
            drf: HierarchicalDrf::new(),
            frameworks: BTreeMap::new(),
            agents: BTreeMap::new(),
            agent_order: Vec::new(),
            total: Resources::new(),
            total_changed: false,
            min_allocatable: min_allocatable
                .iter()
                .map(Resources::scalar_totals)
                .collect(),
            quota_limits: HashMap::new(),
        }
    }

    /// What `role`'s quota limits leave it, by scalar name (none for a role without limits).
    fn quota_headroom(&self, role: &str) -> Option<BTreeMap<String, f64>> {
        let limits = self.quota_limits.get(role)?;
        let held = self.drf.roles().allocation(role);
        Some(
            limits
                .iter()
                .map(|(name, most)| {
                    let consumed = held.map_or(0.0, |h| h.scalar(name));
                    (name.clone(), most - consumed)
                })
                .collect(),
        )
    }

    /// What `framework` holds on `agent`.
    pub fn allocated(&self, framework: &str, agent: &str) -> Resources {
        self.agents
            .get(agent)
            .and_then(|a| a.allocated.get(framework))
            .cloned()
            .unwrap_or_default()
    }

    /// The weighted dominant share of a framework within its role (as of the last cycle if
    /// agents joined or left since).
    pub fn share(&self, framework: &str) -> f64 {
        self.frameworks
            .get(framework)
            .and_then(|f| self.drf.role(&f.role))
            .map_or(0.0, |sorter| sorter.share(framework))
    }

    fn framework_mut(&mut self, framework: &str) -> Result<&mut FrameworkState, AllocatorError> {
        self.frameworks
            .get_mut(framework)
            .ok_or_else(|| AllocatorError::UnknownFramework(framework.to_owned()))
    }

    /// Whether `offer` reaches one of the minimum quantities, whatever roles its resources are
    /// reserved for.
    fn agent_mut(&mut self, agent: &str) -> Result<&mut AgentState, AllocatorError> {
        self.agents
            .get_mut(agent)
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_owned()))
    }

    fn allocatable(&self, offer: &Resources) -> bool {
        !offer.is_empty()
            && (self.min_allocatable.is_empty()
                || self.min_allocatable.iter().any(|min| {
                    min.iter()
                        .all(|(name, quantity)| offer.scalar(name) >= *quantity)
                }))
    }

    /// Changes the cluster total by an agent's resources (adding or removing the agent). The
    /// DRF shares follow at the next cycle: recomputing every share on each of thousands of
    /// registrations would be quadratic.
    fn change_total(&mut self, agent_total: &Resources, added: bool) {
        if added {
            // Agents' totals were validated when added, so types agree.
            let _ = self.total.add(&agent_total.scalars());
        } else {
            // Scalars only: the agents' port ranges overlap, so their union cannot be
            // subtracted agent by agent.
            self.total = self
                .total
                .checked_sub(&agent_total.scalars())
                .unwrap_or_default();
        }
        self.total_changed = true;
    }

    /// Brings DRF shares up to date with the cluster total.
    fn settle_total(&mut self) {
        if std::mem::take(&mut self.total_changed) {
            self.drf.set_total(&self.total);
        }
    }
}

/// The part of `available` a framework in `role` may use.
fn usable_by(available: &Resources, role: &str) -> Resources {
    let mut usable = available.reserved_for(UNRESERVED_ROLE);
    if role != UNRESERVED_ROLE {
        let _ = usable.add(&available.reserved_for(role));
    }
    usable
}

impl Allocator for HierarchicalAllocator {
    fn add_framework(
        &mut self,
        framework: &str,
        role: &str,
        suppressed: bool,
    ) -> Result<(), AllocatorError> {
        if self.frameworks.contains_key(framework) {
            return Err(AllocatorError::Duplicate(framework.to_owned()));
        }
        self.drf.add_framework(role, framework);
        // Resources already held on agents (re-registered before the framework).
        for agent in self.agents.values() {
            if let Some(held) = agent.allocated.get(framework) {
                self.drf.allocate(role, framework, held)?;
            }
        }
        if suppressed {
            self.drf.set_active(role, framework, false);
        }
        self.frameworks.insert(
            framework.to_owned(),
            FrameworkState {
                role: role.to_owned(),
                suppressed,
                given_this_cycle: 0,
                filters: HashMap::new(),
            },
        );
        Ok(())
    }

    fn remove_framework(&mut self, framework: &str) -> Result<(), AllocatorError> {
        let state = self
            .frameworks
            .remove(framework)
            .ok_or_else(|| AllocatorError::UnknownFramework(framework.to_owned()))?;
        for agent in self.agents.values_mut() {
            if let Some(held) = agent.allocated.remove(framework) {
                agent.allocated_sum = agent.allocated_sum.checked_sub(&held).unwrap_or_default();
            }
        }
        self.drf.remove_framework(&state.role, framework)?;
        Ok(())
    }

    fn add_agent(
        &mut self,
        agent: &str,
        total: Resources,
        used: &[(String, Resources)],
    ) -> Result<(), AllocatorError> {
        if self.agents.contains_key(agent) {
            return Err(AllocatorError::Duplicate(agent.to_owned()));
        }
        let mut state = AgentState {
            total,
            allocated: BTreeMap::new(),
            allocated_sum: Resources::new(),
            active: true,
        };
        for (framework, held) in used {
            state.hold(framework, held)?;
        }
        self.change_total(&state.total, true);
        self.agents.insert(agent.to_owned(), state);
        self.agent_order.push(agent.to_owned());
        for (framework, held) in used {
            if let Some(f) = self.frameworks.get(framework) {
                self.drf.allocate(&f.role, framework, held)?;
            }
        }
        Ok(())
    }

    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
        let state = self
            .agents
            .remove(agent)
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_owned()))?;
        self.agent_order.retain(|a| a != agent);
        for (framework, held) in &state.allocated {
            if let Some(f) = self.frameworks.get_mut(framework) {
                f.filters.remove(agent);
                self.drf.unallocate(&f.role, framework, held)?;
            }
        }
        self.change_total(&state.total, false);
        Ok(())
    }

    fn deactivate_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
        self.agent_mut(agent)?.active = false;
        Ok(())
    }

    fn activate_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
        self.agent_mut(agent)?.active = true;
        Ok(())
    }

    fn recover(
        &mut self,
        framework: &str,
        agent: &str,
        resources: &Resources,
        refuse: Option<RefuseFilter>,
    ) -> Result<(), AllocatorError> {
        let state = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_owned()))?;
        let not_allocated = || AllocatorError::NotAllocated {
            framework: framework.to_owned(),
            agent: agent.to_owned(),
            resources: resources.to_string(),
        };
        let held = state.allocated.get(framework).ok_or_else(not_allocated)?;
        let left = held.checked_sub(resources).ok_or_else(not_allocated)?;
        let sum = state
            .allocated_sum
            .checked_sub(resources)
            .ok_or_else(not_allocated)?;
        if left.is_empty() {
            state.allocated.remove(framework);
        } else {
            state.allocated.insert(framework.to_owned(), left);
        }
        state.allocated_sum = sum;
        if let Some(f) = self.frameworks.get_mut(framework) {
            self.drf.unallocate(&f.role, framework, resources)?;
            if let Some(filter) = refuse {
                f.filters.entry(agent.to_owned()).or_default().push(filter);
            }
        }
        Ok(())
    }

    fn claim(
        &mut self,
        framework: &str,
        agent: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError> {
        let role = self
            .frameworks
            .get(framework)
            .ok_or_else(|| AllocatorError::UnknownFramework(framework.to_owned()))?
            .role
            .clone();
        self.agent_mut(agent)?.hold(framework, resources)?;
        self.drf.allocate(&role, framework, resources)?;
        Ok(())
    }

    fn revive(&mut self, framework: &str) -> Result<(), AllocatorError> {
        let f = self.framework_mut(framework)?;
        f.filters.clear();
        f.suppressed = false;
        let role = f.role.clone();
        self.drf.set_active(&role, framework, true);
        Ok(())
    }

    fn suppress(&mut self, framework: &str) -> Result<(), AllocatorError> {
        let f = self.framework_mut(framework)?;
        f.suppressed = true;
        let role = f.role.clone();
        self.drf.set_active(&role, framework, false);
        Ok(())
    }

    fn set_weight(&mut self, role: &str, weight: f64) {
        self.drf.set_role_weight(role, weight);
    }

    fn set_quota_limits(&mut self, role: &str, limits: Option<BTreeMap<String, f64>>) {
        match limits {
            Some(limits) => self.quota_limits.insert(role.to_owned(), limits),
            None => self.quota_limits.remove(role),
        };
    }

    fn allocate(&mut self, now: Instant) -> Vec<Allocation> {
        self.settle_total();
        let mut out = Vec::new();
        for f in self.frameworks.values_mut() {
            f.given_this_cycle = 0;
        }
        // Frameworks that may still be given something; when none is left, the scan stops.
        let mut open = self.frameworks.values().filter(|f| !f.suppressed).count();
        let mut next = 0;
        while next < self.agent_order.len() {
            if open == 0 {
                break;
            }
            let agent_id = self.agent_order[next].clone();
            next += 1;
            let Some(agent) = self.agents.get(&agent_id).filter(|a| a.active) else {
                continue;
            };
            let available = agent.available();
            if !self.allocatable(&available) {
                continue;
            }
            let choice = self.drf.iter().find_map(|(role, framework)| {
                let state = self.frameworks.get(framework)?;
                if state.suppressed
                    || state.given_this_cycle >= MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE
                {
                    return None;
                }
                let mut offer = usable_by(&available, role);
                if let Some(headroom) = self.quota_headroom(role) {
                    offer = offer.capped(&headroom);
                }
                let filtered = state
                    .filters
                    .get(&agent_id)
                    .is_some_and(|fs| fs.iter().any(|f| f.filters(&offer, now)));
                (!filtered && self.allocatable(&offer))
                    .then(|| (role.to_owned(), framework.to_owned(), offer))
            });
            let Some((role, framework, offer)) = choice else {
                continue;
            };
            if let Some(agent) = self.agents.get_mut(&agent_id) {
                if let Err(e) = agent.hold(&framework, &offer) {
                    // The offer was cut from this agent's own resources, so types agree.
                    tracing::error!(error = %e, "cannot record an allocation");
                    continue;
                }
            }
            if let Err(e) = self.drf.allocate(&role, &framework, &offer) {
                // The offer came from this agent's free resources, so DRF cannot refuse it.
                tracing::error!(error = %e, %framework, agent = %agent_id, "DRF refused an allocation of free resources");
            }
            if let Some(f) = self.frameworks.get_mut(&framework) {
                f.given_this_cycle += 1;
                if f.given_this_cycle == MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE {
                    open -= 1;
                }
            }
            out.push(Allocation {
                framework,
                role,
                agent: agent_id,
                resources: offer,
            });
        }
        for f in self.frameworks.values_mut() {
            for filters in f.filters.values_mut() {
                filters.retain(|filter| now < filter.until);
            }
            f.filters.retain(|_, filters| !filters.is_empty());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(text: &str) -> Resources {
        text.parse().unwrap()
    }

    #[test]
    fn a_role_under_quota_limits_is_offered_only_what_they_leave() {
        let mut a = HierarchicalAllocator::default();
        for agent in ["a1", "a2", "a3"] {
            a.add_agent(agent, r("cpus:4;mem:1024"), &[]).unwrap();
        }
        a.add_framework("dev", "dev", false).unwrap();
        a.set_quota_limits("dev", Some(BTreeMap::from([("cpus".to_owned(), 5.0)])));
        let now = Instant::now();
        let offers = a.allocate(now);
        let cpus = |f: &str| -> f64 {
            offers
                .iter()
                .filter(|o| o.framework == f)
                .map(|o| o.resources.scalar("cpus"))
                .sum()
        };
        assert_eq!(cpus("dev"), 5.0, "{offers:?}");
        // Memory is not limited: it comes whole with each offer.
        assert!(offers.iter().all(|o| o.resources.scalar("mem") == 1024.0));
        // At its limit: nothing more, though two agents' cpus are free.
        assert!(a.allocate(now).is_empty());
        // What it gives back is offered again, up to the limit.
        let first = offers[0].clone();
        a.recover("dev", &first.agent, &first.resources, None)
            .unwrap();
        let again = a.allocate(now);
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].resources.scalar("cpus"),
            first.resources.scalar("cpus")
        );
        // Lifted: the rest.
        a.set_quota_limits("dev", None);
        let rest: f64 = a
            .allocate(now)
            .iter()
            .map(|o| o.resources.scalar("cpus"))
            .sum();
        assert_eq!(rest, 7.0);
    }

    #[test]
    fn seed_example_through_offers_f1_20_tasks_f2_10() {
        // Frameworks launch one task per offer and decline the rest without a filter.
        let mut a = HierarchicalAllocator::default();
        a.add_agent("agent", r("cpus:100;mem:100"), &[]).unwrap();
        a.add_framework("f1", "*", false).unwrap();
        a.add_framework("f2", "*", false).unwrap();
        let demand = |f: &str| {
            if f == "f1" {
                r("cpus:4;mem:1")
            } else {
                r("cpus:1;mem:8")
            }
        };
        let mut tasks: BTreeMap<String, u32> = BTreeMap::new();
        let now = Instant::now();
        for _cycle in 0..1000 {
            let offers = a.allocate(now);
            let mut launched = false;
            for offer in offers {
                let task = demand(&offer.framework);
                let rest = match offer.resources.checked_sub(&task) {
                    Some(rest) => {
                        launched = true;
                        *tasks.entry(offer.framework.clone()).or_default() += 1;
                        rest
                    }
                    None => offer.resources.clone(),
                };
                a.recover(&offer.framework, &offer.agent, &rest, None)
                    .unwrap();
            }
            if !launched {
                break;
            }
        }
        assert_eq!(tasks.get("f1"), Some(&20));
        assert_eq!(tasks.get("f2"), Some(&10));
    }

    #[test]
    fn refuse_filters_hold_until_expiry_or_revive() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:4;mem:1024"), &[]).unwrap();
        a.add_framework("f", "*", false).unwrap();
        let offer = a.allocate(t0).remove(0);
        assert_eq!(offer.resources, r("cpus:4;mem:1024"));
        assert!(
            a.allocate(t0).is_empty(),
            "offered resources are not offered twice"
        );
        let until = t0 + Duration::from_secs(5);
        a.recover(
            "f",
            "a1",
            &offer.resources,
            Some(RefuseFilter {
                resources: offer.resources.clone(),
                until,
            }),
        )
        .unwrap();
        assert!(a.allocate(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(
            a.allocate(t0 + Duration::from_secs(5)).len(),
            1,
            "the filter expired"
        );
        // Revive lifts a filter early.
        a.recover(
            "f",
            "a1",
            &offer.resources,
            Some(RefuseFilter {
                resources: offer.resources.clone(),
                until: t0 + Duration::from_secs(60),
            }),
        )
        .unwrap();
        assert!(a.allocate(t0 + Duration::from_secs(6)).is_empty());
        a.revive("f").unwrap();
        assert_eq!(a.allocate(t0 + Duration::from_secs(6)).len(), 1);
    }

    #[test]
    fn a_filtered_framework_leaves_the_offer_to_the_next() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:4;mem:1024"), &[]).unwrap();
        a.add_framework("f1", "*", false).unwrap();
        a.add_framework("f2", "*", false).unwrap();
        let first = a.allocate(t0).remove(0);
        assert_eq!(first.framework, "f1");
        let refuse = RefuseFilter {
            resources: first.resources.clone(),
            until: t0 + Duration::from_secs(5),
        };
        a.recover("f1", "a1", &first.resources, Some(refuse))
            .unwrap();
        let second = a.allocate(t0).remove(0);
        assert_eq!(second.framework, "f2");
    }

    #[test]
    fn suppress_and_revive() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:1;mem:64"), &[]).unwrap();
        a.add_framework("f", "*", true).unwrap();
        assert!(a.allocate(t0).is_empty(), "registered suppressed");
        a.revive("f").unwrap();
        let offer = a.allocate(t0).remove(0);
        a.recover("f", "a1", &offer.resources, None).unwrap();
        a.suppress("f").unwrap();
        assert!(a.allocate(t0).is_empty());
    }

    #[test]
    fn a_claim_that_overlaps_an_allocation_in_flight_settles_when_it_is_recovered() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:4;mem:1024"), &[]).unwrap();
        a.add_framework("offers", "*", false).unwrap();
        a.add_framework("omega", "*", true).unwrap();
        // The whole agent is allocated; a commit on the master's books takes part of it first.
        let offer = a.allocate(t0).remove(0);
        a.claim("omega", "a1", &r("cpus:3;mem:512")).unwrap();
        assert!(
            a.allocate(t0).is_empty(),
            "nothing is available while overcommitted"
        );
        // The master refuses the overtaken allocation and gives it back.
        a.recover("offers", "a1", &offer.resources, None).unwrap();
        assert_eq!(a.allocated("omega", "a1"), r("cpus:3;mem:512"));
        let rest = a.allocate(t0).remove(0);
        assert_eq!(rest.resources, r("cpus:1;mem:512"));
        assert!(a.share("omega") > 0.0, "committed tasks count in DRF");
        assert_eq!(
            a.claim("ghost", "a1", &r("cpus:1")),
            Err(AllocatorError::UnknownFramework("ghost".into()))
        );
    }

    #[test]
    fn a_deactivated_agent_is_not_offered_until_activated() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:1;mem:64"), &[]).unwrap();
        a.add_agent("a2", r("cpus:1;mem:64"), &[]).unwrap();
        a.add_framework("f", "*", false).unwrap();
        a.deactivate_agent("a1").unwrap();
        let agents: Vec<String> = a.allocate(t0).into_iter().map(|o| o.agent).collect();
        assert_eq!(agents, ["a2"]);
        a.activate_agent("a1").unwrap();
        let agents: Vec<String> = a.allocate(t0).into_iter().map(|o| o.agent).collect();
        assert_eq!(agents, ["a1"]);
        assert_eq!(
            a.deactivate_agent("nope"),
            Err(AllocatorError::UnknownAgent("nope".into()))
        );
    }

    #[test]
    fn tiny_leftovers_are_not_offered() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:0.005;mem:16"), &[]).unwrap();
        a.add_framework("f", "*", false).unwrap();
        assert!(a.allocate(t0).is_empty());
    }

    #[test]
    fn reserved_resources_go_only_to_their_role() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus(prod):2;mem(prod):256"), &[])
            .unwrap();
        a.add_framework("dev-fw", "dev", false).unwrap();
        assert!(a.allocate(t0).is_empty());
        a.add_framework("prod-fw", "prod", false).unwrap();
        let offer = a.allocate(t0).remove(0);
        assert_eq!(offer.framework, "prod-fw");
        assert_eq!(offer.resources, r("cpus(prod):2;mem(prod):256"));
    }

    #[test]
    fn agents_removed_and_re_added_with_running_tasks() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_framework("f", "*", false).unwrap();
        a.add_agent(
            "a1",
            r("cpus:4;mem:1024"),
            &[("f".into(), r("cpus:3;mem:512"))],
        )
        .unwrap();
        assert_eq!(a.allocated("f", "a1"), r("cpus:3;mem:512"));
        let offer = a.allocate(t0).remove(0);
        assert_eq!(offer.resources, r("cpus:1;mem:512"));
        assert!(
            (a.share("f") - 1.0).abs() < 1e-9,
            "it now holds the whole agent"
        );
        a.remove_agent("a1").unwrap();
        assert_eq!(a.share("f"), 0.0);
        assert!(a.allocate(t0).is_empty());
        assert!(matches!(
            a.recover("f", "a1", &r("cpus:1"), None),
            Err(AllocatorError::UnknownAgent(_))
        ));
        assert!(matches!(
            a.add_framework("f", "*", false),
            Err(AllocatorError::Duplicate(_))
        ));
    }

    #[test]
    fn recovering_what_was_not_allocated_is_refused() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        a.add_agent("a1", r("cpus:4;mem:1024"), &[]).unwrap();
        a.add_framework("f", "*", false).unwrap();
        let _ = a.allocate(t0);
        assert!(matches!(
            a.recover("f", "a1", &r("cpus:5"), None),
            Err(AllocatorError::NotAllocated { .. })
        ));
        a.recover("f", "a1", &r("cpus:4;mem:1024"), None).unwrap();
        assert!(a.allocated("f", "a1").is_empty());
    }

    #[test]
    fn agents_with_the_same_ports_are_recovered_and_removed_one_by_one() {
        // Every agent offers ports [31000-32000]; summed over agents as sets they would
        // collapse into one range, and giving back the second agent's ports would fail.
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        let agent = r("cpus:2;mem:100;ports:[31000-32000]");
        a.add_agent("a1", agent.clone(), &[]).unwrap();
        a.add_agent("a2", agent.clone(), &[]).unwrap();
        a.add_framework("f", "*", false).unwrap();
        let offers = a.allocate(t0);
        assert_eq!(offers.len(), 2);
        for offer in &offers {
            a.recover("f", &offer.agent, &offer.resources, None)
                .unwrap();
        }
        a.remove_agent("a1").unwrap();
        let offers = a.allocate(t0);
        assert_eq!(offers.len(), 1, "a2 is still offered after a1 left");
        assert_eq!(offers[0].resources, agent);
    }

    #[test]
    fn one_cycle_allocates_at_most_the_cap_of_agents_to_a_framework() {
        let t0 = Instant::now();
        let mut a = HierarchicalAllocator::default();
        for i in 0..MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE + 10 {
            a.add_agent(&format!("a{i:05}"), r("cpus:1;mem:64"), &[])
                .unwrap();
        }
        a.add_framework("f", "*", false).unwrap();
        assert_eq!(
            a.allocate(t0).len(),
            MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE
        );
        assert_eq!(a.allocate(t0).len(), 10, "the rest come in the next cycle");
        // A second framework gets what the first could not take in the same cycle.
        let mut b = HierarchicalAllocator::default();
        for i in 0..MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE + 10 {
            b.add_agent(&format!("a{i:05}"), r("cpus:1;mem:64"), &[])
                .unwrap();
        }
        b.add_framework("f", "*", false).unwrap();
        b.add_framework("g", "*", false).unwrap();
        let offers = b.allocate(t0);
        assert_eq!(offers.len(), MAX_ALLOCATIONS_PER_FRAMEWORK_PER_CYCLE + 10);
    }
}
