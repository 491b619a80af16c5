//! The management API under `/api/v2.0`, in Harbor's shapes (its `swagger.yaml`): one handler
//! function per endpoint behind the table-driven [`router`], authorized by the same roles as the
//! registry.
//!
//! | module | endpoints |
//! |---|---|
//! | [`jobs`] | `/jobservice/queues`, `/jobservice/jobs…` |
//! | [`system`] | `/ping`, `/health`, `/systeminfo`, `/statistics`, `/system/gc…` |
//! | [`projects`] | `/projects`, `/projects/{p}`, `…/_deletable`, `…/summary`, `…/metadatas` |
//! | [`members`] | `/projects/{p}/members…` |
//! | [`users`] | `/users…`, `/users/current…`, `/users/{id}/password`, `/users/{id}/sysadmin` |
//! | [`usergroups`] | `/usergroups…` (user groups: LDAP groups by DN, OIDC groups by name) |
//! | `ldap` (feature `ldap`) | `/ldap/ping`, `/ldap/users/search`, `/ldap/users/import`, `/ldap/groups/search` |
//! | `oidc` (feature `oidc`) | `/system/oidc/ping` |
//! | [`robots`] | `/robots…` (Harbor's v2 robots: system and project level) |
//! | [`webhooks`] | `/projects/{p}/webhook/…` |
//! | [`configurations`] | `/configurations` (run-time settings) |
//! | [`artifacts`] | `/projects/{p}/repositories…`, `…/artifacts…`, `…/tags…`, `/search` |
//! | [`additions`] | `…/artifacts/{reference}/additions/{build_history,readme.md,values.yaml,dependencies}` |
//! | [`chartrepo`] | `/chartrepo/{p}/index.yaml`, `/chartrepo/{p}/charts/{name}-{version}.tgz` (outside `/api/v2.0`) |
//! | [`audit`] | `/audit-logs`, `/projects/{p}/logs`, `/system/purgeaudit/schedule` |
//! | [`quotas`] | `/quotas`, `/quotas/{id}` |
//! | [`immutable`] | `/projects/{p}/immutabletagrules…` |
//! | [`labels`] | `/labels…` (artifacts' labels are in [`artifacts`]) |
//! | [`retention`] | `/retentions…` (policies, executions, tasks and their logs) |
//! | `registries` (feature `replication`) | `/registries…`, `/replication/adapters`, `/replication/adapterinfos` |
//! | `replication` (feature `replication`) | `/replication/policies…`, `/replication/executions…` |
//! | `scanners` (feature `scanning`) | `/scanners…`, `/projects/{p}/scanner…` |
//! | `scans` (feature `scanning`) | `…/artifacts/{reference}/scan…`, `…/additions/vulnerabilities`, `…/additions/sbom`, `/system/scanAll…`, `/scans/…/metrics`, `/system/CVEAllowlist` |
//!
//! Shared pieces: [`context`] (who the caller is, what they may do, project look-up by name or
//! id), [`pages`] (`page`/`page_size`, `X-Total-Count`, `Link`), [`q`] (Harbor's `q=` filters),
//! [`shapes`] (the JSON of each record).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use registry_auth::{AccessPolicy, Accounts, Authenticator};
use registry_storage::Registry;
use tower::ServiceBuilder;

use crate::error::ApiError;
use crate::layers::{Authentication, BoxService, authenticate, deadline, service_fn};
use crate::request::{Query, RequestBody, read_limited};
use crate::response::ResponseBody;
use registry_platform::GarbageCollector;

pub mod additions;
pub mod artifacts;
pub mod audit;
pub(crate) mod chartrepo;
pub mod configurations;
pub mod context;
pub mod immutable;
pub mod jobs;
pub mod labels;
#[cfg(feature = "ldap")]
pub mod ldap;
pub mod members;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod pages;
pub mod projects;
pub mod q;
pub mod quotas;
#[cfg(feature = "replication")]
pub mod registries;
#[cfg(feature = "replication")]
pub mod replication;
pub mod retention;
pub mod robots;
pub(crate) mod router;
#[cfg(feature = "scanning")]
pub mod scanners;
#[cfg(feature = "scanning")]
pub mod scans;
pub(crate) mod shapes;
pub mod system;
pub mod usergroups;
pub mod users;
#[cfg(feature = "webhooks")]
pub mod webhooks;

use router::{Endpoint, Match, endpoint};

/// Where the management API lives.
pub const API_PREFIX: &str = "/api/v2.0";

/// Largest request body the API reads.
const MAX_BODY: usize = 1 << 20;

/// What the handlers share.
pub(crate) struct Api {
    pub(crate) registry: Registry,
    /// Harbor's accounts, when this server keeps them (the account endpoints need them).
    pub(crate) accounts: Option<Accounts>,
    pub(crate) policy: Option<Arc<dyn AccessPolicy>>,
    pub(crate) gc: Option<Arc<GarbageCollector>>,
    /// The job runner (runs started through the API: tag retention).
    pub(crate) jobs: Option<Arc<registry_storage::JobRunner>>,
    pub(crate) info: system::Info,
    /// What artifacts show besides their manifests (build history, a chart's README…), cached.
    pub(crate) additions: Arc<registry_platform::additions::Additions>,
    /// The key secrets at rest are sealed with (webhooks' headers and signing secrets).
    #[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
    pub(crate) secret_key: Option<registry_auth::SecretKey>,
    /// Content trust, when this server keeps Harbor's accounts (its cached keys are forgotten
    /// when they change).
    pub(crate) trust: Option<Arc<registry_platform::trust::ContentTrust>>,
    /// Scanning, when this server scans.
    #[cfg(feature = "scanning")]
    pub(crate) scanning: Option<Arc<registry_platform::scan::jobs::Scanning>>,
    /// The registry endpoints' last health checks.
    #[cfg(feature = "replication")]
    pub(crate) registry_health: registries::Health,
}

/// One request to a handler.
pub(crate) struct ApiCall {
    pub(crate) params: router::Params,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) authentication: Authentication,
    pub(crate) prefix: String,
    /// Who the call's changes are recorded for.
    pub(crate) operator: registry_core::event::Operator,
}

/// What a handler returns.
pub(crate) type ApiResult = Result<http::Response<ResponseBody>, ApiError>;

/// Every endpoint.
fn endpoints() -> &'static [Endpoint] {
    static TABLE: std::sync::OnceLock<Vec<Endpoint>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        #[cfg_attr(not(any(feature = "webhooks", feature = "scanning", feature = "replication")), allow(unused_mut))]
        let mut table = vec![
            endpoint!(GET "/ping" => system::ping),
            endpoint!(GET "/health" => system::health),
            endpoint!(GET "/systeminfo" => system::info),
            endpoint!(GET "/statistics" => system::statistics),
            endpoint!(GET "/statistics/activity" => audit::activity),
            endpoint!(GET "/audit-logs" => audit::list),
            endpoint!(GET "/projects/{project_name_or_id}/logs" => audit::project_logs),
            endpoint!(POST "/system/purgeaudit/schedule" => audit::purge),
            endpoint!(GET "/system/gc" => system::gc_history),
            endpoint!(GET "/system/gc/schedule" => system::gc_schedule),
            endpoint!(POST "/system/gc/schedule" => system::gc_start),
            endpoint!(PUT "/system/gc/schedule" => system::gc_start),
            endpoint!(GET "/system/gc/{gc_id}" => system::gc_run),
            endpoint!(PUT "/system/gc/{gc_id}" => system::gc_stop),
            endpoint!(GET "/system/gc/{gc_id}/log" => system::gc_log),
            endpoint!(GET "/jobservice/queues" => jobs::queues),
            endpoint!(PUT "/jobservice/queues" => jobs::stop_queue),
            endpoint!(GET "/jobservice/jobs" => jobs::list),
            endpoint!(GET "/jobservice/jobs/{job_id}" => jobs::get),
            endpoint!(PUT "/jobservice/jobs/{job_id}" => jobs::stop),
            endpoint!(GET "/jobservice/jobs/{job_id}/log" => jobs::log),
            endpoint!(GET "/configurations" => configurations::get),
            endpoint!(PUT "/configurations" => configurations::put),
            endpoint!(GET "/search" => artifacts::search),
            endpoint!(GET "/projects/{project_name}/repositories" => artifacts::list_repositories),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}" => artifacts::get_repository),
            endpoint!(DELETE "/projects/{project_name}/repositories/{repository_name}" => artifacts::delete_repository),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts" => artifacts::list_artifacts),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}" => artifacts::get_artifact),
            endpoint!(DELETE "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}" => artifacts::delete_artifact),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags" => artifacts::list_tags),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/build_history" => additions::build_history),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/readme.md" => additions::readme),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/values.yaml" => additions::values),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/dependencies" => additions::dependencies),
            endpoint!(POST "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags" => artifacts::create_tag),
            endpoint!(DELETE "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}" => artifacts::delete_tag),
            endpoint!(POST "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels" => artifacts::add_label),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/accessories" => artifacts::list_accessories),
            endpoint!(GET "/projects/{project}/content-trust/keys" => projects::trusted_keys),
            endpoint!(PUT "/projects/{project}/content-trust/keys" => projects::set_trusted_keys),
            endpoint!(DELETE "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}" => artifacts::remove_label),
            endpoint!(GET "/quotas" => quotas::list),
            endpoint!(GET "/quotas/{id}" => quotas::get),
            endpoint!(PUT "/quotas/{id}" => quotas::update),
            endpoint!(GET "/system/quotas/verify" => quotas::verify),
            endpoint!(GET "/projects/{project_name_or_id}/immutabletagrules" => immutable::list),
            endpoint!(POST "/projects/{project_name_or_id}/immutabletagrules" => immutable::create),
            endpoint!(PUT "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}" => immutable::update),
            endpoint!(DELETE "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}" => immutable::delete),
            endpoint!(GET "/retentions/metadatas" => retention::metadatas),
            endpoint!(POST "/retentions" => retention::create),
            endpoint!(GET "/retentions/{id}" => retention::get),
            endpoint!(PUT "/retentions/{id}" => retention::update),
            endpoint!(DELETE "/retentions/{id}" => retention::delete),
            endpoint!(GET "/retentions/{id}/executions" => retention::executions),
            endpoint!(POST "/retentions/{id}/executions" => retention::start),
            endpoint!(PATCH "/retentions/{id}/executions/{eid}" => retention::stop),
            endpoint!(GET "/retentions/{id}/executions/{eid}/tasks" => retention::tasks),
            endpoint!(GET "/retentions/{id}/executions/{eid}/tasks/{tid}" => retention::task_log),
            endpoint!(GET "/labels" => labels::list),
            endpoint!(POST "/labels" => labels::create),
            endpoint!(GET "/labels/{label_id}" => labels::get),
            endpoint!(PUT "/labels/{label_id}" => labels::update),
            endpoint!(DELETE "/labels/{label_id}" => labels::delete),
            endpoint!(GET "/projects" => projects::list),
            endpoint!(HEAD "/projects" => projects::exists),
            endpoint!(POST "/projects" => projects::create),
            endpoint!(GET "/projects/{project}" => projects::get),
            endpoint!(PUT "/projects/{project}" => projects::update),
            endpoint!(DELETE "/projects/{project}" => projects::delete),
            endpoint!(GET "/projects/{project}/_deletable" => projects::deletable),
            endpoint!(GET "/projects/{project}/summary" => projects::summary),
            endpoint!(GET "/projects/{project}/metadatas" => projects::metadata_list),
            endpoint!(POST "/projects/{project}/metadatas" => projects::metadata_add),
            endpoint!(GET "/projects/{project}/metadatas/{name}" => projects::metadata_get),
            endpoint!(PUT "/projects/{project}/metadatas/{name}" => projects::metadata_add),
            endpoint!(DELETE "/projects/{project}/metadatas/{name}" => projects::metadata_delete),
            endpoint!(GET "/projects/{project}/members" => members::list),
            endpoint!(POST "/projects/{project}/members" => members::add),
            endpoint!(GET "/projects/{project}/members/{mid}" => members::get),
            endpoint!(PUT "/projects/{project}/members/{mid}" => members::update),
            endpoint!(DELETE "/projects/{project}/members/{mid}" => members::delete),
            endpoint!(GET "/users" => users::list),
            endpoint!(POST "/users" => users::create),
            endpoint!(GET "/users/current" => users::current),
            endpoint!(GET "/users/current/permissions" => users::current_permissions),
            endpoint!(GET "/users/search" => users::search),
            endpoint!(GET "/users/{user_id}" => users::get),
            endpoint!(PUT "/users/{user_id}" => users::update),
            endpoint!(DELETE "/users/{user_id}" => users::delete),
            endpoint!(PUT "/users/{user_id}/password" => users::password),
            endpoint!(PUT "/users/{user_id}/sysadmin" => users::sysadmin),
            endpoint!(PUT "/users/{user_id}/cli_secret" => users::cli_secret),
            endpoint!(GET "/usergroups" => usergroups::list),
            endpoint!(POST "/usergroups" => usergroups::create),
            endpoint!(GET "/usergroups/search" => usergroups::search),
            endpoint!(GET "/usergroups/{group_id}" => usergroups::get),
            endpoint!(PUT "/usergroups/{group_id}" => usergroups::update),
            endpoint!(DELETE "/usergroups/{group_id}" => usergroups::delete),
            endpoint!(GET "/robots" => robots::list),
            endpoint!(POST "/robots" => robots::create),
            endpoint!(GET "/robots/{robot_id}" => robots::get),
            endpoint!(PUT "/robots/{robot_id}" => robots::update),
            endpoint!(PATCH "/robots/{robot_id}" => robots::refresh),
            endpoint!(DELETE "/robots/{robot_id}" => robots::delete),
        ];
        #[cfg(feature = "webhooks")]
        table.extend([
            endpoint!(GET "/projects/{project}/webhook/events" => webhooks::events),
            endpoint!(GET "/projects/{project}/webhook/policies" => webhooks::list),
            endpoint!(POST "/projects/{project}/webhook/policies" => webhooks::create),
            endpoint!(POST "/projects/{project}/webhook/policies/test" => webhooks::test),
            endpoint!(GET "/projects/{project}/webhook/policies/{webhook_policy_id}" => webhooks::get),
            endpoint!(PUT "/projects/{project}/webhook/policies/{webhook_policy_id}" => webhooks::update),
            endpoint!(DELETE "/projects/{project}/webhook/policies/{webhook_policy_id}" => webhooks::delete),
            endpoint!(GET "/projects/{project}/webhook/policies/{webhook_policy_id}/executions" => webhooks::executions),
            endpoint!(GET "/projects/{project}/webhook/policies/{webhook_policy_id}/executions/{execution_id}/tasks" => webhooks::tasks),
            endpoint!(GET "/projects/{project}/webhook/policies/{webhook_policy_id}/executions/{execution_id}/tasks/{task_id}/log" => webhooks::task_log),
        ]);
        #[cfg(feature = "ldap")]
        table.extend([
            endpoint!(POST "/ldap/ping" => ldap::ping),
            endpoint!(GET "/ldap/users/search" => ldap::search_users),
            endpoint!(POST "/ldap/users/import" => ldap::import_users),
            endpoint!(GET "/ldap/groups/search" => ldap::search_groups),
        ]);
        #[cfg(feature = "oidc")]
        table.push(endpoint!(POST "/system/oidc/ping" => oidc::ping));
        #[cfg(feature = "replication")]
        table.extend([
            endpoint!(GET "/registries" => registries::list),
            endpoint!(POST "/registries" => registries::create),
            endpoint!(POST "/registries/ping" => registries::ping),
            endpoint!(GET "/registries/{id}" => registries::get),
            endpoint!(PUT "/registries/{id}" => registries::update),
            endpoint!(DELETE "/registries/{id}" => registries::delete),
            endpoint!(GET "/registries/{id}/info" => registries::info),
            endpoint!(GET "/replication/adapters" => registries::adapters),
            endpoint!(GET "/replication/adapterinfos" => registries::adapter_infos),
            endpoint!(GET "/replication/policies" => replication::list),
            endpoint!(POST "/replication/policies" => replication::create),
            endpoint!(GET "/replication/policies/{id}" => replication::get),
            endpoint!(PUT "/replication/policies/{id}" => replication::update),
            endpoint!(DELETE "/replication/policies/{id}" => replication::delete),
            endpoint!(POST "/replication/executions" => replication::start),
            endpoint!(GET "/replication/executions" => replication::executions),
            endpoint!(GET "/replication/executions/{id}" => replication::get_execution),
            endpoint!(PUT "/replication/executions/{id}" => replication::stop),
            endpoint!(GET "/replication/executions/{id}/tasks" => replication::tasks),
            endpoint!(GET "/replication/executions/{id}/tasks/{task_id}/log" => replication::task_log),
        ]);
        #[cfg(feature = "scanning")]
        table.extend([
            endpoint!(GET "/scanners" => scanners::list),
            endpoint!(POST "/scanners" => scanners::create),
            endpoint!(POST "/scanners/ping" => scanners::ping),
            endpoint!(GET "/scanners/{registration_id}" => scanners::get),
            endpoint!(PUT "/scanners/{registration_id}" => scanners::update),
            endpoint!(PATCH "/scanners/{registration_id}" => scanners::set_default),
            endpoint!(DELETE "/scanners/{registration_id}" => scanners::delete),
            endpoint!(GET "/scanners/{registration_id}/metadata" => scanners::metadata),
            endpoint!(GET "/projects/{project_name_or_id}/scanner" => scanners::project_scanner),
            endpoint!(PUT "/projects/{project_name_or_id}/scanner" => scanners::set_project_scanner),
            endpoint!(GET "/projects/{project_name_or_id}/scanner/candidates" => scanners::candidates),
            endpoint!(POST "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/scan" => scans::scan),
            endpoint!(POST "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/scan/stop" => scans::stop),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/scan/{report_id}/log" => scans::log),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/vulnerabilities" => scans::vulnerabilities),
            endpoint!(GET "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/sbom" => scans::sbom),
            endpoint!(GET "/system/scanAll/schedule" => scans::get_schedule),
            endpoint!(POST "/system/scanAll/schedule" => scans::set_schedule),
            endpoint!(PUT "/system/scanAll/schedule" => scans::put_schedule),
            endpoint!(POST "/system/scanAll/stop" => scans::stop_all),
            endpoint!(GET "/scans/all/metrics" => scans::metrics),
            endpoint!(GET "/scans/schedule/metrics" => scans::metrics),
            endpoint!(GET "/system/CVEAllowlist" => scans::get_system_allowlist),
            endpoint!(PUT "/system/CVEAllowlist" => scans::put_system_allowlist),
        ]);
        table
    })
}

/// How the API authenticates its callers.
pub(crate) enum Callers {
    /// Basic credentials through the authenticator (none: everyone is anonymous), or the
    /// portal's session cookie when sessions are on.
    Basic(Option<Arc<dyn Authenticator>>, Option<crate::session::Sessions>),
    /// Everyone is this identity (the local admin socket).
    Assume(registry_auth::Identity),
}

/// The management API as one service (paths relative to the server root).
pub(crate) fn service(api: Arc<Api>, callers: Callers, deadline_limit: std::time::Duration) -> BoxService {
    let handlers = service_fn(move |req: Request<RequestBody>| {
        let api = api.clone();
        async move {
            let head = req.method() == Method::HEAD;
            // A page's script (the portal) handles a 401 itself: a Basic challenge would make the
            // browser ask for a password in a dialog of its own.
            let from_script = req.headers().get("x-requested-with").is_some_and(|v| v == "XMLHttpRequest");
            let mut response = dispatch(api, req).await.unwrap_or_else(|e| e.into_response(head));
            if from_script {
                response.headers_mut().remove(http::header::WWW_AUTHENTICATE);
            }
            response
        }
    });
    let auth = match callers {
        Callers::Basic(Some(authenticator), sessions) => authenticate::Mode::Basic(authenticator, sessions),
        Callers::Basic(None, _) => authenticate::Mode::Assume(registry_auth::Identity::Anonymous),
        Callers::Assume(who) => authenticate::Mode::Assume(who),
    };
    ServiceBuilder::new()
        .layer(deadline::layer(deadline_limit, deadline::always))
        .layer(authenticate::layer(auth))
        .service(handlers)
}

async fn dispatch(api: Arc<Api>, req: Request<RequestBody>) -> ApiResult {
    // The chart repositories (`/chartrepo/…`) share the API's callers and errors.
    let (table, shown, path) = match req.uri().path().strip_prefix(API_PREFIX) {
        Some(path) => (endpoints(), API_PREFIX, path.to_owned()),
        None => (chartrepo::endpoints(), "", req.uri().path().to_owned()),
    };
    let (endpoint, params) = match router::find(table, req.method(), &path) {
        Match::Found(endpoint, params) => (endpoint, params),
        Match::WrongMethod => {
            return Err(ApiError::harbor(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed here", req.method()),
            ));
        }
        Match::None => {
            return Err(ApiError::harbor(StatusCode::NOT_FOUND, format!("no such endpoint {shown}{path}")));
        }
    };
    let authentication = req.extensions().get::<Authentication>().cloned().unwrap_or(Authentication::Anonymous);
    if matches!(authentication, Authentication::InvalidCredentials) {
        return Err(ApiError::harbor(StatusCode::UNAUTHORIZED, "invalid user name or password")
            .with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"registry\""));
    }
    let prefix =
        req.extensions().get::<crate::layers::prefix::PathPrefix>().map(|p| p.0.to_string()).unwrap_or_default();
    let query = Query::of(&req);
    let operator = Authentication::operator_of(&req);
    let (parts, body) = req.into_parts();
    let body = read_limited(body, MAX_BODY).await?;
    let call = ApiCall { params, query, headers: parts.headers, body, authentication, prefix, operator };
    (endpoint.handler)(api, call).await
}
