//! Credentials verified once: a bounded, in-memory record of recent successful sign-ins, so that
//! Harbor's API clients, which send Basic credentials on every call, and podman's token requests
//! (one per scope) cost a bcrypt verification (or a directory bind) once every few minutes rather
//! than on each request.
//!
//! - The key is an HMAC-SHA256 of the name and password under a key drawn at random when the
//!   process starts: the password is never kept, and the key cannot be recomputed elsewhere.
//! - An entry holds the stored hash the password matched. A hit counts only while the account's
//!   record, read anyway at each sign-in, still holds that hash and may still sign in: a changed
//!   password, a disabled or deleted user or robot drops it at once, on every replica (each
//!   reads the shared record).
//! - Entries expire after [`TTL`]: the longest a password changed in a directory still works
//!   here. Failed sign-ins are never recorded (they stay rate-limited by the lockout).
//! - Sign-ins with the same credentials arriving together (a client opening many connections at
//!   once) take turns ([`Verified::turn`]): the first verifies, the others find its record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use registry_core::cache_stats::CacheStats;
use ring::hmac;

/// How long a verification is trusted.
pub const TTL: Duration = Duration::from_secs(120);
/// Entries kept at most.
const CAPACITY: usize = 4096;

/// Recent successful verifications.
pub(crate) struct Verified {
    key: hmac::Key,
    entries: quick_cache::sync::Cache<[u8; 32], (Instant, String)>,
    /// A lock per credentials being verified now.
    turns: quick_cache::sync::Cache<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    /// Verifications run (bcrypt or the directory), for tests.
    runs: AtomicU64,
}

impl Verified {
    /// An empty record with a fresh random key.
    pub(crate) fn new() -> Verified {
        let mut secret = [0u8; 32];
        // Without randomness the record stays unusable (no key anyone knows is worse than none).
        let _ = getrandom::fill(&mut secret);
        Verified {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            entries: quick_cache::sync::Cache::new(CAPACITY),
            turns: quick_cache::sync::Cache::new(CAPACITY),
            runs: AtomicU64::new(0),
        }
    }

    /// Waits for the turn of `name` and `password`: while another sign-in with the same
    /// credentials is being verified, the next waits for it (then finds its record, if it
    /// succeeded). Hold the guard while verifying.
    pub(crate) async fn turn(&self, name: &str, password: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self.turns.get_or_insert_with(&self.key_of(name, password), || {
            Ok::<_, std::convert::Infallible>(Arc::new(tokio::sync::Mutex::new(())))
        });
        // The closure cannot fail.
        let lock = lock.unwrap_or_else(|never| match never {});
        lock.lock_owned().await
    }

    /// Counts a verification run (bcrypt or the directory).
    pub(crate) fn ran(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    /// Verifications run so far.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    fn key_of(&self, name: &str, password: &str) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&(name.len() as u64).to_be_bytes());
        context.update(name.as_bytes());
        context.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    /// Whether `name` and `password` were verified against `hash` (the account's stored hash, or
    /// for a directory's user its origin mark) less than [`TTL`] ago.
    pub(crate) fn holds(&self, name: &str, password: &str, hash: &str) -> bool {
        let key = self.key_of(name, password);
        match self.entries.get(&key) {
            Some((at, matched)) if at.elapsed() < TTL && matched == hash => true,
            Some(_) => {
                self.entries.remove(&key);
                false
            }
            None => false,
        }
    }

    /// The figures of the verifications kept and of the locks per credentials.
    pub(crate) fn stats(&self) -> [CacheStats; 2] {
        let (e, t) = (&self.entries, &self.turns);
        [
            CacheStats::counted("verified_credentials", e.hits(), e.misses(), e.len()),
            CacheStats::counted("credential_turns", t.hits(), t.misses(), t.len()),
        ]
    }

    /// Records that `name` and `password` were verified against `hash` now.
    pub(crate) fn record(&self, name: &str, password: &str, hash: &str) {
        self.entries.insert(self.key_of(name, password), (Instant::now(), hash.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_holds_for_its_hash_only() {
        let v = Verified::new();
        assert!(!v.holds("dana", "pw", "h1"));
        v.record("dana", "pw", "h1");
        assert!(v.holds("dana", "pw", "h1"));
        assert!(!v.holds("dana", "other", "h1"), "another password");
        assert!(!v.holds("dan", "apw", "h1"), "the name and password are not run together");
        assert!(!v.holds("dana", "pw", "h2"), "the password changed");
        assert!(!v.holds("dana", "pw", "h1"), "and the entry is gone");
    }
}
