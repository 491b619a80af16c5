//! The run-time settings a system admin changes (`/configurations`, Harbor's shapes): whether
//! webhook targets may be private addresses, where audit records are forwarded as syslog, the
//! storage limit of new projects (`storage_per_project`) and the quota warning percentage.

use std::sync::Arc;

use http::StatusCode;
use registry_core::event::{Event, EventAction, EventFilter, Resource};
use serde_json::{Value, json};

use super::context::bad_request;
use super::{Api, ApiCall, ApiResult};
use crate::response::json as json_response;
use registry_platform::settings::SystemSettings;

/// `GET /configurations`: the run-time settings (`{key: {value, editable}}`, Harbor's shape).
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let settings = SystemSettings::load(&**api.registry.metadata_store()).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "webhook_allow_private_targets": {"value": settings.webhook_allow_private_targets, "editable": true},
            "audit_log_forward_endpoint": {"value": settings.audit_log_forward_endpoint, "editable": true},
            "storage_per_project": {"value": settings.storage_per_project, "editable": true},
            "quota_warning_percent": {"value": settings.quota_warning_percent, "editable": true},
        }),
    ))
}

/// `PUT /configurations` with `{key: value}`.
pub(crate) async fn put(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let changes: serde_json::Map<String, Value> = call.json()?;
    let meta = api.registry.metadata_store();
    let mut settings = SystemSettings::load(&**meta).await?;
    let forwarding = !settings.audit_log_forward_endpoint.is_empty();
    for (name, value) in &changes {
        match (name.as_str(), value) {
            ("webhook_allow_private_targets", Value::Bool(b)) => settings.webhook_allow_private_targets = *b,
            ("webhook_allow_private_targets", other) => {
                return Err(bad_request(format!("webhook_allow_private_targets is true or false, not {other}")));
            }
            ("audit_log_forward_endpoint", Value::String(text)) => {
                if !text.is_empty() {
                    registry_platform::syslog::Endpoint::parse(text)
                        .map_err(|e| bad_request(format!("audit_log_forward_endpoint: {e}")))?;
                }
                settings.audit_log_forward_endpoint.clone_from(text);
            }
            ("audit_log_forward_endpoint", other) => {
                return Err(bad_request(format!(
                    "audit_log_forward_endpoint is a string (tcp://host:port), not {other}"
                )));
            }
            ("storage_per_project", value) => {
                let limit = value.as_i64().ok_or_else(|| {
                    bad_request(format!("storage_per_project is a number of bytes (-1: no limit), not {value}"))
                })?;
                registry_platform::quotas::limit_of(limit)
                    .map_err(|e| bad_request(format!("storage_per_project: {e}")))?;
                settings.storage_per_project = limit;
            }
            ("quota_warning_percent", value) => {
                let percent = value.as_i64().ok_or_else(|| {
                    bad_request(format!("quota_warning_percent is a number from 1 to 100, not {value}"))
                })?;
                settings.quota_warning_percent =
                    registry_platform::quotas::warn_percent_of(percent).map_err(|e| bad_request(e.0))?;
            }
            (other, _) => return Err(bad_request(format!("{other} is not a setting of this registry"))),
        }
    }
    if !forwarding && !settings.audit_log_forward_endpoint.is_empty() {
        // Forwarding starts now: from this change on, not the history before it (the cursor is
        // moved before the endpoint is saved, so the forwarder never sees it unmoved).
        let (newest, _) = meta.query_events(&EventFilter::default(), 0, 1).await?;
        let at = meta.cursor(registry_platform::syslog::CURSOR).await?;
        if let Some(newest) = newest.first().filter(|e| e.id > at) {
            meta.advance_cursor(registry_platform::syslog::CURSOR, at, newest.id).await?;
        }
    }
    let now = api.registry.clock().now_millis();
    let names: Vec<&str> = changes.keys().map(String::as_str).collect();
    let resource = Resource { name: Some(names.join(",")), ..Resource::default() };
    let event = Event::new(now, call.operator.clone(), EventAction::UpdateSettings, resource);
    let warn_changed = changes.contains_key("quota_warning_percent");
    settings.save(&**meta, &[event]).await?;
    if warn_changed {
        // Every quota warns at the new percentage from now on.
        for quota in meta.quotas().await? {
            meta.set_quota(&quota.project, quota.limit, settings.quota_warning_percent, &[]).await?;
        }
    }
    Ok(json_response(StatusCode::OK, &json!({})))
}
