//! Merged, sorted, inclusive ranges of integers: how port resources are counted.

use std::fmt;

/// A set of integers stored as disjoint, non-adjacent inclusive ranges in ascending order.
///
/// ```
/// use resources::RangeSet;
/// let mut ports = RangeSet::new();
/// ports.insert(31000, 31999);
/// ports.insert(32000, 32010); // adjacent: merged
/// assert_eq!(ports.to_string(), "[31000-32010]");
/// assert_eq!(ports.len(), 1011);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// Adds `begin..=end` (`begin <= end`), merging with overlapping or adjacent ranges.
    pub fn insert(&mut self, begin: u64, end: u64) {
        debug_assert!(begin <= end);
        let (mut begin, mut end) = (begin, end);
        let mut merged = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(b, e) in &self.ranges {
            if e.saturating_add(1) < begin {
                merged.push((b, e));
            } else if end.saturating_add(1) < b {
                if !placed {
                    merged.push((begin, end));
                    placed = true;
                }
                merged.push((b, e));
            } else {
                begin = begin.min(b);
                end = end.max(e);
            }
        }
        if !placed {
            merged.push((begin, end));
        }
        merged.sort_unstable();
        self.ranges = merged;
    }

    /// Adds every range of `other`.
    pub fn add(&mut self, other: &RangeSet) {
        for &(b, e) in &other.ranges {
            self.insert(b, e);
        }
    }

    /// Removes every integer of `other`.
    pub fn remove(&mut self, other: &RangeSet) {
        for &(rb, re) in &other.ranges {
            let mut out = Vec::with_capacity(self.ranges.len() + 1);
            for &(b, e) in &self.ranges {
                if re < b || rb > e {
                    out.push((b, e));
                    continue;
                }
                if b < rb {
                    out.push((b, rb - 1));
                }
                if re < e {
                    out.push((re + 1, e));
                }
            }
            self.ranges = out;
        }
    }

    /// Whether every integer of `other` is in this set.
    pub fn contains(&self, other: &RangeSet) -> bool {
        other
            .ranges
            .iter()
            .all(|&(b, e)| self.ranges.iter().any(|&(sb, se)| sb <= b && e <= se))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many integers the set holds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(b, e)| e - b + 1).sum()
    }

    /// The ranges, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|(b, e)| format!("{b}-{e}"))
            .collect();
        write!(f, "[{}]", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_overlaps_and_neighbours() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(21, 29);
        assert_eq!(s.to_string(), "[10-40]");
        s.insert(50, 50);
        s.insert(0, 5);
        assert_eq!(s.to_string(), "[0-5,10-40,50-50]");
        assert_eq!(s.len(), 6 + 31 + 1);
    }

    #[test]
    fn remove_and_contains() {
        let mut s = RangeSet::new();
        s.insert(0, 100);
        let mut hole = RangeSet::new();
        hole.insert(10, 19);
        hole.insert(100, 100);
        assert!(s.contains(&hole));
        s.remove(&hole);
        assert_eq!(s.to_string(), "[0-9,20-99]");
        assert!(!s.contains(&hole));
        let mut edge = RangeSet::new();
        edge.insert(u64::MAX, u64::MAX);
        s.insert(u64::MAX - 1, u64::MAX);
        assert!(s.contains(&edge));
    }
}
