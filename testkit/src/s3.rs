//! S3-compatible servers for tests, each private to its test and stopped with it: Garage (a
//! production self-hosted store, single node) and moto's server (a mock, but one that enforces
//! S3's 5 MiB minimum part size and conditional writes, which Garage skips); and s3s-fs (an S3
//! server on a directory, for comparing stores under long runs).
//!
//! Garage and moto come from `scripts/test.sh`, which installs them into its tools directory:
//! `REGISTRY_GARAGE` / `REGISTRY_MOTO` name them, else `~/.cache/registry-tools`. No test uses
//! s3s-fs; the soak that does names its install command ([`S3S_FS_INSTALL`]), `REGISTRY_S3S_FS`
//! names the program, else `~/.cache/registry-tools/s3s-fs/bin/s3s-fs`.

use std::path::PathBuf;
use std::time::Duration;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// Garage 2.x, single node.
    Garage,
    /// moto's server.
    Moto,
    /// s3s-fs, on a directory.
    FileSystem,
}

/// How to install s3s-fs where [`S3Server::file_system`] finds it.
pub const S3S_FS_INSTALL: &str = "cargo install s3s-fs --version 0.14.1 --features binary --locked \
     --root ~/.cache/registry-tools/s3s-fs";

/// A running S3-compatible server with one bucket and one key.
pub struct S3Server {
    pub kind: S3Kind,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    child: Option<tokio::process::Child>,
    dir: tempfile::TempDir,
    port: u16,
    rpc_port: u16,
}

const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn tool(env: &str, default: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = PathBuf::from(home).join(".cache/registry-tools").join(default);
    let install = if env == "REGISTRY_S3S_FS" { S3S_FS_INSTALL } else { "scripts/test.sh" };
    assert!(path.exists(), "{} not found: install it with {install} (or set {env})", path.display());
    path
}

/// The environment an S3 client of these servers needs (and nothing the machine's own AWS
/// settings could add).
pub fn client_env(server: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", server.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_access_key.clone()),
        ("AWS_REGION", server.region.clone()),
    ]
}

impl S3Server {
    /// Starts Garage with a bucket `registry`.
    pub async fn garage() -> S3Server {
        let mut server = S3Server {
            kind: S3Kind::Garage,
            endpoint: String::new(),
            bucket: "registry".into(),
            region: "garage".into(),
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port: crate::unused_port(),
            rpc_port: crate::unused_port(),
        };
        server.endpoint = format!("http://127.0.0.1:{}", server.port);
        let config = format!(
            "metadata_dir = {meta:?}\ndata_dir = {data:?}\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"1799bccfd7411eddcf9ebd316bc1f5287ad12a68094e1c6ac6abde7e6feae1ec\"\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{port}\"\n\
             root_domain = \".s3.garage.localhost\"\n",
            meta = server.dir.path().join("meta"),
            data = server.dir.path().join("data"),
            rpc = server.rpc_port,
            port = server.port,
        );
        std::fs::write(server.dir.path().join("garage.toml"), config).expect("write garage.toml");
        server.spawn().await;
        let node = server.garage_cli(&["node", "id", "-q"]).await;
        let node = node.trim().split('@').next().expect("node id").to_owned();
        server.garage_cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]).await;
        server.garage_cli(&["layout", "apply", "--version", "1"]).await;
        server.garage_cli(&["bucket", "create", "registry"]).await;
        server.garage_cli(&["key", "import", "--yes", KEY_ID, SECRET]).await;
        server.garage_cli(&["bucket", "allow", "--read", "--write", "--owner", "registry", "--key", KEY_ID]).await;
        server
    }

    /// Starts moto's server with a bucket `registry`.
    pub async fn moto() -> S3Server {
        let mut server = S3Server {
            kind: S3Kind::Moto,
            endpoint: String::new(),
            bucket: "registry".into(),
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing-secret".into(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port: crate::unused_port(),
            rpc_port: 0,
        };
        server.endpoint = format!("http://127.0.0.1:{}", server.port);
        server.spawn().await;
        let status = crate::client()
            .put(format!("{}/registry", server.endpoint))
            .send()
            .await
            .expect("create the bucket")
            .status();
        assert!(status.is_success(), "moto refused to create the bucket: {status}");
        server
    }

    /// Starts s3s-fs on a directory of its own, with a bucket `registry`.
    pub async fn file_system() -> S3Server {
        let mut server = S3Server {
            kind: S3Kind::FileSystem,
            endpoint: String::new(),
            bucket: "registry".into(),
            region: "us-east-1".into(),
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port: crate::unused_port(),
            rpc_port: 0,
        };
        server.endpoint = format!("http://127.0.0.1:{}", server.port);
        // A bucket is a directory of its root.
        std::fs::create_dir_all(server.dir.path().join("data").join("registry")).expect("the bucket's directory");
        server.spawn().await;
        server
    }

    /// Starts the process (again, after [`S3Server::kill`]: same ports, same data) and waits until
    /// it answers.
    pub async fn spawn(&mut self) {
        let mut command = match self.kind {
            S3Kind::Garage => {
                let mut c = tokio::process::Command::new(tool("REGISTRY_GARAGE", "bin/garage"));
                c.arg("-c").arg(self.dir.path().join("garage.toml")).arg("server");
                c.env("RUST_LOG", "warn");
                c
            }
            S3Kind::Moto => {
                let mut c = tokio::process::Command::new(tool("REGISTRY_MOTO", "moto-venv/bin/moto_server"));
                c.args(["-H", "127.0.0.1", "-p", &self.port.to_string()]);
                c
            }
            S3Kind::FileSystem => {
                let program = tool("REGISTRY_S3S_FS", "s3s-fs/bin/s3s-fs");
                let mut c = tokio::process::Command::new(program);
                c.args(["--host", "127.0.0.1", "--port", &self.port.to_string()]);
                c.args(["--access-key", &self.access_key_id, "--secret-key", &self.secret_access_key]);
                c.arg(self.dir.path().join("data"));
                c.env("RUST_LOG", "warn");
                c
            }
        };
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = command
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the S3 server");
        self.child = Some(child);
        self.wait_until_answering().await;
    }

    /// Polls the S3 port (and, for Garage, its RPC) until it answers, for at most 30 s.
    async fn wait_until_answering(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let url = format!("{}/", self.endpoint);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                panic!("the S3 server exited ({status}):\n{log}");
            }
            let answered = crate::client().get(&url).send().await.is_ok();
            let ready =
                answered && (self.kind != S3Kind::Garage || self.garage_cli_status(&["status"]).await.is_some());
            if ready {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the S3 server did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn garage_cli_status(&self, args: &[&str]) -> Option<String> {
        let output = tokio::process::Command::new(tool("REGISTRY_GARAGE", "bin/garage"))
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .output()
            .await
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn garage_cli(&self, args: &[&str]) -> String {
        match self.garage_cli_status(args).await {
            Some(out) => out,
            None => panic!("garage {args:?} failed"),
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// SIGKILLs the server (its data stays, for [`S3Server::spawn`]).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops the server and removes its data.
    pub async fn stop(mut self) {
        self.kill().await;
    }
}
