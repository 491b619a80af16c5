//! Helpers shared by the workspace's tests: HTTP requests and assertions, image fixtures, real
//! clients (skopeo, podman) with private state, Harbor-model accounts, tokens, and the `registry`
//! binary as a child process. Not published; every test crate takes it as a dev-dependency.

pub mod containerd;
pub mod cosign;
pub mod distribution;
pub mod faultproxy;
pub mod harbor;
pub mod helm;
pub mod hook;
pub mod ldap;
pub mod notation;
pub mod oidc;
pub mod postgres;
pub mod powercut;
pub mod proxy;
pub mod s3;
pub mod scanner;

use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::{Client, Response, StatusCode};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn client() -> Client {
    install_crypto_provider();
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// reqwest is built with rustls but no default provider (oci-client's dev-dependency brings it);
/// every test talks plain HTTP, but building a client needs a provider installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A loopback port nothing listens on, for a server that must be told its port before it starts
/// (Garage, nginx, slapd, PostgreSQL, distribution...). Chosen below the kernel's ephemeral range
/// (`ip_local_port_range` starts at 32768): a port the kernel hands out for `:0` is also what it
/// gives the next outgoing connection, which may take it between this call and the server's bind
/// (Garage then dies with "address in use"). Below the range only another explicit choice can
/// take it, and picks are spread at random over 17,000 ports.
pub fn unused_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static PICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(PICKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        let port = 15_000 + (hasher.finish() % 17_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Asserts status and the spec's error code in a JSON error body.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error bodies are JSON"
    );
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["errors"][0]["code"], code, "error code in {body}");
    assert!(body["errors"][0]["message"].is_string());
}

pub fn header(resp: &Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Number of files below `dir` (0 when it does not exist).
pub fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.map(|e| e.expect("entry").path()).map(|p| if p.is_dir() { files_under(&p) } else { 1 }).sum()
}

/// Files in the registry's uploads and blobs directories.
pub fn stored(reg: &TestRegistry) -> (usize, usize) {
    let dir = reg.data_dir().expect("on-disk registry");
    (files_under(&dir.join("uploads")), files_under(&dir.join("blobs")))
}

/// Pushes a blob monolithically and returns its digest.
pub async fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> Digest {
    push_blob_as(c, base, repo, data, None).await
}

/// Pushes a blob monolithically with an optional bearer token.
pub async fn push_blob_as(c: &Client, base: &str, repo: &str, data: &[u8], token: Option<&str>) -> Digest {
    let digest = Digest::sha256_of(data);
    let mut req = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}")).body(data.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("push");
    assert_eq!(resp.status(), StatusCode::CREATED, "monolithic push");
    digest
}

/// Pushes a blob in two steps (`POST`, then `PUT` with the digest), as distribution 2.8 wants
/// (it opens a session for every upload); its digest.
pub async fn upload_blob(c: &Client, base: &str, repo: &str, data: &[u8], token: Option<&str>) -> Digest {
    let digest = Digest::sha256_of(data);
    let authorized = |req: reqwest::RequestBuilder| match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let opened = authorized(c.post(format!("{base}/v2/{repo}/blobs/uploads/"))).send().await.expect("post");
    assert_eq!(opened.status(), StatusCode::ACCEPTED, "an upload opened");
    let location = opened.headers()["location"].to_str().expect("location").to_owned();
    let url = if location.starts_with("http") { location } else { format!("{base}{location}") };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = authorized(c.put(format!("{url}{sep}digest={digest}"))).body(data.to_vec()).send().await.expect("put");
    assert_eq!(put.status(), StatusCode::CREATED, "an upload closed");
    digest
}

/// Pushes an image of one `layer` (and a small config) as `repo:tag` in two-step uploads; its
/// manifest's bytes.
pub async fn push_layer_image(
    c: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
    token: Option<&str>,
) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = upload_blob(c, base, repo, config, token).await;
    let layer_digest = upload_blob(c, base, repo, layer, token).await;
    let manifest = image_manifest(&config_digest, config.len(), &[(layer_digest, layer.len())], "");
    put_image_manifest(c, base, repo, tag, &manifest, token).await;
    manifest
}

/// Stores an OCI image manifest as `repo:tag`, with an optional bearer token.
pub async fn put_image_manifest(c: &Client, base: &str, repo: &str, tag: &str, manifest: &str, token: Option<&str>) {
    let mut req = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("put manifest");
    assert_eq!(resp.status(), StatusCode::CREATED, "manifest push");
}

/// Stores a manifest of any media type as `repo:reference` with a bearer token, asserting 201
/// (the registry's message shown otherwise); its digest.
pub async fn put_manifest_as(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &str,
    token: &str,
) -> Digest {
    let resp = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .bearer_auth(token)
        .header("content-type", media_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("put manifest");
    let status = resp.status();
    assert_eq!(status, StatusCode::CREATED, "{repo}:{reference}: {}", resp.text().await.unwrap_or_default());
    Digest::sha256_of(body.as_bytes())
}

/// An OCI image manifest over a config and layers, optionally with a subject and artifactType.
pub fn image_manifest(config: &Digest, config_size: usize, layers: &[(Digest, usize)], extra: &str) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

/// Pushes a config and one layer and a manifest tagged `tag`; returns the manifest's bytes and digest.
pub async fn push_image(c: &Client, base: &str, repo: &str, tag: &str, seed: &str) -> (String, Digest) {
    push_image_as(c, base, repo, tag, seed, None).await
}

/// [`push_image`] with an optional bearer token.
pub async fn push_image_as(
    c: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: &str,
    token: Option<&str>,
) -> (String, Digest) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer of {seed}").repeat(100);
    let cd = push_blob_as(c, base, repo, config.as_bytes(), token).await;
    let ld = push_blob_as(c, base, repo, layer.as_bytes(), token).await;
    let manifest = image_manifest(&cd, config.len(), &[(ld, layer.len())], "");
    put_image_manifest(c, base, repo, tag, &manifest, token).await;
    let digest = Digest::sha256_of(manifest.as_bytes());
    (manifest, digest)
}

/// GETs `url` (with a bearer token, and OCI manifests and indexes accepted) and reads its JSON body.
pub async fn get_json(c: &Client, url: &str, token: Option<&str>) -> serde_json::Value {
    let mut req = c.get(url).header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("get").json().await.expect("a JSON body")
}

/// Sends a raw HTTP/1.1 request (path exactly as given, no client-side normalization) and returns
/// the status code and the body.
pub async fn raw_request(reg: &TestRegistry, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(reg.addr()).await.expect("connect");
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", reg.host());
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// A ustar archive of regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        tar_entry(&mut out, name, b'0', "", data);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Appends one ustar entry (`kind`: `b'0'` file, `b'2'` symbolic link…) to `out`, its name
/// written as given (`..` and absolute names included: tests make hostile archives with it).
pub fn tar_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// Writes an OCI image layout with one image of `layer_count` tar layers, tagged `tag`; returns
/// the manifest's digest and the layers' digests.
pub fn write_oci_layout(dir: &std::path::Path, tag: &str, layer_count: usize) -> (Digest, Vec<Digest>) {
    let contents: Vec<Vec<u8>> =
        (0..layer_count).map(|i| format!("file {i}\n").repeat(1000 * (i + 1)).into_bytes()).collect();
    write_oci_layout_of(dir, tag, &contents)
}

/// Bytes that do not compress (a client's gzip leaves their size): `len` of them from `seed`.
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// [`write_oci_layout`] with one tar layer holding each of `contents` as a file.
pub fn write_oci_layout_of(dir: &std::path::Path, tag: &str, contents: &[Vec<u8>]) -> (Digest, Vec<Digest>) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let write = |bytes: &[u8]| {
        let d = Digest::sha256_of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).expect("write blob");
        d
    };
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let tar = tar_of(&[(&format!("layer{i}.txt"), content.as_slice())]);
        let d = write(&tar);
        descriptors.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{}}}"#,
            tar.len()
        ));
        layers.push(d);
    }
    let diff_ids: Vec<String> = layers.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/true"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let cd = write(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descriptors.join(",")
    );
    let md = write(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write layout");
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{md}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(dir.join("index.json"), index).expect("write index");
    (md, layers)
}

async fn output(program: &str, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} could not start (install it: apt-get install -y {program}): {e}"))
}

/// Runs a client command to completion; panics with its output when it fails.
pub async fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = output(program, args, envs).await;
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a client command that must fail; returns its stderr.
pub async fn run_failing(program: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = output(program, args, envs).await;
    assert!(!out.status.success(), "{program} {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What `skopeo inspect` of `image` (on `host`, as the admin of [`harbor_accounts`]) says when it
/// is refused.
pub async fn skopeo_inspect_refused(host: &str, image: &str) -> String {
    let work = tempfile::tempdir().expect("tempdir");
    let auth = work.path().join("auth.json");
    std::fs::write(&auth, "{}").expect("auth");
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().expect("utf8"))];
    let target = format!("docker://{host}/{image}");
    run_failing("skopeo", &["inspect", "--tls-verify=false", "--creds", "admin:adminpassword", &target], &env).await
}

/// Accounts for Harbor-model tests: public `library`, private `team`, the system admin `admin`
/// (password `adminpassword`), `dev` (developer), `guest` (guest) and `ma` (maintainer) in both
/// projects, and `outsider` in none; every user but the admin has the password `password1`.
pub async fn harbor_accounts() -> registry_auth::Accounts {
    use registry_auth::Role;
    let accounts = registry_auth::Accounts::in_memory();
    accounts.create_project("library", true).await.expect("project");
    accounts.create_project("team", false).await.expect("project");
    accounts.add_user("admin", "adminpassword", true).await.expect("user");
    for (user, role) in [("dev", Role::Developer), ("guest", Role::Guest), ("ma", Role::Maintainer)] {
        accounts.add_user(user, "password1", false).await.expect("user");
        accounts.add_member("team", user, role, None).await.expect("member");
        accounts.add_member("library", user, role, None).await.expect("member");
    }
    accounts.add_user("outsider", "password1", false).await.expect("user");
    accounts
}

/// Asks the registry's token endpoint for a token (GET, Basic credentials when given).
pub async fn get_token(c: &Client, base: &str, creds: Option<(&str, &str)>, scopes: &[&str]) -> Response {
    // As real clients do: the service name comes from the registry's challenge.
    let challenge = c.get(format!("{base}/v2/")).send().await.expect("challenge");
    let challenge = header(&challenge, "www-authenticate");
    let param =
        |name: &str| challenge.split(&format!("{name}=\"")).nth(1).and_then(|s| s.split('"').next()).map(str::to_owned);
    let (realm, service) =
        (param("realm").expect("realm in challenge"), param("service").expect("service in challenge"));
    let mut url = format!("{realm}?service={service}");
    for s in scopes {
        url.push_str(&format!("&scope={s}"));
    }
    let mut req = c.get(url);
    if let Some((u, p)) = creds {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.expect("token request")
}

/// The actions the token endpoint at `base` grants `user` (signing in with `password`) on
/// `repository` when asked for pull, push and delete, sorted.
pub async fn granted_actions(base: &str, user: &str, password: &str, repository: &str) -> Vec<String> {
    use base64::Engine as _;
    let scope = format!("repository:{repository}:pull,push,delete");
    let jwt = token(&client(), base, Some((user, password)), &[&scope]).await;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64"))
            .expect("claims");
    let mut actions: Vec<String> = claims["access"][0]["actions"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    actions.sort();
    actions
}

/// A token string, asserting the endpoint answered 200.
pub async fn token(c: &Client, base: &str, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
    let resp = get_token(c, base, creds, scopes).await;
    assert_eq!(resp.status(), StatusCode::OK, "token endpoint");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().expect("expires_in") >= 60);
    body["token"].as_str().expect("token").to_owned()
}

/// podman with every state directory private to the test (see TESTING.md): no daemon, vfs storage.
pub struct Podman {
    base: Vec<String>,
    conf: std::path::PathBuf,
    registries: Option<std::path::PathBuf>,
    dir: tempfile::TempDir,
}

impl Podman {
    /// A private podman, with an image `localhost/podtest:v1` imported from a small rootfs.
    pub async fn with_test_image() -> Podman {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = dir.path().to_owned();
        let conf = w.join("containers.conf");
        // File locks under the private tmpdir: podman's default shared-memory lock (/dev/shm/libpod_lock)
        // is one per machine, and two podmans creating it at once fail ("file exists").
        std::fs::write(
            &conf,
            "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\nlock_type = \"file\"\n",
        )
        .expect("conf");
        let mut base = Vec::new();
        for (flag, sub) in
            [("--root", "root"), ("--runroot", "run"), ("--tmpdir", "tmp"), ("--network-config-dir", "net")]
        {
            base.push(flag.to_owned());
            base.push(w.join(sub).display().to_string());
        }
        base.extend(["--storage-driver".to_owned(), "vfs".to_owned()]);
        let podman = Podman { base, conf, registries: None, dir };
        let rootfs = w.join("rootfs.tar");
        std::fs::write(&rootfs, tar_of(&[("hello.txt", b"hello from podman\n"), ("etc/os-release", b"ID=test\n")]))
            .expect("rootfs");
        let auth = podman.auth_file("import");
        podman.run(&["import", rootfs.to_str().expect("utf8"), "localhost/podtest:v1"], &auth).await;
        podman
    }

    /// An empty auth file of its own for one identity.
    pub fn auth_file(&self, who: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(format!("auth-{who}.json"));
        if !path.exists() {
            std::fs::write(&path, "{}").expect("auth file");
        }
        path
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        self.base.iter().map(String::as_str).chain(args.iter().copied()).collect()
    }

    /// Uses `text` as its `registries.conf` (mirrors, insecure registries) from now on.
    pub fn use_registries_conf(&mut self, text: &str) {
        let path = self.dir.path().join("registries.conf");
        std::fs::write(&path, text).expect("registries.conf");
        self.registries = Some(path);
    }

    fn envs<'a>(&'a self, auth: &'a std::path::Path) -> Vec<(&'a str, &'a str)> {
        let mut out = vec![
            ("CONTAINERS_CONF", self.conf.to_str().expect("utf8")),
            ("REGISTRY_AUTH_FILE", auth.to_str().expect("utf8")),
        ];
        if let Some(path) = &self.registries {
            out.push(("CONTAINERS_REGISTRIES_CONF", path.to_str().expect("utf8")));
        }
        out
    }

    /// The arguments that come before every podman command, and the environment it needs with
    /// `auth` as its auth file (for a program other than this one to run podman).
    pub fn command_line(&self, auth: &std::path::Path) -> (Vec<String>, Vec<(String, String)>) {
        let env = self.envs(auth).iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        (self.base.clone(), env)
    }

    /// Runs podman; panics on failure.
    pub async fn run(&self, args: &[&str], auth: &std::path::Path) -> String {
        run("podman", &self.args(args), &self.envs(auth)).await
    }

    /// Runs podman expecting failure; returns its stderr.
    pub async fn fails(&self, args: &[&str], auth: &std::path::Path) -> String {
        run_failing("podman", &self.args(args), &self.envs(auth)).await
    }
}

/// A running `registry serve` with its log lines.
pub struct Server {
    pub child: tokio::process::Child,
    pub addr: String,
    /// What it printed before serving.
    pub startup: Vec<String>,
    logs: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Server {
    /// Starts the binary on an ephemeral port and waits for its "serving" log line, which it
    /// prints once the listener is bound.
    pub async fn start(binary: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
        Self::start_command(binary, "serve", args, envs).await
    }

    /// Starts `binary command --listen 127.0.0.1:0 args…`.
    pub async fn start_command(binary: &str, command: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut child = tokio::process::Command::new(binary)
            .arg(command)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the registry binary");
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().expect("stdout")));
        let (tx, logs) = tokio::sync::mpsc::unbounded_channel();
        let mut startup = Vec::new();
        let addr = loop {
            let line = lines.next_line().await.expect("read log").expect("the server exited before serving");
            if line.contains("registry serving") || line.contains("token service serving") {
                let addr = line.split("listen=").nth(1).and_then(|s| s.split_whitespace().next()).expect("listen=");
                break addr.to_owned();
            }
            startup.push(line);
        };
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, addr, startup, logs }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for a log line containing every needle.
    pub async fn log_line(&mut self, needles: &[&str]) -> String {
        loop {
            let line = self.logs.recv().await.expect("log stream ended");
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }

    /// SIGTERM, then waits for the process to exit (its databases are closed after this).
    pub async fn stop(mut self) {
        self.terminate();
        let status = self.child.wait().await.expect("wait for exit");
        assert!(status.success(), "clean exit: {status}");
    }

    pub fn terminate(&self) {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
    }
}

/// Starts `command` (its stdout discarded, killed when dropped) and waits until its stderr says
/// `ready` (the log line a daemon prints once it serves); its stderr is drained from then on.
/// `what` names it in panics (how to install it).
pub async fn spawn_until_ready(mut command: tokio::process::Command, ready: &str, what: &str) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    let mut log = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    loop {
        let line = log.next_line().await.expect("log").unwrap_or_else(|| panic!("{what} exited before serving"));
        if line.contains(ready) {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    child
}

/// An in-process registry with Harbor's accounts ([`harbor_accounts`]) and a job queue that polls
/// every 20 ms (jobs lease for 30 s), for tests of what runs as jobs.
pub async fn harbor_registry() -> registry_http::TestRegistry {
    registry_http::TestRegistry::builder()
        .accounts(harbor_accounts().await)
        .jobs(std::time::Duration::from_secs(30), std::time::Duration::from_millis(20))
        .start()
        .await
        .expect("start")
}
