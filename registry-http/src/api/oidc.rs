//! OpenID Connect for system admins, in Harbor's shapes: `POST /system/oidc/ping`
//! (`{url, verify_cert}`: the provider's discovery tried; 200, or 400 saying why it cannot be
//! used).

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

use super::context::bad_request;
use super::{Api, ApiCall, ApiResult};
use crate::response::status_only;

#[derive(Deserialize)]
struct PingRequest {
    url: String,
    #[serde(default = "yes")]
    verify_cert: bool,
}

fn yes() -> bool {
    true
}

/// `POST /system/oidc/ping`.
pub(crate) async fn ping(_api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let req: PingRequest = call.json()?;
    registry_platform::oidc::discover(&req.url, req.verify_cert).await.map_err(|e| bad_request(e.0))?;
    Ok(status_only(StatusCode::OK))
}
