//! # registry-platform
//!
//! What the registry does on its own schedule rather than in answer to a request: job kinds of
//! the shared queue in the metadata store ([`registry_storage::JobRunner`]) and consumers of the
//! event stream (by cursor), all over the engine's public API. No HTTP server types live here:
//! `registry-http` translates requests into calls on these pieces, and the binary, embedders and
//! the in-process test registry assemble them through [`Platform`].
//!
//! | piece | what it is | kind |
//! |---|---|---|
//! | [`gc`] | garbage collection runs: started on request or by a schedule, one at a time across replicas | job `gc` |
//! | [`housekeeping`] | trims the event stream and finished jobs to their retention, hourly | job `housekeeping` |
//! | [`webhook`] (feature `webhooks`) | per-project policies, the dispatcher turning events into deliveries, the deliveries with the SSRF guard | consumer `webhooks`, job `webhook` |
//! | [`syslog`] | audit records forwarded to a syslog endpoint | consumer `syslog` |
//! | [`settings`] | the run-time settings of `/configurations`, shared by replicas | document |
//! | [`quotas`] | limits in Harbor's terms, the default for new projects, the warning threshold | settings |
//! | [`immutability`] | tag immutability rules, and the engine's source of protections | documents |
//! | [`labels`] | global and project labels | documents |
//! | [`selectors`] | Harbor's doublestar selectors, checked | |
//! | [`retention`] | tag retention policies and their runs (dry or real), on request or by cron | job `retention` |
//! | [`additions`] | what an artifact shows besides its manifest: build history, a chart's README, values, dependencies; cached by digest | artifacts API |
//! | [`chart_repository`] | a classic Helm repository (`index.yaml`, archives) generated from a project's OCI charts | `/chartrepo` |
//! | [`artifacts`] | what each manifest of a repository is: an artifact, a child, an accessory | |
//! | [`trust`] | content trust: only signed artifacts pulled, cosign signatures verified under trusted keys | pull policy |
//! | `scan` (feature `scanning`) | scanner registrations, the Pluggable Scanner API client, scans on request, on push and on a schedule, reports, CVE allowlists, vulnerability prevention | jobs `scan`, `scan_all`; consumer `auto_scan`; pull policy |
//! | [`delegates`] | the subjects of the registry's own delegates (a scanner pulling what it scans) | |
//! | `remote` (feature `replication`) | registry endpoints and their client | |
//! | `proxy` (feature `replication`) | proxy-cache projects: misses fetched upstream, streamed and cached | |
//! | `replication` (feature `replication`) | replication policies, copies and executions | `replication` |
//! | `ssrf` (features `webhooks`, `scanning`, `replication`) | where outbound requests may go | |
//! | [`cron`] | cron schedules (six fields, Harbor's) | |
//! | [`consumer`] | the loop every stream consumer runs in | |
//! | [`platform`] | [`Platform`]: all of the above assembled for one process, and its [`Running`] handle | |
//! | [`audit_record`] | an event as the audit log shows it | |
//!
//! Every piece works the same on one process with the embedded store and on replicas sharing
//! PostgreSQL: work is claimed from the queue with leases, periodic work is enqueued once per
//! period by key, and consumers move their cursors only after their work is safely enqueued.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `webhooks` | on | webhook policies and delivery (an HTTP client on rustls) |
//! | `scanning` | on | vulnerability scanning through scanner adapters (the same client) |
//! | `replication` | on | registry endpoints and replication (the same client) |
//! | `notation` | on | notation signatures verified against X.509 roots (rustls-webpki) |
//! | `ldap` | on | signing in through an LDAP directory (ldap3 on rustls) |
//! | `oidc` | on | signing in through an OpenID Connect provider (openidconnect over reqwest on rustls) |

pub mod additions;
pub mod artifacts;
pub mod audit_record;
pub mod chart_repository;
pub mod consumer;
pub mod cron;
pub mod delegates;
#[cfg(any(feature = "scanning", feature = "replication"))]
pub mod documents;
pub mod gc;
pub mod housekeeping;
pub mod immutability;
pub mod labels;
#[cfg(feature = "ldap")]
pub mod ldap;
#[cfg(feature = "notation")]
pub mod notation;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod platform;
#[cfg(feature = "replication")]
pub mod proxy;
pub mod quotas;
#[cfg(feature = "replication")]
pub mod remote;
#[cfg(feature = "replication")]
pub mod replication;
pub mod retention;
#[cfg(feature = "scanning")]
pub mod scan;
pub mod selectors;
pub mod settings;
pub mod signin;
#[cfg(any(feature = "webhooks", feature = "scanning", feature = "replication"))]
pub mod ssrf;
pub mod syslog;
pub mod trust;
#[cfg(feature = "webhooks")]
pub mod webhook;

pub use gc::{GarbageCollector, GcObserver};
pub use platform::{Platform, PlatformOptions, Running};

/// A new random identifier in UUID v4 form (scanner registrations, replication executions).
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
