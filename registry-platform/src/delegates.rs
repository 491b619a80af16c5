//! The registry's delegates: programs the registry itself hands a credential to act for it (a
//! scanner adapter pulling the artifact it was asked to scan). Their credentials name a subject
//! no account can have (`scanner$…`: user names have no `$`, robots' start with `robot$`), so the
//! pull policies recognise them and let them through, as Harbor does for its scanner robots.

use registry_core::event::Operator;

/// The prefix of scanner delegates' subjects.
pub const SCANNER_PREFIX: &str = "scanner$";

/// The subject of the delegate of scan `scan_id`.
pub fn scanner_subject(scan_id: &str) -> String {
    format!("{SCANNER_PREFIX}{scan_id}")
}

/// Whether `operator` is a scanner delegate.
pub fn is_scanner(operator: &Operator) -> bool {
    operator.name.starts_with(SCANNER_PREFIX)
}
