//! `freshet_catalog`: what users can see of the engine itself.
//!
//! `freshet_catalog.mv_status` has one row per materialized view: whether it
//! is backfilling, running or stopped after an internal error, its row
//! count, the epoch it last advanced in, and how many rows' expressions
//! failed (division by zero, a bad cast: the value became NULL, the view
//! went on) with the last such error.
//!
//! `freshet_catalog.mv_progress` has one row per view that CREATE
//! MATERIALIZED VIEW is still backfilling: how many of its inputs' rows it
//! has fed, out of how many, and for how long (RisingWave's
//! `rw_ddl_progress`).
//!
//! `freshet_catalog.mv_state` has one row per part of each view: its
//! contents (position 0) and each operator of its dataflow (position 1 is
//! the root of `EXPLAIN CREATE MATERIALIZED VIEW`'s tree, then the rest in
//! that order), with the bytes of memory its state holds. The runtime
//! measures them when the table is read, between two epochs.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::stream::runtime::Runtime;

/// The schema the system tables live in.
pub const SYSTEM_SCHEMA: &str = "freshet_catalog";

/// One table of `freshet_catalog`, computed from the runtime at each scan.
pub struct SystemTable {
    runtime: Runtime,
    schema: SchemaRef,
    rows: Rows,
}

/// Where a system table's rows come from.
enum Rows {
    /// The status the runtime keeps up to date.
    Status(fn(&Runtime) -> Vec<ArrayRef>),
    /// State sizes, measured by the runtime thread when asked.
    State,
}

impl fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemTable").finish()
    }
}

impl SystemTable {
    pub fn mv_state(runtime: Runtime) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("position", DataType::UInt64, false),
            Field::new("operator", DataType::Utf8, false),
            Field::new("bytes", DataType::UInt64, false),
        ]));
        SystemTable {
            runtime,
            schema,
            rows: Rows::State,
        }
    }

    pub fn mv_status(runtime: Runtime) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("epoch", DataType::UInt64, false),
            Field::new("row_errors", DataType::UInt64, false),
            Field::new("last_error", DataType::Utf8, true),
        ]));
        SystemTable {
            runtime,
            schema,
            rows: Rows::Status(mv_status_rows),
        }
    }

    pub fn mv_progress(runtime: Runtime) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("rows_done", DataType::UInt64, false),
            Field::new("rows_total", DataType::UInt64, false),
            Field::new("percent", DataType::Float64, false),
            Field::new("elapsed_ms", DataType::UInt64, false),
        ]));
        SystemTable {
            runtime,
            schema,
            rows: Rows::Status(mv_progress_rows),
        }
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns = match self.rows {
            Rows::Status(rows) => rows(&self.runtime),
            Rows::State => mv_state_rows(&self.runtime).await?,
        };
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The rows of `freshet_catalog.mv_state`, measured by the runtime now.
async fn mv_state_rows(runtime: &Runtime) -> Result<Vec<ArrayRef>> {
    let mut parts = runtime
        .footprint()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let names = runtime.status();
    parts.retain(|p| names.contains_key(&p.mv));
    parts.sort_by_key(|p| (p.mv, p.position));
    Ok(vec![
        Arc::new(StringArray::from_iter_values(
            parts.iter().map(|p| names[&p.mv].name.clone()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            parts.iter().map(|p| p.position as u64),
        )),
        Arc::new(StringArray::from_iter_values(
            parts.iter().map(|p| p.operator.clone()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            parts.iter().map(|p| p.bytes as u64),
        )),
    ])
}

fn mv_status_rows(runtime: &Runtime) -> Vec<ArrayRef> {
    let mut all: Vec<_> = runtime.status().into_iter().collect();
    all.sort_by_key(|(id, _)| *id);
    let status: Vec<_> = all.into_iter().map(|(_, s)| s).collect();
    vec![
        Arc::new(StringArray::from_iter_values(
            status.iter().map(|s| s.name.clone()),
        )),
        Arc::new(StringArray::from_iter_values(status.iter().map(|s| {
            if s.failed.is_some() {
                "failed"
            } else if s.backfill.is_some() {
                "backfilling"
            } else {
                "running"
            }
        }))),
        Arc::new(UInt64Array::from_iter_values(
            status.iter().map(|s| s.rows as u64),
        )),
        Arc::new(UInt64Array::from_iter_values(
            status.iter().map(|s| s.epoch),
        )),
        Arc::new(UInt64Array::from_iter_values(
            status.iter().map(|s| s.row_errors),
        )),
        Arc::new(StringArray::from(
            status
                .iter()
                .map(|s| s.failed.clone().or_else(|| s.last_error.clone()))
                .collect::<Vec<_>>(),
        )),
    ]
}

fn mv_progress_rows(runtime: &Runtime) -> Vec<ArrayRef> {
    let mut all: Vec<_> = runtime
        .status()
        .into_iter()
        .filter_map(|(id, s)| s.backfill.map(|p| (id, s.name, p)))
        .collect();
    all.sort_by_key(|(id, _, _)| *id);
    let percent = |done: u64, total: u64| {
        if total == 0 {
            100.0
        } else {
            (done as f64 * 10000.0 / total as f64).round() / 100.0
        }
    };
    vec![
        Arc::new(StringArray::from_iter_values(
            all.iter().map(|(_, name, _)| name.clone()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            all.iter().map(|(_, _, p)| p.done),
        )),
        Arc::new(UInt64Array::from_iter_values(
            all.iter().map(|(_, _, p)| p.total),
        )),
        Arc::new(Float64Array::from_iter_values(
            all.iter().map(|(_, _, p)| percent(p.done, p.total)),
        )),
        Arc::new(UInt64Array::from_iter_values(
            all.iter()
                .map(|(_, _, p)| p.started.elapsed().as_millis() as u64),
        )),
    ]
}
