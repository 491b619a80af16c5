//! Distribution 2.8 (Debian's `docker-registry`) as a peer: started on a loopback port with a
//! data directory of its own, open, behind Basic auth (an htpasswd file) or behind a token
//! realm; stopped when dropped. Its access log is kept, for tests that count requests.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};

/// A running distribution.
pub struct Distribution {
    /// `127.0.0.1:<port>`.
    pub host: String,
    child: tokio::process::Child,
    work: tempfile::TempDir,
    access: Arc<Mutex<Vec<String>>>,
}

impl Distribution {
    /// Distribution without authentication.
    pub async fn open() -> Distribution {
        Distribution::start(|_| String::new()).await
    }

    /// Distribution behind Basic auth for `user` with `password`.
    pub async fn basic(user: &str, password: &str) -> Distribution {
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        let line = format!("{user}:{hash}\n");
        Distribution::start(|dir| {
            let file = dir.join("htpasswd");
            std::fs::write(&file, &line).expect("htpasswd");
            format!("auth:\n  htpasswd:\n    realm: distribution\n    path: {}\n", file.display())
        })
        .await
    }

    /// Distribution with the `auth:` section `auth` makes (given its work directory).
    pub async fn start(auth: impl FnOnce(&std::path::Path) -> String) -> Distribution {
        let work = tempfile::tempdir().expect("tempdir");
        let port = crate::unused_port();
        let config = work.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{}",
                work.path().join("data").display(),
                auth(work.path())
            ),
        )
        .expect("config");
        let access = Arc::default();
        let child = Distribution::spawn(&config, &access).await;
        Distribution { host: format!("127.0.0.1:{port}"), child, work, access }
    }

    async fn spawn(config: &std::path::Path, access: &Arc<Mutex<Vec<String>>>) -> tokio::process::Child {
        let mut child = tokio::process::Command::new("docker-registry")
            .args(["serve", config.to_str().expect("utf8")])
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts (apt-get install -y docker-registry)");
        let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        loop {
            let line = log.next_line().await.expect("log").expect("docker-registry exited before listening");
            if line.contains("listening on") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let access = access.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                access.lock().expect("access log").push(line);
            }
        });
        child
    }

    /// The lines of its access log (one per request answered, as `"METHOD /path HTTP/1.1" status`)
    /// containing `needle`.
    pub fn requests(&self, needle: &str) -> Vec<String> {
        self.access.lock().expect("access log").iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Its data directory (`docker/registry/v2/...` below it).
    pub fn data(&self) -> std::path::PathBuf {
        self.work.path().join("data")
    }

    /// Kills it (its port then refuses connections; its data stays).
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill docker-registry");
    }

    /// Starts it again on the same port and data, after [`Distribution::kill`].
    pub async fn restart(&mut self) {
        self.child = Distribution::spawn(&self.work.path().join("config.yml"), &self.access).await;
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Stops it.
    pub async fn stop(mut self) {
        self.child.kill().await.expect("stop docker-registry");
    }
}
