//! Webhooks: per-project policies ([`policy`]), the dispatcher turning stream events into
//! delivery jobs ([`dispatch`]), the deliveries ([`deliver`]) with their payloads ([`payload`]),
//! and the SSRF guard of outbound requests ([`ssrf`]). Delivery is at least once: a receiver that
//! is down gets the event when it is back (retries with backoff), a restart loses nothing (jobs
//! and the cursor are in the database), and the request that caused the event never waits.

pub mod deliver;
pub mod dispatch;
pub mod payload;
pub mod policy;
pub mod ssrf;
