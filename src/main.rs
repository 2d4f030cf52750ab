//! The `freshet` server binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use freshet::Storage;
use tracing_subscriber::EnvFilter;

/// Freshet: a streaming database that speaks PostgreSQL.
///
/// Connect with `psql -h 127.0.0.1 -p 5488` (no password).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory of the embedded sled database; created if missing.
    #[arg(long, default_value = "./freshet-data")]
    data_dir: PathBuf,

    /// Address and port to accept PostgreSQL connections on.
    #[arg(long, default_value = "127.0.0.1:5488")]
    listen: String,

    /// Keep all data in memory and lose it on exit (for tests and demos).
    #[arg(long)]
    in_memory: bool,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    /// How often materialized views advance, in milliseconds (FLUSH
    /// advances them at once).
    #[arg(long, default_value_t = 100)]
    epoch_interval_ms: u64,

    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let storage = if args.in_memory {
        Storage::InMemory
    } else {
        Storage::Directory(args.data_dir.clone())
    };
    let (addr, serve) = match freshet::start_with(
        storage,
        &args.listen,
        std::time::Duration::from_millis(args.epoch_interval_ms.max(1)),
    )
    .await
    {
        Ok(started) => started,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "Freshet {} listening on {addr}; connect with: psql -h {} -p {}",
        env!("CARGO_PKG_VERSION"),
        addr.ip(),
        addr.port()
    );
    tokio::select! {
        result = serve => {
            if let Err(e) = result {
                tracing::error!("server stopped: {e}");
                return ExitCode::FAILURE;
            }
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
        }
    }
    ExitCode::SUCCESS
}
