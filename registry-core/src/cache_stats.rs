//! What a bounded in-memory cache reports for metrics: its hits, misses and size. Every crate's
//! caches (the engine's, the accounts', the platform's) report in this one shape, so that an
//! operator watching memory can tell which of them holds it.

use std::sync::Arc;

/// The hits, misses and size of one cache, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    /// Which cache (`tags`, `manifest_bytes`, `verified_tokens`, ...), unique in a process.
    pub cache: &'static str,
    /// Look-ups answered from it.
    pub hits: u64,
    /// Look-ups that went past it.
    pub misses: u64,
    /// Entries it holds now.
    pub entries: u64,
    /// Bytes its entries hold, for a cache bounded by bytes; `None` for one bounded by entries.
    pub bytes: Option<u64>,
}

impl CacheStats {
    /// The figures of a cache bounded by its number of entries.
    pub fn counted(cache: &'static str, hits: u64, misses: u64, entries: usize) -> CacheStats {
        CacheStats { cache, hits, misses, entries: entries as u64, bytes: None }
    }

    /// The figures of a cache bounded by the bytes its entries hold.
    pub fn weighed(cache: &'static str, hits: u64, misses: u64, entries: usize, bytes: u64) -> CacheStats {
        CacheStats { bytes: Some(bytes), ..CacheStats::counted(cache, hits, misses, entries) }
    }
}

/// Reads a group of caches' figures when metrics are rendered: each part of a program that keeps
/// caches gives one, and the metrics endpoint calls them all.
pub type CacheStatsSource = Arc<dyn Fn() -> Vec<CacheStats> + Send + Sync>;
