//! The entries of a [`Resources`](crate::Resources): (name, role) → amount, kept in a vector
//! sorted by key.
//!
//! A resource set has a handful of entries (a task: cpus and mem; an agent: a few more), and
//! the master holds one per task several times over (its books, the API's view). A
//! `BTreeMap` spends a whole leaf node (≈ 900 bytes here) on even one entry; a sorted vector
//! spends what the entries take, and finds one by binary search as fast.

use crate::label::Label;
use crate::Amount;

/// An entry's key: (name, role).
pub(crate) type Key = (Label, Label);

/// The entries, sorted by key, each key once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entries {
    sorted: Vec<(Key, Amount)>,
}

impl Entries {
    fn position(&self, name: &str, role: &str) -> Result<usize, usize> {
        self.sorted
            .binary_search_by(|((n, r), _)| (n.as_str(), r.as_str()).cmp(&(name, role)))
    }

    /// The amount of (name, role), if any.
    pub(crate) fn get(&self, name: &str, role: &str) -> Option<&Amount> {
        let i = self.position(name, role).ok()?;
        Some(&self.sorted[i].1)
    }

    /// The amount of (name, role), to change in place, if any.
    pub(crate) fn get_mut(&mut self, name: &str, role: &str) -> Option<&mut Amount> {
        let i = self.position(name, role).ok()?;
        Some(&mut self.sorted[i].1)
    }

    /// Sets the amount of (name, role).
    pub(crate) fn insert(&mut self, name: Label, role: Label, amount: Amount) {
        match self.position(&name, &role) {
            Ok(i) => self.sorted[i].1 = amount,
            Err(i) => self.sorted.insert(i, ((name, role), amount)),
        }
        debug_assert!(self.sorted.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// Removes (name, role).
    pub(crate) fn remove(&mut self, name: &str, role: &str) {
        if let Ok(i) = self.position(name, role) {
            self.sorted.remove(i);
        }
    }

    /// Whether there is no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Amount)> {
        self.sorted.iter().map(|(k, v)| (k, v))
    }

    /// Gives back the room no entry uses (a set built entry by entry and then kept).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.sorted.shrink_to_fit();
    }
}

impl FromIterator<(Key, Amount)> for Entries {
    /// Entries from pairs in any order; a repeated key keeps its last amount.
    fn from_iter<I: IntoIterator<Item = (Key, Amount)>>(pairs: I) -> Entries {
        let mut sorted: Vec<(Key, Amount)> = pairs.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of equal keys, as inserting one after another would.
        sorted.reverse();
        sorted.dedup_by(|later, earlier| later.0 == earlier.0);
        sorted.reverse();
        Entries { sorted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, role: &str) -> Key {
        (Label::new(name), Label::new(role))
    }

    #[test]
    fn entries_stay_sorted_and_unique_whatever_the_order_they_come_in() {
        let mut e = Entries::default();
        e.insert("mem".into(), "*".into(), Amount::Scalar(1));
        e.insert("cpus".into(), "web".into(), Amount::Scalar(2));
        e.insert("cpus".into(), "*".into(), Amount::Scalar(3));
        e.insert("mem".into(), "*".into(), Amount::Scalar(4));
        let keys: Vec<&Key> = e.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [&key("cpus", "*"), &key("cpus", "web"), &key("mem", "*")]
        );
        assert_eq!(e.get("mem", "*"), Some(&Amount::Scalar(4)));
        if let Some(Amount::Scalar(v)) = e.get_mut("cpus", "web") {
            *v += 1;
        }
        assert_eq!(e.get("cpus", "web"), Some(&Amount::Scalar(3)));
        e.remove("cpus", "*");
        e.remove("disk", "*");
        assert_eq!(e.get("cpus", "*"), None);
        let collected: Entries = [
            (key("b", "*"), Amount::Scalar(1)),
            (key("a", "*"), Amount::Scalar(2)),
            (key("b", "*"), Amount::Scalar(3)),
        ]
        .into_iter()
        .collect();
        let pairs: Vec<(&Key, &Amount)> = collected.iter().collect();
        assert_eq!(
            pairs,
            [
                (&key("a", "*"), &Amount::Scalar(2)),
                (&key("b", "*"), &Amount::Scalar(3))
            ]
        );
    }
}
