//! Incremental materialized views beside PostgreSQL 15 (`CREATE` and
//! `REFRESH MATERIALIZED VIEW`) and DataFusion's full recompute (the view's
//! query run as a plain SELECT on Freshet): the workloads of PEERS.md. See
//! docs/benchmarks.md for the method and the figures.
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/freshet-target cargo bench --bench mv
//! ```
//!
//! Freshet is the release `freshet` binary that cargo builds for this bench
//! (`CARGO_BIN_EXE_freshet`), started as its own process with a fresh data
//! directory under `std::env::temp_dir()` (real sled storage), so that its
//! memory (`/proc/<pid>/status`) is the server's alone. PostgreSQL is
//! reached at `FRESHET_BENCH_PG` (default
//! `host=127.0.0.1 port=5432 user=postgres`); the bench creates the scratch
//! database `FRESHET_BENCH_PG_DB` (default `freshet_mv_bench`) and drops it at
//! the end. Every view's contents are checked against the same query run as
//! a plain SELECT, and against PostgreSQL's view: a wrong answer aborts the
//! bench. The bench only prints: no timing is asserted.
//!
//! Sizes and choices, all from the environment:
//! - `FRESHET_BENCH_W1_ROWS` (10,000,000) rows of W1's `t`, over
//!   `FRESHET_BENCH_W1_KEYS` (100,000) keys.
//! - `FRESHET_BENCH_W2_ROWS` (1,000,000) rows of W2's `a` and of `b`, `a`
//!   over `FRESHET_BENCH_W2_GROUPS` (1,000) groups.
//! - `FRESHET_BENCH_UPDATE_ROWS` (1,000) rows per update.
//! - `FRESHET_BENCH_LOAD_CHUNK` (1,000,000) rows per
//!   `INSERT ... SELECT FROM generate_series` when loading.
//! - `FRESHET_BENCH_RUNS` (5) timed runs per measurement, after one untimed
//!   warm-up; `FRESHET_BENCH_BUILD_RUNS` (3) runs of the slow W1 builds
//!   (no warm-up: the first is the first build).
//! - `FRESHET_BENCH_INGEST_ROWS` (2,000,000) and `FRESHET_BENCH_INGEST_SECS`
//!   (30) bound each ingest run; `FRESHET_BENCH_INGEST_BATCH` (10,000) rows
//!   per INSERT; `FRESHET_BENCH_PACED_SECS` (20) bound each paced run;
//!   `FRESHET_BENCH_PROMPT_MS` (1,000): a FLUSH that returns within this is
//!   prompt.
//! - `FRESHET_BENCH_PARTS` (`w1,w2,ingest`): which workloads to run.
//! - `FRESHET_BENCH_PG`: PostgreSQL connection string without dbname;
//!   `none` skips PostgreSQL. `FRESHET_BENCH_BIN`: another freshet binary.
//! - `FRESHET_BENCH_KEEP=1` keeps the data directories and server logs.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Config {
    w1_rows: u64,
    w1_keys: u64,
    w2_rows: u64,
    w2_groups: u64,
    update_rows: u64,
    load_chunk: u64,
    runs: usize,
    build_runs: usize,
    ingest_rows: u64,
    ingest_secs: f64,
    ingest_batch: u64,
    paced_secs: f64,
    prompt: Duration,
    parts: Vec<String>,
    pg: Option<String>,
    pg_db: String,
    bin: PathBuf,
    keep: bool,
}

impl Config {
    fn from_env() -> Config {
        let pg = std::env::var("FRESHET_BENCH_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into());
        let parts = std::env::var("FRESHET_BENCH_PARTS").unwrap_or_else(|_| "w1,w2,ingest".into());
        Config {
            w1_rows: support::env::<u64>("FRESHET_BENCH_W1_ROWS", 10_000_000).max(1),
            w1_keys: support::env::<u64>("FRESHET_BENCH_W1_KEYS", 100_000).max(1),
            w2_rows: support::env::<u64>("FRESHET_BENCH_W2_ROWS", 1_000_000).max(2),
            w2_groups: support::env::<u64>("FRESHET_BENCH_W2_GROUPS", 1_000).max(1),
            update_rows: support::env::<u64>("FRESHET_BENCH_UPDATE_ROWS", 1_000).max(1),
            load_chunk: support::env::<u64>("FRESHET_BENCH_LOAD_CHUNK", 1_000_000).max(1),
            runs: support::env::<u64>("FRESHET_BENCH_RUNS", 5).max(1) as usize,
            build_runs: support::env::<u64>("FRESHET_BENCH_BUILD_RUNS", 3).max(1) as usize,
            ingest_rows: support::env::<u64>("FRESHET_BENCH_INGEST_ROWS", 2_000_000).max(1),
            ingest_secs: support::env::<u64>("FRESHET_BENCH_INGEST_SECS", 30).max(1) as f64,
            ingest_batch: support::env::<u64>("FRESHET_BENCH_INGEST_BATCH", 10_000).max(1),
            paced_secs: support::env::<u64>("FRESHET_BENCH_PACED_SECS", 20).max(1) as f64,
            prompt: Duration::from_millis(support::env::<u64>("FRESHET_BENCH_PROMPT_MS", 1_000)),
            parts: parts.split(',').map(|p| p.trim().to_lowercase()).collect(),
            pg: (pg != "none").then_some(pg),
            pg_db: std::env::var("FRESHET_BENCH_PG_DB")
                .unwrap_or_else(|_| "freshet_mv_bench".into()),
            bin: std::env::var_os("FRESHET_BENCH_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_freshet"))),
            keep: std::env::var("FRESHET_BENCH_KEEP").is_ok_and(|v| v == "1"),
        }
    }

    fn part(&self, name: &str) -> bool {
        self.parts.iter().any(|p| p == name)
    }
}

// ---------------------------------------------------------------- data
//
// Every table's row i is a fixed function of i, the same in the SQL that
// loads it (generate_series) and in the Rust that writes the updates.

/// W1 and ingest: `t(k, v)`. `k` takes every one of `keys` values equally
/// often (7919 is prime), in a scattered order.
fn w1_k(i: u64, keys: u64) -> u64 {
    (i * 7919) % keys
}

fn w1_v(i: u64) -> u64 {
    (i * 104_729) % 1_000_003
}

fn w1_select(keys: u64, series: &str) -> String {
    format!("SELECT (value * 7919) % {keys}, (value * 104729) % 1000003 FROM {series}")
}

fn w1_values(table: &str, from: u64, n: u64, keys: u64) -> String {
    let mut sql = String::with_capacity(n as usize * 20 + 64);
    write!(sql, "INSERT INTO {table} (k, v) VALUES ").unwrap();
    for i in from..from + n {
        if i > from {
            sql.push(',');
        }
        write!(sql, "({},{})", w1_k(i, keys), w1_v(i)).unwrap();
    }
    sql
}

/// W2's `a(id, g, x)`: ids `2m` and `2m + 1` share group `m % groups`.
fn w2_a_select(groups: u64, series: &str) -> String {
    format!("SELECT value, (value / 2) % {groups}, value % 1000 FROM {series}")
}

/// W2's `b(id, a_id, y)`: `a_id` is always an even id of `a`, each one
/// exactly twice when `b` has as many rows as `a`; so every `b` row has
/// its `a` row (the inner join has as many rows as `b`) and half of `a`
/// has no `b` row (the LEFT JOIN pads those).
fn w2_b_a_id(j: u64, a_rows: u64) -> u64 {
    2 * ((j * 7919) % (a_rows / 2))
}

fn w2_b_select(a_rows: u64, series: &str) -> String {
    format!(
        "SELECT value, 2 * ((value * 7919) % {}), (value * 104729) % 1000003 FROM {series}",
        a_rows / 2
    )
}

fn w2_b_values(from: u64, n: u64, a_rows: u64) -> String {
    let mut sql = String::with_capacity(n as usize * 30 + 64);
    sql.push_str("INSERT INTO b (id, a_id, y) VALUES ");
    for j in from..from + n {
        if j > from {
            sql.push(',');
        }
        write!(sql, "({j},{},{})", w2_b_a_id(j, a_rows), w1_v(j)).unwrap();
    }
    sql
}

/// The rows `from..to` of the series, inclusive, in a column `value`: the
/// same SQL on both systems.
fn series(from: u64, to: u64) -> String {
    format!(
        "generate_series({from}::bigint, {}::bigint) AS s(value)",
        to - 1
    )
}

/// Loads `rows` rows into `table` with `INSERT ... SELECT` of `chunk` rows.
async fn load(
    client: &Client,
    table: &str,
    rows: u64,
    chunk: u64,
    select: impl Fn(&str) -> String,
) -> BenchResult<f64> {
    let start = Instant::now();
    let mut from = 0;
    while from < rows {
        let to = (from + chunk).min(rows);
        let sql = format!("INSERT INTO {table} {}", select(&series(from, to)));
        let got = command(client, &sql).await?;
        if got != to - from {
            return Err(format!("INSERT of {} rows into {table} reported {got}", to - from).into());
        }
        from = to;
    }
    Ok(secs(start.elapsed()))
}

// ---------------------------------------------------------------- clients

async fn connect(url: &str) -> BenchResult<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // A server the bench killed closes its connections: not news.
        if let Err(e) = connection.await
            && !e.is_closed()
        {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

/// A failed statement's error, with the statement (shortened) and the
/// server's message.
fn failed(sql: &str, e: tokio_postgres::Error) -> Box<dyn std::error::Error + Send + Sync> {
    let short: String = sql.chars().take(160).collect();
    match e.as_db_error() {
        Some(db) => format!("`{short}`: {} ({})", db.message(), db.code().code()).into(),
        None => format!("`{short}`: {e}").into(),
    }
}

/// Runs statements with the simple protocol.
async fn exec(client: &Client, sql: &str) -> BenchResult<()> {
    client.batch_execute(sql).await.map_err(|e| failed(sql, e))
}

/// Runs one statement with the simple protocol; returns the row count of
/// its last CommandComplete.
async fn command(client: &Client, sql: &str) -> BenchResult<u64> {
    let mut rows = None;
    for msg in client.simple_query(sql).await.map_err(|e| failed(sql, e))? {
        if let SimpleQueryMessage::CommandComplete(n) = msg {
            rows = Some(n);
        }
    }
    rows.ok_or_else(|| "no CommandComplete".into())
}

/// The time `sql` takes, from sending it until its last answer was read.
async fn timed(client: &Client, sql: &str) -> BenchResult<f64> {
    let start = Instant::now();
    exec(client, sql).await?;
    Ok(secs(start.elapsed()))
}

/// `sql`'s rows as text (simple protocol, so that the two systems' answers
/// compare whatever types their columns have), and its time.
async fn text_rows(client: &Client, sql: &str) -> BenchResult<(Vec<Vec<String>>, f64)> {
    let start = Instant::now();
    let msgs = client.simple_query(sql).await.map_err(|e| failed(sql, e))?;
    let elapsed = secs(start.elapsed());
    let rows = msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    Ok((rows, elapsed))
}

/// Freshet's dataflow for a view, one operator per line, as
/// `EXPLAIN CREATE MATERIALIZED VIEW` prints it.
async fn explain(client: &Client, name: &str, query: &str) -> BenchResult<String> {
    let sql = format!("EXPLAIN CREATE MATERIALIZED VIEW {name} AS {query}");
    let rows = text_rows(client, &sql).await?.0;
    Ok(rows
        .iter()
        .map(|r| format!("`{}`", r.join(" ").trim()))
        .collect::<Vec<_>>()
        .join(" <- "))
}

/// Errors unless every `(label, answer)` equals the first.
fn agree(what: &str, answers: &[(&str, &Vec<Vec<String>>)]) -> BenchResult<()> {
    let (first_label, first) = answers[0];
    for (label, answer) in &answers[1..] {
        if answer != &first {
            return Err(format!(
                "{what}: {label} answered {answer:?}, {first_label} answered {first:?}"
            )
            .into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- the server

struct Mem {
    rss_mib: f64,
    hwm_mib: f64,
}

/// A `freshet` server process on a free port; killed (and its directory
/// removed) on drop.
struct Freshet {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    keep: bool,
}

impl Freshet {
    async fn start(cfg: &Config, tag: &str) -> BenchResult<(Freshet, Client)> {
        let dir =
            std::env::temp_dir().join(format!("freshet-mv-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut server = Freshet {
            child: None,
            bin: cfg.bin.clone(),
            dir,
            port: 0,
            keep: cfg.keep,
        };
        let client = server.launch().await?;
        Ok((server, client))
    }

    /// Starts the process on the data directory (new or existing) and
    /// connects once it answers.
    async fn launch(&mut self) -> BenchResult<Client> {
        self.port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            match connect(&self.url()).await {
                Ok(client) => return Ok(client),
                Err(e) => {
                    if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                        return Err(format!("freshet exited ({status}); see its log").into());
                    }
                    if started.elapsed() > Duration::from_secs(120) {
                        return Err(format!("freshet does not answer: {e}").into());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Kills the process and starts it again on the same data directory
    /// (tables are durable, views are rebuilt: a process with no garbage).
    async fn restart(&mut self) -> BenchResult<Client> {
        self.stop();
        self.launch().await
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=bench dbname=freshet",
            self.port
        )
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn mem(&self) -> Mem {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(f64::NAN)
        };
        Mem {
            rss_mib: field("VmRSS:"),
            hwm_mib: field("VmHWM:"),
        }
    }

    /// The server's log lines that contain `needle`.
    fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("server.log"))
            .unwrap_or_default()
            .lines()
            .map(strip_ansi)
            .filter(|l| l.contains(needle))
            .collect()
    }
}

/// The line without its terminal colour codes (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What the server logged about its backfills (the engine's own time).
fn note_backfills(server: &Freshet, rep: &mut Report) {
    let lines = server.log_lines("backfilled");
    if !lines.is_empty() {
        let what: Vec<String> = lines
            .iter()
            .filter_map(|l| {
                l.split_once("backfilled ")
                    .map(|(_, rest)| rest.to_string())
            })
            .collect();
        rep.note(format!("server log, backfills: {}", what.join("; ")));
    }
}

impl Drop for Freshet {
    fn drop(&mut self) {
        self.stop();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------- stats and report

#[derive(Clone, Copy)]
enum Unit {
    Time,
    Rate,
    Mib,
    Bytes,
}

struct Stat {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn stat(xs: &[f64]) -> Stat {
    let mut xs = xs.to_vec();
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    Stat {
        median,
        min: xs[0],
        max: xs[n - 1],
        n,
    }
}

fn median(xs: &[f64]) -> f64 {
    stat(xs).median
}

fn fmt_value(unit: Unit, x: f64) -> String {
    match unit {
        Unit::Time if x >= 1.0 => format!("{x:.2} s"),
        Unit::Time if x >= 0.01 => format!("{:.0} ms", x * 1e3),
        Unit::Time if x >= 0.001 => format!("{:.1} ms", x * 1e3),
        Unit::Time => format!("{:.0} µs", x * 1e6),
        Unit::Rate if x >= 1e6 => format!("{:.2} M rows/s", x / 1e6),
        Unit::Rate if x >= 1e4 => format!("{:.0}k rows/s", x / 1e3),
        Unit::Rate => format!("{:.2}k rows/s", x / 1e3),
        Unit::Mib if x >= 1024.0 => format!("{:.2} GiB", x / 1024.0),
        Unit::Mib => format!("{x:.0} MiB"),
        Unit::Bytes if x >= 10_240.0 => format!("{:.0} KiB", x / 1024.0),
        Unit::Bytes => format!("{x:.0} B"),
    }
}

/// `**median** (min–max)`, or the one value; ` [n runs]` when not the
/// usual count.
fn cell(unit: Unit, xs: &[f64], usual: usize) -> String {
    if xs.is_empty() {
        return "—".into();
    }
    let s = stat(xs);
    let mut out = if s.n == 1 {
        format!("**{}**", fmt_value(unit, s.median))
    } else {
        format!(
            "**{}** ({}–{})",
            fmt_value(unit, s.median),
            fmt_value(unit, s.min),
            fmt_value(unit, s.max)
        )
    };
    if s.n != usual {
        write!(out, " [{} run{}]", s.n, if s.n == 1 { "" } else { "s" }).unwrap();
    }
    out
}

struct Line {
    what: String,
    cells: [String; 3],
}

#[derive(Default)]
struct Figures {
    w1_update: Option<f64>,
    w1_flush: Option<f64>,
    w1_build: Option<f64>,
    pg_w1_build: Option<f64>,
    pg_w1_refresh: Option<f64>,
    /// W1's peak RSS over the first build, and the RSS of the loaded table before it.
    w1_peak_mib: Option<(f64, f64)>,
    /// Operator state bytes per group of the count/sum view.
    w1_count_sum_state: Option<f64>,
    w2_update: Option<f64>,
    w2_left_update: Option<f64>,
    ingest_w1: Option<f64>,
    ingest_w1_paced: Option<(f64, bool)>,
    ingest_all: Option<f64>,
    ingest_all_paced: Option<(f64, bool)>,
}

struct Report {
    runs: usize,
    sections: Vec<(String, Vec<Line>)>,
    notes: Vec<String>,
    figures: Figures,
}

impl Report {
    fn section(&mut self, title: impl Into<String>) {
        let title = title.into();
        eprintln!("== {title}");
        self.sections.push((title, Vec::new()));
    }

    /// One line: Freshet, PostgreSQL and DataFusion recompute cells.
    fn add(&mut self, what: impl Into<String>, unit: Unit, f: &[f64], p: &[f64], d: &[f64]) {
        let cells = [
            cell(unit, f, self.runs),
            cell(unit, p, self.runs),
            cell(unit, d, self.runs),
        ];
        self.add_text(what, cells);
    }

    fn add_text(&mut self, what: impl Into<String>, cells: [String; 3]) {
        let what = what.into();
        eprintln!(
            "  {what:<60} Freshet {}   PostgreSQL {}   DataFusion {}",
            cells[0], cells[1], cells[2]
        );
        if self.sections.is_empty() {
            self.section("");
        }
        self.sections
            .last_mut()
            .expect("a section")
            .1
            .push(Line { what, cells });
    }

    fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| measurement | Freshet | PostgreSQL 15 | DataFusion full recompute |\n");
        out.push_str("|---|---|---|---|\n");
        for (title, lines) in &self.sections {
            if !title.is_empty() {
                writeln!(out, "| **{title}** | | | |").unwrap();
            }
            for l in lines {
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    l.what, l.cells[0], l.cells[1], l.cells[2]
                )
                .unwrap();
            }
        }
        out
    }

    fn targets(&self) -> String {
        let f = &self.figures;
        let mut out = String::new();
        let time_target = |out: &mut String, name: &str, got: Option<f64>, target: f64| {
            let Some(got) = got else { return };
            let verdict = if got <= target {
                "met".to_string()
            } else {
                format!(
                    "missed by {} ({:.1}x the target)",
                    fmt_value(Unit::Time, got - target),
                    got / target
                )
            };
            writeln!(
                out,
                "| {name} | <= {} | {} | {verdict} |",
                fmt_value(Unit::Time, target),
                fmt_value(Unit::Time, got)
            )
            .unwrap();
        };
        out.push_str("| target (PEERS.md) | bar | Freshet | verdict |\n|---|---|---|---|\n");
        time_target(
            &mut out,
            "W1 update visible (INSERT + FLUSH)",
            f.w1_update,
            0.010,
        );
        time_target(
            &mut out,
            "W2 update visible (INSERT + FLUSH), inner join",
            f.w2_update,
            0.005,
        );
        time_target(
            &mut out,
            "W2 update visible, LEFT JOIN variant",
            f.w2_left_update,
            0.005,
        );
        if let (Some(got), Some(pg)) = (f.w1_build, f.pg_w1_build) {
            let verdict = if got <= pg {
                format!("met ({:.2}x PostgreSQL's time)", got / pg)
            } else {
                format!(
                    "missed by {} ({:.2}x PostgreSQL's time)",
                    fmt_value(Unit::Time, got - pg),
                    got / pg
                )
            };
            let refresh = f
                .pg_w1_refresh
                .map(|r| format!("; REFRESH {}, {:.2}x", fmt_value(Unit::Time, r), got / r))
                .unwrap_or_default();
            writeln!(
                out,
                "| W1 first build no slower than PostgreSQL | <= {} (CREATE MATERIALIZED VIEW){refresh} | {} | {verdict} |",
                fmt_value(Unit::Time, pg),
                fmt_value(Unit::Time, got)
            )
            .unwrap();
        }
        if let Some((peak, table)) = f.w1_peak_mib {
            let above = peak - table;
            let verdict = if above < 1024.0 {
                "met".to_string()
            } else {
                format!(
                    "missed by {} ({:.1}x the bar)",
                    fmt_value(Unit::Mib, above - 1024.0),
                    above / 1024.0
                )
            };
            writeln!(
                out,
                "| W1 first build: server peak RSS under 1 GiB above the table itself | < 1 GiB above the loaded server's {} | peak {}, {} above | {verdict} |",
                fmt_value(Unit::Mib, table),
                fmt_value(Unit::Mib, peak),
                fmt_value(Unit::Mib, above)
            )
            .unwrap();
        }
        if let Some(bytes) = f.w1_count_sum_state {
            let verdict = if bytes < 150.0 {
                "met, the key included".to_string()
            } else {
                format!(
                    "missed by {} (key included)",
                    fmt_value(Unit::Bytes, bytes - 150.0)
                )
            };
            writeln!(
                out,
                "| state per count/sum group (W1 without min/max, operators) | < 150 B on top of the key | {} | {verdict} |",
                fmt_value(Unit::Bytes, bytes)
            )
            .unwrap();
        }
        let rate_target =
            |out: &mut String, name: &str, got: Option<f64>, paced: Option<(f64, bool)>| {
                let Some(got) = got else { return };
                let target = 500_000.0;
                let verdict = if got >= target {
                    "met".to_string()
                } else {
                    format!(
                        "missed by {} ({:.2}x the bar)",
                        fmt_value(Unit::Rate, target - got),
                        got / target
                    )
                };
                let paced = paced
                    .map(|(r, ok)| {
                        format!(
                            "; paced at {}: FLUSH {}",
                            fmt_value(Unit::Rate, r),
                            if ok { "prompt" } else { "not prompt" }
                        )
                    })
                    .unwrap_or_default();
                writeln!(
                    out,
                    "| {name} | >= 500k rows/s | {} end to end{paced} | {verdict} |",
                    fmt_value(Unit::Rate, got)
                )
                .unwrap();
            };
        rate_target(
            &mut out,
            "sustained ingest into the W1 view",
            f.ingest_w1,
            f.ingest_w1_paced,
        );
        rate_target(
            &mut out,
            "sustained ingest into filter + W1 + join views at once",
            f.ingest_all,
            f.ingest_all_paced,
        );
        out
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------- W1

const W1_VIEW: &str = "SELECT k, count(*), sum(v), min(v), max(v) FROM t GROUP BY k";
const W1_VIEW_COUNT_SUM: &str = "SELECT k, count(*), sum(v) FROM t GROUP BY k";
/// One row that depends on every group of the view.
const W1_VIEW_SIG: &str = "SELECT count(*), sum(\"count\"), sum(\"sum\"), sum(\"min\"), sum(\"max\"), sum(k * \"count\") FROM w1";
/// The same row from the view's query run as a plain SELECT: DataFusion's
/// full recompute (Freshet) or PostgreSQL's plain query.
const W1_QUERY_SIG: &str = "SELECT count(*), sum(c), sum(s), sum(mn), sum(mx), sum(k * c) FROM (SELECT k, count(*) AS c, sum(v) AS s, min(v) AS mn, max(v) AS mx FROM t GROUP BY k) x";

async fn w1(cfg: &Config, pg: Option<&Client>, rep: &mut Report) -> BenchResult<()> {
    let (n, keys, runs) = (cfg.w1_rows, cfg.w1_keys, cfg.runs);
    rep.section(format!(
        "W1: `t(k, v)` {n} rows over {keys} keys; view `{W1_VIEW}`"
    ));
    let (server, fc) = Freshet::start(cfg, "w1").await?;
    eprintln!("Freshet pid {} on port {}", server.pid(), server.port);
    exec(&fc, "CREATE TABLE t (k bigint, v bigint)").await?;
    if let Some(pg) = pg {
        exec(
            pg,
            "DROP TABLE IF EXISTS t CASCADE; CREATE TABLE t (k bigint, v bigint)",
        )
        .await?;
    }

    // Load.
    let select = |s: &str| w1_select(keys, s);
    let f_load = load(&fc, "t", n, cfg.load_chunk, select).await?;
    let loaded = server.mem();
    eprintln!(
        "  Freshet loaded in {:.1} s; RSS {:.0} MiB, peak {:.0} MiB",
        f_load, loaded.rss_mib, loaded.hwm_mib
    );
    let mut p_load = Vec::new();
    if let Some(pg) = pg {
        p_load.push(load(pg, "t", n, cfg.load_chunk, select).await?);
        exec(pg, "VACUUM ANALYZE t").await?;
    }
    rep.add(
        format!(
            "load {n} rows (`INSERT ... SELECT FROM generate_series`, {} rows per statement)",
            cfg.load_chunk
        ),
        Unit::Time,
        &[f_load],
        &p_load,
        &[],
    );

    let plan = explain(&fc, "w1", W1_VIEW).await?;
    rep.note(format!("Freshet's dataflow for W1: {plan}"));

    // First build, and the recompute that answers the same query.
    let (mut f_build, mut p_build, mut d_query) = (Vec::new(), Vec::new(), Vec::new());
    let mut built = None;
    for run in 0..cfg.build_runs {
        if run > 0 {
            exec(&fc, "DROP MATERIALIZED VIEW w1").await?;
        }
        let before = server.mem();
        f_build.push(timed(&fc, &format!("CREATE MATERIALIZED VIEW w1 AS {W1_VIEW}")).await?);
        if run == 0 {
            built = Some((before, server.mem()));
        }
        if let Some(pg) = pg {
            exec(pg, "DROP MATERIALIZED VIEW IF EXISTS w1").await?;
            p_build.push(timed(pg, &format!("CREATE MATERIALIZED VIEW w1 AS {W1_VIEW}")).await?);
        }
        d_query.push(text_rows(&fc, W1_QUERY_SIG).await?.1);
        eprintln!(
            "  build run {run}: Freshet {:.2} s, PostgreSQL {}, DataFusion {:.2} s",
            f_build[run],
            p_build
                .last()
                .map(|t| format!("{t:.2} s"))
                .unwrap_or("-".into()),
            d_query[run]
        );
    }
    // More recompute runs to make five.
    while d_query.len() < runs {
        d_query.push(text_rows(&fc, W1_QUERY_SIG).await?.1);
    }
    let mut p_refresh = Vec::new();
    if let Some(pg) = pg {
        for _ in 0..runs {
            p_refresh.push(timed(pg, "REFRESH MATERIALIZED VIEW w1").await?);
        }
    }
    check_w1(&fc, pg, "after the first build").await?;
    rep.add(
        "first build: `CREATE MATERIALIZED VIEW` over the loaded table (DataFusion: the query as a SELECT)",
        Unit::Time,
        &f_build,
        &p_build,
        &d_query,
    );
    rep.add(
        "rebuild: `REFRESH MATERIALIZED VIEW`",
        Unit::Time,
        &[],
        &p_refresh,
        &[],
    );
    rep.figures.w1_build = Some(median(&f_build));
    rep.figures.pg_w1_build = (!p_build.is_empty()).then(|| median(&p_build));
    rep.figures.pg_w1_refresh = (!p_refresh.is_empty()).then(|| median(&p_refresh));
    let (before, after) = built.expect("one build");
    let after_builds = server.mem();
    rep.add_text(
        "Freshet server RSS (VmRSS; peak VmHWM): after load / after first build / after all builds",
        [
            format!(
                "{} (peak {}) / {} (peak {}) / {} (peak {})",
                fmt_value(Unit::Mib, loaded.rss_mib),
                fmt_value(Unit::Mib, loaded.hwm_mib),
                fmt_value(Unit::Mib, after.rss_mib),
                fmt_value(Unit::Mib, after.hwm_mib),
                fmt_value(Unit::Mib, after_builds.rss_mib),
                fmt_value(Unit::Mib, after_builds.hwm_mib),
            ),
            "—".into(),
            "—".into(),
        ],
    );
    rep.figures.w1_peak_mib = Some((after.hwm_mib, loaded.rss_mib));
    let growth = (after.rss_mib - before.rss_mib) * 1024.0 * 1024.0;
    rep.add_text(
        "view state: RSS growth over the first build, per group / per input row",
        [
            format!(
                "**{}** / **{}** ({} in all)",
                fmt_value(Unit::Bytes, growth / keys.min(n) as f64),
                fmt_value(Unit::Bytes, growth / n as f64),
                fmt_value(Unit::Mib, growth / 1024.0 / 1024.0)
            ),
            "—".into(),
            "—".into(),
        ],
    );

    // Updates: epochs only on FLUSH, so that INSERT and FLUSH time apart.
    exec(&fc, "SET epoch_interval = '1h'").await?;
    let u = cfg.update_rows;
    let mut next = n;
    let mut take = |count: u64| {
        let from = next;
        next += count;
        w1_values("t", from, count, keys)
    };
    let (mut f_ins, mut f_flush, mut f_total) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p_ins, mut p_refresh, mut p_total) = (Vec::new(), Vec::new(), Vec::new());
    let (mut d_ins, mut d_query, mut d_total) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let keep = run > 0;
        // Freshet: INSERT, then FLUSH.
        let insert = take(u);
        let ti = timed(&fc, &insert).await?;
        let tf = timed(&fc, "FLUSH").await?;
        if keep {
            f_ins.push(ti);
            f_flush.push(tf);
            f_total.push(ti + tf);
        }
        if let Some(pg) = pg {
            let ti = timed(pg, &insert).await?;
            let tr = timed(pg, "REFRESH MATERIALIZED VIEW w1").await?;
            if keep {
                p_ins.push(ti);
                p_refresh.push(tr);
                p_total.push(ti + tr);
            }
        }
        // DataFusion recompute: INSERT, then the whole query. The view
        // catches up afterwards, untimed; PostgreSQL gets the same rows.
        let insert = take(u);
        let ti = timed(&fc, &insert).await?;
        let tq = text_rows(&fc, W1_QUERY_SIG).await?.1;
        if keep {
            d_ins.push(ti);
            d_query.push(tq);
            d_total.push(ti + tq);
        }
        exec(&fc, "FLUSH").await?;
        if let Some(pg) = pg {
            exec(pg, &insert).await?;
        }
    }
    if let Some(pg) = pg {
        exec(pg, "REFRESH MATERIALIZED VIEW w1").await?;
    }
    check_w1(&fc, pg, "after the updates").await?;
    rep.add(
        format!("update: INSERT of {u} rows, until visible (Freshet: + FLUSH; PostgreSQL: + REFRESH; DataFusion: + the query)"),
        Unit::Time,
        &f_total,
        &p_total,
        &d_total,
    );
    rep.add(
        format!("  of which the INSERT of {u} rows"),
        Unit::Time,
        &f_ins,
        &p_ins,
        &d_ins,
    );
    rep.add(
        "  of which FLUSH / REFRESH / the query",
        Unit::Time,
        &f_flush,
        &p_refresh,
        &d_query,
    );
    rep.figures.w1_update = Some(median(&f_total));
    rep.figures.w1_flush = Some(median(&f_flush));

    // Where the FLUSH time goes: an epoch with nothing to do, then updates
    // touching 1, 10, ... groups (each key appears once per update).
    let mut empty = Vec::new();
    for run in 0..=runs {
        let t = timed(&fc, "FLUSH").await?;
        if run > 0 {
            empty.push(t);
        }
    }
    rep.add(
        "FLUSH with nothing to do (an empty epoch)",
        Unit::Time,
        &empty,
        &[],
        &[],
    );
    let mut size = 1;
    while size <= keys.min(10_000) {
        let (mut ins, mut flush) = (Vec::new(), Vec::new());
        for run in 0..=runs {
            let insert = take(size);
            let ti = timed(&fc, &insert).await?;
            let tf = timed(&fc, "FLUSH").await?;
            if run > 0 {
                ins.push(ti);
                flush.push(tf);
            }
        }
        let per_group = median(&flush) / size as f64;
        rep.add_text(
            format!(
                "INSERT of {size} rows (touching {size} groups of ~{} rows) / its FLUSH / FLUSH per touched group",
                n / keys.max(1)
            ),
            [
                format!(
                    "{} / **{}** / {}",
                    cell(Unit::Time, &ins, runs),
                    fmt_value(Unit::Time, median(&flush)),
                    fmt_value(Unit::Time, per_group)
                ),
                "—".into(),
                "—".into(),
            ],
        );
        size *= 10;
    }
    check_w1(&fc, None, "after the update-size runs").await?;

    let groups = keys.min(n) as f64;
    let (state, contents) = view_state(&fc, "w1").await?;
    rep.add_text(
        "view state, exact (`freshet_catalog.mv_state`): operators / the view's rows, per group",
        [
            format!(
                "**{}** / {} ({} / {} in all)",
                fmt_value(Unit::Bytes, state / groups),
                fmt_value(Unit::Bytes, contents / groups),
                fmt_value(Unit::Mib, state / 1024.0 / 1024.0),
                fmt_value(Unit::Mib, contents / 1024.0 / 1024.0)
            ),
            "—".into(),
            "—".into(),
        ],
    );

    // The same view without min/max: what the value multisets cost.
    exec(&fc, "DROP MATERIALIZED VIEW w1").await?;
    let build = timed(
        &fc,
        &format!("CREATE MATERIALIZED VIEW w1_cs AS {W1_VIEW_COUNT_SUM}"),
    )
    .await?;
    let (mut ins, mut flush) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let insert = take(u);
        let ti = timed(&fc, &insert).await?;
        let tf = timed(&fc, "FLUSH").await?;
        if run > 0 {
            ins.push(ti);
            flush.push(tf);
        }
    }
    let view = text_rows(
        &fc,
        "SELECT count(*), sum(\"count\"), sum(\"sum\"), sum(k * \"count\") FROM w1_cs",
    )
    .await?
    .0;
    let query = text_rows(&fc, "SELECT count(*), sum(c), sum(s), sum(k * c) FROM (SELECT k, count(*) AS c, sum(v) AS s FROM t GROUP BY k) x").await?.0;
    agree(
        "W1 without min/max",
        &[("Freshet's view", &view), ("the SELECT on Freshet", &query)],
    )?;
    let total: Vec<f64> = ins.iter().zip(&flush).map(|(i, f)| i + f).collect();
    let (state, contents) = view_state(&fc, "w1_cs").await?;
    rep.add_text(
        format!("the same view without min/max (`{W1_VIEW_COUNT_SUM}`): first build [1 run] / update of {u} rows until visible / of which FLUSH / exact state per group: operators, the view's rows"),
        [
            format!(
                "**{}** / **{}** / {} / **{}**, {}",
                fmt_value(Unit::Time, build),
                fmt_value(Unit::Time, median(&total)),
                cell(Unit::Time, &flush, runs),
                fmt_value(Unit::Bytes, state / groups),
                fmt_value(Unit::Bytes, contents / groups)
            ),
            "—".into(),
            "—".into(),
        ],
    );
    rep.figures.w1_count_sum_state = Some(state / groups);
    note_backfills(&server, rep);
    if let Some(pg) = pg {
        exec(pg, "DROP TABLE t CASCADE").await?;
    }
    Ok(())
}

/// The bytes a view keeps, from `freshet_catalog.mv_state`: its operators'
/// state, and its own rows (position 0).
async fn view_state(fc: &Client, view: &str) -> BenchResult<(f64, f64)> {
    let sql = format!(
        "SELECT coalesce(sum(CASE WHEN position > 0 THEN bytes END), 0), \
         coalesce(sum(CASE WHEN position = 0 THEN bytes END), 0) \
         FROM freshet_catalog.mv_state WHERE name = '{view}'"
    );
    let rows = text_rows(fc, &sql).await?.0;
    let number = |i: usize| -> BenchResult<f64> {
        rows.first()
            .and_then(|r| r.get(i))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{sql}: no byte count in {rows:?}").into())
    };
    Ok((number(0)?, number(1)?))
}

/// Freshet's view, Freshet's plain query and PostgreSQL's view agree.
async fn check_w1(fc: &Client, pg: Option<&Client>, when: &str) -> BenchResult<()> {
    let view = text_rows(fc, W1_VIEW_SIG).await?.0;
    let query = text_rows(fc, W1_QUERY_SIG).await?.0;
    let mut answers = vec![("Freshet's view", &view), ("the SELECT on Freshet", &query)];
    let pg_view;
    if let Some(pg) = pg {
        pg_view = text_rows(pg, W1_VIEW_SIG).await?.0;
        answers.push(("PostgreSQL's view", &pg_view));
    }
    agree(&format!("W1 {when}"), &answers)?;
    eprintln!("  W1 {when}: all agree: {:?}", view.first());
    Ok(())
}

// ---------------------------------------------------------------- W2

fn w2_view(join: &str) -> String {
    format!("SELECT a.g, count(*), sum(b.y) FROM a {join} b ON b.a_id = a.id GROUP BY a.g")
}

fn w2_view_sig(name: &str) -> String {
    format!("SELECT count(*), sum(\"count\"), sum(\"sum\"), sum(g * \"count\") FROM {name}")
}

fn w2_query_sig(join: &str) -> String {
    format!(
        "SELECT count(*), sum(c), sum(s), sum(g * c) FROM (SELECT a.g, count(*) AS c, sum(b.y) AS s FROM a {join} b ON b.a_id = a.id GROUP BY a.g) x"
    )
}

async fn w2(cfg: &Config, pg: Option<&Client>, rep: &mut Report) -> BenchResult<()> {
    let (n, groups, runs, u) = (cfg.w2_rows, cfg.w2_groups, cfg.runs, cfg.update_rows);
    rep.section(format!(
        "W2: `a(id, g, x)` {n} rows over {groups} groups, `b(id, a_id, y)` {n} rows; view `{}`",
        w2_view("JOIN")
    ));
    let (mut server, mut fc) = Freshet::start(cfg, "w2").await?;
    exec(&fc,
        "CREATE TABLE a (id bigint, g bigint, x bigint); CREATE TABLE b (id bigint, a_id bigint, y bigint)",
    )
    .await?;
    if let Some(pg) = pg {
        exec(pg,
            "DROP TABLE IF EXISTS a CASCADE; DROP TABLE IF EXISTS b CASCADE; \
             CREATE TABLE a (id bigint, g bigint, x bigint); CREATE TABLE b (id bigint, a_id bigint, y bigint)",
        )
        .await?;
    }
    let a_select = |s: &str| w2_a_select(groups, s);
    let b_select = |s: &str| w2_b_select(n, s);
    let f_load = load(&fc, "a", n, cfg.load_chunk, a_select).await?
        + load(&fc, "b", n, cfg.load_chunk, b_select).await?;
    let mut p_load = Vec::new();
    if let Some(pg) = pg {
        p_load.push(
            load(pg, "a", n, cfg.load_chunk, a_select).await?
                + load(pg, "b", n, cfg.load_chunk, b_select).await?,
        );
        exec(pg, "VACUUM ANALYZE a").await?;
        exec(pg, "VACUUM ANALYZE b").await?;
    }
    rep.add(
        format!("load {n} rows into a and {n} into b"),
        Unit::Time,
        &[f_load],
        &p_load,
        &[],
    );
    let mut next = n;
    for (label, join, name) in [
        ("inner join", "JOIN", "w2"),
        ("LEFT JOIN", "LEFT JOIN", "w2_left"),
    ] {
        eprintln!("  W2 {label}");
        // A fresh process, so that its RSS growth is this view's state.
        fc = server.restart().await?;
        exec(&fc, "SET epoch_interval = '1h'").await?;
        let view = w2_view(join);
        let plan = explain(&fc, name, &view).await?;
        rep.note(format!("Freshet's dataflow for W2 {label}: {plan}"));
        let (view_sig, query_sig) = (w2_view_sig(name), w2_query_sig(join));
        let (mut f_build, mut p_build, mut d_query) = (Vec::new(), Vec::new(), Vec::new());
        let mut built = None;
        for run in 0..runs {
            if run > 0 {
                exec(&fc, &format!("DROP MATERIALIZED VIEW {name}")).await?;
            }
            let before = server.mem();
            f_build.push(timed(&fc, &format!("CREATE MATERIALIZED VIEW {name} AS {view}")).await?);
            if run == 0 {
                built = Some((before, server.mem()));
            }
            if let Some(pg) = pg {
                exec(pg, &format!("DROP MATERIALIZED VIEW IF EXISTS {name}")).await?;
                p_build
                    .push(timed(pg, &format!("CREATE MATERIALIZED VIEW {name} AS {view}")).await?);
            }
            d_query.push(text_rows(&fc, &query_sig).await?.1);
        }
        let mut p_refresh = Vec::new();
        if let Some(pg) = pg {
            for _ in 0..runs {
                p_refresh.push(timed(pg, &format!("REFRESH MATERIALIZED VIEW {name}")).await?);
            }
        }
        let join_rows = check_w2(
            &fc,
            pg,
            &view_sig,
            &query_sig,
            &format!("{label} after the builds"),
        )
        .await?;
        rep.add(
            format!("{label}: first build (DataFusion: the query as a SELECT)"),
            Unit::Time,
            &f_build,
            &p_build,
            &d_query,
        );
        rep.add(
            format!("{label}: rebuild, `REFRESH MATERIALIZED VIEW`"),
            Unit::Time,
            &[],
            &p_refresh,
            &[],
        );
        let (before, after) = built.expect("one build");
        let growth = (after.rss_mib - before.rss_mib) * 1024.0 * 1024.0;
        let input_rows = n + next;
        rep.add_text(
            format!(
                "{label}: server RSS before / after the first build (peak); view state (RSS growth) per join row ({join_rows} rows) / per input row ({input_rows} in a and b) / per group"
            ),
            [
                format!(
                    "{} / {} (peak {}); **{}** / **{}** / **{}**",
                    fmt_value(Unit::Mib, before.rss_mib),
                    fmt_value(Unit::Mib, after.rss_mib),
                    fmt_value(Unit::Mib, after.hwm_mib),
                    fmt_value(Unit::Bytes, growth / join_rows.max(1) as f64),
                    fmt_value(Unit::Bytes, growth / input_rows as f64),
                    fmt_value(Unit::Bytes, growth / groups as f64),
                ),
                "—".into(),
                "—".into(),
            ],
        );

        // Updates: 1,000 new rows of b.
        let (mut f_ins, mut f_flush, mut f_total) = (Vec::new(), Vec::new(), Vec::new());
        let (mut p_ins, mut p_refresh, mut p_total) = (Vec::new(), Vec::new(), Vec::new());
        let (mut d_ins, mut d_query, mut d_total) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..=runs {
            let keep = run > 0;
            let insert = w2_b_values(next, u, n);
            next += u;
            let ti = timed(&fc, &insert).await?;
            let tf = timed(&fc, "FLUSH").await?;
            if keep {
                f_ins.push(ti);
                f_flush.push(tf);
                f_total.push(ti + tf);
            }
            if let Some(pg) = pg {
                let ti = timed(pg, &insert).await?;
                let tr = timed(pg, &format!("REFRESH MATERIALIZED VIEW {name}")).await?;
                if keep {
                    p_ins.push(ti);
                    p_refresh.push(tr);
                    p_total.push(ti + tr);
                }
            }
            let insert = w2_b_values(next, u, n);
            next += u;
            let ti = timed(&fc, &insert).await?;
            let tq = text_rows(&fc, &query_sig).await?.1;
            if keep {
                d_ins.push(ti);
                d_query.push(tq);
                d_total.push(ti + tq);
            }
            exec(&fc, "FLUSH").await?;
            if let Some(pg) = pg {
                exec(pg, &insert).await?;
            }
        }
        if let Some(pg) = pg {
            exec(pg, &format!("REFRESH MATERIALIZED VIEW {name}")).await?;
        }
        check_w2(
            &fc,
            pg,
            &view_sig,
            &query_sig,
            &format!("{label} after the updates"),
        )
        .await?;
        rep.add(
            format!("{label}: update, INSERT of {u} rows into b until visible"),
            Unit::Time,
            &f_total,
            &p_total,
            &d_total,
        );
        rep.add(
            format!("{label}:   of which the INSERT"),
            Unit::Time,
            &f_ins,
            &p_ins,
            &d_ins,
        );
        rep.add(
            format!("{label}:   of which FLUSH / REFRESH / the query"),
            Unit::Time,
            &f_flush,
            &p_refresh,
            &d_query,
        );
        if name == "w2" {
            rep.figures.w2_update = Some(median(&f_total));
        } else {
            rep.figures.w2_left_update = Some(median(&f_total));
        }
        exec(&fc, &format!("DROP MATERIALIZED VIEW {name}")).await?;
        if let Some(pg) = pg {
            exec(pg, &format!("DROP MATERIALIZED VIEW {name}")).await?;
        }
    }
    note_backfills(&server, rep);
    if let Some(pg) = pg {
        exec(pg, "DROP TABLE a CASCADE; DROP TABLE b CASCADE").await?;
    }
    drop(fc);
    Ok(())
}

/// Freshet's view, Freshet's plain query and PostgreSQL's view agree;
/// returns the view's `sum(count)` (the rows the join produced).
async fn check_w2(
    fc: &Client,
    pg: Option<&Client>,
    view_sig: &str,
    query_sig: &str,
    when: &str,
) -> BenchResult<u64> {
    let view = text_rows(fc, view_sig).await?.0;
    let query = text_rows(fc, query_sig).await?.0;
    let mut answers = vec![("Freshet's view", &view), ("the SELECT on Freshet", &query)];
    let pg_view;
    if let Some(pg) = pg {
        pg_view = text_rows(pg, view_sig).await?.0;
        answers.push(("PostgreSQL's view", &pg_view));
    }
    agree(&format!("W2 {when}"), &answers)?;
    eprintln!("  W2 {when}: all agree: {:?}", view.first());
    Ok(view
        .first()
        .and_then(|r| r.get(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

// ---------------------------------------------------------------- ingest

/// The views of an ingest run, over `s(k, v)` (and `d(id, g)`, one row per
/// key of `s`), with the checks that they agree with their queries.
struct IngestViews {
    label: &'static str,
    create: Vec<String>,
    checks: Vec<(String, String)>,
}

fn ingest_views(all: bool) -> IngestViews {
    let w1 = W1_VIEW.replace("FROM t", "FROM s");
    let w1_check = (
        W1_VIEW_SIG.replace("FROM w1", "FROM s_w1"),
        W1_QUERY_SIG.replace("FROM t", "FROM s"),
    );
    if !all {
        return IngestViews {
            label: "the W1 view",
            create: vec![format!("CREATE MATERIALIZED VIEW s_w1 AS {w1}")],
            checks: vec![w1_check],
        };
    }
    IngestViews {
        label: "a filter + project view, the W1 view and a join view at once",
        create: vec![
            "CREATE MATERIALIZED VIEW s_f AS SELECT k, v * 2 AS v2 FROM s WHERE v % 10 = 0".into(),
            format!("CREATE MATERIALIZED VIEW s_w1 AS {w1}"),
            "CREATE MATERIALIZED VIEW s_j AS SELECT s.k, s.v, d.g FROM s JOIN d ON d.id = s.k"
                .into(),
        ],
        checks: vec![
            (
                "SELECT count(*), sum(v2) FROM s_f".into(),
                "SELECT count(*), sum(v * 2) FROM s WHERE v % 10 = 0".into(),
            ),
            w1_check,
            (
                "SELECT count(*), sum(g), sum(v) FROM s_j".into(),
                "SELECT count(*), sum(d.g), sum(s.v) FROM s JOIN d ON d.id = s.k".into(),
            ),
        ],
    }
}

struct IngestRun {
    rows: u64,
    /// Until the last INSERT was acknowledged.
    acked: f64,
    /// The FLUSH after it.
    flush: f64,
    /// FLUSHes from a second session every second meanwhile (paced runs).
    probes: Vec<f64>,
}

impl IngestRun {
    fn acked_rate(&self) -> f64 {
        self.rows as f64 / self.acked
    }

    fn end_to_end(&self) -> f64 {
        self.rows as f64 / (self.acked + self.flush)
    }

    fn prompt(&self, prompt: Duration) -> bool {
        let limit = secs(prompt);
        self.flush <= limit && self.probes.iter().all(|p| *p <= limit)
    }
}

/// Sends `statements` (each `batch` rows) one after another, at `rate`
/// rows/s if given, for at most `limit` seconds; then FLUSH if `flush`.
async fn ingest(
    client: &Client,
    flush: bool,
    probe_url: Option<String>,
    statements: &[String],
    batch: u64,
    limit: f64,
    rate: Option<f64>,
) -> BenchResult<IngestRun> {
    let stop = Arc::new(AtomicBool::new(false));
    let prober = match probe_url {
        Some(url) => {
            let probe = connect(&url).await?;
            let stop = stop.clone();
            Some(tokio::spawn(async move {
                let mut probes = Vec::new();
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match timed(&probe, "FLUSH").await {
                        Ok(t) => probes.push(t),
                        Err(e) => {
                            eprintln!("  probe FLUSH failed: {e}");
                            break;
                        }
                    }
                }
                probes
            }))
        }
        None => None,
    };
    let start = Instant::now();
    let mut rows = 0;
    for (i, sql) in statements.iter().enumerate() {
        if secs(start.elapsed()) >= limit {
            break;
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64((i as u64 * batch) as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let got = command(client, sql).await?;
        if got != batch {
            return Err(format!("INSERT of {batch} rows reported {got}").into());
        }
        rows += batch;
    }
    let acked = secs(start.elapsed());
    stop.store(true, Ordering::Relaxed);
    let flush = if flush {
        timed(client, "FLUSH").await?
    } else {
        0.0
    };
    let probes = match prober {
        Some(p) => p.await?,
        None => Vec::new(),
    };
    Ok(IngestRun {
        rows,
        acked,
        flush,
        probes,
    })
}

async fn ingest_part(cfg: &Config, pg: Option<&Client>, rep: &mut Report) -> BenchResult<()> {
    let (keys, batch) = (cfg.w1_keys, cfg.ingest_batch);
    let count = cfg.ingest_rows.div_ceil(batch);
    rep.section(format!(
        "sustained ingest: INSERTs of {batch} rows into `s(k, v)` (W1's rows), one session, for {} s or {} rows, then FLUSH",
        cfg.ingest_secs,
        count * batch
    ));
    let statements: Vec<String> = (0..count)
        .map(|b| w1_values("s", b * batch, batch, keys))
        .collect();
    let (server, fc) = Freshet::start(cfg, "ingest").await?;
    exec(&fc, "CREATE TABLE d (id bigint, g bigint)").await?;
    load(&fc, "d", keys, cfg.load_chunk, |s| {
        format!("SELECT value, value % 1000 FROM {s}")
    })
    .await?;
    let fresh = |views: Option<&IngestViews>| {
        let mut sql =
            String::from("DROP TABLE IF EXISTS s CASCADE; CREATE TABLE s (k bigint, v bigint)");
        for create in views.map(|v| v.create.as_slice()).unwrap_or_default() {
            write!(sql, "; {create}").unwrap();
        }
        sql
    };

    // The table alone.
    exec(&fc, &fresh(None)).await?;
    let alone = ingest(&fc, true, None, &statements, batch, cfg.ingest_secs, None).await?;
    let mut p_alone = Vec::new();
    if let Some(pg) = pg {
        exec(
            pg,
            "DROP TABLE IF EXISTS s; CREATE TABLE s (k bigint, v bigint)",
        )
        .await?;
        let run = ingest(pg, false, None, &statements, batch, cfg.ingest_secs, None).await?;
        p_alone.push(run.acked_rate());
        exec(pg, "DROP TABLE s").await?;
    }
    rep.add(
        format!(
            "table alone, no view: rows/s acknowledged ({} rows)",
            alone.rows
        ),
        Unit::Rate,
        &[alone.acked_rate()],
        &p_alone,
        &[],
    );

    for all in [false, true] {
        let views = ingest_views(all);
        exec(&fc, &fresh(None)).await?;
        for create in &views.create {
            let (name, query) = create
                .trim_start_matches("CREATE MATERIALIZED VIEW ")
                .split_once(" AS ")
                .expect("CREATE MATERIALIZED VIEW name AS query");
            if all || name == "s_w1" {
                let plan = explain(&fc, name, query).await?;
                rep.note(format!(
                    "Freshet's dataflow for the ingest view {name}: {plan}"
                ));
            }
        }
        // As fast as the INSERTs go; the views catch up at the FLUSH.
        exec(&fc, &fresh(Some(&views))).await?;
        let before = server.mem();
        let run = ingest(&fc, true, None, &statements, batch, cfg.ingest_secs, None).await?;
        let after = server.mem();
        for (view, query) in &views.checks {
            let v = text_rows(&fc, view).await?.0;
            let q = text_rows(&fc, query).await?.0;
            agree(
                &format!("ingest into {}", views.label),
                &[("the view", &v), ("its query", &q)],
            )?;
        }
        rep.add_text(
            format!(
                "{}, unpaced ({} rows): rows/s acknowledged / final FLUSH / **rows/s end to end** (rows / (INSERTs + FLUSH))",
                views.label, run.rows
            ),
            [
                format!(
                    "{} / {} / **{}**",
                    fmt_value(Unit::Rate, run.acked_rate()),
                    fmt_value(Unit::Time, run.flush),
                    fmt_value(Unit::Rate, run.end_to_end())
                ),
                "—".into(),
                "—".into(),
            ],
        );
        rep.note(format!(
            "ingest into {}: server RSS {} before, {} after {} rows (peak {})",
            views.label,
            fmt_value(Unit::Mib, before.rss_mib),
            fmt_value(Unit::Mib, after.rss_mib),
            run.rows,
            fmt_value(Unit::Mib, after.hwm_mib)
        ));
        // Paced: the rate at which FLUSH stays prompt, starting from 90% of
        // the end-to-end rate, lowering it by a quarter when FLUSH lags.
        let mut rate = run.end_to_end() * 0.9;
        let mut best = None;
        for attempt in 0..5 {
            exec(&fc, &fresh(Some(&views))).await?;
            let paced = ingest(
                &fc,
                true,
                Some(server.url()),
                &statements,
                batch,
                cfg.paced_secs,
                Some(rate),
            )
            .await?;
            let ok = paced.prompt(cfg.prompt);
            let probes = if paced.probes.is_empty() {
                "no probes".to_string()
            } else {
                let s = stat(&paced.probes);
                format!(
                    "probe FLUSH median {} max {} ({} probes)",
                    fmt_value(Unit::Time, s.median),
                    fmt_value(Unit::Time, s.max),
                    s.n
                )
            };
            rep.add_text(
                format!(
                    "{}, paced at {} (attempt {}): rows/s acknowledged; FLUSH every second from a second session; final FLUSH",
                    views.label,
                    fmt_value(Unit::Rate, rate),
                    attempt + 1
                ),
                [
                    format!(
                        "{} ({} rows); {probes}; final {} — {}",
                        fmt_value(Unit::Rate, paced.acked_rate()),
                        paced.rows,
                        fmt_value(Unit::Time, paced.flush),
                        if ok { "**prompt**" } else { "**lagging**" }
                    ),
                    "—".into(),
                    "—".into(),
                ],
            );
            if ok {
                best = Some((paced.acked_rate(), true));
                break;
            }
            best = Some((paced.acked_rate(), false));
            rate *= 0.75;
        }
        if all {
            rep.figures.ingest_all = Some(run.end_to_end());
            rep.figures.ingest_all_paced = best;
        } else {
            rep.figures.ingest_w1 = Some(run.end_to_end());
            rep.figures.ingest_w1_paced = best;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- main

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} CPUs ({model}), {total} RAM")
}

async fn postgres(cfg: &Config) -> BenchResult<Option<(Client, String)>> {
    let Some(url) = &cfg.pg else { return Ok(None) };
    let admin = match connect(&format!("{url} dbname=postgres")).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("PostgreSQL at `{url}` unreachable ({e}); measuring Freshet alone");
            return Ok(None);
        }
    };
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&cfg.pg_db],
        )
        .await?
        .is_some();
    if !exists {
        exec(&admin, &format!("CREATE DATABASE {}", cfg.pg_db)).await?;
    }
    let client = connect(&format!("{url} dbname={}", cfg.pg_db)).await?;
    exec(&client, "SET work_mem = '256MB'").await?;
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "work_mem",
        "shared_buffers",
        "max_parallel_workers_per_gather",
        "fsync",
        "synchronous_commit",
    ] {
        let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
        settings.push(format!("{name} {}", row.get::<_, String>(0)));
    }
    Ok(Some((client, settings.join(", "))))
}

async fn drop_pg_database(cfg: &Config) -> BenchResult<()> {
    if let Some(url) = &cfg.pg {
        let admin = connect(&format!("{url} dbname=postgres")).await?;
        exec(&admin, &format!("DROP DATABASE IF EXISTS {}", cfg.pg_db)).await?;
    }
    Ok(())
}

async fn run(cfg: Config) -> BenchResult<()> {
    let total = Instant::now();
    let machine = machine();
    eprintln!("{machine}; freshet binary {}", cfg.bin.display());
    let pg = postgres(&cfg).await?;
    if let Some((_, settings)) = &pg {
        eprintln!("PostgreSQL: {settings}");
    }
    let pg_client = pg.as_ref().map(|(c, _)| c);
    let mut rep = Report {
        runs: cfg.runs,
        sections: Vec::new(),
        notes: Vec::new(),
        figures: Figures::default(),
    };
    if cfg.part("w1") {
        w1(&cfg, pg_client, &mut rep).await?;
    }
    if cfg.part("w2") {
        w2(&cfg, pg_client, &mut rep).await?;
    }
    if cfg.part("ingest") {
        ingest_part(&cfg, pg_client, &mut rep).await?;
    }
    let settings = pg.as_ref().map(|(_, s)| s.clone());
    drop(pg);
    if settings.is_some() {
        drop_pg_database(&cfg).await?;
    }

    println!();
    println!(
        "Materialized views: Freshet beside PostgreSQL 15 and DataFusion full recompute; {machine}; total {:.0} s",
        secs(total.elapsed())
    );
    if let Some(settings) = settings {
        println!("PostgreSQL: {settings} (work_mem set per session).");
    }
    println!(
        "Median (min–max) of {} timed runs after one warm-up unless marked; the W1 builds {} runs, no warm-up.",
        cfg.runs, cfg.build_runs
    );
    println!();
    print!("{}", rep.markdown());
    println!();
    print!("{}", rep.targets());
    if !rep.notes.is_empty() {
        println!();
        for note in &rep.notes {
            println!("- {note}");
        }
    }
    if let Some(flush) = rep.figures.w1_flush {
        println!(
            "- W1: the FLUSH is {:.0}% of the update's time.",
            100.0 * flush / rep.figures.w1_update.unwrap_or(flush)
        );
    }
    Ok(())
}

fn main() {
    let cfg = Config::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cfg)) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}
