//! Harbor's `q=` query: comma-separated conditions on keys, as its swagger describes them:
//! exact `k=v`, fuzzy `k=~v`, range `k=[min~max]`, union `k={v1 v2}`, intersection `k=(v1 v2)`.
//! Values may be quoted with `"` or `'`. A key a listing does not know is refused (400).

use super::context::bad_request;
use crate::error::ApiError;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `k=v`
    Exact(String),
    /// `k=~v`: contains.
    Fuzzy(String),
    /// `k=[min~max]`, either side open when empty.
    Range(Option<String>, Option<String>),
    /// `k={v1 v2}`: any of them.
    Any(Vec<String>),
    /// `k=(v1 v2)`: all of them.
    All(Vec<String>),
}

/// The parsed `q`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Q(Vec<(String, Condition)>);

fn unquote(v: &str) -> String {
    let v = v.trim();
    let quoted =
        v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted { v[1..v.len() - 1].to_owned() } else { v.to_owned() }
}

impl Q {
    /// Parses `q` (absent or empty: no conditions), allowing only `keys`.
    pub fn parse(q: Option<&str>, keys: &[&str]) -> Result<Q, ApiError> {
        let Some(q) = q.filter(|q| !q.trim().is_empty()) else { return Ok(Q::default()) };
        let mut out = Vec::new();
        // Commas inside brackets belong to the value.
        let mut depth = 0;
        let mut start = 0;
        let mut parts = Vec::new();
        for (i, c) in q.char_indices() {
            match c {
                '[' | '{' | '(' => depth += 1,
                ']' | '}' | ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&q[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&q[start..]);
        for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
            let (key, value) =
                part.split_once('=').ok_or_else(|| bad_request(format!("q: {part:?} is not key=value")))?;
            let key = key.trim();
            if !keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                return Err(bad_request(format!("q: unknown key {key:?} (known: {})", keys.join(", "))));
            }
            let list = |inner: &str| inner.split_whitespace().map(unquote).collect::<Vec<_>>();
            let cond = if let Some(v) = value.strip_prefix('~') {
                Condition::Fuzzy(unquote(v))
            } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                let (min, max) = inner.split_once('~').ok_or_else(|| bad_request("q: a range is [min~max]"))?;
                let side = |s: &str| Some(unquote(s)).filter(|s| !s.is_empty());
                Condition::Range(side(min), side(max))
            } else if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
                Condition::Any(list(inner))
            } else if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
                Condition::All(list(inner))
            } else {
                Condition::Exact(unquote(value))
            };
            out.push((key.to_ascii_lowercase(), cond));
        }
        Ok(Q(out))
    }

    /// Every condition, with its key (lowercase).
    pub fn conditions(&self) -> &[(String, Condition)] {
        &self.0
    }

    /// Whether it has no condition.
    pub fn is_empty(&self) -> bool {
        self.conditions().is_empty()
    }

    /// The condition on `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Condition> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, c)| c)
    }

    /// Whether a set of `values` (an artifact's label ids) meets the condition on `key`: it holds
    /// the one value (`k=v`), any of them (`k={a b}`) or all of them (`k=(a b)`).
    pub fn accepts_set(&self, key: &str, values: &[String]) -> bool {
        let has = |v: &String| values.contains(v);
        match self.get(key) {
            None => true,
            Some(Condition::Exact(v)) => has(v),
            Some(Condition::Any(vs)) => vs.iter().any(has),
            Some(Condition::All(vs)) => vs.iter().all(has),
            Some(Condition::Fuzzy(v)) => values.iter().any(|x| x.contains(v.as_str())),
            Some(Condition::Range(..)) => values.iter().any(|x| self.accepts(key, x)),
        }
    }

    /// Whether `value` meets the condition on `key` (no condition: yes). Ranges compare as
    /// numbers when both sides are numbers, else as text (timestamps in Harbor's format sort).
    pub fn accepts(&self, key: &str, value: &str) -> bool {
        let Some(cond) = self.get(key) else { return true };
        match cond {
            Condition::Exact(v) => v == value,
            Condition::Fuzzy(v) => value.contains(v.as_str()),
            Condition::Any(vs) => vs.iter().any(|v| v == value),
            Condition::All(vs) => vs.iter().all(|v| v == value),
            Condition::Range(min, max) => {
                let cmp = |a: &str, b: &str| match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    _ => a.cmp(b),
                };
                min.as_deref().is_none_or(|m| cmp(value, m).is_ge())
                    && max.as_deref().is_none_or(|m| cmp(value, m).is_le())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harbor_query_forms() {
        let q = Q::parse(
            Some("Level=project,ProjectID=3,name=~ci,n=[2~5],tag={a b},op=(x)"),
            &["level", "projectid", "name", "n", "tag", "op"],
        )
        .expect("parse");
        assert!(q.accepts("level", "project") && !q.accepts("level", "system"));
        assert!(q.accepts("ProjectID", "3"));
        assert!(q.accepts("name", "robot$team+ci-1") && !q.accepts("name", "robot$ops"));
        assert!(q.accepts("n", "2") && q.accepts("n", "5") && !q.accepts("n", "10") && !q.accepts("n", "1"));
        assert!(q.accepts("tag", "b") && !q.accepts("tag", "c"));
        assert!(q.accepts("other", "anything"), "no condition");
        assert!(Q::parse(Some("bogus=1"), &["name"]).is_err());
        assert!(Q::parse(Some("name"), &["name"]).is_err());
        let quoted = Q::parse(Some("name=\"a b\""), &["name"]).expect("quoted");
        assert!(quoted.accepts("name", "a b"));
        assert_eq!(Q::parse(None, &[]).expect("none"), Q::default());
        let labels = |q: &str, set: &[&str]| {
            let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
            Q::parse(Some(q), &["labels"]).expect("labels").accepts_set("labels", &set)
        };
        assert!(labels("labels=3", &["1", "3"]) && !labels("labels=2", &["1", "3"]));
        assert!(labels("labels=(1 3)", &["1", "3"]) && !labels("labels=(1 2)", &["1", "3"]));
        assert!(labels("labels={2 3}", &["3"]) && !labels("labels={2 4}", &["3"]));
    }
}
