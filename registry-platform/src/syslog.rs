//! Forwarding of audit records to a syslog endpoint (RFC 5424 over TCP with octet-counting
//! framing, RFC 6587, or over UDP), as Harbor 2.x's `audit_log_forward_endpoint`: a consumer of
//! the event stream by its cursor, on one replica at a time (the job lock `syslog`), from the
//! moment the endpoint is set (the `/configurations` change moves the cursor there). A record is forwarded at least once: the cursor moves after the
//! endpoint took the batch.

use std::sync::Arc;
use std::time::Duration;

use registry_core::event::{Event, EventAction};
use registry_storage::MetadataStore;
use tokio::io::AsyncWriteExt;

use crate::settings::SystemSettings;

/// The forwarder's cursor on the event stream.
pub const CURSOR: &str = "syslog";

/// Records per pass.
const BATCH: usize = 256;

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://host:port` (or `host:port`).
    Tcp(String),
    /// `udp://host:port`.
    Udp(String),
}

impl Endpoint {
    /// Parses `tcp://host:port`, `udp://host:port` or `host:port`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (udp, rest) = match text.split_once("://") {
            Some(("tcp", rest)) => (false, rest),
            Some(("udp", rest)) => (true, rest),
            Some((scheme, _)) => return Err(format!("{scheme}:// is not a syslog transport; use tcp:// or udp://")),
            None => (false, text),
        };
        let port_ok = rest.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!("{text:?} is not host:port (for example tcp://logs.example:10514)"));
        }
        Ok(if udp { Endpoint::Udp(rest.to_owned()) } else { Endpoint::Tcp(rest.to_owned()) })
    }
}

fn sd_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]")
}

/// One record as an RFC 5424 message: facility log audit (13), severity notice for failed logins
/// and informational otherwise; the MSGID is the event type; structured data `audit@32473` names
/// the record; the message is the record as the audit API shows it.
pub fn format(event: &Event, hostname: &str) -> String {
    let severity = if event.action == EventAction::LoginFailure { 5 } else { 6 };
    let (resource_type, operation) = event.action.audit();
    let millis = event.time_ms % 1000;
    let time = registry_core::time::rfc3339(event.time_ms / 1000);
    let time = format!("{}.{millis:03}Z", time.trim_end_matches('Z'));
    let record = crate::audit_record::record(event);
    format!(
        "<{}>1 {time} {hostname} registry {} {} [audit@32473 id=\"{}\" user=\"{}\" operation=\"{operation}\" resource_type=\"{resource_type}\"] {record}",
        13 * 8 + severity,
        std::process::id(),
        event.action.as_str(),
        event.id,
        sd_escape(event.operator.display_name()),
    )
}

/// The forwarder.
pub struct Forwarder {
    /// The store whose stream and settings it reads.
    pub meta: Arc<dyn MetadataStore>,
    /// How often the stream is read when nothing waits.
    pub poll: Duration,
}

impl Forwarder {
    /// Forwards until the task is aborted.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let poll = self.poll;
        crate::consumer::start(self, poll)
    }
}

impl crate::consumer::Consumer for Forwarder {
    const NAME: &'static str = "syslog";

    async fn pass(&self) -> Result<bool, String> {
        let settings = SystemSettings::load(&*self.meta).await.map_err(|e| e.to_string())?;
        if settings.audit_log_forward_endpoint.is_empty() {
            return Ok(false);
        }
        let endpoint = Endpoint::parse(&settings.audit_log_forward_endpoint)?;
        let Some(lock) = self.meta.lock_job("syslog").await.map_err(|e| e.to_string())? else {
            return Ok(false); // another replica forwards
        };
        let result = self.forward(&endpoint).await;
        lock.release().await;
        result
    }
}

impl Forwarder {
    async fn forward(&self, endpoint: &Endpoint) -> Result<bool, String> {
        // (Setting the endpoint moved the cursor to that moment: see `api::configurations`.)
        let from = self.meta.cursor(CURSOR).await.map_err(|e| e.to_string())?;
        let events = self.meta.events_after(from, BATCH).await.map_err(|e| e.to_string())?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let hostname = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "registry".into());
        let messages: Vec<String> = events.iter().map(|e| format(e, &hostname)).collect();
        match endpoint {
            Endpoint::Tcp(addr) => {
                let mut stream =
                    tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connecting to {addr}: {e}"))?;
                let mut framed = Vec::new();
                for m in &messages {
                    framed.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                }
                stream.write_all(&framed).await.map_err(|e| format!("sending to {addr}: {e}"))?;
                stream.shutdown().await.map_err(|e| format!("closing {addr}: {e}"))?;
            }
            Endpoint::Udp(addr) => {
                let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await.map_err(|e| e.to_string())?;
                for m in &messages {
                    socket.send_to(m.as_bytes(), addr).await.map_err(|e| format!("sending to {addr}: {e}"))?;
                }
            }
        }
        self.meta.advance_cursor(CURSOR, from, last).await.map_err(|e| e.to_string())?;
        Ok(events.len() == BATCH)
    }
}

#[cfg(test)]
mod tests {
    use registry_core::event::{Operator, Resource};

    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(Endpoint::parse("logs:10514"), Ok(Endpoint::Tcp("logs:10514".into())));
        assert_eq!(Endpoint::parse("udp://10.0.0.1:514"), Ok(Endpoint::Udp("10.0.0.1:514".into())));
        assert!(Endpoint::parse("http://logs:80").is_err());
        assert!(Endpoint::parse("logs").is_err());
    }

    #[test]
    fn records_are_rfc_5424() {
        let event = Event {
            id: 7,
            ..Event::new(
                1_700_000_000_042,
                Operator::named("a\"b", None),
                EventAction::LoginFailure,
                Resource::default(),
            )
        };
        let line = format(&event, "host1");
        assert!(line.starts_with("<109>1 2023-11-14T22:13:20.042Z host1 registry "), "{line}");
        assert!(
            line.contains(" LOGIN_FAILURE [audit@32473 id=\"7\" user=\"a\\\"b\" operation=\"login_failure\""),
            "{line}"
        );
        let json = line.split_once("] ").expect("message").1;
        assert_eq!(serde_json::from_str::<serde_json::Value>(json).expect("json")["id"], 7);
    }
}
