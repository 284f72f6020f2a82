//! The hasher of the master's maps keyed by agent, framework and task ids and by pids.
//!
//! A failover brings every agent and task back within a second or two, and std's SipHash was
//! the largest user-space cost of a re-registration (about 8% of the new master's time with
//! 40,000 agents). aHash is several times faster and, seeded at random per map like std's,
//! keeps the keys that frameworks and agents choose from being turned into collisions.
//!
//! A simulation that must replay bit for bit turns the random seeds off
//! ([`use_fixed_seeds`]): the order the master walks its maps in then depends only on what
//! it was told.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether new maps get fixed seeds instead of random ones (for the whole process).
static FIXED_SEEDS: AtomicBool = AtomicBool::new(false);

/// Every map made from now on in this process hashes with the same fixed seeds, so that
/// iteration orders replay. Only for simulations: fixed seeds let chosen keys collide.
pub fn use_fixed_seeds() {
    FIXED_SEEDS.store(true, Ordering::Relaxed);
}

/// The hasher builder: aHash, randomly seeded (or fixed, see [`use_fixed_seeds`]).
#[derive(Debug, Clone)]
pub struct FastHasher(ahash::RandomState);

impl Default for FastHasher {
    fn default() -> Self {
        if FIXED_SEEDS.load(Ordering::Relaxed) {
            FastHasher(ahash::RandomState::with_seeds(
                0x6b65_656c,
                0x7369_6d75,
                0x6c61_7465,
                0x0064_6574,
            ))
        } else {
            FastHasher(ahash::RandomState::new())
        }
    }
}

impl BuildHasher for FastHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastHasher>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, FastHasher>;
