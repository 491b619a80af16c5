//! The conformance suite any [`AccountStore`] must pass, an embedder's included (enable the
//! `testing` feature). It panics with a message naming the broken rule.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! registry_auth::testing::account_store_suite(&registry_auth::MemoryAccountStore::new()).await;
//! # }
//! ```

use crate::error::AuthError;
use crate::model::{
    Entity, GroupKind, LoginFailures, Member, Project, Robot, RobotLevel, RobotPermission, Role, SecretHash, User,
    UserGroup,
};
use crate::store::AccountStore;

fn user(name: &str) -> User {
    User {
        id: 0,
        name: name.into(),
        password_hash: SecretHash::from_stored("$2b$10$hash"),
        admin: false,
        enabled: true,
        email: format!("{name}@example.com"),
        realname: String::new(),
        comment: String::new(),
        created_at: 10,
        updated_at: 10,
        password_changed_at: 10,
        origin: String::new(),
        groups: Vec::new(),
        oidc: None,
    }
}

fn project(name: &str) -> Project {
    Project {
        id: 0,
        name: name.into(),
        public: false,
        owner_id: None,
        created_at: 20,
        updated_at: 20,
        metadata: [("auto_scan".to_owned(), "true".to_owned())].into(),
    }
}

fn robot(name: &str, project_id: Option<u64>) -> Robot {
    Robot {
        id: 0,
        name: name.into(),
        description: "ci".into(),
        level: if project_id.is_some() { RobotLevel::Project } else { RobotLevel::System },
        project_id,
        secret_hash: SecretHash::from_stored("$2b$10$secret"),
        permissions: vec![RobotPermission::project("team", Some("app-*"), &["pull", "push"])],
        disabled: false,
        expires_at: Some(1000),
        creator: "admin".into(),
        created_at: 30,
        updated_at: 30,
    }
}

/// The [`AccountStore`] rules. The store must be empty.
pub async fn account_store_suite(store: &dyn AccountStore) {
    // Users: ids assigned, names unique, updates keep the name.
    let alice = store.create_user(user("alice"), &[]).await.expect("create user");
    assert!(alice.id > 0, "an id is assigned");
    let bob = store.create_user(user("bob"), &[]).await.expect("create user");
    assert_ne!(alice.id, bob.id, "ids are distinct");
    assert!(matches!(store.create_user(user("alice"), &[]).await, Err(AuthError::Conflict { .. })), "names are unique");
    assert_eq!(store.user(alice.id).await.expect("get"), Some(alice.clone()));
    assert_eq!(store.user_by_name("bob").await.expect("get"), Some(bob.clone()));
    assert_eq!(store.user_by_name("carol").await.expect("get"), None);
    let mut changed = alice.clone();
    changed.admin = true;
    changed.email = "a@example.org".into();
    store.update_user(&changed, &[]).await.expect("update");
    assert_eq!(store.user(alice.id).await.expect("get"), Some(changed.clone()), "updates are kept whole");
    let mut gone = user("ghost");
    gone.id = 999_999;
    assert!(matches!(store.update_user(&gone, &[]).await, Err(AuthError::NotFound { .. })));
    assert_eq!(
        store.users().await.expect("list").iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );

    // Projects.
    let team = store.create_project(project("team"), &[]).await.expect("create project");
    let lib = store.create_project(project("library"), &[]).await.expect("create project");
    assert!(matches!(store.create_project(project("team"), &[]).await, Err(AuthError::Conflict { .. })));
    assert_eq!(store.project_by_name("team").await.expect("get"), Some(team.clone()));
    assert_eq!(store.project_created_at("team").await.expect("get"), Some(team.created_at));
    assert_eq!(store.project(lib.id).await.expect("get").map(|p| p.metadata), Some(lib.metadata.clone()));
    let names: Vec<String> = store.projects().await.expect("list").into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["library", "team"], "projects list by name");
    let mut public = team.clone();
    public.public = true;
    store.update_project(&public, &[]).await.expect("update");
    assert!(store.project_by_name("team").await.expect("get").expect("exists").public);

    // Members: unique per project and user, both must exist.
    let member = Member {
        id: 0,
        project_id: team.id,
        entity: Entity::User(bob.id),
        role: Role::Developer,
        repositories: None,
        created_at: 40,
    };
    let m = store.create_member(member.clone(), &[]).await.expect("create member");
    assert!(
        matches!(store.create_member(member.clone(), &[]).await, Err(AuthError::Conflict { .. })),
        "once per project"
    );
    let orphan = Member { entity: Entity::User(999_999), ..member.clone() };
    assert!(matches!(store.create_member(orphan, &[]).await, Err(AuthError::NotFound { .. })), "the user must exist");
    let homeless = Member { project_id: 999_999, ..member.clone() };
    assert!(
        matches!(store.create_member(homeless, &[]).await, Err(AuthError::NotFound { .. })),
        "the project must exist"
    );
    assert_eq!(store.member(team.id, bob.id).await.expect("get"), Some(m.clone()));
    assert_eq!(store.members(team.id).await.expect("list"), vec![m.clone()]);
    assert_eq!(store.memberships(bob.id).await.expect("list"), vec![m.clone()]);
    let promoted = Member { role: Role::Maintainer, repositories: Some("app-*".into()), ..m.clone() };
    store.update_member(&promoted, &[]).await.expect("update member");
    assert_eq!(store.member(team.id, bob.id).await.expect("get"), Some(promoted.clone()));
    let lib_member = store
        .create_member(Member { project_id: lib.id, ..member.clone() }, &[])
        .await
        .expect("member of another project");

    // User groups: ids assigned, one per kind and key (an LDAP group's DN, compared as the
    // directory does), renamed in place; group memberships beside the users'.
    let group = |name: &str, kind: GroupKind, dn: &str| UserGroup {
        id: 0,
        name: name.into(),
        kind,
        ldap_dn: dn.into(),
        created_at: 45,
    };
    let devs = store
        .create_group(group("developers", GroupKind::Ldap, "cn=developers,ou=groups,dc=example,dc=org"), &[])
        .await
        .expect("create group");
    assert!(devs.id > 0, "an id is assigned");
    assert!(
        matches!(
            store.create_group(group("devs", GroupKind::Ldap, "CN=Developers, ou=groups,dc=example,dc=org"), &[]).await,
            Err(AuthError::Conflict { .. })
        ),
        "one group per DN"
    );
    let ops = store.create_group(group("ops", GroupKind::Oidc, ""), &[]).await.expect("create group");
    let ldap_ops = store.create_group(group("ops", GroupKind::Ldap, "cn=ops,dc=example,dc=org"), &[]).await;
    assert!(ldap_ops.is_ok(), "names are unique per kind only");
    let ldap_ops = ldap_ops.expect("ops");
    assert!(matches!(
        store.create_group(group("ops", GroupKind::Oidc, ""), &[]).await,
        Err(AuthError::Conflict { .. })
    ));
    let renamed = UserGroup { name: "developers (all)".into(), ..devs.clone() };
    store.update_group(&renamed, &[]).await.expect("rename group");
    assert_eq!(store.group(devs.id).await.expect("get"), Some(renamed.clone()));
    let clash = UserGroup { ldap_dn: "cn=ops,dc=example,dc=org".into(), ..devs.clone() };
    assert!(matches!(store.update_group(&clash, &[]).await, Err(AuthError::Conflict { .. })), "keys stay unique");
    assert_eq!(
        store.groups().await.expect("list").iter().map(|g| g.id).collect::<Vec<_>>(),
        [devs.id, ops.id, ldap_ops.id],
        "groups list by id"
    );
    let group_member = Member { entity: Entity::Group(devs.id), role: Role::Guest, ..member.clone() };
    let gm = store.create_member(group_member.clone(), &[]).await.expect("a group member");
    assert!(matches!(store.create_member(group_member, &[]).await, Err(AuthError::Conflict { .. })));
    let stray = Member { entity: Entity::Group(999_999), ..member.clone() };
    assert!(matches!(store.create_member(stray, &[]).await, Err(AuthError::NotFound { .. })), "the group must exist");
    assert_eq!(store.members(team.id).await.expect("list"), vec![promoted.clone(), gm.clone()]);
    assert_eq!(store.member(team.id, bob.id).await.expect("get"), Some(promoted.clone()), "a user's own");
    let ops_member = store
        .create_member(Member { entity: Entity::Group(ops.id), project_id: lib.id, ..member.clone() }, &[])
        .await
        .expect("a group member");
    let gm_up = Member { role: Role::Developer, ..gm.clone() };
    store.update_member(&gm_up, &[]).await.expect("update group member");
    assert_eq!(store.members(team.id).await.expect("list"), vec![promoted.clone(), gm_up]);
    assert!(store.delete_group(ops.id, &[]).await.expect("delete group"));
    assert!(!store.delete_group(ops.id, &[]).await.expect("delete again"));
    assert!(store.delete_member(ops_member.id, &[]).await.is_ok_and(|deleted| !deleted), "memberships go with it");
    assert!(store.group(ops.id).await.expect("get").is_none());

    // Robots.
    let r = store.create_robot(robot("robot$team+ci", Some(team.id)), &[]).await.expect("create robot");
    assert!(matches!(
        store.create_robot(robot("robot$team+ci", Some(team.id)), &[]).await,
        Err(AuthError::Conflict { .. })
    ));
    let system = store.create_robot(robot("robot$ops", None), &[]).await.expect("system robot");
    assert_eq!(store.robot_by_name("robot$team+ci").await.expect("get"), Some(r.clone()));
    assert_eq!(store.robot(system.id).await.expect("get"), Some(system.clone()));
    let mut disabled = r.clone();
    disabled.disabled = true;
    disabled.expires_at = None;
    store.update_robot(&disabled, &[]).await.expect("update robot");
    assert_eq!(store.robot(r.id).await.expect("get"), Some(disabled.clone()));
    assert_eq!(store.robots().await.expect("list").len(), 2);

    // Deleting a project takes its members and project robots, nothing else.
    assert!(store.delete_project(team.id, &[]).await.expect("delete project"));
    assert!(!store.delete_project(team.id, &[]).await.expect("delete again"));
    assert_eq!(store.project_by_name("team").await.expect("get"), None);
    assert_eq!(store.project_created_at("team").await.expect("get"), None);
    assert!(store.members(team.id).await.expect("list").is_empty(), "members went with the project");
    assert_eq!(store.robot_by_name("robot$team+ci").await.expect("get"), None, "project robots too");
    assert!(store.robot(system.id).await.expect("get").is_some(), "system robots stay");
    assert_eq!(store.memberships(bob.id).await.expect("list"), vec![lib_member.clone()]);

    // Deleting a project took its group members; deleting a user takes their memberships.
    assert!(store.delete_member(gm.id, &[]).await.is_ok_and(|deleted| !deleted), "group members went too");
    let with_groups =
        User { groups: vec![devs.id, ldap_ops.id], ..store.user(alice.id).await.expect("get").expect("alice") };
    store.update_user(&with_groups, &[]).await.expect("update");
    assert_eq!(store.user(alice.id).await.expect("get").map(|u| u.groups), Some(vec![devs.id, ldap_ops.id]));

    // A provider's user is found by its issuer and subject (and by nothing else).
    let link = crate::model::OidcLink {
        issuer: "https://id.example.org".into(),
        subject: "a-1".into(),
        secret: "sealed".into(),
        refresh_token: Some("sealed-token".into()),
        checked_until: 7,
        groups: vec!["devs".into()],
    };
    let linked = User { oidc: Some(link.clone()), ..store.user(alice.id).await.expect("get").expect("alice") };
    store.update_user(&linked, &[]).await.expect("link");
    let found = store.user_by_subject("https://id.example.org", "a-1").await.expect("by subject");
    assert_eq!(found.map(|u| (u.id, u.oidc)), Some((alice.id, Some(link))));
    for (issuer, subject) in
        [("https://id.example.org", "a-2"), ("https://other.example.org", "a-1"), ("https://id.example.org a-1", "")]
    {
        assert!(store.user_by_subject(issuer, subject).await.expect("by subject").is_none(), "{issuer} {subject}");
    }
    assert!(store.delete_user(bob.id, &[]).await.expect("delete user"));
    assert!(store.members(lib.id).await.expect("list").is_empty(), "memberships went with the user");
    assert!(!store.delete_user(bob.id, &[]).await.expect("delete again"));
    assert!(store.delete_member(lib_member.id, &[]).await.is_ok_and(|deleted| !deleted), "already gone");
    assert!(store.delete_robot(system.id, &[]).await.expect("delete robot"));

    // A re-created name gets a new id.
    let bob2 = store.create_user(user("bob"), &[]).await.expect("re-create");
    assert_ne!(bob2.id, bob.id, "ids are not reused");

    // Login failures, per name, shared.
    assert_eq!(store.login_failures("alice").await.expect("get"), None);
    let f = LoginFailures { count: 3, last_at: 77 };
    store.set_login_failures("alice", Some(f), &[]).await.expect("set");
    assert_eq!(store.login_failures("alice").await.expect("get"), Some(f));
    assert_eq!(store.login_failures("bob").await.expect("get"), None, "per name");
    store.set_login_failures("alice", None, &[]).await.expect("clear");
    assert_eq!(store.login_failures("alice").await.expect("get"), None);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_passes() {
        super::account_store_suite(&crate::MemoryAccountStore::new()).await;
    }
}
