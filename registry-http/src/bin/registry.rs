//! `registry`: the reference server.
//!
//! `registry serve` runs the registry on its embedded default: blobs on the filesystem and
//! metadata in an embedded redb database, both under the data directory, with token
//! authentication on. The account subcommands (`user`, `project`, `member`, `robot`) edit the
//! accounts database of a stopped server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use registry_auth::{Accounts, RobotPermission, Role};
use registry_http::config::Config;
use registry_http::data_dir::{bootstrap, open_accounts, token_certificate, token_key};
use registry_http::{RegistryService, open_data_dir, serve};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "registry", version, about = "An OCI Distribution registry with token authentication")]
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
    /// Manage users (server stopped).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage projects (server stopped).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage project members (server stopped).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manage robot accounts (server stopped).
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Collect garbage now (server stopped; a running server collects on its [gc] schedule and
    /// through `POST /api/v2.0/system/gc/schedule`).
    Gc(GcArgs),
}

#[derive(Args)]
struct GcArgs {
    /// Report what would be freed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete manifests no tag or index references.
    #[arg(long)]
    delete_untagged: bool,
    /// Keep anything younger than this many seconds [default: the [gc] grace_secs, 3600].
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
        Ok(config)
    }

    async fn accounts(&self) -> anyhow::Result<Accounts> {
        let config = self.load()?;
        open_accounts(&config.data_dir).with_context(|| {
            format!("opening {}/accounts.redb (is the server running? stop it first)", config.data_dir.display())
        })
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

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from REGISTRY_USER_PASSWORD or generated and printed.
    Add {
        name: String,
        /// Make the user a system administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List {},
    /// Remove a user and their memberships.
    Remove { name: String },
    /// Disable a user: no more logins or token refreshes.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project (private unless --public).
    Create {
        name: String,
        #[arg(long)]
        public: bool,
    },
    /// List projects.
    List {},
    /// Remove a project with its members and robots.
    Remove { name: String },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Make a user a member: role is project_admin, maintainer, developer, guest or limited_guest.
    Add {
        project: String,
        user: String,
        role: String,
        /// Narrow the membership to repositories matching this pattern inside the project.
        #[arg(long)]
        repositories: Option<String>,
    },
    /// List a project's members.
    List { project: String },
    /// Remove a membership.
    Remove { project: String, user: String },
}

#[derive(Subcommand)]
enum RobotCommand {
    /// Create robot$<project>+<name>; its secret is printed once.
    Create {
        project: String,
        name: String,
        /// Permission `pattern:actions`, e.g. `*:pull,push` (repeatable).
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Days until it expires [default: 30].
        #[arg(long, conflicts_with = "never_expires")]
        expires_days: Option<u64>,
        /// Never expire.
        #[arg(long)]
        never_expires: bool,
    },
    /// List robots (of one project, when given).
    List { project: Option<String> },
    /// Remove a robot by its full name.
    Remove { name: String },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => run_serve(&cli.location, args).await,
            Command::TokenServer(args) => run_token_server(&cli.location, args).await,
            Command::User(c) => user(&cli.location, c).await,
            Command::Project(c) => project(&cli.location, c).await,
            Command::Member(c) => member(&cli.location, c).await,
            Command::Robot(c) => robot(&cli.location, c).await,
            Command::Gc(args) => run_gc(&cli.location, args).await,
        }
    })
}

async fn user(location: &Location, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, admin } => {
            let accounts = location.accounts().await?;
            let (password, generated) = match std::env::var("REGISTRY_USER_PASSWORD") {
                Ok(p) => (p, false),
                Err(_) => (registry_auth::token::random_id(18)?, true),
            };
            accounts.add_user(&name, &password, admin).await?;
            if generated {
                println!("user {name} added; password (shown once): {password}");
            } else {
                println!("user {name} added");
            }
        }
        UserCommand::List {} => {
            for u in location.accounts().await?.users().await? {
                println!("{}\tadmin={}\tenabled={}", u.name, u.admin, u.enabled);
            }
        }
        UserCommand::Remove { name } => {
            location.accounts().await?.remove_user(&name).await?;
            println!("user {name} removed");
        }
        UserCommand::Disable { name } => {
            location.accounts().await?.set_user_enabled(&name, false).await?;
            println!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            location.accounts().await?.set_user_enabled(&name, true).await?;
            println!("user {name} enabled");
        }
    }
    Ok(())
}

async fn project(location: &Location, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, public } => {
            location.accounts().await?.create_project(&name, public).await?;
            println!("project {name} created ({})", if public { "public" } else { "private" });
        }
        ProjectCommand::List {} => {
            for p in location.accounts().await?.projects().await? {
                println!("{}\t{}", p.name, if p.public { "public" } else { "private" });
            }
        }
        ProjectCommand::Remove { name } => {
            location.accounts().await?.remove_project(&name).await?;
            println!("project {name} removed");
        }
    }
    Ok(())
}

async fn member(location: &Location, command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::Add { project, user, role, repositories } => {
            let role = Role::parse(&role)?;
            location.accounts().await?.add_member(&project, &user, role, repositories.as_deref()).await?;
            println!("{user} is {role:?} of {project}");
        }
        MemberCommand::List { project } => {
            for m in location.accounts().await?.members(&project).await? {
                println!("{}\t{:?}\t{}", m.user, m.role, m.repositories.as_deref().unwrap_or("*"));
            }
        }
        MemberCommand::Remove { project, user } => {
            location.accounts().await?.remove_member(&project, &user).await?;
            println!("{user} removed from {project}");
        }
    }
    Ok(())
}

async fn robot(location: &Location, command: RobotCommand) -> anyhow::Result<()> {
    match command {
        RobotCommand::Create { project, name, permissions, expires_days, never_expires } => {
            let permissions = permissions.iter().map(|p| RobotPermission::parse(p)).collect::<Result<Vec<_>, _>>()?;
            let days = if never_expires {
                None
            } else {
                Some(expires_days.unwrap_or(registry_auth::accounts::DEFAULT_ROBOT_DAYS))
            };
            let (robot, secret) = location.accounts().await?.create_robot(&project, &name, permissions, days).await?;
            println!("robot {} created; secret (shown once): {secret}", robot.name);
        }
        RobotCommand::List { project } => {
            for r in location.accounts().await?.robots(project.as_deref()).await? {
                let perms: Vec<String> =
                    r.permissions.iter().map(|p| format!("{}:{}", p.repositories, p.actions.join(","))).collect();
                let expiry = r.expires_at.map(registry_auth::service::rfc3339).unwrap_or_else(|| "never".into());
                println!("{}\t{}\texpires {expiry}", r.name, perms.join(" "));
            }
        }
        RobotCommand::Remove { name } => {
            location.accounts().await?.remove_robot(&name).await?;
            println!("robot {name} removed");
        }
    }
    Ok(())
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
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let registry = open_data_dir(&config.data_dir, config.engine_limits())
        .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let mut service = RegistryService::new(registry).with_upload_limit(config.limits.max_concurrent_uploads);
    if config.auth.enabled {
        let default_realm = format!("{scheme}://{local}{}", registry_http::auth::TOKEN_PATH);
        let realm = if config.auth.realm.is_empty() { default_realm } else { config.auth.realm.clone() };
        let settings = match &config.auth.trusted_keys {
            Some(path) => {
                if config.auth.realm.is_empty() {
                    bail!("[auth] trusted_keys needs realm: the external token service's /auth/token URL");
                }
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let jwks: serde_json::Value =
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                tracing::info!(realm = %realm, "trusting an external token service");
                registry_http::auth::external(realm, config.auth.service.clone(), &config.auth.issuer, &jwks)?
            }
            None => built_in_token_service(&config, args.admin_password.as_deref(), realm).await?.into_settings(),
        };
        service = service.with_auth(settings);
    } else {
        if !local.ip().is_loopback() {
            bail!("refusing to serve without authentication on a non-loopback address ({local}); enable [auth]");
        }
        tracing::warn!("authentication is disabled: anyone who can connect may push, pull and delete");
    }
    let collector = registry_http::GarbageCollector::new(service.registry().clone(), config.gc.options());
    service = service.with_gc(collector.clone());
    let schedule =
        (config.gc.interval_secs > 0).then(|| collector.schedule(Duration::from_secs(config.gc.interval_secs)));
    tracing::info!(listen = %local, scheme, data_dir = %config.data_dir.display(), auth = config.auth.enabled, "registry serving");
    let served = serve(listener, service, options, shutdown_signal()).await;
    if let Some(task) = schedule {
        task.abort();
    }
    served?;
    tracing::info!("registry stopped");
    Ok(())
}

async fn run_gc(location: &Location, args: GcArgs) -> anyhow::Result<()> {
    let config = location.load()?;
    init_logging(&config.log_level, false)?;
    let registry = open_data_dir(&config.data_dir, config.engine_limits()).with_context(|| {
        format!(
            "opening data directory {} (is the server running? it collects on its own: POST /api/v2.0/system/gc/schedule)",
            config.data_dir.display()
        )
    })?;
    let mut options = config.gc.options();
    options.dry_run = args.dry_run;
    options.delete_untagged = args.delete_untagged;
    if let Some(secs) = args.grace_secs {
        options.grace = Duration::from_secs(secs);
    }
    let report = registry.collect_garbage(&options).await?;
    let verb = if report.dry_run { "would free" } else { "freed" };
    println!(
        "{verb} {} blobs ({} bytes), {} links, {} manifests, {} uploads ({} bytes); examined {} objects in {} ms",
        report.blobs_deleted,
        report.bytes_freed,
        report.links_removed,
        report.manifests_deleted,
        report.uploads_removed,
        report.upload_bytes_freed,
        report.examined,
        report.duration_ms
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn init_logging(level: &str, json: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).with_context(|| format!("log level {level:?}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    Ok(())
}

/// Opens the accounts (creating the admin and `library` on the first start) and the token key,
/// and describes the built-in token service.
async fn built_in_token_service(
    config: &Config,
    admin_password: Option<&str>,
    realm: String,
) -> anyhow::Result<registry_http::auth::BuiltInTokenService> {
    let accounts = open_accounts(&config.data_dir).context("opening the accounts database")?;
    let first = bootstrap(&accounts, admin_password).await?;
    if let Some(password) = &first.generated_admin_password {
        // Shown once, never stored in clear: there is no default password.
        println!(
            "first start: created system administrator 'admin' with password {password} (shown once; store it now)"
        );
    } else if first.created_admin {
        tracing::info!(
            "first start: created system administrator 'admin' with the password from REGISTRY_ADMIN_PASSWORD"
        );
    }
    if first.created_library {
        tracing::info!("first start: created the public project 'library'");
    }
    let key = token_key(&config.data_dir, config.auth.algorithm == registry_http::config::AlgorithmConfig::RS256)?;
    let (_, certificate_der) = token_certificate(&config.data_dir, &key)?;
    Ok(registry_http::auth::BuiltInTokenService {
        accounts,
        key,
        certificate_der: config.auth.x5c.then_some(certificate_der),
        realm,
        service: config.auth.service.clone(),
        also_issue_for: config.auth.also_issue_for.clone(),
        token_lifetime: Duration::from_secs(config.auth.token_lifetime_secs),
        kid_format: config.auth.kid_format.into(),
    })
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
    let options = config.server_options()?;
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let built_in = built_in_token_service(&config, args.admin_password.as_deref(), String::new()).await?;
    let server = registry_http::auth::TokenServer::new(built_in.into_settings());
    tracing::info!(listen = %local, service = %config.auth.service, "token service serving");
    serve(listener, server, options, shutdown_signal()).await?;
    tracing::info!("token service stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
