//! Vulnerability reports in Harbor's native format (`HarborVulnerabilityReport`): checked when
//! they arrive (a report that is not one fails its scan, saying why), summed up in a
//! [`Summary`] (Harbor's `VulnerabilitySummary`: total, fixable, counts per severity, the worst
//! severity) that listings and the pull policy read without the report itself.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::adapter::ScannerInfo;

/// Harbor's severities, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub enum Severity {
    /// No vulnerability.
    #[default]
    None,
    /// Not yet rated.
    Unknown,
    /// Theoretical.
    Negligible,
    /// Hard to exploit.
    Low,
    /// Exploitable for many.
    Medium,
    /// Serious.
    High,
    /// World-burning.
    Critical,
}

impl Severity {
    /// Every severity, least first.
    pub const ALL: [Severity; 7] = [
        Severity::None,
        Severity::Unknown,
        Severity::Negligible,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Its name as reports spell it (`High`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "None",
            Severity::Unknown => "Unknown",
            Severity::Negligible => "Negligible",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    /// Parses a name, in any case.
    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// One vulnerability as the registry reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its identifier (`CVE-2024-1234`).
    pub id: String,
    /// Its severity.
    pub severity: Severity,
    /// Whether a fixed version exists.
    pub fixable: bool,
}

/// A checked report: its findings, and the report itself as the API shows it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
    /// The scanner that made it.
    pub scanner: ScannerInfo,
    /// The report (JSON), as received.
    pub document: Value,
}

/// Checks the bytes an adapter answered with: Harbor's vulnerability report, or why not.
pub fn parse(bytes: &[u8]) -> Result<Report, String> {
    let document: Value = serde_json::from_slice(bytes).map_err(|e| format!("the report is not JSON ({e})"))?;
    let Some(object) = document.as_object() else {
        return Err("the report is not a JSON object".into());
    };
    let vulnerabilities = match object.get("vulnerabilities") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("the report's vulnerabilities is not an array".into()),
    };
    let mut findings = Vec::with_capacity(vulnerabilities.len());
    for (i, v) in vulnerabilities.iter().enumerate() {
        let id =
            v["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| format!("vulnerabilities[{i}] has no id"))?;
        let severity = match v.get("severity") {
            None | Some(Value::Null) => Severity::Unknown,
            Some(Value::String(s)) => Severity::parse(s)
                .ok_or_else(|| format!("vulnerabilities[{i}] ({id}) has an unknown severity {s:?}"))?,
            Some(_) => return Err(format!("vulnerabilities[{i}] ({id}) has a severity that is not text")),
        };
        let fixable = v["fix_version"].as_str().is_some_and(|f| !f.is_empty());
        findings.push(Finding { id: id.to_owned(), severity, fixable });
    }
    let scanner = serde_json::from_value(object.get("scanner").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    Ok(Report { findings, scanner, document })
}

/// Counts of a report (Harbor's `VulnerabilitySummary` with the overall severity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Summary {
    /// Vulnerabilities found.
    pub total: u64,
    /// Those with a fix.
    pub fixable: u64,
    /// Per severity (only those found).
    pub summary: BTreeMap<String, u64>,
    /// The worst severity found (`None` when nothing).
    pub severity: String,
    /// The scanner.
    pub scanner: ScannerInfo,
    /// Why the scan failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The SBOM accessory an SBOM generation stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom_digest: Option<String>,
}

impl Summary {
    /// The counts of `findings`, leaving out those in `allowed`.
    pub fn of(findings: &[Finding], scanner: &ScannerInfo, allowed: &HashSet<String>) -> Summary {
        let mut out = Summary { scanner: scanner.clone(), ..Summary::default() };
        let mut worst = Severity::None;
        for f in findings.iter().filter(|f| !allowed.contains(&f.id)) {
            out.total += 1;
            out.fixable += u64::from(f.fixable);
            *out.summary.entry(f.severity.as_str().to_owned()).or_default() += 1;
            worst = worst.max(f.severity);
        }
        out.severity = worst.as_str().to_owned();
        out
    }

    /// How many findings are at `threshold` or worse.
    pub fn at_least(&self, threshold: Severity) -> u64 {
        self.summary
            .iter()
            .filter(|(name, _)| Severity::parse(name).is_some_and(|s| s >= threshold))
            .map(|(_, n)| *n)
            .sum()
    }

    /// The counts at `threshold` or worse, worst first (`2 Critical, 1 High`).
    pub fn breakdown(&self, threshold: Severity) -> String {
        let mut parts: Vec<(Severity, u64)> = self
            .summary
            .iter()
            .filter_map(|(name, n)| Severity::parse(name).filter(|s| *s >= threshold).map(|s| (s, *n)))
            .collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.0));
        parts.iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect::<Vec<_>>().join(", ")
    }

    /// Harbor's `VulnerabilitySummary` JSON.
    pub fn vulnerability_summary(&self) -> Value {
        json!({"total": self.total, "fixable": self.fixable, "summary": self.summary})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_checked_and_summed_up() {
        let report = json!({
            "generated_at": "2026-01-01T00:00:00Z",
            "scanner": {"name": "Fixture", "vendor": "tests", "version": "1"},
            "severity": "Critical",
            "vulnerabilities": [
                {"id": "CVE-1", "package": "a", "version": "1", "fix_version": "2", "severity": "Critical"},
                {"id": "CVE-2", "package": "b", "version": "1", "severity": "high"},
                {"id": "CVE-3", "package": "c", "version": "1", "fix_version": "", "severity": "Low"},
                {"id": "CVE-4", "package": "d", "version": "1"},
            ],
        });
        let parsed = parse(report.to_string().as_bytes()).expect("a report");
        assert_eq!(parsed.scanner.name, "Fixture");
        let s = Summary::of(&parsed.findings, &parsed.scanner, &HashSet::new());
        assert_eq!((s.total, s.fixable, s.severity.as_str()), (4, 1, "Critical"));
        assert_eq!(s.at_least(Severity::High), 2);
        assert_eq!(s.breakdown(Severity::Low), "1 Critical, 1 High, 1 Low");
        let allowed: HashSet<String> = ["CVE-1".to_owned()].into();
        let s = Summary::of(&parsed.findings, &parsed.scanner, &allowed);
        assert_eq!((s.total, s.severity.as_str(), s.at_least(Severity::Critical)), (3, "High", 0));
        let clean = parse(br#"{"vulnerabilities": []}"#).expect("clean");
        assert_eq!(Summary::of(&clean.findings, &clean.scanner, &HashSet::new()).severity, "None");

        for (bad, why) in [
            (&b"not json"[..], "not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"vulnerabilities": 3}"#, "not an array"),
            (br#"{"vulnerabilities": [{"severity": "High"}]}"#, "no id"),
            (br#"{"vulnerabilities": [{"id": "X", "severity": "Apocalyptic"}]}"#, "unknown severity"),
        ] {
            assert!(parse(bad).expect_err("refused").contains(why), "{why}");
        }
    }
}
