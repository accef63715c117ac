//! A `HashMap` with the FNV-1a hash, for the small maps the per-message path looks up (handlers by
//! event, schema ids, cached schemas): their keys come from this service's own code and schemas,
//! not from an attacker, and `SipHash` cost more than the rest of each lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with FNV-1a.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// FNV-1a, 64 bits.
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
