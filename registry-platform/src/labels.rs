//! Labels, Harbor's: global ones (scope `g`, made by system administrators) and project ones
//! (scope `p`), kept as policy documents of kind [`KIND`] (project 0 for global labels; a name
//! is unique within its project, or among the global labels). Which artifacts carry which label
//! the metadata store keeps with the manifests (`MetadataStore::set_label`); deleting a label
//! takes it off every artifact.

use registry_storage::policies::{PolicyRecord, SYSTEM};
use registry_storage::{MetadataStore, Result};
use serde::{Deserialize, Serialize};

use crate::selectors::Invalid;

/// The policy kind of labels.
pub const KIND: &str = "label";

/// Longest name accepted.
pub const MAX_NAME: usize = 128;

/// A label as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Label {
    /// Its id (the policy's).
    #[serde(skip)]
    pub id: u64,
    /// Its name.
    #[serde(skip)]
    pub name: String,
    /// What it means.
    pub description: String,
    /// `#RRGGBB`, or empty.
    pub color: String,
    /// Its project's id; 0 for a global label.
    #[serde(skip)]
    pub project_id: u64,
    /// When it was made and last changed (ms).
    #[serde(skip)]
    pub created_ms: u64,
    /// When it last changed (ms).
    #[serde(skip)]
    pub updated_ms: u64,
}

impl Label {
    /// Harbor's scope: `g` for global, `p` for a project's.
    pub fn scope(&self) -> &'static str {
        if self.project_id == SYSTEM { "g" } else { "p" }
    }

    /// The label of a stored policy.
    pub fn of(record: &PolicyRecord) -> Option<Label> {
        let doc: Label = serde_json::from_str(&record.body).ok()?;
        Some(Label {
            id: record.id,
            name: record.name.clone(),
            project_id: record.project_id,
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
            ..doc
        })
    }

    /// The label checked: a name of 1 to 128 printable characters, a color `#RGB` or `#RRGGBB`
    /// (or none), a description of at most 1024 characters.
    pub fn checked(self) -> std::result::Result<Label, Invalid> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(Invalid("a label needs a name".into()));
        }
        if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(Invalid(format!("label name {name:?}: at most {MAX_NAME} printable characters")));
        }
        let hex = self.color.strip_prefix('#').unwrap_or("x");
        if !self.color.is_empty() && !((hex.len() == 6 || hex.len() == 3) && hex.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Invalid(format!("color {:?} is not #RRGGBB", self.color)));
        }
        if self.description.chars().count() > 1024 {
            return Err(Invalid("a label's description is at most 1024 characters".into()));
        }
        Ok(Label { name: name.to_owned(), ..self })
    }

    /// The policy record that stores it.
    pub fn record(&self) -> PolicyRecord {
        PolicyRecord {
            id: self.id,
            kind: KIND.into(),
            project_id: self.project_id,
            name: self.name.clone(),
            body: serde_json::to_string(self).unwrap_or_default(),
            created_ms: 0,
            updated_ms: 0,
        }
    }
}

/// The labels of a project (or the global ones: project 0), in id order.
pub async fn of_project(meta: &dyn MetadataStore, project_id: u64) -> Result<Vec<Label>> {
    Ok(meta.policies(KIND, Some(project_id)).await?.iter().filter_map(Label::of).collect())
}

/// The names of the labels usable in project `project_id` (its own and the global ones), by id.
pub async fn names_in(meta: &dyn MetadataStore, project_id: u64) -> Result<std::collections::HashMap<u64, String>> {
    let mut out = std::collections::HashMap::new();
    for id in [registry_storage::policies::SYSTEM, project_id] {
        for label in of_project(meta, id).await? {
            out.insert(label.id, label.name);
        }
    }
    Ok(out)
}

/// One label.
pub async fn get(meta: &dyn MetadataStore, id: u64) -> Result<Option<Label>> {
    Ok(meta.policy(KIND, id).await?.as_ref().and_then(Label::of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        let ok = Label { name: " release ".into(), color: "#00ff7F".into(), ..Label::default() };
        assert_eq!(ok.checked().expect("valid").name, "release");
        for bad in [
            Label { name: "".into(), ..Label::default() },
            Label { name: "x".repeat(MAX_NAME + 1), ..Label::default() },
            Label { name: "a\nb".into(), ..Label::default() },
            Label { name: "ok".into(), color: "red".into(), ..Label::default() },
        ] {
            assert!(bad.checked().is_err());
        }
        let global = Label { name: "g".into(), ..Label::default() };
        assert_eq!(global.scope(), "g");
        let back = Label::of(&PolicyRecord { id: 4, project_id: 2, ..global.record() }).expect("decodes");
        assert_eq!((back.id, back.scope(), back.name.as_str()), (4, "p", "g"));
    }
}
