//! The audit log, in Harbor's shapes: `GET /audit-logs` (system administrators), `GET
//! /projects/{project}/logs` (the project's members), and the purge (`/system/purgeaudit`). Read
//! from the event stream of the metadata store, newest first, filtered by `q=` (`operation`,
//! `resource`, `resource_type`, `username`, `op_time=[from~to]`) and paged.

use std::sync::Arc;

use http::StatusCode;
use registry_core::event::EventFilter;
use serde::Deserialize;
use serde_json::json;

use super::context::{bad_request, forbidden};
use super::pages::{Paging, page_response};
use super::q::{Condition, Q};
use super::{Api, ApiCall, ApiResult};
use crate::response::json as json_response;

const KEYS: &[&str] = &["operation", "resource", "resource_type", "username", "op_time"];

pub(crate) use registry_platform::audit_record::record;

/// A time in a `q` range: Harbor's `2024-01-02 03:04:05`, RFC 3339, or seconds since the epoch.
fn time_ms(text: &str) -> Result<u64, super::ApiError> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs * 1000);
    }
    let mut iso = text.trim().replacen(' ', "T", 1);
    if !iso.ends_with('Z') && !iso.contains('+') {
        iso.push('Z');
    }
    registry_core::time::parse_timestamp(&iso)
        .map(|secs| secs * 1000)
        .ok_or_else(|| bad_request(format!("q: op_time {text:?} is not a time (2024-01-02 03:04:05)")))
}

/// The filter of a call's `q`.
fn filter(call: &ApiCall) -> Result<EventFilter, super::ApiError> {
    let q = Q::parse(call.query.get("q"), KEYS)?;
    let mut f = EventFilter::default();
    for (key, condition) in q.conditions() {
        let exact = |c: &Condition| match c {
            Condition::Exact(v) | Condition::Fuzzy(v) => Ok(v.clone()),
            _ => Err(bad_request(format!("q: {key} takes one value"))),
        };
        match key.as_str() {
            "operation" => f.operation = Some(exact(condition)?),
            "resource_type" => f.resource_type = Some(exact(condition)?),
            "username" => f.username = Some(exact(condition)?),
            "resource" => f.resource = Some(exact(condition)?),
            "op_time" => match condition {
                Condition::Range(from, to) => {
                    f.from_ms = from.as_deref().map(time_ms).transpose()?;
                    // The end second is included whole.
                    f.to_ms = to.as_deref().map(time_ms).transpose()?.map(|t| t + 999);
                }
                _ => return Err(bad_request("q: op_time is a range: op_time=[from~to]")),
            },
            _ => {}
        }
    }
    Ok(f)
}

async fn page(api: &Api, call: &ApiCall, path: &str, filter: EventFilter) -> ApiResult {
    let paging = Paging::of(call)?;
    let offset = ((paging.page - 1) * paging.page_size) as usize;
    let (events, total) =
        api.registry.metadata_store().query_events(&filter, offset, paging.page_size as usize).await?;
    page_response(call, path, paging, events.iter().map(record).collect(), total)
}

/// `GET /audit-logs`: every record (system administrators).
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let f = filter(&call)?;
    page(&api, &call, "/audit-logs", f).await
}

/// `GET /projects/{project_name_or_id}/logs`: the project's records (its members).
pub(crate) async fn project_logs(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    let who = call.signed_in()?;
    if api.role(who, &project).await?.is_none() {
        return Err(forbidden(format!("only members of project {} see its logs", project.name)));
    }
    let f = EventFilter { projects: Some(vec![project.name.clone()]), ..filter(&call)? };
    page(&api, &call, &format!("/projects/{}/logs", project.name), f).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PurgeParameters {
    audit_retention_hour: Option<u64>,
    dry_run: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PurgeRequest {
    parameters: PurgeParameters,
}

/// `POST /system/purgeaudit/schedule` with `{"parameters":{"audit_retention_hour":N}}`: removes
/// the records older than N hours now (the configured retention applies daily on its own).
pub(crate) async fn purge(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let request: PurgeRequest = if call.body.is_empty() { PurgeRequest::default() } else { call.json()? };
    let Some(hours) = request.parameters.audit_retention_hour else {
        return Err(bad_request("parameters.audit_retention_hour is required (records older than it are removed)"));
    };
    let before_ms = registry_core::time::now_millis().saturating_sub(hours.saturating_mul(3_600_000));
    let removed = if request.parameters.dry_run {
        let old = EventFilter { to_ms: Some(before_ms.saturating_sub(1)), ..EventFilter::default() };
        api.registry.metadata_store().query_events(&old, 0, 0).await?.1
    } else {
        api.registry.metadata_store().trim_events(before_ms).await?
    };
    tracing::info!(removed, hours, dry_run = request.parameters.dry_run, "audit log purged");
    Ok(json_response(StatusCode::OK, &json!({"removed": removed, "dry_run": request.parameters.dry_run})))
}

/// Most events [`activity`] reads (the newest): pushes and pulls of busy months are summed from
/// a sample, and the answer says so.
const ACTIVITY_EVENTS: usize = 50_000;

/// `GET /statistics/activity?days=N` (1 to 90, default 14): pushes, pulls and deletions of
/// artifacts per day (UTC), oldest first, in the projects the caller is a member of (all of them
/// for system administrators). Pulls counted on one event count as many.
pub(crate) async fn activity(api: Arc<Api>, call: ApiCall) -> super::ApiResult {
    let who = call.signed_in()?.clone();
    let days: u64 = match call.query.get("days") {
        None | Some("") => 14,
        Some(d) => d.parse().ok().filter(|d| (1..=90).contains(d)).ok_or_else(|| bad_request("days is 1 to 90"))?,
    };
    const DAY_MS: u64 = 86_400_000;
    let now = api.registry.clock().now_millis();
    let first_day = now / DAY_MS + 1 - days;
    let mut f = EventFilter {
        resource_type: Some("artifact".into()),
        from_ms: Some(first_day * DAY_MS),
        ..EventFilter::default()
    };
    if !who.is_admin() {
        let mut mine = Vec::new();
        for p in api.accounts()?.projects().await? {
            if api.role(&who, &p).await?.is_some() {
                mine.push(p.name);
            }
        }
        f.projects = Some(mine);
    }
    let (events, total) = api.registry.metadata_store().query_events(&f, 0, ACTIVITY_EVENTS).await?;
    let mut counts = vec![[0u64; 3]; days as usize];
    for event in &events {
        let Some(day) = (event.time_ms / DAY_MS).checked_sub(first_day) else { continue };
        let Some(slot) = counts.get_mut(day as usize) else { continue };
        let column = match event.action.audit().1 {
            "create" => 0,
            "pull" => 1,
            _ => 2,
        };
        slot[column] += event.count;
    }
    let days_json: Vec<serde_json::Value> = counts
        .iter()
        .enumerate()
        .map(|(i, [push, pull, delete])| {
            let date = registry_core::time::rfc3339((first_day + i as u64) * 86_400);
            json!({"date": &date[..10], "push": push, "pull": pull, "delete": delete})
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"days": days_json, "sampled": total > events.len() as u64})))
}
