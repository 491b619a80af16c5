//! Crash safety: the `registry` binary is killed with SIGKILL at random moments while clients push
//! images concurrently (chunked and monolithic), move tags and delete, restarted on the same data
//! directory, and checked (see `crashing/mod.rs` for the checks). A kill leaves everything the
//! process wrote in the kernel's page cache; `power_cut.rs` is the same loop with that dropped.
//!
//! Seeded and reproducible in its choices (sizes, chunking, kill delays; thread timing varies):
//!
//! ```sh
//! # the short version (CI): 50 kills, seed 1
//! cargo nextest run -p registry-server --test crash
//! # the long version
//! REGISTRY_CRASH_KILLS=1000 REGISTRY_CRASH_SEED=$RANDOM cargo nextest run -p registry-server --test crash --no-capture
//! ```

mod crashing;

/// A plain `SIGKILL`: nothing else happens around it.
struct Kill;

impl crashing::Stop for Kill {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let kills: usize = std::env::var("REGISTRY_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("REGISTRY_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    crashing::run(
        "kill harness (REGISTRY_CRASH_KILLS, REGISTRY_CRASH_SEED)",
        dir.path().join("data"),
        kills,
        seed,
        &mut Kill,
    )
    .await;
}
