//! The account records: users, projects, members, robots, as an [`AccountStore`](crate::AccountStore)
//! keeps them. Harbor's model, with Harbor's numeric ids, so its API shapes can be served exactly.
//!
//! Times are seconds since the Unix epoch. Secrets appear only as bcrypt hashes
//! ([`SecretHash`]), which never reach `Debug` output.

use std::collections::BTreeMap;

use registry_core::Action;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;

/// A record's id, assigned by the store (1, 2, …; never reused within a store).
pub type Id = u64;

/// A bcrypt hash of a password or robot secret. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl SecretHash {
    /// Wraps a stored hash.
    pub fn from_stored(hash: impl Into<String>) -> SecretHash {
        SecretHash(hash.into())
    }

    /// The hash as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// A role in a project (Harbor's five), with Harbor's role ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Pull, push, delete, manage members and robots.
    ProjectAdmin,
    /// Pull, push, delete.
    Maintainer,
    /// Pull, push.
    Developer,
    /// Pull.
    Guest,
    /// Pull.
    LimitedGuest,
}

impl Role {
    /// All roles, strongest first.
    pub const ALL: [Role; 5] = [Role::ProjectAdmin, Role::Maintainer, Role::Developer, Role::Guest, Role::LimitedGuest];

    /// Parses `project_admin`, `maintainer`, `developer`, `guest`, `limited_guest` (also with
    /// dashes, and Harbor's camel-case names `projectAdmin`, `limitedGuest`).
    pub fn parse(s: &str) -> Result<Role, AuthError> {
        Ok(match s.replace('-', "_").to_ascii_lowercase().as_str() {
            "project_admin" | "projectadmin" | "admin" => Role::ProjectAdmin,
            "maintainer" => Role::Maintainer,
            "developer" => Role::Developer,
            "guest" => Role::Guest,
            "limited_guest" | "limitedguest" => Role::LimitedGuest,
            _ => {
                return Err(AuthError::Invalid(format!(
                    "unknown role {s:?}: use project_admin, maintainer, developer, guest or limited_guest"
                )));
            }
        })
    }

    /// Harbor's role id: 1 project admin, 2 developer, 3 guest, 4 maintainer, 5 limited guest.
    pub fn id(self) -> u64 {
        match self {
            Role::ProjectAdmin => 1,
            Role::Developer => 2,
            Role::Guest => 3,
            Role::Maintainer => 4,
            Role::LimitedGuest => 5,
        }
    }

    /// The role of a Harbor role id.
    pub fn from_id(id: u64) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.id() == id)
    }

    /// Harbor's role name (`projectAdmin`, `maintainer`, `developer`, `guest`, `limitedGuest`).
    pub fn harbor_name(self) -> &'static str {
        match self {
            Role::ProjectAdmin => "projectAdmin",
            Role::Maintainer => "maintainer",
            Role::Developer => "developer",
            Role::Guest => "guest",
            Role::LimitedGuest => "limitedGuest",
        }
    }

    /// Whether the role may do `action` (`create`, `read`, `update`, `delete`, `list`,
    /// `operate`) on a project's `resource` beyond its repositories, as Harbor's role table
    /// says: `immutable-tag`, `tag-retention`, `label`, `artifact-label`, `quota`. Anything
    /// else: no.
    pub fn allows(self, resource: &str, action: &str) -> bool {
        use Role::*;
        match resource {
            "quota" => action == "read",
            "immutable-tag" => matches!(self, ProjectAdmin | Maintainer),
            "tag-retention" => matches!(self, ProjectAdmin | Maintainer | Developer),
            "label" => match action {
                "read" | "list" => matches!(self, ProjectAdmin | Maintainer | Developer | Guest),
                _ => matches!(self, ProjectAdmin | Maintainer),
            },
            "artifact-label" => matches!(self, ProjectAdmin | Maintainer | Developer) && action != "list",
            "scan" => match action {
                "read" => true,
                _ => matches!(self, ProjectAdmin | Maintainer | Developer),
            },
            "scanner" => match action {
                "read" => matches!(self, ProjectAdmin | Maintainer | Developer | Guest),
                _ => matches!(self, ProjectAdmin),
            },
            _ => false,
        }
    }

    /// The repository actions the role grants.
    pub fn actions(self) -> &'static [Action] {
        match self {
            Role::ProjectAdmin | Role::Maintainer => &[Action::Pull, Action::Push, Action::Delete],
            Role::Developer => &[Action::Pull, Action::Push],
            Role::Guest | Role::LimitedGuest => &[Action::Pull],
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::ProjectAdmin => "project_admin",
            Role::Maintainer => "maintainer",
            Role::Developer => "developer",
            Role::Guest => "guest",
            Role::LimitedGuest => "limited_guest",
        })
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The id.
    pub id: Id,
    /// The login name.
    pub name: String,
    /// The password's bcrypt hash.
    pub password_hash: SecretHash,
    /// System administrator.
    pub admin: bool,
    /// Whether it may log in.
    pub enabled: bool,
    /// E-mail address (may be empty).
    #[serde(default)]
    pub email: String,
    /// Full name (may be empty).
    #[serde(default)]
    pub realname: String,
    /// Free text.
    #[serde(default)]
    pub comment: String,
    /// When it was created.
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// When its password was last set.
    #[serde(default)]
    pub password_changed_at: u64,
    /// Where it signs in: empty for here (its password), [`crate::directory::LDAP`] for the
    /// directory (its password hash then matches nothing).
    #[serde(default)]
    pub origin: String,
    /// The user groups they belonged to when they last signed in (ids of [`UserGroup`]s: the
    /// directory's groups that are groups here), whose memberships of projects are theirs too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Id>,
    /// For a user of an OpenID Connect provider: who they are there and their session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcLink>,
}

/// What ties a user to the OpenID Connect provider they sign in through (Harbor's `oidc_user`):
/// their subject there, their CLI secret (sealed, so the portal can show it again; its bcrypt hash
/// is the user's password hash), and the provider session that keeps it valid. Its `Debug` shows
/// neither secret nor token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcLink {
    /// The provider's issuer URL.
    pub issuer: String,
    /// Their subject (`sub`) at the provider.
    pub subject: String,
    /// Their CLI secret, sealed with the registry's key.
    pub secret: String,
    /// The provider's refresh token, sealed with the registry's key (none: the provider gave
    /// none, and the session is trusted until `checked_until` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Until when (seconds since the epoch) the provider's session is known to be valid: the
    /// expiry of the last access token it issued. A CLI sign-in after it asks the provider again.
    pub checked_until: u64,
    /// The groups the provider last said they belong to (the groups claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl std::fmt::Debug for OidcLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLink")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("checked_until", &self.checked_until)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// A project: the first component of its repositories' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// The id.
    pub id: Id,
    /// The name.
    pub name: String,
    /// Anonymous pull allowed.
    pub public: bool,
    /// The user who created it, when a user did.
    #[serde(default)]
    pub owner_id: Option<Id>,
    /// When it was created.
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// Harbor's other project metadata (`auto_scan`, `severity`, …), kept as given; the features
    /// that read them interpret them.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Whom a membership is of: a user, or a group of users (Harbor's `entity_type` `u` and `g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Entity {
    /// A user, by id.
    #[serde(rename = "user_id")]
    User(Id),
    /// A user group, by id.
    #[serde(rename = "group_id")]
    Group(Id),
}

impl Entity {
    /// The user's id, when it is a user.
    pub fn user(self) -> Option<Id> {
        match self {
            Entity::User(id) => Some(id),
            Entity::Group(_) => None,
        }
    }

    /// The group's id, when it is a group.
    pub fn group(self) -> Option<Id> {
        match self {
            Entity::Group(id) => Some(id),
            Entity::User(_) => None,
        }
    }
}

/// A membership of a user or a user group in a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The id of the membership.
    pub id: Id,
    /// The project.
    pub project_id: Id,
    /// The user or group (stored as `user_id` or `group_id`).
    #[serde(flatten)]
    pub entity: Entity,
    /// The role.
    pub role: Role,
    /// A repository pattern inside the project narrowing the membership (an extension of ours:
    /// `app-*`, `team/*`); `None` for the whole project.
    #[serde(default)]
    pub repositories: Option<String>,
    /// When it was created.
    pub created_at: u64,
}

/// Where a user group's members come from (Harbor's `group_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    /// A group of the LDAP directory, by its DN (Harbor's 1).
    Ldap,
    /// A group an authenticating proxy names (Harbor's 2).
    Http,
    /// A group an OpenID Connect provider names in its groups claim (Harbor's 3).
    Oidc,
}

impl GroupKind {
    /// Harbor's number.
    pub fn id(self) -> u8 {
        match self {
            GroupKind::Ldap => 1,
            GroupKind::Http => 2,
            GroupKind::Oidc => 3,
        }
    }

    /// The kind of Harbor's number.
    pub fn from_id(id: i64) -> Option<GroupKind> {
        match id {
            1 => Some(GroupKind::Ldap),
            2 => Some(GroupKind::Http),
            3 => Some(GroupKind::Oidc),
            _ => None,
        }
    }
}

/// A user group: people a directory or a provider says belong together, made members of projects
/// as one (Harbor's user groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGroup {
    /// The id.
    pub id: Id,
    /// Its name as shown (for OIDC and HTTP groups, the name the provider sends).
    pub name: String,
    /// Where its members come from.
    pub kind: GroupKind,
    /// The group's entry in the directory (LDAP groups only; empty otherwise).
    #[serde(default)]
    pub ldap_dn: String,
    /// When it was created.
    pub created_at: u64,
}

impl UserGroup {
    /// What identifies it within its kind, which no two groups share: the DN of an LDAP group
    /// (compared as the directory does: without case and spaces around separators), else the name.
    pub fn key(&self) -> String {
        match self.kind {
            GroupKind::Ldap => normalized_dn(&self.ldap_dn),
            GroupKind::Http | GroupKind::Oidc => self.name.clone(),
        }
    }
}

/// A DN as the directory compares them: lower case, no spaces around `,` and `=`.
pub fn normalized_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// Whether a robot belongs to one project or to the whole system (Harbor's `level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RobotLevel {
    /// `robot$<name>`, with permissions in any projects.
    System,
    /// `robot$<project>+<name>`, with permissions in its project only.
    Project,
}

/// One access of a robot permission (Harbor's `{resource, action}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotAccess {
    /// `repository`, `artifact`, `tag`, … (`repository` and `artifact` matter to the registry).
    pub resource: String,
    /// `pull`, `push`, `delete`, `*`, …
    pub action: String,
}

/// A set of accesses in one namespace (Harbor's `{kind, namespace, access}`), optionally narrowed
/// to a repository pattern inside the project (our extension; `*` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotPermission {
    /// `project` (the only kind granting registry access).
    pub kind: String,
    /// The project's name, or `*` for every project (system robots).
    pub namespace: String,
    /// What it may do.
    pub access: Vec<RobotAccess>,
    /// Pattern on the repository path inside the project (`app-*`); `None` for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<String>,
}

impl RobotPermission {
    /// A project permission granting registry `actions` (`pull`, `push`, `delete`) on the
    /// repositories of `namespace` matching `repositories`.
    pub fn project(namespace: &str, repositories: Option<&str>, actions: &[&str]) -> RobotPermission {
        RobotPermission {
            kind: "project".into(),
            namespace: namespace.to_owned(),
            access: actions
                .iter()
                .map(|a| RobotAccess {
                    resource: if *a == "delete" { "artifact".into() } else { "repository".into() },
                    action: (*a).to_owned(),
                })
                .collect(),
            repositories: repositories.filter(|p| *p != "*").map(str::to_owned),
        }
    }

    /// Parses the CLI form `pattern:actions` for a project robot, e.g. `*:pull,push` or
    /// `app-*:pull`.
    pub fn parse_for_project(project: &str, s: &str) -> Result<RobotPermission, AuthError> {
        let (pattern, actions) = s
            .rsplit_once(':')
            .ok_or_else(|| AuthError::Invalid(format!("permission {s:?}: expected pattern:actions")))?;
        let actions: Vec<&str> = actions.split(',').collect();
        for a in &actions {
            if !matches!(*a, "pull" | "push" | "delete") {
                return Err(AuthError::Invalid(format!("permission {s:?}: unknown action {a:?} (pull, push, delete)")));
            }
        }
        Ok(RobotPermission::project(project, Some(pattern), &actions))
    }

    /// The registry actions this permission grants.
    pub fn registry_actions(&self) -> Vec<Action> {
        let mut out = Vec::new();
        for a in &self.access {
            match (a.resource.as_str(), a.action.as_str()) {
                ("repository", "pull") => out.push(Action::Pull),
                ("repository", "push") => out.push(Action::Push),
                ("repository" | "artifact", "delete") => out.push(Action::Delete),
                ("repository", "*") => out.extend([Action::Pull, Action::Push, Action::Delete]),
                _ => {}
            }
        }
        out
    }

    /// Whether it grants `action` on `resource` (Harbor's names: `immutable-tag`, `label`, …) in
    /// `project`.
    pub fn allows(&self, project: &str, resource: &str, action: &str) -> bool {
        self.kind == "project"
            && (self.namespace == project || self.namespace == "*")
            && self.access.iter().any(|a| a.resource == resource && (a.action == action || a.action == "*"))
    }

    /// Whether it covers `repository` (the path inside the project) of `project`.
    pub fn covers(&self, project: &str, repository: &str) -> bool {
        self.kind == "project"
            && (self.namespace == project || self.namespace == "*")
            && self.repositories.as_deref().is_none_or(|p| pattern_matches(p, repository))
    }
}

/// A robot account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Robot {
    /// The id.
    pub id: Id,
    /// The full name: `robot$<project>+<name>` or `robot$<name>`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Project or system.
    pub level: RobotLevel,
    /// The project of a project robot.
    #[serde(default)]
    pub project_id: Option<Id>,
    /// The secret's bcrypt hash.
    pub secret_hash: SecretHash,
    /// What it may do.
    pub permissions: Vec<RobotPermission>,
    /// Disabled robots cannot log in.
    #[serde(default)]
    pub disabled: bool,
    /// Expiry, or never.
    pub expires_at: Option<u64>,
    /// Who created it (a user name).
    #[serde(default)]
    pub creator: String,
    /// When it was created.
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
}

/// Failed logins of an account, in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    /// How many.
    pub count: u32,
    /// When the last one happened.
    pub last_at: u64,
}

/// Matches `pattern` (with `*` for any run of characters) against `text`.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_stored_as_before_and_groups_beside_them() {
        let old = r#"{"id":3,"project_id":1,"user_id":2,"role":"developer","created_at":5}"#;
        let m: Member = serde_json::from_str(old).expect("an old record");
        assert_eq!(m.entity, Entity::User(2));
        assert!(serde_json::to_string(&m).expect("json").contains(r#""user_id":2"#));
        let g = Member { entity: Entity::Group(7), ..m };
        let text = serde_json::to_string(&g).expect("json");
        assert!(text.contains(r#""group_id":7"#) && !text.contains("user_id"), "{text}");
        assert_eq!(serde_json::from_str::<Member>(&text).expect("read back"), g);
        assert_eq!(normalized_dn("CN=Developers, OU=groups,dc = example"), "cn=developers,ou=groups,dc=example");
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "anything/at/all"));
        assert!(pattern_matches("app-*", "app-web"));
        assert!(!pattern_matches("app-*", "web-app"));
        assert!(pattern_matches("team/*/svc", "team/a/b/svc"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
        assert!(!pattern_matches("a*a", "a"));
    }

    #[test]
    fn roles_allow_what_harbors_table_says() {
        assert!(Role::Maintainer.allows("immutable-tag", "create"));
        assert!(!Role::Developer.allows("immutable-tag", "list"));
        assert!(Role::Developer.allows("tag-retention", "operate"));
        assert!(!Role::Guest.allows("tag-retention", "read"));
        assert!(Role::Guest.allows("label", "list") && !Role::Guest.allows("label", "create"));
        assert!(!Role::LimitedGuest.allows("label", "list"));
        assert!(Role::Developer.allows("artifact-label", "create") && !Role::Guest.allows("artifact-label", "create"));
        assert!(Role::LimitedGuest.allows("quota", "read") && !Role::ProjectAdmin.allows("quota", "update"));
        assert!(!Role::ProjectAdmin.allows("anything-else", "read"));
        let robot = RobotPermission {
            kind: "project".into(),
            namespace: "team".into(),
            access: vec![RobotAccess { resource: "label".into(), action: "*".into() }],
            repositories: None,
        };
        assert!(robot.allows("team", "label", "create") && !robot.allows("other", "label", "create"));
        assert!(!robot.allows("team", "immutable-tag", "create"));
    }

    #[test]
    fn roles_have_harbor_ids() {
        for role in Role::ALL {
            assert_eq!(Role::from_id(role.id()), Some(role));
            assert_eq!(Role::parse(role.harbor_name()).expect("harbor name"), role);
            assert_eq!(Role::parse(&role.to_string()).expect("our name"), role);
        }
        assert_eq!(Role::Developer.id(), 2);
        assert_eq!(Role::Maintainer.id(), 4);
        assert!(Role::parse("owner").is_err());
    }

    #[test]
    fn robot_permissions_map_to_registry_actions() {
        let p = RobotPermission::parse_for_project("team", "app-*:pull,delete").expect("parse");
        assert_eq!(p.registry_actions(), vec![Action::Pull, Action::Delete]);
        assert!(p.covers("team", "app-web") && !p.covers("team", "web") && !p.covers("other", "app-web"));
        let all = RobotPermission::parse_for_project("team", "*:push").expect("parse");
        assert!(all.repositories.is_none() && all.covers("team", "anything"));
        assert!(RobotPermission::parse_for_project("team", "*:admin").is_err());
        let secret = SecretHash::from_stored("$2b$10$secret");
        assert!(!format!("{secret:?}").contains("secret$"), "hashes stay out of Debug");
    }
}
