//! `freshet_catalog`: what users can see of the engine itself.
//!
//! `freshet_catalog.mv_status` has one row per materialized view: whether it
//! is backfilling, running or stopped after an internal error, its row
//! count, the epoch it last advanced in, and how many rows' expressions
//! failed (division by zero, a bad cast: the value became NULL, the view
//! went on) with the last such error.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
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

pub struct MvStatusTable {
    runtime: Runtime,
    schema: SchemaRef,
}

impl fmt::Debug for MvStatusTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvStatusTable").finish()
    }
}

impl MvStatusTable {
    pub fn new(runtime: Runtime) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("epoch", DataType::UInt64, false),
            Field::new("row_errors", DataType::UInt64, false),
            Field::new("last_error", DataType::Utf8, true),
        ]));
        MvStatusTable { runtime, schema }
    }
}

#[async_trait]
impl TableProvider for MvStatusTable {
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
        let mut all: Vec<_> = self.runtime.status().into_iter().collect();
        all.sort_by_key(|(id, _)| *id);
        let status: Vec<_> = all.into_iter().map(|(_, s)| s).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                status.iter().map(|s| s.name.clone()),
            )),
            Arc::new(StringArray::from_iter_values(status.iter().map(|s| {
                if s.failed.is_some() {
                    "failed"
                } else if s.backfilling {
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
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
