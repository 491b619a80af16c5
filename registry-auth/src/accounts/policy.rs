//! Harbor's access rules: what an identity may do to a repository, and who manages a project.

use async_trait::async_trait;
use registry_core::{Action, RepositoryName, Scope};

use super::Accounts;
use crate::error::AuthError;
use crate::identity::Identity;
use crate::model::{Role, pattern_matches};
use crate::policy::{AccessPolicy, ProjectState};

#[async_trait]
impl AccessPolicy for Accounts {
    async fn grant(&self, who: &Identity, requested: &Scope) -> Result<Scope, AuthError> {
        let nothing = Scope { actions: Default::default(), ..requested.clone() };
        match (requested.resource_type.as_str(), requested.resource_class.as_deref()) {
            ("registry", None) if requested.name == "catalog" => {
                // Any account may list; the registry then shows it only what it may pull.
                let granted = Scope { actions: [Action::All].into_iter().collect(), ..requested.clone() };
                return Ok(if who == &Identity::Anonymous { nothing } else { requested.intersection(&granted) });
            }
            ("repository", None) => {}
            _ => return Ok(nothing),
        }
        let Ok(name) = RepositoryName::parse(&requested.name) else { return Ok(nothing) };
        let project_name = name.first_component();
        let Some(project) = self.project(project_name).await? else { return Ok(nothing) };
        let inside = name.as_str().strip_prefix(project_name).map(|r| r.trim_start_matches('/')).unwrap_or("");
        let mut granted: Vec<Action> = Vec::new();
        if project.public {
            granted.push(Action::Pull);
        }
        match who {
            Identity::Anonymous => {}
            Identity::User { admin: true, .. } => granted.extend([Action::Pull, Action::Push, Action::Delete]),
            Identity::User { name: user, .. } => {
                // Their own membership and their groups': each that covers the repository adds.
                for m in self.roles_in(project_name, user).await? {
                    if m.repositories.as_deref().is_none_or(|p| pattern_matches(p, inside)) {
                        granted.extend(m.role.actions().iter().cloned());
                    }
                }
            }
            Identity::Robot { permissions, .. } => {
                for p in permissions.iter().filter(|p| p.covers(project_name, inside)) {
                    granted.extend(p.registry_actions());
                }
            }
        }
        let granted = Scope { actions: granted.into_iter().collect(), ..requested.clone() };
        Ok(requested.intersection(&granted))
    }

    /// Asked on every distribution request: a project found is taken from
    /// [`Accounts::recent_project`] (a read shared with the pull policies and the proxy cache,
    /// not a store read per request: on PostgreSQL that was a query each). So a project deleted
    /// or re-created through another replica is seen here within [`RECENT_PROJECT`](super::RECENT_PROJECT); one
    /// not found is read again from the store, so that a project just created through another
    /// replica opens at once.
    async fn project_state(&self, repository: &str) -> Result<ProjectState, AuthError> {
        let project = registry_core::name::project_of(repository);
        let created_at = match self.recent_project(project).await? {
            Some(found) => Some(found.created_at),
            None => self.store.project_created_at(project).await?,
        };
        Ok(match created_at {
            Some(created_at) => ProjectState::Exists { project: project.to_owned(), created_at },
            None => ProjectState::Missing { project: project.to_owned() },
        })
    }

    async fn may_pull_everywhere(&self, who: &Identity, project_name: &str) -> Result<bool, AuthError> {
        let Some(project) = self.project(project_name).await? else { return Ok(false) };
        if project.public {
            return Ok(true);
        }
        // As `grant` decides, for a grant that no repository pattern narrows.
        Ok(match who {
            Identity::Anonymous => false,
            Identity::User { admin: true, .. } => true,
            Identity::User { name: user, .. } => self
                .roles_in(project_name, user)
                .await?
                .iter()
                .any(|m| m.repositories.is_none() && m.role.actions().contains(&Action::Pull)),
            Identity::Robot { permissions, .. } => permissions.iter().any(|p| {
                p.kind == "project"
                    && (p.namespace == project_name || p.namespace == "*")
                    && p.repositories.is_none()
                    && p.registry_actions().contains(&Action::Pull)
            }),
        })
    }

    async fn may_manage(&self, who: &Identity, project: &str) -> Result<bool, AuthError> {
        match who {
            Identity::User { admin: true, .. } => Ok(true),
            Identity::User { name, .. } => Ok(self.role_in(project, name).await? == Some(Role::ProjectAdmin)),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::accounts::{Accounts, MAX_FAILURES, NewRobot};
    use crate::model::{RobotPermission, Role};
    use crate::{AccessPolicy, AuthError, Authenticator, Identity};
    use registry_core::Scope;

    fn scope(s: &str) -> Scope {
        Scope::parse(s).expect("scope")
    }

    /// Two replicas: accounts over one store. A project one replica did not find opens there as
    /// soon as the other creates it (a missing project is read again, not taken from the shared
    /// recent read); one it found is taken from that read.
    #[tokio::test]
    async fn a_project_created_through_another_replica_opens_at_once() {
        use crate::policy::ProjectState;
        let store: std::sync::Arc<dyn crate::AccountStore> = std::sync::Arc::new(crate::MemoryAccountStore::new());
        let (here, there) = (Accounts::new(store.clone()), Accounts::new(store));
        assert!(matches!(here.project_state("team/app").await.expect("state"), ProjectState::Missing { .. }));
        let created = there.create_project("team", false).await.expect("create");
        match here.project_state("team/app").await.expect("state") {
            ProjectState::Exists { project, created_at } => {
                assert_eq!((project.as_str(), created_at), ("team", created.created_at));
            }
            other => panic!("created through another replica, still {other:?}"),
        }
    }

    #[tokio::test]
    async fn harbor_roles() {
        let a = Accounts::in_memory();
        a.create_project("library", true).await.expect("project");
        a.create_project("team", false).await.expect("project");
        a.add_user("root", "rootpassword", true).await.expect("user");
        for (user, role) in [
            ("pa", Role::ProjectAdmin),
            ("ma", Role::Maintainer),
            ("dev", Role::Developer),
            ("guest", Role::Guest),
            ("lg", Role::LimitedGuest),
        ] {
            a.add_user(user, "password1", false).await.expect("user");
            a.add_member("team", user, role, None).await.expect("member");
        }
        a.add_user("outsider", "password1", false).await.expect("user");
        a.add_user("narrow", "password1", false).await.expect("user");
        a.add_member("team", "narrow", Role::Developer, Some("app-*")).await.expect("member");

        let all = scope("repository:team/app:pull,push,delete");
        let grant = |who: Identity, s: Scope| {
            let a = a.clone();
            async move { a.grant(&who, &s).await.expect("grant").to_string() }
        };
        let user = |n: &'static str| a.authenticate(n, "password1");
        assert_eq!(grant(user("pa").await.expect("login"), all.clone()).await, "repository:team/app:pull,push,delete");
        assert_eq!(grant(user("ma").await.expect("login"), all.clone()).await, "repository:team/app:pull,push,delete");
        assert_eq!(grant(user("dev").await.expect("login"), all.clone()).await, "repository:team/app:pull,push");
        assert_eq!(grant(user("guest").await.expect("login"), all.clone()).await, "repository:team/app:pull");
        assert_eq!(grant(user("lg").await.expect("login"), all.clone()).await, "repository:team/app:pull");
        assert_eq!(grant(user("outsider").await.expect("login"), all.clone()).await, "repository:team/app:");
        assert_eq!(grant(Identity::Anonymous, all.clone()).await, "repository:team/app:");
        assert_eq!(
            grant(Identity::Anonymous, scope("repository:library/x:pull,push")).await,
            "repository:library/x:pull"
        );
        assert_eq!(
            grant(user("narrow").await.expect("login"), scope("repository:team/app-web:pull,push")).await,
            "repository:team/app-web:pull,push"
        );
        assert_eq!(grant(user("narrow").await.expect("login"), all.clone()).await, "repository:team/app:");
        // Pulling everywhere in a project: what lets a listing skip asking per repository.
        let everywhere = |who: Identity, p: &'static str| {
            let a = a.clone();
            async move { a.may_pull_everywhere(&who, p).await.expect("ask") }
        };
        assert!(everywhere(user("lg").await.expect("login"), "team").await, "every role pulls");
        assert!(!everywhere(user("narrow").await.expect("login"), "team").await, "narrowed to app-*");
        assert!(!everywhere(user("outsider").await.expect("login"), "team").await);
        assert!(!everywhere(Identity::Anonymous, "team").await, "private");
        assert!(everywhere(Identity::Anonymous, "library").await, "public");
        assert!(!everywhere(Identity::Anonymous, "nope").await, "no project");
        let root = a.authenticate("root", "rootpassword").await.expect("login");
        assert_eq!(grant(root.clone(), scope("repository:nope/x:pull")).await, "repository:nope/x:", "no project");
        assert_eq!(grant(root.clone(), scope("registry:catalog:*")).await, "registry:catalog:*");
        assert_eq!(grant(user("dev").await.expect("login"), scope("registry:catalog:*")).await, "registry:catalog:*");
        assert_eq!(grant(Identity::Anonymous, scope("registry:catalog:*")).await, "registry:catalog:");
        // Names that try to leave the project get nothing.
        assert_eq!(
            grant(user("pa").await.expect("login"), scope("repository:team/../library/x:push")).await,
            "repository:team/../library/x:"
        );
        let pa = user("pa").await.expect("login");
        assert!(a.may_manage(&pa, "team").await.expect("manage"));
        assert!(!a.may_manage(&user("ma").await.expect("login"), "team").await.expect("manage"));
        assert!(a.may_manage(&root, "library").await.expect("manage"));
    }

    #[tokio::test]
    async fn robots_and_logins() {
        let a = Accounts::in_memory();
        a.create_project("team", false).await.expect("project");
        let permission = RobotPermission::parse_for_project("team", "app:pull,push").expect("perm");
        let (robot, secret) =
            a.create_robot(NewRobot::for_project("team", "ci", vec![permission])).await.expect("robot");
        assert_eq!(robot.name, "robot$team+ci");
        let id = a.authenticate("robot$team+ci", &secret).await.expect("robot login");
        assert_eq!(
            a.grant(&id, &scope("repository:team/app:pull,push,delete")).await.expect("grant").to_string(),
            "repository:team/app:pull,push"
        );
        assert!(a.grant(&id, &scope("repository:team/other:pull")).await.expect("grant").actions.is_empty());
        assert!(matches!(a.authenticate("robot$team+ci", "wrong").await, Err(AuthError::InvalidCredentials)));
        a.remove_robot("robot$team+ci").await.expect("remove");
        assert!(a.authenticate("robot$team+ci", &secret).await.is_err(), "removed robots cannot log in");

        let elsewhere = RobotPermission::parse_for_project("other", "*:pull").expect("perm");
        assert!(
            a.create_robot(NewRobot::for_project("team", "x", vec![elsewhere])).await.is_err(),
            "a project robot holds permissions in its project only"
        );

        a.add_user("bob", "password1", false).await.expect("user");
        assert!(matches!(a.add_user("bob", "password2", false).await, Err(AuthError::Conflict { .. })));
        assert!(a.add_user("short", "pw", false).await.is_err());
        a.set_user_enabled("bob", false).await.expect("disable");
        assert!(a.authenticate("bob", "password1").await.is_err(), "disabled users cannot log in");
        assert!(a.active_identity("bob").await.is_err(), "nor refresh");
        assert!(matches!(a.authenticate("nobody", "password1").await, Err(AuthError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn repeated_wrong_passwords_lock_the_account_until_the_lockout_passes() {
        let clock = registry_core::ManualClock::at_secs(1_000_000);
        let a = Accounts::in_memory().with_clock(std::sync::Arc::new(clock.clone()));
        a.add_user("carol", "password1", false).await.expect("user");
        for _ in 0..MAX_FAILURES {
            assert!(matches!(a.authenticate("carol", "wrong").await, Err(AuthError::InvalidCredentials)));
        }
        assert!(
            matches!(a.authenticate("carol", "password1").await, Err(AuthError::RateLimited { .. })),
            "locked even with the right password"
        );
        clock.advance(crate::accounts::LOCKOUT);
        a.authenticate("carol", "password1").await.expect("the lock ran out");
        assert!(a.store().login_failures("carol").await.expect("failures").is_none(), "a success clears the count");
    }

    #[tokio::test]
    async fn passwords_change_with_the_old_one_and_the_last_admin_stays() {
        let a = Accounts::in_memory();
        a.add_user("admin", "password1", true).await.expect("user");
        assert!(matches!(a.change_password("admin", Some("wrong"), "password2").await, Err(AuthError::Invalid(_))));
        assert!(a.change_password("admin", Some("password1"), "password1").await.is_err(), "must differ");
        a.change_password("admin", Some("password1"), "password2").await.expect("change");
        assert!(a.authenticate("admin", "password1").await.is_err());
        a.authenticate("admin", "password2").await.expect("new password");
        a.reset_password("admin", "password3").await.expect("reset without the old one");
        assert!(matches!(a.remove_user("admin").await, Err(AuthError::Precondition(_))), "last admin");
        assert!(matches!(a.set_admin("admin", false).await, Err(AuthError::Precondition(_))));
        a.add_user("second", "password1", true).await.expect("another admin");
        a.set_admin("admin", false).await.expect("no longer the last");
    }

    #[tokio::test]
    async fn a_recent_sign_in_is_not_trusted_past_a_change_on_any_replica() {
        let store: std::sync::Arc<dyn crate::store::AccountStore> =
            std::sync::Arc::new(crate::memory::MemoryAccountStore::new());
        let (here, there) = (Accounts::new(store.clone()), Accounts::new(store));
        here.add_user("dana", "password1", false).await.expect("user");
        here.authenticate("dana", "password1").await.expect("first sign-in (verified and recorded)");
        here.authenticate("dana", "password1").await.expect("again (the record)");
        there.reset_password("dana", "password2").await.expect("changed on another replica");
        assert!(matches!(here.authenticate("dana", "password1").await, Err(AuthError::InvalidCredentials)));
        here.authenticate("dana", "password2").await.expect("the new one");
        there.set_user_enabled("dana", false).await.expect("disabled there");
        assert!(here.authenticate("dana", "password2").await.is_err(), "disabled users cannot sign in");
        there.set_user_enabled("dana", true).await.expect("enabled");
        here.authenticate("dana", "password2").await.expect("again");
        there.remove_user("dana").await.expect("removed");
        assert!(here.authenticate("dana", "password2").await.is_err(), "removed users cannot sign in");
        here.add_user("dana", "password2", false).await.expect("a new dana with the same password");
        here.authenticate("dana", "password2").await.expect("verified against the new record");
    }
}
