//! The memory store keeps the job queue and the policies by the shared rules.

use std::sync::Arc;

use registry_storage::MemoryMetadataStore;
use registry_storage::testing::jobs::{concurrent_claims_suite, job_queue_suite, runners_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_keeps_the_queue_and_policies_by_the_rules() {
    let store = MemoryMetadataStore::new();
    job_queue_suite(&store).await;
    let shared = Arc::new(store);
    concurrent_claims_suite(shared.clone(), shared.clone()).await;
    runners_suite(shared.clone(), shared).await;
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_job_is_skipped_while_its_last_run_has_not_finished() {
    use registry_core::time::ManualClock;
    use registry_storage::jobs::{JobEnd, JobFilter, JobOutcome, KindLimit};
    use registry_storage::{JobQueue, JobRunner, NewJob};
    use std::time::Duration;

    let queue: Arc<dyn JobQueue> = Arc::new(MemoryMetadataStore::new());
    let clock = ManualClock::at_secs(1_000);
    let runner = Arc::new(JobRunner::new(queue.clone(), Arc::new(clock.clone()), "w"));
    let every = Duration::from_secs(10);
    let task = runner.schedule(every, Duration::ZERO, |period| {
        NewJob::new("periodic", "{}".into(), "schedule").key(format!("periodic:{period}"))
    });
    let periods = |n: u32| {
        let clock = clock.clone();
        async move {
            for _ in 0..n {
                clock.advance(every);
                tokio::time::sleep(every).await;
            }
        }
    };
    let total = |queue: Arc<dyn JobQueue>| async move {
        queue.jobs(&JobFilter::kind("periodic"), 0, 10).await.expect("jobs").1
    };
    // Five periods pass while nothing runs the kind: one job waits, not five.
    periods(5).await;
    assert_eq!(total(queue.clone()).await, 1);
    // Running, still one; finished, the next period enqueues the next run.
    let now = clock.clone();
    let now = || registry_core::time::Clock::now_millis(&now);
    let limits = [KindLimit { kind: "periodic".into(), limit: 1 }];
    let job = queue.claim(&limits, "w", now(), 60_000).await.expect("claim").expect("the job");
    periods(2).await;
    assert_eq!(total(queue.clone()).await, 1);
    let done = JobOutcome { end: JobEnd::Succeeded { result: String::new() }, update: Default::default() };
    assert!(queue.finish(job.id, job.claim, &done, now()).await.expect("finish"));
    periods(1).await;
    assert_eq!(total(queue.clone()).await, 2);
    task.abort();
}
