//! The hash map the hub uses for its per-message lookups.

use std::collections::{HashMap, HashSet};

/// A fast hasher for the hub's maps. Their keys are connection numbers the server chooses
/// and nicknames limited to 16 bytes; the maps are bounded by `--max-clients` and hold
/// no more than a client can create at once, so flooding one bucket gains a client
/// nothing it could not get by connecting. SipHash's resistance is not needed here, and it
/// costs on every relayed message (FxHash's multiply-rotate instead).
#[derive(Clone, Copy, Default)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// A set with the same hasher.
pub type FastSet<K> = HashSet<K, std::hash::BuildHasherDefault<FxHasher>>;
