//! Executions: a job of kind [`JOB_KIND`] per execution of a policy. It lists what the policy
//! copies (the source's repositories matching its name filters, their tags matching its tag
//! filters), then copies each artifact as one task, reporting the tasks as its progress after
//! each one and as its result at the end; a task that fails fails alone (the execution then
//! fails, listing which), a stopped execution stops between blobs.

use std::sync::Arc;

use async_trait::async_trait;
use registry_auth::{Accounts, SecretKey};
use registry_core::event::Operator;
use registry_storage::jobs::NewJob;
use registry_storage::{Job, JobContext, JobFailure, JobHandler, JobRunner, Registry};
use serde::{Deserialize, Serialize};

use super::copy::{CHUNK, Copy, Local, Remote, Side};

/// The job kind of an execution.
pub const JOB_KIND: &str = "replication";
/// Task statuses, as Harbor names them.
pub const IN_PROGRESS: &str = "InProgress";
/// A task that copied its artifact (or found it there).
pub const SUCCEED: &str = "Succeed";
/// A task that failed.
pub const FAILED: &str = "Failed";

/// An execution's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionJob {
    /// The policy.
    pub policy_id: u64,
    /// Only this repository and tag (an event-based execution), else everything the policy takes.
    #[serde(default)]
    pub only: Option<(String, String)>,
    /// A deletion to replicate instead (an event-based execution of a policy that replicates
    /// deletions): the repository and the reference deleted (a digest, or a tag).
    #[serde(default)]
    pub deleted: Option<(String, String)>,
}

/// One artifact's copy (Harbor's `ReplicationTask`, with its log).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Task {
    /// Its number within the execution (from 1).
    pub id: u64,
    /// `repository:tag` at the source.
    pub src_resource: String,
    /// `repository:tag` at the destination.
    pub dst_resource: String,
    /// [`IN_PROGRESS`], [`SUCCEED`] or [`FAILED`].
    pub status: String,
    /// When it started and ended (ms).
    pub start_ms: u64,
    /// When it ended (ms; 0: not yet).
    pub end_ms: u64,
    /// Blob bytes sent.
    pub bytes: u64,
    /// What it did, line by line.
    pub log: String,
}

/// An execution's tasks (its progress and result).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Report {
    /// The tasks, in order.
    pub tasks: Vec<Task>,
}

impl Report {
    /// The tasks of `job` (its result when it ended, else its progress).
    pub fn of(job: &Job) -> Report {
        let text = if job.result.is_empty() { &job.progress } else { &job.result };
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// Enqueues an execution of policy `policy_id`; its job id.
pub async fn start(jobs: &JobRunner, policy_id: u64, trigger: &str, key: String) -> registry_storage::Result<u64> {
    let payload = serde_json::to_string(&ExecutionJob { policy_id, only: None, deleted: None }).unwrap_or_default();
    Ok(jobs.enqueue(&NewJob::new(JOB_KIND, payload, trigger).key(key).attempts(3)).await?.0)
}

/// Runs executions.
pub struct Replicator {
    registry: Registry,
    accounts: Accounts,
    key: SecretKey,
}

impl Replicator {
    /// Executions over `registry`, opening endpoints' credentials with `key`; pull-based copies
    /// go to existing projects of `accounts`.
    pub fn new(registry: Registry, accounts: Accounts, key: SecretKey) -> Arc<Replicator> {
        Arc::new(Replicator { registry, accounts, key })
    }
}

#[async_trait]
impl JobHandler for Replicator {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let meta = self.registry.metadata_store();
        let payload: ExecutionJob = serde_json::from_str(&job.payload)
            .map_err(|e| JobFailure::fatal(format!("the execution does not parse: {e}")))?;
        let stored = super::by_id(&**meta, payload.policy_id)
            .await
            .map_err(JobFailure::retrying)?
            .ok_or_else(|| JobFailure::fatal(format!("replication policy {} was deleted", payload.policy_id)))?;
        let policy = stored.doc;
        let filters = policy.filters().map_err(|e| JobFailure::fatal(e.0))?;
        let push = policy.dest_registry != 0;
        let endpoint_id = if push { policy.dest_registry } else { policy.src_registry };
        let endpoint = crate::remote::by_id(&**meta, endpoint_id)
            .await
            .map_err(JobFailure::retrying)?
            .ok_or_else(|| {
                JobFailure::fatal(format!("registry {endpoint_id} of policy {:?} was deleted", policy.name))
            })?
            .doc;
        let remote = crate::remote::client::Remote::of(&endpoint, &self.key).map_err(|e| JobFailure::fatal(e.0))?;
        let session = remote.session().await.map_err(|e| JobFailure::retry(e.0))?;
        let local = Local { registry: self.registry.clone(), operator: Operator::named("replication", None) };
        let far = Remote { session: &session, chunk: policy.copy_by_chunk.then_some(CHUNK) };
        let (from, to): (&dyn Side, &dyn Side) = if push { (&local, &far) } else { (&far, &local) };
        ctx.log(format!("policy {:?}: {} {}", policy.name, if push { "push to" } else { "pull from" }, endpoint.url));
        let summary = Summary { job, policy: &policy, endpoint: &endpoint, push };
        if let Some((repository, reference)) = &payload.deleted {
            let report = self.delete(to, &policy, repository, reference).await;
            return self.ended(ctx, &summary, report, true);
        }

        // What to copy: every repository of the source the name filters take (or the one pushed).
        let repositories = if let Some((repository, _)) = &payload.only {
            vec![repository.clone()]
        } else if push {
            let mut out: Vec<String> = Vec::new();
            loop {
                let page =
                    self.registry.catalog(out.last().map(String::as_str), None).await.map_err(JobFailure::retrying)?;
                out.extend(page.entries);
                if !page.more {
                    break;
                }
            }
            out
        } else {
            session.catalog().await.map_err(|e| JobFailure::retry(e.0))?
        };
        let mut report = Report::default();
        // Whether a task failed for a reason another attempt may mend (a remote down, a store
        // restarting): then the execution is retried (with backoff), resuming where it stopped.
        let mut transient = false;
        for repository in repositories.into_iter().filter(|r| filters.repository(r)) {
            let destination = policy.destination(&repository);
            if !push {
                let project = registry_storage::quota::project_of(&destination).to_owned();
                let exists = self.accounts.project(&project).await.map_err(JobFailure::retrying)?;
                if exists.is_none() {
                    ctx.log(format!(
                        "{repository}: project {project} does not exist here; create it or set dest_namespace"
                    ));
                    report.tasks.push(Task {
                        id: report.tasks.len() as u64 + 1,
                        src_resource: repository.clone(),
                        dst_resource: destination.clone(),
                        status: FAILED.into(),
                        log: format!("project {project} does not exist in this registry\n"),
                        ..Task::default()
                    });
                    continue;
                }
            }
            let tags = match &payload.only {
                Some((_, tag)) => vec![tag.clone()],
                None => from.tags(&repository).await.map_err(JobFailure::retry)?,
            };
            let labelled = match filters.by_labels() {
                true => Some(self.labels_by_tag(&repository).await.map_err(JobFailure::retry)?),
                false => None,
            };
            let taken = |tag: &&String| {
                crate::artifacts::cosign_tag(tag).is_none()
                    && filters.tag(tag)
                    && labelled.as_ref().is_none_or(|l| filters.labels(l.get(*tag).map_or(&[], Vec::as_slice)))
            };
            let copy =
                Copy { from, to, source: &repository, destination: &destination, limit: policy.bytes_per_second() };
            for tag in tags.iter().filter(taken) {
                let mut task = Task {
                    id: report.tasks.len() as u64 + 1,
                    src_resource: format!("{repository}:{tag}"),
                    dst_resource: format!("{destination}:{tag}"),
                    status: IN_PROGRESS.into(),
                    start_ms: self.registry.clock().now_millis(),
                    ..Task::default()
                };
                let outcome = self.one(&copy, &policy, &filters, tag, &mut task).await;
                task.end_ms = self.registry.clock().now_millis();
                match outcome {
                    Ok(line) => {
                        task.status = SUCCEED.into();
                        task.log.push_str(&line);
                    }
                    Err(why) => {
                        task.status = FAILED.into();
                        task.log.push_str(&format!("failed: {why}\n"));
                        ctx.log(format!("{}: {why}", task.src_resource));
                        transient = true;
                    }
                }
                report.tasks.push(task);
                ctx.progress(serde_json::to_string(&report).unwrap_or_default());
            }
        }
        self.ended(ctx, &summary, report, transient)
    }
}

/// What Harbor's `REPLICATION` webhook says of an execution besides its tasks.
struct Summary<'a> {
    job: &'a Job,
    policy: &'a super::Policy,
    endpoint: &'a crate::remote::Endpoint,
    push: bool,
}

impl Summary<'_> {
    /// Harbor's `event_data.replication` for the tasks of `project` (this registry's side).
    fn replication(&self, project: &str, tasks: &[&Task], status: &str) -> serde_json::Value {
        let local = serde_json::json!({"registry_name": "Local", "registry_type": "harbor", "endpoint": "",
            "namespace": project});
        let remote_namespace = tasks
            .first()
            .map(|t| if self.push { &t.dst_resource } else { &t.src_resource })
            .map(|r| registry_storage::quota::project_of(repository_of(r)).to_owned())
            .unwrap_or_default();
        let remote = serde_json::json!({"registry_name": self.endpoint.name, "registry_type": self.endpoint.kind,
            "endpoint": self.endpoint.url, "namespace": remote_namespace});
        let (src, dest) = if self.push { (local, remote) } else { (remote, local) };
        let artifacts = |ok: bool| -> Vec<serde_json::Value> {
            tasks
                .iter()
                .filter(|t| (t.status == SUCCEED) == ok)
                .map(|t| serde_json::json!({"type": "image", "status": t.status, "name_tag": t.src_resource}))
                .collect()
        };
        serde_json::json!({
            "job_status": status,
            "artifact_type": "image",
            "authentication_type": if self.endpoint.access_key.is_empty() { "" } else { "basic" },
            "override_mode": self.policy.overwrite,
            "trigger_type": self.job.trigger.to_ascii_uppercase(),
            "policy_name": self.policy.name,
            "execution_id": self.job.id,
            "execution_timestamp": self.job.created_ms / 1000,
            "src_resource": src,
            "dest_resource": dest,
            "successful_artifact": artifacts(true),
            "failed_artifact": artifacts(false),
        })
    }
}

/// The repository of `repository:tag` or `repository@digest`.
fn repository_of(resource: &str) -> &str {
    resource.split([':', '@']).next().unwrap_or(resource)
}

impl Replicator {
    /// Ends an attempt with `report`: its result, or a failure to retry (`transient`) or not;
    /// when the execution ends (not to be retried), Harbor's `REPLICATION` event per project of
    /// this registry it touched.
    fn ended(
        &self,
        ctx: &JobContext,
        summary: &Summary<'_>,
        report: Report,
        transient: bool,
    ) -> Result<String, JobFailure> {
        let failed = report.tasks.iter().filter(|t| t.status == FAILED).count();
        let result = serde_json::to_string(&report).unwrap_or_default();
        ctx.log(format!("{} tasks, {failed} failed", report.tasks.len()));
        let last = failed == 0 || !transient || summary.job.attempts >= summary.job.max_attempts;
        if last && !report.tasks.is_empty() {
            let status = if failed == 0 { SUCCEED } else { FAILED };
            let mut projects: Vec<&str> = report
                .tasks
                .iter()
                .map(|t| if summary.push { &t.src_resource } else { &t.dst_resource })
                .map(|r| registry_storage::quota::project_of(repository_of(r)))
                .collect();
            projects.sort_unstable();
            projects.dedup();
            for project in projects {
                let tasks: Vec<&Task> = report
                    .tasks
                    .iter()
                    .filter(|t| {
                        let local = if summary.push { &t.src_resource } else { &t.dst_resource };
                        registry_storage::quota::project_of(repository_of(local)) == project
                    })
                    .collect();
                let resource = registry_core::event::Resource {
                    project: Some(project.to_owned()),
                    repository: Some(project.to_owned()),
                    detail: Some(summary.replication(project, &tasks, status).to_string()),
                    ..registry_core::event::Resource::default()
                };
                let now = self.registry.clock().now_millis();
                self.registry.record_event(registry_core::event::Event::new(
                    now,
                    Operator::named("replication", None),
                    registry_core::event::EventAction::Replication,
                    resource,
                ));
            }
        }
        if failed > 0 {
            ctx.progress(result);
            let why = format!("{failed} of {} tasks failed", report.tasks.len());
            return Err(if transient { JobFailure::retry(why) } else { JobFailure::fatal(why) });
        }
        Ok(result)
    }

    /// The replication of a deletion here: the same reference deleted at the destination.
    async fn delete(&self, to: &dyn Side, policy: &super::Policy, repository: &str, reference: &str) -> Report {
        let destination = policy.destination(repository);
        let sep = if reference.contains(':') { "@" } else { ":" };
        let mut task = Task {
            id: 1,
            src_resource: format!("{repository}{sep}{reference}"),
            dst_resource: format!("{destination}{sep}{reference}"),
            start_ms: self.registry.clock().now_millis(),
            ..Task::default()
        };
        match to.delete(&destination, reference).await {
            Ok(true) => {
                task.status = SUCCEED.into();
                task.log = format!("deleted {destination}{sep}{reference}\n");
            }
            Ok(false) => {
                task.status = SUCCEED.into();
                task.log = format!("{destination}{sep}{reference} was not there\n");
            }
            Err(why) => {
                task.status = FAILED.into();
                task.log = format!("deleting failed: {why}\n");
            }
        }
        task.end_ms = self.registry.clock().now_millis();
        Report { tasks: vec![task] }
    }

    /// The label names of each tag's artifact in `repository` of this registry.
    async fn labels_by_tag(&self, repository: &str) -> Result<std::collections::HashMap<String, Vec<String>>, String> {
        let mut out = std::collections::HashMap::new();
        let Ok(name) = registry_core::RepositoryName::parse(repository) else { return Ok(out) };
        let project = registry_storage::quota::project_of(repository);
        let Some(project) = self.accounts.project(project).await.map_err(|e| e.to_string())? else { return Ok(out) };
        let meta = self.registry.metadata_store();
        let names = crate::labels::names_in(&**meta, project.id).await.map_err(|e| e.to_string())?;
        let entries = crate::artifacts::all_manifests(&self.registry, &name).await.map_err(|e| e.to_string())?;
        for entry in entries {
            let labels: Vec<String> = entry.labels.iter().filter_map(|id| names.get(id).cloned()).collect();
            for tag in entry.tags {
                out.insert(tag, labels.clone());
            }
        }
        Ok(out)
    }
}

impl Replicator {
    /// One task: the artifact tagged `tag`, unless the destination's tag names other content and
    /// the policy does not override; a line for the task's log.
    async fn one(
        &self,
        copy: &Copy<'_>,
        policy: &super::Policy,
        filters: &super::Filters,
        tag: &str,
        task: &mut Task,
    ) -> Result<String, String> {
        let source = copy.from.tag_digest(copy.source, tag).await?.ok_or("the tag is gone from the source")?;
        if filters.images_only {
            let read = copy.from.manifest(copy.source, tag).await?.ok_or("the tag is gone from the source")?;
            let manifest =
                registry_core::Manifest::parse(&read.bytes, Some(&read.media_type)).map_err(|e| e.to_string())?;
            let image = manifest.kind.is_index()
                || manifest
                    .effective_artifact_type()
                    .is_none_or(|t| t.contains("container.image") || t.contains("image.config"));
            if !image {
                return Ok("not an image: left out (resource filter)\n".into());
            }
        }
        match copy.to.tag_digest(copy.destination, tag).await? {
            Some(there) if there == source => {
                // There already; its referrers may be new.
                let moved = copy.tag(tag).await?;
                task.bytes = moved.bytes;
                return Ok(format!("{source} is there already; {} new blobs\n", moved.blobs));
            }
            Some(there) if !policy.overwrite => {
                return Ok(format!("kept: the destination's tag names {there} and the policy does not override\n"));
            }
            _ => {}
        }
        let moved = copy.tag(tag).await?;
        task.bytes = moved.bytes;
        Ok(format!(
            "copied {source}: {} blobs ({} bytes) sent, {} there already, {} manifests\n",
            moved.blobs, moved.bytes, moved.skipped, moved.manifests
        ))
    }
}
