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

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::stream::runtime::Runtime;

/// The schema the system tables live in.
pub const SYSTEM_SCHEMA: &str = "freshet_catalog";

/// One table of `freshet_catalog`, computed from the runtime at each scan.
pub struct SystemTable {
    runtime: Runtime,
    schema: SchemaRef,
    rows: fn(&Runtime) -> Vec<ArrayRef>,
}

impl fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemTable").finish()
    }
}

impl SystemTable {
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
            rows: mv_status_rows,
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
            rows: mv_progress_rows,
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
        let batch = RecordBatch::try_new(self.schema.clone(), (self.rows)(&self.runtime))?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
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
