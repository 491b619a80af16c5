//! An audit record as Harbor shows it: what the audit API lists and the syslog forwarder sends.

use registry_core::event::Event;
use serde_json::{Value, json};

/// One record as Harbor shows it.
pub fn record(event: &Event) -> Value {
    let (resource_type, operation) = event.action.audit();
    let mut record = json!({
        "id": event.id,
        "username": event.operator.display_name(),
        "resource": event.resource_text(),
        "resource_type": resource_type,
        "operation": operation,
        "op_time": registry_core::time::rfc3339(event.time_ms / 1000),
        "client_address": event.operator.address,
        "event_type": event.action.as_str(),
    });
    if event.count > 1 {
        record["count"] = json!(event.count);
    }
    record
}
