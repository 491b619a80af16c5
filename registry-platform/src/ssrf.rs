//! The guard against server-side request forgery: outbound requests go only where their
//! [`Reach`] allows. Webhook deliveries (and later replication) reach public addresses unless an
//! admin setting allows private ones; scanner adapters, registered by system admins and usually
//! beside the registry, reach private and loopback addresses but never link-local ones (cloud
//! metadata endpoints). A target's host is checked when it is saved (names that are addresses)
//! and again at each request, after resolving it: the request is then sent to the checked
//! addresses only, so a name that resolves differently later cannot lead it elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
