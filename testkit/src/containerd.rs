//! containerd (Debian's `containerd`) as a client: a daemon of the test's own (its root, state and
//! socket in a temporary directory, without the CRI plugin), driven with `ctr`; stopped when
//! dropped. Containers cannot run here, but content can be fetched: `ctr content fetch` pulls an
//! image's manifest and blobs through the same resolver (and `hosts.toml` mirrors) as a pull.

/// A running containerd.
pub struct Containerd {
    child: tokio::process::Child,
    work: tempfile::TempDir,
}

impl Containerd {
    /// Starts one; returns once it serves.
    pub async fn start() -> Containerd {
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {:?}\n",
                dir.join("root"),
                dir.join("state"),
                dir.join("containerd.sock")
            ),
        )
        .expect("config");
        let mut command = tokio::process::Command::new("containerd");
        command.args(["--config", config.to_str().expect("utf8")]);
        let child = crate::spawn_until_ready(
            command,
            "containerd successfully booted",
            "containerd (apt-get install -y containerd)",
        )
        .await;
        Containerd { child, work }
    }

    /// A directory for `hosts.toml` files (`<dir>/<host>/hosts.toml`), for `--hosts-dir`.
    pub fn hosts_dir(&self) -> std::path::PathBuf {
        self.work.path().join("hosts")
    }

    /// Writes the `hosts.toml` of `host`.
    pub fn set_hosts(&self, host: &str, text: &str) {
        let dir = self.hosts_dir().join(host);
        std::fs::create_dir_all(&dir).expect("hosts dir");
        std::fs::write(dir.join("hosts.toml"), text).expect("hosts.toml");
    }

    /// Runs `ctr` against this daemon with `args`: its exit status and output (both streams).
    pub async fn ctr(&self, args: &[&str]) -> (bool, String) {
        let socket = self.work.path().join("containerd.sock");
        let out = tokio::process::Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(args)
            .output()
            .await
            .expect("ctr runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Stops it.
    pub async fn stop(mut self) {
        self.child.kill().await.expect("stop containerd");
    }
}
