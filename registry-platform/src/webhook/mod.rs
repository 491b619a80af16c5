//! Webhooks: per-project policies ([`policy`]), the dispatcher turning stream events into
//! delivery jobs ([`dispatch`]), the deliveries ([`deliver`]) with their payloads ([`payload`]),
//! and the SSRF guard of outbound requests ([`crate::ssrf`]). Delivery is at least once: a receiver that
//! is down gets the event when it is back (retries with backoff), a restart loses nothing (jobs
//! and the cursor are in the database), and the request that caused the event never waits.

pub mod deliver;
pub mod dispatch;
pub mod payload;
pub mod policy;

/// The reach of webhook requests: public addresses, or anywhere when an admin allows private
/// targets.
fn reach(allow_private: bool) -> crate::ssrf::Reach {
    if allow_private { crate::ssrf::Reach::Any } else { crate::ssrf::Reach::Public }
}

/// What a refused webhook target is told: which setting would allow it.
fn refusal_text(refusal: &crate::ssrf::Refusal) -> String {
    match refusal {
        crate::ssrf::Refusal::Unreachable(host) => format!(
            "{host} is a private or loopback address; webhooks to private addresses are off (a system admin may \
             allow them with the configuration webhook_allow_private_targets)"
        ),
        other => other.to_string(),
    }
}
