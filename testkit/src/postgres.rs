//! A PostgreSQL server of the test's own (Debian's binaries, run as the `postgres` user), for
//! tests that stop and restart the database under load without touching the machine's server.

use std::path::PathBuf;
use std::time::Duration;

/// A private PostgreSQL server with trust authentication on a loopback port.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Extra server options (`-c ssl=on …`).
    options: String,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's PostgreSQL in /usr/lib/postgresql (installed by scripts/test.sh)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

impl PrivatePostgres {
    /// Creates a cluster in a fresh directory and starts it.
    pub async fn start() -> PrivatePostgres {
        Self::start_with(None).await
    }

    /// The same, serving TLS with this certificate chain and key (PEM) besides plain TCP.
    pub async fn start_with_tls(cert_pem: &str, key_pem: &str) -> PrivatePostgres {
        Self::start_with(Some((cert_pem, key_pem))).await
    }

    async fn start_with(tls: Option<(&str, &str)>) -> PrivatePostgres {
        let port = crate::unused_port();
        let dir = std::env::temp_dir().join(format!("registry-pg-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("data dir");
        let mut pg = PrivatePostgres { port, dir, bin: bin_dir(), options: String::new() };
        if let Some((cert, key)) = tls {
            let (cert_path, key_path) = (pg.dir.join("server.crt"), pg.dir.join("server.key"));
            std::fs::write(&cert_path, cert).expect("server.crt");
            std::fs::write(&key_path, key).expect("server.key");
            std::fs::set_permissions(&key_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("mode");
            for path in [&cert_path, &key_path] {
                let owned = std::process::Command::new("chown").arg("postgres:postgres").arg(path).status();
                assert!(owned.expect("chown").success());
            }
            pg.options =
                format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert_path.display(), key_path.display());
        }
        let owned = std::process::Command::new("chown").arg("postgres:postgres").arg(&pg.dir).status().expect("chown");
        assert!(owned.success(), "chown the data directory to postgres");
        let data = pg.dir.join("data");
        let initdb = pg.bin.join("initdb");
        pg.as_postgres(&[
            initdb.to_str().expect("utf8"),
            "-D",
            data.to_str().expect("utf8"),
            "-A",
            "trust",
            "-U",
            "postgres",
        ])
        .await;
        pg.start_server().await;
        pg
    }

    /// Runs a command as the `postgres` user (initdb and the server refuse to run as root).
    async fn as_postgres(&self, args: &[&str]) {
        let out = tokio::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
            .await
            .expect("run a PostgreSQL command");
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start_server(&self) {
        let ctl = self.bin.join("pg_ctl");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200{}",
            self.port,
            self.dir.display(),
            self.options
        );
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        self.as_postgres(&[
            ctl.to_str().expect("utf8"),
            "-D",
            data.to_str().expect("utf8"),
            "-l",
            log.to_str().expect("utf8"),
            "-o",
            &options,
            "-w",
            "-t",
            "30",
            "start",
        ])
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "PostgreSQL did not listen within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server at once (`immediate`: as a crash, connections cut).
    pub async fn stop_server(&self) {
        let ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        self.as_postgres(&[
            ctl.to_str().expect("utf8"),
            "-D",
            data.to_str().expect("utf8"),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .await;
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server and removes its data.
    pub async fn stop(self) {
        self.stop_server().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
