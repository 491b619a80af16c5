//! Tag retention: per-project policies in Harbor's `RetentionPolicy` shape (kind [`KIND`], one
//! per project, its id in the project's `retention_id` metadata), run as jobs of the shared
//! queue (kind [`JOB_KIND`]) on request, as a dry run, or on the policy's cron schedule.
//!
//! A rule retains some artifacts of the repositories it applies to: the N most recently pushed
//! (`latestPushedK`) or pulled (`latestPulledN`), those pushed (`nDaysSinceLastPush`) or pulled
//! (`nDaysSinceLastPull`) within N days, or all of them (`always`), among those its tag and
//! label selectors pick (untagged artifacts only when the tag selector says
//! `{"untagged": true}`). In every repository at least one enabled rule applies to, an artifact
//! no rule retains is deleted with its accessories; artifacts with an immutable tag are kept;
//! repositories no rule applies to are left alone. Deleting frees space through garbage
//! collection, as in Harbor; each repository's task says how much it will free.
//!
//! What a run deletes is decided by [`evaluate`], a plain function of the policy, the
//! repository's artifacts and the time: a dry run reports exactly what a real run on the same
//! content at the same time deletes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use registry_auth::Accounts;
use registry_core::event::Operator;
use registry_core::{Digest, Reference, RepositoryName};
use registry_storage::immutable::Selector;
use registry_storage::jobs::{JobFilter, NewJob};
use registry_storage::policies::PolicyRecord;
use registry_storage::{Job, JobContext, JobFailure, JobHandler, JobRunner, MetadataStore, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::artifacts::{Place, all_manifests, place};
use crate::cron::Cron;
use crate::selectors::{Invalid, SelectorDoc, Target, repositories};

/// The policy kind of retention policies.
pub const KIND: &str = "retention";
/// The job kind of runs.
pub const JOB_KIND: &str = "retention";
/// The project metadata naming a project's policy.
pub const METADATA: &str = "retention_id";

/// The rule templates: (template, its parameter, what it keeps, the parameter's unit).
pub const TEMPLATES: [(&str, Option<&str>, &str, &str); 5] = [
    ("latestPushedK", Some("latestPushedK"), "retain the most recently pushed # artifacts", "count"),
    ("latestPulledN", Some("latestPulledN"), "retain the most recently pulled # artifacts", "count"),
    ("nDaysSinceLastPush", Some("nDaysSinceLastPush"), "retain the artifacts pushed within the last # days", "days"),
    ("nDaysSinceLastPull", Some("nDaysSinceLastPull"), "retain the artifacts pulled within the last # days", "days"),
    ("always", None, "retain always", ""),
];

/// Largest count or number of days a rule takes.
pub const MAX_PARAM: u64 = 100_000;

/// Harbor's `RetentionRule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RetentionRule {
    /// Its id within the policy.
    pub id: u64,
    /// Harbor's priority (kept; rules are or-ed).
    pub priority: i64,
    /// A disabled rule retains nothing and applies nowhere.
    pub disabled: bool,
    /// `retain`.
    pub action: String,
    /// One of [`TEMPLATES`].
    pub template: String,
    /// The template's parameter (`{"latestPushedK": 10}`).
    pub params: BTreeMap<String, Value>,
    /// Which artifacts it considers: tags (`doublestar`, with `{"untagged": true}` in `extras`
    /// to include untagged artifacts) and labels (`label`, `withLabels`/`withoutLabels`).
    pub tag_selectors: Vec<SelectorDoc>,
    /// Where: `{"repository": [...]}`.
    pub scope_selectors: BTreeMap<String, Vec<SelectorDoc>>,
}

/// Harbor's `RetentionRuleTrigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RetentionTrigger {
    /// `Schedule`.
    pub kind: String,
    /// `{"cron": "0 0 0 * * *"}` (empty or absent: runs only on request).
    pub settings: BTreeMap<String, Value>,
    /// Kept as given.
    pub references: BTreeMap<String, Value>,
}

/// Harbor's `RetentionPolicyScope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RetentionScope {
    /// `project`.
    pub level: String,
    /// The project's id.
    #[serde(rename = "ref")]
    pub reference: u64,
}

/// Harbor's `RetentionPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RetentionPolicy {
    /// Its id (the stored policy's).
    pub id: u64,
    /// `or`: an artifact any rule retains is kept.
    pub algorithm: String,
    /// The rules.
    pub rules: Vec<RetentionRule>,
    /// When it runs on its own.
    pub trigger: RetentionTrigger,
    /// Its project.
    pub scope: RetentionScope,
}

/// A rule as [`evaluate`] applies it.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    repositories: Vec<Selector>,
    tags: Vec<Selector>,
    untagged: bool,
    with_labels: Vec<String>,
    without_labels: Vec<String>,
    keep: Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    LatestPushed(u64),
    LatestPulled(u64),
    PushedWithinDays(u64),
    PulledWithinDays(u64),
    Always,
}

impl RetentionPolicy {
    /// The policy checked and filled in (algorithm `or`, scope `project`, ids of new rules), or
    /// what is wrong with it.
    pub fn checked(mut self) -> Result<RetentionPolicy, Invalid> {
        if self.algorithm.is_empty() {
            self.algorithm = "or".into();
        }
        if self.algorithm != "or" {
            return Err(Invalid(format!("algorithm {:?} is unknown; use \"or\"", self.algorithm)));
        }
        if self.scope.level.is_empty() {
            self.scope.level = "project".into();
        }
        if self.scope.level != "project" || self.scope.reference == 0 {
            return Err(Invalid("scope must be {\"level\": \"project\", \"ref\": <the project's id>}".into()));
        }
        if self.rules.len() > 15 {
            return Err(Invalid(format!("a policy has at most 15 rules, not {}", self.rules.len())));
        }
        let mut next = self.rules.iter().map(|r| r.id).max().unwrap_or(0);
        for rule in &mut self.rules {
            if rule.id == 0 {
                next += 1;
                rule.id = next;
            }
            if rule.action.is_empty() {
                rule.action = "retain".into();
            }
        }
        self.compile()?;
        self.cron()?;
        Ok(self)
    }

    /// The schedule, if the policy has one.
    pub fn cron(&self) -> Result<Option<Cron>, Invalid> {
        if !self.trigger.kind.is_empty() && self.trigger.kind != "Schedule" {
            return Err(Invalid(format!("trigger.kind {:?} is unknown; use \"Schedule\"", self.trigger.kind)));
        }
        match self.trigger.settings.get("cron") {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Cron::parse(s).map(Some).map_err(|e| Invalid(format!("trigger.settings.{e}"))),
            Some(other) => Err(Invalid(format!("trigger.settings.cron is a string, not {other}"))),
        }
    }

    /// The enabled rules, checked.
    pub fn compile(&self) -> Result<Vec<CompiledRule>, Invalid> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let what = format!("rules[{i}]");
            let compiled = rule.compile(&what)?;
            if !rule.disabled {
                out.push(compiled);
            }
        }
        Ok(out)
    }

    /// The stored policy (one per project: its name is fixed).
    pub fn record(&self) -> PolicyRecord {
        PolicyRecord {
            id: self.id,
            kind: KIND.into(),
            project_id: self.scope.reference,
            name: "retention".into(),
            body: serde_json::to_string(&RetentionPolicy { id: 0, ..self.clone() }).unwrap_or_default(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    /// The policy a stored record holds.
    pub fn of(record: &PolicyRecord) -> Option<RetentionPolicy> {
        let policy: RetentionPolicy = serde_json::from_str(&record.body).ok()?;
        Some(RetentionPolicy { id: record.id, ..policy })
    }
}

impl RetentionRule {
    fn compile(&self, what: &str) -> Result<CompiledRule, Invalid> {
        if self.action != "retain" && !self.action.is_empty() {
            return Err(Invalid(format!("{what}.action {:?} is unknown; use \"retain\"", self.action)));
        }
        let known = TEMPLATES.iter().find(|(t, ..)| *t == self.template).ok_or_else(|| {
            let names: Vec<&str> = TEMPLATES.iter().map(|(t, ..)| *t).collect();
            Invalid(format!("{what}.template {:?} is unknown; use one of {}", self.template, names.join(", ")))
        })?;
        let n = match known.1 {
            None => 0,
            Some(param) => {
                let value =
                    self.params.get(param).ok_or_else(|| Invalid(format!("{what}.params.{param} is required")))?;
                let n = value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| Invalid(format!("{what}.params.{param} is a whole number, not {value}")))?;
                if n > MAX_PARAM {
                    return Err(Invalid(format!("{what}.params.{param} is at most {MAX_PARAM}, not {n}")));
                }
                n
            }
        };
        let keep = match self.template.as_str() {
            "latestPushedK" => Keep::LatestPushed(n),
            "latestPulledN" => Keep::LatestPulled(n),
            "nDaysSinceLastPush" => Keep::PushedWithinDays(n),
            "nDaysSinceLastPull" => Keep::PulledWithinDays(n),
            _ => Keep::Always,
        };
        let (mut tags, mut untagged, mut with_labels, mut without_labels) = (Vec::new(), false, Vec::new(), Vec::new());
        for (j, s) in self.tag_selectors.iter().enumerate() {
            let at = format!("{what}.tag_selectors[{j}]");
            if s.kind == "label" {
                let names: Vec<String> =
                    s.pattern.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
                match s.decoration.as_str() {
                    "withLabels" => with_labels.extend(names),
                    "withoutLabels" => without_labels.extend(names),
                    other => {
                        return Err(Invalid(format!(
                            "{at}.decoration {other:?} is unknown; use withLabels or withoutLabels"
                        )));
                    }
                }
                continue;
            }
            tags.push(s.compile(Target::Tags, &at)?);
            if !s.extras.trim().is_empty() {
                let extras: Value =
                    serde_json::from_str(&s.extras).map_err(|e| Invalid(format!("{at}.extras is not JSON: {e}")))?;
                untagged |= extras.get("untagged").and_then(Value::as_bool).unwrap_or(false);
            }
        }
        if tags.is_empty() {
            return Err(Invalid(format!("{what} needs a tag selector (for every tag: doublestar \"**\")")));
        }
        Ok(CompiledRule {
            repositories: repositories(&self.scope_selectors, what)?,
            tags,
            untagged,
            with_labels,
            without_labels,
            keep,
        })
    }
}

/// An artifact as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its digest.
    pub digest: Digest,
    /// Its tags.
    pub tags: Vec<String>,
    /// The names of its labels.
    pub labels: Vec<String>,
    /// When it was pushed (seconds).
    pub pushed_at: u64,
    /// When it was last pulled (milliseconds; 0: never).
    pub pulled_ms: u64,
    /// Whether an immutability rule protects one of its tags (then it is always kept).
    pub immutable: bool,
}

impl CompiledRule {
    fn applies_to(&self, path: &str) -> bool {
        self.repositories.iter().all(|s| s.accepts(path))
    }

    fn picks(&self, c: &Candidate) -> bool {
        let tags_ok = if c.tags.is_empty() {
            self.untagged
        } else {
            c.tags.iter().any(|t| self.tags.iter().all(|s| s.accepts(t)))
        };
        tags_ok
            && self.with_labels.iter().all(|l| c.labels.contains(l))
            && !self.without_labels.iter().any(|l| c.labels.contains(l))
    }

    /// The candidates it retains.
    fn retains<'a>(&self, candidates: &'a [Candidate], now_ms: u64) -> Vec<&'a Candidate> {
        let mut picked: Vec<&Candidate> = candidates.iter().filter(|c| self.picks(c)).collect();
        let day_ms = 86_400_000u64;
        match self.keep {
            Keep::Always => picked,
            Keep::LatestPushed(n) => {
                picked.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.digest.cmp(&b.digest)));
                picked.truncate(n as usize);
                picked
            }
            Keep::LatestPulled(n) => {
                picked.sort_by(|a, b| b.pulled_ms.cmp(&a.pulled_ms).then(a.digest.cmp(&b.digest)));
                picked.truncate(n as usize);
                picked
            }
            Keep::PushedWithinDays(n) => {
                let since = now_ms.saturating_sub(n * day_ms);
                picked.retain(|c| c.pushed_at * 1000 >= since);
                picked
            }
            Keep::PulledWithinDays(n) => {
                let since = now_ms.saturating_sub(n * day_ms);
                picked.retain(|c| c.pulled_ms != 0 && c.pulled_ms >= since);
                picked
            }
        }
    }
}

/// What a run does to one repository (`path`: its name inside the project): `None` when no
/// enabled rule applies to it (left alone), else the digests it deletes, in push order. The
/// rule every run and dry run applies.
pub fn evaluate(rules: &[CompiledRule], path: &str, candidates: &[Candidate], now_ms: u64) -> Option<Vec<Digest>> {
    let applying: Vec<&CompiledRule> = rules.iter().filter(|r| r.applies_to(path)).collect();
    if applying.is_empty() {
        return None;
    }
    let mut kept: HashSet<&Digest> = candidates.iter().filter(|c| c.immutable).map(|c| &c.digest).collect();
    for rule in applying {
        kept.extend(rule.retains(candidates, now_ms).into_iter().map(|c| &c.digest));
    }
    let mut doomed: Vec<&Candidate> = candidates.iter().filter(|c| !kept.contains(&c.digest)).collect();
    doomed.sort_by(|a, b| a.pushed_at.cmp(&b.pushed_at).then(a.digest.cmp(&b.digest)));
    Some(doomed.into_iter().map(|c| c.digest.clone()).collect())
}

/// What a run asks for (its job's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The policy.
    pub policy_id: u64,
    /// Report only; delete nothing.
    pub dry_run: bool,
}

/// One repository's part of a run (Harbor's task).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The repository.
    pub repository: String,
    /// `Success`, `Error`.
    pub status: String,
    /// Artifacts considered.
    pub total: u64,
    /// Artifacts kept.
    pub retained: u64,
    /// What was (or, in a dry run, would be) deleted: `digest (tags)`.
    pub deleted: Vec<String>,
    /// Bytes garbage collection frees once they are deleted (the manifests and the blobs no
    /// kept manifest of the repository uses).
    pub freed_bytes: u64,
    /// When it started and ended (ms).
    pub start_ms: u64,
    /// When it ended.
    pub end_ms: u64,
    /// Its log.
    pub log: String,
}

/// A run's report (its job's progress and result).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether it deleted nothing on purpose.
    pub dry_run: bool,
    /// The repositories' tasks, in name order.
    pub tasks: Vec<Task>,
}

/// Runs retention jobs.
pub struct RetentionHandler {
    registry: Registry,
    accounts: Accounts,
}

impl RetentionHandler {
    /// Runs over `registry`, projects and labels from `accounts` and the store's policies.
    pub fn new(registry: Registry, accounts: Accounts) -> Arc<RetentionHandler> {
        Arc::new(RetentionHandler { registry, accounts })
    }

    /// The repositories of a project (their full names), in name order.
    async fn repositories(&self, project: &str) -> registry_storage::Result<Vec<RepositoryName>> {
        let prefix = format!("{project}/");
        let mut out = Vec::new();
        let mut last = Some(prefix.clone());
        while let Some(after) = last.take() {
            let page = self.registry.catalog(Some(&after), None).await?;
            let mut done = !page.more;
            for name in page.entries {
                if !name.starts_with(&prefix) {
                    done = true;
                    break;
                }
                if let Ok(repository) = RepositoryName::parse(&name) {
                    out.push(repository);
                }
                last = Some(name);
            }
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// One repository's task.
    async fn task(
        &self,
        rules: &[CompiledRule],
        project: &str,
        repository: &RepositoryName,
        dry_run: bool,
        labels: &HashMap<u64, String>,
    ) -> registry_storage::Result<Option<Task>> {
        let start_ms = self.registry.clock().now_millis();
        let path = repository.as_str().strip_prefix(&format!("{project}/")).unwrap_or(repository.as_str());
        let entries = all_manifests(&self.registry, repository).await?;
        let protection = self.registry.protection(repository).await?;
        let places: Vec<Place> = entries.iter().map(place).collect();
        let candidates: Vec<Candidate> = entries
            .iter()
            .zip(&places)
            .filter(|(_, p)| **p == Place::Artifact)
            .map(|(e, _)| Candidate {
                digest: e.record.digest.clone(),
                tags: e.tags.clone(),
                labels: e.labels.iter().filter_map(|id| labels.get(id).cloned()).collect(),
                pushed_at: e.record.pushed_at,
                pulled_ms: e.pulls.last_ms,
                immutable: e.tags.iter().any(|t| protection.protects(repository.as_str(), t).is_some()),
            })
            .collect();
        let Some(doomed) = evaluate(rules, path, &candidates, self.registry.clock().now_millis()) else {
            return Ok(None);
        };
        let mut task = Task {
            repository: repository.to_string(),
            status: "Success".into(),
            total: candidates.len() as u64,
            retained: (candidates.len() - doomed.len()) as u64,
            start_ms,
            ..Task::default()
        };
        let by_digest: HashMap<&Digest, &registry_storage::ManifestEntry> =
            entries.iter().map(|e| (&e.record.digest, e)).collect();
        task.freed_bytes = freed_bytes(&self.registry, repository, &entries, &doomed, &places).await?;
        let verb = if dry_run { "would delete" } else { "deleted" };
        let mut log = Vec::new();
        for digest in &doomed {
            let tags = by_digest.get(digest).map(|e| e.tags.join(", ")).unwrap_or_default();
            let line = format!("{digest} ({})", if tags.is_empty() { "untagged".to_owned() } else { tags });
            if !dry_run {
                // Its accessories first, then the artifact, as the artifacts API deletes.
                let accessories = entries
                    .iter()
                    .zip(&places)
                    .filter(|(_, p)| matches!(p, Place::Accessory { subject, .. } if subject == digest));
                let operator = Operator::system();
                let mut failed = None;
                for (accessory, _) in accessories {
                    let reference = Reference::Digest(accessory.record.digest.clone());
                    if let Err(e) = self.registry.delete_manifest(repository, &reference, &operator).await
                        && !matches!(e, registry_storage::Error::ManifestUnknown { .. })
                    {
                        failed = Some(e);
                    }
                }
                let deleted = match failed {
                    Some(e) => Err(e),
                    None => {
                        self.registry.delete_manifest(repository, &Reference::Digest(digest.clone()), &operator).await
                    }
                };
                match deleted {
                    Ok(()) | Err(registry_storage::Error::ManifestUnknown { .. }) => {}
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => {
                        log.push(format!("kept {line}: {e}"));
                        task.status = "Error".into();
                        continue;
                    }
                }
            }
            log.push(format!("{verb} {line}"));
            task.deleted.push(line);
        }
        log.push(format!(
            "{} of {} artifacts retained; {} {} ({} bytes) once garbage collection runs",
            task.retained,
            task.total,
            if dry_run { "would free" } else { "frees" },
            registry_storage::quota::bytes(task.freed_bytes),
            task.freed_bytes
        ));
        task.log = log.join("\n");
        task.end_ms = self.registry.clock().now_millis();
        Ok(Some(task))
    }
}

/// The bytes garbage collection frees once `doomed` (and their accessories) are deleted: their
/// manifests, and every blob or child manifest they reference that no kept manifest of the
/// repository references (each counted once).
async fn freed_bytes(
    registry: &Registry,
    repository: &RepositoryName,
    entries: &[registry_storage::ManifestEntry],
    doomed: &[Digest],
    places: &[Place],
) -> registry_storage::Result<u64> {
    let doomed: HashSet<&Digest> = doomed.iter().collect();
    let gone = |e: &registry_storage::ManifestEntry, p: &Place| match p {
        Place::Accessory { subject, .. } => doomed.contains(subject),
        _ => doomed.contains(&e.record.digest),
    };
    let sizes: HashMap<&Digest, u64> = entries.iter().map(|e| (&e.record.digest, e.record.size)).collect();
    let (mut kept, mut freed): (HashSet<&Digest>, HashSet<&Digest>) = Default::default();
    for (e, p) in entries.iter().zip(places) {
        let side = if gone(e, p) { &mut freed } else { &mut kept };
        side.insert(&e.record.digest);
        side.extend(e.record.references.iter());
    }
    let mut total = 0;
    for digest in freed.into_iter().filter(|d| !kept.contains(d)) {
        total += match sizes.get(digest) {
            Some(size) => *size,
            None => registry.metadata_store().blob_link(repository, digest).await?.unwrap_or(0),
        };
    }
    Ok(total)
}

#[async_trait]
impl JobHandler for RetentionHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let run: Run = serde_json::from_str(&job.payload)
            .map_err(|e| JobFailure::fatal(format!("the run does not parse: {e}")))?;
        let meta = self.registry.metadata_store();
        let record = meta
            .policy(KIND, run.policy_id)
            .await
            .map_err(JobFailure::retrying)?
            .ok_or_else(|| JobFailure::fatal(format!("retention policy {} was deleted", run.policy_id)))?;
        let policy = RetentionPolicy::of(&record).ok_or_else(|| JobFailure::fatal("the policy does not parse"))?;
        let rules = policy.compile().map_err(|e| JobFailure::fatal(e.0))?;
        let project = self
            .accounts
            .project_by_id(policy.scope.reference)
            .await
            .map_err(JobFailure::retrying)?
            .ok_or_else(|| JobFailure::fatal(format!("project {} was deleted", policy.scope.reference)))?;
        let labels: HashMap<u64, String> =
            crate::labels::names_in(&**meta, project.id).await.map_err(JobFailure::retrying)?;
        ctx.log(format!(
            "retention of project {} ({}), policy {}: {} enabled rules",
            project.name,
            if run.dry_run { "dry run" } else { "run" },
            policy.id,
            rules.len()
        ));
        let mut report = Report { dry_run: run.dry_run, tasks: Vec::new() };
        let repositories = self.repositories(&project.name).await.map_err(JobFailure::retrying)?;
        for repository in repositories {
            match self.task(&rules, &project.name, &repository, run.dry_run, &labels).await {
                Ok(Some(task)) => {
                    ctx.log(format!(
                        "{}: {} of {} retained, {} {}",
                        task.repository,
                        task.retained,
                        task.total,
                        if run.dry_run { "would delete" } else { "deleted" },
                        task.deleted.len()
                    ));
                    report.tasks.push(task);
                    ctx.progress(serde_json::to_string(&report).unwrap_or_default());
                }
                Ok(None) => {}
                Err(e) => return Err(JobFailure::retry(format!("{repository}: {e}"))),
            }
        }
        // Harbor's TAG_RETENTION event (webhooks): what the run did, per project.
        let deleted: usize = report.tasks.iter().map(|t| t.deleted.len()).sum();
        let freed: u64 = report.tasks.iter().map(|t| t.freed_bytes).sum();
        let detail = format!(
            "retention {} of project {}: {} repositories, {deleted} artifacts {}, {} to free",
            if run.dry_run { "dry run" } else { "run" },
            project.name,
            report.tasks.len(),
            if run.dry_run { "would be deleted" } else { "deleted" },
            registry_storage::quota::bytes(freed)
        );
        let resource = registry_core::event::Resource {
            project: Some(project.name.clone()),
            repository: Some(project.name.clone()),
            detail: Some(detail),
            ..registry_core::event::Resource::default()
        };
        let now = self.registry.clock().now_millis();
        self.registry.record_event(registry_core::event::Event::new(
            now,
            Operator::system(),
            registry_core::event::EventAction::TagRetention,
            resource,
        ));
        Ok(serde_json::to_string(&report).unwrap_or_default())
    }
}

/// Enqueues a run of `policy`; its job's id. Manual runs get a key of their own (so two are two
/// runs); scheduled ones the key of their time (so replicas enqueue each once).
pub async fn start(
    jobs: &JobRunner,
    policy_id: u64,
    dry_run: bool,
    trigger: &str,
    key: String,
) -> registry_storage::Result<u64> {
    let payload = serde_json::to_string(&Run { policy_id, dry_run }).unwrap_or_default();
    Ok(jobs.enqueue(&NewJob::new(JOB_KIND, payload, trigger).key(key)).await?.0)
}

/// The key prefix of a policy's runs.
pub fn key_prefix(policy_id: u64) -> String {
    format!("retention:{policy_id}:")
}

/// The runs of a policy, newest first, and how many there are.
pub async fn runs(
    jobs: &JobRunner,
    policy_id: u64,
    offset: usize,
    limit: usize,
) -> registry_storage::Result<(Vec<Job>, u64)> {
    let filter = JobFilter { key_prefix: Some(key_prefix(policy_id)), ..JobFilter::kind(JOB_KIND) };
    jobs.queue().jobs(&filter, offset, limit).await
}

/// A run's report so far (or in full once it has finished).
pub fn report_of(job: &Job) -> Report {
    let text = if job.result.is_empty() { &job.progress } else { &job.result };
    serde_json::from_str(text).unwrap_or_default()
}

/// Every minute, enqueues the runs of policies whose schedule fired since the last minute
/// (each fire time once across replicas, by key), until the task is aborted.
pub fn schedule(jobs: Arc<JobRunner>, meta: Arc<dyn MetadataStore>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut checked = jobs.clock().now_secs();
        loop {
            tokio::time::sleep(every).await;
            let now = jobs.clock().now_secs();
            match meta.policies(KIND, None).await {
                Ok(policies) => {
                    for policy in policies.iter().filter_map(RetentionPolicy::of) {
                        let Ok(Some(cron)) = policy.cron() else { continue };
                        // Every fire time in (checked, now]: one run each (the newest is enough).
                        let mut fire = None;
                        let mut at = checked;
                        while let Some(next) = cron.next_after(at).filter(|t| *t <= now) {
                            fire = Some(next);
                            at = next;
                        }
                        if let Some(fire) = fire {
                            let key = format!("{}schedule:{fire}", key_prefix(policy.id));
                            if let Err(e) = start(&jobs, policy.id, false, "schedule", key).await {
                                tracing::warn!(policy = policy.id, error = %e, "enqueueing a scheduled retention run failed");
                            }
                        }
                    }
                    checked = now;
                }
                Err(e) => tracing::warn!(error = %e, "reading the retention policies failed; trying again"),
            }
        }
    })
}

/// Harbor's `RetentionMetadata`: the templates and selectors the portal offers.
pub fn metadata() -> Value {
    let templates: Vec<Value> = TEMPLATES
        .iter()
        .map(|(template, param, text, unit)| {
            let params: Vec<Value> =
                param.iter().map(|_| json!({"type": "int", "unit": unit, "required": true})).collect();
            json!({"rule_template": template, "display_text": text, "action": "retain", "params": params})
        })
        .collect();
    json!({
        "templates": templates,
        "scope_selectors": [{"display_text": "Repositories", "kind": "doublestar", "decorations": ["repoMatches", "repoExcludes"]}],
        "tag_selectors": [
            {"display_text": "Tags", "kind": "doublestar", "decorations": ["matches", "excludes"]},
            {"display_text": "Labels", "kind": "label", "decorations": ["withLabels", "withoutLabels"]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(template: &str, n: Option<u64>, tags: &str, untagged: bool) -> RetentionRule {
        let mut params = BTreeMap::new();
        if let Some(n) = n {
            params.insert(template.to_owned(), json!(n));
        }
        let mut scope = BTreeMap::new();
        scope.insert("repository".to_owned(), vec![SelectorDoc::doublestar(Target::Repositories, "**", false)]);
        let mut tag = SelectorDoc::doublestar(Target::Tags, tags, false);
        if untagged {
            tag.extras = r#"{"untagged":true}"#.into();
        }
        RetentionRule {
            template: template.into(),
            params,
            tag_selectors: vec![tag],
            scope_selectors: scope,
            ..RetentionRule::default()
        }
    }

    fn policy(rules: Vec<RetentionRule>) -> RetentionPolicy {
        RetentionPolicy {
            rules,
            scope: RetentionScope { level: "project".into(), reference: 1 },
            ..RetentionPolicy::default()
        }
    }

    fn candidate(n: u8, tags: &[&str], pushed_at: u64, pulled_ms: u64) -> Candidate {
        Candidate {
            digest: Digest::sha256_of(&[n]),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: vec![],
            pushed_at,
            pulled_ms,
            immutable: false,
        }
    }

    #[test]
    fn rules_retain_and_the_rest_goes() {
        let day = 86_400u64;
        let now_ms = 100 * day * 1000;
        let c = [
            candidate(1, &["v1"], 10 * day, 0),
            candidate(2, &["v2"], 20 * day, 95 * day * 1000),
            candidate(3, &["v3"], 99 * day, 0),
            candidate(4, &[], 98 * day, 0),
            candidate(5, &["dev-1"], 97 * day, 0),
        ];
        let compiled = |p: RetentionPolicy| p.checked().expect("valid").compile().expect("rules");
        let latest = compiled(policy(vec![rule("latestPushedK", Some(1), "v*", false)]));
        let doomed = evaluate(&latest, "app", &c, now_ms).expect("applies");
        let in_push_order = vec![c[0].digest.clone(), c[1].digest.clone(), c[4].digest.clone(), c[3].digest.clone()];
        assert_eq!(
            doomed, in_push_order,
            "all but the newest v*: dev-1 and the untagged one are not picked, so not kept"
        );
        assert!(!doomed.contains(&c[2].digest), "the newest v* stays");
        let pulled = compiled(policy(vec![rule("nDaysSinceLastPull", Some(10), "**", true)]));
        assert_eq!(evaluate(&pulled, "app", &c, now_ms).expect("applies").len(), 4, "only v2 was pulled lately");
        let untagged = compiled(policy(vec![rule("always", None, "**", true)]));
        assert!(evaluate(&untagged, "app", &c, now_ms).expect("applies").is_empty(), "always: all kept");
        let tagged_only = compiled(policy(vec![rule("always", None, "**", false)]));
        assert_eq!(
            evaluate(&tagged_only, "app", &c, now_ms).expect("applies"),
            vec![c[3].digest.clone()],
            "untagged goes"
        );
        let pushed = compiled(policy(vec![rule("nDaysSinceLastPush", Some(5), "**", false)]));
        let doomed = evaluate(&pushed, "app", &c, now_ms).expect("applies");
        assert_eq!(doomed.len(), 3, "v1, v2 and the untagged one: {doomed:?}");
        let mut protected = c.clone();
        protected[0].immutable = true;
        assert!(
            !evaluate(&pushed, "app", &protected, now_ms).expect("applies").contains(&c[0].digest),
            "immutable stays"
        );
        let mut elsewhere = rule("always", None, "**", false);
        elsewhere
            .scope_selectors
            .insert("repository".into(), vec![SelectorDoc::doublestar(Target::Repositories, "other", false)]);
        assert_eq!(
            evaluate(&compiled(policy(vec![elsewhere])), "app", &c, now_ms),
            None,
            "no rule applies: left alone"
        );
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        let mut cron = policy(vec![rule("always", None, "**", false)]);
        cron.trigger.settings.insert("cron".into(), json!("every day"));
        for (bad, says) in [
            (policy(vec![rule("keepMost", Some(1), "**", false)]), "template"),
            (policy(vec![rule("latestPushedK", None, "**", false)]), "params.latestPushedK is required"),
            (policy(vec![rule("latestPushedK", Some(MAX_PARAM + 1), "**", false)]), "at most"),
            (policy(vec![rule("always", None, "{", false)]), "unmatched"),
            (RetentionPolicy { scope: RetentionScope::default(), ..policy(vec![]) }, "scope"),
            (cron, "cron"),
        ] {
            let e = bad.checked().expect_err(says);
            assert!(e.0.contains(says), "{says}: {}", e.0);
        }
    }
}
