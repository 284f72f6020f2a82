//! Dominant Resource Fairness (Ghodsi et al., used by Mesos's allocator): a client's dominant
//! share is its largest share of any one resource of the cluster, divided by its weight; the
//! allocator offers next to the client whose dominant share is lowest.
//!
//! [`DrfSorter`] orders the clients of one level (roles, or the frameworks of one role);
//! [`HierarchicalDrf`] nests them: roles by their share, then frameworks within each role.

use std::collections::{BTreeMap, BTreeSet};

use resources::{ResourceError, Resources};

/// Why an allocation change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DrfError {
    /// No client by that name.
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    /// Unallocating more than the client holds.
    #[error("client {client:?} holds {held}, not {asked}")]
    NotHeld {
        /// The client.
        client: String,
        /// What it holds.
        held: String,
        /// What was to be taken back.
        asked: String,
    },
    /// Resources of clashing types.
    #[error(transparent)]
    Resources(#[from] ResourceError),
}

#[derive(Debug, Clone)]
struct Client {
    weight: f64,
    allocated: Resources,
    active: bool,
    /// Weighted dominant share, recomputed when the allocation, weight or total changes.
    share: f64,
}

/// Orders clients by weighted dominant share, lowest first.
///
/// Shares are cached and the active clients kept sorted, so finding the next client to offer
/// to is a walk from the front, not a sort (the allocator asks once per agent per cycle).
#[derive(Debug, Clone, Default)]
pub struct DrfSorter {
    /// Total scalar quantities of the cluster, by resource name.
    total: BTreeMap<String, f64>,
    clients: BTreeMap<String, Client>,
    /// Active clients by (share, name). Shares are non-negative, and the bit patterns of
    /// non-negative floats sort as the floats do.
    order: BTreeSet<(u64, String)>,
}

impl DrfSorter {
    /// An empty sorter over an empty cluster.
    pub fn new() -> DrfSorter {
        DrfSorter::default()
    }

    /// Sets the cluster's total resources (the denominator of every share).
    pub fn set_total(&mut self, total: &Resources) {
        self.total = total.scalar_totals();
        let names: Vec<String> = self.clients.keys().cloned().collect();
        for name in names {
            self.refresh(&name);
        }
    }

    /// Recomputes a client's share and its place in the order.
    fn refresh(&mut self, name: &str) {
        let Some(client) = self.clients.get(name) else {
            return;
        };
        let old = (client.share.to_bits(), name.to_owned());
        let share = dominant_share(&self.total, &client.allocated) / client.weight;
        let active = client.active;
        self.order.remove(&old);
        if active {
            self.order.insert((share.to_bits(), name.to_owned()));
        }
        if let Some(client) = self.clients.get_mut(name) {
            client.share = share;
        }
    }

    /// Adds a client with `weight` (> 0; a weight of 2 entitles it to twice the share).
    /// Re-adding an existing client updates its weight and reactivates it.
    pub fn add_client(&mut self, name: &str, weight: f64) {
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.clients
            .entry(name.to_owned())
            .and_modify(|c| {
                c.weight = weight;
                c.active = true;
            })
            .or_insert(Client {
                weight,
                allocated: Resources::new(),
                active: true,
                share: 0.0,
            });
        self.refresh(name);
    }

    /// Removes a client and its allocation.
    pub fn remove_client(&mut self, name: &str) {
        if let Some(client) = self.clients.remove(name) {
            self.order
                .remove(&(client.share.to_bits(), name.to_owned()));
        }
    }

    /// Keeps the client's allocation but leaves it out of [`DrfSorter::sort`] (a suppressed
    /// framework, say).
    pub fn deactivate(&mut self, name: &str) {
        if let Some(c) = self.clients.get_mut(name) {
            c.active = false;
        }
        self.refresh(name);
    }

    /// Puts a deactivated client back into the order.
    pub fn activate(&mut self, name: &str) {
        if let Some(c) = self.clients.get_mut(name) {
            c.active = true;
        }
        self.refresh(name);
    }

    /// Records that `resources` were allocated to `name`.
    pub fn allocate(&mut self, name: &str, resources: &Resources) -> Result<(), DrfError> {
        let client = self
            .clients
            .get_mut(name)
            .ok_or_else(|| DrfError::UnknownClient(name.to_owned()))?;
        // Shares are over scalars; ranges and sets of different agents do not add up.
        client.allocated.add_scalars(resources)?;
        self.refresh(name);
        Ok(())
    }

    /// Records that `resources` allocated to `name` were given back.
    pub fn unallocate(&mut self, name: &str, resources: &Resources) -> Result<(), DrfError> {
        let client = self
            .clients
            .get_mut(name)
            .ok_or_else(|| DrfError::UnknownClient(name.to_owned()))?;
        client.allocated = client
            .allocated
            .checked_sub(&resources.scalars())
            .ok_or_else(|| DrfError::NotHeld {
                client: name.to_owned(),
                held: client.allocated.to_string(),
                asked: resources.to_string(),
            })?;
        self.refresh(name);
        Ok(())
    }

    /// What `name` holds.
    pub fn allocation(&self, name: &str) -> Option<&Resources> {
        self.clients.get(name).map(|c| &c.allocated)
    }

    /// The client's weighted dominant share: the largest of its shares of each resource,
    /// divided by its weight. 0 for an unknown client or an empty cluster.
    pub fn share(&self, name: &str) -> f64 {
        self.clients.get(name).map_or(0.0, |c| c.share)
    }

    /// Active clients, lowest weighted dominant share first; ties go to the name that sorts
    /// first, so the order is deterministic.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|(_, name)| name.as_str())
    }

    /// [`DrfSorter::iter`] collected.
    pub fn sort(&self) -> Vec<&str> {
        self.iter().collect()
    }
}

/// The largest share of any one resource that `allocated` takes of `total`.
fn dominant_share(total: &BTreeMap<String, f64>, allocated: &Resources) -> f64 {
    allocated
        .scalar_totals()
        .iter()
        .filter_map(|(resource, amount)| {
            let total = *total.get(resource)?;
            (total > 0.0).then(|| amount / total)
        })
        .fold(0.0, f64::max)
}

/// Two-level DRF: roles ordered by their weighted dominant share, and within each role its
/// frameworks ordered by theirs (Mesos's hierarchical allocator).
#[derive(Debug, Clone, Default)]
pub struct HierarchicalDrf {
    roles: DrfSorter,
    frameworks: BTreeMap<String, DrfSorter>,
    total: Resources,
}

impl HierarchicalDrf {
    /// An empty allocator order.
    pub fn new() -> HierarchicalDrf {
        HierarchicalDrf::default()
    }

    /// Sets the cluster's total resources.
    pub fn set_total(&mut self, total: &Resources) {
        self.total = total.clone();
        self.roles.set_total(total);
        for sorter in self.frameworks.values_mut() {
            sorter.set_total(total);
        }
    }

    /// Sets a role's weight (default 1).
    pub fn set_role_weight(&mut self, role: &str, weight: f64) {
        self.roles.add_client(role, weight);
    }

    /// Adds a framework under `role`.
    pub fn add_framework(&mut self, role: &str, framework: &str) {
        if self.roles.allocation(role).is_none() {
            self.roles.add_client(role, 1.0);
        }
        let total = &self.total;
        self.frameworks
            .entry(role.to_owned())
            .or_insert_with(|| {
                let mut sorter = DrfSorter::new();
                sorter.set_total(total);
                sorter
            })
            .add_client(framework, 1.0);
    }

    /// Removes a framework (its allocation leaves its role's too).
    pub fn remove_framework(&mut self, role: &str, framework: &str) -> Result<(), DrfError> {
        if let Some(sorter) = self.frameworks.get_mut(role) {
            if let Some(held) = sorter.allocation(framework).cloned() {
                self.roles.unallocate(role, &held)?;
            }
            sorter.remove_client(framework);
        }
        Ok(())
    }

    /// Records an allocation to `framework` in `role`.
    pub fn allocate(&mut self, role: &str, framework: &str, r: &Resources) -> Result<(), DrfError> {
        self.frameworks
            .get_mut(role)
            .ok_or_else(|| DrfError::UnknownClient(format!("{role}/{framework}")))?
            .allocate(framework, r)?;
        self.roles.allocate(role, r)
    }

    /// Records that `framework` in `role` gave `r` back.
    pub fn unallocate(
        &mut self,
        role: &str,
        framework: &str,
        r: &Resources,
    ) -> Result<(), DrfError> {
        self.frameworks
            .get_mut(role)
            .ok_or_else(|| DrfError::UnknownClient(format!("{role}/{framework}")))?
            .unallocate(framework, r)?;
        self.roles.unallocate(role, r)
    }

    /// (role, framework) pairs in the order offers should be made.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.roles.iter().flat_map(move |role| {
            self.frameworks
                .get(role)
                .into_iter()
                .flat_map(move |sorter| sorter.iter().map(move |f| (role, f)))
        })
    }

    /// [`HierarchicalDrf::iter`] collected.
    pub fn order(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(r, f)| (r.to_owned(), f.to_owned()))
            .collect()
    }

    /// Suppresses (or revives) offers to a framework without forgetting its allocation.
    pub fn set_active(&mut self, role: &str, framework: &str, active: bool) {
        if let Some(sorter) = self.frameworks.get_mut(role) {
            if active {
                sorter.activate(framework);
            } else {
                sorter.deactivate(framework);
            }
        }
    }

    /// The framework sorter of a role, to read shares.
    pub fn role(&self, role: &str) -> Option<&DrfSorter> {
        self.frameworks.get(role)
    }

    /// The role sorter, to read role shares.
    pub fn roles(&self) -> &DrfSorter {
        &self.roles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Resources {
        text.parse().unwrap()
    }

    /// Progressive filling: repeatedly give the lowest-share framework one task if it fits.
    fn fill(
        drf: &mut HierarchicalDrf,
        total: &Resources,
        demands: &[(&str, &str, Resources)],
    ) -> BTreeMap<String, u32> {
        let mut free = total.clone();
        let mut tasks: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            let next = drf.order().into_iter().find_map(|(role, framework)| {
                let (_, _, demand) = demands.iter().find(|(_, f, _)| *f == framework)?;
                free.contains(demand)
                    .then(|| (role, framework, demand.clone()))
            });
            let Some((role, framework, demand)) = next else {
                return tasks;
            };
            free = free.checked_sub(&demand).unwrap();
            drf.allocate(&role, &framework, &demand).unwrap();
            *tasks.entry(framework).or_default() += 1;
        }
    }

    #[test]
    fn seed_example_f1_gets_20_tasks_and_f2_gets_10() {
        // 100 CPUs and 100 GB; F1's tasks need <4 CPU, 1 GB>, F2's <1 CPU, 8 GB>.
        let total = r("cpus:100;mem:100");
        let mut drf = HierarchicalDrf::new();
        drf.set_total(&total);
        drf.add_framework("*", "f1");
        drf.add_framework("*", "f2");
        let tasks = fill(
            &mut drf,
            &total,
            &[
                ("*", "f1", r("cpus:4;mem:1")),
                ("*", "f2", r("cpus:1;mem:8")),
            ],
        );
        assert_eq!(tasks["f1"], 20);
        assert_eq!(tasks["f2"], 10);
        let sorter = drf.role("*").unwrap();
        // Both end with the same dominant share: 80 % of CPU for F1, 80 % of memory for F2.
        assert!((sorter.share("f1") - 0.8).abs() < 1e-9);
        assert!((sorter.share("f2") - 0.8).abs() < 1e-9);
    }

    #[test]
    fn role_weights_divide_the_cluster() {
        let total = r("cpus:30;mem:30");
        let mut drf = HierarchicalDrf::new();
        drf.set_total(&total);
        drf.set_role_weight("prod", 2.0);
        drf.set_role_weight("dev", 1.0);
        drf.add_framework("prod", "p");
        drf.add_framework("dev", "d");
        let tasks = fill(
            &mut drf,
            &total,
            &[
                ("prod", "p", r("cpus:1;mem:1")),
                ("dev", "d", r("cpus:1;mem:1")),
            ],
        );
        assert_eq!((tasks["p"], tasks["d"]), (20, 10));
    }

    #[test]
    fn frameworks_within_a_role_share_its_part() {
        let total = r("cpus:12");
        let mut drf = HierarchicalDrf::new();
        drf.set_total(&total);
        drf.add_framework("a", "a1");
        drf.add_framework("a", "a2");
        drf.add_framework("b", "b1");
        let tasks = fill(
            &mut drf,
            &total,
            &[
                ("a", "a1", r("cpus:1")),
                ("a", "a2", r("cpus:1")),
                ("b", "b1", r("cpus:1")),
            ],
        );
        assert_eq!((tasks["a1"], tasks["a2"], tasks["b1"]), (3, 3, 6));
    }

    #[test]
    fn unallocate_returns_share_and_refuses_what_is_not_held() {
        let mut s = DrfSorter::new();
        s.set_total(&r("cpus:10;mem:10"));
        s.add_client("f", 1.0);
        s.allocate("f", &r("cpus:5;mem:1")).unwrap();
        assert_eq!(s.share("f"), 0.5);
        s.unallocate("f", &r("cpus:5")).unwrap();
        assert!((s.share("f") - 0.1).abs() < 1e-9);
        assert!(matches!(
            s.unallocate("f", &r("cpus:1")),
            Err(DrfError::NotHeld { .. })
        ));
        assert!(matches!(
            s.allocate("g", &r("cpus:1")),
            Err(DrfError::UnknownClient(_))
        ));
        s.deactivate("f");
        assert!(s.sort().is_empty());
        s.activate("f");
        assert_eq!(s.sort(), vec!["f"]);
    }
}
