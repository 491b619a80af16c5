//! A read cache for metadata stores: hot look-ups (tag → digest, manifest records, blob links)
//! answered from memory, invalidated exactly by the writes of the store that owns them.
//!
//! # Why this is exact
//!
//! Only a store that alone writes its data may cache it (redb: its file is locked by one
//! process). A store shared by several processes needs invalidations from the store's change feed
//! (for PostgreSQL, `LISTEN`/`NOTIFY`) before it can use this.
//!
//! The race to close is a reader that loads a value, a writer that changes and invalidates it,
//! and then the reader filling the cache with what it loaded. Every write therefore bumps a
//! generation after it commits and before it invalidates, and a reader that fills the cache
//! checks the generation it saw before its read again after the fill, removing what it put there
//! if any write happened meanwhile. Whatever the interleaving, a stale fill is removed by the
//! writer's invalidation or by the reader's own check.

use std::sync::atomic::{AtomicU64, Ordering};

pub use registry_core::cache_stats::CacheStats;

/// A generation counter shared by the caches of one store.
#[derive(Debug, Default)]
pub struct Generation(AtomicU64);

impl Generation {
    /// The current generation, taken before reading the store.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Marks a committed write; call before invalidating what it changed.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One bounded cache of values by their table key.
pub struct Cached<V> {
    entries: quick_cache::sync::Cache<String, V>,
}

impl<V: Clone> Cached<V> {
    /// A cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Cached { entries: quick_cache::sync::Cache::new(capacity) }
    }

    /// The cached value of `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.get(key)
    }

    /// Caches `value`, read from the store when the generation was `seen`.
    pub fn fill(&self, generation: &Generation, seen: u64, key: String, value: V) {
        self.entries.insert(key.clone(), value);
        if generation.current() != seen {
            self.entries.remove(key.as_str());
        }
    }

    /// Forgets `key` (after [`Generation::bump`]).
    pub fn invalidate(&self, key: &str) {
        self.entries.remove(key);
    }

    /// Its figures for metrics, named `cache`.
    pub fn stats(&self, cache: &'static str) -> CacheStats {
        CacheStats::counted(cache, self.entries.hits(), self.entries.misses(), self.entries.len())
    }

    /// Forgets everything (after [`Generation::bump`]).
    pub fn clear(&self) {
        self.entries.clear();
    }
}
