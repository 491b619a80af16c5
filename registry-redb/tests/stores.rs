//! The embedded store passes every shared suite, on a file and in memory, and keeps its promises
//! of its own: data survives reopening, the read cache is exact, a failed disk clears without a
//! restart, old layouts open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use registry_auth::AccountStore;
use registry_core::{Digest, RepositoryName, Tag};
use registry_redb::{RedbStore, open_embedded};
use registry_storage::testing::gc::{GcFixture, gc_suite};
use registry_storage::testing::metadata_store_suite;
use registry_storage::{Limits, ManifestRecord, MetadataStore, QuotaStore, Registry};

#[tokio::test]
async fn metadata_suite_in_memory() {
    metadata_store_suite(&RedbStore::in_memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path().join("metadata.redb")).expect("open"));
    registry_storage::testing::concurrent::concurrent_writers_suite(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_queue_and_policies_on_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path().join("metadata.redb")).expect("open"));
    registry_storage::testing::jobs::job_queue_suite(&*store).await;
    registry_storage::testing::jobs::concurrent_claims_suite(store.clone(), store).await;
}

#[tokio::test]
async fn account_suite_in_memory() {
    registry_auth::testing::account_store_suite(&RedbStore::in_memory()).await;
}

#[tokio::test]
async fn both_suites_on_a_file_and_the_data_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.redb");
    {
        let store = RedbStore::open(&path).expect("open");
        metadata_store_suite(&store).await;
        registry_auth::testing::account_store_suite(&store).await;
    }
    let store = RedbStore::open(&path).expect("reopen");
    let repos = store.list_repositories(None, 20).await.expect("catalog");
    assert_eq!(
        repos.entries,
        vec![
            "events/app",
            "immutable/app",
            "labels/app",
            "listing1/app",
            "listing1/tools/cli",
            "quota-other/a",
            "quota/a",
            "quota/b/deep",
            "suite/app",
            "suite/other"
        ],
        "metadata survives closing the database"
    );
    let quotas: Vec<(String, u64)> =
        store.quotas().await.expect("quotas").into_iter().map(|q| (q.project, q.used)).collect();
    assert!(quotas.iter().any(|(p, _)| p == "quota-other"), "quotas too: {quotas:?}");
    assert_eq!(store.projects().await.expect("projects").len(), 1, "projects too (library; team was deleted)");
    assert!(store.user_by_name("alice").await.expect("user").is_some(), "and users");
    let again = RedbStore::open(&path);
    assert!(again.expect_err("locked").is_locked(), "one process at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collection_suite_on_the_embedded_default() {
    gc_suite(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded = open_embedded(dir.path()).expect("open");
        let blobs = Arc::new(embedded.blobs);
        let registry = Registry::new(blobs.clone(), Arc::new(embedded.store), Limits::default());
        GcFixture { registry, blobs, guard: Box::new(dir) }
    })
    .await;
}

/// The read cache never keeps a value a write replaced, whatever the interleaving: readers race
/// a writer that moves a tag and relinks a blob; once the writer is done, every read sees its last
/// write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cache_never_serves_a_replaced_value() {
    let store = Arc::new(RedbStore::in_memory());
    let repo = RepositoryName::parse("race/app").expect("name");
    let tag = Tag::parse("latest").expect("tag");
    let blob = Digest::sha256_of(b"blob");
    let record = |i: u32| ManifestRecord {
        digest: Digest::sha256_of(&i.to_le_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 1,
        artifact_type: None,
        annotations: Default::default(),
        subject: None,
        references: Vec::new(),
        pushed_at: 0,
    };
    for round in 0..20u32 {
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, repo, tag, blob, done) =
                    (store.clone(), repo.clone(), tag.clone(), blob.clone(), done.clone());
                tokio::spawn(async move {
                    while !done.load(Ordering::SeqCst) {
                        store.resolve_tag(&repo, &tag).await.expect("resolve");
                        store.blob_link(&repo, &blob).await.expect("link");
                    }
                })
            })
            .collect();
        let last = round * 10 + 9;
        for i in round * 10..=last {
            store
                .put_manifest(&repo, &record(i), Some(&tag), &registry_storage::Protection::none(), &[])
                .await
                .expect("move tag");
            if i % 2 == 0 {
                store.link_blob(&repo, &blob, 4).await.expect("link");
            } else {
                store.unlink_blob(&repo, &blob).await.expect("unlink");
            }
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.await.expect("reader");
        }
        assert_eq!(store.resolve_tag(&repo, &tag).await.expect("resolve"), Some(record(last).digest), "round {round}");
        assert_eq!(store.blob_link(&repo, &blob).await.expect("link"), None, "round {round}");
    }
}

/// After a failed commit redb refuses everything until reopened: both halves of the store answer
/// with a retryable error, the file is reopened once the disk works again, and nothing committed
/// is lost.
#[tokio::test]
async fn a_failed_disk_clears_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let failing = Arc::new(AtomicBool::new(false));
    let store = RedbStore::open_failing(&dir.path().join("metadata.redb"), failing.clone()).expect("open");
    let repo = RepositoryName::parse("disk/app").expect("name");
    let (kept, lost, later) = (Digest::sha256_of(b"kept"), Digest::sha256_of(b"lost"), Digest::sha256_of(b"later"));
    store.link_blob(&repo, &kept, 4).await.expect("link");
    let accounts = registry_auth::Accounts::new(Arc::new(store.clone()));
    accounts.create_project("before", false).await.expect("project");

    failing.store(true, Ordering::SeqCst);
    let failed = store.link_blob(&repo, &lost, 4).await;
    assert!(failed.as_ref().is_err_and(registry_storage::Error::is_retryable), "{failed:?}");
    let still = store.link_blob(&repo, &later, 5).await;
    assert!(still.as_ref().is_err_and(registry_storage::Error::is_retryable), "while the disk fails: {still:?}");
    let refused = accounts.create_project("during", false).await;
    assert!(
        matches!(&refused, Err(registry_auth::AuthError::Backend(e)) if e.is_retryable()),
        "accounts share the database and its recovery: {refused:?}"
    );

    failing.store(false, Ordering::SeqCst);
    store.link_blob(&repo, &later, 5).await.expect("works again once the disk does");
    assert_eq!(store.blob_link(&repo, &kept).await.expect("read"), Some(4), "committed data kept");
    assert_eq!(store.blob_link(&repo, &lost).await.expect("read"), None, "the failed write left nothing");
    assert_eq!(store.blob_link(&repo, &later).await.expect("read"), Some(5));
    assert!(accounts.project("before").await.expect("read").is_some());
    assert!(accounts.project("during").await.expect("read").is_none());
    accounts.create_project("after", false).await.expect("accounts work again");
}

/// A data directory of the previous layout (metadata and accounts in two files) opens, and its
/// accounts move into the one database with their passwords and creation times.
#[tokio::test]
async fn accounts_of_the_previous_layout_move_in() {
    use redb::{Database, TableDefinition};
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("accounts.redb");
    let hash =
        registry_auth::Accounts::in_memory().add_user("x", "password1", false).await.expect("hash").password_hash;
    {
        let db = Database::create(&old).expect("old database");
        let txn = db.begin_write().expect("txn");
        let t = |name| TableDefinition::<&str, &[u8]>::new(name);
        let user = serde_json::json!({"name": "dana", "password_hash": hash.as_str(), "admin": false, "enabled": true});
        txn.open_table(t("users")).expect("t").insert("dana", user.to_string().as_bytes()).expect("insert");
        let project = serde_json::json!({"name": "team", "public": false, "created_at": 1_700_000_000u64});
        txn.open_table(t("projects")).expect("t").insert("team", project.to_string().as_bytes()).expect("insert");
        let member = serde_json::json!({"user": "dana", "project": "team", "role": "developer", "repositories": null});
        txn.open_table(t("members")).expect("t").insert("team\0dana", member.to_string().as_bytes()).expect("insert");
        let robot = serde_json::json!({"name": "robot$team+ci", "project": "team", "secret_hash": hash.as_str(),
            "permissions": [{"repositories": "app-*", "actions": ["pull", "push"]}], "expires_at": null});
        txn.open_table(t("robots")).expect("t").insert("robot$team+ci", robot.to_string().as_bytes()).expect("insert");
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(dir.path().join("metadata.redb")).expect("open");
    let report = store.import_legacy_accounts(&old).await.expect("import");
    assert_eq!((report.users, report.projects, report.members, report.robots), (1, 1, 1, 1));
    let accounts = registry_auth::Accounts::new(Arc::new(store.clone()));
    use registry_auth::{AccessPolicy, Authenticator};
    let dana = accounts.authenticate("dana", "password1").await.expect("the old password works");
    let scope = registry_core::Scope::parse("repository:team/app:pull,push").expect("scope");
    assert_eq!(accounts.grant(&dana, &scope).await.expect("grant").to_string(), "repository:team/app:pull,push");
    let robot = accounts.authenticate("robot$team+ci", "password1").await.expect("robot");
    let narrow = registry_core::Scope::parse("repository:team/app-x:push").expect("scope");
    assert_eq!(accounts.grant(&robot, &narrow).await.expect("grant").to_string(), "repository:team/app-x:push");
    assert_eq!(accounts.project("team").await.expect("p").expect("team").created_at, 1_700_000_000);
    let again = store.import_legacy_accounts(&old).await.expect("import twice");
    assert_eq!(again.users + again.projects, 0, "nothing is imported twice");
}

/// Account changes are in the same event stream as the metadata's, written with the change,
/// naming who made it.
#[tokio::test]
async fn account_changes_are_events_of_the_one_stream() {
    use registry_core::event::{EventAction, Operator};
    let store = RedbStore::in_memory();
    let accounts = registry_auth::Accounts::new(Arc::new(store.clone()))
        .acting_as(Operator::named("admin", Some("192.0.2.7".into())));
    accounts.add_user("erin", "password1", false).await.expect("user");
    accounts.create_project("team", false).await.expect("project");
    accounts.add_member("team", "erin", registry_auth::model::Role::Developer, None).await.expect("member");
    assert!(accounts.remove_project("nosuch").await.is_err(), "a failed change records nothing");
    let events = store.events_after(0, 10).await.expect("events");
    let actions: Vec<EventAction> = events.iter().map(|e| e.action).collect();
    assert_eq!(actions, vec![EventAction::CreateUser, EventAction::CreateProject, EventAction::CreateMember]);
    assert!(events.iter().all(|e| e.operator == Operator::named("admin", Some("192.0.2.7".into()))));
    assert_eq!(events[2].resource.project.as_deref(), Some("team"));
    assert_eq!(events[2].resource.name.as_deref(), Some("erin"));
}

#[tokio::test]
async fn opening_a_version_3_database_counts_every_projects_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.redb");
    let before = {
        let store = RedbStore::open(&path).expect("open");
        metadata_store_suite(&store).await;
        let layer = Digest::sha256_of(b"upgrade layer");
        store.link_blob(&RepositoryName::parse("up/a").expect("name"), &layer, 300).await.expect("link");
        store.link_blob(&RepositoryName::parse("up/b").expect("name"), &layer, 300).await.expect("link");
        store.quotas().await.expect("quotas")
    };
    {
        // What version 3 had: no usage tables.
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.delete_table(redb::TableDefinition::<&str, (u64, u64)>::new("holdings")).expect("drop holdings");
        txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new("quotas")).expect("drop quotas");
        txn.open_table(redb::TableDefinition::<&str, u64>::new("schema"))
            .expect("schema")
            .insert("version", 3)
            .expect("version");
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&path).expect("reopen");
    let counted: Vec<(String, u64)> =
        store.quotas().await.expect("quotas").into_iter().map(|q| (q.project, q.used)).collect();
    let expected: Vec<(String, u64)> = before.into_iter().filter(|q| q.used > 0).map(|q| (q.project, q.used)).collect();
    assert_eq!(counted, expected, "usage counted from what the database holds");
    assert!(counted.contains(&("up".to_owned(), 300)), "a blob in two repositories counts once: {counted:?}");
}

#[tokio::test]
async fn opening_a_version_4_database_builds_the_listing_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.redb");
    let repos = ["listing7/app", "listing7/tools/cli"].map(|n| RepositoryName::parse(n).expect("name"));
    let before = {
        let store = RedbStore::open(&path).expect("open");
        // Writes left in place: the random sequence without its final deletions.
        registry_storage::testing::listing::listing_steps(&store, 7, 60).await;
        let mut before = Vec::new();
        for repo in &repos {
            before.push(store.artifacts(repo, 0, 1000).await.expect("artifacts"));
        }
        before
    };
    assert!(before.iter().any(|page| page.total > 0), "the sequence leaves artifacts");
    {
        // What version 4 had: no listing tables.
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        for table in ["artifacts", "listed"] {
            txn.delete_table(redb::TableDefinition::<&str, u8>::new(table)).expect("drop");
        }
        txn.delete_table(redb::TableDefinition::<&str, u64>::new("artifact_at")).expect("drop");
        txn.delete_table(redb::TableDefinition::<&str, u64>::new("listed_count")).expect("drop");
        txn.delete_table(redb::TableDefinition::<&str, (u64, u64, u64, u64, u64)>::new("repository_stats"))
            .expect("drop");
        txn.open_table(redb::TableDefinition::<&str, u64>::new("schema"))
            .expect("schema")
            .insert("version", 4)
            .expect("version");
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&path).expect("reopen");
    for (repo, page) in repos.iter().zip(before) {
        registry_storage::testing::listing::check_listing(&store, repo).await;
        assert_eq!(store.artifacts(repo, 0, 1000).await.expect("artifacts"), page, "{repo}: built as it was kept");
    }
}

#[tokio::test]
async fn opening_a_version_5_database_indexes_the_job_queue() {
    use redb::ReadableTable;
    use registry_storage::jobs::{JobEnd, JobOutcome, JobQueue, JobUpdate, KindLimit, NewJob};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.redb");
    let kinds = [KindLimit { kind: "webhook".into(), limit: 2 }, KindLimit { kind: "gc".into(), limit: 1 }];
    let (counts, finished) = {
        let store = RedbStore::open(&path).expect("open");
        for i in 0..5 {
            store
                .enqueue(&NewJob::new("webhook", format!("{{\"n\":{i}}}"), "event"), 1_000 + i)
                .await
                .expect("enqueue");
        }
        store.enqueue(&NewJob::new("gc", "{}".into(), "schedule"), 1_000).await.expect("enqueue");
        // One delivery finished, one running, the rest pending.
        let done = store.claim(&kinds, "w", 2_000, 60_000).await.expect("claim").expect("a job");
        let outcome = JobOutcome { end: JobEnd::Succeeded { result: String::new() }, update: JobUpdate::default() };
        assert!(store.finish(done.id, done.claim, &outcome, 2_500).await.expect("finish"));
        let running = store.claim(&kinds, "w", 3_000, 60_000).await.expect("claim").expect("a job");
        assert_eq!(running.kind, "gc", "due at 1,000, before the second delivery");
        (store.job_counts().await.expect("counts"), done.id)
    };
    {
        // What version 5 had: one index of the pending and running jobs, no counts.
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        let ids: Vec<u64> = {
            let running = txn.open_table(redb::TableDefinition::<u64, ()>::new("jobs_running")).expect("running");
            let due = txn.open_table(redb::TableDefinition::<(&str, u64, u64), ()>::new("jobs_due")).expect("due");
            let mut ids: Vec<u64> = running.iter().expect("iter").map(|r| r.expect("row").0.value()).collect();
            ids.extend(due.iter().expect("iter").map(|r| r.expect("row").0.value().2));
            ids
        };
        assert_eq!(ids.len(), 5, "one running, four pending");
        txn.delete_table(redb::TableDefinition::<u64, ()>::new("jobs_running")).expect("drop");
        txn.delete_table(redb::TableDefinition::<(&str, u64, u64), ()>::new("jobs_due")).expect("drop");
        txn.delete_table(redb::TableDefinition::<(&str, u64, u64), ()>::new("jobs_finished_by_kind")).expect("drop");
        txn.delete_table(redb::TableDefinition::<(&str, &str), u64>::new("job_counts")).expect("drop");
        {
            let mut active = txn.open_table(redb::TableDefinition::<u64, ()>::new("jobs_active")).expect("active");
            for id in ids {
                active.insert(id, ()).expect("insert");
            }
        }
        txn.open_table(redb::TableDefinition::<&str, u64>::new("schema"))
            .expect("schema")
            .insert("version", 5)
            .expect("version");
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.job_counts().await.expect("counts"), counts, "counted from the jobs kept");
    // The queue goes on where it was: the pending deliveries in order up to their limit, the
    // collection still running.
    for n in [1, 2] {
        let next = store.claim(&kinds, "w", 4_000, 60_000).await.expect("claim").expect("a job");
        assert_eq!((next.kind.as_str(), next.payload.clone()), ("webhook", format!("{{\"n\":{n}}}")));
    }
    assert!(store.claim(&kinds, "w", 4_000, 60_000).await.expect("claim").is_none(), "every kind at its limit");
    // Finished jobs are trimmed by age from the index.
    assert_eq!(store.trim_jobs(2_400).await.expect("trim"), 0, "finished at 2,500");
    assert_eq!(store.trim_jobs(2_600).await.expect("trim"), 1);
    assert!(store.job(finished).await.expect("job").is_none());
    let counts = store.job_counts().await.expect("counts");
    assert!(counts.iter().all(|c| c.status.as_str() != "succeeded"), "{counts:?}");
}

#[tokio::test]
async fn opening_a_version_6_database_indexes_the_finished_jobs_by_kind() {
    use redb::ReadableTable;
    use registry_storage::jobs::{JobEnd, JobOutcome, JobQueue, JobUpdate, KindLimit, NewJob};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.redb");
    let mut finished = Vec::new();
    {
        let store = RedbStore::open(&path).expect("open");
        for (i, kind) in ["webhook", "gc", "webhook", "webhook"].into_iter().enumerate() {
            let at = 1_000 + i as u64 * 100;
            let (id, _) = store.enqueue(&NewJob::new(kind, "{}".into(), "event"), at).await.expect("enqueue");
            let limits = [KindLimit { kind: kind.into(), limit: 1 }];
            let job = store.claim(&limits, "w", at, 60_000).await.expect("claim").expect("a job");
            let outcome = JobOutcome { end: JobEnd::Succeeded { result: String::new() }, update: JobUpdate::default() };
            assert!(store.finish(id, job.claim, &outcome, at + 1).await.expect("finish"));
            finished.push(id);
        }
    }
    {
        // What version 6 had: the finished jobs indexed by (updated ms, id).
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        let by_kind = redb::TableDefinition::<(&str, u64, u64), ()>::new("jobs_finished_by_kind");
        let rows: Vec<(u64, u64)> = {
            let table = txn.open_table(by_kind).expect("by kind");
            let rows = table.iter().expect("iter").map(|r| r.expect("row"));
            rows.map(|(key, _)| {
                let (_, at, id) = key.value();
                (at, id)
            })
            .collect()
        };
        assert_eq!(rows.len(), 4);
        txn.delete_table(by_kind).expect("drop");
        {
            let mut by_time =
                txn.open_table(redb::TableDefinition::<(u64, u64), ()>::new("jobs_finished")).expect("old");
            for row in rows {
                by_time.insert(row, ()).expect("insert");
            }
        }
        txn.open_table(redb::TableDefinition::<&str, u64>::new("schema"))
            .expect("schema")
            .insert("version", 6)
            .expect("version");
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.trim_jobs_beyond("webhook", 1, 100).await.expect("trim"), 2, "three deliveries, one kept");
    assert!(store.job(finished[3]).await.expect("job").is_some(), "the newest delivery kept");
    assert!(store.job(finished[1]).await.expect("job").is_some(), "the collection is another kind");
    assert_eq!(store.trim_jobs(1_102).await.expect("trim"), 1, "the collection, finished at 1,101");
    assert!(store.job(finished[3]).await.expect("job").is_some());
}
