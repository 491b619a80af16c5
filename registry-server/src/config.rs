//! The reference server's configuration: a TOML file, overridden by environment variables, overridden
//! by command-line flags (the binary applies the last two).
//!
//! ```toml
//! listen = "127.0.0.1:5000"      # address to serve on
//! data_dir = "./registry-data"   # blobs, uploads and metadata.redb (metadata and accounts)
//! admin_socket = ""              # the local admin socket; default <data_dir>/admin.sock
//! log_level = "info"             # tracing filter: error, warn, info, debug, trace or a directive list
//! external_url = ""              # the URL clients reach the registry at behind a proxy (Harbor's
//!                                # external_url): token realm, OIDC redirects; default the listen address
//!
//! [auth]
//! enabled = true                 # token authentication (false: anyone may do anything; development only)
//! service = "registry"           # the service name: tokens' audience
//! realm = ""                     # token endpoint URL; default http://<listen address>/auth/token
//! token_lifetime_secs = 300      # access token lifetime (at least 60)
//! also_issue_for = []            # other registries' service names this token service issues for
//! algorithm = "ES256"           # signing algorithm of the key made on the first start: ES256 or RS256
//! kid_format = "rfc7638"         # how tokens name their key: "rfc7638" or "libtrust"
//! x5c = true                     # send the key's certificate chain in tokens (distribution verifies it)
//! trusted_keys = ""              # a JWKS file: trust an external token service (set realm too)
//! issuer = "registry-token-service"  # the external token service's `iss`
//!
//! [tls]                          # serve HTTPS (both or neither)
//! cert = "/etc/registry/cert.pem" # PEM certificate chain
//! key = "/etc/registry/key.pem"   # PEM private key
//!
//! [limits]
//! max_manifest_bytes = 4194304   # largest manifest accepted (413 beyond)
//! max_page = 1000                # largest page of tags or repositories
//! max_header_bytes = 65536       # largest request head
//! header_read_timeout_secs = 30  # time to send a request's headers
//! body_read_timeout_secs = 60    # longest silence within a request body (a stalled client)
//! idle_timeout_secs = 120        # longest a keep-alive connection waits for its next request
//! write_timeout_secs = 60        # longest wait for a client to take response bytes
//! max_concurrent_uploads = 256   # upload requests streaming at once (429 TOOMANYREQUESTS beyond)
//! shutdown_grace_secs = 30       # time in-flight requests get on shutdown
//!
//! [database]                     # where metadata and accounts live
//! url = ""                       # postgres://user:password@host:5432/db: PostgreSQL, shared by replicas
//!                                # (empty: the embedded redb file in data_dir); also REGISTRY_DATABASE_URL
//! pool_size = 16                 # connections per replica
//! ca_file = ""                   # with ?sslmode=require in the URL: a private CA's PEM to trust
//! idle_transaction_timeout_secs = 15  # a session stalled in a transaction is ended, its locks freed
//!
//! [storage]                      # where blobs live
//! type = "filesystem"            # "filesystem" (data_dir) or "s3" (any S3-compatible server)
//! bucket = ""                    # s3: the bucket (must exist)
//! prefix = ""                    # s3: a key prefix, to share a bucket
//! endpoint = ""                  # s3: e.g. http://127.0.0.1:3900 (empty: AWS)
//! region = ""                    # s3: e.g. us-east-1, or garage
//! path_style = false             # s3: endpoint/bucket/key addressing (most self-hosted servers)
//! access_key_id = ""             # s3: else AWS_ACCESS_KEY_ID or the AWS credential chain
//! secret_access_key = ""         # s3: else AWS_SECRET_ACCESS_KEY or the chain
//! redirect = false               # s3: send blob downloads to presigned URLs
//! buffered_writes = false        # filesystem: write uploads through the page cache (a pull right
//!                                # after a push reads from memory; about 0.5 CPU-s more per GiB)
//! part_size_mib = 8              # s3: multipart part size (at least 5)
//! cache_mib = 0                  # keep up to this many MiB of pulled blobs on local disk and serve
//!                                # them from there (0: none), for replicas on s3 or on a shared
//!                                # filesystem; verified copies, least recently read evicted first
//! cache_dir = ""                 # where those copies live; default <data_dir>/blob-cache
//!
//! [portal]
//! enabled = true                 # the web portal at / (sign in with the same accounts)
//!
//! [scanning]                     # vulnerability scanning through scanner adapters (register them in the API or portal)
//! registry_url = ""              # the registry's URL as adapters reach it; default http(s)://<listen address>
//! timeout_secs = 1800            # longest a scan may take (and its pull credential lasts)
//!
//! [gc]                           # online garbage collection (also `registry gc` and the API)
//! interval_secs = 86400          # run every so often while serving; 0: never on a schedule
//! grace_secs = 3600              # keep anything younger, referenced or not (uploads in flight)
//! delete_untagged = false        # scheduled runs also delete untagged manifests
//! upload_expiry_secs = 86400     # uploads not written to for this long are abandoned
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use registry_http::server::tls::TlsError;
use serde::Deserialize;

/// The server's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Address to serve on.
    pub(crate) listen: SocketAddr,
    /// Where blobs, uploads and the metadata database live.
    pub(crate) data_dir: PathBuf,
    /// The local admin socket (the account commands reach a running server through it); empty
    /// for `<data_dir>/admin.sock`.
    pub(crate) admin_socket: Option<PathBuf>,
    /// The tracing filter.
    pub(crate) log_level: String,
    /// The URL clients reach the registry at, when not the listen address (empty: that).
    pub(crate) external_url: String,
    /// Authentication.
    pub(crate) auth: AuthConfig,
    /// HTTPS.
    pub(crate) tls: TlsTable,
    /// Limits.
    pub(crate) limits: LimitsConfig,
    /// Garbage collection.
    pub(crate) gc: GcConfig,
    /// Where metadata and accounts live.
    pub(crate) database: DatabaseConfig,
    /// Where blobs live.
    pub(crate) storage: StorageConfig,
    /// Prometheus metrics.
    pub(crate) metrics: MetricsConfig,
    /// The event stream.
    pub(crate) events: EventsConfig,
    /// The web portal.
    pub(crate) portal: PortalConfig,
    /// Vulnerability scanning.
    pub(crate) scanning: ScanningConfig,
}

/// The `[scanning]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ScanningConfig {
    /// The registry's URL as scanner adapters reach it (empty: the listen address).
    pub(crate) registry_url: String,
    /// Longest a scan may take.
    pub(crate) timeout_secs: u64,
}

impl Default for ScanningConfig {
    fn default() -> Self {
        ScanningConfig { registry_url: String::new(), timeout_secs: 1800 }
    }
}

/// The `[portal]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PortalConfig {
    /// Serve the web portal at `/`.
    pub(crate) enabled: bool,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig { enabled: true }
    }
}

/// The `[events]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EventsConfig {
    /// Record an event per manifest pull (for the audit log and PULL_ARTIFACT webhooks).
    pub(crate) record_pulls: bool,
    /// Days events (the audit log) are kept.
    pub(crate) retention_days: u64,
    /// Days finished jobs (GC history, webhook executions) are kept.
    pub(crate) job_retention_days: u64,
    /// Of each kind of job (webhook deliveries, collections, replications, ...), at most this
    /// many finished ones are kept, the newest.
    pub(crate) jobs_kept_per_kind: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { record_pulls: true, retention_days: 90, job_retention_days: 30, jobs_kept_per_kind: 10_000 }
    }
}

impl EventsConfig {
    /// The housekeeping job's retention.
    pub(crate) fn retention(&self) -> registry_platform::housekeeping::Retention {
        let days = |n: u64| std::time::Duration::from_secs(n.max(1) * 86_400);
        registry_platform::housekeeping::Retention {
            events: days(self.retention_days),
            jobs: days(self.job_retention_days),
            jobs_per_kind: self.jobs_kept_per_kind.max(1),
        }
    }
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsConfig {
    /// Serve `/metrics` on the main listener.
    pub(crate) enabled: bool,
    /// Serve `/metrics` on a listener of its own at this address (as Harbor's `:9090`).
    pub(crate) listen: Option<SocketAddr>,
}

/// The `[database]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DatabaseConfig {
    /// A PostgreSQL URL; empty for the embedded database.
    pub(crate) url: String,
    /// Connections in the pool.
    pub(crate) pool_size: usize,
    /// Certificate authorities to trust for `sslmode=require` (a private CA).
    pub(crate) ca_file: Option<PathBuf>,
    /// Seconds the database keeps a session idle inside a transaction before ending it (and
    /// releasing its locks): what a replica with a stalled connection can hold up the others.
    pub(crate) idle_transaction_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: String::new(), pool_size: 16, ca_file: None, idle_transaction_timeout_secs: 15 }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("DatabaseConfig")
            .field("url", &if self.url.is_empty() { "" } else { "<set>" })
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("idle_transaction_timeout_secs", &self.idle_transaction_timeout_secs)
            .finish()
    }
}

/// `storage.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageType {
    /// Files under the data directory.
    #[default]
    Filesystem,
    /// An S3-compatible bucket.
    S3,
}

/// The `[storage]` table.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageConfig {
    /// Filesystem or S3.
    #[serde(rename = "type")]
    pub(crate) kind: StorageType,
    /// The bucket.
    pub(crate) bucket: String,
    /// A key prefix.
    pub(crate) prefix: String,
    /// The endpoint (empty: AWS).
    pub(crate) endpoint: String,
    /// The region.
    pub(crate) region: String,
    /// Path-style addressing.
    pub(crate) path_style: bool,
    /// The access key id (empty: the AWS chain).
    pub(crate) access_key_id: String,
    /// The secret key (empty: the AWS chain).
    pub(crate) secret_access_key: String,
    /// Redirect blob downloads to presigned URLs.
    pub(crate) redirect: bool,
    /// Filesystem: uploads through the page cache instead of `O_DIRECT`.
    pub(crate) buffered_writes: bool,
    /// Multipart part size in MiB (0: the default).
    pub(crate) part_size_mib: u64,
    /// MiB of pulled blobs kept on local disk (0: no cache).
    pub(crate) cache_mib: u64,
    /// The local cache's directory (empty: `<data_dir>/blob-cache`).
    pub(crate) cache_dir: PathBuf,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("type", &self.kind)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &if self.secret_access_key.is_empty() { "" } else { "<redacted>" })
            .field("redirect", &self.redirect)
            .field("buffered_writes", &self.buffered_writes)
            .field("part_size_mib", &self.part_size_mib)
            .field("cache_mib", &self.cache_mib)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl StorageConfig {
    /// Where pulled blobs are cached and the bound in bytes, when a cache is configured.
    pub(crate) fn cache(&self, data_dir: &std::path::Path) -> Option<(PathBuf, u64)> {
        if self.cache_mib == 0 {
            return None;
        }
        let dir =
            if self.cache_dir.as_os_str().is_empty() { data_dir.join("blob-cache") } else { self.cache_dir.clone() };
        Some((dir, self.cache_mib.saturating_mul(1 << 20)))
    }

    /// The object store's settings.
    pub(crate) fn s3(&self) -> registry_object_store::S3Config {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        registry_object_store::S3Config {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            endpoint: some(&self.endpoint),
            region: some(&self.region),
            path_style: self.path_style,
            access_key_id: some(&self.access_key_id),
            secret_access_key: some(&self.secret_access_key),
            session_token: None,
            redirect: self.redirect,
            part_size: (self.part_size_mib > 0).then_some(self.part_size_mib << 20),
        }
    }
}

/// The `[gc]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GcConfig {
    /// Seconds between scheduled runs; 0 for none.
    pub(crate) interval_secs: u64,
    /// Seconds objects are kept whatever references them.
    pub(crate) grace_secs: u64,
    /// Whether scheduled runs delete untagged manifests.
    pub(crate) delete_untagged: bool,
    /// Seconds after which an upload not written to is abandoned.
    pub(crate) upload_expiry_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        let defaults = registry_storage::GcOptions::default();
        GcConfig {
            interval_secs: 24 * 3600,
            grace_secs: defaults.grace.as_secs(),
            delete_untagged: false,
            upload_expiry_secs: defaults.upload_expiry.as_secs(),
        }
    }
}

impl GcConfig {
    /// The options of scheduled runs (and the defaults of the others).
    pub(crate) fn options(&self) -> registry_storage::GcOptions {
        registry_storage::GcOptions {
            grace: Duration::from_secs(self.grace_secs),
            delete_untagged: self.delete_untagged,
            dry_run: false,
            upload_expiry: Duration::from_secs(self.upload_expiry_secs),
        }
    }
}

/// The `[tls]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsTable {
    /// PEM certificate chain.
    pub(crate) cert: Option<PathBuf>,
    /// PEM private key.
    pub(crate) key: Option<PathBuf>,
}

/// `auth.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum AlgorithmConfig {
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

/// `auth.kid_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KidFormatConfig {
    /// RFC 7638 thumbprint.
    Rfc7638,
    /// libtrust key id.
    Libtrust,
}

impl From<KidFormatConfig> for registry_auth::KidFormat {
    fn from(c: KidFormatConfig) -> Self {
        match c {
            KidFormatConfig::Rfc7638 => registry_auth::KidFormat::Rfc7638,
            KidFormatConfig::Libtrust => registry_auth::KidFormat::Libtrust,
        }
    }
}

/// The `[auth]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthConfig {
    /// Whether token authentication is on.
    pub(crate) enabled: bool,
    /// The service name (tokens' audience).
    pub(crate) service: String,
    /// The token endpoint URL given to clients; empty for `http://<listen address>/auth/token`.
    pub(crate) realm: String,
    /// Access token lifetime in seconds.
    pub(crate) token_lifetime_secs: u64,
    /// Other registries' service names the built-in token service also issues tokens for.
    pub(crate) also_issue_for: Vec<String>,
    /// Algorithm of the signing key created on the first start: `ES256` (default) or `RS256`.
    pub(crate) algorithm: AlgorithmConfig,
    /// How tokens name their key: `rfc7638` (default) or `libtrust`.
    pub(crate) kid_format: KidFormatConfig,
    /// Whether tokens carry the key's certificate chain (`x5c`).
    pub x5c: bool,
    /// A JWKS file with the public keys of an external token service (`registry token-server`);
    /// when set, this server issues no tokens and holds no accounts.
    pub(crate) trusted_keys: Option<PathBuf>,
    /// The `iss` of the tokens to accept.
    pub(crate) issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            service: "registry".into(),
            realm: String::new(),
            token_lifetime_secs: 300,
            also_issue_for: Vec::new(),
            algorithm: AlgorithmConfig::ES256,
            kid_format: KidFormatConfig::Rfc7638,
            x5c: true,
            trusted_keys: None,
            issuer: registry_http::token::ISSUER.into(),
        }
    }
}

/// The `[limits]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    /// Largest manifest accepted, in bytes.
    pub(crate) max_manifest_bytes: usize,
    /// Largest page of tags or repositories.
    pub(crate) max_page: usize,
    /// Largest request head, in bytes.
    pub(crate) max_header_bytes: usize,
    /// Seconds a client has to send a request's headers.
    pub(crate) header_read_timeout_secs: u64,
    /// Seconds a request body may go without a byte.
    pub(crate) body_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait for its next request.
    pub(crate) idle_timeout_secs: u64,
    /// Seconds a response write may wait for the client.
    pub(crate) write_timeout_secs: u64,
    /// Upload requests (with a body) streaming at once; 0 for no limit.
    pub(crate) max_concurrent_uploads: usize,
    /// Seconds in-flight requests get on shutdown.
    pub(crate) shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./registry-data"),
            admin_socket: None,
            log_level: "info".into(),
            external_url: String::new(),
            auth: AuthConfig::default(),
            tls: TlsTable::default(),
            limits: LimitsConfig::default(),
            gc: GcConfig::default(),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            metrics: MetricsConfig::default(),
            events: EventsConfig::default(),
            portal: PortalConfig::default(),
            scanning: ScanningConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let engine = registry_storage::Limits::default();
        let server = registry_http::ServerOptions::default();
        LimitsConfig {
            max_manifest_bytes: engine.max_manifest_bytes,
            max_page: engine.max_page,
            max_header_bytes: server.max_header_bytes,
            header_read_timeout_secs: server.header_read_timeout.as_secs(),
            body_read_timeout_secs: server.timeouts.body_read.as_secs(),
            idle_timeout_secs: server.timeouts.idle.as_secs(),
            write_timeout_secs: server.timeouts.write.as_secs(),
            max_concurrent_uploads: registry_http::layers::admission::DEFAULT_MAX_CONCURRENT_UPLOADS,
            shutdown_grace_secs: server.shutdown_grace.as_secs(),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this schema.
    #[error("invalid configuration: {0}")]
    Parse(String),
}

impl Config {
    /// Parses a configuration from TOML text; missing keys take their defaults, unknown keys are
    /// errors.
    pub(crate) fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Reads a configuration file.
    pub(crate) fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text)
    }

    /// The engine's limits.
    pub(crate) fn engine_limits(&self) -> registry_storage::Limits {
        registry_storage::Limits {
            max_manifest_bytes: self.limits.max_manifest_bytes,
            max_page: self.limits.max_page.max(1),
        }
    }

    /// The admin socket's path.
    pub(crate) fn admin_socket(&self) -> PathBuf {
        self.admin_socket.clone().unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }

    /// The server's connection options, with the TLS configuration loaded when `[tls]` is set.
    pub(crate) fn server_options(&self) -> Result<registry_http::ServerOptions, TlsError> {
        let tls = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Some(registry_http::TlsConfig::from_files(cert, key)?),
            (None, None) => None,
            _ => return Err(TlsError::new("[tls] needs both cert and key")),
        };
        Ok(registry_http::ServerOptions {
            tls,
            header_read_timeout: Duration::from_secs(self.limits.header_read_timeout_secs.max(1)),
            max_header_bytes: self.limits.max_header_bytes,
            shutdown_grace: Duration::from_secs(self.limits.shutdown_grace_secs),
            timeouts: registry_http::Timeouts {
                body_read: Duration::from_secs(self.limits.body_read_timeout_secs.max(1)),
                idle: Duration::from_secs(self.limits.idle_timeout_secs.max(1)),
                write: Duration::from_secs(self.limits.write_timeout_secs.max(1)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_toml("").expect("empty is all defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(c.limits.max_manifest_bytes, 4 << 20);
        assert!(c.auth.enabled, "secure by default");
        let c = Config::from_toml("listen = \"127.0.0.1:6000\"\n[limits]\nmax_page = 5\n").expect("valid");
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.engine_limits().max_page, 5);
        assert_eq!(c.gc.interval_secs, 86400, "collected daily by default");
        let c = Config::from_toml("[gc]\ninterval_secs = 0\ngrace_secs = 60\ndelete_untagged = true\n").expect("valid");
        assert_eq!(c.gc.interval_secs, 0);
        let options = c.gc.options();
        assert_eq!((options.grace.as_secs(), options.delete_untagged, options.dry_run), (60, true, false));
    }

    #[test]
    fn tls_needs_both_files_and_loads_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write");
        let text = format!("[tls]\ncert = {cert_path:?}\nkey = {key_path:?}\n");
        let options = Config::from_toml(&text).expect("valid").server_options().expect("loads");
        assert!(options.tls.is_some());
        let only_cert = Config::from_toml(&format!("[tls]\ncert = {cert_path:?}\n")).expect("valid");
        assert!(only_cert.server_options().is_err(), "cert without key");
        let wrong = Config::from_toml(&format!("[tls]\ncert = {key_path:?}\nkey = {cert_path:?}\n")).expect("valid");
        assert!(wrong.server_options().is_err(), "swapped files");
        assert!(Config::default().server_options().expect("plain").tls.is_none());
    }

    #[test]
    fn connection_timeouts_and_the_upload_limit_load() {
        let c = Config::from_toml(
            "[limits]\nbody_read_timeout_secs = 5\nidle_timeout_secs = 7\nwrite_timeout_secs = 9\nmax_concurrent_uploads = 3\n",
        )
        .expect("valid");
        let timeouts = c.server_options().expect("options").timeouts;
        assert_eq!((timeouts.body_read.as_secs(), timeouts.idle.as_secs(), timeouts.write.as_secs()), (5, 7, 9));
        assert_eq!(c.limits.max_concurrent_uploads, 3);
        let defaults = Config::default().server_options().expect("options").timeouts;
        assert_eq!(defaults, registry_http::Timeouts::default());
    }

    #[test]
    fn database_and_storage_load_and_keep_their_secrets() {
        let c = Config::from_toml("").expect("defaults");
        assert!(c.database.url.is_empty(), "the embedded database by default");
        assert_eq!(c.storage.kind, StorageType::Filesystem);
        let c = Config::from_toml(
            "[database]\nurl = \"postgres://u:hunter2@db/registry\"\n[storage]\ntype = \"s3\"\nbucket = \"b\"\n\
             endpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\npath_style = true\n\
             secret_access_key = \"s3cr3t\"\npart_size_mib = 16\n",
        )
        .expect("valid");
        assert_eq!(c.storage.kind, StorageType::S3);
        let s3 = c.storage.s3();
        assert_eq!((s3.bucket.as_str(), s3.region.as_deref(), s3.part_size), ("b", Some("garage"), Some(16 << 20)));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cr3t"), "no secret in Debug: {shown}");
        assert!(Config::from_toml("[storage]\ntype = \"ftp\"\n").is_err());
        let data = std::path::Path::new("/var/lib/registry");
        assert_eq!(c.storage.cache(data), None, "no blob cache by default");
        let cached = Config::from_toml("[storage]\ntype = \"s3\"\ncache_mib = 2048\n").expect("valid");
        assert_eq!(cached.storage.cache(data), Some((data.join("blob-cache"), 2048 << 20)));
        let elsewhere =
            Config::from_toml("[storage]\ntype = \"s3\"\ncache_mib = 1\ncache_dir = \"/fast/cache\"\n").expect("valid");
        assert_eq!(elsewhere.storage.cache(data), Some((PathBuf::from("/fast/cache"), 1 << 20)));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_toml("lisen = \"x\"").is_err());
        assert!(Config::from_toml("listen = 5").is_err());
    }
}
