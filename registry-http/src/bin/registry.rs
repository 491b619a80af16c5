//! `registry`: the reference server.
//!
//! `registry serve` runs the registry on its embedded default: blobs on the filesystem and
//! metadata in an embedded redb database, both under the data directory.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use registry_http::config::Config;
use registry_http::{RegistryService, open_data_dir, serve};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "registry", version, about = "An OCI Distribution registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "REGISTRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "REGISTRY_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory [default: ./registry-data].
    #[arg(long, env = "REGISTRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(run_serve(args))
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
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

    let filter = EnvFilter::try_new(&config.log_level).with_context(|| format!("log level {:?}", config.log_level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }

    let registry = open_data_dir(&config.data_dir, config.engine_limits())
        .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        "registry serving"
    );
    serve(listener, RegistryService::new(registry), config.server_options(), shutdown_signal()).await?;
    tracing::info!("registry stopped");
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
