//! Freshet: a SQL-first streaming database that speaks the PostgreSQL wire
//! protocol.
//!
//! Follow one statement through the modules in this order: `server` (the
//! wire protocol and sessions), `sql` (parsing), `database` (what each
//! statement does), `catalog` (what exists), `query` (DataFusion planning and
//! execution over table snapshots) and `state` (the sled store: catalog and
//! table logs). See `docs/architecture.md`.

pub mod catalog;
pub mod database;
pub mod error;
pub mod plan;
pub mod query;
pub mod server;
pub mod sql;
pub mod state;
pub mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use database::Database;
pub use error::{Error, Result};

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Storage {
    Directory(PathBuf),
    InMemory,
}

/// How often the engine runs an epoch when nobody asks (FLUSH runs one now).
pub const DEFAULT_EPOCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Sessions served at once, as PostgreSQL's default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200;

/// How the server runs; `Options::default()` is what the binary does
/// without flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often MVs advance when nobody runs FLUSH.
    pub epoch_interval: std::time::Duration,
    /// Sessions admitted at once; the next one is refused with 53300.
    pub max_connections: usize,
    /// Bytes that queries may hold at once in DataFusion's memory pool
    /// (hash tables, sorts, aggregates); a query that needs more spills or
    /// fails with 53200. `None`: no limit.
    pub memory_limit: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epoch_interval: DEFAULT_EPOCH_INTERVAL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            memory_limit: default_memory_limit(),
        }
    }
}

/// Half of the machine's memory: the rest is for tables (held in memory)
/// and MV state, which the pool does not count. `None` where the machine
/// does not say (no /proc/meminfo).
pub fn default_memory_limit() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: usize = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 2 * 1024)
}

/// Opens the database and binds the listener; returns the bound address and
/// a future that serves until dropped. Tests use this to run a real server
/// in-process on port 0.
pub async fn start(
    storage: Storage,
    listen: &str,
) -> Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    start_with(storage, listen, DEFAULT_EPOCH_INTERVAL).await
}

/// `start` with an epoch interval of one's own.
pub async fn start_with(
    storage: Storage,
    listen: &str,
    epoch_interval: std::time::Duration,
) -> Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let options = Options {
        epoch_interval,
        ..Options::default()
    };
    start_with_options(storage, listen, options).await
}

/// `start` with every option of one's own.
pub async fn start_with_options(
    storage: Storage,
    listen: &str,
    options: Options,
) -> Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let store = match &storage {
        Storage::Directory(path) => state::Store::open(path)?,
        Storage::InMemory => state::Store::in_memory()?,
    };
    let db: Arc<Database> =
        Database::open(store, options.epoch_interval, options.memory_limit).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::InvalidParameter(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok((addr, server::serve(db, listener, options.max_connections)))
}
