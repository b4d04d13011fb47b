//! A small cache for what every request needs before its handler runs: the principal behind a
//! token and the workspace behind a path. Entries die when the store's access epoch moves (any
//! key or workspace change, here or, via NOTIFY, on another replica) and after a short TTL in
//! case a notification was lost.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry may be trusted without hearing about changes.
pub const TTL: Duration = Duration::from_secs(5);
/// Bound on entries; when full the cache starts over (keys are high-entropy, so nothing to
/// gain from cleverer eviction, and a flood of bad tokens is never cached in the first place).
const MAX_ENTRIES: usize = 10_000;

pub struct EpochCache<K, V> {
    map: Mutex<HashMap<K, (u64, Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Default for EpochCache<K, V> {
    fn default() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> EpochCache<K, V> {
    pub fn get(&self, key: &K, epoch: u64) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).filter(|(e, at, _)| *e == epoch && at.elapsed() < TTL).map(|(_, _, v)| v.clone())
    }

    pub fn put(&self, key: K, epoch: u64, value: V) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (epoch, Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_die_with_the_epoch() {
        let c: EpochCache<&str, i32> = EpochCache::default();
        c.put("a", 1, 7);
        assert_eq!(c.get(&"a", 1), Some(7));
        assert_eq!(c.get(&"a", 2), None);
        assert_eq!(c.get(&"b", 1), None);
    }
}
