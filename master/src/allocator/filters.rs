//! Refusal filters: a framework that declines resources with `refuse_seconds` is not offered
//! them (or less than them) on that agent again until the filter expires, unless it revives.

use std::time::Instant;

use resources::Resources;

/// "Do not offer me these resources on this agent again before `until`."
#[derive(Debug, Clone, PartialEq)]
pub struct RefuseFilter {
    /// The resources declined.
    pub resources: Resources,
    /// When the filter expires.
    pub until: Instant,
}

impl RefuseFilter {
    /// Whether the filter still holds at `now` and covers an offer of `available`: Mesos
    /// filters an offer that is no larger than what was refused.
    pub fn filters(&self, available: &Resources, now: Instant) -> bool {
        now < self.until && self.resources.contains(available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn filters_smaller_offers_until_it_expires() {
        let t0 = Instant::now();
        let f = RefuseFilter {
            resources: "cpus:4;mem:1024".parse().unwrap(),
            until: t0 + Duration::from_secs(5),
        };
        assert!(f.filters(&"cpus:4;mem:1024".parse().unwrap(), t0));
        assert!(f.filters(&"cpus:2".parse().unwrap(), t0));
        assert!(
            !f.filters(&"cpus:8;mem:1024".parse().unwrap(), t0),
            "more than refused is offered"
        );
        assert!(!f.filters(&"cpus:2".parse().unwrap(), t0 + Duration::from_secs(5)));
    }
}
