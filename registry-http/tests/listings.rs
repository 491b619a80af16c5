//! Listings at the cost of a page: Harbor's artifacts page, the repositories page and the project
//! summary read a page's worth of manifests from the store, however many the repository or the
//! project holds (counted by a wrapper around the embedded default's store), and answer what a
//! read of everything answers.

use std::sync::Arc;

use registry_core::Digest;
use registry_core::media_type::{OCI_INDEX, OCI_MANIFEST};
use registry_http::TestRegistry;
use registry_redb::RedbStore;
use registry_storage::testing::faults::{Faults, FaultyMetadataStore};
use registry_storage::{FsBlobStore, Limits, Registry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::Api;
use testkit::*;

/// Images in the large repository.
const IMAGES: usize = 120;
/// Small repositories beside it.
const SMALL: usize = 24;

struct Counting {
    reg: TestRegistry,
    faults: Faults,
    admin: Api,
    _dir: tempfile::TempDir,
}

/// The embedded default (redb and files) behind a store wrapper that counts the manifests it
/// returns, with Harbor's test accounts ([`harbor_accounts`]: `admin`) and a public project `big`.
async fn counting_registry() -> Counting {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Faults::default();
    let blobs = FsBlobStore::open(dir.path().join("blobs")).expect("blobs");
    let meta = RedbStore::open(dir.path().join("metadata.redb")).expect("metadata");
    let registry =
        Registry::new(Arc::new(blobs), Arc::new(FaultyMetadataStore::new(meta, faults.clone())), Limits::default());
    let reg =
        TestRegistry::builder().registry(registry).accounts(harbor_accounts().await).start().await.expect("start");
    let admin = Api::new(&reg, Some(("admin", "adminpassword")));
    admin
        .post("/projects", json!({"project_name": "big", "metadata": {"public": "true"}}))
        .await
        .expect(StatusCode::CREATED, None);
    Counting { reg, faults, admin, _dir: dir }
}

/// Pushes `count` images into `repo` over one config and one layer (tagged `v<i>` every other
/// one); their digests.
async fn push_images(c: &reqwest::Client, base: &str, repo: &str, count: usize, token: &str) -> Vec<Digest> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"one layer for every image".repeat(10);
    let cd = push_blob_as(c, base, repo, config, Some(token)).await;
    let ld = push_blob_as(c, base, repo, &layer, Some(token)).await;
    let mut out = Vec::new();
    for i in 0..count {
        let body = image_manifest(
            &cd,
            config.len(),
            &[(ld.clone(), layer.len())],
            &format!(r#","annotations":{{"n":"{i}"}}"#),
        );
        let digest = Digest::sha256_of(body.as_bytes());
        let reference = if i % 2 == 0 { format!("v{i}") } else { digest.to_string() };
        out.push(put_manifest_as(c, base, repo, &reference, OCI_MANIFEST, &body, token).await);
    }
    out
}

#[tokio::test]
async fn a_page_reads_a_page_of_manifests_and_answers_as_a_full_read() {
    let Counting { reg, faults, admin, _dir } = counting_registry().await;
    let (c, base) = (client(), reg.url());
    let scope = |repo: &str| format!("repository:{repo}:pull,push");
    let t = token(&c, &base, Some(("admin", "adminpassword")), &[&scope("big/app")]).await;
    let images = push_images(&c, &base, "big/app", IMAGES, &t).await;
    // An index over two of them (now its children), a cosign signature of one, an SBOM referring
    // to another: one artifact more, two fewer.
    let child = |d: &Digest| format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":100}}"#);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        child(&images[0]),
        child(&images[1])
    );
    put_manifest_as(&c, &base, "big/app", "multi", OCI_INDEX, &index, &t).await;
    let empty = push_blob_as(&c, &base, "big/app", b"{}", Some(&t)).await;
    let signature = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{empty}","size":2}},"layers":[],"annotations":{{"signed":"{}"}}}}"#,
        images[5]
    );
    let sig_tag = format!("sha256-{}.sig", images[5].hex());
    put_manifest_as(&c, &base, "big/app", &sig_tag, OCI_MANIFEST, &signature, &t).await;
    let sbom = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":100}}}}"#,
        images[6]
    );
    put_manifest_as(&c, &base, "big/app", &Digest::sha256_of(sbom.as_bytes()).to_string(), OCI_MANIFEST, &sbom, &t)
        .await;
    for i in 0..SMALL {
        let repo = format!("big/small{i}");
        let t = token(&c, &base, Some(("admin", "adminpassword")), &[&scope(&repo)]).await;
        push_images(&c, &base, &repo, 1, &t).await;
    }
    let artifacts = (IMAGES - 2 + 1) as u64;

    // The artifacts page: a page of the index, and per artifact its accessories, children and
    // size read by key.
    let before = faults.manifests_read();
    let page =
        admin.get("/projects/big/repositories/app/artifacts?page=2&page_size=15").await.expect(StatusCode::OK, None);
    let read = faults.manifests_read() - before;
    assert_eq!(page.header("x-total-count"), artifacts.to_string());
    assert_eq!(page.body.as_array().map(Vec::len), Some(15));
    assert!(read <= 15 * 3, "a page of 15 artifacts read {read} manifests of {}", IMAGES + 3);
    let first =
        admin.get("/projects/big/repositories/app/artifacts?page=1&page_size=15").await.expect(StatusCode::OK, None);
    let index_json = first.body.as_array().expect("page").iter().find(|a| a["tags"][0]["name"] == "multi").cloned();
    let index_json = index_json.expect("the index is the newest artifact");
    assert_eq!(index_json["references"].as_array().map(Vec::len), Some(2), "{index_json}");

    // The same pages through the path that reads everything (a filter): the same answer.
    for number in [1, 2, 8] {
        let path = "/projects/big/repositories/app/artifacts";
        let indexed = admin.get(&format!("{path}?page={number}&page_size=15")).await.expect(StatusCode::OK, None);
        let full =
            admin.get(&format!("{path}?page={number}&page_size=15&q=type%3DIMAGE")).await.expect(StatusCode::OK, None);
        assert_eq!(indexed.body, full.body, "page {number}");
        assert_eq!(indexed.header("x-total-count"), full.header("x-total-count"));
    }
    let with_accessories = |body: &Value, digest: &Digest| -> Value {
        body.as_array().and_then(|a| a.iter().find(|x| x["digest"] == digest.to_string()).cloned()).unwrap_or_default()
    };
    let all = admin.get("/projects/big/repositories/app/artifacts?page_size=100&q=type%3DIMAGE").await;
    let all2 = admin.get("/projects/big/repositories/app/artifacts?page=2&page_size=100&q=type%3DIMAGE").await;
    for (digest, kind) in [(&images[5], "signature.cosign"), (&images[6], "sbom.harbor")] {
        let found = [&all.body, &all2.body].iter().map(|b| with_accessories(b, digest)).find(|v| !v.is_null());
        let found = found.expect("listed");
        assert_eq!(found["accessories"][0]["type"], kind, "{found}");
    }

    // The repositories page and the project's summary: no manifest read at all.
    let before = faults.manifests_read();
    let repos = admin.get("/projects/big/repositories?page_size=10").await.expect(StatusCode::OK, None);
    assert_eq!(repos.header("x-total-count"), (SMALL + 1).to_string());
    let app = admin.get("/projects/big/repositories/app").await.expect(StatusCode::OK, None);
    assert_eq!(app.body["artifact_count"], artifacts);
    let summary = admin.get("/projects/big/summary").await.expect(StatusCode::OK, None);
    assert_eq!(summary.body["repo_count"], (SMALL + 1) as u64);
    let projects = admin.get("/projects?name=big").await.expect(StatusCode::OK, None);
    assert_eq!(projects.body[0]["repo_count"], (SMALL + 1) as u64);
    assert_eq!(faults.manifests_read() - before, 0, "counts come from the store's counters");
    // Newest push first (push times are in seconds: equal ones in name order).
    let order: Vec<(String, String)> = repos
        .body
        .as_array()
        .expect("page")
        .iter()
        .map(|r| {
            (
                r["update_time"].as_str().unwrap_or_default().to_owned(),
                r["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1)), "{order:?}");
    let newest = order.iter().map(|(t, _)| t.clone()).max().unwrap_or_default();
    assert_eq!(order[0].0, newest, "the newest first: {order:?}");

    // Pulls counted on the repository; deleting the index makes its children artifacts again.
    let pulled = c.get(format!("{base}/v2/big/app/manifests/v2")).bearer_auth(&t).send().await.expect("pull");
    assert_eq!(pulled.status(), StatusCode::OK);
    reg.registry().flush_events().await;
    let app = admin.get("/projects/big/repositories/app").await.expect(StatusCode::OK, None);
    assert_eq!(app.body["pull_count"], 1);
    admin.delete("/projects/big/repositories/app/artifacts/multi").await.expect(StatusCode::OK, None);
    let app = admin.get("/projects/big/repositories/app").await.expect(StatusCode::OK, None);
    assert_eq!(app.body["artifact_count"], artifacts + 1, "the index went, its two children are artifacts again");
    reg.stop().await;
}

/// A member limited to some repositories sees only those, counted: the listing asks the access
/// policy for each repository then (the one caller whose listing costs the project's size).
#[tokio::test]
async fn a_limited_robot_lists_only_its_repositories() {
    let Counting { reg, admin, _dir, .. } = counting_registry().await;
    let (c, base) = (client(), reg.url());
    admin.put("/projects/big", json!({"metadata": {"public": "false"}})).await.expect(StatusCode::OK, None);
    for name in ["web/a", "web/b", "db/a"] {
        let repo = format!("big/{name}");
        let t = token(&c, &base, Some(("admin", "adminpassword")), &[&format!("repository:{repo}:pull,push")]).await;
        push_images(&c, &base, &repo, 2, &t).await;
    }
    let robot = admin
        .post(
            "/robots",
            json!({"name": "webreader", "level": "project", "duration": -1, "permissions": [{
                "kind": "project", "namespace": "big", "repositories": "web/*",
                "access": [{"resource": "repository", "action": "pull"}]}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let (name, secret) = (robot.body["name"].as_str().expect("name"), robot.body["secret"].as_str().expect("secret"));
    let as_robot = Api::new(&reg, Some((name, secret)));
    let listed = as_robot.get("/projects/big/repositories").await.expect(StatusCode::OK, None);
    let names: Vec<&str> = listed.body.as_array().expect("page").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(listed.header("x-total-count"), "2", "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("big/web/")), "{names:?}");
    let everything = admin.get("/projects/big/repositories").await.expect(StatusCode::OK, None);
    assert_eq!(everything.header("x-total-count"), "3");
    reg.stop().await;
}
