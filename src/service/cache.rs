//! A node's short memory of the reads every API call after login repeats: the session check
//! and introspection's client lookup. An answer may be up to `ttl` old (at most a second, as
//! docs/rules.md, Interfaces allows) for changes made on another node; a change made on this
//! node is seen at once, because its service calls [`ReadCache::forget_all`] after the commit
//! and entries carry the generation they were read in, so none read before the commit is
//! served after it. Only hits are remembered, and the memory is bounded.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shards, so that requests on many cores rarely wait for one another's lock.
const SHARDS: usize = 16;

pub struct ReadCache<V> {
    ttl_ms: i64,
    per_shard: usize,
    generation: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<String, Entry<V>>>>,
}

struct Entry<V> {
    value: V,
    filled_at: i64,
    generation: u64,
}

/// What [`ReadCache::generation`] returned before the read whose result is to be kept.
#[derive(Debug, Clone, Copy)]
pub struct Generation(u64);

impl<V: Clone> ReadCache<V> {
    /// Entries are served for `ttl_ms` milliseconds (0: never kept); at most about `capacity`.
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        ReadCache {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            generation: AtomicU64::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, Entry<V>>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding a shard cannot leave an entry half-written: use it anyway.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, e: &Entry<V>, now: i64, generation: u64) -> bool {
        e.generation == generation && now >= e.filled_at && now - e.filled_at < self.ttl_ms
    }

    /// Read this before the database read whose result may be [`put`](Self::put).
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire))
    }

    /// The remembered value, if it was filled less than `ttl` ago and nothing was forgotten
    /// since.
    pub fn get(&self, key: &str, now: i64) -> Option<V> {
        if self.ttl_ms <= 0 {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let shard = self.shard(key);
        shard
            .get(key)
            .filter(|e| self.fresh(e, now, generation))
            .map(|e| e.value.clone())
    }

    /// Remembers a value read after `generation` was taken; dropped at once if something was
    /// forgotten since (the read may predate that change).
    pub fn put(&self, key: &str, value: V, now: i64, generation: Generation) {
        if self.ttl_ms <= 0 {
            return;
        }
        let current = self.generation.load(Ordering::Acquire);
        if generation.0 != current {
            return;
        }
        let mut shard = self.shard(key);
        if shard.len() >= self.per_shard && !shard.contains_key(key) {
            shard.retain(|_, e| self.fresh(e, now, current));
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(
            key.to_owned(),
            Entry {
                value,
                filled_at: now,
                generation: current,
            },
        );
    }

    /// Forgets everything remembered so far. Call it after the commit of a change that may
    /// alter a remembered answer.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Entries held, stale ones included (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_a_value_for_its_ttl_and_not_after() {
        let c = ReadCache::new(500, 100);
        let g = c.generation();
        c.put("a", 1, 1_000, g);
        assert_eq!(c.get("a", 1_000), Some(1));
        assert_eq!(c.get("a", 1_499), Some(1));
        assert_eq!(c.get("a", 1_500), None, "ttl over");
        assert_eq!(c.get("a", 999), None, "a clock moved back serves nothing");
        assert_eq!(c.get("b", 1_000), None);
    }

    #[test]
    fn a_change_on_this_node_is_seen_at_once() {
        let c = ReadCache::new(500, 100);
        c.put("a", 1, 0, c.generation());
        c.put("b", 2, 0, c.generation());
        c.forget_all();
        assert_eq!(c.get("a", 1), None);
        assert_eq!(c.get("b", 1), None);
        c.put("b", 3, 2, c.generation());
        assert_eq!(c.get("b", 2), Some(3));
    }

    #[test]
    fn a_read_made_before_a_change_is_never_kept() {
        let c = ReadCache::new(500, 100);
        // A check takes the generation, reads the session; a logout commits and forgets.
        let before = c.generation();
        c.forget_all();
        c.put("a", "live", 0, before);
        assert_eq!(c.get("a", 0), None);
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let c = ReadCache::new(0, 100);
        c.put("a", 1, 0, c.generation());
        assert_eq!(c.get("a", 0), None);
        assert!(c.is_empty());
    }

    #[test]
    fn memory_stays_bounded() {
        let c = ReadCache::new(500, 64);
        for i in 0..10_000 {
            c.put(&format!("k{i}"), i, 0, c.generation());
        }
        assert!(c.len() <= 64, "{} entries", c.len());
        // Stale entries go first: after the ttl, new keys still get in and stay.
        c.put("fresh", 1, 600, c.generation());
        assert_eq!(c.get("fresh", 600), Some(1));
    }
}
