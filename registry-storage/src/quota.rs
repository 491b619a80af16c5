//! Storage quotas: per-project usage kept by every store in the transaction that links a blob,
//! stores a manifest or removes either, and the limit a project's usage may not pass.
//!
//! A project is the first component of a repository name ([`project_of`]). Its usage is the size
//! of every distinct digest that any of its repositories holds, as a blob link or as a manifest:
//! a layer shared by two repositories of one project counts once; pushed into two projects, it
//! counts in each. Stores keep, for each (project, digest), how many holders inside the project
//! it has and its size ([`Holding`]); usage moves only when that count goes from 0 to 1 (the
//! digest's size is added, and checked against the limit) or from 1 to 0 (subtracted). Nothing
//! is recomputed by scanning on a read; `Registry::verify_quotas` recomputes from scratch to
//! prove the counters exact.
//!
//! The rules are plain functions over plain values ([`Quota::admit`], [`Holding`]), applied by
//! each store inside its own transaction, so that memory, redb and PostgreSQL behave alike and a
//! push racing others at the limit either commits within it or is refused: the check and the
//! counter move in the same transaction, serialized on the project's quota (redb's single
//! writer, the memory store's lock, PostgreSQL's row lock).
//!
//! A change that takes usage from below the warning threshold (`warn_percent` of the limit) to
//! at or above it records a `QUOTA_WARNING` event in the same transaction; a refusal is recorded
//! as `QUOTA_EXCEED` by the engine (the refused transaction records nothing).

use std::collections::BTreeMap;

use async_trait::async_trait;
use registry_core::event::{Event, EventAction, Operator, Resource};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use registry_core::units::bytes;

/// The warning threshold of a new quota: this percentage of its limit.
pub const DEFAULT_WARN_PERCENT: u8 = 85;

pub use registry_core::name::project_of;

/// A project's quota: its usage and limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// The project.
    pub project: String,
    /// The most bytes it may hold; `None` for no limit.
    pub limit: Option<u64>,
    /// The bytes it holds (each distinct digest once).
    pub used: u64,
    /// The percentage of the limit at which a `QUOTA_WARNING` event is recorded.
    pub warn_percent: u8,
    /// When the quota was made, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When its limit or usage last changed.
    pub updated_ms: u64,
}

impl Quota {
    /// A quota of nothing used and no limit, made at `now_ms`.
    pub fn new(project: &str, now_ms: u64) -> Quota {
        Quota {
            project: project.to_owned(),
            limit: None,
            used: 0,
            warn_percent: DEFAULT_WARN_PERCENT,
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// The usage at which a warning is due, when there is a limit.
    pub fn warn_at(&self) -> Option<u64> {
        self.limit.map(|l| (u128::from(l) * u128::from(self.warn_percent.min(100)) / 100) as u64)
    }

    /// The rule every store applies: this quota after `change`, refused with
    /// [`Error::QuotaExceeded`] when the change grows usage past the limit (a change that does
    /// not grow usage is never refused, even over a limit lowered below the usage); with the
    /// `QUOTA_WARNING` event to record when the change crosses the warning threshold upwards.
    pub fn admit(&self, change: Change, now_ms: u64, repository: &str) -> Result<(Quota, Option<Event>)> {
        let used = self.used.saturating_add(change.grow).saturating_sub(change.shrink);
        if change.grow > change.shrink
            && let Some(limit) = self.limit
            && used > limit
        {
            return Err(Error::QuotaExceeded {
                project: self.project.clone(),
                used: self.used,
                limit,
                needed: change.grow - change.shrink,
            });
        }
        let after =
            Quota { used, updated_ms: if used == self.used { self.updated_ms } else { now_ms }, ..self.clone() };
        let warning = match self.warn_at() {
            Some(at) if self.used < at && used >= at => Some(warning_event(&after, now_ms, repository)),
            _ => None,
        };
        Ok((after, warning))
    }
}

/// The `QUOTA_WARNING` event of a quota whose usage reached its threshold.
fn warning_event(quota: &Quota, now_ms: u64, repository: &str) -> Event {
    let limit = quota.limit.unwrap_or(0);
    let detail = format!(
        "project {} uses {} of its {} quota ({}%), at or above the warning threshold of {}%",
        quota.project,
        bytes(quota.used),
        bytes(limit),
        percent(quota.used, limit),
        quota.warn_percent
    );
    quota_event(EventAction::QuotaWarning, Operator::system(), now_ms, &quota.project, repository, detail)
}

/// An event of a quota (`QUOTA_WARNING`, `QUOTA_EXCEED`) about `project`, naming `repository`.
pub fn quota_event(
    action: EventAction,
    operator: Operator,
    now_ms: u64,
    project: &str,
    repository: &str,
    detail: String,
) -> Event {
    let resource = Resource {
        project: Some(project.to_owned()),
        repository: Some(repository.to_owned()),
        detail: Some(detail),
        ..Resource::default()
    };
    Event::new(now_ms, operator, action, resource)
}

/// `used` as a whole percentage of `limit` (100 for a zero limit).
pub fn percent(used: u64, limit: u64) -> u64 {
    if limit == 0 { 100 } else { (u128::from(used) * 100 / u128::from(limit)) as u64 }
}

/// How a transaction changes a project's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// Bytes of digests new to the project.
    pub grow: u64,
    /// Bytes of digests the project no longer holds.
    pub shrink: u64,
}

impl Change {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.grow == self.shrink
    }
}

/// A digest held inside a project: its size and how many holders (repository and kind: a blob
/// link or a manifest) it has there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The digest's size.
    pub size: u64,
    /// Its holders inside the project.
    pub holders: u64,
}

impl Holding {
    /// One holder more (`size` is the digest's size); the bytes this adds to the project's
    /// usage (the size when it is the first holder).
    pub fn hold(&mut self, size: u64) -> u64 {
        self.holders += 1;
        if self.holders == 1 {
            self.size = size;
            size
        } else {
            0
        }
    }

    /// One holder less; the bytes this takes from the project's usage (the size when it was the
    /// last holder, and the holding is then gone).
    pub fn release(&mut self) -> u64 {
        self.holders = self.holders.saturating_sub(1);
        if self.holders == 0 { self.size } else { 0 }
    }
}

/// Usage changes gathered in a transaction, by project.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes(BTreeMap<String, (Change, String)>);

impl Changes {
    /// `repository` added `bytes` to its project.
    pub fn grow(&mut self, repository: &str, bytes: u64) {
        if bytes > 0 {
            self.entry(repository).grow += bytes;
        }
    }

    /// `repository` took `bytes` from its project.
    pub fn shrink(&mut self, repository: &str, bytes: u64) {
        if bytes > 0 {
            self.entry(repository).shrink += bytes;
        }
    }

    fn entry(&mut self, repository: &str) -> &mut Change {
        &mut self
            .0
            .entry(project_of(repository).to_owned())
            .or_insert_with(|| (Change::default(), repository.to_owned()))
            .0
    }

    /// The changes, by project, with a repository that caused each (events name it).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Change, &str)> {
        self.0.iter().filter(|(_, (c, _))| !c.is_empty()).map(|(p, (c, r))| (p.as_str(), *c, r.as_str()))
    }
}

/// The quotas of a metadata store (a supertrait of [`MetadataStore`](crate::MetadataStore)):
/// usage is kept by the store's own writes; these read it and set limits.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// The quota of `project`; `None` when it never held anything and was never given a limit.
    async fn quota(&self, project: &str) -> Result<Option<Quota>>;

    /// Every quota, in project name order.
    async fn quotas(&self) -> Result<Vec<Quota>>;

    /// Sets the limit (`None`: none) and warning percentage of `project`'s quota, making it if
    /// there is none, with `events`; the quota after. Usage is kept as it is, even above a new
    /// lower limit (further growth is refused).
    async fn set_quota(&self, project: &str, limit: Option<u64>, warn_percent: u8, events: &[Event]) -> Result<Quota>;

    /// Removes the quota of a project that holds nothing (a deleted project); `false` when it
    /// holds something and was kept.
    async fn remove_quota(&self, project: &str) -> Result<bool>;
}

/// A project's usage recomputed from scratch against its counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The project.
    pub project: String,
    /// What the counter says.
    pub counted: u64,
    /// What its repositories hold.
    pub actual: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: Option<u64>, used: u64) -> Quota {
        Quota { limit, used, ..Quota::new("team", 0) }
    }

    #[test]
    fn admits_within_the_limit_and_refuses_past_it() {
        let q = quota(Some(100), 60);
        let (after, warning) = q.admit(Change { grow: 40, shrink: 0 }, 5, "team/app").expect("fits exactly");
        assert_eq!(after.used, 100);
        assert!(warning.is_some(), "crossed 85%");
        let refused = q.admit(Change { grow: 41, shrink: 0 }, 5, "team/app").expect_err("one byte over");
        assert!(matches!(refused, Error::QuotaExceeded { used: 60, limit: 100, needed: 41, .. }));
        assert!(refused.to_string().contains("team"), "{refused}");
        // Shrinking is never refused, even over a lowered limit.
        let over = quota(Some(10), 60);
        assert_eq!(over.admit(Change { grow: 0, shrink: 20 }, 5, "team/app").expect("shrinks").0.used, 40);
        assert!(over.admit(Change { grow: 5, shrink: 0 }, 5, "team/app").is_err());
        // No limit: anything goes, and no warning.
        let (after, warning) = quota(None, 0).admit(Change { grow: u64::MAX, shrink: 0 }, 5, "t").expect("no limit");
        assert_eq!((after.used, warning), (u64::MAX, None));
    }

    #[test]
    fn warns_once_when_crossing_upwards() {
        let q = quota(Some(1000), 800);
        assert!(q.admit(Change { grow: 40, shrink: 0 }, 1, "t/a").expect("ok").1.is_none(), "840 < 850");
        let (after, warning) = q.admit(Change { grow: 50, shrink: 0 }, 1, "t/a").expect("ok");
        let warning = warning.expect("850 reached");
        assert_eq!(warning.action, EventAction::QuotaWarning);
        assert!(warning.resource.detail.as_deref().is_some_and(|d| d.contains("85%")));
        assert!(after.admit(Change { grow: 10, shrink: 0 }, 1, "t/a").expect("ok").1.is_none(), "already above");
    }

    #[test]
    fn holdings_count_each_digest_once() {
        let mut h = Holding::default();
        assert_eq!(h.hold(7), 7);
        assert_eq!(h.hold(7), 0);
        assert_eq!(h.release(), 0);
        assert_eq!(h.release(), 7);
        let mut changes = Changes::default();
        changes.grow("team/a", 5);
        changes.grow("team/b/c", 5);
        changes.shrink("other", 3);
        let all: Vec<_> = changes.iter().collect();
        assert_eq!(
            all,
            vec![("other", Change { grow: 0, shrink: 3 }, "other"), ("team", Change { grow: 10, shrink: 0 }, "team/a")]
        );
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(project_of("team/a/b"), "team");
    }
}
