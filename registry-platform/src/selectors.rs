//! Harbor's selectors, as its immutability and retention rules (and later replication filters)
//! write them: `{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}`. Checked once
//! when a rule is saved, each bad part named, and turned into the storage crate's
//! [`Selector`]s.

use registry_core::glob::Pattern;
use registry_storage::immutable::Selector;
use serde::{Deserialize, Serialize};

/// A rule or policy a client sent that cannot be used: the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A name a person gives something (a scanner, a registry endpoint): 1 to 255 printable
/// characters, trimmed.
pub fn checked_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(Invalid("name must be 1 to 255 printable characters".into()));
    }
    Ok(name.to_owned())
}

/// A description: up to 1024 characters.
pub fn checked_description(description: String) -> Result<String, Invalid> {
    if description.len() > 1024 {
        return Err(Invalid("description is longer than 1024 characters".into()));
    }
    Ok(description)
}

/// One selector as Harbor's API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SelectorDoc {
    /// `doublestar` for patterns, `label` for labels (retention).
    pub kind: String,
    /// `matches`/`excludes` for tags, `repoMatches`/`repoExcludes` for repositories,
    /// `withLabels`/`withoutLabels` for labels.
    pub decoration: String,
    /// The pattern (labels: their names, comma-separated).
    pub pattern: String,
    /// Harbor's extras (`{"untagged": true}` on retention's tag selector).
    pub extras: String,
}

/// What a selector selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Tags (`matches`, `excludes`).
    Tags,
    /// Repositories (`repoMatches`, `repoExcludes`).
    Repositories,
}

impl SelectorDoc {
    /// A doublestar selector of `target` (`exclude`: what does not match).
    pub fn doublestar(target: Target, pattern: &str, exclude: bool) -> SelectorDoc {
        let decoration = match (target, exclude) {
            (Target::Tags, false) => "matches",
            (Target::Tags, true) => "excludes",
            (Target::Repositories, false) => "repoMatches",
            (Target::Repositories, true) => "repoExcludes",
        };
        SelectorDoc {
            kind: "doublestar".into(),
            decoration: decoration.into(),
            pattern: pattern.into(),
            extras: String::new(),
        }
    }

    /// The selector, checked: `what` names it in messages (`tag_selectors[0]`).
    pub fn compile(&self, target: Target, what: &str) -> Result<Selector, Invalid> {
        if self.kind != "doublestar" {
            return Err(Invalid(format!("{what}.kind {:?} is not supported; use \"doublestar\"", self.kind)));
        }
        let exclude = match (target, self.decoration.as_str()) {
            (Target::Tags, "matches") | (Target::Repositories, "repoMatches") => false,
            (Target::Tags, "excludes") | (Target::Repositories, "repoExcludes") => true,
            (Target::Tags, other) => {
                return Err(Invalid(format!(
                    "{what}.decoration {other:?} is unknown; use \"matches\" or \"excludes\""
                )));
            }
            (Target::Repositories, other) => {
                return Err(Invalid(format!(
                    "{what}.decoration {other:?} is unknown; use \"repoMatches\" or \"repoExcludes\""
                )));
            }
        };
        let pattern = Pattern::parse(&self.pattern).map_err(|e| Invalid(format!("{what}: {e}")))?;
        Ok(Selector { pattern, exclude })
    }
}

/// The one `repository` scope selector list of a rule (`scope_selectors.repository`), compiled.
pub fn repositories(
    scope: &std::collections::BTreeMap<String, Vec<SelectorDoc>>,
    what: &str,
) -> Result<Vec<Selector>, Invalid> {
    if let Some(other) = scope.keys().find(|k| *k != "repository") {
        return Err(Invalid(format!("{what}.scope_selectors.{other} is unknown; only \"repository\" is")));
    }
    let list = scope.get("repository").filter(|l| !l.is_empty()).ok_or_else(|| {
        Invalid(format!("{what} needs scope_selectors.repository (for every repository: pattern \"**\")"))
    })?;
    list.iter()
        .enumerate()
        .map(|(i, s)| s.compile(Target::Repositories, &format!("{what}.scope_selectors.repository[{i}]")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_selectors_are_named() {
        let bad_kind = SelectorDoc { kind: "regexp".into(), ..SelectorDoc::doublestar(Target::Tags, "v*", false) };
        assert!(
            bad_kind.compile(Target::Tags, "tag_selectors[0]").expect_err("kind").0.contains("tag_selectors[0].kind")
        );
        let bad_decoration =
            SelectorDoc { decoration: "repoMatches".into(), ..SelectorDoc::doublestar(Target::Tags, "v*", false) };
        assert!(bad_decoration.compile(Target::Tags, "t").is_err(), "a repository decoration on a tag");
        let bad_pattern = SelectorDoc::doublestar(Target::Tags, "{v1", false);
        assert!(bad_pattern.compile(Target::Tags, "t").expect_err("pattern").0.contains("unmatched {"));
        let ok = SelectorDoc::doublestar(Target::Repositories, "app-*", true)
            .compile(Target::Repositories, "r")
            .expect("ok");
        assert!(ok.accepts("web") && !ok.accepts("app-web"));
        let mut scope = std::collections::BTreeMap::new();
        assert!(repositories(&scope, "rule").is_err(), "no repository selector");
        scope.insert("repository".to_owned(), vec![SelectorDoc::doublestar(Target::Repositories, "**", false)]);
        assert_eq!(repositories(&scope, "rule").expect("ok").len(), 1);
        scope.insert("namespace".to_owned(), vec![]);
        assert!(repositories(&scope, "rule").is_err(), "unknown scope");
    }
}
