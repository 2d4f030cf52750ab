//! The engine alone: committed changes handed straight to the epoch runtime,
//! without SQL, pgwire, the write-ahead log or the tables. This is the
//! "in-process, without pgwire" ingest figure of the MV issue: what the one
//! epoch thread (one core) sustains for each kind of view. See
//! docs/benchmarks.md for the method and the figures.
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/freshet-target cargo bench --bench engine
//! ```
//!
//! Each run starts a runtime (epochs every 100 ms, the default), gives it
//! the tables, creates the view
//! (backfilled from `d` where it joins), then sends the rows of `s` in
//! changes of `FRESHET_BENCH_ENGINE_BATCH` (10,000) rows, as committing
//! writers do, up to `FRESHET_BENCH_ENGINE_ROWS` (4,000,000), and FLUSHes.
//! The time is from the first change sent to the FLUSH's answer, i.e. until
//! the view shows every row. The batches are built before the clock starts.
//! After the run the view's contents are checked against DataFusion's
//! answer to the same query over the same rows; a mismatch aborts the
//! bench. `FRESHET_BENCH_RUNS` (5) runs per view; the median is printed.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use freshet::catalog::{MvId, TableId};
use freshet::query::{self, StoredTable};
use freshet::state::{ROWID_COLUMN, TableData};
use freshet::stream::runtime::{Message, Runtime, TableDelta};
use tokio::sync::oneshot;

/// The server's allocator (main.rs), so that the engine runs as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const S: TableId = TableId(1);
const D: TableId = TableId(2);
/// Keys of `s` (as W1's), and rows of `d`.
const KEYS: i64 = 100_000;

fn schema(columns: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Int64, true))
            .collect::<Vec<_>>(),
    ))
}

/// Rows `from..to` of `s`: W1's data, `k = (i * 7919) % 100000`,
/// `v = (i * 104729) % 1000003`.
fn s_rows(from: i64, to: i64) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int64Array::from_iter_values(
            (from..to).map(|i| (i * 7919) % KEYS),
        )),
        Arc::new(Int64Array::from_iter_values(
            (from..to).map(|i| (i * 104_729) % 1_000_003),
        )),
    ]
}

/// `d(id, g)`: one row per key of `s`.
fn d_rows() -> Vec<ArrayRef> {
    vec![
        Arc::new(Int64Array::from_iter_values(0..KEYS)),
        Arc::new(Int64Array::from_iter_values((0..KEYS).map(|i| i % 1000))),
    ]
}

/// Rows as the runtime receives them: the row id first.
fn stored(columns: Vec<ArrayRef>, first_rowid: u64, user: &SchemaRef) -> BenchResult<RecordBatch> {
    let n = columns[0].len() as u64;
    let mut fields = vec![Field::new(ROWID_COLUMN, DataType::UInt64, false)];
    fields.extend(user.fields().iter().map(|f| f.as_ref().clone()));
    let mut all: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
        first_rowid..first_rowid + n,
    ))];
    all.extend(columns);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), all)?)
}

struct View {
    label: &'static str,
    sql: &'static str,
}

const VIEWS: [View; 3] = [
    View {
        label: "filter + project: `SELECT k, v * 2 AS v2 FROM s WHERE v % 10 = 0`",
        sql: "SELECT k, v * 2 AS v2 FROM s WHERE v % 10 = 0",
    },
    View {
        label: "W1 aggregate: `SELECT k, count(*), sum(v), min(v), max(v) FROM s GROUP BY k`",
        sql: "SELECT k, count(*) AS c, sum(v) AS total, min(v) AS lo, max(v) AS hi FROM s GROUP BY k",
    },
    View {
        label: "join: `SELECT s.k, s.v, d.g FROM s JOIN d ON d.id = s.k` (d: 100k rows)",
        sql: "SELECT s.k, s.v, d.g FROM s JOIN d ON d.id = s.k",
    },
];

/// A session that knows `s` and `d` (empty: only their schemas matter to
/// the planner).
fn planning_context() -> BenchResult<SessionContext> {
    let ctx = query::new_context(None)?;
    for (name, id, columns) in [("s", S, &["k", "v"]), ("d", D, &["id", "g"])] {
        let user = schema(columns);
        let data = TableData::try_new(&user, &[])?;
        let table = StoredTable::new(id, user, Arc::new(RwLock::new(data)), HashMap::new(), &[]);
        ctx.register_table(name, Arc::new(table))?;
    }
    Ok(ctx)
}

/// DataFusion's answer over the rows fed, as sorted lines.
async fn expected(sql: &str, rows: usize) -> BenchResult<Vec<String>> {
    let ctx = SessionContext::new();
    let s = RecordBatch::try_new(schema(&["k", "v"]), s_rows(0, rows as i64))?;
    let d = RecordBatch::try_new(schema(&["id", "g"]), d_rows())?;
    ctx.register_table("s", Arc::new(MemTable::try_new(s.schema(), vec![vec![s]])?))?;
    ctx.register_table("d", Arc::new(MemTable::try_new(d.schema(), vec![vec![d]])?))?;
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(lines(&batches, 0))
}

/// Every row as a line of its values from column `skip` on, sorted.
fn lines(batches: &[RecordBatch], skip: usize) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values: Vec<String> = batch.columns()[skip..]
                .iter()
                .map(|c| {
                    datafusion::arrow::util::display::array_value_to_string(c, row)
                        .unwrap_or_default()
                })
                .collect();
            out.push(values.join(" "));
        }
    }
    out.sort();
    out
}

/// One run: returns the seconds until the view showed every row.
async fn run(view: &View, batches: &[RecordBatch], rows: usize, check: bool) -> BenchResult<f64> {
    let ctx = planning_context()?;
    let logical = ctx.state().create_logical_plan(view.sql).await?;
    let plan = freshet::plan::build(&logical, &ctx.state(), false).await?;
    let runtime = Runtime::start(freshet::DEFAULT_EPOCH_INTERVAL)?;
    let d = stored(d_rows(), 0, &schema(&["id", "g"]))?;
    runtime
        .send(Message::Table {
            table: D,
            snapshot: Some(Arc::new(vec![d])),
        })
        .await?;
    runtime
        .send(Message::Table {
            table: S,
            snapshot: Some(Arc::new(Vec::new())),
        })
        .await?;
    let (reply, created) = oneshot::channel();
    runtime
        .send(Message::CreateMv {
            id: MvId(1),
            name: "m".into(),
            dataflow: Box::new(plan.root),
            schema: plan.schema.clone(),
            inputs: plan.inputs.clone(),
            index: None,
            reply,
        })
        .await?;
    created.await??;
    let empty = Arc::new(Vec::new());
    let started = Instant::now();
    for batch in batches {
        runtime
            .send(Message::Commit(vec![TableDelta {
                table: S,
                removed: None,
                inserted: Some(batch.clone()),
                snapshot: empty.clone(),
            }]))
            .await?;
    }
    runtime.flush().await?;
    let elapsed = started.elapsed().as_secs_f64();
    if check {
        let snapshot = runtime.published();
        let contents = snapshot
            .mvs
            .get(&MvId(1))
            .ok_or("the view is not published")?;
        // The view's chunks carry the row id first.
        let got = lines(contents, 1);
        let want = expected(view.sql, rows).await?;
        if got != want {
            return Err(format!(
                "{}: the view has {} rows, DataFusion's answer {}",
                view.sql,
                got.len(),
                want.len()
            )
            .into());
        }
    }
    runtime.stop();
    Ok(elapsed)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() -> BenchResult<()> {
    let rows = support::env::<usize>("FRESHET_BENCH_ENGINE_ROWS", 4_000_000);
    let batch = support::env::<usize>("FRESHET_BENCH_ENGINE_BATCH", 10_000);
    let runs = support::env::<usize>("FRESHET_BENCH_RUNS", 5).max(1);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let user = schema(&["k", "v"]);
    let mut batches = Vec::new();
    let mut from = 0;
    while from < rows {
        let to = (from + batch).min(rows);
        batches.push(stored(s_rows(from as i64, to as i64), from as u64, &user)?);
        from = to;
    }
    println!("| view | rows/s on the epoch thread, median (min-max) of {runs} |");
    println!("|---|---|");
    for view in &VIEWS {
        let mut times = Vec::new();
        for i in 0..runs {
            let secs = tokio.block_on(run(view, &batches, rows, i == 0))?;
            eprintln!("{}: run {} {:.3} s", view.sql, i + 1, secs);
            times.push(secs);
        }
        let rates: Vec<f64> = times.iter().map(|t| rows as f64 / t).collect();
        let lo = rates.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().cloned().fold(0.0, f64::max);
        let med = rows as f64 / median(&mut times);
        println!(
            "| {} | **{:.0}k rows/s** ({:.0}k-{:.0}k) |",
            view.label,
            med / 1e3,
            lo / 1e3,
            hi / 1e3
        );
    }
    Ok(())
}
