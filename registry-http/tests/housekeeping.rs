//! The housekeeping job trims events older than the retention and keeps the newer ones, and keeps
//! each kind's newest finished jobs up to the count.

use std::sync::Arc;
use std::time::Duration;

use registry_core::event::Operator;
use registry_core::time::{Clock, ManualClock};
use registry_http::TestRegistry;
use registry_platform::housekeeping::{KIND, Retention};
use registry_storage::jobs::{JobStatus, NewJob};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_their_retention_and_jobs_beyond_their_count_are_trimmed() {
    let clock = Arc::new(ManualClock::at_secs(1_800_000_000));
    let hour = Duration::from_secs(3600);
    let reg = TestRegistry::builder()
        .harbor_accounts()
        .clock(clock.clone())
        .retention(Retention { events: hour, jobs: 24 * hour, jobs_per_kind: 3 })
        .jobs(Duration::from_secs(30), Duration::from_millis(20))
        .start()
        .await
        .expect("start");
    let accounts = reg.accounts().expect("accounts").acting_as(Operator::system());
    accounts.add_user("old-user", "Password-123", false).await.expect("old");
    clock.advance(2 * hour);
    accounts.add_user("new-user", "Password-123", false).await.expect("new");
    let meta = reg.registry().metadata_store().clone();
    let before = meta.events_after(0, usize::MAX).await.expect("events");
    assert!(before.len() >= 2);
    // Five finished jobs of a kind no worker runs (cancelled while pending), a minute apart.
    let mut parked = Vec::new();
    for i in 0..5 {
        let new = NewJob::new("parked", format!("{{\"n\":{i}}}"), "manual");
        let (id, _) = meta.enqueue(&new, clock.now_millis()).await.expect("enqueue");
        meta.cancel_job(id, clock.now_millis()).await.expect("cancel").expect("a job");
        parked.push(id);
        clock.advance(Duration::from_secs(60));
    }

    let (id, _) = meta.enqueue(&NewJob::new(KIND, "{}".into(), "manual"), clock.now_millis()).await.expect("enqueue");
    let job = loop {
        let job = meta.job(id).await.expect("job").expect("exists");
        if job.status.is_final() {
            break job;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    let result: serde_json::Value = serde_json::from_str(&job.result).expect("result");
    assert!(result["events_trimmed"].as_u64().expect("count") >= 1, "{result}");
    let after = meta.events_after(0, usize::MAX).await.expect("events");
    let names: Vec<String> = after.iter().filter_map(|e| e.resource.name.clone()).collect();
    assert!(names.iter().any(|n| n == "new-user"), "the new event is kept: {names:?}");
    assert!(!names.iter().any(|n| n == "old-user"), "the old one is gone: {names:?}");
    assert!(result["jobs_trimmed"].as_u64().expect("count") >= 2, "{result}");
    for (i, id) in parked.iter().enumerate() {
        assert_eq!(meta.job(*id).await.expect("job").is_some(), i >= 2, "parked job {i}: the newest three kept");
    }
    reg.stop().await;
}
