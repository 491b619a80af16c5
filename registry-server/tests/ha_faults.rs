//! Faults in the replicated shape: a replica SIGKILLed during pushes, PostgreSQL restarted under
//! load, the S3 server restarted under load. Clients retry as real ones do; at the end every
//! acknowledged image is intact, and an interrupted upload resumes at its acknowledged offset on
//! another replica.

mod cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster::{Cluster, Options, admin_token, assert_intact, push_until};
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
    let c = client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = admin_token(&cluster.url(), &[&format!("repository:{repo}:pull")]).await;
        let resp = c.get(format!("{}/v2/{repo}/tags/list", cluster.url())).bearer_auth(&t).send().await;
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
