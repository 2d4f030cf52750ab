//! A materialized view as DataFusion sees it: a read-only table whose rows
//! are the MV's contents at one published epoch.
//!
//! The epoch is the query's (`ReadEpoch`), fixed once when the query
//! starts, so every MV and table it reads is at the same epoch. Writing to
//! an MV is refused by the DML path, which only writes `StoredTable`s.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::provider::{ReadEpoch, scan_chunks};
use crate::catalog::MvId;
use crate::error::Error;
use crate::state::{Chunks, MvIndex, schema_with_rowid};
use crate::stream::runtime::Runtime;

pub struct MvTable {
    id: MvId,
    name: String,
    schema: SchemaRef,
    runtime: Runtime,
    index: Option<Arc<MvIndex>>,
}

impl fmt::Debug for MvTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvTable").field("id", &self.id.0).finish()
    }
}

impl MvTable {
    pub fn new(
        id: MvId,
        name: String,
        schema: SchemaRef,
        runtime: Runtime,
        index: Option<Arc<MvIndex>>,
    ) -> Self {
        MvTable {
            id,
            name,
            schema,
            runtime,
            index,
        }
    }

    /// The answer to a read of an MV whose first contents are still being
    /// computed (another session's CREATE has not returned): it says how far
    /// the backfill has come, so a person knows to wait rather than retry.
    fn not_ready(&self) -> DataFusionError {
        let progress = self
            .runtime
            .status()
            .get(&self.id)
            .and_then(|s| s.backfill.clone());
        let how_far = match progress {
            Some(p) if p.total > 0 => format!(
                ": its backfill has read {} of {} rows ({}%)",
                p.done,
                p.total,
                p.done.saturating_mul(100) / p.total
            ),
            _ => String::new(),
        };
        DataFusionError::External(Box::new(Error::NotReady(format!(
            "materialized view \"{}\" is not ready yet{how_far}; it can be read once CREATE MATERIALIZED VIEW returns (progress in freshet_catalog.mv_progress)",
            self.name
        ))))
    }

    /// The key column a filter `column = literal` pins, and the value.
    fn pinned(&self, filter: &Expr) -> Option<(usize, ScalarValue)> {
        let index = self.index.as_ref()?;
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return None;
        };
        if *op != Operator::Eq {
            return None;
        }
        let (column, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                (c, v)
            }
            _ => return None,
        };
        let position = self.schema.index_of(&column.name).ok()?;
        index
            .key()
            .contains(&position)
            .then(|| (position, value.clone()))
    }

    /// The rows whose key the filters pin, read through the index; `None`
    /// when the filters do not pin the whole key or the index describes
    /// another epoch.
    fn lookup(&self, filters: &[Expr], chunks: &Chunks) -> Result<Option<Vec<RecordBatch>>> {
        let Some(index) = &self.index else {
            return Ok(None);
        };
        let pinned: Vec<(usize, ScalarValue)> =
            filters.iter().filter_map(|f| self.pinned(f)).collect();
        let mut values = Vec::with_capacity(index.key().len());
        for column in index.key() {
            let Some((_, value)) = pinned.iter().find(|(c, _)| c == column) else {
                return Ok(None);
            };
            let array = value.to_array()?;
            let wanted = self.schema.field(*column).data_type();
            values.push(if array.data_type() == wanted {
                array
            } else {
                match cast(&array, wanted) {
                    Ok(cast) => cast,
                    Err(_) => return Ok(None),
                }
            });
        }
        let key = index.encode_key(&values)?;
        Ok(index.lookup(chunks, &key)?)
    }

    pub fn id(&self) -> MvId {
        self.id
    }

    /// The view's unique key (NULLs allowed: a GROUP BY has a NULL group),
    /// when it has one: a view over this one that carries it is indexed by
    /// it too.
    pub fn key(&self) -> Option<&[usize]> {
        self.index.as_ref().map(|i| i.key())
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

    /// Equalities on the key columns are offered to the index (Inexact:
    /// DataFusion still applies them, so a lookup only narrows).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.pinned(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
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
        let chunks = epoch
            .mvs
            .get(&self.id)
            .cloned()
            .ok_or_else(|| self.not_ready())?;
        let chunks = match self.lookup(filters, &chunks)? {
            Some(found) => Arc::new(found),
            None => chunks,
        };
        scan_chunks(
            state,
            &chunks,
            schema_with_rowid(&self.schema),
            projection,
            1,
        )
    }
}
