//! Crash safety: the `registry` binary is killed with SIGKILL at random moments while clients push
//! images concurrently (chunked and monolithic), restarted on the same data directory, and checked:
//! every blob served hashes to its digest, every blob and manifest acknowledged with 201 before a
//! kill is still there, interrupted uploads either resume at a consistent offset or are unknown,
//! start-up after a crash takes bounded time, and the event stream holds an event for every
//! acknowledged push, none for a push that did not happen, in each repository's order.
//!
//! Seeded and reproducible in its choices (sizes, chunking, kill delays; thread timing varies):
//!
//! ```sh
//! # the short version (CI): 50 kills, seed 1
//! cargo nextest run -p registry-server --test crash
//! # the long version
//! REGISTRY_CRASH_KILLS=1000 REGISTRY_CRASH_SEED=$RANDOM cargo nextest run -p registry-server --test crash --no-capture
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use registry_core::Digest;
use reqwest::{Client, StatusCode};
use testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_registry");

const CLIENTS: usize = 4;
const MAX_STARTUP: Duration = Duration::from_secs(10);

/// xorshift64*: small, seedable, good enough to choose sizes and delays.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, len: usize) -> Bytes {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        Bytes::from(v)
    }
}

/// An upload a kill interrupted: where it was, what the client knew was acknowledged.
struct Interrupted {
    repo: String,
    location: String,
    acked: u64,
    /// Bytes sent in the request the kill cut (the server may have committed them).
    in_flight: u64,
    data: Bytes,
}

#[derive(Default)]
struct Ledger {
    /// Blobs acknowledged (repository, digest), not yet verified after a restart.
    blobs: Vec<(String, Digest)>,
    /// Manifests acknowledged (repository, tag, digest).
    manifests: Vec<(String, String, Digest)>,
    verified_blobs: Vec<(String, Digest)>,
    verified_manifests: Vec<(String, String, Digest)>,
    interrupted: Vec<Interrupted>,
}

type Shared = Arc<Mutex<Ledger>>;

fn ledger(shared: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pushes one blob, chunked or monolithic; `None` when the server went away.
async fn push_blob(c: &Client, base: &str, repo: &str, data: Bytes, rng: &mut Rng, shared: &Shared) -> Option<Digest> {
    let digest = Digest::sha256_of(&data);
    if rng.below(2) == 0 {
        let resp = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}")).body(data).send().await.ok()?;
        return (resp.status() == StatusCode::CREATED).then_some(digest);
    }
    let resp = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.ok()?;
    if resp.status() != StatusCode::ACCEPTED {
        return None;
    }
    let location = header(&resp, "location");
    let mut offset = 0usize;
    while offset < data.len() {
        let len = (1 + rng.below(data.len() as u64 / 2 + 1) as usize).min(data.len() - offset);
        let resp = c
            .patch(format!("{base}{location}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{}-{}", offset, offset + len - 1))
            .body(data.slice(offset..offset + len))
            .send()
            .await;
        if !matches!(&resp, Ok(r) if r.status() == StatusCode::ACCEPTED) {
            // The kill interrupted it: the next start checks where it stands.
            ledger(shared).interrupted.push(Interrupted {
                repo: repo.to_owned(),
                location,
                acked: offset as u64,
                in_flight: len as u64,
                data,
            });
            return None;
        }
        offset += len;
    }
    let resp = c.put(format!("{base}{location}?digest={digest}")).send().await.ok()?;
    (resp.status() == StatusCode::CREATED).then_some(digest)
}

/// One client: pushes images until the server dies.
async fn client_loop(base: String, client: usize, round: usize, mut rng: Rng, shared: Shared) {
    let c = client_for_crashes();
    let repo = format!("crash/c{client}");
    for image in 0.. {
        let config = Bytes::from(format!(r#"{{"client":{client},"round":{round},"image":{image}}}"#));
        let mut layers = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let len = 1 + rng.below(384 << 10) as usize;
            let data = rng.bytes(len);
            let size = data.len();
            let Some(d) = push_blob(&c, &base, &repo, data, &mut rng, &shared).await else { return };
            ledger(&shared).blobs.push((repo.clone(), d.clone()));
            layers.push((d, size));
        }
        let Some(config_digest) = push_blob(&c, &base, &repo, config.clone(), &mut rng, &shared).await else {
            return;
        };
        ledger(&shared).blobs.push((repo.clone(), config_digest.clone()));
        let manifest = image_manifest(&config_digest, config.len(), &layers, "");
        let tag = format!("r{round}-i{image}");
        let resp = c
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == StatusCode::CREATED => {
                ledger(&shared).manifests.push((repo.clone(), tag, Digest::sha256_of(manifest.as_bytes())));
            }
            _ => return,
        }
    }
}

fn client_for_crashes() -> Client {
    install_crypto_provider();
    Client::builder().pool_max_idle_per_host(0).build().expect("client")
}

async fn get_digest(c: &Client, url: &str) -> Digest {
    let resp = c.get(url).header("accept", OCI_MANIFEST).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    Digest::sha256_of(&resp.bytes().await.expect("body"))
}

/// Checks what was acknowledged since the last check (and a sample of what was before), and
/// resumes or accounts for interrupted uploads.
async fn verify(c: &Client, base: &str, shared: &Shared, rng: &mut Rng, everything: bool) -> (usize, usize) {
    let (blobs, manifests, interrupted, old_blobs, old_manifests) = {
        let mut l = ledger(shared);
        let blobs = std::mem::take(&mut l.blobs);
        let manifests = std::mem::take(&mut l.manifests);
        let interrupted = std::mem::take(&mut l.interrupted);
        let sample = |len: usize, rng: &mut Rng| -> Vec<usize> {
            if everything {
                (0..len).collect()
            } else {
                (0..len.min(10)).map(|_| rng.below(len as u64) as usize).collect()
            }
        };
        let ob: Vec<_> = sample(l.verified_blobs.len(), rng).into_iter().map(|i| l.verified_blobs[i].clone()).collect();
        let om: Vec<_> =
            sample(l.verified_manifests.len(), rng).into_iter().map(|i| l.verified_manifests[i].clone()).collect();
        (blobs, manifests, interrupted, ob, om)
    };
    for (repo, digest) in blobs.iter().chain(old_blobs.iter()) {
        assert_eq!(
            &get_digest(c, &format!("{base}/v2/{repo}/blobs/{digest}")).await,
            digest,
            "blob acknowledged before a kill"
        );
    }
    for (repo, tag, digest) in manifests.iter().chain(old_manifests.iter()) {
        assert_eq!(&get_digest(c, &format!("{base}/v2/{repo}/manifests/{tag}")).await, digest, "{repo}:{tag}");
    }
    let mut resumed = 0;
    let mut unknown = 0;
    for up in interrupted {
        let resp = c.get(format!("{base}{}", up.location)).send().await.expect("status");
        if resp.status() == StatusCode::NOT_FOUND {
            unknown += 1; // the session was never durable (no chunk acknowledged) or is gone
            assert_eq!(up.acked, 0, "an upload with acknowledged chunks must survive a kill");
            continue;
        }
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        // `Range: 0-<offset - 1>`; "0-0" stands for 0 or 1 byte (as distribution answers).
        let range = header(&resp, "range");
        let end: u64 = range.split('-').nth(1).and_then(|e| e.parse().ok()).expect("a Range header");
        let candidates: Vec<u64> = [up.acked, up.acked + up.in_flight]
            .into_iter()
            .filter(|&o| if end == 0 { o <= 1 } else { o == end + 1 })
            .collect();
        assert!(
            !candidates.is_empty(),
            "upload {} reports {range}: acknowledged {}, in flight {}",
            up.location,
            up.acked,
            up.in_flight
        );
        let digest = Digest::sha256_of(&up.data);
        let mut location = up.location.clone();
        for offset in candidates {
            let rest = up.data.slice(offset as usize..);
            if rest.is_empty() {
                break;
            }
            let resp = c
                .patch(format!("{base}{location}"))
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{}", up.data.len() - 1))
                .body(rest)
                .send()
                .await
                .expect("patch");
            if resp.status() == StatusCode::ACCEPTED {
                location = header(&resp, "location");
                break;
            }
            assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "resuming {}", up.location);
        }
        let resp = c.put(format!("{base}{location}?digest={digest}")).send().await.expect("put");
        assert_eq!(resp.status(), StatusCode::CREATED, "resuming {}", up.location);
        assert_eq!(get_digest(c, &format!("{base}/v2/{}/blobs/{digest}", up.repo)).await, digest);
        resumed += 1;
    }
    let mut l = ledger(shared);
    l.verified_blobs.extend(blobs);
    l.verified_manifests.extend(manifests);
    (resumed, unknown)
}

/// The event stream after all the kills: every acknowledged push has its event; every push event
/// is of a manifest that is there (no event of a change that did not happen); and each
/// repository's push events are in the order of its pushes.
async fn events_match_changes(database: &std::path::Path, shared: &Shared) {
    use registry_core::event::EventAction;
    use registry_storage::MetadataStore;
    let store = registry_redb::RedbStore::open(database).expect("open the metadata database");
    let events = store.events_after(0, usize::MAX).await.expect("events");
    let pushes: Vec<_> = events.iter().filter(|e| e.action == EventAction::PushArtifact).collect();
    let pushed: std::collections::HashSet<(String, String)> = pushes
        .iter()
        .map(|e| (e.resource.repository.clone().unwrap_or_default(), e.resource.digest.clone().unwrap_or_default()))
        .collect();
    for (repo, tag, digest) in &ledger(shared).verified_manifests {
        assert!(
            pushed.contains(&(repo.clone(), digest.to_string())),
            "no event for the acknowledged push of {repo}:{tag}"
        );
    }
    let mut last: std::collections::HashMap<String, (u64, u64)> = Default::default();
    for event in &pushes {
        let repo = event.resource.repository.clone().unwrap_or_default();
        let digest = Digest::parse(event.resource.digest.as_deref().unwrap_or_default()).expect("digest");
        let name = registry_core::RepositoryName::parse(&repo).expect("repository");
        assert!(
            store.get_manifest(&name, &digest).await.expect("manifest").is_some(),
            "event {} records a push of {repo}@{digest} that is not there",
            event.id
        );
        // Tags are r<round>-i<image>: each client pushes to its repository in that order.
        let tag = event.resource.tag.clone().unwrap_or_default();
        let (round, image) = tag.trim_start_matches('r').split_once("-i").expect("tag");
        let order = (round.parse::<u64>().expect("round"), image.parse::<u64>().expect("image"));
        if let Some(previous) = last.insert(repo.clone(), order) {
            assert!(previous < order, "{repo}: push events out of order ({previous:?} then {order:?})");
        }
    }
    eprintln!("{} push events, each of a manifest that is there, in order per repository", pushes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let kills: usize = std::env::var("REGISTRY_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("REGISTRY_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    eprintln!("crash harness: {kills} kills, seed {seed} (REGISTRY_CRASH_KILLS, REGISTRY_CRASH_SEED)");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlog_level = \"warn,registry=info\"\n[auth]\nenabled = false\n[gc]\ninterval_secs = 0\n",
            dir.path().join("data")
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let shared: Shared = Arc::default();
    let c = client_for_crashes();
    let (mut resumed, mut unknown, mut slowest) = (0, 0, Duration::ZERO);
    for round in 0..kills {
        let started = Instant::now();
        let mut server = Server::start(BIN, &["--config", &config], &[]).await;
        slowest = slowest.max(started.elapsed());
        let base = server.url();
        let (r, u) = verify(&c, &base, &shared, &mut rng, false).await;
        (resumed, unknown) = (resumed + r, unknown + u);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let rng = Rng(rng.next() | 1);
                tokio::spawn(client_loop(base.clone(), i, round, rng, shared.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20 + rng.below(300))).await; // the moment of the kill
        server.child.start_kill().expect("SIGKILL");
        server.child.wait().await.expect("reaped");
        for client in clients {
            client.await.expect("client task");
        }
    }
    // Last restart: everything acknowledged, all of it.
    let server = Server::start(BIN, &["--config", &config], &[]).await;
    let (r, u) = verify(&c, &server.url(), &shared, &mut rng, true).await;
    (resumed, unknown) = (resumed + r, unknown + u);
    let (blobs, manifests) = {
        let l = ledger(&shared);
        (l.verified_blobs.len(), l.verified_manifests.len())
    };
    eprintln!(
        "{kills} kills: {blobs} blobs and {manifests} manifests acknowledged and found whole; {resumed} interrupted uploads resumed, {unknown} unknown; slowest start {slowest:?}"
    );
    assert!(manifests > 0 && blobs > manifests, "the workload made progress between kills");
    assert!(slowest < MAX_STARTUP, "start-up after a crash took {slowest:?}");
    server.stop().await;
    events_match_changes(&dir.path().join("data").join("metadata.redb"), &shared).await;
    let quotas = |label: &'static str| {
        let config = config.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_registry"))
                .args(["quota", "verify", "--config", &config])
                .output()
                .await
                .expect("quota verify");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{label}: quota drift after the kills:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("with drift") && text.contains(" 0 with drift"), "{label}: {text}");
        }
    };
    quotas("after the kills").await;

    // Collection after all this keeps every acknowledged image whole and clears the leftovers.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(["gc", "--config", &config, "--grace-secs", "0"])
        .output()
        .await
        .expect("gc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(BIN, &["--config", &config], &[]).await;
    let manifests = ledger(&shared).verified_manifests.clone();
    for (repo, tag, digest) in manifests {
        let url = format!("{}/v2/{repo}/manifests/{tag}", server.url());
        let resp = c.get(&url).header("accept", OCI_MANIFEST).send().await.expect("get");
        let manifest: serde_json::Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
        for d in manifest["layers"].as_array().expect("layers").iter().chain([&manifest["config"]]) {
            let blob = Digest::parse(d["digest"].as_str().expect("digest")).expect("digest");
            assert_eq!(
                get_digest(&c, &format!("{}/v2/{repo}/blobs/{blob}", server.url())).await,
                blob,
                "{repo}:{tag} after gc"
            );
        }
        assert!(!digest.to_string().is_empty());
    }
    server.stop().await;
    quotas("after collection").await;
}
