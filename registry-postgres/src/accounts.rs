//! The [`AccountStore`] half of [`PgStore`]: users, projects, members and robots as JSON records
//! beside the columns queries need; ids from sequences; deletions cascade by foreign key.

use async_trait::async_trait;
use registry_auth::model::{Entity, Id, LoginFailures, Member, Project, Robot, User, UserGroup};
use registry_auth::{AccountStore, AuthError};
use registry_core::event::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Cached, PgStore, pg_err};

type Result<T, E = AuthError> = std::result::Result<T, E>;

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> AuthError {
    move |e| AuthError::Backend(pg_err(context, e))
}

fn encode<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("encoding an account record", e)))
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("a corrupt account record", e)))
}

fn id_of(id: Id) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The SQLSTATE of a failed statement, if the server gave one.
fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Reads a record and puts its row's id into it.
fn record<T: DeserializeOwned>(row: &tokio_postgres::Row, set_id: impl FnOnce(&mut T, Id)) -> Result<T> {
    let mut value: T = decode(row.get("record"))?;
    set_id(&mut value, u64::try_from(row.get::<_, i64>("id")).unwrap_or(0));
    Ok(value)
}

fn user(row: &tokio_postgres::Row) -> Result<User> {
    record(row, |u: &mut User, id| u.id = id)
}

fn project(row: &tokio_postgres::Row) -> Result<Project> {
    record(row, |p: &mut Project, id| p.id = id)
}

fn member(row: &tokio_postgres::Row) -> Result<Member> {
    record(row, |m: &mut Member, id| m.id = id)
}

fn group(row: &tokio_postgres::Row) -> Result<UserGroup> {
    record(row, |g: &mut UserGroup, id| g.id = id)
}

/// The `user_id` and `group_id` columns of a membership of `entity`.
fn entity_columns(entity: Entity) -> (Option<i64>, Option<i64>) {
    (entity.user().map(id_of), entity.group().map(id_of))
}

fn robot(row: &tokio_postgres::Row) -> Result<Robot> {
    record(row, |r: &mut Robot, id| r.id = id)
}

impl PgStore {
    async fn client_auth(&self) -> Result<crate::lease::Lease> {
        Ok(self.client().await?)
    }

    /// Replaces a record of `table` (same id and name) with its events, or says why not.
    async fn replace(&self, table: &str, what: &str, id: Id, name: &str, text: String, events: &[Event]) -> Result<()> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let sql = format!("UPDATE {table} SET record = $3 WHERE id = $1 AND name = $2");
        let n =
            txn.cached_execute(&sql, &[&id_of(id), &name, &text]).await.map_err(db("updating an account record"))?;
        if n == 1 {
            record_events(&txn, events).await?;
            return txn.commit().await.map_err(db("committing"));
        }
        let client = txn;
        let sql = format!("SELECT 1 FROM {table} WHERE id = $1");
        let exists = client.cached_opt(&sql, &[&id_of(id)]).await.map_err(db("reading an account record"))?;
        match exists {
            Some(_) => Err(AuthError::Invalid(format!("{what} {name} cannot be renamed"))),
            None => Err(AuthError::not_found(format!("{what} {name}"))),
        }
    }

    async fn one(
        &self,
        sql: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<tokio_postgres::Row>> {
        let client = self.client_auth().await?;
        client.cached_opt(sql, &[key]).await.map_err(db("reading an account record"))
    }

    async fn all(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client_auth().await?;
        client.cached_query(sql, &[]).await.map_err(db("listing account records"))
    }
}

/// Writes a change's events in its transaction, then the caller commits.
async fn record_events(txn: &deadpool_postgres::Transaction<'_>, events: &[Event]) -> Result<()> {
    crate::events::record(txn, events).await.map_err(db("recording events"))
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create_user(&self, mut user: User, events: &[Event]) -> Result<User> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let text = encode(&user)?;
        let row = txn
            .cached_one("INSERT INTO users (name, record) VALUES ($1, $2) RETURNING id", &[&user.name, &text])
            .await
            .map_err(|e| match sqlstate(&e) {
                Some("23505") => AuthError::conflict(format!("user {}", user.name)),
                _ => AuthError::Backend(pg_err("creating a user", e)),
            })?;
        user.id = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        record_events(&txn, events).await?;
        txn.commit().await.map_err(db("committing"))?;
        Ok(user)
    }

    async fn user(&self, id: Id) -> Result<Option<User>> {
        self.one("SELECT id, record FROM users WHERE id = $1", &id_of(id)).await?.map(|r| user(&r)).transpose()
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        self.one("SELECT id, record FROM users WHERE name = $1", &name).await?.map(|r| user(&r)).transpose()
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.all("SELECT id, record FROM users ORDER BY id").await?.iter().map(user).collect()
    }

    async fn user_by_subject(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        // The expression of the index users_oidc_subject (migration 7).
        let sql = "SELECT id, record FROM users WHERE record::jsonb ? 'oidc' \
            AND ((record::jsonb -> 'oidc' ->> 'issuer') || ' ' || (record::jsonb -> 'oidc' ->> 'subject')) = $1";
        self.one(sql, &format!("{issuer} {subject}")).await?.map(|r| user(&r)).transpose()
    }

    async fn update_user(&self, user: &User, events: &[Event]) -> Result<()> {
        self.replace("users", "user", user.id, &user.name, encode(user)?, events).await
    }

    async fn delete_user(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute("DELETE FROM users WHERE id = $1", &[&id_of(id)])
            .await
            .map_err(db("deleting a user"))?;
        if n == 1 {
            record_events(&txn, events).await?;
        }
        txn.commit().await.map_err(db("committing"))?;
        Ok(n == 1)
    }

    async fn create_project(&self, mut project: Project, events: &[Event]) -> Result<Project> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let text = encode(&project)?;
        let row = txn
            .cached_one("INSERT INTO projects (name, record) VALUES ($1, $2) RETURNING id", &[&project.name, &text])
            .await
            .map_err(|e| match sqlstate(&e) {
                Some("23505") => AuthError::conflict(format!("project {}", project.name)),
                _ => AuthError::Backend(pg_err("creating a project", e)),
            })?;
        project.id = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        record_events(&txn, events).await?;
        txn.commit().await.map_err(db("committing"))?;
        Ok(project)
    }

    async fn project(&self, id: Id) -> Result<Option<Project>> {
        self.one("SELECT id, record FROM projects WHERE id = $1", &id_of(id)).await?.map(|r| project(&r)).transpose()
    }

    async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        self.one("SELECT id, record FROM projects WHERE name = $1", &name).await?.map(|r| project(&r)).transpose()
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        self.all("SELECT id, record FROM projects ORDER BY name").await?.iter().map(project).collect()
    }

    async fn update_project(&self, project: &Project, events: &[Event]) -> Result<()> {
        self.replace("projects", "project", project.id, &project.name, encode(project)?, events).await
    }

    async fn delete_project(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute("DELETE FROM projects WHERE id = $1", &[&id_of(id)])
            .await
            .map_err(db("deleting a project"))?;
        if n == 1 {
            record_events(&txn, events).await?;
        }
        txn.commit().await.map_err(db("committing"))?;
        Ok(n == 1)
    }

    async fn create_member(&self, mut member: Member, events: &[Event]) -> Result<Member> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let text = encode(&member)?;
        let (user_id, group_id) = entity_columns(member.entity);
        let row = txn
            .cached_one(
                "INSERT INTO members (project_id, user_id, group_id, record) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&id_of(member.project_id), &user_id, &group_id, &text],
            )
            .await
            .map_err(|e| match sqlstate(&e) {
                Some("23505") => {
                    AuthError::conflict(format!("membership of {:?} in project {}", member.entity, member.project_id))
                }
                Some("23503") => AuthError::not_found(format!("project {} or {:?}", member.project_id, member.entity)),
                _ => AuthError::Backend(pg_err("creating a membership", e)),
            })?;
        member.id = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        record_events(&txn, events).await?;
        txn.commit().await.map_err(db("committing"))?;
        Ok(member)
    }

    async fn members(&self, project_id: Id) -> Result<Vec<Member>> {
        let client = self.client_auth().await?;
        let rows = client
            .cached_query("SELECT id, record FROM members WHERE project_id = $1 ORDER BY id", &[&id_of(project_id)])
            .await
            .map_err(db("listing members"))?;
        rows.iter().map(member).collect()
    }

    async fn member(&self, project_id: Id, user_id: Id) -> Result<Option<Member>> {
        let client = self.client_auth().await?;
        let row = client
            .cached_opt(
                "SELECT id, record FROM members WHERE project_id = $1 AND user_id = $2",
                &[&id_of(project_id), &id_of(user_id)],
            )
            .await
            .map_err(db("reading a membership"))?;
        row.map(|r| member(&r)).transpose()
    }

    async fn memberships(&self, user_id: Id) -> Result<Vec<Member>> {
        let client = self.client_auth().await?;
        let rows = client
            .cached_query("SELECT id, record FROM members WHERE user_id = $1 ORDER BY id", &[&id_of(user_id)])
            .await
            .map_err(db("listing memberships"))?;
        rows.iter().map(member).collect()
    }

    async fn update_member(&self, m: &Member, events: &[Event]) -> Result<()> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let (user_id, group_id) = entity_columns(m.entity);
        let n = txn
            .cached_execute(
                "UPDATE members SET record = $5 WHERE id = $1 AND project_id = $2 \
                 AND user_id IS NOT DISTINCT FROM $3 AND group_id IS NOT DISTINCT FROM $4",
                &[&id_of(m.id), &id_of(m.project_id), &user_id, &group_id, &encode(m)?],
            )
            .await
            .map_err(db("updating a membership"))?;
        if n == 1 {
            record_events(&txn, events).await?;
            return txn.commit().await.map_err(db("committing"));
        }
        let exists = txn
            .cached_opt("SELECT 1 FROM members WHERE id = $1", &[&id_of(m.id)])
            .await
            .map_err(db("reading a membership"))?;
        match exists {
            Some(_) => Err(AuthError::Invalid(format!("member {} cannot be moved", m.id))),
            None => Err(AuthError::not_found(format!("member {}", m.id))),
        }
    }

    async fn delete_member(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute("DELETE FROM members WHERE id = $1", &[&id_of(id)])
            .await
            .map_err(db("deleting a membership"))?;
        if n == 1 {
            record_events(&txn, events).await?;
        }
        txn.commit().await.map_err(db("committing"))?;
        Ok(n == 1)
    }

    async fn create_group(&self, mut g: UserGroup, events: &[Event]) -> Result<UserGroup> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let row = txn
            .cached_one(
                "INSERT INTO user_groups (kind, key, record) VALUES ($1, $2, $3) RETURNING id",
                &[&i16::from(g.kind.id()), &g.key(), &encode(&g)?],
            )
            .await
            .map_err(|e| match sqlstate(&e) {
                Some("23505") => AuthError::conflict(format!("group {}", g.name)),
                _ => AuthError::Backend(pg_err("creating a user group", e)),
            })?;
        g.id = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        record_events(&txn, events).await?;
        txn.commit().await.map_err(db("committing"))?;
        Ok(g)
    }

    async fn group(&self, id: Id) -> Result<Option<UserGroup>> {
        let row = self.one("SELECT id, record FROM user_groups WHERE id = $1", &id_of(id)).await?;
        row.map(|r| group(&r)).transpose()
    }

    async fn groups(&self) -> Result<Vec<UserGroup>> {
        self.all("SELECT id, record FROM user_groups ORDER BY id").await?.iter().map(group).collect()
    }

    async fn update_group(&self, g: &UserGroup, events: &[Event]) -> Result<()> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute(
                "UPDATE user_groups SET key = $3, record = $4 WHERE id = $1 AND kind = $2",
                &[&id_of(g.id), &i16::from(g.kind.id()), &g.key(), &encode(g)?],
            )
            .await
            .map_err(|e| match sqlstate(&e) {
                Some("23505") => AuthError::conflict(format!("group {}", g.name)),
                _ => AuthError::Backend(pg_err("updating a user group", e)),
            })?;
        if n == 1 {
            record_events(&txn, events).await?;
            return txn.commit().await.map_err(db("committing"));
        }
        let exists = txn
            .cached_opt("SELECT 1 FROM user_groups WHERE id = $1", &[&id_of(g.id)])
            .await
            .map_err(db("reading a user group"))?;
        match exists {
            Some(_) => Err(AuthError::Invalid(format!("group {} cannot change its type", g.name))),
            None => Err(AuthError::not_found(format!("group {}", g.name))),
        }
    }

    async fn delete_group(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute("DELETE FROM user_groups WHERE id = $1", &[&id_of(id)])
            .await
            .map_err(db("deleting a user group"))?;
        if n == 1 {
            record_events(&txn, events).await?;
        }
        txn.commit().await.map_err(db("committing"))?;
        Ok(n == 1)
    }

    async fn create_robot(&self, mut robot: Robot, events: &[Event]) -> Result<Robot> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let text = encode(&robot)?;
        let project = robot.project_id.map(id_of);
        let row = txn
            .cached_one(
                "INSERT INTO robots (name, project_id, record) VALUES ($1, $2, $3) RETURNING id",
                &[&robot.name, &project, &text],
            )
            .await
            .map_err(|e| match sqlstate(&e) {
                Some("23505") => AuthError::conflict(format!("robot {}", robot.name)),
                Some("23503") => AuthError::not_found(format!("project {}", robot.project_id.unwrap_or(0))),
                _ => AuthError::Backend(pg_err("creating a robot", e)),
            })?;
        robot.id = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        record_events(&txn, events).await?;
        txn.commit().await.map_err(db("committing"))?;
        Ok(robot)
    }

    async fn robot(&self, id: Id) -> Result<Option<Robot>> {
        self.one("SELECT id, record FROM robots WHERE id = $1", &id_of(id)).await?.map(|r| robot(&r)).transpose()
    }

    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>> {
        self.one("SELECT id, record FROM robots WHERE name = $1", &name).await?.map(|r| robot(&r)).transpose()
    }

    async fn robots(&self) -> Result<Vec<Robot>> {
        self.all("SELECT id, record FROM robots ORDER BY id").await?.iter().map(robot).collect()
    }

    async fn update_robot(&self, robot: &Robot, events: &[Event]) -> Result<()> {
        self.replace("robots", "robot", robot.id, &robot.name, encode(robot)?, events).await
    }

    async fn delete_robot(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute("DELETE FROM robots WHERE id = $1", &[&id_of(id)])
            .await
            .map_err(db("deleting a robot"))?;
        if n == 1 {
            record_events(&txn, events).await?;
        }
        txn.commit().await.map_err(db("committing"))?;
        Ok(n == 1)
    }

    async fn login_failures(&self, name: &str) -> Result<Option<LoginFailures>> {
        let row = self.one("SELECT count, last_at FROM login_failures WHERE name = $1", &name).await?;
        Ok(row.map(|r| LoginFailures {
            count: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
            last_at: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
        }))
    }

    async fn set_login_failures(&self, name: &str, failures: Option<LoginFailures>, events: &[Event]) -> Result<()> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        match failures {
            Some(f) => txn
                .cached_execute(
                    "INSERT INTO login_failures (name, count, last_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET count = EXCLUDED.count, last_at = EXCLUDED.last_at",
                    &[&name, &i32::try_from(f.count).unwrap_or(i32::MAX), &(f.last_at as i64)],
                )
                .await
                .map_err(db("counting a failed login"))?,
            None => txn
                .cached_execute("DELETE FROM login_failures WHERE name = $1", &[&name])
                .await
                .map_err(db("clearing failed logins"))?,
        };
        record_events(&txn, events).await?;
        txn.commit().await.map_err(db("committing"))
    }
}

/// Accounts copied whole from another store, ids kept (see [`PgStore::import_accounts`]).
#[derive(Debug, Clone, Default)]
pub struct AccountsImport {
    /// Users.
    pub users: Vec<User>,
    /// Projects.
    pub projects: Vec<Project>,
    /// Memberships.
    pub members: Vec<Member>,
    /// User groups.
    pub groups: Vec<UserGroup>,
    /// Robots.
    pub robots: Vec<Robot>,
}

impl PgStore {
    /// Imports accounts into an empty database in one transaction, keeping every id (Harbor's
    /// clients and Terraform state name projects and users by id), then moves the id sequences
    /// past them. Refused, changing nothing, when the database already holds accounts.
    pub async fn import_accounts(&self, accounts: &AccountsImport) -> Result<()> {
        let mut client = self.client_auth().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let held: i64 = txn
            .cached_one("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM projects)", &[])
            .await
            .map_err(db("counting accounts"))?
            .get(0);
        if held > 0 {
            return Err(AuthError::Precondition(format!(
                "the database already holds {held} users and projects: import into an empty one"
            )));
        }
        for u in &accounts.users {
            txn.cached_execute(
                "INSERT INTO users (id, name, record) VALUES ($1, $2, $3)",
                &[&id_of(u.id), &u.name, &encode(u)?],
            )
            .await
            .map_err(db("importing a user"))?;
        }
        for p in &accounts.projects {
            txn.cached_execute(
                "INSERT INTO projects (id, name, record) VALUES ($1, $2, $3)",
                &[&id_of(p.id), &p.name, &encode(p)?],
            )
            .await
            .map_err(db("importing a project"))?;
        }
        for g in &accounts.groups {
            txn.cached_execute(
                "INSERT INTO user_groups (id, kind, key, record) VALUES ($1, $2, $3, $4)",
                &[&id_of(g.id), &i16::from(g.kind.id()), &g.key(), &encode(g)?],
            )
            .await
            .map_err(db("importing a user group"))?;
        }
        for m in &accounts.members {
            let (user_id, group_id) = entity_columns(m.entity);
            txn.cached_execute(
                "INSERT INTO members (id, project_id, user_id, group_id, record) VALUES ($1, $2, $3, $4, $5)",
                &[&id_of(m.id), &id_of(m.project_id), &user_id, &group_id, &encode(m)?],
            )
            .await
            .map_err(db("importing a membership"))?;
        }
        for r in &accounts.robots {
            txn.cached_execute(
                "INSERT INTO robots (id, name, project_id, record) VALUES ($1, $2, $3, $4)",
                &[&id_of(r.id), &r.name, &r.project_id.map(id_of), &encode(r)?],
            )
            .await
            .map_err(db("importing a robot"))?;
        }
        for table in ["users", "projects", "members", "robots", "user_groups"] {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
            );
            txn.cached_execute(&sql, &[]).await.map_err(db("moving an id sequence"))?;
        }
        txn.commit().await.map_err(db("committing the import"))?;
        Ok(())
    }
}
