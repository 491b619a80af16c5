//! Tag immutability rules: per-project documents in Harbor's `ImmutableRule` shape, kept with the
//! other policies (kind [`KIND`]), and [`ProjectRules`], which hands the engine the enabled
//! rules of a repository's project as the storage crate's [`Protection`] (applied by the stores
//! in the transactions that move or remove tags).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use registry_auth::Accounts;
use registry_core::RepositoryName;
use registry_core::event::Event;
use registry_storage::immutable::{Protection, Protections, TagRule};
use registry_storage::policies::PolicyRecord;
use registry_storage::quota::project_of;
use registry_storage::{MetadataStore, Result};
use serde::{Deserialize, Serialize};

use crate::selectors::{Invalid, SelectorDoc, Target, repositories};

/// The policy kind of immutability rules.
pub const KIND: &str = "immutable_rule";

/// Harbor's `ImmutableRule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ImmutableRule {
    /// Its id (the policy's; not stored in the document).
    #[serde(skip_serializing_if = "is_zero")]
    pub id: u64,
    /// Harbor's priority (kept, not used: any matching rule protects).
    pub priority: i64,
    /// A disabled rule protects nothing.
    pub disabled: bool,
    /// `immutable`.
    pub action: String,
    /// `immutable_template`.
    pub template: String,
    /// Harbor's params (kept as given).
    pub params: BTreeMap<String, serde_json::Value>,
    /// The tags it protects (all must accept).
    pub tag_selectors: Vec<SelectorDoc>,
    /// The repositories it applies to: `{"repository": [...]}` (all must accept).
    pub scope_selectors: BTreeMap<String, Vec<SelectorDoc>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ImmutableRule {
    /// The rule checked and filled in (Harbor's action and template when left out), or what is
    /// wrong with it.
    pub fn checked(mut self) -> std::result::Result<ImmutableRule, Invalid> {
        if self.action.is_empty() {
            self.action = "immutable".into();
        }
        if self.template.is_empty() {
            self.template = "immutable_template".into();
        }
        if self.action != "immutable" {
            return Err(Invalid(format!("action {:?} is not an immutability rule's; use \"immutable\"", self.action)));
        }
        if self.template != "immutable_template" {
            return Err(Invalid(format!("template {:?} is unknown; use \"immutable_template\"", self.template)));
        }
        self.tag_rule(0)?;
        Ok(self)
    }

    /// The rule as the stores apply it.
    pub fn tag_rule(&self, id: u64) -> std::result::Result<TagRule, Invalid> {
        if self.tag_selectors.is_empty() {
            return Err(Invalid("an immutability rule needs tag_selectors (for every tag: pattern \"**\")".into()));
        }
        let tags = self
            .tag_selectors
            .iter()
            .enumerate()
            .map(|(i, s)| s.compile(Target::Tags, &format!("tag_selectors[{i}]")))
            .collect::<std::result::Result<_, _>>()?;
        Ok(TagRule { id, repositories: repositories(&self.scope_selectors, "the rule")?, tags })
    }

    /// What makes two rules the same (their selectors): the policy's unique name.
    pub fn key(&self) -> String {
        let text = |s: &[SelectorDoc]| {
            s.iter().map(|s| format!("{}:{}:{}", s.kind, s.decoration, s.pattern)).collect::<Vec<_>>().join(",")
        };
        let repos = self.scope_selectors.get("repository").map(|s| text(s)).unwrap_or_default();
        format!("repositories {repos} tags {}", text(&self.tag_selectors))
    }

    /// The stored policy of this rule (its id is the record's).
    pub fn record(&self, id: u64, project_id: u64) -> PolicyRecord {
        let body = ImmutableRule { id: 0, ..self.clone() };
        PolicyRecord {
            id,
            kind: KIND.into(),
            project_id,
            name: self.key(),
            body: serde_json::to_string(&body).unwrap_or_default(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    /// The rule a stored policy holds.
    pub fn of(record: &PolicyRecord) -> Option<ImmutableRule> {
        let rule: ImmutableRule = serde_json::from_str(&record.body).ok()?;
        Some(ImmutableRule { id: record.id, ..rule })
    }
}

/// The rules of one project (by id), in id order.
pub async fn rules(meta: &dyn MetadataStore, project_id: u64) -> Result<Vec<ImmutableRule>> {
    Ok(meta.policies(KIND, Some(project_id)).await?.iter().filter_map(ImmutableRule::of).collect())
}

/// Saves a rule (new when its id is 0) with `events`; its id. A rule with the same selectors
/// in the project is a conflict.
pub async fn save(meta: &dyn MetadataStore, project_id: u64, rule: &ImmutableRule, events: &[Event]) -> Result<u64> {
    meta.put_policy(&rule.record(rule.id, project_id), events).await
}

/// The engine's source of protections: the enabled rules of a repository's project.
pub struct ProjectRules {
    meta: Arc<dyn MetadataStore>,
    accounts: Accounts,
}

impl ProjectRules {
    /// Rules read from `meta`, projects found in `accounts`.
    pub fn new(meta: Arc<dyn MetadataStore>, accounts: Accounts) -> Arc<ProjectRules> {
        Arc::new(ProjectRules { meta, accounts })
    }
}

#[async_trait]
impl Protections for ProjectRules {
    async fn protection(&self, repository: &RepositoryName) -> Result<Protection> {
        let project = match self.accounts.project(project_of(repository.as_str())).await {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Protection::none()),
            Err(e) => {
                return Err(registry_storage::Error::Backend(registry_core::BackendError::message(
                    format!("reading the project of {repository}: {e}"),
                    true,
                )));
            }
        };
        let enabled = rules(&*self.meta, project.id).await?.into_iter().filter(|r| !r.disabled);
        // A stored rule that no longer compiles protects nothing (it was checked when saved).
        Ok(Protection::new(enabled.filter_map(|r| r.tag_rule(r.id).ok()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(repo: &str, tag: &str) -> ImmutableRule {
        let mut scope = BTreeMap::new();
        scope.insert("repository".to_owned(), vec![SelectorDoc::doublestar(Target::Repositories, repo, false)]);
        ImmutableRule {
            tag_selectors: vec![SelectorDoc::doublestar(Target::Tags, tag, false)],
            scope_selectors: scope,
            ..ImmutableRule::default()
        }
    }

    #[test]
    fn rules_are_checked_and_filled_in() {
        let r = rule("**", "v*").checked().expect("valid");
        assert_eq!((r.action.as_str(), r.template.as_str()), ("immutable", "immutable_template"));
        assert!(rule("**", "{v*").checked().is_err(), "a bad pattern");
        let mut none = rule("**", "v*");
        none.tag_selectors.clear();
        assert!(none.checked().expect_err("no tags").0.contains("tag_selectors"));
        let mut wrong = rule("**", "v*");
        wrong.action = "retain".into();
        assert!(wrong.checked().is_err());
        assert_ne!(rule("**", "v*").key(), rule("**", "latest").key());
        let record = r.record(0, 7);
        assert_eq!(ImmutableRule::of(&PolicyRecord { id: 3, ..record }).map(|r| r.id), Some(3));
    }
}
