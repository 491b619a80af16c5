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
        let port = crate::unused_port();
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

/// A page a [`Browser`] ended on.
pub struct Page {
    /// Its URL.
    pub url: String,
    /// Its status.
    pub status: reqwest::StatusCode,
    /// Its body.
    pub body: String,
    /// The `Location`s followed to reach it, in order.
    pub redirects: Vec<String>,
}

/// A browser enough for the sign-in flow: follows redirects itself and keeps cookies (by name,
/// for every host of the test: the registry's and the provider's names do not collide).
#[derive(Default)]
pub struct Browser {
    jar: std::collections::BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Browser {
        Browser::default()
    }

    /// The value of the cookie `name`, if it holds one.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    /// The `Cookie` header the browser sends.
    pub fn cookie_header(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
    }

    /// Sends one request (no redirects followed), keeping the cookies it sets.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request.header("cookie", self.cookie_header()).send().await.expect("browser request");
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().expect("cookie");
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        response
    }

    /// Follows `response`'s redirects to the page they end on.
    async fn follow(&mut self, mut response: reqwest::Response, mut url: String) -> Page {
        let mut redirects = Vec::new();
        while response.status().is_redirection() {
            let location = response.headers()["location"].to_str().expect("location").to_owned();
            url = reqwest::Url::parse(&url).expect("url").join(&location).expect("location url").to_string();
            redirects.push(location);
            assert!(redirects.len() < 20, "too many redirects: {redirects:?}");
            response = self.send(Browser::client().get(&url)).await;
        }
        let status = response.status();
        Page { url, status, body: response.text().await.expect("body"), redirects }
    }

    /// Opens `url` and follows its redirects.
    pub async fn open(&mut self, url: &str) -> Page {
        let response = self.send(Browser::client().get(url)).await;
        self.follow(response, url.to_owned()).await
    }

    /// Submits a form to `url` and follows the redirects.
    pub async fn submit(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", encoded(k), encoded(v))).collect();
        let request = Browser::client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        let response = self.send(request).await;
        self.follow(response, url.to_owned()).await
    }
}

impl OidcProvider {
    /// Signs `person` in at the provider, from its login page (where a sign-in sent `browser`):
    /// its development form filled in (any password), its consent given if it asks; the page the
    /// provider's redirects end on.
    pub async fn sign_in(&self, browser: &mut Browser, at: Page, person: &str) -> Page {
        assert!(at.url.starts_with(&self.issuer), "not at the provider: {} ({})", at.url, at.body);
        assert!(at.body.contains("name=\"login\""), "not its login page: {}", at.body);
        let mut page = browser.submit(&at.url, &[("prompt", "login"), ("login", person), ("password", "any")]).await;
        if page.url.starts_with(&self.issuer) && page.body.contains("value=\"consent\"") {
            let url = page.url.clone();
            page = browser.submit(&url, &[("prompt", "consent")]).await;
        }
        page
    }

    /// Takes `person` away: their refresh tokens fail from now on.
    pub async fn remove(&self, person: &str) {
        let answer = reqwest::Client::new().post(format!("{}/test/remove/{person}", self.issuer)).send().await;
        assert_eq!(answer.expect("remove").status(), reqwest::StatusCode::NO_CONTENT);
    }

    /// Sets the groups `person` belongs to.
    pub async fn set_groups(&self, person: &str, groups: &[&str]) {
        let answer = reqwest::Client::new()
            .post(format!("{}/test/groups/{person}", self.issuer))
            .body(serde_json::to_string(groups).expect("json"))
            .send()
            .await;
        assert_eq!(answer.expect("groups").status(), reqwest::StatusCode::NO_CONTENT);
    }
}

/// `text` percent-encoded for a form.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
