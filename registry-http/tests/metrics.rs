//! `/metrics` scraped and parsed as Prometheus text: the counters move as requests are made; the
//! job queue's figures and where the jobs' time went are there; off by default.

use std::collections::HashMap;

use registry_http::TestRegistry;
use reqwest::StatusCode;
use testkit::*;

/// Every sample of an exposition: `name{labels}` to value. Panics on a line that is not a
/// comment or a well-formed sample.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            assert!(
                comment.starts_with(" HELP ") || comment.starts_with(" TYPE ") || comment.starts_with(" EOF"),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "labels closed: {line}");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(c: &reqwest::Client, base: &str) -> HashMap<String, f64> {
    let resp = c.get(format!("{base}/metrics")).send().await.expect("scrape");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().expect("type").starts_with("text/plain; version=0.0.4"));
    parse(&resp.text().await.expect("text"))
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_requests_are_made() {
    let reg = TestRegistry::builder().metrics(true).start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let before = scrape(&c, &base).await;
    let base_ok = r#"registry_http_requests_total{route="base",method="GET",status="200"}"#;
    for _ in 0..3 {
        assert_eq!(c.get(format!("{base}/v2/")).send().await.expect("ping").status(), StatusCode::OK);
    }
    let (_, digest) = push_image_as(&c, &base, "library/app", "v1", "layer", None).await;
    let missing = c.get(format!("{base}/v2/library/app/manifests/nope")).send().await.expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let after = scrape(&c, &base).await;
    assert_eq!(get(&after, base_ok) - get(&before, base_ok), 3.0, "three base requests");
    let pushed = r#"registry_http_requests_total{route="manifest_write",method="PUT",status="201"}"#;
    assert_eq!(get(&after, pushed), 1.0);
    assert_eq!(get(&after, r#"registry_http_requests_total{route="manifest",method="GET",status="404"}"#), 1.0);
    let uploads: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with(r#"registry_http_requests_total{route="upload""#))
        .map(|(_, v)| v)
        .sum();
    assert!(uploads >= 2.0, "the layer and config uploads: {after:?}");
    assert!(get(&after, "registry_http_request_bytes_total") > get(&before, "registry_http_request_bytes_total"));
    let count = r#"registry_http_request_duration_seconds_count{route="base"}"#;
    assert_eq!(get(&after, count) - get(&before, count), 3.0, "the histogram counts them too");
    let inf = r#"registry_http_request_duration_seconds_bucket{route="base",le="+Inf"}"#;
    assert_eq!(get(&after, inf), get(&after, count), "{after:?}");
    assert_eq!(get(&after, r#"registry_http_requests_in_flight{route="base"}"#), 0.0, "none left in flight");
    assert!(!after.keys().any(|k| k.contains(&digest.to_string()) || k.contains("library/app")), "no unbounded labels");
    // The read caches: the 404 missed; pulling the pushed manifest twice hits the second time.
    for _ in 0..2 {
        let pulled = c
            .get(format!("{base}/v2/library/app/manifests/v1"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .expect("pull");
        assert_eq!(pulled.status(), StatusCode::OK);
    }
    let cached = scrape(&c, &base).await;
    let hits = |cache: &str| get(&cached, &format!(r#"registry_cache_hits{{cache="{cache}"}}"#));
    assert!(hits("manifest_bytes") >= 1.0, "{cached:?}");
    assert!(hits("tags") >= 1.0, "{cached:?}");
    assert!(cached.contains_key(r#"registry_cache_misses{cache="manifests"}"#));
    // Their sizes: the one manifest's bytes are held, by entry and by byte.
    assert_eq!(get(&cached, r#"registry_cache_entries{cache="manifest_bytes"}"#), 1.0, "{cached:?}");
    assert!(get(&cached, r#"registry_cache_bytes{cache="manifest_bytes"}"#) >= 200.0, "{cached:?}");
    assert!(get(&cached, "registry_runtime_tasks") >= 1.0, "the runtime's tasks: {cached:?}");
    reg.stop().await;

    let plain = TestRegistry::start().await.expect("start");
    let resp = c.get(format!("{}/metrics", plain.url())).send().await.expect("scrape");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "off unless turned on");
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_jobs_show_in_the_queue_figures() {
    let reg = TestRegistry::builder()
        .harbor_accounts()
        .metrics(true)
        .jobs(std::time::Duration::from_secs(5), std::time::Duration::from_millis(50))
        .start()
        .await
        .expect("start");
    let accounts = reg.accounts().expect("accounts").acting_as(registry_core::event::Operator::system());
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    let c = client();
    let started = c
        .post(format!("{}/api/v2.0/system/gc/schedule", reg.url()))
        .basic_auth("admin", Some("adminpassword"))
        .json(&serde_json::json!({"schedule": {"type": "Manual"}}))
        .send()
        .await
        .expect("start gc");
    assert_eq!(started.status(), StatusCode::CREATED);
    let done = r#"registry_jobs{kind="gc",status="succeeded"}"#;
    let attempts = r#"registry_job_attempts{kind="gc"}"#;
    loop {
        let samples = scrape(&c, &reg.url()).await;
        // (The attempt is counted once its end is recorded, a moment after the queue shows it.)
        if get(&samples, done) == 1.0 && get(&samples, attempts) == 1.0 {
            assert_eq!(get(&samples, "registry_gc_runs_total"), 1.0);
            // Where its time went: the run took some; the wait and the recording are there.
            assert!(get(&samples, r#"registry_job_run_seconds{kind="gc"}"#) > 0.0, "{samples:?}");
            for series in ["wait", "claim", "record"].map(|s| format!(r#"registry_job_{s}_seconds{{kind="gc"}}"#)) {
                assert!(samples.contains_key(&series), "{series}: {samples:?}");
            }
            assert_eq!(get(&samples, r#"registry_job_attempts{kind="webhook"}"#), 0.0, "no delivery ran");
            break;
        }
        tokio::task::yield_now().await;
    }
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_address_and_not_on_the_registrys() {
    let server = registry_http::RegistryBuilder::new()
        .metrics_address("127.0.0.1:0".parse().expect("addr"))
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (base, metrics_addr) = (server.url(), server.metrics_addr().expect("a metrics listener"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let c = client();
    assert_eq!(c.get(format!("{base}/v2/")).send().await.expect("ping").status(), StatusCode::OK);
    let resp = c.get(format!("{base}/metrics")).send().await.expect("scrape main");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "not on the registry's listener");
    let samples = scrape(&c, &format!("http://{metrics_addr}")).await;
    assert_eq!(get(&samples, r#"registry_http_requests_total{route="base",method="GET",status="200"}"#), 1.0);
    let other = c.get(format!("http://{metrics_addr}/v2/")).send().await.expect("other path");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let _ = stop.send(());
    serving.await.expect("task").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_holds_nothing_through_its_metrics_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = registry_http::RegistryBuilder::new()
        .embedded(dir.path())
        .metrics_address("127.0.0.1:0".parse().expect("addr"))
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics_addr = server.metrics_addr().expect("a metrics listener");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    // A scrape answered, its keep-alive connection still open in the client's pool: its task
    // holds the registry until the server ends it.
    let c = client();
    let samples = scrape(&c, &format!("http://{metrics_addr}")).await;
    assert!(!samples.is_empty());
    let _ = stop.send(());
    serving.await.expect("task").expect("served");
    let again = registry_http::RegistryBuilder::new()
        .embedded(dir.path())
        .bind("127.0.0.1:0")
        .await
        .expect("the data opens again at once");
    drop(again);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allocator_figures_come_from_the_program_that_gives_them() {
    use registry_http::metrics::AllocatorStats;
    let stats = AllocatorStats { allocated: 12_345_678, resident: 23_456_789 };
    let reg = TestRegistry::builder()
        .metrics(true)
        .allocator_stats(std::sync::Arc::new(move || Some(stats)))
        .start()
        .await
        .expect("start");
    let (c, base) = (client(), reg.url());
    let samples = scrape(&c, &base).await;
    assert_eq!(get(&samples, "registry_allocator_allocated_bytes"), 12_345_678.0, "{samples:?}");
    assert_eq!(get(&samples, "registry_allocator_resident_bytes"), 23_456_789.0, "{samples:?}");
    reg.stop().await;

    // Without a source (an embedder's own allocator), the gauges are there and stay 0.
    let plain = TestRegistry::builder().metrics(true).start().await.expect("start");
    let samples = scrape(&c, &plain.url()).await;
    assert_eq!(samples.get("registry_allocator_allocated_bytes"), Some(&0.0), "{samples:?}");
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_and_token_caches_show_beside_the_engines() {
    let reg = TestRegistry::builder().harbor_accounts().metrics(true).start().await.expect("start");
    let accounts = reg.accounts().expect("accounts").acting_as(registry_core::event::Operator::system());
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    let (c, base) = (client(), reg.url());
    let entries =
        |s: &HashMap<String, f64>, cache: &str| get(s, &format!(r#"registry_cache_entries{{cache="{cache}"}}"#));
    let before = scrape(&c, &base).await;
    assert_eq!(entries(&before, "verified_credentials"), 0.0, "{before:?}");
    assert_eq!(entries(&before, "verified_tokens"), 0.0, "{before:?}");
    for name in ["recent_projects", "signatures_verified", "image_details"] {
        assert!(before.contains_key(&format!(r#"registry_cache_entries{{cache="{name}"}}"#)), "{name}: {before:?}");
    }

    // Basic credentials on two API calls: verified once, found the second time.
    for _ in 0..2 {
        let projects = c.get(format!("{base}/api/v2.0/projects")).basic_auth("admin", Some("adminpassword")).send();
        assert_eq!(projects.await.expect("projects").status(), StatusCode::OK);
    }
    // A token, used twice: verified once, found the second time.
    let token = token(&c, &base, Some(("admin", "adminpassword")), &["repository:library/app:pull"]).await;
    for _ in 0..2 {
        let missing = c.get(format!("{base}/v2/library/app/manifests/v1")).bearer_auth(&token).send();
        assert_eq!(missing.await.expect("get").status(), StatusCode::NOT_FOUND);
    }
    let after = scrape(&c, &base).await;
    assert_eq!(entries(&after, "verified_credentials"), 1.0, "{after:?}");
    assert!(get(&after, r#"registry_cache_hits{cache="verified_credentials"}"#) >= 1.0, "{after:?}");
    assert_eq!(entries(&after, "verified_tokens"), 1.0, "{after:?}");
    assert!(get(&after, r#"registry_cache_hits{cache="verified_tokens"}"#) >= 1.0, "{after:?}");
    // Bounded by bytes: at least the token itself.
    assert!(get(&after, r#"registry_cache_bytes{cache="verified_tokens"}"#) >= token.len() as f64, "{after:?}");
    assert!(entries(&after, "recent_projects") >= 1.0, "the pull looked up library: {after:?}");
    reg.stop().await;
}
