//! Replication (Harbor's `/replication/policies` and executions): copying artifacts between this
//! registry and a registry endpoint ([`crate::remote`]) — push-based (local to remote) or
//! pull-based (remote to local) — exactly (the same manifest bytes and digests, an index with all
//! its children, signatures and other referrers along with their subject) and incrementally (a
//! blob the destination holds is neither read nor sent). Policies are system policy documents of
//! kind [`KIND`] ([`Policy`], checked by [`Policy::checked`]); an execution is a job of kind
//! [`run::JOB_KIND`] whose progress and result list its tasks, one per artifact copied
//! ([`run`]); the copying itself is [`copy`].

pub mod copy;
pub mod run;
pub mod triggers;

use registry_core::glob::Pattern;

use registry_storage::{MetadataStore, Result};
use serde::{Deserialize, Serialize};

use crate::selectors::Invalid;

/// The policy kind of replication policies.
pub const KIND: &str = "replication_policy";

/// One filter of a policy (Harbor's `ReplicationFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Filter {
    /// `name` (repository), `tag` or `resource` (`image` or `artifact`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The pattern (doublestar) or the resource type.
    pub value: serde_json::Value,
    /// `matches` (the default) or `excludes`.
    pub decoration: String,
}

/// What starts a policy's executions (Harbor's `ReplicationTrigger`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Trigger {
    /// `manual`, `scheduled` (by `trigger_settings.cron`) or `event_based` (each push the
    /// filters take, and each deletion where the policy replicates deletions; push-based
    /// policies only).
    #[serde(rename = "type")]
    pub kind: String,
    /// The schedule of a `scheduled` trigger.
    pub trigger_settings: TriggerSettings,
}

/// Harbor's `ReplicationTriggerSettings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TriggerSettings {
    /// A six-field cron (seconds first), as Harbor writes them.
    pub cron: String,
}

/// A replication policy as stored (endpoints by id; 0 is this registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Policy {
    /// Its name, unique.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The source endpoint (0: this registry, push-based).
    pub src_registry: u64,
    /// The destination endpoint (0: this registry, pull-based).
    pub dest_registry: u64,
    /// The namespace the copies go under (empty: the source's path).
    pub dest_namespace: String,
    /// How many leading path components of the source the namespace replaces (-1: all but the
    /// last).
    pub dest_namespace_replace_count: i64,
    /// What starts it.
    pub trigger: Trigger,
    /// What it copies.
    pub filters: Vec<Filter>,
    /// Whether a copy replaces a destination tag that names other content.
    #[serde(rename = "override")]
    pub overwrite: bool,
    /// Whether it runs.
    pub enabled: bool,
    /// Whether an event-based policy deletes at the destination what is deleted here (an
    /// artifact by its digest, a tag by its name).
    pub replicate_deletion: bool,
    /// A bandwidth limit for blob bytes in KiB per second, Harbor's unit (-1 or 0: none).
    pub speed: i64,
    /// Whether blobs go to a remote in chunks ([`copy::CHUNK`] bytes each, `PATCH` by `PATCH`)
    /// rather than in one request: for remotes behind proxies that limit a request's size.
    pub copy_by_chunk: bool,
}

/// The filters of a policy, parsed.
#[derive(Debug, Default)]
pub struct Filters {
    names: Vec<(Pattern, bool)>,
    tags: Vec<(Pattern, bool)>,
    /// Label names an artifact must carry all of (`true`) or none of (`false`).
    labels: Vec<(Vec<String>, bool)>,
    /// Only images (`resource` = `image`): manifests and indexes of images, not other artifacts.
    pub images_only: bool,
}

impl Filters {
    /// Whether repository `name` is copied.
    pub fn repository(&self, name: &str) -> bool {
        self.names.iter().all(|(p, matches)| p.matches(name) == *matches)
    }

    /// Whether tag `tag` is copied.
    pub fn tag(&self, tag: &str) -> bool {
        self.tags.iter().all(|(p, matches)| p.matches(tag) == *matches)
    }

    /// Whether the filters look at labels.
    pub fn by_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Whether an artifact carrying the labels `names` is copied.
    pub fn labels(&self, names: &[String]) -> bool {
        self.labels.iter().all(|(wanted, matches)| {
            if *matches { wanted.iter().all(|w| names.contains(w)) } else { !wanted.iter().any(|w| names.contains(w)) }
        })
    }
}

impl Policy {
    /// Checks a policy: a name, exactly one side remote, known filters whose patterns parse, a
    /// namespace that is a repository path, a known trigger.
    pub fn checked(mut self) -> std::result::Result<Policy, Invalid> {
        self.name = crate::selectors::checked_name(&self.name)?;
        self.description = crate::selectors::checked_description(std::mem::take(&mut self.description))?;
        match (self.src_registry, self.dest_registry) {
            (0, 0) => {
                return Err(Invalid(
                    "a policy copies to or from a registry endpoint: set src_registry (pull-based) or \
                     dest_registry (push-based)"
                        .into(),
                ));
            }
            (a, b) if a != 0 && b != 0 => {
                return Err(Invalid(
                    "one side of a policy is this registry: set src_registry or dest_registry, not both".into(),
                ));
            }
            _ => {}
        }
        if !self.dest_namespace.is_empty() {
            registry_core::RepositoryName::parse(&self.dest_namespace)
                .map_err(|e| Invalid(format!("dest_namespace {:?}: {e}", self.dest_namespace)))?;
        }
        if self.speed < -1 {
            return Err(Invalid(format!("speed {}: a limit in KiB/s, or -1 for none", self.speed)));
        }
        if self.speed == 0 {
            self.speed = -1;
        }
        if self.dest_namespace_replace_count < -1 {
            return Err(Invalid("dest_namespace_replace_count is -1 (all but the last level) or more".into()));
        }
        match self.trigger.kind.as_str() {
            "" | "manual" => {
                self.trigger.kind = "manual".into();
                self.trigger.trigger_settings.cron.clear();
            }
            "scheduled" => {
                crate::cron::Cron::parse(&self.trigger.trigger_settings.cron)
                    .map_err(|e| Invalid(format!("trigger.trigger_settings.cron: {e}")))?;
            }
            "event_based" if self.dest_registry == 0 => {
                return Err(Invalid(
                    "an event_based trigger replicates pushes to this registry: it needs a push-based policy \
                     (dest_registry)"
                        .into(),
                ));
            }
            "event_based" => self.trigger.trigger_settings.cron.clear(),
            other => {
                return Err(Invalid(format!("trigger {other:?} is unknown; use manual, scheduled or event_based")));
            }
        }
        self.filters()?;
        Ok(self)
    }

    /// The bandwidth limit in bytes per second, if any.
    pub fn bytes_per_second(&self) -> Option<u64> {
        u64::try_from(self.speed).ok().filter(|s| *s > 0).map(|s| s.saturating_mul(1024))
    }

    /// The cron of a scheduled policy.
    pub fn cron(&self) -> Option<crate::cron::Cron> {
        (self.trigger.kind == "scheduled")
            .then(|| crate::cron::Cron::parse(&self.trigger.trigger_settings.cron).ok())
            .flatten()
    }

    /// The filters, parsed.
    pub fn filters(&self) -> std::result::Result<Filters, Invalid> {
        let mut out = Filters::default();
        for (i, f) in self.filters.iter().enumerate() {
            let matches = match f.decoration.as_str() {
                "" | "matches" => true,
                "excludes" => false,
                other => return Err(Invalid(format!("filters[{i}].decoration {other:?}: use matches or excludes"))),
            };
            let text = f.value.as_str().unwrap_or_default();
            let pattern =
                || Pattern::parse(text).map_err(|e| Invalid(format!("filters[{i}] ({} {text:?}): {e}", f.kind)));
            match f.kind.as_str() {
                "name" => out.names.push((pattern()?, matches)),
                "tag" => out.tags.push((pattern()?, matches)),
                "resource" => match text {
                    "image" => out.images_only = true,
                    "artifact" | "" => {}
                    other => return Err(Invalid(format!("filters[{i}]: resource {other:?}: use image or artifact"))),
                },
                "label" if self.src_registry != 0 => {
                    return Err(Invalid(format!(
                        "filters[{i}]: label filters select by this registry's labels: they apply to push-based \
                         policies (dest_registry)"
                    )));
                }
                "label" => {
                    let names: Vec<String> = match &f.value {
                        serde_json::Value::String(one) => vec![one.clone()],
                        serde_json::Value::Array(many) => {
                            many.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
                        }
                        _ => Vec::new(),
                    };
                    if names.is_empty() || names.iter().any(String::is_empty) {
                        return Err(Invalid(format!("filters[{i}]: a label filter's value is a list of label names")));
                    }
                    out.labels.push((names, matches));
                }
                other => {
                    return Err(Invalid(format!(
                        "filters[{i}]: type {other:?} is unknown; use name, tag, label or resource"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Where repository `source` is copied to.
    pub fn destination(&self, source: &str) -> String {
        if self.dest_namespace.is_empty() {
            return source.to_owned();
        }
        let parts: Vec<&str> = source.split('/').collect();
        let drop = match self.dest_namespace_replace_count {
            -1 => parts.len() - 1,
            n => (n.max(0) as usize).min(parts.len() - 1),
        };
        format!("{}/{}", self.dest_namespace, parts[drop..].join("/"))
    }
}

impl crate::documents::Document for Policy {
    const KIND: &'static str = KIND;

    fn name(&self) -> &str {
        &self.name
    }
}

/// A stored policy with its record.
pub type Stored = crate::documents::Stored<Policy>;

/// Every policy.
pub async fn all(meta: &dyn MetadataStore) -> Result<Vec<Stored>> {
    crate::documents::all(meta).await
}

/// The policy `id`.
pub async fn by_id(meta: &dyn MetadataStore, id: u64) -> Result<Option<Stored>> {
    crate::documents::by_id(meta, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> std::result::Result<Policy, Invalid> {
        serde_json::from_value::<Policy>(json).expect("policy").checked()
    }

    #[test]
    fn policies_are_checked_saying_what_is_wrong() {
        assert!(policy(serde_json::json!({"name": "p"})).expect_err("refused").0.contains("src_registry"));
        assert!(policy(serde_json::json!({"name": "p", "src_registry": 1, "dest_registry": 2})).is_err());
        let bad_filter =
            serde_json::json!({"name": "p", "dest_registry": 1, "filters": [{"type": "name", "value": "a/[b"}]});
        assert!(policy(bad_filter).expect_err("refused").0.contains("filters[0]"));
        let label = serde_json::json!({"name": "p", "src_registry": 1, "filters": [{"type": "label", "value": "x"}]});
        assert!(policy(label).expect_err("refused").0.contains("push-based"));
        let label = serde_json::json!({"name": "p", "dest_registry": 1, "filters": [{"type": "label", "value": []}]});
        assert!(policy(label).expect_err("refused").0.contains("label names"));
        let labels = policy(serde_json::json!({"name": "p", "dest_registry": 1, "filters": [
            {"type": "label", "value": ["release", "signed"]},
            {"type": "label", "value": "broken", "decoration": "excludes"}]}))
        .expect("label filters")
        .filters()
        .expect("filters");
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(labels.labels(&names(&["release", "signed", "x"])));
        assert!(!labels.labels(&names(&["release"])));
        assert!(!labels.labels(&names(&["release", "signed", "broken"])));
        let cron = serde_json::json!({"name": "p", "dest_registry": 1, "trigger": {"type": "scheduled"}});
        assert!(policy(cron).expect_err("refused").0.contains("cron"));
        let pull_on_push = serde_json::json!({"name": "p", "src_registry": 1, "trigger": {"type": "event_based"}});
        assert!(policy(pull_on_push).expect_err("refused").0.contains("push-based"));
        let nightly = serde_json::json!({"name": "p", "dest_registry": 1,
            "trigger": {"type": "scheduled", "trigger_settings": {"cron": "0 0 2 * * *"}}});
        assert!(policy(nightly).expect("scheduled").cron().is_some());
        let ok = policy(serde_json::json!({"name": "p", "dest_registry": 1, "filters": [
            {"type": "name", "value": "library/**"}, {"type": "tag", "value": "v*"},
            {"type": "tag", "value": "*-rc", "decoration": "excludes"}]}))
        .expect("a policy");
        let f = ok.filters().expect("filters");
        assert!(f.repository("library/app/web") && !f.repository("team/app"));
        assert!(f.tag("v1") && !f.tag("v2-rc") && !f.tag("latest"));
    }

    #[test]
    fn destinations_flatten_as_harbor_does() {
        let p = |ns: &str, n: i64| Policy {
            dest_namespace: ns.into(),
            dest_namespace_replace_count: n,
            ..Policy::default()
        };
        assert_eq!(p("", 1).destination("a/b/c"), "a/b/c");
        assert_eq!(p("mirror", 0).destination("a/b/c"), "mirror/a/b/c");
        assert_eq!(p("mirror", 1).destination("a/b/c"), "mirror/b/c");
        assert_eq!(p("mirror", -1).destination("a/b/c"), "mirror/c");
        assert_eq!(p("mirror", 9).destination("a/b/c"), "mirror/c");
    }
}
