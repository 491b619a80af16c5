//! [`Accounts`]: Harbor's account rules over any [`AccountStore`], and the
//! [`Authenticator`](crate::Authenticator) and [`AccessPolicy`](crate::AccessPolicy) built on them.
//!
//! - A **project** is the first path component of a repository name (`library` in
//!   `library/app`). It is public (anonymous pull) or private; private by default.
//! - A **member** of a project holds one [`Role`]; a membership may be narrowed to a repository
//!   pattern inside the project (`app-*`, `team/*`).
//! - A **robot** (`robot$<project>+<name>`, or `robot$<name>` at system level) holds explicit
//!   permissions, a secret shown once and stored hashed, and an expiry (30 days by default, or
//!   never).
//! - A **system admin** may do everything.
//!
//! Passwords and secrets are stored as bcrypt hashes only, and checked on a blocking thread. A
//! failed login costs the same time whether or not the account exists. After [`MAX_FAILURES`]
//! failed logins in a row an account is locked for [`LOCKOUT`]; the count lives in the store, so
//! every replica sees it.
//!
//! A disabled user or a removed robot can no longer log in or refresh a token at once; tokens it
//! already holds stay valid until they expire (the token lifetime, 5 minutes by default).
//!
//! The rules are split by what they govern: `users`, `projects`, `members`, `robots`, `login`
//! (authentication and lockout) and `policy` (what an identity may do).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use registry_core::{RepositoryName, SharedClock};

use crate::error::AuthError;
use crate::memory::MemoryAccountStore;
use crate::model::SecretHash;
use crate::store::AccountStore;
use registry_core::event::{Event, EventAction, Operator, Resource};

mod groups;
mod login;
mod members;
mod policy;
mod projects;
mod robots;
mod users;
pub mod verified;

pub use groups::MAX_GROUP_NAME;
pub use members::ProjectMember;
pub use projects::RECENT as RECENT_PROJECT;
pub use robots::NewRobot;
pub use users::NewUser;

/// Failed logins in a row before an account is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Default robot lifetime, in days.
pub const DEFAULT_ROBOT_DAYS: u64 = 30;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted, in bytes (bcrypt reads no further).
pub const MAX_PASSWORD: usize = 72;
/// bcrypt cost for stored hashes.
const BCRYPT_COST: u32 = 10;

/// The accounts: rules over a store. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    clock: SharedClock,
    /// Who the changes are made for (recorded in their events).
    operator: Operator,
    /// The directory users sign in through, when one is configured.
    directory: Option<Arc<dyn crate::directory::Directory>>,
    /// Recent successful sign-ins (see [`verified`]).
    verified: Arc<verified::Verified>,
    /// Projects as read lately, for the pull path (see [`Accounts::recent_project`]).
    recent_projects: Arc<RecentProjects>,
}

/// Projects by name, each with when it was read (`None`: there was none).
type RecentProjects = quick_cache::sync::Cache<String, (std::time::Instant, Option<Arc<crate::model::Project>>)>;

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// Accounts kept in `store`.
    pub fn new(store: Arc<dyn AccountStore>) -> Accounts {
        Accounts {
            store,
            clock: registry_core::time::system_clock(),
            operator: Operator::system(),
            directory: None,
            verified: Arc::new(verified::Verified::new()),
            recent_projects: Arc::new(quick_cache::sync::Cache::new(4096)),
        }
    }

    /// Accounts in memory (tests, examples).
    pub fn in_memory() -> Accounts {
        Accounts::new(Arc::new(MemoryAccountStore::new()))
    }

    /// The same accounts reading time from `clock` (robot expiry, lockout, creation times).
    pub fn with_clock(mut self, clock: SharedClock) -> Accounts {
        self.clock = clock;
        self
    }

    /// The same accounts signing users in through `directory` while it is active (see
    /// [`crate::directory`]).
    pub fn with_directory(mut self, directory: Arc<dyn crate::directory::Directory>) -> Accounts {
        self.directory = Some(directory);
        self
    }

    /// The same accounts making changes for `operator`: each change's event names them (the
    /// management API acts for its caller; the default is the registry itself).
    pub fn acting_as(&self, operator: Operator) -> Accounts {
        Accounts { operator, ..self.clone() }
    }

    /// Who changes are made for.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// The event recording a change made now.
    fn event(&self, action: EventAction, resource: Resource) -> [Event; 1] {
        [Event::new(self.clock.now_millis(), self.operator.clone(), action, resource)]
    }

    /// The figures of the accounts' in-memory caches (credentials verified lately, projects read
    /// lately), for metrics.
    pub fn cache_stats(&self) -> Vec<registry_core::cache_stats::CacheStats> {
        let projects = &self.recent_projects;
        let mut stats = self.verified.stats().to_vec();
        stats.push(registry_core::cache_stats::CacheStats::counted(
            "recent_projects",
            projects.hits(),
            projects.misses(),
            projects.len(),
        ));
        stats
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    fn now(&self) -> u64 {
        self.clock.now_secs()
    }
}

/// A hash to verify against when an account does not exist, so that both cost the same.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash("not a password of anyone", BCRYPT_COST).unwrap_or_default())
}

/// Hashes a password or secret with bcrypt on a blocking thread.
async fn hash_secret(secret: &str) -> Result<SecretHash, AuthError> {
    let secret = secret.to_owned();
    let hashed = tokio::task::spawn_blocking(move || bcrypt::hash(secret, BCRYPT_COST))
        .await
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("hashing a secret", e)))?
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("hashing a secret", e)))?;
    Ok(SecretHash::from_stored(hashed))
}

/// Checks `secret` against `hash` (constant time inside bcrypt) on a blocking thread; against a
/// dummy hash when there is none, so that a missing account costs the same.
async fn verify_secret(secret: &str, hash: Option<&SecretHash>) -> bool {
    let real = hash.is_some();
    let hash = hash.map(|h| h.as_str().to_owned()).unwrap_or_else(|| dummy_hash().to_owned());
    let secret = secret.to_owned();
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(secret, &hash).unwrap_or(false)).await.unwrap_or(false);
    ok && real
}

/// Whether `name` is a valid user or robot name part.
fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Checks a new password's length.
fn check_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::Invalid(format!("passwords have at least {MIN_PASSWORD} characters")));
    }
    if password.len() > MAX_PASSWORD {
        return Err(AuthError::Invalid(format!("passwords have at most {MAX_PASSWORD} bytes")));
    }
    Ok(())
}

/// Whether `name` is a valid project name: one component of a repository name.
fn valid_project_name(name: &str) -> bool {
    RepositoryName::parse(name).is_ok_and(|n| n.components().count() == 1)
}
