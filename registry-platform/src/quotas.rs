//! Quotas as Harbor's API and settings speak of them: a limit of `-1` for none, a system default
//! for new projects (`storage_per_project`), and the warning percentage. The usage itself is
//! kept by the stores (`registry_storage::quota`).

use crate::selectors::Invalid;

/// The largest limit accepted: 1 EiB (anything above is a mistake, not a plan).
pub const MAX_LIMIT: i64 = 1 << 60;

/// A Harbor limit (`-1`: none; else bytes, at least 1) as the stores keep it, or why not.
pub fn limit_of(harbor: i64) -> Result<Option<u64>, Invalid> {
    match harbor {
        -1 => Ok(None),
        n if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n as u64)),
        n => Err(Invalid(format!("storage limit {n} is out of range: -1 for none, or 1 to {MAX_LIMIT} bytes (1 EiB)"))),
    }
}

/// A limit in Harbor's form (`-1`: none).
pub fn harbor_limit(limit: Option<u64>) -> i64 {
    limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX))
}

/// A warning percentage, or why not (1 to 100).
pub fn warn_percent_of(value: i64) -> Result<u8, Invalid> {
    u8::try_from(value)
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| Invalid(format!("quota warning percentage {value} is out of range: 1 to 100")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit_of(-1).expect("none"), None);
        assert_eq!(limit_of(1).expect("one byte"), Some(1));
        for bad in [0, -2, MAX_LIMIT + 1, i64::MIN] {
            assert!(limit_of(bad).expect_err("bad").0.contains("-1 for none"), "{bad}");
        }
        assert_eq!(harbor_limit(None), -1);
        assert!(warn_percent_of(0).is_err() && warn_percent_of(101).is_err());
        assert_eq!(warn_percent_of(85).expect("ok"), 85);
    }
}
