//! The job queue's and the policies' conformance suites: every metadata store runs them.

use std::collections::HashSet;
use std::sync::Arc;

use registry_core::event::{Event, EventAction, Operator, Resource};

use crate::jobs::{Heartbeat, JobEnd, JobFilter, JobOutcome, JobStatus, JobUpdate, KindLimit, NewJob};
use crate::meta::MetadataStore;
use crate::policies::PolicyRecord;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn limits(kind: &str, limit: usize) -> Vec<KindLimit> {
    vec![KindLimit { kind: kind.into(), limit }]
}

fn ended(end: JobEnd) -> JobOutcome {
    JobOutcome { end, update: JobUpdate::default() }
}

/// The queue's rules on one store (see `registry_storage::jobs`).
pub async fn job_queue_suite(store: &dyn MetadataStore) {
    let kind = unique("suite");
    let t = 1_000_000u64;

    // Enqueueing with a key is idempotent.
    let new = NewJob::new(&kind, r#"{"n":1}"#.into(), "manual").key(unique("key")).attempts(2);
    let (id, created) = store.enqueue(&new, t).await.expect("enqueue");
    assert!(created);
    assert_eq!(store.enqueue(&new, t + 1).await.expect("enqueue again"), (id, false), "the key finds the job");
    let (second, _) = store.enqueue(&NewJob::new(&kind, "{}".into(), "schedule"), t + 1).await.expect("enqueue");
    assert!(second > id, "ids grow");

    // A batch: each job as if enqueued alone (a key already kept finds its job; a key twice in
    // the batch makes one job), in order.
    let batch_kind = unique("batch");
    let twice = unique("key");
    let batch = [
        new.clone(),
        NewJob::new(&batch_kind, "{}".into(), "event").key(twice.clone()),
        NewJob::new(&batch_kind, "{}".into(), "event").key(twice),
        NewJob::new(&batch_kind, "{}".into(), "event"),
    ];
    let got = store.enqueue_all(&batch, t).await.expect("enqueue a batch");
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], (id, false));
    assert!(got[1].1 && got[3].1 && got[3].0 > got[1].0, "{got:?}");
    assert_eq!(got[2], (got[1].0, false), "the key twice in one batch: one job");
    assert_eq!(store.enqueue_all(&[], t).await.expect("nothing"), Vec::new());
    for (job_id, _) in [got[1], got[3]] {
        assert!(store.cancel_job(job_id, t).await.expect("cancel").is_some());
    }

    // A backlog of one kind does not hold another back: with one of four slots in use by the
    // first kind, the second kind's only job (newer than the whole backlog) comes next.
    let (busy, idle) = (unique("busy"), unique("idle"));
    let mut backlog = Vec::new();
    for _ in 0..20 {
        backlog.push(store.enqueue(&NewJob::new(&busy, "{}".into(), "event"), t).await.expect("enqueue").0);
    }
    let (lone, _) = store.enqueue(&NewJob::new(&idle, "{}".into(), "schedule"), t + 50).await.expect("enqueue");
    let both = [KindLimit { kind: busy.clone(), limit: 4 }, KindLimit { kind: idle.clone(), limit: 1 }];
    let claimed = store.claim(&both, "w", t + 100, 1000).await.expect("claim").expect("a job");
    assert_eq!(claimed.id, backlog[0], "both kinds idle: the oldest due");
    let claimed = store.claim(&both, "w", t + 100, 1000).await.expect("claim").expect("a job");
    assert_eq!(claimed.id, lone, "the idle kind before the busy kind's backlog");
    let claimed = store.claim(&both, "w", t + 100, 1000).await.expect("claim").expect("a job");
    assert_eq!(claimed.id, backlog[1]);
    for id in backlog.iter().chain([&lone]) {
        store.cancel_job(*id, t + 100).await.expect("cancel");
    }

    // Claims: oldest first, within the kind's limit; other kinds are not claimed.
    assert_eq!(store.claim(&limits("nothing-here", 5), "w1", t, 1000).await.expect("claim"), None);
    let job = store.claim(&limits(&kind, 1), "w1", t + 2, 1000).await.expect("claim").expect("a job");
    assert_eq!((job.id, job.status, job.attempts, job.worker.as_str()), (id, JobStatus::Running, 1, "w1"));
    assert_eq!(job.payload, r#"{"n":1}"#);
    assert_eq!(store.claim(&limits(&kind, 1), "w2", t + 3, 1000).await.expect("claim"), None, "limit 1");

    // Heartbeats renew the lease and carry progress and log lines.
    let update = JobUpdate { progress: Some("half".into()), log: vec!["step one".into()] };
    assert_eq!(store.heartbeat(id, job.claim, t + 2000, t + 900, &update).await.expect("beat"), Heartbeat::Continue);
    assert_eq!(store.claim(&limits(&kind, 1), "w2", t + 1500, 1000).await.expect("claim"), None, "lease renewed");

    // A passed lease is taken over; the old claim is refused.
    let taken = store.claim(&limits(&kind, 1), "w2", t + 2001, 1000).await.expect("claim").expect("taken over");
    assert_eq!((taken.id, taken.attempts, taken.worker.as_str()), (id, 2, "w2"));
    assert_eq!((taken.progress.as_str(), taken.log.as_str()), ("half", "step one\n"));
    let lost = store.heartbeat(id, job.claim, t + 5000, t + 2002, &JobUpdate::default()).await.expect("beat");
    assert_eq!(lost, Heartbeat::Lost);
    let done = ended(JobEnd::Succeeded { result: r#"{"ok":true}"#.into() });
    assert!(!store.finish(id, job.claim, &done, t + 2003).await.expect("finish"), "a stale claim cannot finish");
    assert!(store.finish(id, taken.claim, &done, t + 2003).await.expect("finish"));
    let stored = store.job(id).await.expect("job").expect("exists");
    assert_eq!((stored.status, stored.result.as_str()), (JobStatus::Succeeded, r#"{"ok":true}"#));

    // A failure is retried at the time given, until the attempts run out.
    let retried = store.claim(&limits(&kind, 1), "w1", t + 3000, 1000).await.expect("claim").expect("second job");
    assert_eq!(retried.id, second);
    let fail = ended(JobEnd::Failed { error: "receiver down".into(), retry_at_ms: Some(t + 9000) });
    assert!(store.finish(second, retried.claim, &fail, t + 3001).await.expect("finish"));
    let stored = store.job(second).await.expect("job").expect("exists");
    assert_eq!((stored.status, stored.error.as_str()), (JobStatus::Failed, "receiver down"), "one attempt only");

    let (third, _) = store.enqueue(&NewJob::new(&kind, "{}".into(), "event").attempts(3), t).await.expect("enqueue");
    let claimed = store.claim(&limits(&kind, 1), "w1", t + 4000, 1000).await.expect("claim").expect("third");
    assert!(store.finish(third, claimed.claim, &fail, t + 4001).await.expect("finish"));
    assert_eq!(store.job(third).await.expect("job").expect("exists").status, JobStatus::Pending);
    assert_eq!(store.claim(&limits(&kind, 1), "w1", t + 8999, 1000).await.expect("claim"), None, "not due yet");

    // Cancel: a pending job at once; a running one at its next heartbeat.
    let cancelled = store.cancel_job(third, t + 5000).await.expect("cancel").expect("exists");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let (fourth, _) = store.enqueue(&NewJob::new(&kind, "{}".into(), "manual"), t).await.expect("enqueue");
    let running = store.claim(&limits(&kind, 1), "w1", t + 6000, 1000).await.expect("claim").expect("fourth");
    assert_eq!(store.cancel_job(fourth, t + 6001).await.expect("cancel").expect("exists").status, JobStatus::Running);
    let beat = store.heartbeat(fourth, running.claim, t + 7000, t + 6002, &JobUpdate::default()).await.expect("beat");
    assert_eq!(beat, Heartbeat::Cancel);
    assert!(store.finish(fourth, running.claim, &ended(JobEnd::Cancelled), t + 6003).await.expect("finish"));
    assert_eq!(store.cancel_job(u64::MAX / 2, t).await.expect("cancel"), None, "unknown job");

    // Listing: newest first, filtered, with totals; counts by kind and status.
    let filter = JobFilter { kind: Some(kind.clone()), status: None, ..JobFilter::default() };
    let (page, total) = store.jobs(&filter, 0, 2).await.expect("list");
    assert_eq!(total, 4);
    assert_eq!(page.iter().map(|j| j.id).collect::<Vec<_>>(), vec![fourth, third]);
    let (page, _) = store.jobs(&filter, 3, 10).await.expect("list");
    assert_eq!(page.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    let failed = JobFilter { kind: Some(kind.clone()), status: Some(JobStatus::Failed), ..JobFilter::default() };
    assert_eq!(store.jobs(&failed, 0, 10).await.expect("list").1, 1);
    let keyed = JobFilter { key_prefix: new.key.clone(), ..JobFilter::default() };
    assert_eq!(store.jobs(&keyed, 0, 10).await.expect("list").0.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    let counts: Vec<(JobStatus, u64)> = store
        .job_counts()
        .await
        .expect("counts")
        .into_iter()
        .filter(|c| c.kind == kind)
        .map(|c| (c.status, c.count))
        .collect();
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), 4);
    assert!(counts.contains(&(JobStatus::Cancelled, 2)), "{counts:?}");

    // Trimming removes finished jobs changed before the time, and frees their keys.
    assert!(store.trim_jobs(t + 2500).await.expect("trim") >= 1);
    assert_eq!(store.job(id).await.expect("job"), None);
    assert!(store.enqueue(&new, t + 10).await.expect("enqueue").1, "the key is free again");

    // Trimming by count keeps a kind's newest finished jobs and removes the oldest first, in
    // batches; pending jobs and other kinds are not touched.
    let (capped, other) = (unique("capped"), unique("other"));
    let mut finished = Vec::new();
    for (i, of) in [&capped, &capped, &other, &capped, &capped, &capped].into_iter().enumerate() {
        let at = t + 20_000 + i as u64 * 10;
        let (job, _) =
            store.enqueue(&NewJob::new(of, "{}".into(), "event").key(unique("k")), at).await.expect("enqueue");
        let claimed = store.claim(&limits(of, 1), "w", at, 60_000).await.expect("claim").expect("claimed");
        assert!(
            store
                .finish(job, claimed.claim, &ended(JobEnd::Succeeded { result: String::new() }), at + 1)
                .await
                .expect("finish")
        );
        finished.push((job, of == &capped));
    }
    let (waiting, _) = store.enqueue(&NewJob::new(&capped, "{}".into(), "event"), t + 30_000).await.expect("enqueue");
    assert_eq!(store.trim_jobs_beyond(&capped, 2, 2).await.expect("trim"), 2, "two of the three beyond the newest two");
    assert_eq!(store.trim_jobs_beyond(&capped, 2, 2).await.expect("trim"), 1, "the last one beyond");
    assert_eq!(store.trim_jobs_beyond(&capped, 2, 2).await.expect("trim"), 0);
    let kept: Vec<u64> = finished.iter().filter(|(_, c)| *c).map(|(id, _)| *id).collect();
    for (i, id) in kept.iter().enumerate() {
        assert_eq!(store.job(*id).await.expect("job").is_some(), i >= 3, "job {i} of the capped kind");
    }
    assert!(store.job(finished[2].0).await.expect("job").is_some(), "another kind's job stays");
    assert!(store.job(waiting).await.expect("job").is_some(), "a pending job stays");
    let counted: u64 =
        store.job_counts().await.expect("counts").iter().filter(|c| c.kind == capped).map(|c| c.count).sum();
    assert_eq!(counted, 3, "the counts follow: two finished, one pending");
    assert!(store.cancel_job(waiting, t + 30_001).await.expect("cancel").is_some());

    // A job whose worker died on its last attempt fails when its lease has passed.
    let lone = unique("lone");
    let (dead, _) = store.enqueue(&NewJob::new(&lone, "{}".into(), "manual"), t).await.expect("enqueue");
    store.claim(&limits(&lone, 1), "gone", t, 100).await.expect("claim").expect("claimed");
    assert_eq!(store.claim(&limits(&lone, 1), "w", t + 200, 100).await.expect("claim"), None);
    let stored = store.job(dead).await.expect("job").expect("exists");
    assert_eq!(stored.status, JobStatus::Failed);
    assert!(stored.error.contains("gone"), "{}", stored.error);

    // A kind at its limit does not hold the others up, however many of its jobs wait ahead of
    // theirs (a soak found 78 scheduled collections ahead of 2,689 webhook deliveries, and no
    // delivery claimed for as long as a collection ran).
    let (slow, quick) = (unique("slow"), unique("quick"));
    for _ in 0..100 {
        store.enqueue(&NewJob::new(&slow, "{}".into(), "schedule"), t).await.expect("enqueue");
    }
    let (delivery, _) = store.enqueue(&NewJob::new(&quick, "{}".into(), "event"), t + 1).await.expect("enqueue");
    let both = vec![KindLimit { kind: slow.clone(), limit: 1 }, KindLimit { kind: quick.clone(), limit: 4 }];
    let first = store.claim(&both, "w", t + 2, 60_000).await.expect("claim").expect("a job");
    assert_eq!(first.kind, slow, "the oldest first");
    let next = store.claim(&both, "w", t + 3, 60_000).await.expect("claim").expect("the delivery");
    assert_eq!(next.id, delivery, "the other kind's job, behind 99 waiting ones at their limit");

    // Claiming several at once takes what claims one after another would: kinds under their
    // limits by their share in use, never past a limit, and no more than asked.
    let (many, few) = (unique("many"), unique("few"));
    for i in 0..6 {
        store.enqueue(&NewJob::new(&many, "{}".into(), "event"), t + i).await.expect("enqueue");
    }
    store.enqueue(&NewJob::new(&few, "{}".into(), "event"), t + 10).await.expect("enqueue");
    let both = vec![KindLimit { kind: many.clone(), limit: 4 }, KindLimit { kind: few.clone(), limit: 1 }];
    let claimed = store.claim_up_to(&both, "w", t + 20, 60_000, 3).await.expect("claim");
    assert_eq!(claimed.len(), 3, "as many as asked");
    assert_eq!(claimed.iter().filter(|j| j.kind == few).count(), 1, "the other kind had its turn: {claimed:?}");
    let rest = store.claim_up_to(&both, "w", t + 21, 60_000, 10).await.expect("claim");
    assert_eq!(rest.len(), 2, "up to the limit of 4 running: {rest:?}");
    assert!(rest.iter().all(|j| j.kind == many && j.status == JobStatus::Running));
    assert!(store.claim_up_to(&both, "w", t + 22, 60_000, 10).await.expect("claim").is_empty(), "both at their limits");

    // Listing pending or running jobs (read through their indexes on stores that keep them):
    // the same answers as the full read, newest first, with totals, pages and a kind's filter.
    let of = |kind: &str, status| JobFilter { kind: Some(kind.into()), status: Some(status), ..JobFilter::default() };
    let (running, total) = store.jobs(&of(&many, JobStatus::Running), 0, 10).await.expect("list");
    assert_eq!(total, 4);
    assert!(running.windows(2).all(|w| w[0].id > w[1].id), "newest first: {running:?}");
    assert!(running.iter().all(|j| j.kind == many && j.status == JobStatus::Running));
    let (pending, total) = store.jobs(&of(&many, JobStatus::Pending), 0, 1).await.expect("list");
    assert_eq!(total, 2, "two of six still wait");
    let (next_page, _) = store.jobs(&of(&many, JobStatus::Pending), 1, 1).await.expect("list");
    assert!(pending[0].id > next_page[0].id, "pages in order");
    assert_eq!(store.jobs(&of(&few, JobStatus::Pending), 0, 10).await.expect("list").1, 0);
    let any_pending = JobFilter { status: Some(JobStatus::Pending), ..JobFilter::default() };
    let (all, _) = store.jobs(&any_pending, 0, 1000).await.expect("list");
    assert!(all.iter().all(|j| j.status == JobStatus::Pending));
    assert_eq!(all.iter().filter(|j| j.kind == many).count(), 2, "every kind's");

    policy_rules(store).await;
}

async fn policy_rules(store: &dyn MetadataStore) {
    let kind = unique("policy");
    let start = store.events_after(0, usize::MAX).await.expect("events").last().map_or(0, |e| e.id);
    let event = || {
        let resource = Resource { project: Some("p".into()), name: Some("hook".into()), ..Resource::default() };
        Event::new(1, Operator::named("admin", None), EventAction::CreateWebhook, resource)
    };
    let policy = PolicyRecord {
        id: 0,
        kind: kind.clone(),
        project_id: 7,
        name: "hook".into(),
        body: r#"{"a":1}"#.into(),
        created_ms: 0,
        updated_ms: 0,
    };
    let id = store.put_policy(&policy, &[event()]).await.expect("put");
    let stored = store.policy(&kind, id).await.expect("get").expect("exists");
    assert_eq!((stored.name.as_str(), stored.body.as_str(), stored.project_id), ("hook", r#"{"a":1}"#, 7));
    let same_name = store.put_policy(&policy, &[event()]).await;
    assert!(matches!(same_name, Err(crate::Error::Conflict { .. })), "{same_name:?}");
    let elsewhere = PolicyRecord { project_id: 8, ..policy.clone() };
    let other = store.put_policy(&elsewhere, &[]).await.expect("same name, other project");
    let changed = PolicyRecord { id, body: r#"{"a":2}"#.into(), ..policy.clone() };
    assert_eq!(store.put_policy(&changed, &[]).await.expect("replace"), id);
    assert_eq!(store.policy(&kind, id).await.expect("get").expect("exists").body, r#"{"a":2}"#);
    let unknown = PolicyRecord { id: u64::MAX / 2, ..policy.clone() };
    assert!(matches!(store.put_policy(&unknown, &[]).await, Err(crate::Error::NotFound { .. })));
    assert_eq!(store.policies(&kind, Some(7)).await.expect("list").len(), 1);
    assert_eq!(
        store.policies(&kind, None).await.expect("list").iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![id, other]
    );
    assert_eq!(store.policy("another-kind", id).await.expect("get"), None, "kinds are apart");
    assert!(store.delete_policy(&kind, id, &[event()]).await.expect("delete"));
    assert!(!store.delete_policy(&kind, id, &[event()]).await.expect("delete again"));
    let events = store.events_after(start, usize::MAX).await.expect("events");
    assert_eq!(events.len(), 2, "one event per change made, none for the refused put or the second delete");

    // Imports keep ids and times; new policies come after them.
    let imported = PolicyRecord { id: other + 1000, created_ms: 5, updated_ms: 6, name: "imported".into(), ..policy };
    store.import_policy(&imported).await.expect("import");
    assert_eq!(store.policy(&kind, imported.id).await.expect("get"), Some(imported.clone()), "as it was");
    assert!(store.all_policies().await.expect("all").contains(&imported), "listed with every kind");
    let fresh = PolicyRecord { id: 0, name: "fresh".into(), ..imported.clone() };
    assert!(store.put_policy(&fresh, &[]).await.expect("put") > imported.id, "new ids above the imported");
}

/// Workers on two handles of one database (two replicas) claiming at once: every job is
/// claimed exactly once and a kind's limit holds across them.
pub async fn concurrent_claims_suite(a: Arc<dyn MetadataStore>, b: Arc<dyn MetadataStore>) {
    let kind = unique("race");
    let t = 5_000_000u64;
    let mut ids = HashSet::new();
    for _ in 0..20 {
        ids.insert(store_enqueue(&*a, &kind, t).await);
    }
    // Limit 3: a burst of claims at one instant gets three jobs, however many claim.
    let burst = (0..12).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let kind = kind.clone();
        tokio::spawn(async move { store.claim(&limits(&kind, 3), &format!("w{i}"), t, 60_000).await.expect("claim") })
    });
    let claimed: Vec<_> = futures::future::join_all(burst).await.into_iter().filter_map(|r| r.expect("task")).collect();
    assert_eq!(claimed.len(), 3, "the kind's limit holds across replicas");
    for job in &claimed {
        let store = if job.worker.trim_start_matches('w').parse::<usize>().unwrap_or(0) % 2 == 0 { &a } else { &b };
        assert!(
            store
                .finish(job.id, job.claim, &ended(JobEnd::Succeeded { result: String::new() }), t)
                .await
                .expect("finish")
        );
    }
    // With a high limit every job is claimed once, never twice.
    let mut seen: Vec<u64> = claimed.iter().map(|j| j.id).collect();
    let drains = (0..4).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let kind = kind.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) =
                store.claim(&limits(&kind, 100), &format!("d{i}"), t + 1, 60_000).await.expect("claim")
            {
                mine.push(job.id);
            }
            mine
        })
    });
    for drained in futures::future::join_all(drains).await {
        seen.extend(drained.expect("task"));
    }
    seen.sort_unstable();
    let mut expected: Vec<u64> = ids.into_iter().collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every job claimed exactly once");
}

async fn store_enqueue(store: &dyn MetadataStore, kind: &str, t: u64) -> u64 {
    store.enqueue(&NewJob::new(kind, "{}".into(), "event"), t).await.expect("enqueue").0
}

/// Workers ([`JobRunner`](crate::JobRunner)s) on two handles of one database: a kind limited
/// to one never runs two jobs at once and runs each job once; a worker killed mid-job has the
/// job taken over by the other once its lease has passed.
pub async fn runners_suite(a: Arc<dyn MetadataStore>, b: Arc<dyn MetadataStore>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::jobs::runner::{JobContext, JobFailure, JobHandler, JobRunner};

    struct Exclusive {
        now: AtomicUsize,
        most: AtomicUsize,
        runs: std::sync::Mutex<Vec<u64>>,
    }
    #[async_trait::async_trait]
    impl JobHandler for Exclusive {
        async fn run(&self, job: &crate::jobs::Job, ctx: &JobContext) -> Result<String, JobFailure> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            ctx.log(format!("job {} running", job.id));
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.runs.lock().expect("runs").push(job.id);
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(String::new())
        }
    }

    let clock = registry_core::time::system_clock();
    let kind = unique("exclusive");
    let handler = Arc::new(Exclusive { now: AtomicUsize::new(0), most: AtomicUsize::new(0), runs: Default::default() });
    let runner = |store: &Arc<dyn MetadataStore>, name: &str| {
        let queue: Arc<dyn crate::jobs::JobQueue> = store.clone();
        Arc::new(JobRunner::new(queue, clock.clone(), name).with_poll(Duration::from_millis(20)).handle(
            &kind,
            1,
            Duration::from_millis(10),
            handler.clone(),
        ))
    };
    let (ra, rb) = (runner(&a, "replica-a"), runner(&b, "replica-b"));
    let (ha, hb) = (ra.clone().start(), rb.clone().start());
    let mut ids = Vec::new();
    for i in 0..30 {
        let via = if i % 2 == 0 { &ra } else { &rb };
        ids.push(via.enqueue(&NewJob::new(&kind, "{}".into(), "event")).await.expect("enqueue").0);
    }
    for id in &ids {
        let job = ra.wait(*id).await.expect("wait").expect("exists");
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    }
    ha.stop().await;
    hb.stop().await;
    assert_eq!(handler.most.load(Ordering::SeqCst), 1, "never two jobs of a kind limited to one at once");
    let mut runs = handler.runs.lock().expect("runs").clone();
    runs.sort_unstable();
    assert_eq!(runs, ids, "each job ran once");

    // A worker killed mid-job: the other takes the job over after the lease.
    struct Hangs(tokio::sync::mpsc::Sender<u64>);
    #[async_trait::async_trait]
    impl JobHandler for Hangs {
        async fn run(&self, job: &crate::jobs::Job, _: &JobContext) -> Result<String, JobFailure> {
            let _ = self.0.send(job.id).await;
            futures::future::pending::<()>().await;
            Ok(String::new())
        }
    }
    struct Finishes;
    #[async_trait::async_trait]
    impl JobHandler for Finishes {
        async fn run(&self, _: &crate::jobs::Job, _: &JobContext) -> Result<String, JobFailure> {
            Ok("\"done\"".into())
        }
    }
    let kind = unique("takeover");
    let (started, mut started_rx) = tokio::sync::mpsc::channel(1);
    let lease = Duration::from_millis(300);
    let qa: Arc<dyn crate::jobs::JobQueue> = a.clone();
    let dying = Arc::new(
        JobRunner::new(qa, clock.clone(), "dies").with_lease(lease).with_poll(Duration::from_millis(20)).handle(
            &kind,
            1,
            Duration::from_millis(10),
            Arc::new(Hangs(started)),
        ),
    );
    let handle = dying.clone().start();
    let id = dying.enqueue(&NewJob::new(&kind, "{}".into(), "manual").attempts(3)).await.expect("enqueue").0;
    assert_eq!(started_rx.recv().await, Some(id), "the first worker runs the job");
    handle.abort();
    let qb: Arc<dyn crate::jobs::JobQueue> = b.clone();
    let survivor =
        Arc::new(
            JobRunner::new(qb, clock.clone(), "survives")
                .with_lease(lease)
                .with_poll(Duration::from_millis(20))
                .handle(&kind, 1, Duration::from_millis(10), Arc::new(Finishes)),
        );
    let handle = survivor.clone().start();
    let job = survivor.wait(id).await.expect("wait").expect("exists");
    handle.stop().await;
    assert_eq!((job.status, job.attempts, job.worker.as_str()), (JobStatus::Succeeded, 2, "survives"));
    assert_eq!(job.result, "\"done\"");
}
