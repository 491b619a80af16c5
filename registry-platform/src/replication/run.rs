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

use super::copy::{Copy, Local, Remote, Side};

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
    let payload = serde_json::to_string(&ExecutionJob { policy_id, only: None }).unwrap_or_default();
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
            .map_err(|e| JobFailure::retry(e.to_string()))?
            .ok_or_else(|| JobFailure::fatal(format!("replication policy {} was deleted", payload.policy_id)))?;
        let policy = stored.policy;
        let filters = policy.filters().map_err(|e| JobFailure::fatal(e.0))?;
        let push = policy.dest_registry != 0;
        let endpoint_id = if push { policy.dest_registry } else { policy.src_registry };
        let endpoint = crate::remote::by_id(&**meta, endpoint_id)
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?
            .ok_or_else(|| {
                JobFailure::fatal(format!("registry {endpoint_id} of policy {:?} was deleted", policy.name))
            })?
            .endpoint;
        let remote = crate::remote::client::Remote::of(&endpoint, &self.key).map_err(|e| JobFailure::fatal(e.0))?;
        let session = remote.session().await.map_err(|e| JobFailure::retry(e.0))?;
        let local = Local { registry: self.registry.clone(), operator: Operator::named("replication", None) };
        let far = Remote { session: &session };
        let (from, to): (&dyn Side, &dyn Side) = if push { (&local, &far) } else { (&far, &local) };
        ctx.log(format!("policy {:?}: {} {}", policy.name, if push { "push to" } else { "pull from" }, endpoint.url));

        // What to copy: every repository of the source the name filters take (or the one pushed).
        let repositories = if let Some((repository, _)) = &payload.only {
            vec![repository.clone()]
        } else if push {
            let mut out: Vec<String> = Vec::new();
            loop {
                let page = self
                    .registry
                    .catalog(out.last().map(String::as_str), None)
                    .await
                    .map_err(|e| JobFailure::retry(e.to_string()))?;
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
                let exists = self.accounts.project(&project).await.map_err(|e| JobFailure::retry(e.to_string()))?;
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
            let copy = Copy { from, to, source: &repository, destination: &destination };
            for tag in tags.iter().filter(|t| crate::artifacts::cosign_tag(t).is_none() && filters.tag(t)) {
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
        let failed = report.tasks.iter().filter(|t| t.status == FAILED).count();
        let result = serde_json::to_string(&report).unwrap_or_default();
        ctx.log(format!("{} tasks, {failed} failed", report.tasks.len()));
        if failed > 0 {
            ctx.progress(result);
            let why = format!("{failed} of {} tasks failed", report.tasks.len());
            return Err(if transient { JobFailure::retry(why) } else { JobFailure::fatal(why) });
        }
        Ok(result)
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
