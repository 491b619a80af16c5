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
//!
//! | module | what it holds |
//! |---|---|
//! | this one | the builder and its choices |
//! | `assemble` | turning the choices into stores, accounts, tokens and the service stack |
//! | `bound` | [`Server`]: a bound listener serving until shutdown, with the admin socket and the GC schedule |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use registry_auth::{AccessPolicy, Accounts, AuthError, Authenticator, KidFormat, PublicKey, TokenKey};
use registry_core::SharedClock;
use registry_storage::{BlobStore, GcOptions, Limits, MetadataStore, Registry};

use crate::layers::admission::DEFAULT_MAX_CONCURRENT_UPLOADS;
use crate::server::ServerOptions;
use crate::server::tls::TlsConfig;

mod assemble;
mod bound;

pub(crate) use assemble::Built;
pub use bound::Server;

/// Why a server could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A choice that cannot work (named in the message).
    #[error("{0}")]
    Config(String),
    /// The stores could not be opened.
    #[cfg(feature = "embedded")]
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
    #[cfg(feature = "embedded")]
    Embedded(PathBuf),
    #[cfg(feature = "embedded")]
    TempDir,
}

enum Auth {
    Off { allowed: bool },
    Harbor,
    Accounts(Accounts),
    Custom { authenticator: Option<Arc<dyn Authenticator>>, policy: Option<Arc<dyn AccessPolicy>> },
    External { realm: String, keys: Vec<PublicKey>, issuer: String },
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
    pub(crate) job_lease: Duration,
    pub(crate) secret_key: Option<registry_auth::SecretKey>,
    pub(crate) webhook_retry: (u32, Duration),
    pub(crate) scan_timeout: Duration,
    pub(crate) scanner_registry_url: Option<String>,
    pub(crate) external_url: Option<String>,
    pub(crate) metrics: bool,
    pub(crate) portal: bool,
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    pub(crate) allocator_stats: Option<crate::metrics::AllocatorStatsSource>,
    pub(crate) retention: registry_platform::housekeeping::Retention,
    pub(crate) job_poll: Duration,
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
            x5c: cfg!(feature = "x5c"),
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
            job_lease: Duration::from_secs(30),
            secret_key: None,
            webhook_retry: (10, Duration::from_secs(5)),
            scan_timeout: Duration::from_secs(30 * 60),
            scanner_registry_url: None,
            external_url: None,
            metrics: false,
            metrics_addr: None,
            allocator_stats: None,
            portal: false,
            retention: registry_platform::housekeeping::Retention::default(),
            job_poll: Duration::from_secs(1),
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
    /// accounts (`registry_redb::open_embedded`). (Feature `embedded`.)
    #[cfg(feature = "embedded")]
    pub fn embedded(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage = Storage::Embedded(dir.into());
        self
    }

    /// The embedded default in a temporary directory removed when the server stops. (Feature
    /// `embedded`.)
    #[cfg(feature = "embedded")]
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

    /// Whether tokens carry the key's certificate as `x5c` (default yes with the `x5c` feature,
    /// which makes the certificate from the key: distribution verifies
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

    /// How long a job's claim lasts without a heartbeat (default 30 s): a replica that dies
    /// mid-job has its job taken over this long after; and how often the queue is polled for
    /// jobs other replicas enqueued (default 1 s).
    pub fn jobs(mut self, lease: Duration, poll: Duration) -> Self {
        self.job_lease = lease;
        self.job_poll = poll;
        self
    }

    /// The key secrets kept at rest are sealed with (webhooks' `Authorization` headers and
    /// signing secrets). Default: `secret.key` in the embedded data directory (made at first
    /// start); a fresh key per process for memory storage and stores of the caller's, whose
    /// sealed secrets then do not survive a restart: replicas pass the key they share.
    pub fn secret_key(mut self, key: registry_auth::SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// Serve Prometheus metrics at `/metrics` on the main listener (off by default: they tell
    /// the registry's traffic to whoever can reach it; put the path behind your proxy's rules).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Serves the web portal at `/` (default off; the `registry` binary turns it on), with
    /// sessions for the browser on the management API (see [`crate::portal`]).
    pub fn portal(mut self, on: bool) -> Self {
        self.portal = on;
        self
    }

    /// How long events (the audit log) and finished jobs are kept (default 90 and 30 days);
    /// an hourly housekeeping job trims what is older.
    pub fn retention(mut self, retention: registry_platform::housekeeping::Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Serve Prometheus metrics at `/metrics` on a listener of their own at `addr` (Harbor's
    /// `:9090`), apart from the registry's traffic.
    pub fn metrics_address(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Where `/metrics` reads the process's allocator figures from (see
    /// [`crate::metrics::AllocatorStats`]); without it those two gauges stay 0. A program that sets
    /// its global allocator knows how to read it; the library cannot.
    pub fn allocator_stats(mut self, source: crate::metrics::AllocatorStatsSource) -> Self {
        self.allocator_stats = Some(source);
        self
    }

    /// Webhook deliveries: attempts before one fails for good (default 10), and the wait after
    /// the first failure, doubled at each further one (default 5 s).
    pub fn webhook_retry(mut self, attempts: u32, backoff: Duration) -> Self {
        self.webhook_retry = (attempts.max(1), backoff);
        self
    }

    /// How long a vulnerability scan may take (and the credential its scanner pulls with lasts);
    /// 30 minutes unless set.
    pub fn scan_timeout(mut self, timeout: Duration) -> Self {
        self.scan_timeout = timeout;
        self
    }

    /// The URL people and clients reach the registry at, when it is not the address it listens
    /// on (behind a proxy or load balancer; Harbor's `external_url`): the token realm, the
    /// portal's sign-in redirects and the URLs the API shows use it.
    pub fn external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The registry's URL as scanner adapters reach it (the server's own URL unless set: a
    /// scanner in another network may need another name).
    pub fn scanner_registry_url(mut self, url: impl Into<String>) -> Self {
        self.scanner_registry_url = Some(url.into());
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
}
