//! The hasher of the master's maps keyed by agent, framework and task ids and by pids.
//!
//! A failover brings every agent and task back within a second or two, and std's SipHash was
//! the largest user-space cost of a re-registration (about 8% of the new master's time with
//! 40,000 agents). aHash is several times faster and, seeded at random per map like std's,
//! keeps the keys that frameworks and agents choose from being turned into collisions.

use std::collections::{HashMap, HashSet};

/// The hasher builder: aHash, randomly seeded.
pub type FastHasher = ahash::RandomState;
/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastHasher>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, FastHasher>;
