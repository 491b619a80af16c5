//! Vulnerability scanning through scanner adapters, Harbor's Pluggable Scanner API (v1.1, and
//! v1.2's capability types): scanners registered by URL ([`registration`]), the adapter client
//! ([`adapter`]), reports and their summaries ([`report`]), CVE allowlists ([`allowlist`]), scans
//! as jobs on request, on push and for everything on a schedule ([`jobs`]), and the pull policy
//! that keeps vulnerable artifacts from being pulled ([`prevention`]); SBOMs made by scanners and
//! kept as accessories ([`sbom`]).
//!
//! A scan hands the adapter the registry's URL and a delegated credential ([`crate::delegates`])
//! that pulls exactly the scanned repository and nothing else, for as long as the scan may take;
//! adapters that ask for bearer tokens (metadata property
//! `harbor.scanner-adapter/registry-authorization-type: Bearer`) get an access token, the others
//! Basic credentials they exchange at the token endpoint, as Harbor hands out robot accounts.

pub mod adapter;
pub mod allowlist;
pub mod cache;
pub mod jobs;
pub mod prevention;
pub mod registration;
pub mod report;
pub mod sbom;

/// The report format the registry asks for first (Harbor's native report, v1.1).
pub const VULNERABILITY_REPORT: &str = "application/vnd.security.vulnerability.report; version=1.1";
/// The older name of the same format, which v1.0 adapters produce.
pub const HARBOR_REPORT_V1: &str = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0";
/// The report formats the registry reads, preferred first.
pub const REPORT_TYPES: [&str; 2] = [VULNERABILITY_REPORT, HARBOR_REPORT_V1];
