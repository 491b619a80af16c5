//! The management API as the binary's commands reach it: over the admin socket of a running
//! server, or in this process on the data directory when no server runs. Either way the commands
//! send the same requests to the same handlers, as a system administrator.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use registry_auth::Accounts;
use registry_http::{RegistryBuilder, RegistryService};
use serde_json::Value;

use crate::config::Config;

/// Where the commands' requests go.
pub(crate) enum Local {
    /// A running server's admin socket.
    Socket(PathBuf),
    /// The data directory, opened here.
    InProcess(RegistryService),
}

/// An answer.
pub(crate) struct Reply {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Its headers.
    pub(crate) headers: http::HeaderMap,
    /// Its body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub(crate) fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("the server's answer is not JSON")
    }
}

impl Local {
    /// The running server's socket if one answers, else the data directory opened here.
    pub(crate) async fn connect(config: &Config) -> anyhow::Result<Local> {
        let socket = config.admin_socket();
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(Local::Socket(socket));
        }
        let stores = crate::backend::open(config).await?;
        let service = RegistryBuilder::new()
            .registry(stores.registry)
            .accounts(Accounts::new(stores.accounts))
            .x5c(false)
            .gc(config.gc.options(), None)
            .build_local_admin_service()
            .await?;
        Ok(Local::InProcess(service))
    }

    /// Sends one request to `/api/v2.0<path>`; an error status becomes an error with the
    /// server's message.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Reply> {
        let uri = format!("{}{path}", registry_http::api::API_PREFIX);
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-is-resource-name", "true")
            .body(Full::new(bytes))?;
        let reply = match self {
            Local::InProcess(service) => {
                let response = service.handle(req).await;
                let (parts, body) = response.into_parts();
                Reply { status: parts.status, headers: parts.headers, body: body.collect().await?.to_bytes() }
            }
            Local::Socket(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connecting to the admin socket {}", path.display()))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                let response = sender.send_request(req).await?;
                let (parts, body) = response.into_parts();
                Reply { status: parts.status, headers: parts.headers, body: body.collect().await?.to_bytes() }
            }
        };
        if reply.status.is_client_error() || reply.status.is_server_error() {
            let message = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
            bail!("{message}");
        }
        Ok(reply)
    }

    /// Every item of a paginated listing.
    pub(crate) async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        for page in 1.. {
            let reply = self.call(Method::GET, &format!("{path}{sep}page={page}&page_size=100"), None).await?;
            let items = reply.json()?.as_array().cloned().unwrap_or_default();
            let total: usize = reply
                .headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let done = items.is_empty();
            out.extend(items);
            if done || out.len() >= total {
                break;
            }
        }
        Ok(out)
    }
}
