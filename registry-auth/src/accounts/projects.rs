//! Projects: creation, look-up by name or id, settings, removal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_core::event::{EventAction, Resource};

use super::{Accounts, valid_project_name};
use crate::error::AuthError;
use crate::model::{Id, Project};

/// How long [`Accounts::recent_project`] trusts a read.
pub const RECENT: Duration = Duration::from_secs(2);

impl Accounts {
    /// Creates a project (private unless `public`) owned by nobody.
    pub async fn create_project(&self, name: &str, public: bool) -> Result<Project, AuthError> {
        self.create_project_with(name, public, None, BTreeMap::new()).await
    }

    /// Creates a project owned by `owner` with Harbor metadata.
    pub async fn create_project_with(
        &self,
        name: &str,
        public: bool,
        owner: Option<Id>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Project, AuthError> {
        self.insert_project(name, public, owner, metadata, self.now()).await
    }

    /// Creates a project with its original creation time (seconds since the epoch), as when
    /// migrating projects from another registry: tokens issued before that time never open it.
    pub async fn import_project(&self, name: &str, public: bool, created_at: u64) -> Result<Project, AuthError> {
        self.insert_project(name, public, None, BTreeMap::new(), created_at).await
    }

    async fn insert_project(
        &self,
        name: &str,
        public: bool,
        owner_id: Option<Id>,
        mut metadata: BTreeMap<String, String>,
        created_at: u64,
    ) -> Result<Project, AuthError> {
        if !valid_project_name(name) {
            return Err(AuthError::Invalid(format!(
                "invalid project name {name:?}: lowercase letters, digits and '.', '_', '-' between them"
            )));
        }
        metadata.remove("public");
        let project =
            Project { id: 0, name: name.to_owned(), public, owner_id, created_at, updated_at: created_at, metadata };
        let event = self.event(EventAction::CreateProject, project_resource(name));
        let created = self.store.create_project(project, &event).await;
        self.forget_project(name);
        created
    }

    /// A project by name.
    pub async fn project(&self, name: &str) -> Result<Option<Project>, AuthError> {
        self.store.project_by_name(name).await
    }

    /// A project as read within the last [`RECENT`], shared, for what every pull asks (content
    /// trust, vulnerability prevention): one read per project and period instead of one per
    /// policy and pull, and no copy. A change through these accounts is seen at once; one made
    /// through another replica's within [`RECENT`] (as the scanning caches).
    pub async fn recent_project(&self, name: &str) -> Result<Option<Arc<Project>>, AuthError> {
        if let Some((at, found)) = self.recent_projects.get(name)
            && at.elapsed() < RECENT
        {
            return Ok(found);
        }
        let found = self.store.project_by_name(name).await?.map(Arc::new);
        self.recent_projects.insert(name.to_owned(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Forgets what [`Accounts::recent_project`] read of `name` (it changed).
    fn forget_project(&self, name: &str) {
        self.recent_projects.remove(name);
    }

    /// A project by id.
    pub async fn project_by_id(&self, id: Id) -> Result<Option<Project>, AuthError> {
        self.store.project(id).await
    }

    /// All projects, by name.
    pub async fn projects(&self) -> Result<Vec<Project>, AuthError> {
        self.store.projects().await
    }

    /// A project that must exist.
    pub async fn existing_project(&self, name: &str) -> Result<Project, AuthError> {
        self.project(name).await?.ok_or_else(|| AuthError::not_found(format!("project {name}")))
    }

    /// Changes a project's publicity and metadata (keys given replace, the rest stay).
    pub async fn update_project(
        &self,
        name: &str,
        public: Option<bool>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Project, AuthError> {
        let mut project = self.existing_project(name).await?;
        if let Some(public) = public {
            project.public = public;
        }
        for (k, v) in metadata {
            if k != "public" {
                project.metadata.insert(k, v);
            }
        }
        project.updated_at = self.now();
        let updated =
            self.store.update_project(&project, &self.event(EventAction::UpdateProject, project_resource(name))).await;
        self.forget_project(name);
        updated?;
        Ok(project)
    }

    /// Removes one metadata key of a project; `false` if it had none.
    pub async fn remove_project_metadata(&self, name: &str, key: &str) -> Result<bool, AuthError> {
        let mut project = self.existing_project(name).await?;
        if project.metadata.remove(key).is_none() {
            return Ok(false);
        }
        project.updated_at = self.now();
        let updated =
            self.store.update_project(&project, &self.event(EventAction::UpdateProject, project_resource(name))).await;
        self.forget_project(name);
        updated?;
        Ok(true)
    }

    /// Removes a project with its members and robots (its repositories' content is the caller's
    /// concern: the management API refuses to remove a project that holds repositories).
    pub async fn remove_project(&self, name: &str) -> Result<(), AuthError> {
        let project = self.existing_project(name).await?;
        let deleted = self
            .store
            .delete_project(project.id, &self.event(EventAction::DeleteProject, project_resource(name)))
            .await;
        self.forget_project(name);
        if deleted? { Ok(()) } else { Err(AuthError::not_found(format!("project {name}"))) }
    }
}

/// The resource of an event on a project.
fn project_resource(name: &str) -> Resource {
    Resource { project: Some(name.to_owned()), ..Resource::default() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use crate::accounts::Accounts;

    #[tokio::test]
    async fn a_recent_project_is_shared_and_forgotten_when_it_changes_here() {
        let accounts = Accounts::in_memory();
        assert_eq!(accounts.recent_project("team").await.expect("read"), None);
        accounts.create_project("team", false).await.expect("create");
        let first = accounts.recent_project("team").await.expect("read").expect("made: the miss was forgotten");
        let again = accounts.recent_project("team").await.expect("read").expect("still there");
        assert!(Arc::ptr_eq(&first, &again), "one read shared, not a copy each");
        let metadata = BTreeMap::from([("enable_content_trust".to_owned(), "true".to_owned())]);
        accounts.clone().update_project("team", None, metadata).await.expect("update");
        let changed = accounts.recent_project("team").await.expect("read").expect("there");
        assert_eq!(changed.metadata.get("enable_content_trust").map(String::as_str), Some("true"), "seen at once");
        assert!(accounts.remove_project_metadata("team", "enable_content_trust").await.expect("remove"));
        assert!(accounts.recent_project("team").await.expect("read").expect("there").metadata.is_empty());
        accounts.remove_project("team").await.expect("remove");
        assert_eq!(accounts.recent_project("team").await.expect("read"), None, "gone at once");
    }
}
