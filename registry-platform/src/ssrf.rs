//! The guard against server-side request forgery: outbound requests go only where their
//! [`Reach`] allows. Webhook deliveries (and later replication) reach public addresses unless an
//! admin setting allows private ones; scanner adapters, registered by system admins and usually
//! beside the registry, reach private and loopback addresses but never link-local ones (cloud
//! metadata endpoints). A target's host is checked when it is saved (names that are addresses)
//! and again at each request, after resolving it: the request is then sent to the checked
//! addresses only, so a name that resolves differently later cannot lead it elsewhere.

use registry_core::cache_stats::CacheStats;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

/// Where outbound requests of one purpose may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public unicast addresses only (webhooks by default).
    Public,
    /// Public, private and loopback addresses; not link-local, multicast or unspecified ones
    /// (scanner adapters).
    Internal,
    /// Anywhere (webhooks when an admin allows private targets).
    Any,
}

impl Reach {
    /// Whether a request may go to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            Reach::Any => true,
            Reach::Public => !is_private(ip),
            Reach::Internal => !is_link_local_or_unroutable(ip),
        }
    }

    /// Whether a request may go to `localhost` names.
    fn allows_local_names(self) -> bool {
        self != Reach::Public
    }
}

/// Whether `ip` is link-local (169.254/16, fe80::/10: where cloud metadata answers),
/// unspecified, broadcast or multicast.
pub fn is_link_local_or_unroutable(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || v6.is_multicast(),
    }
}

/// Whether `ip` is loopback, private, link-local, shared (CGNAT), unique-local, unspecified,
/// multicast, documentation or otherwise not a public unicast address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It is not a usable URL (the text says why).
    Invalid(String),
    /// Its host is (or resolves to) an address its reach does not allow.
    Unreachable(String),
    /// Resolving its host failed (perhaps for now).
    Resolve(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Invalid(m) | Refusal::Resolve(m) => f.write_str(m),
            Refusal::Unreachable(host) => {
                write!(f, "{host} is an address outbound requests of this kind may not reach")
            }
        }
    }
}

/// Checks a target URL when it is saved: `http` or `https`, a host, and an address (when the
/// host is one, or `localhost`) its reach allows.
pub fn check_address(address: &str, reach: Reach) -> Result<reqwest::Url, Refusal> {
    let url = reqwest::Url::parse(address)
        .map_err(|e| Refusal::Invalid(format!("address {address:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Invalid(format!("address {address:?} must be an http:// or https:// URL")));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Refusal::Invalid(format!("address {address:?} has no host")))?;
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    let local_name = host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost");
    if (local_name && !reach.allows_local_names()) || literal.is_some_and(|ip| !reach.allows(ip)) {
        return Err(Refusal::Unreachable(host.to_owned()));
    }
    Ok(url)
}

/// The addresses to send a request for `url` to: its host resolved, each checked against
/// `reach`.
pub async fn resolve(url: &reqwest::Url, reach: Reach) -> Result<Vec<SocketAddr>, Refusal> {
    let host = url
        .host_str()
        .ok_or_else(|| Refusal::Invalid("the address has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Refusal::Resolve(format!("resolving {host}: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(Refusal::Resolve(format!("{host} resolves to no address")));
    }
    if found.iter().any(|a| !reach.allows(a.ip())) {
        return Err(Refusal::Unreachable(host.to_owned()));
    }
    Ok(found)
}

/// How a client for one checked host is set up, beyond the addresses it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientOptions {
    /// The whole request's time limit.
    pub timeout: Duration,
    /// Whether any certificate is accepted (the target's "skip certificate verification").
    pub insecure: bool,
    /// A PEM certificate authority trusted beside the system's.
    pub ca_pem: Option<String>,
}

/// Clients kept for reuse (see [`pinned_client`]).
const CLIENTS_KEPT: usize = 256;

type ClientKey = (String, Vec<SocketAddr>, ClientOptions);

static CLIENTS: LazyLock<quick_cache::sync::Cache<ClientKey, reqwest::Client>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CLIENTS_KEPT));

/// The figures of the clients kept (see [`pinned_client`]), for metrics.
pub fn cache_stats() -> CacheStats {
    CacheStats::counted("http_clients", CLIENTS.hits(), CLIENTS.misses(), CLIENTS.len())
}

/// An HTTP client that sends `url`'s requests to `addrs` only (the addresses [`resolve`]
/// checked) and follows no redirect. Clients are shared process-wide by host, addresses and
/// options: building one reads the system's trusted certificates (about a millisecond of CPU
/// each time, which a webhook per push made a tenth of the server's work), and a shared one
/// keeps its connections open for the next delivery to the same receiver. A name that resolves
/// elsewhere later gets a client of its own, so reuse never widens where a request can go.
pub fn pinned_client(
    url: &reqwest::Url,
    addrs: &[SocketAddr],
    options: &ClientOptions,
) -> Result<reqwest::Client, String> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let key = (host, addrs.to_vec(), options.clone());
    if let Some(client) = CLIENTS.get(&key) {
        return Ok(client);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.timeout)
        .connect_timeout(options.timeout.min(CONNECT_TIMEOUT))
        .tls_danger_accept_invalid_certs(options.insecure)
        .resolve_to_addrs(&key.0, addrs);
    if let Some(pem) = &options.ca_pem {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("its CA certificate: {e}"))?;
        builder = builder.add_root_certificate(ca);
    }
    let client = builder.build().map_err(|e| format!("an HTTP client for {}: {}", key.0, root_cause(&e)))?;
    CLIENTS.insert(key, client.clone());
    Ok(client)
}

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The innermost cause of an error (what a person can act on: "connection refused", not
/// "error sending request").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP/1.1 server on loopback answering 200 to every request, keeping connections open;
    /// the connections it accepted so far.
    async fn counting_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if n == 0 || s.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn pinned_clients_are_shared_and_keep_their_connections() {
        let (addr, accepted) = counting_server().await;
        let url = check_address(&format!("http://{addr}/hook"), Reach::Any).expect("url");
        let addrs = resolve(&url, Reach::Any).await.expect("resolve");
        let options = ClientOptions { timeout: Duration::from_secs(5), insecure: false, ca_pem: None };
        for _ in 0..3 {
            let client = pinned_client(&url, &addrs, &options).expect("client");
            let status = client.post(url.clone()).body("{}").send().await.expect("send").status();
            assert_eq!(status, 200);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "three requests, one connection");
        // Other options: a client of its own.
        let other = ClientOptions { insecure: true, ..options };
        pinned_client(&url, &addrs, &other).expect("client").get(url.clone()).send().await.expect("send");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn private_and_public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().expect("ip")), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn saved_addresses_are_checked_by_their_reach() {
        assert!(check_address("https://hooks.example.com/in", Reach::Public).is_ok());
        for refused in ["http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/", "http://169.254.169.254/latest"]
        {
            let e = check_address(refused, Reach::Public).expect_err(refused);
            assert!(matches!(e, Refusal::Unreachable(_)), "{e}");
        }
        assert!(check_address("http://127.0.0.1:8080/", Reach::Any).is_ok());
        for internal in ["http://127.0.0.1:8080/", "http://localhost:8080/", "http://10.0.0.7/", "http://[::1]/"] {
            assert!(check_address(internal, Reach::Internal).is_ok(), "{internal}");
        }
        for metadata in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(matches!(check_address(metadata, Reach::Internal), Err(Refusal::Unreachable(_))), "{metadata}");
        }
        assert!(check_address("ftp://example.com/", Reach::Any).expect_err("scheme").to_string().contains("http"));
        assert!(check_address("not a url", Reach::Any).is_err());
    }
}
