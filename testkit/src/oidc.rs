//! An OpenID Connect provider of the test's own: the npm package `oidc-provider` (installed by
//! the test command into `REGISTRY_TEST_NODE_PATH`) running `testkit/oidc/provider.mjs` on a
//! loopback port, stopped when dropped. Its people (`alice`, `bob`, `olga`, `jose`), its client
//! and its hooks are described in the script.

/// A running provider.
pub struct OidcProvider {
    /// Its issuer URL, `http://127.0.0.1:<port>`.
    pub issuer: String,
    child: tokio::process::Child,
}

impl OidcProvider {
    /// The client the registry signs in as.
    pub const CLIENT_ID: &'static str = "registry";
    /// Its secret.
    pub const CLIENT_SECRET: &'static str = "registry-client-secret";

    /// Starts one whose client may return to `redirect_uris`; returns once it serves.
    pub async fn start(redirect_uris: &[&str]) -> OidcProvider {
        let node_path = std::env::var("REGISTRY_TEST_NODE_PATH").unwrap_or_else(|_| {
            panic!("REGISTRY_TEST_NODE_PATH is not set: run scripts/test.sh, which installs oidc-provider")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc/provider.mjs");
        let mut command = tokio::process::Command::new("node");
        command
            .arg(script)
            .env("NODE_PATH", node_path)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", OidcProvider::CLIENT_ID)
            .env("CLIENT_SECRET", OidcProvider::CLIENT_SECRET)
            .env("REDIRECT_URIS", redirect_uris.join(" "));
        let child =
            crate::spawn_until_ready(command, "oidc provider listening", "oidc-provider (scripts/test.sh installs it)")
                .await;
        OidcProvider { issuer: format!("http://127.0.0.1:{port}"), child }
    }

    /// Stops it (its port then refuses connections).
    pub async fn stop(mut self) {
        self.child.kill().await.expect("stop the OIDC provider");
    }
}
