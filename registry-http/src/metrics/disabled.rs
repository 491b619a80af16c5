//! Without the `metrics` feature: no metrics can be made (the builder refuses to turn them on),
//! so this type has no values and its methods are never called.

use std::time::Duration;

use http::{Method, StatusCode};

/// The server's metrics: none in a build without the `metrics` feature.
#[derive(Debug)]
pub enum Metrics {}

/// A request counted in flight.
#[derive(Debug)]
pub enum InFlight {}

impl Drop for InFlight {
    fn drop(&mut self) {}
}

impl Metrics {
    /// A request begins.
    pub fn begin(&self, _: &'static str, _: u64) -> InFlight {
        match *self {}
    }

    /// A request was answered.
    pub fn answered(&self, _: &'static str, _: &Method, _: StatusCode, _: Duration, _: u64) {
        match *self {}
    }

    /// A garbage collection finished.
    pub fn collected(&self, _: u64) {
        match *self {}
    }

    /// The job runner whose times are shown.
    pub fn watch_jobs(&self, _: &std::sync::Arc<registry_storage::JobRunner>) {
        match *self {}
    }

    /// Where the allocator's figures come from.
    pub fn watch_allocator(&self, _: super::AllocatorStatsSource) {
        match *self {}
    }

    /// Caches to show beside the engine's.
    pub fn watch_caches(&self, _: registry_core::cache_stats::CacheStatsSource) {
        match *self {}
    }

    /// The exposition text.
    pub async fn render(&self, _: &registry_storage::Registry) -> String {
        match *self {}
    }
}
