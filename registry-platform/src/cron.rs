//! Cron schedules as Harbor writes them: six fields (`second minute hour day-of-month month
//! day-of-week`, e.g. `0 0 0 * * *` daily at midnight), or the usual five (seconds then 0), or
//! `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. A field is `*` (or `?`), a number, a
//! range `a-b`, a step `*/n` or `a-b/n`, or a list of these; months and days of the week also by
//! name (`JAN`, `MON`; Sunday is 0 or 7). When both the day of the month and the day of the week
//! are restricted, a day matching either fires (as in Vixie cron). Times are UTC.

use std::fmt;

/// A parsed schedule.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    /// Allowed values of each field, as bits: second, minute, hour, day of month, month, weekday.
    fields: [u64; 6],
    /// Whether day of month and day of week were `*`.
    any_dom: bool,
    any_dow: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

/// The fields' ranges and names.
const RANGES: [(u32, u32); 6] = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
const FIELD_NAMES: [&str; 6] = ["second", "minute", "hour", "day of month", "month", "day of week"];
const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// Parses a schedule, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@hourly" => "0 0 * * * *".to_owned(),
            "@daily" | "@midnight" => "0 0 0 * * *".to_owned(),
            "@weekly" => "0 0 0 * * 0".to_owned(),
            "@monthly" => "0 0 0 1 * *".to_owned(),
            "@yearly" | "@annually" => "0 0 0 1 1 *".to_owned(),
            _ => trimmed.to_owned(),
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let parts: Vec<&str> = match parts.len() {
            6 => parts,
            5 => std::iter::once("0").chain(parts).collect(),
            n => {
                return Err(format!(
                    "cron {text:?} has {n} fields; use six (second minute hour day month weekday, e.g. \"0 0 0 * * *\") or five"
                ));
            }
        };
        let mut fields = [0u64; 6];
        for (i, part) in parts.iter().enumerate() {
            fields[i] = field(part, i).map_err(|e| format!("cron {text:?}: {} {part:?}: {e}", FIELD_NAMES[i]))?;
        }
        // Sunday is 0 and 7.
        if fields[5] & (1 << 7) != 0 {
            fields[5] |= 1;
        }
        let star = |p: &str| p == "*" || p == "?";
        Ok(Cron { text: trimmed.to_owned(), fields, any_dom: star(parts[3]), any_dow: star(parts[5]) })
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn has(&self, field: usize, value: u32) -> bool {
        self.fields[field] & (1u64 << value) != 0
    }

    fn day_matches(&self, day: i64) -> bool {
        let (_, month, dom) = civil_from_days(day);
        if !self.has(4, month) {
            return false;
        }
        let dow = (day + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let (dom_ok, dow_ok) = (self.has(3, dom), self.has(5, dow));
        match (self.any_dom, self.any_dow) {
            (true, true) => true,
            (false, true) => dom_ok,
            (true, false) => dow_ok,
            (false, false) => dom_ok || dow_ok,
        }
    }

    /// The first time it fires strictly after `after` (seconds since the Unix epoch), within
    /// the next eight years; `None` if it never does (February 30th).
    pub fn next_after(&self, after: u64) -> Option<u64> {
        let start = after + 1;
        let first_day = (start / 86_400) as i64;
        for day in first_day..first_day + 8 * 366 {
            if !self.day_matches(day) {
                continue;
            }
            let base = day as u64 * 86_400;
            for hour in (0..24).filter(|h| self.has(2, *h)) {
                for minute in (0..60).filter(|m| self.has(1, *m)) {
                    let at_minute = base + u64::from(hour) * 3600 + u64::from(minute) * 60;
                    if at_minute + 59 < start {
                        continue;
                    }
                    if let Some(second) =
                        (0..60).filter(|s| self.has(0, *s)).find(|s| at_minute + u64::from(*s) >= start)
                    {
                        return Some(at_minute + u64::from(second));
                    }
                }
            }
        }
        None
    }
}

/// The allowed values of one field as bits.
fn field(text: &str, index: usize) -> Result<u64, String> {
    let (lo, hi) = RANGES[index];
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("step {s:?} is not a number"))?;
                if step == 0 {
                    return Err("a step of 0".into());
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (from, to) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, index)?, value(b, index)?)
        } else {
            let v = value(range, index)?;
            (v, if step > 1 { hi } else { v })
        };
        if from > to {
            return Err(format!("range {from}-{to} is backwards"));
        }
        for v in (from..=to).step_by(step as usize) {
            bits |= 1u64 << v;
        }
    }
    Ok(bits)
}

fn value(text: &str, index: usize) -> Result<u32, String> {
    let (lo, hi) = RANGES[index];
    let upper = text.to_ascii_uppercase();
    let named = match index {
        4 => MONTHS.iter().position(|m| *m == upper).map(|i| i as u32 + 1),
        5 => DAYS.iter().position(|d| *d == upper).map(|i| i as u32),
        _ => None,
    };
    let v = match named {
        Some(v) => v,
        None => text.parse::<u32>().map_err(|_| format!("{text:?} is not a number"))?,
    };
    if v < lo || v > hi {
        return Err(format!("{v} is outside {lo}-{hi}"));
    }
    Ok(v)
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-05 08:00:00 UTC, a Saturday.
    const NOW: u64 = 1_796_457_600;

    #[test]
    fn next_times() {
        assert_eq!(civil_from_days((NOW / 86_400) as i64), (2026, 12, 5));
        let daily = Cron::parse("0 0 0 * * *").expect("daily");
        assert_eq!(daily.next_after(NOW), Some(NOW - 8 * 3600 + 86_400), "next midnight");
        let hourly = Cron::parse("@hourly").expect("hourly");
        assert_eq!(hourly.next_after(NOW), Some(NOW + 3600));
        assert_eq!(hourly.next_after(NOW - 1), Some(NOW), "strictly after");
        let five = Cron::parse("*/15 9-17 * * MON-FRI").expect("five fields");
        assert_eq!(five.next_after(NOW), Some(NOW + 2 * 86_400 + 3600), "Monday 09:00");
        let monthly = Cron::parse("0 30 2 1 * *").expect("monthly");
        assert_eq!(
            monthly.next_after(NOW),
            Some(NOW - 8 * 3600 - 4 * 86_400 + 31 * 86_400 + 2 * 3600 + 1800),
            "January 1st 02:30"
        );
        let sunday = Cron::parse("0 0 12 * * 7").expect("sunday as 7");
        assert_eq!(sunday.next_after(NOW), Some(NOW + 86_400 + 4 * 3600));
        assert_eq!(Cron::parse("0 0 0 30 2 *").expect("never").next_after(NOW), None);
        assert_eq!(
            Cron::parse("0 0 0 29 2 *").expect("leap").next_after(NOW).map(|t| civil_from_days((t / 86_400) as i64)),
            Some((2028, 2, 29))
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        for bad in [
            "",
            "* * *",
            "61 * * * * *",
            "0 0 25 * * *",
            "0 0 0 * 13 *",
            "0 0 0 * * MONDAY",
            "*/0 * * * * *",
            "5-1 * * * * *",
            "x y z a b c",
        ] {
            let e = Cron::parse(bad).expect_err(bad);
            assert!(e.contains("cron"), "{bad}: {e}");
        }
    }
}
