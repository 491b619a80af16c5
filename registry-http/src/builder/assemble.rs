//! Turning the builder's choices into stores, accounts, tokens and the service stack.

use std::path::PathBuf;
use std::sync::Arc;

use registry_auth::{
    AccessPolicy, AccountStore, Accounts, AuthError, Authenticator, Identity, TokenIssuer, TokenKey, TokenService,
    TokenVerifier,
};
use registry_core::{Action, Scope, SharedClock};
use registry_platform::{Platform, PlatformOptions};
use registry_storage::Registry;
use tokio::net::{TcpListener, ToSocketAddrs};

use super::{Auth, BuildError, RegistryBuilder, Server, Storage};
use crate::api::{Api, Callers};
use crate::distribution::Settings;
use crate::server::ServerOptions;
use crate::service::{Parts, RegistryService, assemble};
use crate::token::{ISSUER, TOKEN_PATH, TokenAuth};
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

/// Connections the kernel holds for the server before it accepts them (tokio's default is 1,024;
/// the kernel caps it at `net.core.somaxconn`). A storm of thousands of clients connecting at once
/// otherwise overflows the queue, and each dropped SYN costs its client a second or more.
const BACKLOG: u32 = 8192;

/// Binds the first address of `addr` that binds, with [`BACKLOG`].
async fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for at in tokio::net::lookup_host(addr).await? {
        let socket = if at.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        // As TcpListener::bind does: a restarted server binds while old connections linger.
        socket.set_reuseaddr(true)?;
        match socket.bind(at).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")))
}

impl RegistryBuilder {
    /// Binds `addr` and assembles the server; it serves once [`Server::serve`] runs.
    pub async fn bind(self, addr: impl ToSocketAddrs + std::fmt::Display) -> Result<Server, BuildError> {
        let text = addr.to_string();
        let listener = listen(addr).await.map_err(|source| BuildError::Bind { addr: text.clone(), source })?;
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
        let (base, host) = match &self.external_url {
            Some(url) => {
                let host = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or_default().to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) || host.is_empty() {
                    return Err(BuildError::Config(format!(
                        "external_url {url:?}: use the http:// or https:// URL clients reach the registry at"
                    )));
                }
                (url.clone(), host)
            }
            None => (format!("{scheme}://{addr}"), addr.to_string()),
        };
        let built = self.assemble(&base, &host).await?;
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
        std::mem::forget(built.platform.start_workers());
        built.admin.map(|(_, service)| service).ok_or_else(|| BuildError::Config("no management API to serve".into()))
    }

    async fn assemble(self, base: &str, host: &str) -> Result<Built, BuildError> {
        let service_name = self.service_name.clone().unwrap_or_else(|| "registry".into());
        let clock = self.clock.clone().unwrap_or_else(registry_core::time::system_clock);
        let Opened { registry, accounts: accounts_store, data_dir, guard, name: storage_name } =
            self.open_storage(&clock)?;
        let secret_key = match (&self.secret_key, &data_dir) {
            (Some(key), _) => key.clone(),
            (None, Some(dir)) => SecretKey::load_or_create(&dir.join(SECRET_KEY_FILE)).map_err(seal_err)?,
            (None, None) => SecretKey::generate().map_err(seal_err)?,
        };
        // Harbor's accounts sign users in through the LDAP directory or the OIDC provider while
        // the settings say so.
        let directory = |accounts: Accounts| {
            accounts.with_directory(registry_platform::signin::SignIn::new(
                registry.metadata_store().clone(),
                Some(secret_key.clone()),
            ))
        };
        let (accounts, authenticator, policy, external) = match self.auth {
            Auth::Off { .. } => (None, None, None, None),
            Auth::Harbor => {
                let store = accounts_store.ok_or_else(|| {
                    BuildError::Config(
                        "harbor_accounts needs memory or embedded storage; pass accounts(…) instead".into(),
                    )
                })?;
                let accounts = directory(Accounts::new(store).with_clock(clock.clone()));
                let a: Arc<Accounts> = Arc::new(accounts.clone());
                (Some(accounts), Some(a.clone() as Arc<dyn Authenticator>), Some(a as Arc<dyn AccessPolicy>), None)
            }
            Auth::Accounts(accounts) => {
                let accounts = directory(accounts);
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
        // Tag immutability, content trust and vulnerability prevention: the engine asks the rules
        // of a repository's project (kept with the policies) before a tag moves or goes, and
        // before a pull.
        #[cfg(feature = "scanning")]
        let scan_cache = registry_platform::scan::cache::ScanCache::new(registry.metadata_store().clone());
        let trust = accounts.as_ref().map(|accounts| {
            registry_platform::trust::ContentTrust::new(
                registry.metadata_store().clone(),
                registry.blob_store().clone(),
                accounts.clone(),
                registry.clock().clone(),
            )
        });
        #[cfg(feature = "scanning")]
        let prevention = accounts.as_ref().map(|accounts| {
            registry_platform::scan::prevention::Prevention::new(
                scan_cache.clone(),
                accounts.clone(),
                registry.clock().clone(),
            )
        });
        let registry = match (&accounts, &trust) {
            (Some(accounts), Some(trust)) => {
                let rules = registry_platform::immutability::ProjectRules::new(
                    registry.metadata_store().clone(),
                    accounts.clone(),
                );
                // Harbor's rules: immutable tags, pull policies, and a deleted artifact takes its
                // accessories along on every path (the API, `DELETE /v2/…/manifests/<digest>`).
                let registry =
                    registry.with_protections(rules).with_pull_policies(trust.clone()).with_accessory_deletion(true);
                #[cfg(feature = "scanning")]
                let registry = match &prevention {
                    Some(prevention) => registry.with_pull_policies(prevention.clone()),
                    None => registry,
                };
                registry
            }
            _ => registry,
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
                let made = match self.certificate_der {
                    Some(_) => None,
                    None => own_certificate(&key)?,
                };
                let der = self.certificate_der.or_else(|| made.as_ref().map(|(_, der)| der.clone()));
                certificate_pem = made.map(|(pem, _)| pem);
                let mut issuer =
                    TokenIssuer::new(key.clone(), ISSUER, self.token_lifetime).with_kid_format(self.kid_format);
                if self.x5c {
                    let der = der.ok_or_else(|| {
                        BuildError::Config(
                            "tokens with x5c need a certificate: pass token_certificate, or build with the `x5c` \
                             feature"
                                .into(),
                        )
                    })?;
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
        let metrics = match self.metrics || self.metrics_addr.is_some() {
            true => Some(crate::metrics::fresh().ok_or_else(|| {
                BuildError::Config("metrics were asked for, but this build lacks the `metrics` feature".into())
            })?),
            false => None,
        };
        #[cfg(feature = "webhooks")]
        let (attempts, backoff) = self.webhook_retry;
        #[cfg(feature = "scanning")]
        let scanning = accounts.as_ref().filter(|_| !self.token_only).map(|accounts| {
            registry_platform::scan::jobs::Scanning::new(
                &registry,
                scan_cache.clone(),
                registry_platform::scan::jobs::ScanningOptions {
                    accounts: accounts.clone(),
                    key: secret_key.clone(),
                    tokens: token.as_ref().and_then(|t| t.issuer.clone()),
                    registry_url: self.scanner_registry_url.clone().unwrap_or_else(|| base.to_owned()),
                    timeout: self.scan_timeout,
                },
            )
        });
        let platform = Platform::new(
            &registry,
            PlatformOptions {
                gc: self.gc.clone(),
                gc_interval: self.gc_interval,
                gc_observer: metrics.clone().map(|m| -> registry_platform::GcObserver {
                    Arc::new(move |r: &registry_storage::GcReport| m.collected(r.bytes_freed + r.upload_bytes_freed))
                }),
                job_lease: self.job_lease,
                job_poll: self.job_poll,
                retention: self.retention,
                worker: registry_platform::platform::default_worker(),
                syslog: !self.token_only,
                accounts: accounts.clone().filter(|_| !self.token_only),
                #[cfg(feature = "webhooks")]
                webhooks: accounts.as_ref().filter(|_| !self.token_only).map(|accounts| {
                    registry_platform::platform::Webhooks {
                        accounts: accounts.clone(),
                        key: secret_key.clone(),
                        registry_host: host.to_owned(),
                        attempts,
                        backoff,
                    }
                }),
                #[cfg(feature = "scanning")]
                scanning: scanning.clone(),
                #[cfg(feature = "replication")]
                replication: accounts.as_ref().filter(|_| !self.token_only).map(|_| secret_key.clone()),
            },
        );
        if let Some(metrics) = &metrics {
            metrics.watch_jobs(platform.jobs());
            if let Some(source) = &self.allocator_stats {
                metrics.watch_allocator(source.clone());
            }
        }
        let additions = Arc::new(registry_platform::additions::Additions::new(Default::default()));
        let gc = platform.gc().clone();
        let api = (!self.token_only).then(|| {
            Arc::new(Api {
                registry: registry.clone(),
                accounts: accounts.clone(),
                policy: policy.clone(),
                gc: Some(gc.clone()),
                jobs: Some(platform.jobs().clone()),
                info: crate::api::system::Info {
                    external_url: base.to_owned(),
                    registry_url: host.to_owned(),
                    storage: storage_name.to_owned(),
                    auth_mode: if accounts.is_some() { "db_auth".into() } else { "custom".into() },
                },
                additions: additions.clone(),
                secret_key: Some(secret_key.clone()),
                trust: trust.clone(),
                #[cfg(feature = "scanning")]
                scanning: scanning.clone(),
                #[cfg(feature = "replication")]
                registry_health: quick_cache::sync::Cache::new(1024),
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
                base: base.to_owned(),
                key: secret_key.clone(),
            })
        });
        // Proxy-cache projects, where Harbor's accounts say which projects front which registry.
        #[cfg(feature = "replication")]
        let proxy = accounts.as_ref().filter(|_| !self.token_only).map(|accounts| {
            registry_platform::proxy::ProxyCache::new(registry.clone(), accounts.clone(), secret_key.clone())
        });
        if let Some(metrics) = &metrics {
            // The caches beside the engine's, read at each scrape (the engine's come with it).
            let (accounts, token, trust, additions) =
                (accounts.clone(), token.clone(), trust.clone(), additions.clone());
            #[cfg(feature = "scanning")]
            let (scan_cache, prevention) = (scan_cache.clone(), prevention.clone());
            #[cfg(feature = "replication")]
            let proxy = proxy.clone();
            metrics.watch_caches(Arc::new(move || {
                let mut stats = Vec::new();
                #[cfg(any(feature = "webhooks", feature = "scanning", feature = "replication"))]
                stats.push(registry_platform::ssrf::cache_stats());
                stats.extend(accounts.iter().flat_map(Accounts::cache_stats));
                stats.extend(token.iter().map(|t| t.verifier.cache_stats()));
                stats.extend(trust.iter().flat_map(|t| t.cache_stats()));
                stats.extend(additions.cache_stats());
                #[cfg(feature = "scanning")]
                {
                    stats.extend(scan_cache.cache_stats());
                    stats.extend(prevention.iter().map(|p| p.cache_stats()));
                }
                #[cfg(feature = "replication")]
                stats.extend(proxy.iter().map(|p| p.cache_stats()));
                stats
            }));
        }
        let parts = |api: Option<Arc<Api>>| Parts {
            #[cfg(feature = "replication")]
            proxy: proxy.clone(),
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
            platform,
            metrics: metrics.clone().zip(self.metrics_addr),
            admin,
            server: self.server,
            data_dir,
            _guard: guard,
        })
    }

    fn open_storage(&self, clock: &SharedClock) -> Result<Opened, BuildError> {
        #[cfg(feature = "embedded")]
        let embedded = |dir: &std::path::Path| -> Result<(Registry, Arc<dyn AccountStore>), BuildError> {
            let e = registry_redb::open_embedded(dir)?;
            let store = e.store.with_clock(clock.clone());
            let registry = Registry::new(Arc::new(e.blobs), Arc::new(store.clone()), self.limits.clone());
            Ok((registry.with_clock(clock.clone()), Arc::new(store)))
        };
        let opened = |registry, accounts, data_dir, name| Opened { registry, accounts, data_dir, guard: None, name };
        Ok(match &self.storage {
            #[cfg(feature = "embedded")]
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
                opened(registry, Some(Arc::new(store) as Arc<dyn AccountStore>), None, "memory")
            }
            #[cfg(not(feature = "embedded"))]
            Storage::Memory => {
                // Without redb, the memory stores; Harbor's accounts need a store of the caller's.
                let meta = registry_storage::MemoryMetadataStore::with_clock(clock.clone());
                let registry = Registry::new(
                    Arc::new(registry_storage::MemoryBlobStore::new()),
                    Arc::new(meta),
                    self.limits.clone(),
                )
                .with_clock(clock.clone());
                opened(registry, None, None, "memory")
            }
            Storage::Registry(registry) => opened(registry.clone(), None, None, "custom"),
            #[cfg(feature = "embedded")]
            Storage::Embedded(dir) => {
                let (registry, store) = embedded(dir)?;
                opened(registry, Some(store), Some(dir.clone()), "filesystem")
            }
            #[cfg(feature = "embedded")]
            Storage::TempDir => {
                let temp =
                    tempfile::tempdir().map_err(|source| BuildError::Bind { addr: "temp dir".into(), source })?;
                let (registry, store) = embedded(temp.path())?;
                let dir = temp.path().to_owned();
                Opened { guard: Some(Box::new(temp)), ..opened(registry, Some(store), Some(dir), "filesystem") }
            }
        })
    }
}

/// The stores a builder's storage choice opened.
struct Opened {
    registry: Registry,
    /// Harbor's accounts, when the stores keep them.
    accounts: Option<Arc<dyn AccountStore>>,
    /// The data directory, when there is one (the secret key is kept there).
    data_dir: Option<PathBuf>,
    /// Kept while the server lives (a temporary directory is removed when it is dropped).
    guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// What the storage is called in `/systeminfo`.
    name: &'static str,
}

/// A self-signed certificate of the token key (PEM, DER); none in a build without `x5c`.
fn own_certificate(key: &TokenKey) -> Result<Option<(String, Vec<u8>)>, BuildError> {
    #[cfg(feature = "x5c")]
    return Ok(Some(key.certificate(ISSUER)?));
    #[cfg(not(feature = "x5c"))]
    {
        let _ = key;
        Ok(None)
    }
}

/// The key file of an embedded data directory.
const SECRET_KEY_FILE: &str = "secret.key";

fn seal_err(e: registry_auth::SealError) -> BuildError {
    BuildError::Config(e.to_string())
}

/// What assembly produced.
pub(crate) struct Built {
    pub(crate) service: RegistryService,
    pub(crate) registry: Registry,
    pub(crate) accounts: Option<Accounts>,
    pub(crate) token: Option<Arc<TokenAuth>>,
    pub(crate) token_key: Option<TokenKey>,
    pub(crate) certificate_pem: Option<String>,
    pub(crate) platform: Platform,
    /// The metrics and the address of their own listener, if they have one.
    pub(crate) metrics: Option<(Arc<crate::metrics::Metrics>, std::net::SocketAddr)>,
    pub(crate) admin: Option<(PathBuf, RegistryService)>,
    pub(crate) server: ServerOptions,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}
