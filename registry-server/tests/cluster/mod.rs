//! Replicas of the `registry` binary on one PostgreSQL database and one S3 bucket (Garage),
//! behind nginx round-robin: the second deployment shape, as an operator runs it.

#![allow(dead_code, unreachable_pub)]

use registry_core::Digest;
use registry_postgres::testing::TestDatabase;
use reqwest::StatusCode;
use testkit::Server;
use testkit::faultproxy::FaultProxy;
use testkit::proxy::{Proxy, reserve_port};
use testkit::s3::S3Server;

pub const BIN: &str = env!("CARGO_BIN_EXE_registry");
pub const PASSWORD: &str = "cluster-admin-password";

/// How the cluster is set up.
pub struct Options {
    pub replicas: usize,
    /// `[gc] grace_secs` of every replica.
    pub gc_grace_secs: u64,
    /// Another PostgreSQL server to use (a private one the test restarts), by URL.
    pub database_url: Option<String>,
    /// Answer blob downloads with presigned redirects.
    pub redirect: bool,
    /// Put a [`FaultProxy`] between each replica and PostgreSQL, and between each replica and
    /// the S3 server ([`Cluster::db_faults`], [`Cluster::s3_faults`]).
    pub faults: bool,
    /// `[database] idle_transaction_timeout_secs` of every replica.
    pub idle_transaction_secs: u64,
    /// `[storage] cache_mib` of every replica (0: no blob cache).
    pub cache_mib: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            replicas: 3,
            gc_grace_secs: 3600,
            database_url: None,
            redirect: false,
            faults: false,
            idle_transaction_secs: 15,
            cache_mib: 0,
        }
    }
}

/// The database the replicas share: a throwaway one on the machine's server, or a URL given.
pub enum Database {
    Own(TestDatabase),
    Given(String),
}

impl Database {
    pub fn url(&self) -> String {
        match self {
            Database::Own(db) => db.url().to_owned(),
            Database::Given(url) => url.clone(),
        }
    }
}

/// A running cluster.
pub struct Cluster {
    pub database: Database,
    pub s3: S3Server,
    pub replicas: Vec<Option<Server>>,
    pub proxy: Proxy,
    /// Replica `i`'s way to PostgreSQL, when the options asked for fault proxies.
    pub db_faults: Vec<FaultProxy>,
    /// Replica `i`'s way to the S3 server, likewise.
    pub s3_faults: Vec<FaultProxy>,
    dirs: Vec<tempfile::TempDir>,
    configs: Vec<std::path::PathBuf>,
}

impl Cluster {
    /// Starts Garage, the replicas (applying the migrations at once, racing), and nginx.
    pub async fn start(options: Options) -> Cluster {
        let database = match &options.database_url {
            Some(url) => Database::Given(url.clone()),
            None => Database::Own(TestDatabase::create().await),
        };
        let s3 = S3Server::garage().await;
        let proxy_port = reserve_port();
        let mut dirs = Vec::new();
        let mut configs = Vec::new();
        let (mut db_faults, mut s3_faults) = (Vec::new(), Vec::new());
        for _ in 0..options.replicas {
            let (mut db_url, mut endpoint) = (database.url(), s3.endpoint.clone());
            if options.faults {
                let (db_host, s3_host) = (host_of(&db_url), host_of(&endpoint));
                let db_proxy = FaultProxy::start(resolve(&db_host)).await;
                let s3_proxy = FaultProxy::start(resolve(&s3_host)).await;
                db_url = db_url.replacen(&db_host, &db_proxy.host(), 1);
                endpoint = endpoint.replacen(&s3_host, &s3_proxy.host(), 1);
                db_faults.push(db_proxy);
                s3_faults.push(s3_proxy);
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let config = dir.path().join("registry.toml");
            std::fs::write(
                &config,
                format!(
                    "data_dir = {data:?}\nlog_level = \"info\"\nexternal_url = \"http://127.0.0.1:{proxy_port}\"\n\
                     [auth]\nrealm = \"http://127.0.0.1:{proxy_port}/auth/token\"\n\
                     [database]\nurl = {db:?}\npool_size = 8\nidle_transaction_timeout_secs = {idle}\n\
                     [storage]\ntype = \"s3\"\nbucket = {bucket:?}\nendpoint = {endpoint:?}\nregion = {region:?}\n\
                     path_style = true\nredirect = {redirect}\npart_size_mib = 5\ncache_mib = {cache}\n\
                     [gc]\ninterval_secs = 0\ngrace_secs = {grace}\n[metrics]\nenabled = true\n",
                    data = dir.path().join("data"),
                    db = db_url,
                    bucket = s3.bucket,
                    endpoint = endpoint,
                    region = s3.region,
                    redirect = options.redirect,
                    idle = options.idle_transaction_secs,
                    grace = options.gc_grace_secs,
                    cache = options.cache_mib,
                ),
            )
            .expect("write config");
            configs.push(config);
            dirs.push(dir);
        }
        let starts = configs.iter().map(|config| start_replica(config.clone(), &s3));
        let replicas: Vec<Option<Server>> = futures::future::join_all(starts).await.into_iter().map(Some).collect();
        let upstreams: Vec<String> = replicas.iter().flatten().map(|r| r.addr.clone()).collect();
        let proxy = Proxy::start(proxy_port, &upstreams).await;
        Cluster { database, s3, replicas, proxy, db_faults, s3_faults, dirs, configs }
    }

    /// The proxy's URL: what clients use.
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// The proxy's `host:port`.
    pub fn host(&self) -> String {
        self.proxy.addr.clone()
    }

    /// One replica's URL, to aim a request at it.
    pub fn replica(&self, i: usize) -> String {
        self.replicas[i].as_ref().expect("running").url()
    }

    /// SIGKILLs replica `i`.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut server) = self.replicas[i].take() {
            server.child.kill().await.expect("SIGKILL");
        }
    }

    /// Stops everything (replicas first), and drops the database.
    pub async fn stop(mut self) {
        for server in self.replicas.drain(..).flatten() {
            server.stop().await;
        }
        self.proxy.stop().await;
        self.s3.stop().await;
        if let Database::Own(db) = self.database {
            db.drop_database().await;
        }
    }
}

/// The `host:port` of a URL (`scheme://[user@]host:port/...`).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

fn resolve(host: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:5432") };
    host.to_socket_addrs().expect("resolve").next().expect("an address")
}

async fn start_replica(config: std::path::PathBuf, s3: &S3Server) -> Server {
    let env = testkit::s3::client_env(s3);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(("REGISTRY_ADMIN_PASSWORD", PASSWORD));
    Server::start(BIN, &["--config", config.to_str().expect("utf8")], &envs).await
}

/// Runs garbage collection through `base` as the admin and waits for it; the finished run.
pub async fn collect_garbage(base: &str, delete_untagged: bool) -> serde_json::Value {
    let c = testkit::client();
    let resp = c
        .post(format!("{base}/api/v2.0/system/gc/schedule"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&serde_json::json!({"schedule": {"type": "Manual"}, "parameters": {"delete_untagged": delete_untagged}}))
        .send()
        .await
        .expect("start gc");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let id = resp.json::<serde_json::Value>().await.expect("json")["id"].as_u64().expect("id");
    loop {
        let run: serde_json::Value = c
            .get(format!("{base}/api/v2.0/system/gc/{id}"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .expect("gc status")
            .json()
            .await
            .expect("json");
        match run["job_status"].as_str().or(run["status"].as_str()) {
            Some("Pending" | "Running") => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Some("Success") => return run,
            other => panic!("gc run {id}: {other:?}: {run}"),
        }
    }
}

/// A token from the cluster's token service (any replica: they share the signing key).
pub async fn admin_token(base: &str, scopes: &[&str]) -> String {
    testkit::token(&testkit::client(), base, Some(("admin", PASSWORD)), scopes).await
}

/// Pushes images (a layer and the shared `{}` config) through `base` until `stop` (and at least
/// three), retrying each push from the start whenever anything fails on the way (a replica or a
/// store down, a blob collected under it), as clients do; returns what was acknowledged.
pub async fn push_until(
    base: String,
    repo: String,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(String, Digest)> {
    let c = testkit::client();
    let mut pushed = Vec::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) || i < 3 {
        let tag = format!("t{i}");
        for attempt in 0.. {
            assert!(attempt < 600, "{repo}:{tag} never went through");
            if attempt > 0 {
                // A client's backoff between attempts.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let layer = format!("{repo} layer {i}").into_bytes();
            let config = b"{}".to_vec();
            let Some(l) = try_push_blob(&c, &base, &repo, &layer, &token).await else { continue };
            let Some(cfg) = try_push_blob(&c, &base, &repo, &config, &token).await else { continue };
            let manifest = testkit::image_manifest(&cfg, config.len(), &[(l, layer.len())], "");
            let sent = c
                .put(format!("{base}/v2/{repo}/manifests/{tag}"))
                .bearer_auth(&token)
                .header("content-type", testkit::OCI_MANIFEST)
                .body(manifest.clone())
                .send()
                .await;
            match sent.map(|r| r.status()) {
                Ok(StatusCode::CREATED) => {
                    pushed.push((tag.clone(), Digest::sha256_of(manifest.as_bytes())));
                    break;
                }
                // A blob collected between its push and the manifest's (400 MANIFEST_BLOB_UNKNOWN),
                // a store or a replica down (5xx), or no answer: push it all again.
                Ok(s) if s == StatusCode::BAD_REQUEST || s.is_server_error() => continue,
                Err(_) => continue,
                Ok(other) => panic!("manifest push: {other}"),
            }
        }
        i += 1;
    }
    pushed
}

/// Pushes a blob in one request; `None` when it should be retried (5xx, no answer).
pub async fn try_push_blob(c: &reqwest::Client, base: &str, repo: &str, data: &[u8], token: &str) -> Option<Digest> {
    let digest = Digest::sha256_of(data);
    let sent = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await;
    match sent.map(|r| r.status()) {
        Ok(StatusCode::CREATED) => Some(digest),
        Ok(s) if s.is_server_error() => None,
        Err(_) => None,
        Ok(other) => panic!("blob push: {other}"),
    }
}

/// Asserts that every acknowledged image is whole, read through `base`: its manifest by tag, and
/// every blob it names hashing to its digest.
pub async fn assert_intact(base: &str, token: &str, repo: &str, pushed: &[(String, Digest)]) {
    let c = testkit::client();
    assert!(!pushed.is_empty(), "{repo}: something was acknowledged");
    for (tag, digest) in pushed {
        let resp = c
            .get(format!("{base}/v2/{repo}/manifests/{tag}"))
            .bearer_auth(token)
            .header("accept", testkit::OCI_MANIFEST)
            .send()
            .await
            .expect("get manifest");
        assert_eq!(resp.status(), StatusCode::OK, "{repo}:{tag}");
        let body = resp.bytes().await.expect("body");
        assert_eq!(&Digest::sha256_of(&body), digest, "{repo}:{tag}");
        let manifest: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let blobs = manifest["layers"].as_array().expect("layers").iter().chain([&manifest["config"]]);
        for blob in blobs {
            let d = blob["digest"].as_str().expect("digest");
            let resp = c.get(format!("{base}/v2/{repo}/blobs/{d}")).bearer_auth(token).send().await.expect("get blob");
            assert_eq!(resp.status(), StatusCode::OK, "{repo}:{tag} {d}");
            assert_eq!(Digest::sha256_of(&resp.bytes().await.expect("body")).to_string(), d, "{repo}:{tag}");
        }
    }
}
