//! Tag immutability: the rules that keep a tag from moving to another manifest or going away,
//! as a plain value ([`Protection`]) that every store applies inside the transaction that would
//! move or remove the tag, so a push racing a rule's check cannot slip past it.
//!
//! Rules belong to projects (Harbor's immutable tag rules; the documents live with the other
//! policies). The engine asks its [`Protections`] for the protection of a repository before a
//! tag push or a deletion, and hands it to the store. Re-pushing the same manifest under a
//! protected tag is allowed; pointing it elsewhere, deleting it, or deleting the manifest or
//! repository that carries it is refused ([`Error::TagImmutable`](crate::Error::TagImmutable)).
//! Garbage collection deletes only untagged manifests, so it never removes a protected tag.

use async_trait::async_trait;
use registry_core::RepositoryName;
use registry_core::glob::Pattern;

use crate::error::Result;
use crate::quota::project_of;

/// A pattern that accepts what it matches, or what it does not (`excludes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The doublestar pattern.
    pub pattern: Pattern,
    /// Whether it accepts what the pattern does not match.
    pub exclude: bool,
}

impl Selector {
    /// Whether `text` is accepted.
    pub fn accepts(&self, text: &str) -> bool {
        self.pattern.matches(text) != self.exclude
    }

    fn describe(&self) -> String {
        format!("{} {}", if self.exclude { "excluding" } else { "matching" }, self.pattern)
    }
}

/// One immutability rule of a project: tags accepted by every tag selector, in repositories
/// accepted by every repository selector (matched against the repository's path inside the
/// project, as Harbor does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRule {
    /// The rule's id.
    pub id: u64,
    /// Repository selectors.
    pub repositories: Vec<Selector>,
    /// Tag selectors.
    pub tags: Vec<Selector>,
}

impl TagRule {
    /// Whether the rule protects `tag` of the repository at `path` inside its project.
    pub fn protects(&self, path: &str, tag: &str) -> bool {
        self.repositories.iter().all(|s| s.accepts(path)) && self.tags.iter().all(|s| s.accepts(tag))
    }

    /// The rule for a person: `3 (repositories matching **, tags matching v*)`.
    pub fn describe(&self) -> String {
        let list = |s: &[Selector]| s.iter().map(Selector::describe).collect::<Vec<_>>().join(" and ");
        format!("{} (repositories {}, tags {})", self.id, list(&self.repositories), list(&self.tags))
    }
}

/// The immutability rules in force for one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    rules: Vec<TagRule>,
}

impl Protection {
    /// No tag protected.
    pub fn none() -> Protection {
        Protection::default()
    }

    /// These rules (the enabled ones of the repository's project).
    pub fn new(rules: Vec<TagRule>) -> Protection {
        Protection { rules }
    }

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule protecting `tag` of `repository` (a full name), if any.
    pub fn protects(&self, repository: &str, tag: &str) -> Option<&TagRule> {
        if self.rules.is_empty() {
            return None;
        }
        let project = project_of(repository);
        let path = repository.strip_prefix(project).and_then(|r| r.strip_prefix('/')).unwrap_or(repository);
        self.rules.iter().find(|r| r.protects(path, tag))
    }

    /// [`Error::TagImmutable`](crate::Error::TagImmutable) when `tag` is protected: the store's
    /// refusal of `what` (`moving`, `deleting`, …).
    pub fn check(&self, repository: &str, tag: &str, what: &str) -> Result<()> {
        match self.protects(repository, tag) {
            Some(rule) => Err(crate::Error::TagImmutable {
                repository: repository.to_owned(),
                tag: tag.to_owned(),
                what: what.to_owned(),
                rule: rule.describe(),
            }),
            None => Ok(()),
        }
    }
}

/// Where the engine finds the protection of a repository (the platform reads the rules of the
/// repository's project). Without one, no tag is protected.
#[async_trait]
pub trait Protections: Send + Sync + 'static {
    /// The rules in force for `repository` now.
    async fn protection(&self, repository: &RepositoryName) -> Result<Protection>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(pattern: &str, exclude: bool) -> Selector {
        Selector { pattern: Pattern::parse(pattern).expect("pattern"), exclude }
    }

    #[test]
    fn rules_match_inside_the_project() {
        let rule = TagRule { id: 3, repositories: vec![selector("app*", false)], tags: vec![selector("v*", false)] };
        let other = TagRule { id: 4, repositories: vec![selector("**", false)], tags: vec![selector("latest", true)] };
        let p = Protection::new(vec![rule]);
        assert!(p.protects("team/app", "v1").is_some());
        assert!(p.protects("team/app-web", "v1.0").is_some());
        assert!(p.protects("team/web", "v1").is_none(), "repository not matched");
        assert!(p.protects("team/app", "latest").is_none(), "tag not matched");
        let e = p.check("team/app", "v1", "pushing another manifest as").expect_err("protected");
        assert!(e.to_string().contains("rule 3 (repositories matching app*, tags matching v*)"), "{e}");
        let all_but_latest = Protection::new(vec![other]);
        assert!(all_but_latest.protects("team/a/b", "dev").is_some());
        assert!(all_but_latest.protects("team/a/b", "latest").is_none());
        assert!(Protection::none().check("team/app", "v1", "deleting").is_ok());
    }
}
