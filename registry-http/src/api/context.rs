//! Who the caller is and what they may do, for the management API's handlers; project look-up
//! by name or id (Harbor's `project_name_or_id` with `X-Is-Resource-Name`).
//!
//! Anonymous callers get 401 where an account is needed; signed-in callers get 403 where their
//! role is not enough. Every check asks the same [`AccessPolicy`](registry_auth::AccessPolicy)
//! and accounts as the registry's token service.

use http::StatusCode;
use registry_auth::{Accounts, Identity, Project, Role};
use serde::de::DeserializeOwned;

use super::{Api, ApiCall};
use crate::error::ApiError;
use crate::layers::Authentication;

/// 401: sign in first.
pub(crate) fn unauthorized() -> ApiError {
    ApiError::harbor(StatusCode::UNAUTHORIZED, "sign in first: this needs an account")
        .with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"registry\"")
}

/// 403, naming what was refused.
pub(crate) fn forbidden(what: impl std::fmt::Display) -> ApiError {
    ApiError::harbor(StatusCode::FORBIDDEN, format!("forbidden: {what}"))
}

/// Removes the members set to `null` from every object of `value`.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// 400, with a message.
pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::harbor(StatusCode::BAD_REQUEST, message)
}

impl ApiCall {
    /// The caller (anonymous when no credentials were sent).
    pub(crate) fn caller(&self) -> &Identity {
        static ANONYMOUS: Identity = Identity::Anonymous;
        match &self.authentication {
            Authentication::Identity(who) => who,
            _ => &ANONYMOUS,
        }
    }

    /// The caller, who must be signed in.
    pub(crate) fn signed_in(&self) -> Result<&Identity, ApiError> {
        match self.caller() {
            Identity::Anonymous => Err(unauthorized()),
            who => Ok(who),
        }
    }

    /// The name of the calling user (robots have none here: 403).
    pub(crate) fn user_name(&self) -> Result<&str, ApiError> {
        match self.signed_in()? {
            Identity::User { name, .. } => Ok(name),
            _ => Err(forbidden("robot accounts cannot do this")),
        }
    }

    /// Refuses anyone but a system administrator.
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        if self.signed_in()?.is_admin() { Ok(()) } else { Err(forbidden("system administrators only")) }
    }

    /// The JSON body. A member set to `null` counts as left out, as Harbor's clients (generated
    /// models) send every member they know.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(bad_request("a JSON body is required"));
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(&self.body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))?;
        drop_nulls(&mut value);
        serde_json::from_value(value).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
    }

    /// Whether `X-Is-Resource-Name: true` says a path parameter is a name, not an id.
    fn is_resource_name(&self) -> bool {
        self.headers.get("x-is-resource-name").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "true")
    }

    /// A path under the API, as the client must see it (for `Location` and `Link`).
    pub(crate) fn location(&self, path: &str) -> String {
        format!("{}{}{path}", self.prefix, super::API_PREFIX)
    }
}

impl Api {
    /// Harbor's accounts, or 404 when this registry's accounts are kept elsewhere.
    pub(crate) fn accounts(&self) -> Result<&Accounts, ApiError> {
        self.accounts.as_ref().ok_or_else(|| {
            ApiError::harbor(
                StatusCode::NOT_FOUND,
                "this registry does not keep accounts: they belong to the authenticator it was built with",
            )
        })
    }

    /// The accounts, making changes for the caller of `call` (their events name them).
    pub(crate) fn accounts_for(&self, call: &ApiCall) -> Result<Accounts, ApiError> {
        Ok(self.accounts()?.acting_as(call.operator.clone()))
    }

    /// The project a path parameter names (by id when numeric, unless `X-Is-Resource-Name`).
    pub(crate) async fn project(&self, call: &ApiCall, param: &str) -> Result<Project, ApiError> {
        let accounts = self.accounts()?;
        let text = call.params.get(param)?;
        let found = match text.parse::<u64>() {
            Ok(id) if !call.is_resource_name() => accounts.project_by_id(id).await?,
            _ => accounts.project(text).await?,
        };
        found.ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("project {text} not found")))
    }

    /// The caller's role in `project`, if a member (system admins count as project admins).
    pub(crate) async fn role(&self, who: &Identity, project: &Project) -> Result<Option<Role>, ApiError> {
        match who {
            Identity::User { admin: true, .. } => Ok(Some(Role::ProjectAdmin)),
            Identity::User { name, .. } => Ok(self.accounts()?.role_in(&project.name, name).await?),
            _ => Ok(None),
        }
    }

    /// Whether `who` may see `project`: public, a member, a system admin, or a robot with a
    /// permission in it.
    pub(crate) async fn may_see(&self, who: &Identity, project: &Project) -> Result<bool, ApiError> {
        if project.public || self.role(who, project).await?.is_some() {
            return Ok(true);
        }
        Ok(matches!(who, Identity::Robot { permissions, .. }
            if permissions.iter().any(|p| p.namespace == project.name || p.namespace == "*")))
    }

    /// Whether `who` may do `action` on `repository`, by the registry's access policy (without
    /// one: everyone pulls, system administrators do the rest).
    pub(crate) async fn may(
        &self,
        who: &Identity,
        repository: &str,
        action: registry_core::scope::Action,
    ) -> Result<bool, ApiError> {
        use registry_auth::AccessPolicyExt;
        match &self.policy {
            Some(policy) => Ok(policy.may(who, repository, action).await?),
            None => Ok(action == registry_core::scope::Action::Pull || who.is_admin()),
        }
    }

    /// Whether `who` may pull every repository of `project` (see
    /// [`registry_auth::AccessPolicy::may_pull_everywhere`]; without a policy everyone pulls).
    pub(crate) async fn may_pull_everywhere(&self, who: &Identity, project: &str) -> Result<bool, ApiError> {
        match &self.policy {
            Some(policy) => Ok(policy.may_pull_everywhere(who, project).await?),
            None => Ok(true),
        }
    }

    /// Refuses who may not see the project (401 anonymous, 403 otherwise).
    pub(crate) async fn require_see(&self, call: &ApiCall, project: &Project) -> Result<(), ApiError> {
        if self.may_see(call.caller(), project).await? {
            return Ok(());
        }
        call.signed_in()?;
        Err(forbidden(format!("project {} is private", project.name)))
    }

    /// Refuses who may not administer the project (401 anonymous, 403 otherwise).
    pub(crate) async fn require_manage(&self, call: &ApiCall, project: &Project) -> Result<(), ApiError> {
        let who = call.signed_in()?;
        let may = match &self.policy {
            Some(policy) => policy.may_manage(who, &project.name).await?,
            None => who.is_admin(),
        };
        if may { Ok(()) } else { Err(forbidden(format!("only project admins of {} may do this", project.name))) }
    }

    /// Refuses who may not do `action` on the project's `resource` (Harbor's names:
    /// `immutable-tag`, `tag-retention`, `label`, `artifact-label`, `quota`): system admins,
    /// members whose role allows it ([`Role::allows`]), robots holding that permission in the
    /// project. 401 anonymous, 403 otherwise.
    pub(crate) async fn require_permission(
        &self,
        call: &ApiCall,
        project: &Project,
        resource: &str,
        action: &str,
    ) -> Result<(), ApiError> {
        let who = call.signed_in()?;
        let allowed = match who {
            Identity::User { admin: true, .. } => true,
            Identity::User { .. } => self.role(who, project).await?.is_some_and(|r| r.allows(resource, action)),
            Identity::Robot { permissions, .. } => {
                permissions.iter().any(|p| p.allows(&project.name, resource, action))
            }
            Identity::Anonymous => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(forbidden(format!("{action} on {resource} of project {} is not granted to you", project.name)))
        }
    }

    /// Refuses who is not at least `least` in the project (system admins pass).
    pub(crate) async fn require_role(
        &self,
        call: &ApiCall,
        project: &Project,
        allowed: &[Role],
    ) -> Result<Role, ApiError> {
        let who = call.signed_in()?;
        match self.role(who, project).await? {
            Some(role) if allowed.contains(&role) => Ok(role),
            _ => Err(forbidden(format!("your role in project {} does not allow this", project.name))),
        }
    }
}
