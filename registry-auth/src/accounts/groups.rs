//! User groups (Harbor's): groups of a directory or a provider, made members of projects as one.
//! A person's groups are those the directory or provider named at their last sign-in that are
//! groups here (an LDAP group by its DN, an OIDC group by its name); the memberships of those
//! groups are theirs too, the strongest role winning.

use registry_core::event::{EventAction, Resource};

use super::Accounts;
use crate::error::AuthError;
use crate::model::{Entity, GroupKind, Id, Member, User, UserGroup, normalized_dn};

/// Longest group name accepted, in characters.
pub const MAX_GROUP_NAME: usize = 255;

impl Accounts {
    /// Creates a user group: an LDAP group needs its DN (its name defaults to the DN's first
    /// value), the others a name.
    pub async fn create_group(&self, name: &str, kind: GroupKind, ldap_dn: &str) -> Result<UserGroup, AuthError> {
        let ldap_dn = ldap_dn.trim();
        let name = match (name.trim(), kind) {
            ("", GroupKind::Ldap) => first_value(ldap_dn).unwrap_or_default(),
            (name, _) => name.to_owned(),
        };
        if kind == GroupKind::Ldap && first_value(ldap_dn).is_none() {
            return Err(AuthError::Invalid(format!(
                "an LDAP group needs its DN (ldap_group_dn, e.g. cn=developers,ou=groups,dc=example,dc=org), not {ldap_dn:?}"
            )));
        }
        if kind != GroupKind::Ldap && !ldap_dn.is_empty() {
            return Err(AuthError::Invalid("only LDAP groups (group_type 1) have a DN".into()));
        }
        check_group_name(&name)?;
        let group = UserGroup { id: 0, name, kind, ldap_dn: ldap_dn.to_owned(), created_at: self.now() };
        let event = self.event(EventAction::CreateUserGroup, group_resource(&group.name));
        self.store.create_group(group, &event).await
    }

    /// All user groups, by id.
    pub async fn groups(&self) -> Result<Vec<UserGroup>, AuthError> {
        self.store.groups().await
    }

    /// A user group by id.
    pub async fn group(&self, id: Id) -> Result<UserGroup, AuthError> {
        self.store.group(id).await?.ok_or_else(|| AuthError::not_found(format!("user group {id}")))
    }

    /// Renames a user group (its kind and DN stay).
    pub async fn rename_group(&self, id: Id, name: &str) -> Result<UserGroup, AuthError> {
        let mut group = self.group(id).await?;
        check_group_name(name.trim())?;
        group.name = name.trim().to_owned();
        self.store.update_group(&group, &self.event(EventAction::UpdateUserGroup, group_resource(&group.name))).await?;
        Ok(group)
    }

    /// Deletes a user group with its memberships.
    pub async fn delete_group(&self, id: Id) -> Result<(), AuthError> {
        let group = self.group(id).await?;
        let event = self.event(EventAction::DeleteUserGroup, group_resource(&group.name));
        match self.store.delete_group(id, &event).await? {
            true => Ok(()),
            false => Err(AuthError::not_found(format!("user group {id}"))),
        }
    }

    /// The groups here among those a directory or provider named (`keys`: DNs of LDAP groups,
    /// names of the others); with `onboard`, the missing ones of `kind` are made (Harbor makes
    /// OIDC groups at sign-in, never LDAP ones).
    pub(crate) async fn resolve_groups(
        &self,
        kind: GroupKind,
        keys: &[String],
        onboard: bool,
    ) -> Result<Vec<Id>, AuthError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<String> = match kind {
            GroupKind::Ldap => keys.iter().map(|k| normalized_dn(k)).collect(),
            _ => keys.to_vec(),
        };
        let all = self.store.groups().await?;
        let mut ids = Vec::new();
        for key in &wanted {
            match all.iter().find(|g| g.kind == kind && &g.key() == key) {
                Some(g) => ids.push(g.id),
                None if onboard && check_group_name(key).is_ok() => match self.create_group(key, kind, "").await {
                    Ok(g) => ids.push(g.id),
                    // Made meanwhile by another sign-in.
                    Err(AuthError::Conflict { .. }) => {
                        let again = self.store.groups().await?;
                        ids.extend(again.iter().filter(|g| g.kind == kind && &g.key() == key).map(|g| g.id));
                    }
                    Err(e) => return Err(e),
                },
                None => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The memberships of `user` in the project `project_id`: their own and their groups'.
    pub(crate) async fn memberships_in(&self, project_id: Id, user: &User) -> Result<Vec<Member>, AuthError> {
        if user.groups.is_empty() {
            return Ok(self.store.member(project_id, user.id).await?.into_iter().collect());
        }
        let members = self.store.members(project_id).await?;
        Ok(members
            .into_iter()
            .filter(|m| match m.entity {
                Entity::User(id) => id == user.id,
                Entity::Group(id) => user.groups.contains(&id),
            })
            .collect())
    }
}

/// The value of a DN's first component (`developers` of `cn=developers,ou=groups`).
fn first_value(dn: &str) -> Option<String> {
    let (_, value) = dn.split(',').next()?.split_once('=')?;
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

fn check_group_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty() || name.chars().count() > MAX_GROUP_NAME || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid(format!(
            "a group name has 1 to {MAX_GROUP_NAME} characters and no control characters"
        )));
    }
    Ok(())
}

/// The resource of an event on a group.
fn group_resource(name: &str) -> Resource {
    Resource { name: Some(name.to_owned()), ..Resource::default() }
}

#[cfg(test)]
mod tests {
    use crate::accounts::Accounts;
    use crate::model::{GroupKind, Role};
    use crate::{AccessPolicy, Identity};
    use registry_core::Scope;

    #[tokio::test]
    async fn group_memberships_are_their_peoples() {
        let a = Accounts::in_memory();
        a.create_project("team", false).await.expect("project");
        a.add_user("ann", "password1", false).await.expect("user");
        let ops = a.create_group("ops", GroupKind::Oidc, "").await.expect("group");
        a.add_group_member("team", ops.id, Role::Maintainer, Some("infra-*")).await.expect("member");
        let who = Identity::User { name: "ann".into(), admin: false };
        let scope = |s: &str| Scope::parse(s).expect("scope");
        let grant = |s: &'static str| {
            let (a, who) = (a.clone(), who.clone());
            async move { a.grant(&who, &scope(s)).await.expect("grant").to_string() }
        };
        assert_eq!(grant("repository:team/infra-db:pull,push").await, "repository:team/infra-db:");
        // Named by the provider at sign-in: their group's membership (narrowed) is hers.
        let ids = a.resolve_groups(GroupKind::Oidc, &["ops".into(), "unknown".into()], false).await.expect("groups");
        assert_eq!(ids, vec![ops.id], "only groups that exist, unless onboarding");
        let mut ann = a.user("ann").await.expect("read").expect("ann");
        ann.groups = ids;
        a.store().update_user(&ann, &[]).await.expect("update");
        assert_eq!(
            grant("repository:team/infra-db:pull,push,delete").await,
            "repository:team/infra-db:pull,push,delete"
        );
        assert_eq!(grant("repository:team/web:pull").await, "repository:team/web:", "outside the pattern");
        assert_eq!(a.role_in("team", "ann").await.expect("role"), Some(Role::Maintainer));
        let made = a.resolve_groups(GroupKind::Oidc, &["unknown".into()], true).await.expect("onboarded");
        assert_eq!(a.group(made[0]).await.expect("made").name, "unknown");
        // An LDAP group needs a DN; names are bounded.
        assert!(a.create_group("", GroupKind::Ldap, "no-dn").await.is_err());
        assert!(a.create_group(&"x".repeat(300), GroupKind::Oidc, "").await.is_err());
        let ldap = a.create_group("", GroupKind::Ldap, "cn=devs,ou=groups,dc=x").await.expect("ldap group");
        assert_eq!(ldap.name, "devs", "named after the DN's first value");
        a.delete_group(ops.id).await.expect("delete");
        assert_eq!(a.role_in("team", "ann").await.expect("role"), None, "its memberships went with it");
    }
}
