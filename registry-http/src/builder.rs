//! [`RegistryBuilder`]: the one way to assemble a server — used by the `registry` binary, by
//! [`TestRegistry`](crate::TestRegistry) and by embedders.
//!
//! ```no_run
//! # use registry_http::RegistryBuilder;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! RegistryBuilder::new()
//!     .embedded("/var/lib/registry")   // filesystem blobs + redb metadata and accounts
//!     .harbor_accounts()               // users, projects, roles, robots; token auth on
//!     .bind("0.0.0.0:5000").await?
//!     .serve(std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Choices and their defaults:
//!
//! | choice | default |
//! |---|---|
//! | storage: [`memory`](RegistryBuilder::memory), [`embedded`](RegistryBuilder::embedded), [`temp_dir`](RegistryBuilder::temp_dir), [`stores`](RegistryBuilder::stores), [`registry`](RegistryBuilder::registry) | memory |
//! | auth: [`harbor_accounts`](RegistryBuilder::harbor_accounts), [`accounts`](RegistryBuilder::accounts), [`authenticator`](RegistryBuilder::authenticator) + [`access_policy`](RegistryBuilder::access_policy), [`trust_token_service`](RegistryBuilder::trust_token_service) | none (refused on a non-loopback address unless [`allow_unauthenticated`](RegistryBuilder::allow_unauthenticated)) |
//! | tokens: key, lifetime, service name, realm | a fresh ES256 key, 5 minutes, `registry`, `<scheme>://<address>/auth/token` |
//! | [`tls`](RegistryBuilder::tls), [`prefix`](RegistryBuilder::prefix), [`limits`](RegistryBuilder::limits), [`server_options`](RegistryBuilder::server_options) | plain HTTP, none, 4 MiB manifests, 30 s heads |
//! | [`gc`](RegistryBuilder::gc) | grace 1 h, no schedule |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use registry_auth::{
    AccessPolicy, Accounts, AuthError, Authenticator, Identity, KidFormat, MemoryAccountStore, PublicKey, TokenIssuer,
    TokenKey, TokenService, TokenVerifier,
};
use registry_core::{Action, Scope, SharedClock};
use registry_storage::{BlobStore, GcOptions, Limits, MetadataStore, Registry};
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::api::{Api, Callers};
use crate::distribution::Settings;
use crate::gc::GarbageCollector;
use crate::layers::admission::DEFAULT_MAX_CONCURRENT_UPLOADS;
use crate::server::ServerOptions;
use crate::server::tls::TlsConfig;
use crate::service::{Parts, RegistryService, assemble};
use crate::token::{ISSUER, TOKEN_PATH, TokenAuth};

/// Why a server could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A choice that cannot work (named in the message).
    #[error("{0}")]
    Config(String),
    /// The stores could not be opened.
    #[error(transparent)]
    Storage(#[from] registry_redb::OpenError),
    /// The engine could not be set up.
    #[error(transparent)]
    Engine(#[from] registry_storage::Error),
    /// Keys or accounts could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

enum Storage {
    Memory,
    Registry(Registry),
    Embedded(PathBuf),
    TempDir,
}

enum Auth {
    Off { allowed: bool },
    Harbor,
    Accounts(Accounts),
    Custom { authenticator: Option<Arc<dyn Authenticator>>, policy: Option<Arc<dyn AccessPolicy>> },
    External { realm: String, keys: Vec<PublicKey>, issuer: String },
}

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

/// Assembles a registry server. See the module docs for the choices and their defaults.
pub struct RegistryBuilder {
    storage: Storage,
    clock: Option<SharedClock>,
    limits: Limits,
    auth: Auth,
    token_key: Option<TokenKey>,
    certificate_der: Option<Vec<u8>>,
    x5c: bool,
    kid_format: KidFormat,
    token_lifetime: Duration,
    pub(crate) service_name: Option<String>,
    realm: Option<String>,
    also_issue_for: Vec<String>,
    server: ServerOptions,
    prefix: String,
    upload_limit: usize,
    deadline: Duration,
    gc: GcOptions,
    gc_interval: Option<Duration>,
    admin_socket: Option<PathBuf>,
    token_only: bool,
}

impl std::fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryBuilder").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistryBuilder {
    /// Memory stores, no authentication, plain HTTP.
    pub fn new() -> RegistryBuilder {
        RegistryBuilder {
            storage: Storage::Memory,
            clock: None,
            limits: Limits::default(),
            auth: Auth::Off { allowed: false },
            token_key: None,
            certificate_der: None,
            x5c: true,
            kid_format: KidFormat::Rfc7638,
            token_lifetime: Duration::from_secs(300),
            service_name: None,
            realm: None,
            also_issue_for: Vec::new(),
            server: ServerOptions::default(),
            prefix: String::new(),
            upload_limit: DEFAULT_MAX_CONCURRENT_UPLOADS,
            deadline: Duration::from_secs(60),
            gc: GcOptions::default(),
            gc_interval: None,
            admin_socket: None,
            token_only: false,
        }
    }

    // ---- storage ----

    /// Blobs and metadata in memory (the default).
    pub fn memory(mut self) -> Self {
        self.storage = Storage::Memory;
        self
    }

    /// The embedded default in `dir`: filesystem blobs and one redb file for metadata and
    /// accounts (`registry_redb::open_embedded`).
    pub fn embedded(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage = Storage::Embedded(dir.into());
        self
    }

    /// The embedded default in a temporary directory removed when the server stops.
    pub fn temp_dir(mut self) -> Self {
        self.storage = Storage::TempDir;
        self
    }

    /// These stores.
    pub fn stores(mut self, blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetadataStore>) -> Self {
        self.storage = Storage::Registry(Registry::new(blobs, meta, self.limits.clone()));
        self
    }

    /// An engine the caller assembled.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.storage = Storage::Registry(registry);
        self
    }

    /// The engine's limits (manifest size, page size).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The clock stores and accounts read (tests of expiry and grace periods).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    // ---- auth ----

    /// Harbor's accounts (users, projects, members, robots) kept in the chosen storage (memory,
    /// or the embedded database), with token authentication and the management API.
    pub fn harbor_accounts(mut self) -> Self {
        self.auth = Auth::Harbor;
        self
    }

    /// Harbor's accounts over a store of the caller's.
    pub fn accounts(mut self, accounts: Accounts) -> Self {
        self.auth = Auth::Accounts(accounts);
        self
    }

    /// Token authentication with this authenticator (and, unless
    /// [`access_policy`](Self::access_policy) is given, a policy letting every signed-in identity
    /// pull, push and delete).
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        let policy = match self.auth {
            Auth::Custom { policy, .. } => policy,
            _ => None,
        };
        self.auth = Auth::Custom { authenticator: Some(Arc::new(authenticator)), policy };
        self
    }

    /// The access policy of a custom authenticator.
    pub fn access_policy(mut self, policy: impl AccessPolicy) -> Self {
        let authenticator = match self.auth {
            Auth::Custom { authenticator, .. } => authenticator,
            _ => None,
        };
        self.auth = Auth::Custom { authenticator, policy: Some(Arc::new(policy)) };
        self
    }

    /// Trust an external token service (`registry token-server`, another registry's): tokens
    /// signed by one of the keys of `jwks` (a JWKS document) and issued by `issuer`; clients are
    /// sent to `realm`. This server then keeps no accounts.
    pub fn trust_token_service(mut self, realm: &str, jwks: &str, issuer: &str) -> Result<Self, BuildError> {
        let keys = registry_auth::token::parse_jwks(jwks)?;
        self.auth = Auth::External { realm: realm.to_owned(), keys, issuer: issuer.to_owned() };
        Ok(self)
    }

    /// Serve without authentication even on a non-loopback address (anyone may push and delete).
    pub fn allow_unauthenticated(mut self) -> Self {
        self.auth = Auth::Off { allowed: true };
        self
    }

    /// The token signing key (default: a fresh ES256 key).
    pub fn token_key(mut self, key: TokenKey) -> Self {
        self.token_key = Some(key);
        self
    }

    /// The key's certificate (DER), sent as the tokens' `x5c` (default: a self-signed one made
    /// from the key).
    pub fn token_certificate(mut self, der: Vec<u8>) -> Self {
        self.certificate_der = Some(der);
        self
    }

    /// Whether tokens carry the key's certificate as `x5c` (default yes: distribution verifies
    /// tokens by it; without it, registries find the key by its `kid` in their root bundle).
    pub fn x5c(mut self, send: bool) -> Self {
        self.x5c = send;
        self
    }

    /// How tokens name their key (default RFC 7638; libtrust for older distribution setups).
    pub fn kid_format(mut self, format: KidFormat) -> Self {
        self.kid_format = format;
        self
    }

    /// Access token lifetime (default 5 minutes; at least 60 s).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// The service name: the tokens' audience (default `registry`; a test registry's default is
    /// its address).
    pub fn service_name(mut self, service: impl Into<String>) -> Self {
        self.service_name = Some(service.into());
        self
    }

    /// The token endpoint clients are sent to (default `<scheme>://<address><prefix>/auth/token`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Also issue tokens for another registry's service name.
    pub fn also_issue_for(mut self, service: impl Into<String>) -> Self {
        self.also_issue_for.push(service.into());
        self
    }

    // ---- serving ----

    /// Serve HTTPS.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.server.tls = Some(tls);
        self
    }

    /// Answer under a path prefix (`/registry` answers `/registry/v2/…`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Connection settings (timeouts, head size, shutdown grace); TLS set by [`tls`](Self::tls)
    /// is kept.
    pub fn server_options(mut self, options: ServerOptions) -> Self {
        let tls = self.server.tls.take();
        self.server = ServerOptions { tls: options.tls.or(tls), ..options };
        self
    }

    /// Connection inactivity limits (request bodies, idle keep-alive, response writes).
    pub fn timeouts(mut self, timeouts: crate::Timeouts) -> Self {
        self.server.timeouts = timeouts;
        self
    }

    /// Time a client has to send a request's head (default 30 s).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.server.header_read_timeout = timeout;
        self
    }

    /// At most `limit` upload bodies streaming at once (default 256; 0: no limit).
    pub fn upload_limit(mut self, limit: usize) -> Self {
        self.upload_limit = limit;
        self
    }

    /// How long a request of bounded work may take (default 60 s).
    pub fn request_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Garbage collection's options, and how often it runs (`None`: only on request).
    pub fn gc(mut self, options: GcOptions, interval: Option<Duration>) -> Self {
        self.gc = options;
        self.gc_interval = interval;
        self
    }

    /// Also serve the management API on a Unix socket at `path` (mode 0600), where every caller
    /// is a system administrator: the binary's account commands use it while the server runs.
    pub fn admin_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.admin_socket = Some(path.into());
        self
    }

    /// Serve only the token service (`/auth/token`, `/auth/jwks`, `/healthz`).
    pub fn token_service_only(mut self) -> Self {
        self.token_only = true;
        self
    }

    // ---- assembly ----

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
        Ok(Server { listener, addr, scheme, built })
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
                }))
            }
            _ => None,
        };
        let gc = match self.gc_interval {
            Some(every) => GarbageCollector::with_interval(registry.clone(), self.gc.clone(), every),
            None => GarbageCollector::new(registry.clone(), self.gc.clone()),
        };
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
            })
        });
        let parts = |api: Option<Arc<Api>>| Parts {
            registry: registry.clone(),
            token: token.clone(),
            api,
            distribution: !self.token_only,
            prefix: self.prefix.clone(),
            settings: Settings { deadline: self.deadline, upload_limit: self.upload_limit },
        };
        let service = assemble(parts(api.clone()), Callers::Basic(authenticator.clone()));
        let admin = match (&self.admin_socket, &api) {
            (Some(path), Some(api)) => {
                let local = Identity::User { name: "admin-socket".into(), admin: true };
                let mut admin_parts = parts(Some(api.clone()));
                admin_parts.distribution = false;
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
                let registry = Registry::new(
                    Arc::new(registry_storage::MemoryBlobStore::new()),
                    Arc::new(registry_storage::MemoryMetadataStore::with_clock(clock.clone())),
                    self.limits.clone(),
                )
                .with_clock(clock.clone());
                (registry, Some(Arc::new(MemoryAccountStore::new())), None, "memory")
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

/// What assembly produced.
pub(crate) struct Built {
    pub(crate) service: RegistryService,
    pub(crate) registry: Registry,
    pub(crate) accounts: Option<Accounts>,
    pub(crate) token: Option<Arc<TokenAuth>>,
    pub(crate) token_key: Option<TokenKey>,
    pub(crate) certificate_pem: Option<String>,
    pub(crate) gc: Option<Arc<GarbageCollector>>,
    pub(crate) admin: Option<(PathBuf, RegistryService)>,
    pub(crate) server: ServerOptions,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) _temp: Option<tempfile::TempDir>,
}

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    scheme: &'static str,
    pub(crate) built: Built,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://<address>`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The token endpoint clients are sent to, when token authentication is on.
    pub fn realm(&self) -> Option<&str> {
        self.built.token.as_ref().map(|t| t.realm())
    }

    /// The service it serves.
    pub fn service(&self) -> &RegistryService {
        &self.built.service
    }

    /// The engine.
    pub fn registry(&self) -> &Registry {
        &self.built.registry
    }

    /// Harbor's accounts, when it keeps them.
    pub fn accounts(&self) -> Option<&Accounts> {
        self.built.accounts.as_ref()
    }

    /// Serves until `shutdown` completes: the listener, the admin socket if any, and the
    /// garbage collection schedule; then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        let Server { listener, built, .. } = self;
        let schedule = built.gc.as_ref().and_then(|gc| gc.schedule());
        let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
        let admin = match &built.admin {
            Some((path, service)) => Some(spawn_admin(path, service.clone(), built.server.clone(), admin_stopped)?),
            None => None,
        };
        let served = crate::server::serve(listener, built.service.clone(), built.server.clone(), shutdown).await;
        let _ = stop_admin.send(true);
        if let Some(task) = admin {
            let _ = task.await;
        }
        if let Some((path, _)) = &built.admin {
            let _ = std::fs::remove_file(path);
        }
        if let Some(task) = schedule {
            task.abort();
        }
        drop(built);
        served
    }
}

#[cfg(unix)]
fn spawn_admin(
    path: &Path,
    service: RegistryService,
    options: ServerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    use std::os::unix::fs::PermissionsExt;
    // A socket left by a server that was killed: nobody listens on it any more.
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let options = ServerOptions { tls: None, ..options };
    Ok(tokio::spawn(crate::server::serve_unix(listener, service, options, async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    })))
}

#[cfg(not(unix))]
fn spawn_admin(
    _: &Path,
    _: RegistryService,
    _: ServerOptions,
    _: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    Err(std::io::Error::other("the admin socket needs Unix domain sockets"))
}
