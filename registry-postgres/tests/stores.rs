//! PostgreSQL passes every shared suite (metadata, accounts, garbage collection, concurrent
//! writers through two pools as two replicas would), applies its migrations once however many
//! replicas start at once, and shares its secrets. Each test has a database of its own, dropped
//! at its end.

use std::sync::Arc;

use registry_postgres::testing::TestDatabase;
use registry_postgres::{PgOptions, PgStore};
use registry_storage::testing::gc::{GcFixture, gc_suite};
use registry_storage::{Limits, MemoryBlobStore, MetadataStore, Registry};

#[tokio::test]
async fn metadata_suite() {
    let db = TestDatabase::create().await;
    registry_storage::testing::metadata_store_suite(&db.store().await).await;
    db.drop_database().await;
}

/// Migration 4 counts what an existing database holds: its counting part, run again on the
/// suite's data after the counters were emptied, gives what the stores' own bookkeeping gave.
#[tokio::test]
async fn migration_4_counts_existing_usage_as_the_stores_do() {
    use registry_storage::QuotaStore;
    let db = TestDatabase::create().await;
    let store = db.store().await;
    registry_storage::testing::metadata_store_suite(&store).await;
    let layer = registry_core::Digest::sha256_of(b"migration layer");
    for repo in ["mig/a", "mig/b/c"] {
        let name = registry_core::RepositoryName::parse(repo).expect("name");
        store.link_blob(&name, &layer, 300).await.expect("link");
    }
    let kept = |quotas: Vec<registry_storage::Quota>| -> Vec<(String, u64)> {
        quotas.into_iter().filter(|q| q.used > 0).map(|q| (q.project, q.used)).collect()
    };
    let counted = kept(store.quotas().await.expect("quotas"));
    assert!(counted.contains(&("mig".to_owned(), 300)), "{counted:?}");
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.expect("connect");
    let task = tokio::spawn(connection);
    let migration = include_str!("../migrations/0004_quotas_labels.sql");
    let counting = &migration[migration.find("-- What an existing database holds").expect("counting part")..];
    client.batch_execute("DELETE FROM holdings; DELETE FROM quotas;").await.expect("empty");
    client.batch_execute(counting).await.expect("count again");
    assert_eq!(kept(store.quotas().await.expect("quotas")), counted, "the migration counts as the stores do");
    drop(client);
    task.abort();
    drop(store);
    db.drop_database().await;
}

/// Migration 8's fill, run again over data the stores wrote, builds the index and counts the
/// stores kept.
#[tokio::test]
async fn migration_8_builds_the_listing_as_the_stores_keep_it() {
    let db = TestDatabase::create().await;
    let store = db.store().await;
    let repos = registry_storage::testing::listing::listing_steps(&store, 8, 60).await;
    let mut before = Vec::new();
    for repo in &repos {
        before.push(store.artifacts(repo, 0, 1000).await.expect("artifacts"));
    }
    assert!(before.iter().any(|page| page.total > 0), "the sequence leaves artifacts");
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.expect("connect");
    let task = tokio::spawn(connection);
    let migration = include_str!("../migrations/0008_listing.sql");
    let filling = &migration[migration.find("-- What the database holds already").expect("filling part")..];
    client
        .batch_execute(
            "DELETE FROM artifacts; DELETE FROM repository_stats; DELETE FROM listed_repositories; DELETE FROM listed_count;",
        )
        .await
        .expect("empty");
    client.batch_execute(filling).await.expect("fill again");
    for (repo, page) in repos.iter().zip(before) {
        registry_storage::testing::listing::check_listing(&store, repo).await;
        assert_eq!(store.artifacts(repo, 0, 1000).await.expect("artifacts"), page, "{repo}: filled as kept");
    }
    drop(client);
    task.abort();
    drop(store);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_one_listing() {
    let db = TestDatabase::create().await;
    let (a, b) = (db.store().await, db.store().await);
    registry_storage::testing::listing::concurrent_listing(Arc::new(a), Arc::new(b)).await;
    db.drop_database().await;
}

#[tokio::test]
async fn account_suite() {
    let db = TestDatabase::create().await;
    registry_auth::testing::account_store_suite(&db.store().await).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_through_two_pools() {
    let db = TestDatabase::create().await;
    let (a, b) = (db.store().await, db.store().await);
    assert!(a.shared(), "a PostgreSQL store is shared by replicas");
    registry_storage::testing::concurrent::concurrent_writers_suite(Arc::new(a), Arc::new(b)).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_queue_and_policies_through_two_pools() {
    let db = TestDatabase::create().await;
    let (a, b) = (db.store().await, db.store().await);
    registry_storage::testing::jobs::job_queue_suite(&a).await;
    let (a, b): (Arc<dyn MetadataStore>, Arc<dyn MetadataStore>) = (Arc::new(a), Arc::new(b));
    registry_storage::testing::jobs::concurrent_claims_suite(a.clone(), b.clone()).await;
    registry_storage::testing::jobs::runners_suite(a, b).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collection_suite() {
    gc_suite(|| async {
        let db = TestDatabase::create().await;
        let blobs = Arc::new(MemoryBlobStore::new());
        let registry = Registry::new(blobs.clone(), Arc::new(db.store().await), Limits::default());
        GcFixture { registry, blobs, guard: Box::new(db) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_apply_the_migrations_once() {
    let db = TestDatabase::create().await;
    let starts = (0..6).map(|_| {
        let url = db.url().to_owned();
        tokio::spawn(async move { PgStore::connect(&url, PgOptions::default()).await })
    });
    let stores: Vec<PgStore> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("every replica starts"))
        .collect();
    let applied = stores[0].schema_versions().await.expect("versions");
    assert_eq!(applied, (1..=10).collect::<Vec<i32>>(), "each migration applied once");
    drop(stores);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_secret() {
    let db = TestDatabase::create().await;
    let (a, b) = (db.store().await, db.store().await);
    let (x, y) = tokio::join!(
        a.shared_secret("token-key", || Ok(b"made by a".to_vec())),
        b.shared_secret("token-key", || Ok(b"made by b".to_vec()))
    );
    let (x, y) = (x.expect("secret"), y.expect("secret"));
    assert_eq!(x, y, "both replicas use the one that was stored");
    let again = a.shared_secret("token-key", || panic!("not made twice")).await.expect("secret");
    assert_eq!(again, x);
    db.drop_database().await;
}

#[tokio::test]
async fn an_unreachable_database_is_named_in_the_error() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("postgres://registry@127.0.0.1:{port}/registry");
    let options = PgOptions { connect_timeout: std::time::Duration::from_secs(2), ..PgOptions::default() };
    let err = PgStore::connect(&url, options).await.expect_err("nothing answers");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}/registry")), "{message}");
    assert!(!message.contains("postgres://"), "no URL (it may carry a password): {message}");
    let err = PgStore::connect("postgres://a:b@[bad", PgOptions::default()).await.expect_err("bad URL");
    assert!(err.to_string().contains("invalid PostgreSQL URL"), "{err}");
}

/// A connection stranded mid-call (its peer gone silent while its kernel still acknowledges, as
/// after a failover or a lost NAT mapping) is closed when the call is abandoned, not lent to the
/// next call: readiness and requests recover as soon as new connections get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_abandoned_mid_call_is_not_lent_again() {
    let db = TestDatabase::create().await;
    let url = db.url().to_owned();
    let host = url.split_once('@').map_or(url.as_str(), |(_, r)| r).split('/').next().unwrap_or_default().to_owned();
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&host).expect("resolve").next().expect("an address");
    let proxy = testkit::faultproxy::FaultProxy::start(upstream).await;
    let options =
        PgOptions { pool_size: 2, connect_timeout: std::time::Duration::from_secs(1), ..PgOptions::default() };
    let store = PgStore::connect(&url.replacen(&host, &proxy.host(), 1), options).await.expect("connect");
    let repo: registry_core::RepositoryName = "library/stranded".parse().expect("name");
    // Two calls at once: two connections in the pool.
    let (a, b) = tokio::join!(store.list_tags(&repo, None, 10), store.list_tags(&repo, None, 10));
    a.and(b).expect("calls through the proxy");
    assert_eq!(proxy.open_connections(), 2);

    // Every pooled connection is stranded: the calls on them hang and are abandoned, as the
    // request deadline and the readiness probe's timeout abandon them.
    proxy.strand();
    store.ping().await.expect_err("a stranded connection does not answer");
    let abandoned = tokio::time::timeout(std::time::Duration::from_secs(2), store.list_tags(&repo, None, 10)).await;
    assert!(abandoned.is_err(), "a call on a stranded connection hangs: {abandoned:?}");

    // The next calls get new connections, which go through.
    store.ping().await.expect("readiness recovers on a new connection");
    let tags = tokio::time::timeout(std::time::Duration::from_secs(5), store.list_tags(&repo, None, 10)).await;
    assert!(tags.expect("the next call does not hang").is_ok(), "a call recovers on a new connection");
    proxy.heal();
    drop(store);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_collects_at_a_time() {
    let db = TestDatabase::create().await;
    let (a, b) = (db.store().await, db.store().await);
    let released = a.lock_job("garbage collection").await.expect("lock").expect("free");
    assert!(b.lock_job("garbage collection").await.expect("lock").is_none(), "held by the other replica");
    released.release().await;
    let second = b.lock_job("garbage collection").await.expect("lock").expect("free at once when released");
    second.release().await;
    let held = a.lock_job("garbage collection").await.expect("lock").expect("free");
    let registry = Registry::new(Arc::new(MemoryBlobStore::new()), Arc::new(b.clone()), Limits::default());
    let refused = registry.collect_garbage(&registry_storage::GcOptions::default()).await;
    assert!(matches!(refused, Err(registry_storage::Error::JobRunning { .. })), "{refused:?}");
    drop(held);
    // The lock goes with the holder's session, which PostgreSQL ends once it sees the socket close.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(lock) = b.lock_job("garbage collection").await.expect("lock") {
            lock.release().await;
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "free once the holder's session ends");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    registry.collect_garbage(&registry_storage::GcOptions::default()).await.expect("collects");
    db.drop_database().await;
}

#[tokio::test]
async fn account_changes_are_events_of_the_one_stream() {
    use registry_core::event::{EventAction, Operator};
    let db = TestDatabase::create().await;
    let store = db.store().await;
    let accounts = registry_auth::Accounts::new(Arc::new(store.clone())).acting_as(Operator::named("admin", None));
    accounts.add_user("erin", "password1", false).await.expect("user");
    accounts.create_project("team", false).await.expect("project");
    accounts.remove_user("erin").await.expect("remove");
    let events = store.events_after(0, 10).await.expect("events");
    let actions: Vec<EventAction> = events.iter().map(|e| e.action).collect();
    assert_eq!(actions, vec![EventAction::CreateUser, EventAction::CreateProject, EventAction::DeleteUser]);
    let (page, total) = store
        .query_events(
            &registry_core::event::EventFilter { resource_type: Some("user".into()), ..Default::default() },
            0,
            10,
        )
        .await
        .expect("query");
    assert_eq!((total, page[0].action), (2, EventAction::DeleteUser), "newest first, filtered in SQL");
    db.drop_database().await;
}
