//! The one cache of registry answers: a bounded map of what the registry said (successes, and
//! for a short time the ids it does not have), used by the HTTP client and the decoder.
//!
//! When it is full, expired entries go first, then an arbitrary one: a stream of new keys (schema
//! ids from hostile messages, say) cannot grow it past its capacity.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A bounded map whose entries may expire after `ttl`.
#[derive(Debug)]
pub(crate) struct Bounded<K, V, S = RandomState> {
    map: Mutex<HashMap<K, (Instant, V), S>>,
    capacity: usize,
    ttl: Option<Duration>,
}

impl<K: Eq + Hash, V: Clone, S: BuildHasher + Default> Bounded<K, V, S> {
    /// A map of at most `capacity` entries that do not expire.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::default()),
            capacity: capacity.max(1),
            ttl: None,
        }
    }

    /// A map of at most `capacity` entries, each forgotten `ttl` after it was inserted.
    pub(crate) fn with_ttl(capacity: usize, ttl: Duration) -> Self {
        Self {
            ttl: Some(ttl),
            ..Self::new(capacity)
        }
    }

    /// The value of `key` and how long ago it was inserted, unless it expired.
    pub(crate) fn get_with_age<Q>(&self, key: &Q) -> Option<(V, Duration)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, value) = map.get(key)?;
        let age = at.elapsed();
        if self.ttl.is_some_and(|ttl| age >= ttl) {
            return None;
        }
        Some((value.clone(), age))
    }

    /// The value of `key`, unless it expired.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.ttl.is_none() {
            // No clock read on the hot path.
            let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            return map.get(key).map(|(_, value)| value.clone());
        }
        self.get_with_age(key).map(|(value, _)| value)
    }

    /// Inserts `value` for `key`, making room first when the map is full.
    pub(crate) fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity && !map.contains_key(&key) {
            if let Some(ttl) = self.ttl {
                map.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            if map.len() >= self.capacity {
                // The table's first entry: an arbitrary one, found without a second scan.
                let mut drop_one = true;
                map.retain(|_, _| !std::mem::take(&mut drop_one));
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    /// How many entries it holds (expired ones included until they are pushed out).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let cache: Bounded<u32, u32> = Bounded::new(100);
        for id in 0..10_000 {
            cache.insert(id, id * 2);
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.get(&9_999), Some(19_998), "the newest entry stays");
        cache.insert(9_999, 1);
        assert_eq!(cache.get(&9_999), Some(1));
        assert_eq!(cache.len(), 100);
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache: Bounded<String, u32> = Bounded::with_ttl(10, Duration::from_millis(30));
        cache.insert("a".to_owned(), 1);
        let (value, age) = cache.get_with_age("a").unwrap();
        assert_eq!(value, 1);
        assert!(age < Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("a"), None);
        // Expired entries make room before live ones are pushed out.
        for n in 0..9 {
            cache.insert(format!("live{n}"), n);
        }
        cache.insert("new".to_owned(), 9);
        assert_eq!(cache.len(), 10);
        assert!((0..9).all(|n| cache.get(&format!("live{n}")) == Some(n)));
    }
}
