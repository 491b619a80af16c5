//! The crash harness shared by the kill loop (`crash.rs`) and the power-cut loop
//! (`power_cut.rs`): four clients push images (chunked and monolithic blobs, manifests), move a
//! `latest` tag and delete older images, while the loop stops the server at seeded random moments
//! in one of two ways (a [`Stop`]), restarts it on the same data directory and checks:
//!
//! - every blob and manifest acknowledged before a stop is there and whole, every acknowledged
//!   delete stays deleted, and `latest` names the last acknowledged move (or the one in flight);
//! - nothing unacknowledged is half-visible: a push the stop interrupted is absent or whole;
//! - interrupted chunked uploads resume at a consistent offset, or are unknown when none of their
//!   chunks was acknowledged;
//! - start-up after a stop takes bounded time (the metadata database opens, and recovers);
//! - the event stream holds an event for every acknowledged push and none for a push that did not
//!   happen, in each repository's order;
//! - the quota counters match a recount, before and after garbage collection, and collection
//!   keeps every acknowledged image whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use registry_core::Digest;
use reqwest::{Client, StatusCode};
use testkit::*;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_registry");

const CLIENTS: usize = 4;
const MAX_STARTUP: Duration = Duration::from_secs(10);

/// How the loop stops the server: what happens around the `SIGKILL`.
pub(crate) trait Stop {
    /// Just before the kill (a power cut drops the unsynced state here, the moment of the cut).
    fn before_kill(&mut self) {}
    /// After the process is gone and before the restart (power comes back).
    fn after_kill(&mut self) {}
    /// A line for the summary.
    fn summary(&self) -> String {
        String::new()
    }
}

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

/// An upload a stop interrupted: where it was, what the client knew was acknowledged.
struct Interrupted {
    repo: String,
    location: String,
    acked: u64,
    /// Bytes sent in the request the stop cut (the server may have committed them).
    in_flight: u64,
    data: Bytes,
}

/// Where a repository's `latest` tag stands, as far as the client knows.
#[derive(Default, Clone)]
struct Latest {
    acked: Option<Digest>,
    /// A move sent and not acknowledged (it may or may not have happened).
    pending: Option<Digest>,
}

#[derive(Default)]
struct Ledger {
    /// Blobs acknowledged (repository, digest), not yet verified after a restart.
    blobs: Vec<(String, Digest)>,
    /// Manifests acknowledged (repository, tag, digest).
    manifests: Vec<(String, String, Digest)>,
    verified_blobs: Vec<(String, Digest)>,
    verified_manifests: Vec<(String, String, Digest)>,
    /// Pushes sent and not acknowledged: absent or whole after the restart, never half there.
    unacked_blobs: Vec<(String, Digest)>,
    unacked_manifests: Vec<(String, String, Digest)>,
    /// Deletes acknowledged (repository, digest): the manifest stays gone.
    deleted: Vec<(String, Digest)>,
    /// Deletes sent and not acknowledged, and their manifests: no claim either way.
    maybe_deleted: Vec<(String, Digest)>,
    latest: HashMap<String, Latest>,
    interrupted: Vec<Interrupted>,
}

type Shared = Arc<Mutex<Ledger>>;

fn ledger(shared: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pushes one blob, chunked or monolithic; `None` when the server went away (the attempt is in
/// the ledger's unacknowledged pushes).
async fn push_blob(c: &Client, base: &str, repo: &str, data: Bytes, rng: &mut Rng, shared: &Shared) -> Option<Digest> {
    let digest = Digest::sha256_of(&data);
    let pushed = push_blob_once(c, base, repo, data, &digest, rng, shared).await;
    if !pushed {
        ledger(shared).unacked_blobs.push((repo.to_owned(), digest.clone()));
    }
    pushed.then_some(digest)
}

async fn push_blob_once(
    c: &Client,
    base: &str,
    repo: &str,
    data: Bytes,
    digest: &Digest,
    rng: &mut Rng,
    shared: &Shared,
) -> bool {
    if rng.below(2) == 0 {
        let resp = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}")).body(data).send().await;
        return matches!(resp, Ok(r) if r.status() == StatusCode::CREATED);
    }
    let resp = match c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await {
        Ok(r) if r.status() == StatusCode::ACCEPTED => r,
        _ => return false,
    };
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
            // The stop interrupted it: the next start checks where it stands.
            ledger(shared).interrupted.push(Interrupted {
                repo: repo.to_owned(),
                location,
                acked: offset as u64,
                in_flight: len as u64,
                data,
            });
            return false;
        }
        offset += len;
    }
    let resp = c.put(format!("{base}{location}?digest={digest}")).send().await;
    matches!(resp, Ok(r) if r.status() == StatusCode::CREATED)
}

async fn put_manifest(c: &Client, base: &str, repo: &str, reference: &str, manifest: &str) -> bool {
    let resp = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_owned())
        .send()
        .await;
    matches!(resp, Ok(r) if r.status() == StatusCode::CREATED)
}

/// One client: pushes images, moves `latest` to each, deletes every second image once the next is
/// pushed (and, every fourth round, first an image of an earlier round), until the server dies.
async fn client_loop(base: String, client: usize, round: usize, mut rng: Rng, shared: Shared) {
    let c = client_for_crashes();
    let repo = format!("crash/c{client}");
    let mut pushed: Vec<(String, Digest)> = Vec::new();
    // Every fourth round begins with deleting an image of an earlier round (not the one `latest`
    // names, and only from a repository holding three or more), so that deletes happen however
    // few images a round gets through.
    if round % 4 == 3 {
        let victim = {
            let l = ledger(&shared);
            let latest = l.latest.get(&repo).cloned().unwrap_or_default();
            let mine: Vec<&Digest> =
                l.verified_manifests.iter().filter(|(r, _, _)| r == &repo).map(|(_, _, d)| d).collect();
            let candidate =
                mine.iter().find(|d| Some(**d) != latest.acked.as_ref() && Some(**d) != latest.pending.as_ref());
            candidate.filter(|_| mine.len() >= 3).map(|d| (*d).clone())
        };
        if let Some(victim) = victim
            && !delete_manifest(&c, &base, &repo, victim, &shared).await
        {
            return;
        }
    }
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
        let digest = Digest::sha256_of(manifest.as_bytes());
        let tag = format!("r{round}-i{image}");
        if !put_manifest(&c, &base, &repo, &tag, &manifest).await {
            ledger(&shared).unacked_manifests.push((repo.clone(), tag, digest));
            return;
        }
        ledger(&shared).manifests.push((repo.clone(), tag.clone(), digest.clone()));
        pushed.push((tag, digest.clone()));

        // Move `latest` here.
        ledger(&shared).latest.entry(repo.clone()).or_default().pending = Some(digest.clone());
        if !put_manifest(&c, &base, &repo, "latest", &manifest).await {
            return;
        }
        *ledger(&shared).latest.entry(repo.clone()).or_default() = Latest { acked: Some(digest), pending: None };

        // Delete the image before this one, every second image (never the one `latest` names).
        if image % 2 == 1 && pushed.len() >= 2 {
            let (_, victim) = pushed.remove(pushed.len() - 2);
            if !delete_manifest(&c, &base, &repo, victim, &shared).await {
                return;
            }
        }
    }
}

/// Deletes a manifest by digest; false when the server went away (the delete may or may not
/// have happened: no claim either way).
async fn delete_manifest(c: &Client, base: &str, repo: &str, victim: Digest, shared: &Shared) -> bool {
    {
        let mut l = ledger(shared);
        l.manifests.retain(|(r, _, d)| !(r == repo && d == &victim));
        l.verified_manifests.retain(|(r, _, d)| !(r == repo && d == &victim));
        l.maybe_deleted.push((repo.to_owned(), victim.clone()));
    }
    let resp = c.delete(format!("{base}/v2/{repo}/manifests/{victim}")).send().await;
    if !matches!(resp, Ok(r) if r.status() == StatusCode::ACCEPTED) {
        return false;
    }
    let mut l = ledger(shared);
    l.maybe_deleted.retain(|(r, d)| !(r == repo && d == &victim));
    l.deleted.push((repo.to_owned(), victim));
    true
}

fn client_for_crashes() -> Client {
    install_crypto_provider();
    Client::builder().pool_max_idle_per_host(0).build().expect("client")
}

/// The digest of what a GET returns, or `None` on 404.
async fn fetch_digest(c: &Client, url: &str) -> Option<Digest> {
    let resp = c.get(url).header("accept", OCI_MANIFEST).send().await.expect("get");
    if resp.status() == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    Some(Digest::sha256_of(&resp.bytes().await.expect("body")))
}

async fn get_digest(c: &Client, url: &str) -> Digest {
    fetch_digest(c, url).await.unwrap_or_else(|| panic!("{url}: 404"))
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
            "blob acknowledged before a stop"
        );
    }
    for (repo, tag, digest) in manifests.iter().chain(old_manifests.iter()) {
        assert_eq!(&get_digest(c, &format!("{base}/v2/{repo}/manifests/{tag}")).await, digest, "{repo}:{tag}");
    }
    verify_unacknowledged(c, base, shared).await;
    let mut resumed = 0;
    let mut unknown = 0;
    for up in interrupted {
        let resp = c.get(format!("{base}{}", up.location)).send().await.expect("status");
        if resp.status() == StatusCode::NOT_FOUND {
            unknown += 1; // the session was never durable (no chunk acknowledged) or is gone
            assert_eq!(up.acked, 0, "an upload with acknowledged chunks must survive a stop");
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

/// Unacknowledged pushes are absent or whole; acknowledged deletes stay; `latest` names the last
/// acknowledged move or the one in flight (and is settled to what it names).
async fn verify_unacknowledged(c: &Client, base: &str, shared: &Shared) {
    let (blobs, manifests, deleted, latest) = {
        let mut l = ledger(shared);
        let blobs = std::mem::take(&mut l.unacked_blobs);
        let manifests = std::mem::take(&mut l.unacked_manifests);
        (blobs, manifests, l.deleted.clone(), l.latest.clone())
    };
    for (repo, digest) in blobs {
        if let Some(got) = fetch_digest(c, &format!("{base}/v2/{repo}/blobs/{digest}")).await {
            assert_eq!(got, digest, "an unacknowledged blob of {repo} is visible and not whole");
        }
    }
    for (repo, tag, digest) in manifests {
        if let Some(got) = fetch_digest(c, &format!("{base}/v2/{repo}/manifests/{tag}")).await {
            assert_eq!(got, digest, "{repo}:{tag}, unacknowledged, is visible and not whole");
        }
    }
    for (repo, digest) in deleted {
        assert_eq!(
            fetch_digest(c, &format!("{base}/v2/{repo}/manifests/{digest}")).await,
            None,
            "{repo}@{digest} was deleted (acknowledged) and is back"
        );
    }
    for (repo, state) in latest {
        let got = fetch_digest(c, &format!("{base}/v2/{repo}/manifests/latest")).await;
        let allowed = [state.acked.clone(), state.pending.clone()];
        assert!(
            got.is_some() && allowed.contains(&got) || got.is_none() && state.acked.is_none(),
            "{repo}:latest is {got:?}; acknowledged {:?}, in flight {:?}",
            state.acked,
            state.pending
        );
        ledger(shared).latest.insert(repo, Latest { acked: got, pending: None });
    }
}

/// The event stream after all the stops: every acknowledged push has its event; every push event
/// is of a manifest that is there, or was deleted later (no event of a change that did not
/// happen); and each repository's image push events are in the order of its pushes.
async fn events_match_changes(database: &Path, shared: &Shared) {
    use registry_core::event::EventAction;
    use registry_storage::MetadataStore;
    let store = registry_redb::RedbStore::open(database).expect("open the metadata database");
    let events = store.events_after(0, usize::MAX).await.expect("events");
    let pushes: Vec<_> = events.iter().filter(|e| e.action == EventAction::PushArtifact).collect();
    let pushed: std::collections::HashSet<(String, String)> = pushes
        .iter()
        .map(|e| (e.resource.repository.clone().unwrap_or_default(), e.resource.digest.clone().unwrap_or_default()))
        .collect();
    let (verified, gone) = {
        let l = ledger(shared);
        let gone: std::collections::HashSet<(String, Digest)> =
            l.deleted.iter().chain(l.maybe_deleted.iter()).cloned().collect();
        (l.verified_manifests.clone(), gone)
    };
    for (repo, tag, digest) in &verified {
        assert!(
            pushed.contains(&(repo.clone(), digest.to_string())),
            "no event for the acknowledged push of {repo}:{tag}"
        );
    }
    let mut last: HashMap<String, (u64, u64)> = Default::default();
    for event in &pushes {
        let repo = event.resource.repository.clone().unwrap_or_default();
        let digest = Digest::parse(event.resource.digest.as_deref().unwrap_or_default()).expect("digest");
        let name = registry_core::RepositoryName::parse(&repo).expect("repository");
        if !gone.contains(&(repo.clone(), digest.clone())) {
            assert!(
                store.get_manifest(&name, &digest).await.expect("manifest").is_some(),
                "event {} records a push of {repo}@{digest} that is not there",
                event.id
            );
        }
        // Image tags are r<round>-i<image>: each client pushes to its repository in that order
        // (`latest` moves are checked by reading the tag).
        let tag = event.resource.tag.clone().unwrap_or_default();
        let Some((round, image)) = tag.strip_prefix('r').and_then(|t| t.split_once("-i")) else { continue };
        let order = (round.parse::<u64>().expect("round"), image.parse::<u64>().expect("image"));
        if let Some(previous) = last.insert(repo.clone(), order) {
            assert!(previous < order, "{repo}: push events out of order ({previous:?} then {order:?})");
        }
    }
    eprintln!("{} push events, each of a manifest that is there or was deleted, in order per repository", pushes.len());
}

/// Runs `registry quota verify` and expects no drift.
async fn quotas(config: &str, label: &str) {
    let out = tokio::process::Command::new(BIN)
        .args(["quota", "verify", "--config", config])
        .output()
        .await
        .expect("quota verify");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{label}: quota drift after the stops:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("with drift") && text.contains(" 0 with drift"), "{label}: {text}");
}

/// The loop: `stops` stops at seeded moments, then the final checks. `data` is the registry's
/// data directory (it need not exist).
pub(crate) async fn run(name: &str, data: PathBuf, stops: usize, seed: u64, stop: &mut dyn Stop) {
    eprintln!("{name}: {stops} stops, seed {seed}");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog_level = \"warn,registry=info\"\n[auth]\nenabled = false\n[gc]\ninterval_secs = 0\n"
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_owned();
    let shared: Shared = Arc::default();
    let c = client_for_crashes();
    let (mut resumed, mut unknown, mut slowest) = (0, 0, Duration::ZERO);
    for round in 0..stops {
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
        // The moment of the stop: a seeded delay after the round's first acknowledgement (of a
        // manifest, every other round), so that the loop makes progress however slow the machine.
        let waiting = Instant::now();
        while waiting.elapsed() < Duration::from_secs(30) {
            let acked = {
                let l = ledger(&shared);
                if round % 2 == 0 { !l.manifests.is_empty() } else { !l.blobs.is_empty() }
            };
            if acked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        stop.before_kill();
        server.child.start_kill().expect("SIGKILL");
        server.child.wait().await.expect("reaped");
        for client in clients {
            client.await.expect("client task");
        }
        stop.after_kill();
    }
    // Last restart: everything acknowledged, all of it.
    let server = Server::start(BIN, &["--config", &config], &[]).await;
    let (r, u) = verify(&c, &server.url(), &shared, &mut rng, true).await;
    (resumed, unknown) = (resumed + r, unknown + u);
    let (blobs, manifests, deleted) = {
        let l = ledger(&shared);
        (l.verified_blobs.len(), l.verified_manifests.len(), l.deleted.len())
    };
    eprintln!(
        "{name}: {stops} stops: {blobs} blobs and {manifests} manifests acknowledged and found whole, {deleted} deletes still deleted; {resumed} interrupted uploads resumed, {unknown} unknown; slowest start {slowest:?}{}",
        stop.summary()
    );
    assert!(manifests > 0 && blobs > manifests, "the workload made progress between stops");
    assert!(slowest < MAX_STARTUP, "start-up after a stop took {slowest:?}");
    server.stop().await;
    events_match_changes(&data.join("metadata.redb"), &shared).await;
    quotas(&config, "after the stops").await;

    // Collection after all this keeps every acknowledged image whole and clears the leftovers.
    let out = tokio::process::Command::new(BIN)
        .args(["gc", "--config", &config, "--grace-secs", "0"])
        .output()
        .await
        .expect("gc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(BIN, &["--config", &config], &[]).await;
    let manifests = ledger(&shared).verified_manifests.clone();
    for (repo, tag, _) in manifests {
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
    }
    server.stop().await;
    quotas(&config, "after collection").await;
}
