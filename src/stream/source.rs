//! Where a dataflow's changes come from: the delta of a table or of an
//! upstream MV in this epoch, and constant relations (VALUES, a SELECT
//! without FROM), which contribute their rows once, at the backfill.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Operator, StepContext, StreamError, ZBatch, output_schema};
use crate::catalog::Relation;

pub struct Source {
    relation: Relation,
    /// Which columns of the relation the scan reads, in order.
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
}

impl Source {
    pub fn new(relation: Relation, projection: Option<Vec<usize>>, schema: SchemaRef) -> Self {
        Source {
            relation,
            projection,
            schema: output_schema(&schema),
        }
    }
}

impl Operator for Source {
    fn step(&mut self, _inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let Some(delta) = ctx.sources.get(&self.relation) else {
            return Ok(ZBatch::empty(self.schema.clone()));
        };
        let rows = match &self.projection {
            Some(columns) => delta.rows().project(columns)?,
            None => delta.rows().clone(),
        };
        let rows = RecordBatch::try_new_with_options(
            self.schema.clone(),
            rows.columns().to_vec(),
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(rows.num_rows())),
        )?;
        delta.with_rows(rows)
    }

    fn describe(&self) -> String {
        format!("Source: {} (stateless)", self.relation)
    }
}

pub struct Constant {
    rows: Option<RecordBatch>,
    schema: SchemaRef,
}

impl Constant {
    pub fn new(rows: RecordBatch) -> Self {
        let schema = output_schema(&rows.schema());
        Constant {
            rows: Some(rows),
            schema,
        }
    }
}

impl Operator for Constant {
    fn step(
        &mut self,
        _inputs: Vec<ZBatch>,
        _ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        match self.rows.take() {
            Some(rows) => ZBatch::uniform(
                RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    rows.columns().to_vec(),
                    &datafusion::arrow::array::RecordBatchOptions::new()
                        .with_row_count(Some(rows.num_rows())),
                )?,
                1,
            )
            .consolidate(),
            None => Ok(ZBatch::empty(self.schema.clone())),
        }
    }

    fn describe(&self) -> String {
        "Constant (emitted once at backfill)".into()
    }
}
