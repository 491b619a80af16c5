//! Real clients against the in-process registry: skopeo and podman (installed by the README's test
//! command; a missing client is a failure, never a skip), and the oci-client crate.

use registry_core::Digest;
use registry_http::TestRegistry;
use testkit::*;

fn digest_of_file(path: &std::path::Path) -> Digest {
    Digest::sha256_of(&std::fs::read(path).expect("read"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copy_inspect_list_delete() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let work = tempfile::tempdir().expect("tempdir");
    let auth = work.path().join("auth.json");
    std::fs::write(&auth, "{}").expect("auth file");
    let auth = auth.to_str().expect("utf8");
    let env = [("REGISTRY_AUTH_FILE", auth)];
    let src = work.path().join("src");
    let (manifest_digest, layers) = write_oci_layout(&src, "v1", 3);
    let host = reg.host();
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = format!("docker://{host}/skopeo/app:v1");

    run("skopeo", &["copy", "--dest-tls-verify=false", &src_ref, &dest], &env).await;

    // skopeo compresses the uncompressed layers on the way to a registry, so the stored manifest
    // is a new one; what skopeo reads back is exactly what the registry serves.
    let resp = client().get(format!("{}/v2/skopeo/app/manifests/v1", reg.url())).send().await.expect("get");
    let served_digest = header(&resp, "docker-content-digest");
    let served = resp.text().await.expect("body");
    let raw = run("skopeo", &["inspect", "--tls-verify=false", "--raw", &dest], &env).await;
    assert_eq!(raw.trim_end(), served.trim_end());
    assert_eq!(Digest::sha256_of(served.as_bytes()).to_string(), served_digest);
    let inspect: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--tls-verify=false", &dest], &env).await).expect("json");
    assert_eq!(inspect["Digest"], served_digest);
    assert_eq!(inspect["Layers"].as_array().expect("layers").len(), 3);
    let _ = (manifest_digest, layers);

    // Back out to a fresh layout: the registry's manifest, and every blob hashes to its name.
    let out = work.path().join("out");
    run("skopeo", &["copy", "--src-tls-verify=false", &dest, &format!("oci:{}:v1", out.display())], &env).await;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).expect("index")).expect("json");
    assert_eq!(index["manifests"][0]["digest"], served_digest);
    let mut blobs = 0;
    for entry in std::fs::read_dir(out.join("blobs/sha256")).expect("blobs") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        assert_eq!(digest_of_file(&path).hex(), name, "blob {name} round-trips intact");
        blobs += 1;
    }
    assert_eq!(blobs, 5, "manifest, config and three layers");

    // Converted to Docker schema 2 on the way in, under another tag.
    let v2s2 = format!("docker://{host}/skopeo/app:v2s2");
    run("skopeo", &["copy", "--dest-tls-verify=false", "--format", "v2s2", &src_ref, &v2s2], &env).await;
    let raw: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--tls-verify=false", "--raw", &v2s2], &env).await)
            .expect("json");
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");

    let tags: serde_json::Value = serde_json::from_str(
        &run("skopeo", &["list-tags", "--tls-verify=false", &format!("docker://{host}/skopeo/app")], &env).await,
    )
    .expect("json");
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2s2"]));

    run("skopeo", &["delete", "--tls-verify=false", &dest], &env).await;
    run_failing("skopeo", &["inspect", "--tls-verify=false", "--raw", &dest], &env).await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_push_rmi_pull() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let podman = Podman::with_test_image().await;
    let auth = podman.auth_file("anonymous");
    let host = reg.host();
    for (format, tag) in [("oci", "v1"), ("v2s2", "v2s2")] {
        let target = format!("{host}/pod/app:{tag}");
        podman.run(&["push", "--tls-verify=false", "--format", format, "localhost/podtest:v1", &target], &auth).await;
    }
    podman.run(&["rmi", "localhost/podtest:v1"], &auth).await;
    for tag in ["v1", "v2s2"] {
        let target = format!("{host}/pod/app:{tag}");
        podman.run(&["pull", "--tls-verify=false", &target], &auth).await;
        let id = podman.run(&["image", "inspect", "--format", "{{.Id}}", &target], &auth).await;
        assert!(!id.trim().is_empty(), "pulled image {tag} is in local storage");
    }
    let resp = client().get(format!("{}/v2/pod/app/tags/list", reg.url())).send().await.expect("tags");
    assert_eq!(resp.json::<serde_json::Value>().await.expect("json")["tags"], serde_json::json!(["v1", "v2s2"]));
    let resp = client().get(format!("{}/v2/pod/app/manifests/v2s2", reg.url())).send().await.expect("manifest");
    assert_eq!(header(&resp, "content-type"), "application/vnd.docker.distribution.manifest.v2+json");
    reg.stop().await;
}

/// The seed's flow with real clients: `podman login` and `skopeo login`, then Harbor's roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_and_skopeo_log_in_and_roles_apply() {
    use registry_auth::RobotPermission;
    let accounts = harbor_accounts().await;
    let (robot, secret) = accounts
        .create_robot(registry_auth::NewRobot::for_project(
            "team",
            "ci",
            vec![RobotPermission::parse_for_project("team", "*:pull,push").expect("perm")],
        ))
        .await
        .expect("robot");
    let reg = TestRegistry::start_with_auth(accounts).await.expect("start");
    let host = reg.host();
    let podman = Podman::with_test_image().await;
    let login = |who: &str, password: &str| {
        let auth = podman.auth_file(who);
        let (who, password, host) = (who.to_owned(), password.to_owned(), host.clone());
        let podman = &podman;
        async move {
            podman.run(&["login", "--tls-verify=false", "-u", &who, "-p", &password, &host], &auth).await;
            auth
        }
    };

    // A developer pushes to the private project; a wrong password is refused at login.
    let dev = login("dev", "password1").await;
    let wrong = podman.auth_file("wrong");
    podman.fails(&["login", "--tls-verify=false", "-u", "dev", "-p", "nope", &host], &wrong).await;
    podman.run(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/team/app:v1")], &dev).await;

    // skopeo logs in as the guest: pull yes, push no.
    let work = tempfile::tempdir().expect("tempdir");
    let skopeo_auth = |who: &str| {
        let p = work.path().join(format!("skopeo-{who}.json"));
        std::fs::write(&p, "{}").expect("auth");
        p
    };
    let guest = skopeo_auth("guest");
    let genv = [("REGISTRY_AUTH_FILE", guest.to_str().expect("utf8"))];
    run("skopeo", &["login", "--tls-verify=false", "-u", "guest", "-p", "password1", &host], &genv).await;
    let app = format!("docker://{host}/team/app:v1");
    run("skopeo", &["inspect", "--tls-verify=false", &app], &genv).await;
    let src = work.path().join("src");
    write_oci_layout(&src, "v1", 1);
    let src_ref = format!("oci:{}:v1", src.display());
    run_failing(
        "skopeo",
        &["copy", "--dest-tls-verify=false", &src_ref, &format!("docker://{host}/team/app:guest")],
        &genv,
    )
    .await;
    run_failing(
        "skopeo",
        &["copy", "--dest-tls-verify=false", &src_ref, &format!("docker://{host}/library/base:guest")],
        &genv,
    )
    .await;

    // Non-member and anonymous see nothing of the private project.
    for who in ["outsider", "anonymous"] {
        let auth = skopeo_auth(who);
        let env = [("REGISTRY_AUTH_FILE", auth.to_str().expect("utf8"))];
        if who != "anonymous" {
            run("skopeo", &["login", "--tls-verify=false", "-u", who, "-p", "password1", &host], &env).await;
        }
        run_failing("skopeo", &["inspect", "--tls-verify=false", &app], &env).await;
    }

    // The admin publishes to `library`; anonymous pulls from it.
    let anon = skopeo_auth("anon-library");
    let admin = skopeo_auth("admin");
    let aenv = [("REGISTRY_AUTH_FILE", admin.to_str().expect("utf8"))];
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "admin:adminpassword",
            &src_ref,
            &format!("docker://{host}/library/base:v1"),
        ],
        &aenv,
    )
    .await;
    run(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{host}/library/base:v1")],
        &[("REGISTRY_AUTH_FILE", anon.to_str().expect("utf8"))],
    )
    .await;

    // Delete: refused for the developer, allowed for the maintainer.
    let devs = skopeo_auth("dev");
    let denv = [("REGISTRY_AUTH_FILE", devs.to_str().expect("utf8"))];
    run("skopeo", &["login", "--tls-verify=false", "-u", "dev", "-p", "password1", &host], &denv).await;
    run_failing("skopeo", &["delete", "--tls-verify=false", &app], &denv).await;
    let mas = skopeo_auth("ma");
    let menv = [("REGISTRY_AUTH_FILE", mas.to_str().expect("utf8"))];
    run("skopeo", &["login", "--tls-verify=false", "-u", "ma", "-p", "password1", &host], &menv).await;
    run("skopeo", &["delete", "--tls-verify=false", &app], &menv).await;
    run_failing("skopeo", &["inspect", "--tls-verify=false", &app], &menv).await;

    // The robot pushes with its secret.
    let ci = login(&robot.name, &secret).await;
    podman
        .run(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/team/built-by-ci:v1")], &ci)
        .await;
    podman.run(&["pull", "--tls-verify=false", &format!("{host}/team/built-by-ci:v1")], &ci).await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_client_artifact_with_subject_and_referrers() {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::manifest::{OciDescriptor, OciImageManifest};
    use oci_client::{Client, Reference, secrets::RegistryAuth};

    install_crypto_provider();
    let reg = TestRegistry::start().await.expect("start");
    let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
    let auth = RegistryAuth::Anonymous;

    // The subject: an image, pushed chunked (oci-client's default).
    let image: Reference = format!("{}/oci/app:v1", reg.host()).parse().expect("reference");
    let layer = ImageLayer::new(vec![7u8; 300_000], "application/vnd.oci.image.layer.v1.tar".into(), None);
    let config = Config::new(
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );
    let image_manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    let pushed = client.push(&image, &[layer], config, &auth, Some(image_manifest.clone())).await.expect("push image");
    assert!(pushed.manifest_url.contains("/v2/oci/app/manifests/"));
    let (_, subject_digest) = client.pull_image_manifest(&image, &auth).await.expect("pull manifest");

    // The artifact: custom artifactType, subject set.
    let sig = ImageLayer::new(b"signature".to_vec(), "application/vnd.example.sig".into(), None);
    let empty = Config::new(b"{}".to_vec(), "application/vnd.oci.empty.v1+json".into(), None);
    let mut artifact = OciImageManifest::build(std::slice::from_ref(&sig), &empty, None);
    artifact.artifact_type = Some("application/vnd.example.signature.v1".into());
    artifact.subject = Some(OciDescriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: subject_digest.clone(),
        size: serde_json::to_vec(&image_manifest).expect("json").len() as i64,
        ..Default::default()
    });
    let artifact_ref: Reference = format!("{}/oci/app:sig", reg.host()).parse().expect("reference");
    client.push(&artifact_ref, &[sig], empty, &auth, Some(artifact)).await.expect("push artifact");

    let subject_ref: Reference = format!("{}/oci/app@{subject_digest}", reg.host()).parse().expect("reference");
    let index = client.pull_referrers(&subject_ref, None).await.expect("referrers");
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].artifact_type.as_deref(), Some("application/vnd.example.signature.v1"));
    let filtered = client.pull_referrers(&subject_ref, Some("application/vnd.other")).await.expect("referrers");
    assert!(filtered.manifests.is_empty());

    // Pull the image back and compare the layer.
    let data = client.pull(&image, &auth, vec!["application/vnd.oci.image.layer.v1.tar"]).await.expect("pull");
    assert_eq!(data.layers[0].data.as_ref(), vec![7u8; 300_000].as_slice());
    reg.stop().await;
}

/// Pushing to (or pulling from) a project that does not exist: podman and skopeo print the
/// registry's message naming the project, not a bare "denied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_and_skopeo_name_a_missing_project() {
    let reg = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("start");
    let host = reg.host();
    let podman = Podman::with_test_image().await;
    let auth = podman.auth_file("admin");
    podman.run(&["login", "--tls-verify=false", "-u", "admin", "-p", "adminpassword", &host], &auth).await;
    let err = podman
        .fails(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/nosuch/app:v1")], &auth)
        .await;
    assert!(err.contains("project nosuch not found"), "podman says which project: {err}");

    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    write_oci_layout(&src, "v1", 1);
    let authfile = work.path().join("skopeo.json");
    std::fs::write(&authfile, "{}").expect("auth");
    let env = [("REGISTRY_AUTH_FILE", authfile.to_str().expect("utf8"))];
    run("skopeo", &["login", "--tls-verify=false", "-u", "dev", "-p", "password1", &host], &env).await;
    let src_ref = format!("oci:{}:v1", src.display());
    let err = run_failing(
        "skopeo",
        &["copy", "--dest-tls-verify=false", &src_ref, &format!("docker://{host}/gone/app:v1")],
        &env,
    )
    .await;
    assert!(err.contains("project gone not found"), "skopeo copy says which project: {err}");
    let err =
        run_failing("skopeo", &["inspect", "--tls-verify=false", &format!("docker://{host}/gone/app:v1")], &env).await;
    assert!(err.contains("project gone not found"), "skopeo inspect says which project: {err}");
}

/// What a person pushing sees when a push is refused: podman and skopeo print the registry's
/// reason, naming the project, its usage and limit, or the immutability rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_and_skopeo_show_quota_and_immutability_refusals() {
    use serde_json::json;
    use testkit::harbor::{Api, location_id};
    let reg = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("start");
    let host = reg.host();
    let admin = Api::new(&reg, Some(("admin", "adminpassword")));
    let small = admin.post("/projects", json!({"project_name": "small", "storage_limit": 300})).await;
    assert_eq!(small.status, reqwest::StatusCode::CREATED, "{}", small.body);
    let podman = Podman::with_test_image().await;
    let auth = podman.auth_file("admin");
    podman.run(&["login", "--tls-verify=false", "-u", "admin", "-p", "adminpassword", &host], &auth).await;
    let err = podman
        .fails(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/small/app:v1")], &auth)
        .await;
    assert!(err.contains("quota exceeded: project small uses"), "podman shows the reason: {err}");
    assert!(err.contains("300 B quota"), "and the limit: {err}");
    // Raised, the same push goes through, and nothing half-pushed is in the way.
    let id = small.header("location").rsplit('/').next().and_then(|i| i.parse::<u64>().ok()).expect("id");
    let raised = admin.put(&format!("/quotas/{id}"), json!({"hard": {"storage": 10_000_000}})).await;
    assert_eq!(raised.status, reqwest::StatusCode::OK);
    podman.run(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/small/app:v1")], &auth).await;

    // An immutable tag: the same image again is fine, other content is refused by the rule.
    let rule = admin
        .post(
            "/projects/team/immutabletagrules",
            json!({
                "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
                "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
            }),
        )
        .await;
    let rule_id = location_id(&rule);
    podman.run(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/team/app:v1")], &auth).await;
    podman.run(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/team/app:v1")], &auth).await;
    let work = tempfile::tempdir().expect("tempdir");
    write_oci_layout(&work.path().join("other"), "v1", 1);
    let skopeo_auth = work.path().join("skopeo.json");
    std::fs::write(&skopeo_auth, "{}").expect("auth");
    let env = [("REGISTRY_AUTH_FILE", skopeo_auth.to_str().expect("utf8"))];
    let src = format!("oci:{}:v1", work.path().join("other").display());
    let err = run_failing(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "admin:adminpassword",
            &src,
            &format!("docker://{host}/team/app:v1"),
        ],
        &env,
    )
    .await;
    assert!(err.contains("immutable") && err.contains(&format!("rule {rule_id}")), "skopeo shows the rule: {err}");
    reg.stop().await;
}
