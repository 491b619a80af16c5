//! Events: one record per change (and per pull and login), written by the store in the same
//! transaction as the change it records (a transactional outbox), read back in order by
//! consumers (the audit log, webhooks, syslog forwarding) with a cursor.

use serde::{Deserialize, Serialize};

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Operator {
    /// What kind of account.
    pub kind: OperatorKind,
    /// Its name (empty for anonymous and the system).
    pub name: String,
    /// The client's address, when the change came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl Operator {
    /// The registry itself (first start, scheduled jobs, commands on the local socket).
    pub fn system() -> Operator {
        Operator { kind: OperatorKind::System, name: String::new(), address: None }
    }

    /// A named user or robot (robots' names start with `robot$`).
    pub fn named(name: &str, address: Option<String>) -> Operator {
        let kind = if name.starts_with("robot$") { OperatorKind::Robot } else { OperatorKind::User };
        Operator { kind, name: name.to_owned(), address }
    }

    /// Someone who did not log in.
    pub fn anonymous(address: Option<String>) -> Operator {
        Operator { kind: OperatorKind::Anonymous, name: String::new(), address }
    }

    /// The name the audit log shows (`anonymous`, `system` for those).
    pub fn display_name(&self) -> &str {
        match self.kind {
            OperatorKind::Anonymous => "anonymous",
            OperatorKind::System => "system",
            _ => &self.name,
        }
    }
}

/// Kinds of operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OperatorKind {
    /// A user.
    User,
    /// A robot account.
    Robot,
    /// No credentials.
    Anonymous,
    /// The registry itself.
    #[default]
    System,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventAction {
    /// A manifest (an artifact) was pushed.
    PushArtifact,
    /// A manifest was pulled.
    PullArtifact,
    /// A manifest was deleted (with its tags).
    DeleteArtifact,
    /// A tag was created, or moved to another manifest.
    CreateTag,
    /// A tag was deleted.
    DeleteTag,
    /// A user was created.
    CreateUser,
    /// A user was changed (profile, password, admin flag, enabled).
    UpdateUser,
    /// A user was deleted.
    DeleteUser,
    /// A project was created.
    CreateProject,
    /// A project was changed.
    UpdateProject,
    /// A project was deleted.
    DeleteProject,
    /// A member was added to a project.
    CreateMember,
    /// A member's role changed.
    UpdateMember,
    /// A member was removed.
    DeleteMember,
    /// A robot account was created.
    CreateRobot,
    /// A robot account was changed (or its secret refreshed).
    UpdateRobot,
    /// A robot account was deleted.
    DeleteRobot,
    /// A webhook policy was created.
    CreateWebhook,
    /// A webhook policy was changed.
    UpdateWebhook,
    /// A webhook policy was deleted.
    DeleteWebhook,
    /// A system setting changed.
    UpdateSettings,
    /// A login succeeded.
    LoginSuccess,
    /// A login failed (the password is never recorded).
    LoginFailure,
    /// A project's usage reached the warning threshold of its quota.
    QuotaWarning,
    /// A push was refused: it would have taken a project past its quota.
    QuotaExceed,
    /// A project's quota (limit) was set or changed.
    UpdateQuota,
    /// A policy (an immutability rule, a retention policy) was created.
    CreatePolicy,
    /// A policy was changed (or enabled, disabled).
    UpdatePolicy,
    /// A policy was deleted.
    DeletePolicy,
    /// A label was created.
    CreateLabel,
    /// A label was changed.
    UpdateLabel,
    /// A label was deleted (and taken off every artifact).
    DeleteLabel,
    /// A label was put on an artifact.
    AddLabel,
    /// A label was taken off an artifact.
    RemoveLabel,
    /// A tag retention run finished (or a dry run: the detail says).
    TagRetention,
    /// A scan of an artifact finished with a report (the detail sums it up).
    ScanningCompleted,
    /// A scan of an artifact failed (the detail says why).
    ScanningFailed,
    /// A scan of an artifact was stopped.
    ScanningStopped,
    /// A scanner was registered, changed, made the default or removed (the detail says).
    UpdateScanner,
    /// A replication execution ended (the detail holds Harbor's replication summary as JSON).
    Replication,
    /// A user group was created (by an admin, or at the first sign-in of one of its members).
    CreateUserGroup,
    /// A user group was renamed.
    UpdateUserGroup,
    /// A user group was deleted (with its memberships).
    DeleteUserGroup,
}

impl EventAction {
    /// Every action, for listings.
    pub const ALL: [EventAction; 43] = [
        EventAction::PushArtifact,
        EventAction::PullArtifact,
        EventAction::DeleteArtifact,
        EventAction::CreateTag,
        EventAction::DeleteTag,
        EventAction::CreateUser,
        EventAction::UpdateUser,
        EventAction::DeleteUser,
        EventAction::CreateProject,
        EventAction::UpdateProject,
        EventAction::DeleteProject,
        EventAction::CreateMember,
        EventAction::UpdateMember,
        EventAction::DeleteMember,
        EventAction::CreateRobot,
        EventAction::UpdateRobot,
        EventAction::DeleteRobot,
        EventAction::CreateWebhook,
        EventAction::UpdateWebhook,
        EventAction::DeleteWebhook,
        EventAction::UpdateSettings,
        EventAction::LoginSuccess,
        EventAction::LoginFailure,
        EventAction::QuotaWarning,
        EventAction::QuotaExceed,
        EventAction::UpdateQuota,
        EventAction::CreatePolicy,
        EventAction::UpdatePolicy,
        EventAction::DeletePolicy,
        EventAction::CreateLabel,
        EventAction::UpdateLabel,
        EventAction::DeleteLabel,
        EventAction::AddLabel,
        EventAction::RemoveLabel,
        EventAction::TagRetention,
        EventAction::ScanningCompleted,
        EventAction::ScanningFailed,
        EventAction::ScanningStopped,
        EventAction::UpdateScanner,
        EventAction::Replication,
        EventAction::CreateUserGroup,
        EventAction::UpdateUserGroup,
        EventAction::DeleteUserGroup,
    ];

    /// Harbor's audit-log `resource_type` and `operation` for the action.
    pub fn audit(self) -> (&'static str, &'static str) {
        use EventAction as A;
        match self {
            A::PushArtifact => ("artifact", "create"),
            A::PullArtifact => ("artifact", "pull"),
            A::DeleteArtifact => ("artifact", "delete"),
            A::CreateTag => ("tag", "create"),
            A::DeleteTag => ("tag", "delete"),
            A::CreateUser => ("user", "create"),
            A::UpdateUser => ("user", "update"),
            A::DeleteUser => ("user", "delete"),
            A::CreateProject => ("project", "create"),
            A::UpdateProject => ("project", "update"),
            A::DeleteProject => ("project", "delete"),
            A::CreateMember => ("project_member", "create"),
            A::UpdateMember => ("project_member", "update"),
            A::DeleteMember => ("project_member", "delete"),
            A::CreateRobot => ("robot", "create"),
            A::UpdateRobot => ("robot", "update"),
            A::DeleteRobot => ("robot", "delete"),
            A::CreateWebhook => ("webhook_policy", "create"),
            A::UpdateWebhook => ("webhook_policy", "update"),
            A::DeleteWebhook => ("webhook_policy", "delete"),
            A::UpdateSettings => ("configuration", "update"),
            A::LoginSuccess => ("user", "login"),
            A::LoginFailure => ("user", "login_failure"),
            A::QuotaWarning => ("quota", "warning"),
            A::QuotaExceed => ("quota", "exceed"),
            A::UpdateQuota => ("quota", "update"),
            A::CreatePolicy => ("policy", "create"),
            A::UpdatePolicy => ("policy", "update"),
            A::DeletePolicy => ("policy", "delete"),
            A::CreateLabel => ("label", "create"),
            A::UpdateLabel => ("label", "update"),
            A::DeleteLabel => ("label", "delete"),
            A::AddLabel => ("artifact_label", "create"),
            A::RemoveLabel => ("artifact_label", "delete"),
            A::TagRetention => ("retention", "run"),
            A::ScanningCompleted => ("scan", "completed"),
            A::ScanningFailed => ("scan", "failed"),
            A::ScanningStopped => ("scan", "stopped"),
            A::UpdateScanner => ("scanner", "update"),
            A::Replication => ("replication", "run"),
            A::CreateUserGroup => ("user_group", "create"),
            A::UpdateUserGroup => ("user_group", "update"),
            A::DeleteUserGroup => ("user_group", "delete"),
        }
    }

    /// The name as text (`PUSH_ARTIFACT`).
    pub fn as_str(self) -> &'static str {
        use EventAction as A;
        match self {
            A::PushArtifact => "PUSH_ARTIFACT",
            A::PullArtifact => "PULL_ARTIFACT",
            A::DeleteArtifact => "DELETE_ARTIFACT",
            A::CreateTag => "CREATE_TAG",
            A::DeleteTag => "DELETE_TAG",
            A::CreateUser => "CREATE_USER",
            A::UpdateUser => "UPDATE_USER",
            A::DeleteUser => "DELETE_USER",
            A::CreateProject => "CREATE_PROJECT",
            A::UpdateProject => "UPDATE_PROJECT",
            A::DeleteProject => "DELETE_PROJECT",
            A::CreateMember => "CREATE_MEMBER",
            A::UpdateMember => "UPDATE_MEMBER",
            A::DeleteMember => "DELETE_MEMBER",
            A::CreateRobot => "CREATE_ROBOT",
            A::UpdateRobot => "UPDATE_ROBOT",
            A::DeleteRobot => "DELETE_ROBOT",
            A::CreateWebhook => "CREATE_WEBHOOK",
            A::UpdateWebhook => "UPDATE_WEBHOOK",
            A::DeleteWebhook => "DELETE_WEBHOOK",
            A::UpdateSettings => "UPDATE_SETTINGS",
            A::LoginSuccess => "LOGIN_SUCCESS",
            A::LoginFailure => "LOGIN_FAILURE",
            A::QuotaWarning => "QUOTA_WARNING",
            A::QuotaExceed => "QUOTA_EXCEED",
            A::UpdateQuota => "UPDATE_QUOTA",
            A::CreatePolicy => "CREATE_POLICY",
            A::UpdatePolicy => "UPDATE_POLICY",
            A::DeletePolicy => "DELETE_POLICY",
            A::CreateLabel => "CREATE_LABEL",
            A::UpdateLabel => "UPDATE_LABEL",
            A::DeleteLabel => "DELETE_LABEL",
            A::AddLabel => "ADD_LABEL",
            A::RemoveLabel => "REMOVE_LABEL",
            A::TagRetention => "TAG_RETENTION",
            A::ScanningCompleted => "SCANNING_COMPLETED",
            A::ScanningFailed => "SCANNING_FAILED",
            A::ScanningStopped => "SCANNING_STOPPED",
            A::UpdateScanner => "UPDATE_SCANNER",
            A::Replication => "REPLICATION",
            A::CreateUserGroup => "CREATE_USER_GROUP",
            A::UpdateUserGroup => "UPDATE_USER_GROUP",
            A::DeleteUserGroup => "DELETE_USER_GROUP",
        }
    }
}

/// What it happened to. Fields that do not apply are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resource {
    /// The project (the first component of a repository name, or the project changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The manifest's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifest's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The account changed (user, robot, member), or the setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a person reads about it (a quota warning's figures, a refusal's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its place in the stream, given by the store (0 until stored). Ids grow in the order the
    /// changes committed.
    pub id: u64,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who.
    pub operator: Operator,
    /// What.
    pub action: EventAction,
    /// To what.
    pub resource: Resource,
    /// How many times it happened: identical pulls (same operator, address and artifact)
    /// gathered in one batch are one event with their count and the time of the first.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl Event {
    /// A new event (its id is given when it is stored).
    pub fn new(time_ms: u64, operator: Operator, action: EventAction, resource: Resource) -> Event {
        Event { id: 0, time_ms, operator, action, resource, count: 1 }
    }

    /// Whether `other` is the same happening as this one but for its time (so the two may be
    /// counted as one event).
    pub fn same_as(&self, other: &Event) -> bool {
        self.action == other.action && self.operator == other.operator && self.resource == other.resource
    }

    /// The audit log's `resource` text: `repo:tag`, `repo@digest`, the project or the account.
    pub fn resource_text(&self) -> String {
        let r = &self.resource;
        match (&r.repository, &r.tag, &r.digest) {
            (Some(repo), Some(tag), _) => format!("{repo}:{tag}"),
            (Some(repo), None, Some(digest)) => format!("{repo}@{digest}"),
            (Some(repo), None, None) => repo.clone(),
            _ => r.name.clone().or_else(|| r.project.clone()).unwrap_or_default(),
        }
    }
}

/// Which events a query wants (the audit log's filters). Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these projects (a project member's view).
    pub projects: Option<Vec<String>>,
    /// The operation (`create`, `delete`, `pull`, …).
    pub operation: Option<String>,
    /// The resource type (`artifact`, `tag`, `user`, …).
    pub resource_type: Option<String>,
    /// A substring of the resource text.
    pub resource: Option<String>,
    /// The operator's name.
    pub username: Option<String>,
    /// From this time (ms, inclusive).
    pub from_ms: Option<u64>,
    /// Until this time (ms, inclusive).
    pub to_ms: Option<u64>,
}

impl EventFilter {
    /// Whether `event` matches.
    pub fn matches(&self, event: &Event) -> bool {
        let (resource_type, operation) = event.action.audit();
        let project_ok = match &self.projects {
            Some(projects) => event.resource.project.as_ref().is_some_and(|p| projects.contains(p)),
            None => true,
        };
        project_ok
            && self.operation.as_deref().is_none_or(|o| o == operation)
            && self.resource_type.as_deref().is_none_or(|t| t == resource_type)
            && self.resource.as_deref().is_none_or(|r| event.resource_text().contains(r))
            && self.username.as_deref().is_none_or(|u| u == event.operator.display_name())
            && self.from_ms.is_none_or(|t| event.time_ms >= t)
            && self.to_ms.is_none_or(|t| event.time_ms <= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_filter() {
        let event = Event::new(
            5_000,
            Operator::named("robot$team+ci", Some("10.0.0.1".into())),
            EventAction::PushArtifact,
            Resource {
                project: Some("team".into()),
                repository: Some("team/app".into()),
                tag: Some("v1".into()),
                ..Resource::default()
            },
        );
        assert_eq!(event.operator.kind, OperatorKind::Robot);
        let text = serde_json::to_string(&event).expect("json");
        assert_eq!(serde_json::from_str::<Event>(&text).expect("parse"), event);
        assert!(text.contains("\"PUSH_ARTIFACT\""));
        assert_eq!(event.resource_text(), "team/app:v1");
        let mut filter = EventFilter { operation: Some("create".into()), ..EventFilter::default() };
        assert!(filter.matches(&event));
        filter.projects = Some(vec!["library".into()]);
        assert!(!filter.matches(&event), "another project");
        let filter = EventFilter { from_ms: Some(6_000), ..EventFilter::default() };
        assert!(!filter.matches(&event), "before the range");
        for action in EventAction::ALL {
            let text = serde_json::to_string(&action).expect("json");
            assert_eq!(text.trim_matches('"'), action.as_str());
        }
    }
}
