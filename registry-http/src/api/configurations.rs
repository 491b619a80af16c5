//! The run-time settings a system admin changes (`/configurations`, Harbor's shapes): whether
//! webhook targets may be private addresses, where audit records are forwarded as syslog, the
//! storage limit of new projects (`storage_per_project`), the quota warning percentage, and how
//! users sign in (`auth_mode`: `db_auth`, `ldap_auth` with Harbor's `ldap_*` keys, or `oidc_auth`
//! with its `oidc_*` keys; the search password and the client secret are sealed and never shown).

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
            "auth_mode": {"value": settings.auth_mode, "editable": true},
            "ldap_url": {"value": settings.ldap_url, "editable": true},
            "ldap_search_dn": {"value": settings.ldap_search_dn, "editable": true},
            "ldap_base_dn": {"value": settings.ldap_base_dn, "editable": true},
            "ldap_filter": {"value": settings.ldap_filter, "editable": true},
            "ldap_uid": {"value": settings.ldap_uid, "editable": true},
            "ldap_scope": {"value": settings.ldap_scope, "editable": true},
            "ldap_timeout": {"value": settings.ldap_timeout, "editable": true},
            "ldap_verify_cert": {"value": settings.ldap_verify_cert, "editable": true},
            "ldap_starttls": {"value": settings.ldap_starttls, "editable": true},
            "ldap_ca_certificate": {"value": settings.ldap_ca_certificate, "editable": true},
            "ldap_group_admin_dn": {"value": settings.ldap_group_admin_dn, "editable": true},
            "ldap_group_membership_attribute": {"value": settings.ldap_group_membership_attribute, "editable": true},
            "ldap_group_base_dn": {"value": settings.ldap_group_base_dn, "editable": true},
            "ldap_group_search_filter": {"value": settings.ldap_group_search_filter, "editable": true},
            "ldap_group_attribute_name": {"value": settings.ldap_group_attribute_name, "editable": true},
            "ldap_group_search_scope": {"value": settings.ldap_group_search_scope, "editable": true},
            "oidc_name": {"value": settings.oidc_name, "editable": true},
            "oidc_endpoint": {"value": settings.oidc_endpoint, "editable": true},
            "oidc_client_id": {"value": settings.oidc_client_id, "editable": true},
            "oidc_scope": {"value": settings.oidc_scope, "editable": true},
            "oidc_user_claim": {"value": settings.oidc_user_claim, "editable": true},
            "oidc_groups_claim": {"value": settings.oidc_groups_claim, "editable": true},
            "oidc_admin_group": {"value": settings.oidc_admin_group, "editable": true},
            "oidc_verify_cert": {"value": settings.oidc_verify_cert, "editable": true},
            "oidc_auto_onboard": {"value": settings.oidc_auto_onboard, "editable": true},
        }),
    ))
}

/// Applies one `ldap_*` or `auth_mode` change; `false` when `name` is none of them.
pub(crate) fn apply_ldap(
    api: &Api,
    settings: &mut SystemSettings,
    name: &str,
    value: &Value,
) -> Result<bool, crate::error::ApiError> {
    let text =
        || value.as_str().map(str::to_owned).ok_or_else(|| bad_request(format!("{name} is a string, not {value}")));
    let number = || value.as_i64().ok_or_else(|| bad_request(format!("{name} is a number, not {value}")));
    let flag = || value.as_bool().ok_or_else(|| bad_request(format!("{name} is true or false, not {value}")));
    match name {
        "auth_mode" => {
            let mode = text()?;
            let offered = registry_platform::signin::offered_modes();
            if !offered.contains(&mode.as_str()) {
                return Err(bad_request(format!(
                    "auth_mode {mode:?} is not offered by this registry; use {}",
                    offered.join(", ")
                )));
            }
            settings.auth_mode = mode;
        }
        "ldap_url" => settings.ldap_url = text()?.trim().to_owned(),
        "ldap_search_dn" => settings.ldap_search_dn = text()?,
        "ldap_search_password" => {
            let password = text()?;
            settings.ldap_search_password = match password.is_empty() {
                true => None,
                false => {
                    let key = api
                        .secret_key
                        .as_ref()
                        .ok_or_else(|| bad_request("this registry has no key to seal the LDAP search password with"))?;
                    Some(key.seal(&password).map_err(|e| bad_request(format!("sealing the password: {e}")))?)
                }
            };
        }
        "ldap_base_dn" => settings.ldap_base_dn = text()?,
        "ldap_filter" => settings.ldap_filter = text()?.trim().to_owned(),
        "ldap_uid" => settings.ldap_uid = text()?.trim().to_owned(),
        "ldap_scope" => settings.ldap_scope = number()?,
        "ldap_timeout" | "ldap_connection_timeout" => {
            settings.ldap_timeout = u64::try_from(number()?).map_err(|_| bad_request(format!("{name} is positive")))?
        }
        "ldap_verify_cert" => settings.ldap_verify_cert = flag()?,
        "ldap_starttls" => settings.ldap_starttls = flag()?,
        "ldap_ca_certificate" => settings.ldap_ca_certificate = text()?,
        "ldap_group_admin_dn" => settings.ldap_group_admin_dn = text()?,
        "ldap_group_membership_attribute" => settings.ldap_group_membership_attribute = text()?,
        "ldap_group_base_dn" => settings.ldap_group_base_dn = text()?,
        "ldap_group_search_filter" => settings.ldap_group_search_filter = text()?.trim().to_owned(),
        "ldap_group_attribute_name" | "ldap_group_gid" => {
            settings.ldap_group_attribute_name = text()?.trim().to_owned()
        }
        "ldap_group_search_scope" => settings.ldap_group_search_scope = number()?,
        "oidc_name" => settings.oidc_name = text()?.trim().to_owned(),
        "oidc_endpoint" => settings.oidc_endpoint = text()?.trim().to_owned(),
        "oidc_client_id" => settings.oidc_client_id = text()?.trim().to_owned(),
        "oidc_client_secret" => {
            let secret = text()?;
            settings.oidc_client_secret = match secret.is_empty() {
                true => None,
                false => {
                    let key = api
                        .secret_key
                        .as_ref()
                        .ok_or_else(|| bad_request("this registry has no key to seal the OIDC client secret with"))?;
                    Some(key.seal(&secret).map_err(|e| bad_request(format!("sealing the secret: {e}")))?)
                }
            };
        }
        "oidc_scope" => settings.oidc_scope = text()?.trim().to_owned(),
        "oidc_user_claim" => settings.oidc_user_claim = text()?.trim().to_owned(),
        "oidc_groups_claim" => settings.oidc_groups_claim = text()?.trim().to_owned(),
        "oidc_admin_group" => settings.oidc_admin_group = text()?.trim().to_owned(),
        "oidc_verify_cert" => settings.oidc_verify_cert = flag()?,
        "oidc_auto_onboard" => settings.oidc_auto_onboard = flag()?,
        _ => return Ok(false),
    }
    Ok(true)
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
            (other, value) => {
                if !apply_ldap(&api, &mut settings, other, value)? {
                    return Err(bad_request(format!("{other} is not a setting of this registry")));
                }
            }
        }
    }
    #[cfg(feature = "ldap")]
    if settings.auth_mode == "ldap_auth" {
        // What can be told wrong without the server is refused before it is saved; the server
        // itself is tried by POST /ldap/ping.
        let config = registry_platform::ldap::LdapConfig::of(&settings, api.secret_key.as_ref())
            .map_err(|e| bad_request(e.0))?;
        config.checked().map_err(|e| bad_request(e.0))?;
        if settings.ldap_base_dn.is_empty() {
            return Err(bad_request("ldap_auth needs ldap_base_dn: where people are searched"));
        }
    }
    #[cfg(feature = "oidc")]
    if settings.auth_mode == registry_platform::signin::OIDC_AUTH {
        // What can be told wrong without the provider is refused before it is saved; the
        // provider itself is tried by POST /system/oidc/ping.
        let config = registry_platform::oidc::OidcConfig::of(&settings, api.secret_key.as_ref())
            .map_err(|e| bad_request(e.0))?;
        config.checked().map_err(|e| bad_request(e.0))?;
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
