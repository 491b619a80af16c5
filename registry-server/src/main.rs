//! `registry`: the reference server.
//!
//! `registry serve` runs the registry on its embedded default: blobs on the filesystem and
//! metadata and accounts in one embedded redb database, both under the data directory, with token
//! authentication on. The account commands (`user`, `project`, `member`, `robot`) and `gc` send
//! management API requests to a running server through its admin socket, or, when none runs, to
//! the data directory opened in this process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use registry_auth::Accounts;
use registry_http::RegistryBuilder;
use tracing_subscriber::EnvFilter;

mod backend;
mod commands;
mod config;
mod data_dir;
mod local;
mod move_up;

/// The allocator. With glibc's, the embedded shape's resident memory grew without end under the
/// hour-long soak (68 to 350 MiB in 23 minutes) while the live heap stayed at 127 MiB:
/// `malloc_trim` gave the rest back, so glibc's arenas kept what the page cache and the upload
/// buffers freed. jemalloc returns freed pages to the system after a decay time (10 s), from a
/// background thread, so an idle server gives back what a busy hour took.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's own figures for `/metrics`: what the program holds against what jemalloc keeps
/// resident, so a rising RSS tells a filling heap from freed pages not yet returned.
fn allocator_stats() -> Option<registry_http::metrics::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot taken when the epoch advances.
    epoch::advance().ok()?;
    Some(registry_http::metrics::AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

use commands::{MemberCommand, ProjectCommand, RobotCommand, UserCommand};
use config::Config;
use local::Local;

#[derive(Parser)]
#[command(name = "registry", version, about = "An OCI Distribution registry with Harbor's accounts and API")]
struct Cli {
    #[command(flatten)]
    location: Location,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry.
    Serve(ServeArgs),
    /// Run the token service alone; registries then trust its public keys (`/auth/jwks`).
    TokenServer(TokenServerArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage project members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manage robot accounts.
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Collect garbage now (a running server also collects on its [gc] schedule).
    Gc(GcArgs),
    /// Quotas: `registry quota verify` recomputes every project's usage and reports drift.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Copy this (stopped) embedded registry into PostgreSQL and object storage, and compare.
    MoveUp(MoveUpArgs),
}

#[derive(Args)]
struct MoveUpArgs {
    /// The target's configuration: its [database] url and [storage] (an empty database).
    #[arg(long)]
    to: PathBuf,
}

#[derive(clap::Subcommand)]
enum QuotaCommand {
    /// Recompute every project's usage from what its repositories hold and compare it with the
    /// counters (exit status 1 on any drift).
    Verify,
}

#[derive(Args)]
struct GcArgs {
    /// Report what would be freed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete manifests no tag or index references.
    #[arg(long)]
    delete_untagged: bool,
    /// Keep anything younger than this many seconds [default: the [gc] grace_secs, 3600]; only
    /// when no server runs (a running server uses its own).
    #[arg(long)]
    grace_secs: Option<u64>,
}

/// Where the configuration and data are.
#[derive(Args)]
struct Location {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "REGISTRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory [default: ./registry-data].
    #[arg(long, env = "REGISTRY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL for metadata and accounts, shared by replicas [default: the embedded
    /// database in the data directory].
    #[arg(long, env = "REGISTRY_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where blobs live [default: filesystem].
    #[arg(long, env = "REGISTRY_STORAGE", global = true, value_enum)]
    storage: Option<config::StorageType>,
    /// S3 bucket (with --storage s3).
    #[arg(long, env = "REGISTRY_S3_BUCKET", global = true)]
    s3_bucket: Option<String>,
    /// S3 endpoint URL, for servers other than AWS.
    #[arg(long, env = "REGISTRY_S3_ENDPOINT", global = true)]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "REGISTRY_S3_REGION", global = true)]
    s3_region: Option<String>,
    /// S3 key prefix.
    #[arg(long, env = "REGISTRY_S3_PREFIX", global = true)]
    s3_prefix: Option<String>,
    /// S3 path-style addressing (most self-hosted servers).
    #[arg(long, env = "REGISTRY_S3_PATH_STYLE", global = true)]
    s3_path_style: Option<bool>,
}

impl Location {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &self.database_url {
            config.database.url = v.clone();
        }
        if let Some(v) = self.storage {
            config.storage.kind = v;
        }
        let s3 = &mut config.storage;
        for (value, field) in [
            (&self.s3_bucket, &mut s3.bucket),
            (&self.s3_endpoint, &mut s3.endpoint),
            (&self.s3_region, &mut s3.region),
            (&self.s3_prefix, &mut s3.prefix),
        ] {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        if let Some(v) = self.s3_path_style {
            s3.path_style = v;
        }
        Ok(config)
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "REGISTRY_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Log filter: error, warn, info, debug, trace, or tracing directives [default: info].
    #[arg(long, env = "REGISTRY_LOG_LEVEL")]
    log_level: Option<String>,
    /// Largest manifest accepted, in bytes [default: 4194304].
    #[arg(long, env = "REGISTRY_MAX_MANIFEST_BYTES")]
    max_manifest_bytes: Option<usize>,
    /// Largest page of tags or repositories [default: 1000].
    #[arg(long, env = "REGISTRY_MAX_PAGE")]
    max_page: Option<usize>,
    /// Write logs as JSON lines.
    #[arg(long, env = "REGISTRY_LOG_JSON")]
    log_json: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "REGISTRY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "REGISTRY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The first start's admin password (else a random one is printed once).
    #[arg(long, env = "REGISTRY_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

#[derive(Args)]
struct TokenServerArgs {
    /// Address to listen on [default: the configuration's listen address].
    #[arg(long, env = "REGISTRY_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Log filter [default: info].
    #[arg(long, env = "REGISTRY_LOG_LEVEL")]
    log_level: Option<String>,
    /// The first start's admin password (else a random one is printed once).
    #[arg(long, env = "REGISTRY_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => run_serve(&cli.location, args).await,
            Command::TokenServer(args) => run_token_server(&cli.location, args).await,
            Command::User(c) => commands::user(&connect(&cli.location).await?, c).await,
            Command::Project(c) => commands::project(&connect(&cli.location).await?, c).await,
            Command::Member(c) => commands::member(&connect(&cli.location).await?, c).await,
            Command::Robot(c) => commands::robot(&connect(&cli.location).await?, c).await,
            Command::Gc(args) => run_gc(&cli.location, args).await,
            Command::Quota(QuotaCommand::Verify) => commands::quota_verify(&connect(&cli.location).await?).await,
            Command::MoveUp(args) => {
                init_logging("warn", false)?;
                let target = Config::load(&args.to).with_context(|| format!("reading {}", args.to.display()))?;
                move_up::run(&cli.location.load()?, &target).await
            }
        }
    })
}

async fn connect(location: &Location) -> anyhow::Result<Local> {
    Local::connect(&location.load()?).await
}

async fn run_gc(location: &Location, args: GcArgs) -> anyhow::Result<()> {
    let mut config = location.load()?;
    init_logging(&config.log_level, false)?;
    if let Some(secs) = args.grace_secs {
        if tokio::net::UnixStream::connect(config.admin_socket()).await.is_ok() {
            anyhow::bail!("--grace-secs applies only when no server runs; the running server uses its [gc] grace_secs");
        }
        config.gc.grace_secs = secs;
    }
    let local = Local::connect(&config).await?;
    let report = commands::gc(&local, args.dry_run, args.delete_untagged).await?;
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    let verb = if report["dry_run"] == true { "would free" } else { "freed" };
    println!(
        "{verb} {} blobs ({} bytes), {} links, {} manifests, {} uploads ({} bytes); examined {} objects in {} ms",
        n("blobs_deleted"),
        n("bytes_freed"),
        n("links_removed"),
        n("manifests_deleted"),
        n("uploads_removed"),
        n("upload_bytes_freed"),
        n("examined"),
        n("duration_ms")
    );
    println!("{report}");
    Ok(())
}

fn init_logging(level: &str, json: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).with_context(|| format!("log level {level:?}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let _ = if json { subscriber.json().try_init() } else { subscriber.try_init() };
    Ok(())
}

/// The builder for a server with Harbor's accounts on the data directory: the stores opened
/// (older layouts moved up), the first start's admin and `library`, the persistent token key.
async fn with_accounts(
    config: &Config,
    builder: RegistryBuilder,
    admin_password: Option<&str>,
) -> anyhow::Result<RegistryBuilder> {
    let stores = backend::open(config).await?;
    tracing::info!(stores = %stores.describe, "stores opened");
    let accounts = Accounts::new(stores.accounts.clone());
    let first = data_dir::bootstrap(&accounts, admin_password).await?;
    if let Some(password) = &first.generated_admin_password {
        // Shown once, never stored in clear: there is no default password.
        println!(
            "first start: created system administrator 'admin' with password {password} (shown once; store it now)"
        );
    } else if first.created_admin {
        tracing::info!("first start: created system administrator 'admin' with the given password");
    }
    if first.created_library {
        tracing::info!("first start: created the public project 'library'");
    }
    let (key, der) = backend::token_key(config, stores.database.as_ref()).await?;
    let secret_key = backend::secret_key(config, stores.database.as_ref()).await?;
    let mut builder = builder
        .secret_key(secret_key)
        .registry(stores.registry)
        .accounts(accounts)
        .token_key(key)
        .token_certificate(der)
        .x5c(config.auth.x5c)
        .kid_format(config.auth.kid_format.into())
        .token_lifetime(Duration::from_secs(config.auth.token_lifetime_secs))
        .service_name(config.auth.service.clone());
    for service in &config.auth.also_issue_for {
        builder = builder.also_issue_for(service.clone());
    }
    if !config.auth.realm.is_empty() {
        builder = builder.realm(config.auth.realm.clone());
    }
    Ok(builder)
}

async fn run_serve(location: &Location, args: ServeArgs) -> anyhow::Result<()> {
    let mut config = location.load()?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.log_level {
        config.log_level = v;
    }
    if let Some(v) = args.max_manifest_bytes {
        config.limits.max_manifest_bytes = v;
    }
    if let Some(v) = args.max_page {
        config.limits.max_page = v;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls.cert = Some(cert);
        config.tls.key = Some(key);
    }
    init_logging(&config.log_level, args.log_json)?;

    let options = config.server_options()?;
    let interval = (config.gc.interval_secs > 0).then(|| Duration::from_secs(config.gc.interval_secs));
    let mut builder = RegistryBuilder::new()
        .limits(config.engine_limits())
        .server_options(options)
        .upload_limit(config.limits.max_concurrent_uploads)
        .gc(config.gc.options(), interval)
        .metrics(config.metrics.enabled)
        .portal(config.portal.enabled)
        .scan_timeout(Duration::from_secs(config.scanning.timeout_secs.max(10)))
        .retention(config.events.retention())
        .admin_socket(config.admin_socket())
        .allocator_stats(std::sync::Arc::new(allocator_stats));
    if let Some(addr) = config.metrics.listen {
        builder = builder.metrics_address(addr);
    }
    if !config.external_url.trim().is_empty() {
        builder = builder.external_url(config.external_url.trim());
    }
    if !config.scanning.registry_url.is_empty() {
        builder = builder.scanner_registry_url(config.scanning.registry_url.trim_end_matches('/'));
    }
    builder = if !config.auth.enabled {
        let stores = backend::open(&config).await?;
        tracing::info!(stores = %stores.describe, "stores opened");
        tracing::warn!("authentication is disabled: anyone who can connect may push, pull and delete");
        builder.registry(stores.registry)
    } else if let Some(path) = &config.auth.trusted_keys {
        if config.auth.realm.is_empty() {
            anyhow::bail!("[auth] trusted_keys needs realm: the external token service's /auth/token URL");
        }
        let jwks = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let stores = backend::open(&config).await?;
        tracing::info!(stores = %stores.describe, "stores opened");
        tracing::info!(realm = %config.auth.realm, "trusting an external token service");
        builder
            .registry(stores.registry)
            .service_name(config.auth.service.clone())
            .trust_token_service(&config.auth.realm, &jwks, &config.auth.issuer)
            .with_context(|| format!("reading the keys of {}", path.display()))?
    } else {
        with_accounts(&config, builder, args.admin_password.as_deref()).await?
    };
    let server = builder.bind(config.listen).await?;
    let stop = shutdown_signal();
    tracing::info!(
        listen = %server.local_addr(),
        url = %server.url(),
        data_dir = %config.data_dir.display(),
        auth = config.auth.enabled,
        "registry serving"
    );
    server.serve(stop).await?;
    tracing::info!("registry stopped");
    Ok(())
}

async fn run_token_server(location: &Location, args: TokenServerArgs) -> anyhow::Result<()> {
    let mut config = location.load()?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.log_level {
        config.log_level = v;
    }
    init_logging(&config.log_level, false)?;
    let builder = RegistryBuilder::new().server_options(config.server_options()?).token_service_only();
    let server = with_accounts(&config, builder, args.admin_password.as_deref()).await?.bind(config.listen).await?;
    let stop = shutdown_signal();
    tracing::info!(listen = %server.local_addr(), service = %config.auth.service, "token service serving");
    server.serve(stop).await?;
    tracing::info!("token service stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: callers call it before they log that they serve, so a SIGTERM sent as
/// soon as that line appears stops the server cleanly (it used to kill a server still between the
/// line and its first poll, as a loaded CI machine showed).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| {
            let stream = signal(kind);
            async move {
                match stream {
                    Ok(mut s) => {
                        s.recv().await;
                        tracing::info!("{name} received");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let (int, term) = (listen(SignalKind::interrupt(), "Ctrl-C"), listen(SignalKind::terminate(), "SIGTERM"));
        async move {
            tokio::select! {
                () = int => {}
                () = term => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received");
    }
}
