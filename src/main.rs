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

    /// Sessions served at once; the next connection is refused with
    /// SQLSTATE 53300, as PostgreSQL's max_connections.
    #[arg(long, default_value_t = freshet::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Memory that queries may hold at once (hash tables, sorts,
    /// aggregates), e.g. 4GB or 512MB; past it sorts and aggregates spill
    /// to temporary files and other queries fail with SQLSTATE 53200.
    /// Default: half of the machine's memory. `none` sets no limit.
    #[arg(long, value_parser = parse_memory_limit)]
    memory_limit: Option<MemoryLimit>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// `--memory-limit`: a byte count, with an optional kB/MB/GB/TB unit
/// (powers of 1024, as PostgreSQL's memory settings), or `none`.
#[derive(Debug, Clone, Copy)]
struct MemoryLimit(Option<usize>);

fn parse_memory_limit(text: &str) -> Result<MemoryLimit, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(MemoryLimit(None));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size such as 4GB, 512MB or none"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown unit \"{other}\": use kB, MB, GB or TB")),
    };
    number
        .checked_mul(scale)
        .map(|bytes| MemoryLimit(Some(bytes)))
        .ok_or_else(|| format!("\"{text}\" is too large"))
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
    let options = freshet::Options {
        epoch_interval: std::time::Duration::from_millis(args.epoch_interval_ms.max(1)),
        max_connections: args.max_connections,
        memory_limit: match args.memory_limit {
            Some(MemoryLimit(limit)) => limit,
            None => freshet::default_memory_limit(),
        },
    };
    let (addr, serve) = match freshet::start_with_options(storage, &args.listen, options).await {
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
