//! Consumers of the event stream (the webhook dispatcher, the syslog forwarder): each reads the
//! events after its cursor in passes and moves the cursor once a pass is done. This runs the
//! passes: at once again while a pass says more wait, else after the poll interval; a failed pass
//! is logged and tried again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One consumer of the stream.
pub trait Consumer: Send + Sync + 'static {
    /// What it is, for the log.
    const NAME: &'static str;

    /// One pass; whether more events wait.
    fn pass(&self) -> impl Future<Output = Result<bool, String>> + Send;
}

/// Runs `consumer`'s passes until the task is aborted.
pub fn start<C: Consumer>(consumer: Arc<C>, poll: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match consumer.pass().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(consumer = C::NAME, error = %e, "a pass over the event stream failed; retrying")
                }
            }
            tokio::time::sleep(poll).await;
        }
    })
}
