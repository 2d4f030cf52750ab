//! A materialized view as DataFusion sees it: a read-only table whose rows
//! are the MV's contents at one published epoch.
//!
//! The epoch is the query's (`ReadEpoch`), fixed once when the query
//! starts, so every MV and table it reads is at the same epoch. Writing to
//! an MV is refused by the DML path, which only writes `StoredTable`s.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::provider::{ReadEpoch, scan_chunks};
use crate::catalog::MvId;
use crate::state::schema_with_rowid;
use crate::stream::runtime::Runtime;

pub struct MvTable {
    id: MvId,
    name: String,
    schema: SchemaRef,
    runtime: Runtime,
}

impl fmt::Debug for MvTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvTable").field("id", &self.id.0).finish()
    }
}

impl MvTable {
    pub fn new(id: MvId, name: String, schema: SchemaRef, runtime: Runtime) -> Self {
        MvTable {
            id,
            name,
            schema,
            runtime,
        }
    }

    pub fn id(&self) -> MvId {
        self.id
    }
}

#[async_trait]
impl TableProvider for MvTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let epoch = match state.config().get_extension::<ReadEpoch>() {
            Some(epoch) => epoch.0.clone(),
            None => self.runtime.published(),
        };
        if let Some(failure) = self
            .runtime
            .status()
            .get(&self.id)
            .and_then(|s| s.failed.clone())
        {
            return Err(DataFusionError::Execution(format!(
                "materialized view \"{}\" stopped after an internal error: {failure}",
                self.name
            )));
        }
        let chunks = epoch.mvs.get(&self.id).cloned().ok_or_else(|| {
            DataFusionError::Execution(format!(
                "materialized view \"{}\" is not ready yet",
                self.name
            ))
        })?;
        scan_chunks(
            state,
            &chunks,
            schema_with_rowid(&self.schema),
            projection,
            1,
        )
    }
}
