//! Randomness a node's processes draw (uuids of status updates and streams, container ids,
//! jitter): from the OS by default, or from one seed ([`crate::NodeConfig::seed`]) so that a
//! simulation run on the paused clock, single-threaded, replays bit for bit.

use std::hash::{BuildHasher, Hasher};

use parking_lot::Mutex;

/// A node's source of random numbers.
#[derive(Debug)]
pub struct NodeRandom {
    /// splitmix64's state.
    state: Mutex<u64>,
    seeded: bool,
}

impl NodeRandom {
    /// Draws from `seed`: the same seed, the same numbers in the same order.
    pub fn seeded(seed: u64) -> NodeRandom {
        NodeRandom {
            state: Mutex::new(seed),
            seeded: true,
        }
    }

    /// Draws from a seed the OS chose.
    pub fn from_os() -> NodeRandom {
        // std's RandomState keys come from the OS's random source.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x6b65_656c);
        NodeRandom {
            state: Mutex::new(hasher.finish()),
            seeded: false,
        }
    }

    /// Whether a seed was given (a simulation), rather than the OS's randomness.
    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut state = self.state.lock();
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random (version 4) uuid.
    pub fn uuid(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A fraction in [0, 1), for jitter.
    pub fn fraction(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_the_os_does_not() {
        let (a, b) = (NodeRandom::seeded(7), NodeRandom::seeded(7));
        let draws: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(draws, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_eq!(a.uuid(), b.uuid());
        assert_eq!(a.uuid().get_version_num(), 4);
        assert_ne!(
            NodeRandom::from_os().next_u64(),
            NodeRandom::from_os().next_u64()
        );
        let f = a.fraction();
        assert!((0.0..1.0).contains(&f));
    }
}
