//! Repositories and artifacts in Harbor's shapes: `/projects/{p}/repositories[/{r}]`,
//! `…/artifacts[/{reference}]`, `…/artifacts/{reference}/tags[/{tag}]`, `/search`.
//!
//! An artifact is a manifest that stands on its own: not a child of an index in the same
//! repository, not a referrer of another manifest, not a cosign signature, attestation or SBOM
//! tagged `sha256-<hex>.sig|.att|.sbom`. Those are shown with what they belong to (an index's
//! `references`, a subject's `accessories`). Reads need `pull` on the repository; adding a tag
//! `push`; deleting a tag, an artifact or a repository `delete` — the registry's own rules, asked
//! of the same access policy.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::scope::Action;
use registry_core::time::rfc3339;
use registry_core::{Digest, Reference, RepositoryName, Tag};
use registry_platform::artifacts::{Place, all_manifests, place};
use registry_storage::listing::RepositoryStats;
use registry_storage::{ManifestEntry, ManifestRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::{bad_request, forbidden};
use super::pages::page_of;
use super::q::Q;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, status_only};

/// A number that names a repository or an artifact for Harbor's clients (which want numeric
/// ids): the first 53 bits of the SHA-256 of its name, stable across replicas and restarts, and
/// exact in JavaScript.
pub(crate) fn id_of(name: &str) -> u64 {
    let digest = Digest::sha256_of(name.as_bytes());
    let hex = digest.hex();
    u64::from_str_radix(&hex[..14], 16).unwrap_or(0) >> 3
}

/// A repository and the immutability rules in force for it: what every artifact's JSON and
/// every deletion needs besides the manifests themselves.
struct Repo {
    name: RepositoryName,
    protection: registry_storage::Protection,
}

impl Repo {
    async fn of(api: &Api, name: RepositoryName) -> Result<Repo, ApiError> {
        let protection = api.registry.protection(&name).await?;
        Ok(Repo { name, protection })
    }

    /// Refuses, before anything is deleted, when a tag of `entries` is immutable: a deletion
    /// either happens whole or not at all.
    fn refuse_immutable<'a>(&self, entries: impl IntoIterator<Item = &'a ManifestEntry>) -> Result<(), ApiError> {
        for entry in entries {
            for tag in &entry.tags {
                let what = format!("deleting {}, which carries it", entry.record.digest);
                self.protection.check(self.name.as_str(), tag, &what)?;
            }
        }
        Ok(())
    }

    /// The id of one of its manifests (see [`id_of`]).
    fn manifest_id(&self, digest: &Digest) -> u64 {
        id_of(&format!("{}@{digest}", self.name))
    }

    /// The tags of `entry` (`Tag`): each with the artifact's push and pull time.
    fn tags_json(&self, entry: &ManifestEntry, signed: bool) -> Vec<Value> {
        let (id, repository_id) = (self.manifest_id(&entry.record.digest), id_of(self.name.as_str()));
        let (pushed, pulled) = (rfc3339(entry.record.pushed_at), time_ms(entry.pulls.last_ms));
        entry
            .tags
            .iter()
            .map(|t| {
                json!({
                    "id": id_of(&format!("{}:{t}", self.name)),
                    "repository_id": repository_id,
                    "artifact_id": id,
                    "name": t,
                    "push_time": pushed,
                    "pull_time": pulled,
                    "immutable": self.protection.protects(self.name.as_str(), t).is_some(),
                    "signed": signed,
                })
            })
            .collect()
    }

    /// Deletes the manifests `digests` in this order, each as `DELETE /v2/<name>/manifests/<digest>`
    /// (one already gone is no error: another request took it).
    async fn delete(
        &self,
        api: &Api,
        digests: &[&Digest],
        operator: &registry_core::event::Operator,
    ) -> Result<(), ApiError> {
        for digest in digests {
            match api.registry.delete_manifest(&self.name, &Reference::Digest((*digest).clone()), operator).await {
                Ok(()) | Err(registry_storage::Error::ManifestUnknown { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The manifest a `{reference}` of the path names (a digest or a tag), with its tags, pulls
    /// and labels: one read of the store, whatever the repository holds.
    async fn entry(&self, api: &Api, reference: &str) -> Result<ManifestEntry, ApiError> {
        let missing =
            || ApiError::harbor(StatusCode::NOT_FOUND, format!("artifact {}:{reference} not found", self.name));
        let store = api.registry.metadata_store();
        let digest = if reference.contains(':') {
            Digest::parse(reference).map_err(|e| bad_request(format!("reference {reference:?}: {e}")))?
        } else {
            let tag = Tag::parse(reference).map_err(|e| bad_request(format!("reference {reference:?}: {e}")))?;
            store.resolve_tag(&self.name, &tag).await?.ok_or_else(missing)?
        };
        store.manifest_entry(&self.name, &digest).await?.ok_or_else(missing)
    }

    /// The accessories of `subject` with Harbor's kinds, in digest order: its referrers, and the
    /// manifests tagged only by the cosign scheme for it (`sha256-<hex>.sig|.att|.sbom`), as
    /// [`place`] sorts them. Read by subject and by tag: the cost does not grow with the
    /// repository.
    async fn accessories(&self, api: &Api, subject: &Digest) -> Result<Vec<(ManifestEntry, &'static str)>, ApiError> {
        let store = api.registry.metadata_store();
        let mut digests: Vec<Digest> =
            store.referrers(&self.name, subject).await?.into_iter().map(|r| r.digest).collect();
        let prefix = format!("sha256-{}.", subject.hex());
        if subject.to_string().starts_with("sha256:")
            && let Some(page) = store.list_tags(&self.name, Some(&prefix), 8).await?
        {
            for tag in page.entries.iter().take_while(|t| t.starts_with(&prefix)) {
                if let Ok(tag) = Tag::parse(tag)
                    && let Some(digest) = store.resolve_tag(&self.name, &tag).await?
                {
                    digests.push(digest);
                }
            }
        }
        digests.sort();
        digests.dedup();
        let mut out = Vec::new();
        for digest in digests {
            let Some(entry) = store.manifest_entry(&self.name, &digest).await? else { continue };
            if let Place::Accessory { subject: s, kind } = place(&entry)
                && s == *subject
            {
                out.push((entry, kind));
            }
        }
        Ok(out)
    }
}

/// Whether a signature is among `accessories`.
fn signed(accessories: &[(ManifestEntry, &'static str)]) -> bool {
    accessories.iter().any(|(_, kind)| kind.starts_with("signature."))
}

/// Every manifest of a repository sorted into artifacts and what belongs to them: for the
/// filtered artifacts listing and deleting a whole repository, which must see everything.
struct Contents {
    entries: Vec<ManifestEntry>,
    places: Vec<Place>,
}

impl Contents {
    async fn read(api: &Api, name: &RepositoryName) -> Result<Contents, ApiError> {
        let entries = all_manifests(&api.registry, name).await?;
        let places = entries.iter().map(place).collect();
        Ok(Contents { entries, places })
    }

    /// The artifacts, newest push first (Harbor's default order).
    fn artifacts(&self) -> Vec<&ManifestEntry> {
        let mut out: Vec<&ManifestEntry> =
            self.entries.iter().zip(&self.places).filter(|(_, p)| **p == Place::Artifact).map(|(e, _)| e).collect();
        out.sort_by(|a, b| b.record.pushed_at.cmp(&a.record.pushed_at).then(a.record.digest.cmp(&b.record.digest)));
        out
    }
}

/// A manifest's size as Harbor reports it: its own bytes, its blobs' and (an index's) its
/// children's.
async fn size_of(api: &Api, repo: &Repo, record: &ManifestRecord) -> Result<u64, ApiError> {
    let store = api.registry.metadata_store();
    let index = is_index(record);
    let mut total = record.size;
    for reference in &record.references {
        let child = if index { store.get_manifest(&repo.name, reference).await? } else { None };
        total += match child {
            Some(child) => Box::pin(size_of(api, repo, &child)).await?,
            None => store.blob_link(&repo.name, reference).await?.unwrap_or(0),
        };
    }
    Ok(total)
}

fn is_index(record: &ManifestRecord) -> bool {
    record.media_type.contains("index") || record.media_type.contains("manifest.list")
}

/// An index's children with their platforms (`references`), read from the index itself.
async fn references(api: &Api, repo: &Repo, entry: &ManifestEntry) -> Result<Value, ApiError> {
    if !is_index(&entry.record) {
        return Ok(Value::Array(Vec::new()));
    }
    let (_, bytes) = api.registry.get_manifest(&repo.name, &Reference::Digest(entry.record.digest.clone())).await?;
    let index: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let parent = repo.manifest_id(&entry.record.digest);
    let children = index.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(Value::Array(
        children
            .iter()
            .map(|child| {
                let digest = child.get("digest").and_then(Value::as_str).unwrap_or_default();
                json!({
                    "parent_id": parent,
                    "child_id": id_of(&format!("{}@{digest}", repo.name)),
                    "child_digest": digest,
                    "platform": child.get("platform").cloned().unwrap_or(Value::Null),
                    "annotations": child.get("annotations").cloned().unwrap_or_else(|| json!({})),
                    "urls": child.get("urls").cloned().unwrap_or_else(|| json!([])),
                })
            })
            .collect(),
    ))
}

/// Harbor's artifact type (`IMAGE`, `CHART`, `SIGNATURE`, `SBOM`…), from the manifest's types.
fn kind_of(entry: &ManifestEntry) -> &'static str {
    registry_platform::additions::kind_of(&entry.record).harbor_name()
}

fn time_ms(ms: u64) -> Value {
    if ms == 0 { Value::Null } else { rfc3339(ms / 1000).into() }
}

/// An artifact (`Artifact`): its own fields and what belongs to it, each read by key (its
/// accessories by subject and tag, its size by its references), so a page costs the same in a
/// repository of ten manifests or of a hundred thousand.
async fn artifact_json(
    api: &Api,
    project: &Project,
    repo: &Repo,
    entry: &ManifestEntry,
    with: With,
) -> Result<Value, ApiError> {
    let r = &entry.record;
    let id = repo.manifest_id(&r.digest);
    let accessories = repo.accessories(api, &r.digest).await?;
    let mut accessory_json = Vec::new();
    for (a, kind) in &accessories {
        accessory_json.push(accessory_json_of(api, repo, entry, a, kind).await?);
    }
    let signed = signed(&accessories);
    let tags = if with.tags { repo.tags_json(entry, signed) } else { Vec::new() };
    let overview = match with.scan_overview {
        #[cfg(feature = "scanning")]
        true => super::scans::overview(api, project, r).await?,
        _ => None,
    };
    let sbom: Option<Value> = match with.sbom_overview {
        #[cfg(feature = "scanning")]
        true => super::scans::sbom_overview(api, project, r).await?,
        _ => None,
    };
    let repository = encode_repository(&repo.name, project);
    let digest = r.digest.to_string();
    let mut links = super::additions::links(registry_platform::additions::kind_of(r), project, &repository, &digest);
    if overview.is_some() {
        let href = format!(
            "/api/v2.0/projects/{}/repositories/{repository}/artifacts/{digest}/additions/vulnerabilities",
            project.name
        );
        links.insert("vulnerabilities".into(), json!({"href": href, "absolute": false}));
    }
    if sbom.as_ref().is_some_and(|o| o["sbom_digest"].is_string()) {
        let href =
            format!("/api/v2.0/projects/{}/repositories/{repository}/artifacts/{digest}/additions/sbom", project.name);
        links.insert("sbom".into(), json!({"href": href, "absolute": false}));
    }
    let mut out = json!({
        "id": id,
        "type": kind_of(entry),
        "media_type": r.artifact_type.clone().unwrap_or_else(|| r.media_type.clone()),
        "manifest_media_type": r.media_type,
        "artifact_type": r.artifact_type,
        "project_id": project.id,
        "repository_id": id_of(repo.name.as_str()),
        "repository_name": repo.name.as_str(),
        "digest": r.digest.to_string(),
        "size": size_of(api, repo, r).await?,
        "push_time": rfc3339(r.pushed_at),
        "pull_time": time_ms(entry.pulls.last_ms),
        "pull_count": entry.pulls.count,
        "annotations": r.annotations,
        "extra_attrs": super::additions::extra_attrs(api, &repo.name, r).await?,
        "labels": super::labels::labels_of(api, &entry.labels).await?,
        "tags": tags,
        "signed": signed,
        "references": references(api, repo, entry).await?,
        "accessories": accessory_json,
        "addition_links": links,
    });
    if let Some(overview) = overview {
        out["scan_overview"] = overview;
    }
    if let Some(sbom) = sbom {
        out["sbom_overview"] = sbom;
    }
    Ok(out)
}

/// What an artifact's JSON carries besides its own fields.
#[derive(Debug, Clone, Copy)]
struct With {
    /// Its tags.
    tags: bool,
    /// Its scan overview (`with_scan_overview`).
    scan_overview: bool,
    /// Its SBOM overview (`with_sbom_overview`).
    sbom_overview: bool,
}

impl With {
    fn of(call: &ApiCall) -> With {
        With {
            tags: call.query.get("with_tag") != Some("false"),
            scan_overview: call.query.get("with_scan_overview") == Some("true"),
            sbom_overview: call.query.get("with_sbom_overview") == Some("true"),
        }
    }
}

/// An accessory of `subject` in Harbor's `Accessory` shape.
async fn accessory_json_of(
    api: &Api,
    repo: &Repo,
    subject: &ManifestEntry,
    accessory: &ManifestEntry,
    kind: &str,
) -> Result<Value, ApiError> {
    let accessory_id = repo.manifest_id(&accessory.record.digest);
    Ok(json!({
        "id": accessory_id,
        "artifact_id": accessory_id,
        "subject_artifact_id": repo.manifest_id(&subject.record.digest),
        "subject_artifact_digest": subject.record.digest.to_string(),
        "subject_artifact_type": kind_of(subject),
        "subject_artifact_repo": repo.name.as_str(),
        "digest": accessory.record.digest.to_string(),
        "size": size_of(api, repo, &accessory.record).await?,
        "type": kind,
        "icon": "",
        "creation_time": rfc3339(accessory.record.pushed_at),
    }))
}

/// `GET /projects/{p}/repositories/{r}/artifacts/{reference}/accessories`: its signatures,
/// attestations, SBOMs and other referrers; `q=type=…`, `q=digest=…`, paged.
pub(crate) async fn list_accessories(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let q = Q::parse(call.query.get("q"), &["type", "digest"])?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    let mut all = Vec::new();
    for (a, kind) in repo.accessories(&api, &entry.record.digest).await? {
        if q.accepts("type", kind) && q.accepts("digest", &a.record.digest.to_string()) {
            all.push(accessory_json_of(&api, &repo, &entry, &a, kind).await?);
        }
    }
    let reference = call.params.get("reference")?.to_owned();
    let path = format!(
        "/projects/{}/repositories/{}/artifacts/{reference}/accessories",
        project.name,
        encode_repository(&name, &project)
    );
    page_of(&call, &path, all, |v| v)
}

/// The project and repository of a path, checked: the repository must belong to the project.
pub(crate) async fn repository_of(api: &Api, call: &ApiCall) -> Result<(Project, RepositoryName), ApiError> {
    let project = api.project(call, "project_name").await?;
    let short = call.params.repository("repository_name")?;
    let full = format!("{}/{short}", project.name);
    let name = RepositoryName::parse(&full).map_err(|e| bad_request(format!("repository {full:?}: {e}")))?;
    Ok((project, name))
}

/// Refuses who may not do `action` on `repository` (401 anonymous, 403 otherwise).
pub(crate) async fn require(
    api: &Api,
    call: &ApiCall,
    project: &Project,
    repository: &str,
    action: Action,
) -> Result<(), ApiError> {
    api.require_see(call, project).await?;
    if api.may(call.caller(), repository, action.clone()).await? {
        return Ok(());
    }
    call.signed_in()?;
    Err(forbidden(format!("{action} on {repository} is not granted to you")))
}

fn repository_missing(name: &RepositoryName) -> ApiError {
    ApiError::harbor(StatusCode::NOT_FOUND, format!("repository {name} not found"))
}

/// A repository (`Repository`), from its counts.
fn repository_json(project: &Project, stats: &RepositoryStats) -> Value {
    json!({
        "id": id_of(&stats.name),
        "project_id": project.id,
        "name": stats.name,
        "description": "",
        "artifact_count": stats.artifacts,
        "pull_count": stats.pulls,
        "creation_time": rfc3339(stats.created),
        "update_time": rfc3339(stats.updated),
    })
}

/// The repositories of `project` the caller may pull, newest push first, one page of them and
/// how many: read as a page of the store's listing when the caller may pull everywhere in the
/// project (public, a member for all of it, an administrator); otherwise each repository is asked
/// of the access policy (a member or robot limited to some repositories), so only that caller's
/// listing costs the project's size.
/// `name` filters by name (which reads every repository's name too).
async fn visible_repositories(
    api: &Api,
    who: &registry_auth::Identity,
    project: &Project,
    name: Option<&(dyn Fn(&str) -> bool + Sync)>,
    paging: super::pages::Paging,
) -> Result<(Vec<RepositoryStats>, u64), ApiError> {
    let store = api.registry.metadata_store();
    let (offset, limit) = (paging.offset(), paging.limit());
    if name.is_none() && api.may_pull_everywhere(who, &project.name).await? {
        let page = store.project_repositories(&project.name, offset, limit).await?;
        return Ok((page.entries, page.total));
    }
    let mut chosen = Vec::new();
    let mut at = 0;
    loop {
        let page = store.project_repositories(&project.name, at, LISTING_CHUNK).await?;
        at += page.entries.len();
        let done = page.entries.len() < LISTING_CHUNK;
        for stats in page.entries {
            if name.is_none_or(|accept| accept(&stats.name)) && api.may(who, &stats.name, Action::Pull).await? {
                chosen.push(stats);
            }
        }
        if done {
            let total = chosen.len() as u64;
            return Ok((chosen.into_iter().skip(offset).take(limit).collect(), total));
        }
    }
}

/// Repositories read from the store's listing per call when each must be asked.
const LISTING_CHUNK: usize = 500;

/// `GET /projects/{p}/repositories`: with artifact and pull counts, newest update first;
/// `q=name=~x`. Repositories with no artifact left are not listed (Harbor deletes them).
pub(crate) async fn list_repositories(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name").await?;
    api.require_see(&call, &project).await?;
    let q = Q::parse(call.query.get("q"), &["name"])?;
    let paging = super::pages::Paging::of(&call)?;
    let by_name = |name: &str| q.accepts("name", name);
    let filter: Option<&(dyn Fn(&str) -> bool + Sync)> = if q.is_empty() { None } else { Some(&by_name) };
    let (page, total) = visible_repositories(&api, call.caller(), &project, filter, paging).await?;
    let page = page.iter().map(|stats| repository_json(&project, stats)).collect();
    super::pages::page_response(&call, &format!("/projects/{}/repositories", project.name), paging, page, total)
}

/// A repository's counts, when it is listed (holds an artifact).
async fn listed_stats(api: &Api, name: &RepositoryName) -> Result<RepositoryStats, ApiError> {
    let stats = api.registry.metadata_store().repository_stats(name).await?;
    stats.filter(RepositoryStats::listed).ok_or_else(|| repository_missing(name))
}

/// `GET /projects/{p}/repositories/{r}`.
pub(crate) async fn get_repository(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let stats = listed_stats(&api, &name).await?;
    Ok(json_response(StatusCode::OK, &repository_json(&project, &stats)))
}

/// `DELETE /projects/{p}/repositories/{r}`: deletes every manifest (garbage collection frees
/// the blobs).
pub(crate) async fn delete_repository(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Delete).await?;
    listed_stats(&api, &name).await?;
    let repo = Repo::of(&api, name.clone()).await?;
    let contents = Contents::read(&api, &name).await?;
    // Accessories and referrers first, then artifacts, then what indexes held.
    let mut order: Vec<(&ManifestEntry, &Place)> = contents.entries.iter().zip(&contents.places).collect();
    order.sort_by_key(|(_, place)| match place {
        Place::Accessory { .. } => 0,
        Place::Artifact => 1,
        Place::Child => 2,
    });
    repo.refuse_immutable(contents.entries.iter())?;
    let digests: Vec<&Digest> = order.iter().map(|(e, _)| &e.record.digest).collect();
    repo.delete(&api, &digests, &call.operator).await?;
    Ok(status_only(StatusCode::OK))
}

/// The manifest a `{reference}` of the path names.
pub(crate) async fn record_of(
    api: &Api,
    call: &ApiCall,
    name: &registry_core::RepositoryName,
) -> Result<(ManifestRecord, Option<String>), ApiError> {
    let text = call.params.get("reference")?;
    let reference = Reference::parse(text).map_err(|e| bad_request(format!("reference {text:?}: {e}")))?;
    let record = api.registry.stat_manifest(name, &reference).await.map_err(|e| match e {
        registry_storage::Error::ManifestUnknown { .. } => {
            ApiError::harbor(StatusCode::NOT_FOUND, format!("artifact {name}:{text} not found"))
        }
        other => other.into(),
    })?;
    Ok((record, reference.as_tag().map(|t| t.as_str().to_owned())))
}

/// `GET /projects/{p}/repositories/{r}/artifacts`: `q=digest=…`, `q=tags=…` (`tags=*`: tagged,
/// `tags=nil`: untagged), `with_tag`, newest first.
pub(crate) async fn list_artifacts(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let q = Q::parse(call.query.get("q"), &["digest", "tags", "type", "media_type", "labels"])?;
    check_type(&q)?;
    let with = With::of(&call);
    let paging = super::pages::Paging::of(&call)?;
    let repo = Repo::of(&api, name.clone()).await?;
    let (chosen, total) = if q.is_empty() {
        // Harbor's default listing: one page of the store's index.
        let page = api.registry.metadata_store().artifacts(&name, paging.offset(), paging.limit()).await?;
        (page.entries, page.total)
    } else {
        // A filter reads every manifest of the repository.
        let contents = Contents::read(&api, &name).await?;
        let chosen: Vec<ManifestEntry> = contents
            .artifacts()
            .into_iter()
            .filter(|e| q.accepts("digest", &e.record.digest.to_string()))
            .filter(|e| type_accepts(&q, kind_of(e)) && q.accepts("media_type", &e.record.media_type))
            .filter(|e| q.accepts_set("labels", &e.labels.iter().map(u64::to_string).collect::<Vec<_>>()))
            .filter(|e| match q.get("tags") {
                Some(super::q::Condition::Exact(v)) if v == "*" => !e.tags.is_empty(),
                Some(super::q::Condition::Exact(v)) if v == "nil" => e.tags.is_empty(),
                Some(_) => e.tags.iter().any(|t| q.accepts("tags", t)),
                None => true,
            })
            .cloned()
            .collect();
        let total = chosen.len() as u64;
        (paging.slice(chosen), total)
    };
    let mut page = Vec::new();
    for entry in &chosen {
        page.push(artifact_json(&api, &project, &repo, entry, with).await?);
    }
    let path = format!("/projects/{}/repositories/{}/artifacts", project.name, encode_repository(&name, &project));
    super::pages::page_response(&call, &path, paging, page, total)
}

/// Whether `q`'s `type` (any case, one or `{A B}`) accepts `kind`.
fn type_accepts(q: &Q, kind: &str) -> bool {
    match q.get("type") {
        Some(super::q::Condition::Exact(v)) => v.eq_ignore_ascii_case(kind),
        Some(super::q::Condition::Any(list)) => list.iter().any(|v| v.eq_ignore_ascii_case(kind)),
        _ => true,
    }
}

/// Refuses `q=type=…` naming no kind of artifact (it would match nothing, silently).
fn check_type(q: &Q) -> Result<(), ApiError> {
    let names = match q.get("type") {
        Some(super::q::Condition::Exact(v)) => vec![v.clone()],
        Some(super::q::Condition::Any(list)) => list.clone(),
        _ => return Ok(()),
    };
    for name in names {
        if registry_core::kind::ArtifactKind::from_harbor_name(&name).is_none() {
            let known: Vec<&str> = registry_core::kind::ArtifactKind::ALL.iter().map(|k| k.harbor_name()).collect();
            return Err(bad_request(format!("q: type {name:?} is not one of {}", known.join(", "))));
        }
    }
    Ok(())
}

/// A repository's name within its project, encoded twice for a path (Harbor's convention).
fn encode_repository(name: &RepositoryName, project: &Project) -> String {
    let short = name.as_str().strip_prefix(&format!("{}/", project.name)).unwrap_or(name.as_str());
    short.replace('/', "%252F")
}

/// `GET /projects/{p}/repositories/{r}/artifacts/{reference}`.
pub(crate) async fn get_artifact(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let repo = Repo::of(&api, name).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    let with = With { tags: true, ..With::of(&call) };
    Ok(json_response(StatusCode::OK, &artifact_json(&api, &project, &repo, &entry, with).await?))
}

/// `DELETE /projects/{p}/repositories/{r}/artifacts/{reference}`: the manifest with its tags
/// (as `DELETE /v2/<name>/manifests/<digest>`), and its accessories.
pub(crate) async fn delete_artifact(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Delete).await?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    let accessories = repo.accessories(&api, &entry.record.digest).await?;
    repo.refuse_immutable(accessories.iter().map(|(a, _)| a).chain([&entry]))?;
    repo.delete(&api, &accessories.iter().map(|(a, _)| &a.record.digest).collect::<Vec<_>>(), &call.operator).await?;
    api.registry.delete_manifest(&name, &Reference::Digest(entry.record.digest.clone()), &call.operator).await?;
    Ok(status_only(StatusCode::OK))
}

/// `GET /projects/{p}/repositories/{r}/artifacts/{reference}/tags`.
pub(crate) async fn list_tags(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    let tags = repo.tags_json(&entry, signed(&repo.accessories(&api, &entry.record.digest).await?));
    let reference = call.params.get("reference")?.to_owned();
    let path = format!(
        "/projects/{}/repositories/{}/artifacts/{reference}/tags",
        project.name,
        encode_repository(&name, &project)
    );
    page_of(&call, &path, tags, |v| v)
}

/// `Tag` in a request.
#[derive(Deserialize)]
struct TagReq {
    name: String,
}

/// `POST /projects/{p}/repositories/{r}/artifacts/{reference}/tags` `{"name": …}`: 201; 409
/// when the tag is on another artifact already (Harbor's rule: delete it first).
pub(crate) async fn create_tag(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Push).await?;
    let req: TagReq = call.json()?;
    let tag = Tag::parse(&req.name).map_err(|e| bad_request(format!("tag {:?}: {e}", req.name)))?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    if let Some(holder) = api.registry.metadata_store().resolve_tag(&name, &tag).await? {
        let message = if holder == entry.record.digest {
            format!("tag {tag} is already on this artifact")
        } else {
            format!("tag {tag} is on artifact {holder} already: delete it there first")
        };
        return Err(ApiError::harbor(StatusCode::CONFLICT, message));
    }
    api.registry.tag_manifest(&name, &entry.record.digest, &tag, &call.operator).await?;
    Ok(status_only(StatusCode::CREATED))
}

/// `DELETE /projects/{p}/repositories/{r}/artifacts/{reference}/tags/{tag_name}`.
pub(crate) async fn delete_tag(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Delete).await?;
    let text = call.params.get("tag_name")?;
    let tag = Tag::parse(text).map_err(|e| bad_request(format!("tag {text:?}: {e}")))?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    if !entry.tags.iter().any(|t| t == tag.as_str()) {
        return Err(ApiError::harbor(
            StatusCode::NOT_FOUND,
            format!("tag {tag} is not on artifact {}", entry.record.digest),
        ));
    }
    api.registry.delete_manifest(&name, &Reference::Tag(tag), &call.operator).await?;
    Ok(status_only(StatusCode::OK))
}

/// `GET /search?q=`: the projects and repositories the caller can see whose names contain `q`.
pub(crate) async fn search(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let text = call.query.get("q").unwrap_or_default().to_owned();
    let accounts = api.accounts()?;
    let who = call.caller().clone();
    let (mut projects, mut repositories) = (Vec::new(), Vec::new());
    let extras = super::shapes::ProjectExtras::default();
    for p in accounts.projects().await? {
        if !api.may_see(&who, &p).await? {
            continue;
        }
        if p.name.contains(&text) {
            projects.push(super::shapes::project(&p, &extras));
        }
        let contains = |name: &str| name.contains(&text);
        let everything = super::pages::Paging { page: 1, page_size: u64::MAX / 2 };
        for stats in visible_repositories(&api, &who, &p, Some(&contains), everything).await?.0 {
            repositories.push(json!({
                "project_id": p.id,
                "project_name": p.name,
                "project_public": p.public,
                "repository_name": stats.name,
                "pull_count": stats.pulls,
                "artifact_count": stats.artifacts,
            }));
        }
    }
    Ok(json_response(StatusCode::OK, &json!({"project": projects, "repository": repositories})))
}

/// `{"id": label_id}` of a label to add.
#[derive(Deserialize)]
struct LabelRef {
    id: u64,
}

/// `POST /projects/{p}/repositories/{r}/artifacts/{reference}/labels` `{"id": …}`: 201; 409 when
/// the artifact has it already; 403 for another project's label.
pub(crate) async fn add_label(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    api.require_permission(&call, &project, "artifact-label", "create").await?;
    let LabelRef { id } = call.json()?;
    let label = super::labels::named(&api, id).await?;
    super::labels::usable_in(&label, &project)?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    let digest = entry.record.digest.to_string();
    let event = super::labels::artifact_event(&api, &call, &label, name.as_str(), &digest, true);
    if !api.registry.metadata_store().set_label(&name, &entry.record.digest, id, true, &[event]).await? {
        return Err(ApiError::harbor(
            StatusCode::CONFLICT,
            format!("artifact {digest} has label {} already", label.name),
        ));
    }
    Ok(status_only(StatusCode::CREATED))
}

/// `DELETE /projects/{p}/repositories/{r}/artifacts/{reference}/labels/{label_id}`.
pub(crate) async fn remove_label(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    api.require_permission(&call, &project, "artifact-label", "delete").await?;
    let id = call.params.id("label_id")?;
    let repo = Repo::of(&api, name.clone()).await?;
    let entry = repo.entry(&api, call.params.get("reference")?).await?;
    let digest = entry.record.digest.to_string();
    let label = super::labels::named(&api, id).await?;
    let event = super::labels::artifact_event(&api, &call, &label, name.as_str(), &digest, false);
    if !api.registry.metadata_store().set_label(&name, &entry.record.digest, id, false, &[event]).await? {
        return Err(ApiError::harbor(StatusCode::NOT_FOUND, format!("artifact {digest} has no label {}", label.name)));
    }
    Ok(status_only(StatusCode::OK))
}
