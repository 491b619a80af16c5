//! Deliveries: each a job of kind [`DELIVERY_KIND`] carrying the rendered body; the job reads the
//! policy when it runs (an address or header fixed meanwhile applies to the retries), checks the
//! target against the SSRF guard, sends, and succeeds on a 2xx. Anything else is retried with
//! backoff until the job's attempts run out.

use std::sync::Arc;
use std::time::Duration;

use registry_auth::SecretKey;
use registry_storage::{Job, JobContext, JobFailure, JobHandler, MetadataStore};
use serde::{Deserialize, Serialize};

use super::payload::{EVENT_ID_HEADER, SIGNATURE_HEADER, signature};
use super::policy::{KIND, Webhook};
use crate::settings::SystemSettings;
use crate::ssrf;

/// The job kind of deliveries.
pub const DELIVERY_KIND: &str = "webhook";

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A delivery's input, as its job's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The policy.
    pub policy_id: u64,
    /// Its target, by position.
    pub target: usize,
    /// The stream event delivered.
    pub event_id: u64,
    /// Its webhook event type.
    pub event_type: String,
    /// The body.
    pub body: String,
    /// Its content type.
    pub content_type: String,
}

/// Runs deliveries.
pub struct Deliverer {
    meta: Arc<dyn MetadataStore>,
    key: SecretKey,
}

impl Deliverer {
    /// Deliveries of the policies in `meta`, opening their secrets with `key`.
    pub fn new(meta: Arc<dyn MetadataStore>, key: SecretKey) -> Arc<Deliverer> {
        Arc::new(Deliverer { meta, key })
    }
}

/// Sends one request to a target; the status, or why it could not be sent (and whether a retry
/// may mend it).
pub async fn send(
    target: &super::policy::Target,
    key: &SecretKey,
    secret: Option<&str>,
    allow_private: bool,
    body: &str,
    content_type: &str,
    event_id: u64,
) -> Result<u16, JobFailure> {
    let reach = super::reach(allow_private);
    let url = ssrf::check_address(&target.address, reach).map_err(|e| JobFailure::fatal(super::refusal_text(&e)))?;
    let addrs = ssrf::resolve(&url, reach).await.map_err(|e| match e {
        ssrf::Refusal::Resolve(_) => JobFailure::retry(e.to_string()),
        _ => JobFailure::fatal(super::refusal_text(&e)),
    })?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let options = ssrf::ClientOptions { timeout: TIMEOUT, insecure: target.skip_cert_verify, ca_pem: None };
    let client = ssrf::pinned_client(&url, &addrs, &options).map_err(JobFailure::fatal)?;
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(EVENT_ID_HEADER, event_id.to_string())
        .body(body.to_owned());
    if let Some(sealed) = &target.auth_header {
        let header = key.open(sealed).map_err(|e| JobFailure::fatal(e.to_string()))?;
        request = request.header(reqwest::header::AUTHORIZATION, header);
    }
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
    }
    let response = request.send().await.map_err(|e| JobFailure::retry(format!("sending to {host}: {e}")))?;
    Ok(response.status().as_u16())
}

#[async_trait::async_trait]
impl JobHandler for Deliverer {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let delivery: Delivery = serde_json::from_str(&job.payload)
            .map_err(|e| JobFailure::fatal(format!("the delivery does not parse: {e}")))?;
        let policy = self
            .meta
            .policy(KIND, delivery.policy_id)
            .await
            .map_err(JobFailure::retrying)?
            .ok_or_else(|| JobFailure::fatal(format!("webhook policy {} was deleted", delivery.policy_id)))?;
        let webhook: Webhook = serde_json::from_str(&policy.body)
            .map_err(|e| JobFailure::fatal(format!("the policy does not parse: {e}")))?;
        if !webhook.enabled {
            return Err(JobFailure::fatal(format!("webhook policy {} is disabled", policy.name)));
        }
        let target = webhook.targets.get(delivery.target).ok_or_else(|| {
            JobFailure::fatal(format!("webhook policy {} has no target {}", policy.name, delivery.target))
        })?;
        let secret = match &webhook.secret {
            Some(sealed) => Some(self.key.open(sealed).map_err(|e| JobFailure::fatal(e.to_string()))?),
            None => None,
        };
        let settings = SystemSettings::load(&*self.meta).await.map_err(JobFailure::retrying)?;
        let sent = send(
            target,
            &self.key,
            secret.as_deref(),
            settings.webhook_allow_private_targets,
            &delivery.body,
            &delivery.content_type,
            delivery.event_id,
        )
        .await;
        match sent {
            Ok(status) => {
                ctx.progress(serde_json::json!({"response_code": status}).to_string());
                ctx.log(format!("attempt {}: {} answered {status}", job.attempts, target.address));
                if (200..300).contains(&status) {
                    Ok(serde_json::json!({"response_code": status}).to_string())
                } else {
                    Err(JobFailure::retry(format!("{} answered {status}", target.address)))
                }
            }
            Err(failure) => {
                ctx.log(format!("attempt {}: {}", job.attempts, failure.message));
                Err(failure)
            }
        }
    }
}
