//! Helm charts and every artifact type as a first-class citizen: charts pushed as `helm push`
//! does, read back through Harbor's additions and the classic chart repository
//! (`/chartrepo/{project}/index.yaml`); each artifact type told from its manifest; hostile
//! archives refused with the limit named.

use registry_core::Digest;
use registry_core::media_type::{OCI_INDEX, OCI_MANIFEST};
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::Api;
use testkit::helm::{
    chart_archive, chart_config, chart_yaml, gzip, push_chart, push_chart_files, push_image_with_history,
};
use testkit::*;

const README: &str = "# Demo\n\nInstall with `helm install demo`.\n\n<script>alert('owned')</script>\n";

/// A registry with an admin, a public project `charts`, a private `secret` where dev is a
/// developer, and gus who is a member of nothing.
async fn registry() -> (TestRegistry, Api) {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.add_user("dev", "devpassword", false).await.expect("dev");
    accounts.add_user("gus", "guspassword", false).await.expect("gus");
    let admin = Api::new(&reg, Some(("admin", "adminpassword")));
    admin
        .post("/projects", json!({"project_name": "charts", "metadata": {"public": "true"}}))
        .await
        .expect(StatusCode::CREATED, None);
    admin.post("/projects", json!({"project_name": "secret"})).await.expect(StatusCode::CREATED, None);
    admin
        .post("/projects/secret/members", json!({"role_id": 2, "member_user": {"username": "dev"}}))
        .await
        .expect(StatusCode::CREATED, None);
    (reg, admin)
}

fn demo_archive(version: &str) -> Vec<u8> {
    let chart = format!(
        "{}dependencies:\n  - name: redis\n    version: \">=17.0.0\"\n    repository: https://charts.example/bitnami\n",
        chart_yaml("demo", version)
    );
    chart_archive(
        "demo",
        &[
            ("Chart.yaml", chart.as_bytes()),
            ("values.yaml", b"replicaCount: 2\nimage:\n  tag: stable\n"),
            ("README.md", README.as_bytes()),
            ("templates/deployment.yaml", b"kind: Deployment\n"),
        ],
    )
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn charts_show_readme_values_and_dependencies_and_form_a_helm_repository() {
    let (reg, admin) = registry().await;
    let (c, base) = (client(), reg.url());
    let t = token(
        &c,
        &base,
        Some(("admin", "adminpassword")),
        &["repository:charts/demo:pull,push", "repository:secret/vault:pull,push"],
    )
    .await;
    let (old, new) = (demo_archive("1.2.3"), demo_archive("1.10.0"));
    push_chart(&c, &base, "charts/demo", "1.2.3", &chart_config("demo", "1.2.3"), &old, Some(&t)).await;
    let (_, new_digest) =
        push_chart(&c, &base, "charts/demo", "1.10.0", &chart_config("demo", "1.10.0"), &new, Some(&t)).await;
    let vault = chart_archive("vault", &[("Chart.yaml", chart_yaml("vault", "0.1.0").as_bytes())]);
    let prov = b"-----BEGIN PGP SIGNED MESSAGE-----\nname: vault\n...\n-----END PGP SIGNATURE-----\n";
    let vault_config = chart_config("vault", "0.1.0");
    push_chart_files(&c, &base, "secret/vault", "0.1.0", &vault_config, &vault, Some(prov), Some(&t)).await;

    // The artifacts API: a CHART with its metadata and Harbor's three addition links.
    let anon = Api::new(&reg, None);
    let arts = anon.get("/projects/charts/repositories/demo/artifacts").await.expect(StatusCode::OK, None);
    let newest = &arts.body[0];
    assert_eq!(newest["digest"], new_digest.to_string());
    assert_eq!(newest["type"], "CHART");
    assert_eq!(newest["media_type"], "application/vnd.cncf.helm.config.v1+json");
    assert_eq!(newest["extra_attrs"]["name"], "demo");
    assert_eq!(newest["extra_attrs"]["version"], "1.10.0");
    assert_eq!(newest["extra_attrs"]["appVersion"], "2.4");
    let links = newest["addition_links"].as_object().expect("links");
    assert_eq!(links.keys().collect::<Vec<_>>(), ["dependencies", "readme.md", "values.yaml"]);
    let href = links["readme.md"]["href"].as_str().expect("href");
    assert_eq!(href, format!("/api/v2.0/projects/charts/repositories/demo/artifacts/{new_digest}/additions/readme.md"));

    // The additions, read from the archive: README as markdown (as written: the portal renders
    // it safely), values as YAML, dependencies as JSON.
    let readme = c.get(format!("{base}{href}")).send().await.expect("readme");
    assert_eq!(readme.status(), StatusCode::OK);
    assert_eq!(header(&readme, "content-type"), "text/markdown; charset=utf-8");
    assert_eq!(readme.text().await.expect("text"), README);
    let values = c
        .get(format!("{base}/api/v2.0/projects/charts/repositories/demo/artifacts/1.2.3/additions/values.yaml"))
        .send()
        .await
        .expect("values");
    assert_eq!(header(&values, "content-type"), "text/yaml; charset=utf-8");
    assert_eq!(values.text().await.expect("text"), "replicaCount: 2\nimage:\n  tag: stable\n");
    let deps = anon
        .get("/projects/charts/repositories/demo/artifacts/1.2.3/additions/dependencies")
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(
        deps.body,
        json!([{"name": "redis", "version": ">=17.0.0", "repository": "https://charts.example/bitnami"}])
    );
    let history = anon.get("/projects/charts/repositories/demo/artifacts/1.2.3/additions/build_history").await;
    let history = history.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));
    assert!(
        history.body["errors"][0]["message"].as_str().expect("message").contains("of type CHART"),
        "{}",
        history.body
    );
    // The private project's additions need a member: anonymous 401, a non-member 403, a
    // developer reads them.
    let path = "/projects/secret/repositories/vault/artifacts/0.1.0/additions/dependencies";
    Api::new(&reg, Some(("gus", "guspassword"))).get(path).await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    let member = Api::new(&reg, Some(("dev", "devpassword"))).get(path).await.expect(StatusCode::OK, None);
    assert_eq!(member.body, json!([]));
    anon.get("/projects/secret/repositories/vault/artifacts/0.1.0/additions/readme.md")
        .await
        .expect(StatusCode::UNAUTHORIZED, None);

    // The classic repository of the public project, anonymous: newest SemVer first.
    let index = c.get(format!("{base}/chartrepo/charts/index.yaml")).send().await.expect("index");
    assert_eq!(index.status(), StatusCode::OK);
    let index = yaml(&index.text().await.expect("index text"));
    assert_eq!(index["apiVersion"], "v1");
    let demo = index["entries"]["demo"].as_array().expect("demo entries");
    let versions: Vec<&str> = demo.iter().map(|e| e["version"].as_str().expect("version")).collect();
    assert_eq!(versions, ["1.10.0", "1.2.3"]);
    assert_eq!(demo[0]["urls"], json!(["charts/demo-1.10.0.tgz"]));
    assert_eq!(demo[0]["digest"], Digest::sha256_of(&new).hex());
    assert_eq!(demo[0]["appVersion"], "2.4");
    assert!(index["entries"].get("vault").is_none(), "another project's chart is not listed");
    let tgz = c.get(format!("{base}/chartrepo/charts/charts/demo-1.2.3.tgz")).send().await.expect("tgz");
    assert_eq!(tgz.status(), StatusCode::OK);
    assert_eq!(tgz.bytes().await.expect("bytes").as_ref(), &old[..]);
    let missing = anon_get(&c, &format!("{base}/chartrepo/charts/charts/demo-9.9.9.tgz")).await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    assert!(missing.1.contains("demo-9.9.9.tgz"), "{}", missing.1);
    assert_eq!(anon_get(&c, &format!("{base}/chartrepo/nosuch/index.yaml")).await.0, StatusCode::NOT_FOUND);

    // The private project's: a Basic challenge for anonymous callers (helm repo add then sends
    // its --username/--password), 403 for a non-member, the index for a member.
    let refused = c.get(format!("{base}/chartrepo/secret/index.yaml")).send().await.expect("anonymous");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&refused, "www-authenticate").starts_with("Basic"));
    let gus = c.get(format!("{base}/chartrepo/secret/index.yaml")).basic_auth("gus", Some("guspassword")).send().await;
    assert_eq!(gus.expect("gus").status(), StatusCode::FORBIDDEN);
    let dev = c.get(format!("{base}/chartrepo/secret/index.yaml")).basic_auth("dev", Some("devpassword")).send().await;
    let dev = yaml(&dev.expect("dev").text().await.expect("text"));
    assert_eq!(dev["entries"]["vault"][0]["version"], "0.1.0");
    let tgz = c
        .get(format!("{base}/chartrepo/secret/charts/vault-0.1.0.tgz"))
        .basic_auth("dev", Some("devpassword"))
        .send()
        .await;
    assert_eq!(tgz.expect("tgz").bytes().await.expect("bytes").as_ref(), &vault[..]);
    // Its provenance file beside it (helm pull --verify), not counted as another pull; none for
    // a chart pushed without one.
    let url = format!("{base}/chartrepo/secret/charts/vault-0.1.0.tgz.prov");
    let signed = c.get(&url).basic_auth("dev", Some("devpassword")).send().await.expect("prov");
    assert_eq!(signed.status(), StatusCode::OK);
    assert_eq!(signed.bytes().await.expect("bytes").as_ref(), &prov[..]);
    let unsigned = c.get(format!("{base}/chartrepo/charts/charts/demo-1.2.3.tgz.prov")).send().await.expect("prov");
    assert_eq!(unsigned.status(), StatusCode::NOT_FOUND);
    admin
        .get("/projects/secret/repositories/vault/artifacts/0.1.0/additions/readme.md")
        .await
        .expect(StatusCode::NOT_FOUND, None);

    // A download is a pull: counted, and refused where the project takes only signed artifacts.
    reg.registry().flush_events().await;
    let counted = admin.get("/projects/charts/repositories/demo/artifacts/1.2.3").await.expect(StatusCode::OK, None);
    assert_eq!(counted.body["pull_count"], 1, "{}", counted.body);
    let trust = json!({"metadata": {"enable_content_trust_cosign": "true"}});
    admin.put("/projects/charts", trust).await.expect(StatusCode::OK, None);
    let refused = c.get(format!("{base}/chartrepo/charts/charts/demo-1.2.3.tgz")).send().await.expect("tgz");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let message = refused.text().await.expect("text");
    assert!(message.contains("signed"), "{message}");
    reg.stop().await;
}

async fn anon_get(c: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let resp = c.get(url).send().await.expect("get");
    (resp.status(), resp.text().await.expect("text"))
}

/// oras-py (PyPI's `oras`, installed beside harborapi by the README's test command) pushes a chart
/// as `helm push` lays it out — through the token service, chunked and monolithic — and pulls it
/// back; the registry shows it as a chart with its README and lists it in the classic index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_py_pushes_a_chart_that_reads_back_through_the_additions_and_the_index() {
    let (reg, admin) = registry().await;
    let python = std::env::var("REGISTRY_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/registry-tools/harbor-venv/bin/python")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = demo_archive("1.0.0");
    std::fs::write(dir.path().join("demo-1.0.0.tgz"), &archive).expect("archive");
    std::fs::write(dir.path().join("config.json"), chart_config("demo", "1.0.0")).expect("config");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harbor/oras_chart.py");
    let host = reg.url().trim_start_matches("http://").to_owned();
    let workdir = dir.path().to_str().expect("utf8");
    let out = run(&python, &[script, &host, "admin", "adminpassword", workdir, "charts/oras", "1.0.0"], &[]).await;
    assert!(out.contains("came back whole"), "{out}");
    let art = admin.get("/projects/charts/repositories/oras/artifacts/1.0.0").await.expect(StatusCode::OK, None);
    assert_eq!(art.body["type"], "CHART");
    assert_eq!(art.body["extra_attrs"]["name"], "demo");
    let readme = admin.get("/projects/charts/repositories/oras/artifacts/1.0.0/additions/readme.md").await;
    assert_eq!(readme.expect(StatusCode::OK, None).body, README);
    let index = c_get_text(&format!("{}/chartrepo/charts/index.yaml", reg.url())).await;
    assert_eq!(yaml(&index)["entries"]["demo"][0]["digest"], Digest::sha256_of(&archive).hex());
    reg.stop().await;
}

async fn c_get_text(url: &str) -> String {
    client().get(url).send().await.expect("get").text().await.expect("text")
}

#[tokio::test]
async fn each_artifact_type_is_told_from_its_manifest_and_filtered_by_type() {
    let (reg, admin) = registry().await;
    let (c, base) = (client(), reg.url());
    let repo = "charts/kinds";
    let t = token(&c, &base, Some(("admin", "adminpassword")), &[&format!("repository:{repo}:pull,push")]).await;
    // An image whose config has a platform and a build history.
    let (image, image_digest, layer) = push_image_with_history(&c, &base, repo, "image", Some(&t)).await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{image_digest}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        image.len()
    );
    put_manifest_as(&c, &base, repo, "index", OCI_INDEX, &index, &t).await;
    let chart = chart_archive("k", &[("Chart.yaml", chart_yaml("k", "1.0.0").as_bytes())]);
    push_chart(&c, &base, repo, "chart", &chart_config("k", "1.0.0"), &chart, Some(&t)).await;
    // Artifacts of the other kinds, each as its tool pushes it: a config of its own type, or
    // the empty config with an artifactType.
    let empty = push_blob_as(&c, &base, repo, b"{}", Some(&t)).await;
    let content = push_blob_as(&c, &base, repo, b"content", Some(&t)).await;
    let with_type = |artifact_type: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact_type}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{content}","size":7}}]}}"#
        )
    };
    let with_config = |config_type: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{config_type}","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/wasm","digest":"{content}","size":7}}]}}"#
        )
    };
    let kinds = [
        ("wasm", with_config("application/vnd.wasm.config.v0+json"), "WASM"),
        ("cnab", with_config("application/vnd.cnab.config.v1+json"), "CNAB"),
        ("spdx", with_type("application/spdx+json"), "SBOM"),
        ("cyclonedx", with_type("application/vnd.cyclonedx+json"), "SBOM"),
        ("intoto", with_type("application/vnd.in-toto+json"), "ATTESTATION"),
        ("notation", with_type("application/vnd.cncf.notary.signature"), "SIGNATURE"),
        ("cosign", with_type("application/vnd.dev.cosign.artifact.sig.v1+json"), "SIGNATURE"),
        ("other", with_type("application/vnd.example.thing"), "UNKNOWN"),
    ];
    for (tag, manifest, _) in &kinds {
        put_manifest_as(&c, &base, repo, tag, OCI_MANIFEST, manifest, &t).await;
    }
    let all =
        admin.get("/projects/charts/repositories/kinds/artifacts?page_size=50").await.expect(StatusCode::OK, None);
    let type_of = |tag: &str| {
        let found = all
            .body
            .as_array()
            .expect("list")
            .iter()
            .find(|a| a["tags"].as_array().is_some_and(|ts| ts.iter().any(|t| t["name"] == tag)));
        found
            .map(|a| a["type"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("{tag} not listed: {}", all.body))
    };
    assert_eq!(type_of("index"), "IMAGE");
    assert_eq!(type_of("chart"), "CHART");
    for (tag, _, expected) in &kinds {
        assert_eq!(type_of(tag), *expected, "{tag}");
    }
    // The image is a child of the index, shown with it; its details through its digest.
    let one = admin
        .get(&format!("/projects/charts/repositories/kinds/artifacts/{image_digest}"))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(one.body["type"], "IMAGE");
    assert_eq!(one.body["extra_attrs"]["architecture"], "arm64");
    assert_eq!(one.body["extra_attrs"]["author"], "ci");
    assert_eq!(one.body["extra_attrs"]["config"]["Entrypoint"], json!(["/app"]));
    assert_eq!(one.body["extra_attrs"]["layers"][0]["digest"], layer.to_string());
    assert_eq!(
        one.body["addition_links"]["build_history"]["href"],
        format!("/api/v2.0/projects/charts/repositories/kinds/artifacts/{image_digest}/additions/build_history")
    );
    let history = admin
        .get(&format!("/projects/charts/repositories/kinds/artifacts/{image_digest}/additions/build_history"))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(history.body[0]["created_by"], "COPY app /app");
    assert_eq!(history.body[1]["empty_layer"], true);
    assert_eq!(history.body[1]["created"], "2026-01-02T03:04:05Z", "a step without a time takes the image's");
    admin
        .get("/projects/charts/repositories/kinds/artifacts/image/additions/readme.md")
        .await
        .expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));

    // q=type= filters (any case, or a set), and names no kind that does not exist.
    let charts =
        admin.get("/projects/charts/repositories/kinds/artifacts?q=type%3DCHART").await.expect(StatusCode::OK, None);
    assert_eq!(charts.body.as_array().map(Vec::len), Some(1));
    assert_eq!(charts.body[0]["type"], "CHART");
    let sboms = admin
        .get("/projects/charts/repositories/kinds/artifacts?q=type%3D%7Bsbom%20attestation%7D")
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(sboms.header("x-total-count"), "3");
    let bad = admin
        .get("/projects/charts/repositories/kinds/artifacts?q=type%3DTOASTER")
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    assert!(bad.body["errors"][0]["message"].as_str().expect("message").contains("IMAGE, CHART"), "{}", bad.body);
    reg.stop().await;
}

#[tokio::test]
async fn hostile_charts_get_clear_errors_naming_the_limit_and_nothing_partial_is_cached() {
    let (reg, admin) = registry().await;
    let (c, base) = (client(), reg.url());
    let repo = "charts/hostile";
    let scopes = ["repository:charts/hostile:pull,push", "repository:charts/badconfig:pull,push"];
    let t = token(&c, &base, Some(("admin", "adminpassword")), &scopes).await;
    let chart_yaml = chart_yaml("hostile", "1.0.0");
    let meta: &[u8] = chart_yaml.as_bytes();
    let mut symlink = Vec::new();
    tar_entry(&mut symlink, "hostile/Chart.yaml", b'0', "", meta);
    tar_entry(&mut symlink, "hostile/values.yaml", b'2', "/etc/shadow", b"");
    symlink.resize(symlink.len() + 1024, 0);
    let good = chart_archive("hostile", &[("Chart.yaml", meta), ("values.yaml", b"a: 1\n")]);
    let many: Vec<(String, Vec<u8>)> =
        (0..5001).map(|i| (format!("hostile/templates/t{i}.yaml"), Vec::new())).collect();
    let many: Vec<(&str, &[u8])> =
        std::iter::once(("hostile/Chart.yaml", meta)).chain(many.iter().map(|(n, d)| (n.as_str(), &d[..]))).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "readme",
            chart_archive("hostile", &[("Chart.yaml", meta), ("README.md", &vec![b'#'; 5 << 20])]),
            "README.md of the chart is 5.0 MiB, more than the limit of 4.0 MiB",
        ),
        (
            "bomb",
            chart_archive("hostile", &[("Chart.yaml", meta), ("zeros", &vec![0; 101 << 20])]),
            "unpacks to more than the limit of 100.0 MiB",
        ),
        (
            "traversal",
            gzip(&tar_of(&[("hostile/Chart.yaml", meta), ("hostile/../../../etc/cron.d/x", b"x")])),
            "outside its directory",
        ),
        ("many", gzip(&tar_of(&many)), "more than the limit of 5000 entries"),
        ("symlink", gzip(&symlink), "a symbolic link"),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        (
            "yaml",
            chart_archive("hostile", &[("Chart.yaml", meta), ("values.yaml", b"image: [unclosed\n")]),
            "values.yaml of the chart is not valid YAML",
        ),
        ("notgzip", b"PK\x03\x04 a zip file".to_vec(), "not a gzip-compressed tar"),
    ];
    for (tag, archive, expected) in &cases {
        push_chart(&c, &base, repo, tag, &chart_config("hostile", tag), archive, Some(&t)).await;
        for attempt in ["first", "cached"] {
            let path = format!("/projects/charts/repositories/hostile/artifacts/{tag}/additions/readme.md");
            let answer = admin.get(&path).await.expect(StatusCode::UNPROCESSABLE_ENTITY, Some("UNPROCESSABLE_ENTITY"));
            let message = answer.body["errors"][0]["message"].as_str().expect("message");
            assert!(message.contains(expected), "{tag} ({attempt}): {message:?} should say {expected:?}");
            assert!(message.contains("charts/hostile@sha256:"), "names the artifact: {message}");
        }
    }
    // A good chart in the same repository reads fine, and every one is still listed, downloadable
    // as pushed (Helm refuses a broken archive itself).
    push_chart(&c, &base, repo, "good", &chart_config("hostile", "good"), &good, Some(&t)).await;
    let values = admin
        .get("/projects/charts/repositories/hostile/artifacts/good/additions/values.yaml")
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(values.body, "a: 1\n");
    let index = yaml(
        &c.get(format!("{base}/chartrepo/charts/index.yaml")).send().await.expect("index").text().await.expect("text"),
    );
    assert_eq!(index["entries"]["hostile"].as_array().map(Vec::len), Some(cases.len() + 1));
    // A chart whose config is not Helm's metadata: no extra_attrs, a 422 for its additions, and
    // left out of the index.
    let bad_config = r#"{"name": 7, "version": ""}"#;
    push_chart(&c, &base, "charts/badconfig", "v", bad_config, &good, Some(&t)).await;
    let art = admin.get("/projects/charts/repositories/badconfig/artifacts/v").await.expect(StatusCode::OK, None);
    assert_eq!(art.body["type"], "CHART");
    assert_eq!(art.body["extra_attrs"], json!({}));
    let refused = admin.get("/projects/charts/repositories/badconfig/artifacts/v/additions/values.yaml").await;
    let refused = refused.expect(StatusCode::UNPROCESSABLE_ENTITY, None);
    assert!(
        refused.body["errors"][0]["message"].as_str().expect("message").contains("gives no version"),
        "{}",
        refused.body
    );
    reg.stop().await;
}
