//! The incremental engine: operators over Z-set deltas, and the epoch
//! runtime that drives them.
//!
//! Every materialized view is a tree of operators (`Node`) built by `plan/`
//! from DataFusion's optimized logical plan. Once per epoch the runtime hands
//! each MV the changes of its inputs since the last epoch; every node steps
//! once, children first, and returns the change of its own output. The
//! contract every operator keeps (DBSP, Budiu et al., VLDB 2023): after the
//! same multiset of input changes, in any split into epochs, the sum of its
//! output deltas equals the batch query over the sum of its inputs.
//!
//! ```text
//! table deltas ─> Source ─> Map (filter/project) ─> Join / Recompute / TopN ─> MvSink
//! ```
//!
//! Scalar expressions are DataFusion `PhysicalExpr`s; aggregates and window
//! functions are DataFusion's own, run over the rows of the groups an epoch
//! touched (`recompute`). An expression that fails on one row yields NULL for
//! that row and is counted (`StepContext::errors`), so one bad row never
//! stops a view or fails the writer's statement.

mod aggregate;
mod backfill;
pub(crate) mod footprint;
mod join;
mod map;
mod multiset;
pub mod recompute;
pub mod runtime;
mod source;
#[cfg(test)]
pub(crate) mod testing;
mod top_n;
mod union;
pub mod zset;

pub use aggregate::{AggregateCall, HashAggregate, Kind as AggregateKind};
pub use join::{JoinOperator, JoinSpec};
pub use map::Map;
pub use recompute::Recompute;
pub use source::{Constant, Source};
pub use top_n::TopN;
pub use union::Union;
pub use zset::ZBatch;

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;

use crate::catalog::Relation;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A broken invariant of the engine: a bug.
    #[error("internal error in the streaming engine: {0}")]
    Internal(String),
}

/// What one step of a dataflow sees besides its inputs' deltas.
pub struct StepContext<'a> {
    /// This epoch's change of every relation that changed (at a backfill:
    /// the whole contents of every input, as inserts).
    pub sources: &'a HashMap<Relation, ZBatch>,
    /// Rows whose expressions failed in this step and became NULL.
    pub errors: u64,
    /// The last error message, for the MV's error record.
    pub last_error: Option<String>,
    /// A backfill step that is not the last: an operator whose output
    /// would be retracted by its next step (an aggregate's totals) may
    /// keep it until a step without `hold`. Nobody reads the view before
    /// that step, and what an operator emits sums to the same whenever it
    /// is emitted.
    pub hold: bool,
}

impl<'a> StepContext<'a> {
    pub fn new(sources: &'a HashMap<Relation, ZBatch>) -> Self {
        StepContext {
            sources,
            errors: 0,
            last_error: None,
            hold: false,
        }
    }

    fn record_error(&mut self, error: &DataFusionError) {
        self.errors += 1;
        self.last_error = Some(error.to_string());
    }
}

/// One incremental operator. `step` is called once per epoch with the
/// delta of each input (in input order) and returns the delta of its output.
pub trait Operator: Send {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError>;
    /// One line for EXPLAIN: the operator, its keys and the state it keeps.
    fn describe(&self) -> String;
    /// Bytes of state the operator keeps between epochs (see `footprint`).
    /// Stateless operators keep the default.
    fn state_bytes(&self) -> usize {
        0
    }
}

/// An operator with the nodes that feed it.
pub struct Node {
    pub op: Box<dyn Operator>,
    pub inputs: Vec<Node>,
}

impl Node {
    pub fn new(op: impl Operator + 'static, inputs: Vec<Node>) -> Self {
        Node {
            op: Box::new(op),
            inputs,
        }
    }

    pub fn step(&mut self, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let inputs = self
            .inputs
            .iter_mut()
            .map(|input| input.step(ctx))
            .collect::<Result<Vec<_>, _>>()?;
        self.op.step(inputs, ctx)
    }

    /// The tree as indented lines, root first.
    pub fn explain(&self) -> Vec<String> {
        let mut lines = Vec::new();
        self.explain_into(0, &mut lines);
        lines
    }

    /// Each operator of the tree, in `explain` order: its position there,
    /// its name (the first word of its EXPLAIN line) and its state's bytes.
    pub fn footprint(&self) -> Vec<(usize, String, usize)> {
        let mut all = Vec::new();
        self.footprint_into(&mut all);
        all
    }

    fn footprint_into(&self, all: &mut Vec<(usize, String, usize)>) {
        let description = self.op.describe();
        let name = description
            .split([' ', '(', ':'])
            .next()
            .unwrap_or_default()
            .to_string();
        all.push((all.len(), name, self.op.state_bytes()));
        for input in &self.inputs {
            input.footprint_into(all);
        }
    }

    fn explain_into(&self, depth: usize, lines: &mut Vec<String>) {
        lines.push(format!("{}{}", "  ".repeat(depth), self.op.describe()));
        for input in &self.inputs {
            input.explain_into(depth + 1, lines);
        }
    }
}

/// Evaluates `expr` over `batch`. If the batch fails as a whole, rows are
/// evaluated one by one and each failing row yields NULL (and is counted):
/// RisingWave's rule, so a division by zero in one row does not stop a view.
pub fn evaluate(
    expr: &dyn PhysicalExpr,
    batch: &RecordBatch,
    ctx: &mut StepContext,
) -> Result<ArrayRef, StreamError> {
    evaluate_counting(expr, batch, None, ctx)
}

/// `evaluate`, counting a failing row only where `weights` adds it: the
/// retraction of a row that failed when it came in fails again, and is the
/// same error, not a new one.
pub fn evaluate_counting(
    expr: &dyn PhysicalExpr,
    batch: &RecordBatch,
    weights: Option<&[i64]>,
    ctx: &mut StepContext,
) -> Result<ArrayRef, StreamError> {
    let rows = batch.num_rows();
    match expr
        .evaluate(batch)
        .and_then(|value| value.into_array(rows))
    {
        Ok(array) => Ok(array),
        Err(_) => {
            let data_type = expr.data_type(&batch.schema())?;
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(rows);
            for i in 0..rows {
                let row = batch.slice(i, 1);
                match expr.evaluate(&row).and_then(|value| value.into_array(1)) {
                    Ok(array) => parts.push(array),
                    Err(error) => {
                        if weights.is_none_or(|w| w.get(i).is_none_or(|w| *w > 0)) {
                            ctx.record_error(&error);
                        }
                        parts.push(new_null_array(&data_type, 1));
                    }
                }
            }
            if parts.is_empty() {
                return Ok(new_null_array(&data_type, 0));
            }
            let refs: Vec<&dyn datafusion::arrow::array::Array> =
                parts.iter().map(|a| a.as_ref()).collect();
            Ok(concat(&refs)?)
        }
    }
}

/// The schema an operator's output carries: the plan node's, nullable.
pub fn output_schema(schema: &SchemaRef) -> SchemaRef {
    zset::nullable(schema)
}
