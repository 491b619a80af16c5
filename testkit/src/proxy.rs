//! nginx as the round-robin load balancer in front of replicas (no stickiness), run in the
//! foreground by the test and stopped with it (see TESTING.md).

use std::time::Duration;

/// A running nginx.
pub struct Proxy {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

/// A port for the proxy, chosen before the replicas start (their token realm names it).
pub fn reserve_port() -> u16 {
    crate::unused_port()
}

impl Proxy {
    /// Starts nginx on `port`, balancing over `upstreams` (`host:port`) round-robin. A request
    /// that cannot reach a replica (connection refused or reset before the response) goes to the
    /// next; nginx does that for idempotent methods only, as in production.
    pub async fn start(port: u16, upstreams: &[String]) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let servers: String = upstreams.iter().map(|u| format!("    server {u} max_fails=0;\n")).collect();
        let conf = format!(
            "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  log_format upstream '$request_method $uri $status $upstream_addr';\n\
               access_log {d}/access.log upstream;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream replicas {{\n{servers}    keepalive 32;\n  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n\
                 proxy_request_buffering off;\n    proxy_buffering off;\n    proxy_buffer_size 256k;\n    proxy_buffers 4 256k;\n    proxy_busy_buffers_size 256k;\n\
                 client_body_buffer_size 256k;\n    proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\";\n    proxy_set_header Host $http_host;\n\
                 proxy_read_timeout 120s;\n    proxy_next_upstream error timeout;\n\
                 location / {{ proxy_pass http://replicas; }}\n  }}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        let child = tokio::process::Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(dir.path().join("stderr.log"))
                    .map(std::process::Stdio::from)
                    .unwrap_or_else(|_| std::process::Stdio::null()),
            )
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx (installed by scripts/test.sh)");
        let mut proxy = Proxy { addr: format!("127.0.0.1:{port}"), child, dir };
        proxy.wait_until_listening().await;
        proxy
    }

    async fn wait_until_listening(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = ["error.log", "stderr.log"]
                    .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
                    .join("\n");
                panic!("nginx exited ({status}): {log}");
            }
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "nginx did not listen within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The access log so far: one line per request, `METHOD URI STATUS UPSTREAM[, UPSTREAM…]`
    /// (several upstreams when nginx retried on another).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Stops nginx: SIGTERM to the master, which stops its worker, then waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = self.child.wait().await;
    }
}
