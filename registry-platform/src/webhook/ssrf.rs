//! The guard against server-side request forgery: outbound requests (webhook deliveries, later
//! replication) go only to public addresses unless an admin setting allows private ones. A
//! target's host is checked when the policy is saved (names that are addresses) and again at each
//! delivery, after resolving it: the request is then sent to the checked addresses only, so a name
//! that resolves differently later cannot lead it inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// Checks a target URL when it is saved: `http` or `https`, a host, and (unless allowed) not a
/// private address or `localhost`.
pub fn check_address(address: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(address).map_err(|e| format!("address {address:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("address {address:?} must be an http:// or https:// URL"));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("address {address:?} has no host"))?;
    if allow_private {
        return Ok(url);
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    let local_name = host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost");
    if local_name || literal.is_some_and(is_private) {
        return Err(refused(host));
    }
    Ok(url)
}

fn refused(host: &str) -> String {
    format!(
        "{host} is a private or loopback address; webhooks to private addresses are off (a system admin may allow \
         them with the configuration webhook_allow_private_targets)"
    )
}

/// The addresses to send a request for `url` to: its host resolved, each checked (unless
/// private ones are allowed).
pub async fn resolve(url: &reqwest::Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or("the address has no host")?.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let found: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("resolving {host}: {e}"))?.collect();
    if found.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !allow_private && found.iter().any(|a| is_private(a.ip())) {
        return Err(refused(host));
    }
    Ok(found)
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
    fn saved_addresses_are_checked() {
        assert!(check_address("https://hooks.example.com/in", false).is_ok());
        for refused in ["http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/", "http://169.254.169.254/latest"]
        {
            let e = check_address(refused, false).expect_err(refused);
            assert!(e.contains("webhook_allow_private_targets"), "{e}");
        }
        assert!(check_address("http://127.0.0.1:8080/", true).is_ok());
        assert!(check_address("ftp://example.com/", true).expect_err("scheme").contains("http"));
        assert!(check_address("not a url", true).is_err());
    }
}
