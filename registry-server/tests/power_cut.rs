//! Power loss: the crash loop of `crash.rs`, with the data directory on a filesystem that drops
//! everything not made durable at each cut (`testkit::powercut`: a file's data needs its `fsync`,
//! a name needs its directory's). At each stop the power goes off first (every later write fails,
//! what was not synced is gone), then the process is killed, and the disk comes back with only
//! what was durable; the checks are those of `crashing/mod.rs`.
//!
//! Seeded (the seed is printed); the short version runs in the test command:
//!
//! ```sh
//! # the short version (CI): 25 cuts, seed 1
//! cargo nextest run -p registry-server --test power_cut
//! # the long version
//! REGISTRY_POWER_CUTS=500 REGISTRY_POWER_SEED=$RANDOM cargo nextest run -p registry-server --test power_cut --no-capture
//! ```

mod crashing;

use testkit::powercut::{CutReport, PowerCutFs};

/// Cuts the power of the filesystem under the data directory around each kill.
struct PowerCut {
    fs: PowerCutFs,
    cuts: usize,
    dropped: CutReport,
}

impl crashing::Stop for PowerCut {
    fn before_kill(&mut self) {
        let report = self.fs.cut();
        self.cuts += 1;
        self.dropped.files_reverted += report.files_reverted;
        self.dropped.unsynced_bytes += report.unsynced_bytes;
        self.dropped.directories_reverted += report.directories_reverted;
    }

    fn after_kill(&mut self) {
        self.fs.power_on().expect("power back on");
    }

    fn summary(&self) -> String {
        let syncs = self.fs.syncs();
        format!(
            "; {} cuts dropped unsynced data of {} files ({} bytes) and entries of {} directories; {} file and {} directory syncs",
            self.cuts,
            self.dropped.files_reverted,
            self.dropped.unsynced_bytes,
            self.dropped.directories_reverted,
            syncs.files,
            syncs.directories
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_at_random_moments_lose_nothing_acknowledged() {
    let cuts: usize = std::env::var("REGISTRY_POWER_CUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    let seed: u64 = std::env::var("REGISTRY_POWER_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let fs = PowerCutFs::mount().expect("the power-cut filesystem");
    // The operator's data directory exists, durably, before the registry first starts.
    let data = fs.join("data");
    std::fs::create_dir(&data).expect("data directory");
    std::fs::File::open(fs.path()).and_then(|d| d.sync_all()).expect("fsync the mount's root");
    let mut stop = PowerCut { fs, cuts: 0, dropped: CutReport::default() };
    crashing::run("power-cut harness (REGISTRY_POWER_CUTS, REGISTRY_POWER_SEED)", data, cuts, seed, &mut stop).await;
}
