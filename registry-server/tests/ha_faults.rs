//! Faults in the replicated shape: a replica SIGKILLed during pushes, PostgreSQL restarted under
//! load, the S3 server restarted under load; the network between one replica and PostgreSQL, or
//! between it and the S3 server, cut (a fault proxy, `testkit::faultproxy`) while the others serve;
//! its PostgreSQL connections stalled mid-transaction and while it holds an upload's lease; stores
//! slowed and throttled; a tag moved through one replica after another. Clients retry as real ones do; at the end every
//! acknowledged image is intact, and an interrupted upload resumes at its acknowledged offset on
//! another replica.

mod cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster::{Cluster, Options, admin_token, assert_intact, push_until, try_push_blob};
use registry_core::Digest;
use reqwest::StatusCode;
use testkit::*;

const MIB: usize = 1 << 20;

/// A pusher's repository, and its task returning what was acknowledged.
type Pushers = Vec<(String, tokio::task::JoinHandle<Vec<(String, Digest)>>)>;

/// Starts `n` pushers through the proxy, each on a repository of its own.
async fn start_pushers(cluster: &Cluster, n: usize, stop: &Arc<AtomicBool>) -> Pushers {
    let mut pushers = Vec::new();
    for i in 0..n {
        let repo = format!("library/load{i}");
        let token = admin_token(&cluster.url(), &[&format!("repository:{repo}:pull,push")]).await;
        pushers.push((repo.clone(), tokio::spawn(push_until(cluster.url(), repo, token, stop.clone()))));
    }
    pushers
}

/// Waits until `repo` has at least `at_least` images acknowledged (polls its tag list through the
/// proxy, as a client watching a rollout would).
async fn wait_for_progress(cluster: &Cluster, repo: &str, at_least: usize) {
    wait_for_progress_via(&cluster.url(), repo, at_least).await
}

/// A token for the admin from `base`'s own token endpoint: the challenge's realm names nginx,
/// which could pass the request to a replica cut off from its stores.
async fn token_from(base: &str, scope: &str) -> String {
    let c = client();
    let challenge = c.get(format!("{base}/v2/")).send().await.expect("challenge");
    let challenge = header(&challenge, "www-authenticate");
    let service = challenge.split("service=\"").nth(1).and_then(|s| s.split('"').next()).expect("service");
    let resp = c
        .get(format!("{base}/auth/token?service={service}&scope={scope}"))
        .basic_auth("admin", Some(cluster::PASSWORD))
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::OK, "{base}: token");
    let body: serde_json::Value = resp.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

/// [`wait_for_progress`] asking `base` (a replica known to be healthy).
async fn wait_for_progress_via(base: &str, repo: &str, at_least: usize) {
    let c = client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = token_from(base, &format!("repository:{repo}:pull")).await;
        let resp = c.get(format!("{base}/v2/{repo}/tags/list")).bearer_auth(&t).send().await;
        let count = match resp {
            Ok(r) if r.status() == StatusCode::OK => {
                r.json::<serde_json::Value>().await.ok().and_then(|v| v["tags"].as_array().map(Vec::len)).unwrap_or(0)
            }
            _ => 0,
        };
        if count >= at_least {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{repo}: no progress to {at_least} images within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finish(cluster: &Cluster, stop: Arc<AtomicBool>, pushers: Pushers) {
    stop.store(true, Ordering::SeqCst);
    for (repo, pusher) in pushers {
        let pushed = pusher.await.expect("pusher");
        let t = admin_token(&cluster.url(), &[&format!("repository:{repo}:pull")]).await;
        assert_intact(&cluster.url(), &t, &repo, &pushed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_during_pushes_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(Options::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pushers = start_pushers(&cluster, 3, &stop).await;
    wait_for_progress(&cluster, "library/load0", 3).await;
    cluster.kill(1).await;
    // Pushes go on through the two left (nginx passes what replica 1 refuses to the next).
    wait_for_progress(&cluster, "library/load0", 8).await;
    finish(&cluster, stop, pushers).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_upload_resumes_at_its_acknowledged_offset_on_another_replica() {
    let mut cluster = Cluster::start(Options::default()).await;
    let c = client();
    let t = admin_token(&cluster.replica(0), &["repository:library/resume:pull,push"]).await;
    let data: Vec<u8> = (0..12 * MIB).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let resp = c
        .post(format!("{}/v2/library/resume/blobs/uploads/", cluster.replica(0)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("post");
    let location = header(&resp, "location");
    let first = 6 * MIB;
    let resp = c
        .patch(format!("{}{location}", cluster.replica(1)))
        .bearer_auth(&t)
        .header("content-range", format!("0-{}", first - 1))
        .body(data[..first].to_vec())
        .send()
        .await
        .expect("first chunk");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // The second chunk starts streaming to replica 1, which dies in the middle of it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let target = format!("{}{location}", cluster.replica(1));
    let (c2, t2) = (c.clone(), t.clone());
    let patch = tokio::spawn(async move {
        c2.patch(target)
            .bearer_auth(&t2)
            .header("content-range", format!("{first}-{}", 12 * MIB - 1))
            .header("content-length", (12 * MIB - first).to_string())
            .body(body)
            .send()
            .await
    });
    tx.send(Ok(data[first..first + MIB].to_vec())).await.expect("send");
    cluster.kill(1).await;
    drop(tx);
    assert!(patch.await.expect("task").is_err(), "the request died with its replica");

    // Another replica reports the acknowledged offset; the client resumes from it there.
    let status = c.get(format!("{}{location}", cluster.replica(2))).bearer_auth(&t).send().await.expect("status");
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), format!("0-{}", first - 1), "the acknowledged offset");
    let resp = c
        .patch(format!("{}{location}", cluster.replica(2)))
        .bearer_auth(&t)
        .header("content-range", format!("{first}-{}", 12 * MIB - 1))
        .body(data[first..].to_vec())
        .send()
        .await
        .expect("resume");
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "resumed once the dead replica's lease ran out");
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = c
        .put(format!("{}{location}{sep}digest={digest}", cluster.replica(0)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("complete");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got =
        c.get(format!("{}/v2/library/resume/blobs/{digest}", cluster.url())).bearer_auth(&t).send().await.expect("get");
    assert!(got.bytes().await.expect("body").as_ref() == data.as_slice());
    cluster.stop().await;
}

/// A stream of the channel's items.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Requests made while a store is down: 503 with `Retry-After` (never a 500 or a hang), and the
/// readiness probe says so.
async fn assert_unavailable_while_down(cluster: &Cluster, token: &str) {
    let c = client();
    let resp = c
        .get(format!("{}/v2/library/load0/manifests/t0", cluster.replica(0)))
        .bearer_auth(token)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "a store is down");
    assert!(resp.headers().contains_key("retry-after"));
    let ready = c.get(format!("{}/readyz", cluster.replica(0))).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_postgresql_under_load_loses_nothing_acknowledged() {
    let pg = testkit::postgres::PrivatePostgres::start().await;
    let cluster = Cluster::start(Options { database_url: Some(pg.url()), ..Options::default() }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pushers = start_pushers(&cluster, 3, &stop).await;
    wait_for_progress(&cluster, "library/load0", 3).await;
    let token = admin_token(&cluster.url(), &["repository:library/load0:pull"]).await;
    pg.stop_server().await;
    assert_unavailable_while_down(&cluster, &token).await;
    pg.start_server().await;
    // Recovery without a restart of the replicas.
    wait_for_progress(&cluster, "library/load0", 8).await;
    let ready = client().get(format!("{}/readyz", cluster.replica(0))).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    finish(&cluster, stop, pushers).await;
    cluster.stop().await;
    pg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_the_s3_server_under_load_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(Options::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pushers = start_pushers(&cluster, 3, &stop).await;
    wait_for_progress(&cluster, "library/load0", 3).await;
    let token = admin_token(&cluster.url(), &["repository:library/load0:pull"]).await;
    cluster.s3.kill().await;
    let c = client();
    // Blob reads fail with 503 (manifests are bytes in the bucket too).
    let resp = c
        .get(format!("{}/v2/library/load0/manifests/t0", cluster.replica(0)))
        .bearer_auth(&token)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("an answer");
    assert!(
        resp.status() == StatusCode::SERVICE_UNAVAILABLE || resp.status() == StatusCode::OK,
        "a cached manifest, or 503: {}",
        resp.status()
    );
    let ready = c.get(format!("{}/readyz", cluster.replica(0))).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    cluster.s3.spawn().await;
    wait_for_progress(&cluster, "library/load0", 8).await;
    finish(&cluster, stop, pushers).await;
    cluster.stop().await;
}

/// Polls replica `i`'s `/readyz` until it answers `want`, within 60 s; how long it took.
async fn readiness_becomes(cluster: &Cluster, i: usize, want: StatusCode) -> Duration {
    let c = client();
    let started = tokio::time::Instant::now();
    loop {
        let probe = c.get(format!("{}/readyz", cluster.replica(i))).timeout(Duration::from_secs(20)).send().await;
        if probe.as_ref().is_ok_and(|r| r.status() == want) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "replica {i}: /readyz never became {want}: {probe:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts replicas other than `cut` are ready and serve a pull of `repo`'s tag list.
async fn others_serve(cluster: &Cluster, cut: usize, repo: &str) {
    let c = client();
    for i in (0..cluster.replicas.len()).filter(|i| *i != cut) {
        assert!(readiness_becomes(cluster, i, StatusCode::OK).await < Duration::from_secs(1), "replica {i} ready");
        let t = token_from(&cluster.replica(i), &format!("repository:{repo}:pull")).await;
        let resp =
            c.get(format!("{}/v2/{repo}/tags/list", cluster.replica(i))).bearer_auth(&t).send().await.expect("list");
        assert_eq!(resp.status(), StatusCode::OK, "replica {i} serves while replica {cut} is cut off");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_from_postgresql_under_load_is_unready_then_recovers_and_loses_nothing() {
    let cluster = Cluster::start(Options { faults: true, ..Options::default() }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pushers = start_pushers(&cluster, 3, &stop).await;
    wait_for_progress(&cluster, "library/load0", 2).await;

    // Replica 0 loses PostgreSQL: its connections closed, new ones refused.
    cluster.db_faults[0].refuse(true);
    cluster.db_faults[0].cut();
    let took = readiness_becomes(&cluster, 0, StatusCode::SERVICE_UNAVAILABLE).await;
    eprintln!("replica 0 unready {took:?} after the cut");
    let t = token_from(&cluster.replica(1), "repository:library/load0:pull").await;
    let answer = client()
        .get(format!("{}/v2/library/load0/tags/list", cluster.replica(0)))
        .bearer_auth(&t)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the cut replica answers, promptly");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "a database out of reach is a 503");
    others_serve(&cluster, 0, "library/load0").await;
    // Pushes go on through nginx (what lands on replica 0 fails and is retried).
    wait_for_progress_via(&cluster.replica(1), "library/load0", 6).await;

    cluster.db_faults[0].heal();
    let took = readiness_becomes(&cluster, 0, StatusCode::OK).await;
    eprintln!("replica 0 ready {took:?} after healing");
    let t = token_from(&cluster.replica(0), "repository:library/after:pull,push").await;
    assert!(try_push_blob(&client(), &cluster.replica(0), "library/after", b"after the cut", &t).await.is_some());
    wait_for_progress(&cluster, "library/load0", 8).await;
    finish(&cluster, stop, pushers).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_from_s3_between_parts_leaves_its_upload_resumable_on_another() {
    let cluster = Cluster::start(Options { faults: true, ..Options::default() }).await;
    let c = client();
    let t = admin_token(&cluster.replica(0), &["repository:library/parts:pull,push"]).await;
    let data: Vec<u8> = (0..18 * MIB).map(|i| (i % 253) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let resp = c.post(format!("{}/v2/library/parts/blobs/uploads/", cluster.replica(0))).bearer_auth(&t).send().await;
    let location = header(&resp.expect("post"), "location");
    let patch = |replica: String, from: usize, to: usize| {
        let (c, t, location, body) = (c.clone(), t.clone(), location.clone(), data[from..to].to_vec());
        async move {
            c.patch(format!("{replica}{location}"))
                .bearer_auth(&t)
                .header("content-range", format!("{from}-{}", to - 1))
                .body(body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
        }
    };
    let first = 6 * MIB;
    let resp = patch(cluster.replica(0), 0, first).await.expect("first chunk");
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "a part written");

    // Replica 0 loses the S3 server between parts.
    cluster.s3_faults[0].refuse(true);
    cluster.s3_faults[0].cut();
    let resp = patch(cluster.replica(0), first, 2 * first).await.expect("an answer, not a hang");
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert!(resp.headers().contains_key("retry-after"), "a retryable fault");
    readiness_becomes(&cluster, 0, StatusCode::SERVICE_UNAVAILABLE).await;

    // Another replica has the acknowledged offset; the client goes on there.
    let status = c.get(format!("{}{location}", cluster.replica(1))).bearer_auth(&t).send().await.expect("status");
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), format!("0-{}", first - 1), "nothing half-acknowledged");
    let resp = patch(cluster.replica(1), first, data.len()).await.expect("resume");
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "resumed on another replica");
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = c
        .put(format!("{}{location}{sep}digest={digest}", cluster.replica(2)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("complete");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got = c.get(format!("{}/v2/library/parts/blobs/{digest}", cluster.url())).bearer_auth(&t).send().await;
    assert!(got.expect("get").bytes().await.expect("body").as_ref() == data.as_slice(), "whole");

    cluster.s3_faults[0].heal();
    readiness_becomes(&cluster, 0, StatusCode::OK).await;
    assert!(try_push_blob(&c, &cluster.replica(0), "library/parts", b"after the cut", &t).await.is_some());
    cluster.stop().await;
}

/// Pushes one image through `base` (layer, config, manifest under `tag`), each request bounded by
/// `limit`; how long it took, or why it did not go through.
async fn push_image(base: &str, repo: &str, token: &str, tag: &str, limit: Duration) -> Result<Duration, String> {
    let c = reqwest::Client::builder().timeout(limit).build().map_err(|e| e.to_string())?;
    let started = tokio::time::Instant::now();
    let layer = format!("{repo} {tag} layer").into_bytes();
    let config = b"{}".to_vec();
    let l = try_push_blob(&c, base, repo, &layer, token).await.ok_or("layer push failed")?;
    let cfg = try_push_blob(&c, base, repo, &config, token).await.ok_or("config push failed")?;
    let manifest = image_manifest(&cfg, config.len(), &[(l, layer.len())], "");
    let resp = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .bearer_auth(token)
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match resp.status() {
        StatusCode::CREATED => Ok(started.elapsed()),
        other => Err(format!("manifest push: {other}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_stalled_mid_transaction_holds_the_others_up_no_longer_than_the_idle_transaction_timeout() {
    const IDLE: u64 = 3;
    let cluster = Cluster::start(Options { faults: true, idle_transaction_secs: IDLE, ..Options::default() }).await;
    let repo = "library/shared";
    let scope = format!("repository:{repo}:pull,push");
    let stop = Arc::new(AtomicBool::new(false));
    // Replica 0 pushes into the repository the others push to: the same repository, quota and
    // event-counter rows. Its statements crawl, so at any moment one of its transactions is open
    // and holds some of them.
    let t0 = token_from(&cluster.replica(0), &scope).await;
    let stalled = tokio::spawn(push_until(cluster.replica(0), repo.to_owned(), t0, stop.clone()));
    wait_for_progress_via(&cluster.replica(1), repo, 2).await;
    cluster.db_faults[0].delay(Duration::from_millis(40));
    tokio::time::sleep(Duration::from_millis(300)).await; // mid-transaction, with the delay in force
    // Its connections to PostgreSQL stall: open, silent, holding whatever they held.
    cluster.db_faults[0].stall(true);

    // Writes through replica 1 wait for those locks at most the idle-transaction timeout.
    let t1 = token_from(&cluster.replica(1), &scope).await;
    let first = push_image(&cluster.replica(1), repo, &t1, "while-stalled-1", Duration::from_secs(60)).await;
    let first = first.expect("a push through a healthy replica while another is stalled");
    eprintln!("first push through replica 1 during the stall: {first:?}");
    assert!(first < Duration::from_secs(IDLE + 10), "held up {first:?}, beyond the {IDLE} s timeout");
    let second = push_image(&cluster.replica(1), repo, &t1, "while-stalled-2", Duration::from_secs(60)).await;
    let second = second.expect("the next push");
    assert!(second < Duration::from_secs(3), "no lock left behind: {second:?}");
    // The stalled replica says so (its ping times out), and the others serve.
    let took = readiness_becomes(&cluster, 0, StatusCode::SERVICE_UNAVAILABLE).await;
    eprintln!("replica 0 unready {took:?} into the stall");
    others_serve(&cluster, 0, repo).await;

    cluster.db_faults[0].heal();
    readiness_becomes(&cluster, 0, StatusCode::OK).await;
    let t = token_from(&cluster.replica(0), &scope).await;
    push_image(&cluster.replica(0), repo, &t, "after-the-stall", Duration::from_secs(60)).await.expect("healed");
    stop.store(true, Ordering::SeqCst);
    let pushed = stalled.await.expect("pusher");
    let t = admin_token(&cluster.url(), &[&format!("repository:{repo}:pull")]).await;
    assert_intact(&cluster.url(), &t, repo, &pushed).await;
    let c = client();
    for tag in ["while-stalled-1", "while-stalled-2", "after-the-stall"] {
        let resp = c
            .head(format!("{}/v2/{repo}/manifests/{tag}", cluster.url()))
            .bearer_auth(&t)
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .expect("head");
        assert_eq!(resp.status(), StatusCode::OK, "{repo}:{tag}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_stores_slow_a_replica_down_and_lose_nothing() {
    let cluster = Cluster::start(Options { faults: true, ..Options::default() }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pushers = start_pushers(&cluster, 3, &stop).await;
    wait_for_progress(&cluster, "library/load0", 2).await;

    // Replica 0's PostgreSQL and S3 answer after 150 ms each way (each request through it takes
    // seconds); replica 1's S3 trickles at 1 MiB/s.
    cluster.db_faults[0].delay(Duration::from_millis(150));
    cluster.s3_faults[0].delay(Duration::from_millis(150));
    cluster.s3_faults[1].throttle(1 << 20);
    let scope = "repository:library/slow:pull,push";
    let t = token_from(&cluster.replica(2), scope).await;
    let slow =
        push_image(&cluster.replica(0), "library/slow", &t, "through-slow-stores", Duration::from_secs(120)).await;
    let slow = slow.expect("a push through slow stores goes through, slowly");
    eprintln!("a push through replica 0 with 150 ms stores: {slow:?}");
    assert!(slow > Duration::from_secs(1), "the delay was in force: {slow:?}");
    // Slow is not down: still ready (its ping answers within the timeout).
    assert!(readiness_becomes(&cluster, 0, StatusCode::OK).await < Duration::from_secs(10), "slow, and ready");
    // A 3 MiB blob through the throttled replica arrives whole.
    let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 249) as u8).collect();
    let c = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("client");
    let started = tokio::time::Instant::now();
    let digest = try_push_blob(&c, &cluster.replica(1), "library/slow", &data, &t).await.expect("throttled push");
    eprintln!("3 MiB through replica 1's 1 MiB/s S3: {:?}", started.elapsed());
    let got = c
        .get(format!("{}/v2/library/slow/blobs/{digest}", cluster.replica(2)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("pull");
    assert_eq!(Digest::sha256_of(&got.bytes().await.expect("body")), digest);
    // The others kept pushing meanwhile.
    wait_for_progress_via(&cluster.replica(2), "library/load0", 6).await;

    for f in cluster.db_faults.iter().chain(&cluster.s3_faults) {
        f.heal();
    }
    wait_for_progress(&cluster, "library/load0", 8).await;
    finish(&cluster, stop, pushers).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tag_moved_through_any_replica_reads_back_moved_through_every_replica() {
    let cluster = Cluster::start(Options { faults: true, ..Options::default() }).await;
    // One replica's database is slow: a cache or a lagging read would show there first.
    cluster.db_faults[2].delay(Duration::from_millis(20));
    let repo = "library/moving";
    let scope = format!("repository:{repo}:pull,push");
    let tokens: Vec<String> = futures::future::join_all((0..3).map(|i| {
        let base = cluster.replica(i);
        let scope = scope.clone();
        async move { token_from(&base, &scope).await }
    }))
    .await;
    let c = client();
    let config = b"{}".to_vec();
    let cfg = try_push_blob(&c, &cluster.replica(0), repo, &config, &tokens[0]).await.expect("config");
    for n in 0..30usize {
        let writer = n % 3;
        let layer = format!("move {n}").into_bytes();
        let l = try_push_blob(&c, &cluster.replica(writer), repo, &layer, &tokens[writer]).await.expect("layer");
        let manifest = image_manifest(&cfg, config.len(), &[(l, layer.len())], "");
        let digest = Digest::sha256_of(manifest.as_bytes());
        let resp = c
            .put(format!("{}/v2/{repo}/manifests/latest", cluster.replica(writer)))
            .bearer_auth(&tokens[writer])
            .header("content-type", OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .expect("move");
        assert_eq!(resp.status(), StatusCode::CREATED, "move {n} through replica {writer}");
        for (reader, token) in tokens.iter().enumerate() {
            for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
                let resp = c
                    .request(method.clone(), format!("{}/v2/{repo}/manifests/latest", cluster.replica(reader)))
                    .bearer_auth(token)
                    .header("accept", OCI_MANIFEST)
                    .send()
                    .await
                    .expect("read");
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(
                    header(&resp, "docker-content-digest"),
                    digest.to_string(),
                    "move {n} through replica {writer}, {method} through replica {reader}: an older tag"
                );
            }
        }
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_leased_by_a_replica_whose_database_stalls_continues_on_another_once_the_lease_runs_out() {
    /// `registry_storage`'s upload lease: how long it lasts without renewal.
    const LEASE: Duration = Duration::from_secs(10);
    let cluster = Cluster::start(Options { faults: true, idle_transaction_secs: 3, ..Options::default() }).await;
    let repo = "library/leased";
    let scope = format!("repository:{repo}:pull,push");
    let tokens: Vec<String> = futures::future::join_all((0..3).map(|i| {
        let (base, scope) = (cluster.replica(i), scope.clone());
        async move { token_from(&base, &scope).await }
    }))
    .await;
    let data: Vec<u8> = (0..12 * MIB).map(|i| (i % 241) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let half = 6 * MIB;
    let c = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("client");
    let resp = c.post(format!("{}/v2/{repo}/blobs/uploads/", cluster.replica(0))).bearer_auth(&tokens[0]).send().await;
    let location = header(&resp.expect("post"), "location");
    let patch = |replica: usize, from: usize, to: usize| {
        let (c, t, url, body) = (
            c.clone(),
            tokens[replica].clone(),
            format!("{}{location}", cluster.replica(replica)),
            data[from..to].to_vec(),
        );
        async move {
            c.patch(url).bearer_auth(&t).header("content-range", format!("{from}-{}", to - 1)).body(body).send().await
        }
    };
    let resp = patch(0, 0, half).await.expect("first half");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // Replica 0 takes on the second half, its body arriving in two pieces; once it holds the
    // upload's lease (read in the database), its database connections stall: it can neither
    // renew the lease nor release it, nor record what it appends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }));
    let request = c
        .patch(format!("{}{location}", cluster.replica(0)))
        .bearer_auth(&tokens[0])
        .header("content-range", format!("{half}-{}", data.len() - 1))
        .header("content-length", (data.len() - half).to_string())
        .body(body);
    let stalled = tokio::spawn(request.send());
    tx.send(Ok(data[half..half + MIB].to_vec())).await.expect("first piece");
    let id = location.split('?').next().and_then(|p| p.rsplit('/').next()).expect("upload id").to_owned();
    let (db, connection) = tokio_postgres::connect(&cluster.database.url(), tokio_postgres::NoTls).await.expect("db");
    tokio::spawn(connection);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = db
            .query_one(
                "SELECT lease_until > (extract(epoch from now()) * 1000)::bigint FROM uploads WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the upload's lease");
        if row.get::<_, bool>(0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "replica 0 never took the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.db_faults[0].stall(true);
    let rest = data[half + MIB..].to_vec();
    let feeder = tokio::spawn(async move {
        let _ = tx.send(Ok(rest)).await;
    });
    let status = c.get(format!("{}{location}", cluster.replica(1))).bearer_auth(&tokens[1]).send().await;
    let status = status.expect("status");
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), format!("0-{}", half - 1), "only what was acknowledged");

    // The client gives up on replica 0 and goes on through replica 1: it gets the lease once it
    // runs out, and appends.
    let started = tokio::time::Instant::now();
    let resp = patch(1, half, data.len()).await.expect("second half through replica 1");
    let took = started.elapsed();
    eprintln!("replica 1 appended {took:?} after replica 0 stalled holding the lease");
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "resumed on another replica");
    assert!(took < LEASE + Duration::from_secs(5), "the lease ran out within its time: {took:?}");
    assert!(took > Duration::from_secs(2), "replica 0 held the lease: {took:?}");
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = c
        .put(format!("{}{location}{sep}digest={digest}", cluster.replica(2)))
        .bearer_auth(&tokens[2])
        .send()
        .await
        .expect("complete");
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Healed, replica 0's late request finds the upload moved on: it cannot be acknowledged, and
    // the blob stays whole.
    cluster.db_faults[0].heal();
    let late = stalled.await.expect("task");
    feeder.await.expect("feeder");
    if let Ok(late) = &late {
        assert_ne!(late.status(), StatusCode::ACCEPTED, "a stale append acknowledged");
    }
    eprintln!("replica 0's stalled append, after healing: {:?}", late.map(|r| r.status()));
    readiness_becomes(&cluster, 0, StatusCode::OK).await;
    for (i, token) in tokens.iter().enumerate() {
        let got = c.get(format!("{}/v2/{repo}/blobs/{digest}", cluster.replica(i))).bearer_auth(token).send().await;
        let got = got.expect("get").bytes().await.expect("body");
        assert!(got.as_ref() == data.as_slice(), "whole through replica {i}");
    }
    cluster.stop().await;
}
