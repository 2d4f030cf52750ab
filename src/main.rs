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

    /// How often materialized views advance, in milliseconds (FLUSH
    /// advances them at once).
    #[arg(long, default_value_t = 100)]
    epoch_interval_ms: u64,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// glibc's malloc spent a quarter of an MV epoch in its own bookkeeping
/// (free-list consolidation) under the engine's many small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stack of each worker thread. Statements are trees that parsing, planning
/// and dropping walk recursively; DataFusion's and sqlparser's own recursion
/// grows its stack on the heap when it runs short, the rest (visitors, drop)
/// needs room. Untouched pages cost no memory.
const WORKER_STACK_BYTES: usize = 64 << 20;

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime.block_on(serve(Args::parse())),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> ExitCode {
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
