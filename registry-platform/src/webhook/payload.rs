//! What a delivery sends: Harbor's default JSON or a CloudEvents 1.0 structured event, and the
//! headers beyond Harbor's (an HMAC-SHA256 signature over the body, the event id as an
//! idempotency key).

use registry_core::event::{Event, EventAction};
use serde_json::{Value, json};

/// The header carrying `sha256=<hex HMAC-SHA256 of the body under the policy's secret>`.
pub const SIGNATURE_HEADER: &str = "x-registry-signature-256";

/// The header carrying the event's id: the same for every attempt, so a receiver can drop
/// repeats.
pub const EVENT_ID_HEADER: &str = "x-registry-event-id";

/// The webhook event type of a stream event, if webhooks are sent for it.
pub fn event_type(action: EventAction) -> Option<&'static str> {
    match action {
        EventAction::PushArtifact => Some("PUSH_ARTIFACT"),
        EventAction::PullArtifact => Some("PULL_ARTIFACT"),
        EventAction::DeleteArtifact => Some("DELETE_ARTIFACT"),
        EventAction::QuotaExceed => Some("QUOTA_EXCEED"),
        EventAction::QuotaWarning => Some("QUOTA_WARNING"),
        EventAction::TagRetention => Some("TAG_RETENTION"),
        EventAction::ScanningCompleted => Some("SCANNING_COMPLETED"),
        EventAction::ScanningFailed => Some("SCANNING_FAILED"),
        EventAction::ScanningStopped => Some("SCANNING_STOPPED"),
        EventAction::Replication => Some("REPLICATION"),
        _ => None,
    }
}

/// The CloudEvents `type` of a webhook event type (Harbor's names).
pub fn cloud_event_type(event_type: &str) -> String {
    match event_type {
        "PUSH_ARTIFACT" => "harbor.artifact.pushed".into(),
        "PULL_ARTIFACT" => "harbor.artifact.pulled".into(),
        "DELETE_ARTIFACT" => "harbor.artifact.deleted".into(),
        "QUOTA_EXCEED" => "harbor.quota.exceeded".into(),
        "QUOTA_WARNING" => "harbor.quota.warned".into(),
        "SCANNING_COMPLETED" => "harbor.scan.completed".into(),
        "SCANNING_FAILED" => "harbor.scan.failed".into(),
        "SCANNING_STOPPED" => "harbor.scan.stopped".into(),
        "REPLICATION" => "harbor.replication.status.changed".into(),
        "TAG_RETENTION" => "harbor.tag_retention.finished".into(),
        other => format!("harbor.{}", other.to_ascii_lowercase()),
    }
}

/// What is known of the event's project and registry besides the event.
pub struct Context<'a> {
    /// `host:port` clients pull from.
    pub registry_host: &'a str,
    /// Whether the project is public.
    pub public: bool,
    /// The project's id.
    pub project_id: u64,
    /// The policy's id.
    pub policy_id: u64,
}

/// Harbor's `event_data` of an artifact event (of a replication: its summary).
fn event_data(event: &Event, ctx: &Context<'_>) -> Value {
    let r = &event.resource;
    if event.action == EventAction::Replication {
        let summary = r.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok());
        return json!({ "replication": summary.unwrap_or(Value::Null) });
    }
    let full = r.repository.clone().unwrap_or_default();
    let (namespace, name) = full.split_once('/').unwrap_or(("", full.as_str()));
    let reference = match (&r.tag, &r.digest) {
        (Some(tag), _) => format!(":{tag}"),
        (None, Some(digest)) => format!("@{digest}"),
        _ => String::new(),
    };
    let mut resource = json!({
        "digest": r.digest,
        "resource_url": format!("{}/{full}{reference}", ctx.registry_host),
    });
    if let Some(tag) = &r.tag {
        resource["tag"] = json!(tag);
    }
    // Scan events carry the report's overview (Harbor's `scan_overview`) as their detail.
    let scan = matches!(
        event.action,
        EventAction::ScanningCompleted | EventAction::ScanningFailed | EventAction::ScanningStopped
    );
    if scan && let Some(overview) = r.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()) {
        resource["scan_overview"] = overview;
    }
    let mut data = json!({
        "resources": [resource],
        "repository": {
            "name": name,
            "namespace": namespace,
            "repo_full_name": full,
            "repo_type": if ctx.public { "public" } else { "private" },
        },
    });
    // Quota events say what happened in Harbor's `custom_attributes.Details`.
    if let Some(detail) = r.detail.as_ref().filter(|_| !scan) {
        data["custom_attributes"] = json!({ "Details": detail });
    }
    data
}

/// The body of a delivery of `event` as `event_type`, in `format` (`Default` or `CloudEvents`),
/// and its content type.
pub fn render(event: &Event, event_type: &str, format: &str, ctx: &Context<'_>) -> (String, &'static str) {
    let operator = event.operator.display_name();
    let data = event_data(event, ctx);
    if format == "CloudEvents" {
        let body = json!({
            "specversion": "1.0",
            "id": event.id.to_string(),
            "source": format!("/projects/{}/webhook/policies/{}", ctx.project_id, ctx.policy_id),
            "type": cloud_event_type(event_type),
            "datacontenttype": "application/json",
            "time": registry_core::time::rfc3339(event.time_ms / 1000),
            "operator": operator,
            "data": data,
        });
        (body.to_string(), "application/cloudevents+json")
    } else {
        let body = json!({
            "type": event_type,
            "occur_at": event.time_ms / 1000,
            "operator": operator,
            "event_data": data,
        });
        (body.to_string(), "application/json")
    }
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

#[cfg(test)]
mod tests {
    use registry_core::event::{Operator, Resource};

    use super::*;

    fn pushed() -> Event {
        let resource = Resource {
            project: Some("library".into()),
            repository: Some("library/app".into()),
            digest: Some("sha256:abc".into()),
            tag: Some("v1".into()),
            ..Resource::default()
        };
        Event {
            id: 42,
            ..Event::new(1_700_000_000_123, Operator::named("alice", None), EventAction::PushArtifact, resource)
        }
    }

    fn ctx() -> Context<'static> {
        Context { registry_host: "reg.example:5000", public: false, project_id: 3, policy_id: 9 }
    }

    #[test]
    fn harbors_default_shape() {
        let (body, content_type) = render(&pushed(), "PUSH_ARTIFACT", "Default", &ctx());
        assert_eq!(content_type, "application/json");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["type"], "PUSH_ARTIFACT");
        assert_eq!(v["occur_at"], 1_700_000_000);
        assert_eq!(v["operator"], "alice");
        assert_eq!(v["event_data"]["resources"][0]["resource_url"], "reg.example:5000/library/app:v1");
        assert_eq!(v["event_data"]["repository"]["namespace"], "library");
        assert_eq!(v["event_data"]["repository"]["name"], "app");
        assert_eq!(v["event_data"]["repository"]["repo_type"], "private");
    }

    #[test]
    fn cloud_events_shape() {
        let (body, content_type) = render(&pushed(), "PUSH_ARTIFACT", "CloudEvents", &ctx());
        assert_eq!(content_type, "application/cloudevents+json");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "42");
        assert_eq!(v["source"], "/projects/3/webhook/policies/9");
        assert_eq!(v["type"], "harbor.artifact.pushed");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["data"]["resources"][0]["digest"], "sha256:abc");
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
