//! A `HashMap` with a fast multiplicative hash, for the small maps the per-message path looks up
//! (handlers by event, schema ids, cached schemas, offsets by partition): their keys come from this
//! service's own code, schemas and assignment, not from an attacker, and `SipHash` cost more than
//! the rest of each lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with [`Quick`].
pub(crate) type FastMap<K, V> = HashMap<K, V, QuickState>;

/// What builds [`Quick`] hashers, for other maps of this service's own keys.
pub(crate) type QuickState = BuildHasherDefault<Quick>;

/// The multiplier (an odd constant with well-spread bits, as in rustc's `FxHasher`).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// A multiplicative hash that takes eight bytes per step (FNV-1a, which the maps used before,
/// takes one: a topic name of forty bytes cost forty dependent multiplications, several times per
/// message). `finish` rotates the product's well-mixed high bits down, where the map takes a
/// bucket from.
#[derive(Default)]
pub(crate) struct Quick(u64);

impl Quick {
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for Quick {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The tail, zero-padded, with its length in the top byte: "a" and "a\0" differ.
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            word[7] = u8::try_from(rest.len()).unwrap_or(u8::MAX) | 0x80;
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_i32(&mut self, n: i32) {
        self.add(u64::from(u32::from_ne_bytes(n.to_ne_bytes())));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hash};

    #[test]
    fn keys_find_their_values() {
        let mut map: FastMap<String, u32> = FastMap::default();
        for (i, key) in ["a", "command.user.create", "event.user.created", ""]
            .iter()
            .enumerate()
        {
            map.insert((*key).to_owned(), u32::try_from(i).unwrap());
        }
        assert_eq!(map.get("command.user.create"), Some(&1));
        assert_eq!(map.get(""), Some(&3));
        assert_eq!(map.get("b"), None);
    }

    fn hash<T: Hash + ?Sized>(value: &T) -> u64 {
        BuildHasherDefault::<Quick>::default().hash_one(value)
    }

    /// Keys that differ in one byte, in their length or in trailing zero bytes hash apart, and
    /// the buckets a small table takes (the low bits) spread.
    #[test]
    fn near_keys_hash_apart() {
        let bytes: Vec<Vec<u8>> = (0..=16)
            .flat_map(|len| {
                (0..=255_u8).map(move |b| {
                    let mut key = vec![b'x'; len];
                    key.push(b);
                    key
                })
            })
            // (`[0]` is in the first set already.)
            .chain((0..17).filter(|len| *len != 1).map(|len| vec![0; len]))
            .collect();
        let hashes: HashSet<u64> = bytes.iter().map(|k| hash(k.as_slice())).collect();
        assert_eq!(hashes.len(), bytes.len());

        let partitions: HashSet<u64> = (0..64).map(|p: i32| hash(&p) & 63).collect();
        assert!(partitions.len() > 32, "{} of 64 buckets", partitions.len());
        let topics: HashSet<u64> = (0..64)
            .map(|i| hash(&format!("orders.v{i}")) & 63)
            .collect();
        assert!(topics.len() > 32, "{} of 64 buckets", topics.len());
    }
}
