//! Freshet beside PostgreSQL over pgwire: INSERT throughput and latency,
//! full scans and a GROUP BY. See docs/benchmarks.md for the method.
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/freshet-target cargo bench --bench pgwire
//! ```
//!
//! Freshet runs in-process on a free port with a fresh sled data directory
//! under `std::env::temp_dir()` (real storage: every acknowledged statement
//! is flushed). PostgreSQL is reached at `FRESHET_BENCH_PG` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`); its tables are
//! dropped and recreated. Each measurement runs `FRESHET_BENCH_RUNS` times,
//! Freshet and PostgreSQL alternating, after one untimed warm-up; the table
//! shows the median and the range. The bench only prints: no timing is
//! asserted. Wrong answers (row counts, sums) are reported as errors.
//!
//! Sizes, all from the environment:
//! - `FRESHET_BENCH_ROWS` (1,000,000): rows of the table the SELECTs read.
//! - `FRESHET_BENCH_LOAD_BATCH` (5,000): rows per INSERT when loading it.
//! - `FRESHET_BENCH_INSERT_ROWS` (200,000): rows per INSERT-throughput run.
//! - `FRESHET_BENCH_INSERT_BATCH` (1,000): rows per INSERT in those runs.
//! - `FRESHET_BENCH_SINGLE` (2,000): single-row INSERTs per latency run.
//! - `FRESHET_BENCH_WRITERS` (16) and `FRESHET_BENCH_WRITER_ROWS` (500):
//!   concurrent connections making single-row INSERTs at once, and the
//!   INSERTs each makes (group commit shares syncs between them).
//! - `FRESHET_BENCH_RUNS` (5): timed runs per measurement.
//! - `FRESHET_BENCH_PG`: PostgreSQL connection string; `none` skips it.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, pin_mut};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Config {
    rows: usize,
    load_batch: usize,
    insert_rows: usize,
    insert_batch: usize,
    single: usize,
    writers: usize,
    writer_rows: usize,
    runs: usize,
    pg: Option<String>,
}

impl Config {
    fn from_env() -> Config {
        let pg = std::env::var("FRESHET_BENCH_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
        Config {
            rows: support::env::<usize>("FRESHET_BENCH_ROWS", 1_000_000),
            load_batch: support::env::<usize>("FRESHET_BENCH_LOAD_BATCH", 5_000).max(1),
            insert_rows: support::env::<usize>("FRESHET_BENCH_INSERT_ROWS", 200_000),
            insert_batch: support::env::<usize>("FRESHET_BENCH_INSERT_BATCH", 1_000).max(1),
            single: support::env::<usize>("FRESHET_BENCH_SINGLE", 2_000).max(1),
            writers: support::env::<usize>("FRESHET_BENCH_WRITERS", 16).max(1),
            writer_rows: support::env::<usize>("FRESHET_BENCH_WRITER_ROWS", 500).max(1),
            runs: support::env::<usize>("FRESHET_BENCH_RUNS", 5).max(1),
            pg: (pg != "none").then_some(pg),
        }
    }
}

// ---------------------------------------------------------------- data

/// The value of `v` in row `i`; `k` is `i` itself and `s` is `s{i}`.
fn v_of(i: u64) -> i64 {
    ((i * 7919) % 10_007) as i64
}

fn values_sql(table: &str, from: u64, to: u64) -> String {
    let mut sql = String::with_capacity(((to - from) * 32) as usize + 64);
    write!(sql, "INSERT INTO {table} (k, v, s) VALUES ").unwrap();
    for i in from..to {
        if i > from {
            sql.push(',');
        }
        write!(sql, "({i},{},'s{i}')", v_of(i)).unwrap();
    }
    sql
}

/// What the SELECTs must answer for a table holding rows `0..n`.
struct Expected {
    count: u64,
    sum_k: i128,
    sum_v: i128,
    /// Per group `k % 1000`: (count, sum(v)).
    groups: Vec<(u64, i128)>,
}

impl Expected {
    fn new(n: u64) -> Expected {
        let mut e = Expected {
            count: n,
            sum_k: 0,
            sum_v: 0,
            groups: vec![(0, 0); 1000],
        };
        for i in 0..n {
            e.sum_k += i as i128;
            e.sum_v += v_of(i) as i128;
            let g = &mut e.groups[(i % 1000) as usize];
            g.0 += 1;
            g.1 += v_of(i) as i128;
        }
        e
    }
}

// ---------------------------------------------------------------- systems

struct System {
    name: &'static str,
    url: String,
    client: Client,
}

async fn connect(url: &str) -> BenchResult<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

fn check(system: &str, what: &str, ok: bool, detail: impl FnOnce() -> String) -> BenchResult<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("{system}: wrong result for {what}: {}", detail()).into())
    }
}

/// Runs one statement with the simple protocol; returns the command's row
/// count (the last CommandComplete).
async fn simple_command(client: &Client, sql: &str) -> BenchResult<u64> {
    let mut rows = None;
    for msg in client.simple_query(sql).await? {
        if let SimpleQueryMessage::CommandComplete(n) = msg {
            rows = Some(n);
        }
    }
    rows.ok_or_else(|| "no CommandComplete".into())
}

async fn recreate(sys: &System, table: &str) -> BenchResult<()> {
    sys.client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (k bigint, v bigint, s text)"
        ))
        .await?;
    Ok(())
}

/// Inserts rows `0..n` into `table` in multi-row INSERTs of `batch` rows,
/// checking each statement's row count. Returns the elapsed time, which
/// includes building the SQL text (a few ms per million rows, the same for
/// both systems).
async fn load(sys: &System, table: &str, n: u64, batch: u64) -> BenchResult<Duration> {
    let start = Instant::now();
    let mut from = 0;
    while from < n {
        let to = (from + batch).min(n);
        let sql = values_sql(table, from, to);
        let got = simple_command(&sys.client, &sql).await?;
        check(sys.name, "INSERT row count", got == to - from, || {
            format!("INSERT of {} rows reported {got}", to - from)
        })?;
        from = to;
    }
    Ok(start.elapsed())
}

/// `n` single-row INSERTs with a prepared statement, each awaited (each
/// acknowledgement is a commit). Returns every latency.
async fn single_inserts(sys: &System, table: &str, n: u64) -> BenchResult<Vec<Duration>> {
    let stmt = sys
        .client
        .prepare(&format!(
            "INSERT INTO {table} (k, v, s) VALUES ($1, $2, $3)"
        ))
        .await?;
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let k = i as i64;
        let v = v_of(i);
        let s = format!("s{i}");
        let start = Instant::now();
        let got = sys.client.execute(&stmt, &[&k, &v, &s]).await?;
        lat.push(start.elapsed());
        check(sys.name, "single-row INSERT row count", got == 1, || {
            format!("reported {got}")
        })?;
    }
    Ok(lat)
}

/// `writers` connections at once, each making `n` single-row INSERTs
/// (prepared, each awaited) into `table`: the total rows per second.
/// Connecting is not timed; the row count is checked.
async fn concurrent_inserts(sys: &System, table: &str, writers: usize, n: u64) -> BenchResult<f64> {
    let mut clients = Vec::with_capacity(writers);
    for _ in 0..writers {
        clients.push(connect(&sys.url).await?);
    }
    let sql = format!("INSERT INTO {table} (k, v, s) VALUES ($1, $2, $3)");
    let start = Instant::now();
    let tasks = clients.into_iter().enumerate().map(|(w, client)| {
        let sql = sql.clone();
        tokio::spawn(async move {
            let stmt = client.prepare(&sql).await?;
            for i in 0..n {
                let key = w as u64 * n + i;
                let (k, v, s) = (key as i64, v_of(key), format!("s{key}"));
                client.execute(&stmt, &[&k, &v, &s]).await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        })
    });
    for task in futures::future::join_all(tasks).await {
        task??;
    }
    let elapsed = start.elapsed();
    let total = writers as u64 * n;
    let (rows, _) = text_query(sys, &format!("SELECT count(*) FROM {table}")).await?;
    let got = rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default();
    check(
        sys.name,
        "concurrent INSERT row count",
        got == total.to_string(),
        || format!("{got} rows, expected {total}"),
    )?;
    Ok(total as f64 / secs(elapsed))
}

/// `SELECT * FROM t` over the extended protocol (binary results), every
/// value decoded and checked.
async fn scan_extended(sys: &System, e: &Expected) -> BenchResult<Duration> {
    let start = Instant::now();
    let stream = sys
        .client
        .query_raw("SELECT * FROM t", std::iter::empty::<i64>())
        .await?;
    pin_mut!(stream);
    let (mut count, mut sum_k, mut sum_v, mut bytes) = (0u64, 0i128, 0i128, 0usize);
    while let Some(row) = stream.next().await {
        let row = row?;
        let k: i64 = row.try_get(0)?;
        let v: i64 = row.try_get(1)?;
        let s: &str = row.try_get(2)?;
        count += 1;
        sum_k += k as i128;
        sum_v += v as i128;
        bytes += s.len();
    }
    let elapsed = start.elapsed();
    check(
        sys.name,
        "SELECT * (extended)",
        count == e.count && sum_k == e.sum_k && sum_v == e.sum_v && bytes > 0,
        || {
            format!(
                "{count} rows, sum(k) {sum_k}, sum(v) {sum_v}; expected {} rows, {}, {}",
                e.count, e.sum_k, e.sum_v
            )
        },
    )?;
    Ok(elapsed)
}

/// `SELECT * FROM t` over the simple protocol (text results), every value
/// parsed and checked.
async fn scan_simple(sys: &System, e: &Expected) -> BenchResult<Duration> {
    let start = Instant::now();
    let stream = sys.client.simple_query_raw("SELECT * FROM t").await?;
    pin_mut!(stream);
    let (mut count, mut sum_k, mut sum_v) = (0u64, 0i128, 0i128);
    while let Some(msg) = stream.next().await {
        if let SimpleQueryMessage::Row(row) = msg? {
            let k: i64 = row.get(0).unwrap_or("").parse()?;
            let v: i64 = row.get(1).unwrap_or("").parse()?;
            count += 1;
            sum_k += k as i128;
            sum_v += v as i128;
        }
    }
    let elapsed = start.elapsed();
    check(
        sys.name,
        "SELECT * (simple)",
        count == e.count && sum_k == e.sum_k && sum_v == e.sum_v,
        || {
            format!(
                "{count} rows, sum(k) {sum_k}, sum(v) {sum_v}; expected {} rows, {}, {}",
                e.count, e.sum_k, e.sum_v
            )
        },
    )?;
    Ok(elapsed)
}

/// Runs `sql` with the simple protocol; returns the rows as text and the
/// elapsed time. (Simple protocol so that `sum(bigint)`, numeric in
/// PostgreSQL and bigint in Freshet, reads the same way for both.)
async fn text_query(sys: &System, sql: &str) -> BenchResult<(Vec<Vec<String>>, Duration)> {
    let start = Instant::now();
    let msgs = sys.client.simple_query(sql).await?;
    let elapsed = start.elapsed();
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

async fn count_star(sys: &System, e: &Expected) -> BenchResult<Duration> {
    let (rows, t) = text_query(sys, "SELECT count(*) FROM t").await?;
    check(
        sys.name,
        "SELECT count(*)",
        rows == vec![vec![e.count.to_string()]],
        || format!("{rows:?}, expected {}", e.count),
    )?;
    Ok(t)
}

async fn sum_v(sys: &System, e: &Expected) -> BenchResult<Duration> {
    let (rows, t) = text_query(sys, "SELECT sum(v) FROM t").await?;
    check(
        sys.name,
        "SELECT sum(v)",
        rows == vec![vec![e.sum_v.to_string()]],
        || format!("{rows:?}, expected {}", e.sum_v),
    )?;
    Ok(t)
}

async fn group_by(sys: &System, e: &Expected) -> BenchResult<Duration> {
    let (rows, t) = text_query(sys, "SELECT k % 1000, count(*), sum(v) FROM t GROUP BY 1").await?;
    let mut got = vec![None; 1000];
    for r in &rows {
        let g: usize = r[0].parse()?;
        let c: u64 = r[1].parse()?;
        let s: i128 = r[2].parse()?;
        if g < 1000 {
            got[g] = Some((c, s));
        }
    }
    let want = e.groups.iter().filter(|g| g.0 > 0).count();
    let ok = rows.len() == want
        && e.groups
            .iter()
            .zip(&got)
            .all(|(w, g)| (w.0 == 0 && g.is_none()) || Some(*w) == *g);
    check(sys.name, "GROUP BY", ok, || {
        format!(
            "{} groups; first rows {:?}",
            rows.len(),
            &rows[..rows.len().min(3)]
        )
    })?;
    Ok(t)
}

// ---------------------------------------------------------------- stats

#[derive(Clone, Copy)]
enum Unit {
    /// A duration, shown in ms or s; lower is better.
    Time,
    /// Rows per second; higher is better.
    RowsPerSec,
}

struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(mut xs: Vec<f64>) -> Stat {
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
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1]
}

fn fmt_value(unit: Unit, x: f64) -> String {
    match unit {
        Unit::Time if x >= 1.0 => format!("{x:.2} s"),
        Unit::Time if x >= 0.01 => format!("{:.0} ms", x * 1e3),
        Unit::Time if x >= 0.001 => format!("{:.1} ms", x * 1e3),
        Unit::Time => format!("{:.0} µs", x * 1e6),
        Unit::RowsPerSec if x >= 1e6 => format!("{:.2} M rows/s", x / 1e6),
        Unit::RowsPerSec if x >= 1e4 => format!("{:.0}k rows/s", x / 1e3),
        Unit::RowsPerSec => format!("{:.2}k rows/s", x / 1e3),
    }
}

fn fmt_stat(unit: Unit, s: &Stat) -> String {
    format!(
        "**{}** ({}–{})",
        fmt_value(unit, s.median),
        fmt_value(unit, s.min),
        fmt_value(unit, s.max)
    )
}

struct Row {
    name: String,
    unit: Unit,
    freshet: Stat,
    pg: Option<Stat>,
}

struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(
        &mut self,
        name: impl Into<String>,
        unit: Unit,
        freshet: Vec<f64>,
        pg: Option<Vec<f64>>,
    ) {
        let row = Row {
            name: name.into(),
            unit,
            freshet: stat(freshet),
            pg: pg.map(stat),
        };
        eprintln!(
            "  {:<48} Freshet {}   PostgreSQL {}",
            row.name,
            fmt_stat(unit, &row.freshet),
            row.pg
                .as_ref()
                .map(|s| fmt_stat(unit, s))
                .unwrap_or("-".into())
        );
        self.rows.push(row);
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| measurement | Freshet median (min–max) | PostgreSQL median (min–max) | Freshet vs PostgreSQL |\n");
        out.push_str("|---|---|---|---|\n");
        for r in &self.rows {
            let (pg, ratio) = match &r.pg {
                None => ("-".to_string(), "-".to_string()),
                Some(p) => {
                    let ratio = match r.unit {
                        // How many times longer Freshet takes.
                        Unit::Time => format!("{:.2}x the time", r.freshet.median / p.median),
                        Unit::RowsPerSec => format!("{:.2}x the rate", r.freshet.median / p.median),
                    };
                    (fmt_stat(r.unit, p), ratio)
                }
            };
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.name,
                fmt_stat(r.unit, &r.freshet),
                pg,
                ratio
            )
            .unwrap();
        }
        out
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------- main

/// Runs `f` on each system, alternating, once untimed and then `runs`
/// times; returns the measured values per system.
macro_rules! alternate {
    ($systems:expr, $runs:expr, $warmup:expr, |$sys:ident| $body:expr) => {{
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); $systems.len()];
        for run in 0..($runs + $warmup) {
            for (i, $sys) in $systems.iter().enumerate() {
                let v: f64 = $body;
                if run >= $warmup {
                    values[i].push(v);
                }
            }
        }
        values
    }};
}

async fn run(cfg: Config) -> BenchResult<()> {
    let data_dir: PathBuf = std::env::temp_dir().join(format!(
        "freshet-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    ));
    let (addr, serve) =
        freshet::start(freshet::Storage::Directory(data_dir.clone()), "127.0.0.1:0").await?;
    let server = tokio::spawn(async move {
        if let Err(e) = serve.await {
            eprintln!("Freshet server stopped: {e}");
        }
    });
    let freshet_url = format!(
        "host={} port={} user=bench dbname=freshet",
        addr.ip(),
        addr.port()
    );
    eprintln!("Freshet on {addr}, data in {}", data_dir.display());

    let mut systems = vec![System {
        name: "Freshet",
        url: freshet_url.clone(),
        client: connect(&freshet_url).await?,
    }];
    if let Some(url) = &cfg.pg {
        match connect(url).await {
            Ok(client) => {
                let version = client.query_one("SHOW server_version", &[]).await?;
                let fsync = client.query_one("SHOW fsync", &[]).await?;
                let sync = client.query_one("SHOW synchronous_commit", &[]).await?;
                eprintln!(
                    "PostgreSQL {} (fsync {}, synchronous_commit {})",
                    version.get::<_, String>(0),
                    fsync.get::<_, String>(0),
                    sync.get::<_, String>(0)
                );
                systems.push(System {
                    name: "PostgreSQL",
                    url: url.clone(),
                    client,
                });
            }
            Err(e) => eprintln!("PostgreSQL at `{url}` unreachable ({e}); measuring Freshet alone"),
        }
    }
    let has_pg = systems.len() > 1;
    let split = |mut v: Vec<Vec<f64>>| {
        let pg = if has_pg { Some(v.remove(1)) } else { None };
        (v.remove(0), pg)
    };
    let mut report = Report { rows: Vec::new() };
    let total = Instant::now();

    // INSERT throughput: a fresh table per run, multi-row INSERTs.
    let (n, b) = (cfg.insert_rows as u64, cfg.insert_batch as u64);
    eprintln!("INSERT throughput: {n} rows per run in INSERTs of {b} rows");
    let v = alternate!(systems, cfg.runs, 1, |sys| {
        recreate(sys, "t_ins").await?;
        n as f64 / secs(load(sys, "t_ins", n, b).await?)
    });
    let (f, p) = split(v);
    report.add(
        format!("INSERT throughput, {b} rows per INSERT"),
        Unit::RowsPerSec,
        f,
        p,
    );

    // Single-row INSERT latency: a fresh table per run.
    let n = cfg.single as u64;
    eprintln!("single-row INSERT latency: {n} INSERTs per run");
    let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); systems.len()];
    let mut p99s: Vec<Vec<f64>> = vec![Vec::new(); systems.len()];
    let rates = alternate!(systems, cfg.runs, 1, |sys| {
        recreate(sys, "t_one").await?;
        let start = Instant::now();
        let mut lat = single_inserts(sys, "t_one", n).await?;
        let elapsed = start.elapsed();
        lat.sort();
        let i = systems.iter().position(|s| s.name == sys.name).unwrap();
        p50s[i].push(secs(percentile(&lat, 50.0)));
        p99s[i].push(secs(percentile(&lat, 99.0)));
        n as f64 / secs(elapsed)
    });
    // The warm-up's percentiles were pushed too: drop them.
    for xs in p50s.iter_mut().chain(p99s.iter_mut()) {
        xs.remove(0);
    }
    let (f, p) = split(p50s);
    report.add("single-row INSERT latency p50", Unit::Time, f, p);
    let (f, p) = split(p99s);
    report.add("single-row INSERT latency p99", Unit::Time, f, p);
    let (f, p) = split(rates);
    report.add(
        "single-row INSERTs, one client, sequential",
        Unit::RowsPerSec,
        f,
        p,
    );

    // Concurrent single-row writers: a fresh table per run.
    let (w, n) = (cfg.writers, cfg.writer_rows as u64);
    eprintln!("concurrent single-row INSERTs: {w} writers x {n} INSERTs per run");
    let v = alternate!(systems, cfg.runs, 1, |sys| {
        recreate(sys, "t_many").await?;
        concurrent_inserts(sys, "t_many", w, n).await?
    });
    let (f, p) = split(v);
    report.add(
        format!("single-row INSERTs, {w} concurrent clients, total"),
        Unit::RowsPerSec,
        f,
        p,
    );
    for sys in &systems {
        sys.client
            .batch_execute("DROP TABLE t_ins; DROP TABLE t_one; DROP TABLE t_many")
            .await?;
    }

    // The SELECT table, loaded once per system.
    let n = cfg.rows as u64;
    let b = cfg.load_batch as u64;
    eprintln!("loading {n} rows into t, INSERTs of {b} rows");
    let mut load_times = Vec::new();
    for sys in &systems {
        recreate(sys, "t").await?;
        let d = load(sys, "t", n, b).await?;
        eprintln!(
            "  {} loaded in {:.2} s ({:.0} rows/s)",
            sys.name,
            secs(d),
            n as f64 / secs(d)
        );
        load_times.push(vec![secs(d)]);
        if sys.name == "PostgreSQL" {
            // Sets hint bits and the visibility map, as autovacuum would.
            sys.client.batch_execute("VACUUM ANALYZE t").await?;
        }
    }
    let (f, p) = split(load_times);
    report.add(
        format!("load {n} rows into t ({b} rows per INSERT; one run)"),
        Unit::Time,
        f,
        p,
    );
    let (rss, hwm) = rss_mib();
    let freshet_disk = dir_size(&data_dir);
    let pg_size = if has_pg {
        let r = systems[1]
            .client
            .query_one("SELECT pg_total_relation_size('t')", &[])
            .await?;
        Some(r.get::<_, i64>(0))
    } else {
        None
    };

    let e = Expected::new(n);
    eprintln!("SELECTs over {n} rows");
    let v = alternate!(systems, cfg.runs, 1, |sys| secs(
        scan_extended(sys, &e).await?
    ));
    let (f, p) = split(v);
    report.add(
        "`SELECT * FROM t`, extended protocol (binary)",
        Unit::Time,
        f,
        p,
    );
    let v = alternate!(systems, cfg.runs, 1, |sys| secs(
        scan_simple(sys, &e).await?
    ));
    let (f, p) = split(v);
    report.add(
        "`SELECT * FROM t`, simple protocol (text)",
        Unit::Time,
        f,
        p,
    );
    let v = alternate!(systems, cfg.runs, 1, |sys| secs(count_star(sys, &e).await?));
    let (f, p) = split(v);
    report.add("`SELECT count(*) FROM t`", Unit::Time, f, p);
    let v = alternate!(systems, cfg.runs, 1, |sys| secs(sum_v(sys, &e).await?));
    let (f, p) = split(v);
    report.add("`SELECT sum(v) FROM t`", Unit::Time, f, p);
    let v = alternate!(systems, cfg.runs, 1, |sys| secs(group_by(sys, &e).await?));
    let (f, p) = split(v);
    report.add(
        "`SELECT k % 1000, count(*), sum(v) FROM t GROUP BY 1`",
        Unit::Time,
        f,
        p,
    );

    // Restart Freshet on the same directory: every acknowledged row must be
    // there, and the time to replay the log is worth knowing.
    let mut restart_line = String::new();
    let freshet_client = systems.remove(0).client;
    drop(freshet_client);
    server.abort();
    let _ = server.await;
    let reopen = Instant::now();
    let mut reopened = None;
    let mut last_err = String::new();
    while reopen.elapsed() < Duration::from_secs(20) {
        // The old connection task may hold the store a moment longer.
        match freshet::start(freshet::Storage::Directory(data_dir.clone()), "127.0.0.1:0").await {
            Ok(started) => {
                reopened = Some(started);
                break;
            }
            Err(e) => {
                last_err = e.to_string();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    match reopened {
        Some((addr2, serve2)) => {
            let opened = reopen.elapsed();
            let server2 = tokio::spawn(async move {
                let _ = serve2.await;
            });
            let url = format!(
                "host={} port={} user=bench dbname=freshet",
                addr2.ip(),
                addr2.port()
            );
            let client = connect(&url).await?;
            let sys = System {
                name: "Freshet (restarted)",
                url,
                client,
            };
            count_star(&sys, &e).await?;
            let answered = reopen.elapsed();
            restart_line = format!(
                "Freshet restart on the same data directory: opened (log replayed) in {:.2} s, first `count(*)` answered after {:.2} s, {} rows present as expected.",
                secs(opened),
                secs(answered),
                e.count
            );
            server2.abort();
        }
        None => eprintln!("could not reopen Freshet's data directory: {last_err}"),
    }

    println!();
    println!(
        "Freshet vs PostgreSQL over pgwire, {} timed runs each after one warm-up (median, min–max); total {:.0} s",
        cfg.runs,
        secs(total.elapsed())
    );
    println!();
    print!("{}", report.markdown());
    println!();
    println!(
        "Sizes: SELECT table {} rows (loaded in INSERTs of {}); INSERT throughput {} rows per run in INSERTs of {}; {} single-row INSERTs per run.",
        cfg.rows, cfg.load_batch, cfg.insert_rows, cfg.insert_batch, cfg.single
    );
    println!(
        "After loading: Freshet data directory {:.0} MiB; bench process (Freshet server + both clients) RSS {:.0} MiB, peak {:.0} MiB{}.",
        freshet_disk as f64 / (1 << 20) as f64,
        rss,
        hwm,
        pg_size
            .map(|s| format!(
                "; PostgreSQL table t {:.0} MiB",
                s as f64 / (1 << 20) as f64
            ))
            .unwrap_or_default()
    );
    if !restart_line.is_empty() {
        println!("{restart_line}");
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

fn main() {
    let cfg = Config::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cfg)) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}
