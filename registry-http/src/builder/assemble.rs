//! Turning the builder's choices into stores, accounts, tokens and the service stack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry_auth::{
    AccessPolicy, Accounts, AuthError, Authenticator, Identity, TokenIssuer, TokenKey, TokenService, TokenVerifier,
};
use registry_core::{Action, Scope, SharedClock};
use registry_storage::{JobRunner, Registry};
use std::time::Duration;
use tokio::net::{TcpListener, ToSocketAddrs};

use super::{Auth, BuildError, RegistryBuilder, Server, Storage};
use crate::api::{Api, Callers};
use crate::distribution::Settings;
use crate::gc::{GC_KIND, GarbageCollector, GcHandler};
use crate::server::ServerOptions;
use crate::service::{Parts, RegistryService, assemble};
use crate::token::{ISSUER, TOKEN_PATH, TokenAuth};
use crate::webhook::deliver::{DELIVERY_KIND, Deliverer};
use crate::webhook::dispatch::Dispatcher;
use registry_auth::SecretKey;

/// The default policy for an embedder's authenticator without a policy of its own: signed-in
/// identities may pull, push and delete anything; anonymous callers nothing.
struct SignedInMayDoAnything;

#[async_trait::async_trait]
impl AccessPolicy for SignedInMayDoAnything {
    async fn grant(&self, who: &Identity, requested: &Scope) -> Result<Scope, AuthError> {
        let mut granted = Scope { actions: Default::default(), ..requested.clone() };
        if *who != Identity::Anonymous {
            granted.actions.extend([Action::Pull, Action::Push, Action::Delete, Action::All]);
        }
        Ok(requested.intersection(&granted))
    }
}

impl RegistryBuilder {
    /// Binds `addr` and assembles the server; it serves once [`Server::serve`] runs.
    pub async fn bind(self, addr: impl ToSocketAddrs + std::fmt::Display) -> Result<Server, BuildError> {
        let text = addr.to_string();
        let listener =
            TcpListener::bind(addr).await.map_err(|source| BuildError::Bind { addr: text.clone(), source })?;
        self.with_listener(listener).await
    }

    /// Assembles the server on a listener the caller bound.
    pub async fn with_listener(self, listener: TcpListener) -> Result<Server, BuildError> {
        let addr = listener.local_addr().map_err(|source| BuildError::Bind { addr: "listener".into(), source })?;
        if matches!(self.auth, Auth::Off { allowed: false }) && !addr.ip().is_loopback() {
            return Err(BuildError::Config(format!(
                "refusing to serve without authentication on a non-loopback address ({addr}): configure \
                 accounts or an authenticator (or allow_unauthenticated)"
            )));
        }
        let scheme = if self.server.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        let built = self.assemble(&base, &addr.to_string()).await?;
        let metrics = match &built.metrics {
            Some((metrics, at)) => {
                let bound = TcpListener::bind(at)
                    .await
                    .map_err(|source| BuildError::Bind { addr: format!("{at} (metrics)"), source })?;
                Some((metrics.clone(), bound))
            }
            None => None,
        };
        Ok(Server::new(listener, addr, scheme, built, metrics))
    }

    /// The service alone, for mounting in a larger application reached at `base_url`
    /// (`https://host:port`); nothing is served and no schedule runs.
    pub async fn build_service(self, base_url: &str) -> Result<RegistryService, BuildError> {
        let host = base_url.split("://").nth(1).unwrap_or(base_url).to_owned();
        Ok(self.assemble(base_url.trim_end_matches('/'), &host).await?.service)
    }

    /// The management API alone, every caller a system administrator: what the binary's account
    /// commands talk to, in process, when no server runs on the data directory.
    pub async fn build_local_admin_service(mut self) -> Result<RegistryService, BuildError> {
        self.admin_socket = Some(PathBuf::new());
        let built = self.assemble("http://localhost", "localhost").await?;
        // Jobs (a collection asked for) run in this process while it lives.
        std::mem::forget(built.jobs.clone().start());
        built.admin.map(|(_, service)| service).ok_or_else(|| BuildError::Config("no management API to serve".into()))
    }

    async fn assemble(self, base: &str, host: &str) -> Result<Built, BuildError> {
        let service_name = self.service_name.clone().unwrap_or_else(|| "registry".into());
        let clock = self.clock.clone().unwrap_or_else(registry_core::time::system_clock);
        let (registry, accounts_store, temp, storage_name) = self.open_storage(&clock)?;
        let (accounts, authenticator, policy, external) = match self.auth {
            Auth::Off { .. } => (None, None, None, None),
            Auth::Harbor => {
                let store = accounts_store.ok_or_else(|| {
                    BuildError::Config(
                        "harbor_accounts needs memory or embedded storage; pass accounts(…) instead".into(),
                    )
                })?;
                let accounts = Accounts::new(store).with_clock(clock.clone());
                let a: Arc<Accounts> = Arc::new(accounts.clone());
                (Some(accounts), Some(a.clone() as Arc<dyn Authenticator>), Some(a as Arc<dyn AccessPolicy>), None)
            }
            Auth::Accounts(accounts) => {
                let a: Arc<Accounts> = Arc::new(accounts.clone());
                (Some(accounts), Some(a.clone() as Arc<dyn Authenticator>), Some(a as Arc<dyn AccessPolicy>), None)
            }
            Auth::Custom { authenticator: None, .. } => {
                return Err(BuildError::Config("an access policy needs an authenticator".into()));
            }
            Auth::Custom { authenticator: Some(authenticator), policy } => {
                let policy = policy.unwrap_or_else(|| Arc::new(SignedInMayDoAnything));
                (None, Some(authenticator), Some(policy), None)
            }
            Auth::External { realm, keys, issuer } => (None, None, None, Some((realm, keys, issuer))),
        };
        let realm_default = format!("{base}{}{TOKEN_PATH}", self.prefix);
        let mut token_key = None;
        let mut certificate_pem = None;
        let token = match (&authenticator, &policy, external) {
            (_, _, Some((realm, keys, issuer))) => Some(Arc::new(TokenAuth {
                realm,
                service: service_name.clone(),
                verifier: TokenVerifier::new(keys.clone(), issuer, service_name.clone()),
                public_keys: keys,
                issuer: None,
                authenticator: None,
                policy: None,
                events: None,
            })),
            (Some(authenticator), Some(policy), None) => {
                let key = match self.token_key {
                    Some(k) => k,
                    None => TokenKey::generate()?,
                };
                let der = match self.certificate_der {
                    Some(der) => der,
                    None => {
                        let (pem, der) = key.certificate(ISSUER)?;
                        certificate_pem = Some(pem);
                        der
                    }
                };
                let mut issuer =
                    TokenIssuer::new(key.clone(), ISSUER, self.token_lifetime).with_kid_format(self.kid_format);
                if self.x5c {
                    issuer = issuer.with_certificate_chain(&[der]);
                }
                let service = TokenService::new(issuer, service_name.clone(), authenticator.clone(), policy.clone())
                    .with_services(self.also_issue_for.clone());
                token_key = Some(key.clone());
                Some(Arc::new(TokenAuth {
                    realm: self.realm.clone().unwrap_or(realm_default),
                    service: service_name.clone(),
                    verifier: TokenVerifier::new([key.public_key()], ISSUER, service_name.clone()),
                    public_keys: vec![key.public_key()],
                    issuer: Some(Arc::new(service)),
                    authenticator: Some(authenticator.clone()),
                    policy: Some(policy.clone()),
                    events: (!self.token_only).then(|| registry.clone()),
                }))
            }
            _ => None,
        };
        let secret_key = match (&self.secret_key, &self.storage, &temp) {
            (Some(key), _, _) => key.clone(),
            (None, _, Some(temp)) => SecretKey::load_or_create(&temp.path().join(SECRET_KEY_FILE)).map_err(seal_err)?,
            (None, Storage::Embedded(dir), _) => {
                SecretKey::load_or_create(&dir.join(SECRET_KEY_FILE)).map_err(seal_err)?
            }
            (None, _, _) => SecretKey::generate().map_err(seal_err)?,
        };
        let metrics = (self.metrics || self.metrics_addr.is_some()).then(crate::metrics::Metrics::new);
        let queue: Arc<dyn registry_storage::JobQueue> = registry.metadata_store().clone();
        let (attempts, backoff) = self.webhook_retry;
        let deliverer = Arc::new(Deliverer { meta: registry.metadata_store().clone(), key: secret_key.clone() });
        let jobs = Arc::new(
            JobRunner::new(queue, clock.clone(), worker_name())
                .with_lease(self.job_lease)
                .with_poll(self.job_poll)
                .handle(GC_KIND, 1, Duration::from_secs(60), GcHandler::new(registry.clone(), metrics.clone()))
                .handle(DELIVERY_KIND, 8, backoff, deliverer)
                .handle(
                    crate::housekeeping::KIND,
                    1,
                    Duration::from_secs(60),
                    Arc::new(crate::housekeeping::Housekeeper {
                        meta: registry.metadata_store().clone(),
                        retention: self.retention,
                        clock: clock.clone(),
                    }),
                ),
        );
        let dispatcher = accounts.as_ref().filter(|_| !self.token_only).map(|accounts| {
            Arc::new(Dispatcher {
                meta: registry.metadata_store().clone(),
                accounts: accounts.clone(),
                jobs: jobs.clone(),
                registry_host: host.to_owned(),
                attempts,
                poll: self.job_poll,
            })
        });
        let gc = GarbageCollector::new(jobs.clone(), self.gc.clone(), self.gc_interval);
        let forwarder = (!self.token_only).then(|| {
            Arc::new(crate::syslog::Forwarder { meta: registry.metadata_store().clone(), poll: self.job_poll })
        });
        let api = (!self.token_only).then(|| {
            Arc::new(Api {
                registry: registry.clone(),
                accounts: accounts.clone(),
                policy: policy.clone(),
                gc: Some(gc.clone()),
                info: crate::api::system::Info {
                    external_url: base.to_owned(),
                    registry_url: host.to_owned(),
                    storage: storage_name.to_owned(),
                    auth_mode: if accounts.is_some() { "db_auth".into() } else { "custom".into() },
                },
                secret_key: Some(secret_key.clone()),
            })
        });
        // Sessions last eight hours; the cookie is Secure when the registry is served over TLS.
        let sessions = (self.portal && !self.token_only)
            .then(|| crate::session::Sessions::new(secret_key.clone(), 8 * 3600, base.starts_with("https://")));
        let portal = sessions.clone().map(|sessions| {
            Arc::new(crate::portal::Portal {
                authenticator: authenticator.clone(),
                sessions,
                accounts: accounts.clone(),
                events: registry.clone(),
            })
        });
        let parts = |api: Option<Arc<Api>>| Parts {
            registry: registry.clone(),
            token: token.clone(),
            api,
            distribution: !self.token_only,
            prefix: self.prefix.clone(),
            settings: Settings { deadline: self.deadline, upload_limit: self.upload_limit },
            metrics: metrics.clone(),
            serve_metrics: self.metrics,
            portal: portal.clone(),
        };
        let service = assemble(parts(api.clone()), Callers::Basic(authenticator.clone(), sessions));
        let admin = match (&self.admin_socket, &api) {
            (Some(path), Some(api)) => {
                let local = Identity::User { name: "admin-socket".into(), admin: true };
                let mut admin_parts = parts(Some(api.clone()));
                admin_parts.distribution = false;
                admin_parts.portal = None;
                Some((path.clone(), assemble(admin_parts, Callers::Assume(local))))
            }
            _ => None,
        };
        Ok(Built {
            service,
            registry,
            accounts,
            token: token.clone(),
            token_key,
            certificate_pem,
            gc: Some(gc),
            jobs,
            dispatcher,
            forwarder,
            metrics: metrics.clone().zip(self.metrics_addr),
            admin,
            server: self.server,
            data_dir: temp.as_ref().map(|t| t.path().to_owned()).or(match &self.storage {
                Storage::Embedded(dir) => Some(dir.clone()),
                _ => None,
            }),
            _temp: temp,
        })
    }

    #[allow(clippy::type_complexity)]
    fn open_storage(
        &self,
        clock: &SharedClock,
    ) -> Result<
        (Registry, Option<Arc<dyn registry_auth::AccountStore>>, Option<tempfile::TempDir>, &'static str),
        BuildError,
    > {
        let embedded = |dir: &Path| -> Result<(Registry, Arc<dyn registry_auth::AccountStore>), BuildError> {
            let e = registry_redb::open_embedded(dir)?;
            let store = e.store.with_clock(clock.clone());
            let registry = Registry::new(Arc::new(e.blobs), Arc::new(store.clone()), self.limits.clone());
            Ok((registry.with_clock(clock.clone()), Arc::new(store)))
        };
        Ok(match &self.storage {
            Storage::Memory => {
                // redb's in-memory backend: the code the embedded default runs, metadata and
                // accounts (and so every event) in one store.
                let store = registry_redb::RedbStore::in_memory().with_clock(clock.clone());
                let registry = Registry::new(
                    Arc::new(registry_storage::MemoryBlobStore::new()),
                    Arc::new(store.clone()),
                    self.limits.clone(),
                )
                .with_clock(clock.clone());
                (registry, Some(Arc::new(store)), None, "memory")
            }
            Storage::Registry(registry) => (registry.clone(), None, None, "custom"),
            Storage::Embedded(dir) => {
                let (registry, store) = embedded(dir)?;
                (registry, Some(store), None, "filesystem")
            }
            Storage::TempDir => {
                let temp =
                    tempfile::tempdir().map_err(|source| BuildError::Bind { addr: "temp dir".into(), source })?;
                let (registry, store) = embedded(temp.path())?;
                (registry, Some(store), Some(temp), "filesystem")
            }
        })
    }
}

/// The key file of an embedded data directory.
const SECRET_KEY_FILE: &str = "secret.key";

fn seal_err(e: registry_auth::SealError) -> BuildError {
    BuildError::Config(e.to_string())
}

/// The name of this process's job worker: host and process id.
fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "registry".into());
    format!("{host}:{}", std::process::id())
}

/// What assembly produced.
pub(crate) struct Built {
    pub(crate) service: RegistryService,
    pub(crate) registry: Registry,
    pub(crate) accounts: Option<Accounts>,
    pub(crate) token: Option<Arc<TokenAuth>>,
    pub(crate) token_key: Option<TokenKey>,
    pub(crate) certificate_pem: Option<String>,
    pub(crate) gc: Option<Arc<GarbageCollector>>,
    pub(crate) jobs: Arc<JobRunner>,
    pub(crate) dispatcher: Option<Arc<Dispatcher>>,
    pub(crate) forwarder: Option<Arc<crate::syslog::Forwarder>>,
    /// The metrics and the address of their own listener, if they have one.
    pub(crate) metrics: Option<(Arc<crate::metrics::Metrics>, std::net::SocketAddr)>,
    pub(crate) admin: Option<(PathBuf, RegistryService)>,
    pub(crate) server: ServerOptions,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) _temp: Option<tempfile::TempDir>,
}
