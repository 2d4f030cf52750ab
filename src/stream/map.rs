//! Filter and projection: linear operators, row by row, weights untouched.
//!
//! A row passes the filter when its predicate is true (NULL and errors drop
//! it, as in a WHERE clause); the projection evaluates the select list. No
//! state: d(map(A)) = map(dA).

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
use datafusion::arrow::compute::{filter, filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::{Operator, StepContext, StreamError, ZBatch, evaluate_counting, output_schema};

pub struct Map {
    predicate: Option<Arc<dyn PhysicalExpr>>,
    /// The select list; `None` keeps the input columns.
    projection: Option<Vec<Arc<dyn PhysicalExpr>>>,
    schema: SchemaRef,
}

impl Map {
    pub fn filter(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Self {
        Map {
            predicate: Some(predicate),
            projection: None,
            schema: output_schema(&schema),
        }
    }

    pub fn project(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Map {
            predicate: None,
            projection: Some(exprs),
            schema: output_schema(&schema),
        }
    }
}

impl Operator for Map {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let delta = inputs
            .into_iter()
            .next()
            .unwrap_or_else(|| ZBatch::empty(self.schema.clone()));
        if delta.is_empty() {
            return Ok(ZBatch::empty(self.schema.clone()));
        }
        let mut rows = delta.rows().clone();
        let mut weights = Int64Array::from(delta.weights().to_vec());
        if let Some(predicate) = &self.predicate {
            let mask = evaluate_counting(predicate.as_ref(), &rows, Some(weights.values()), ctx)?;
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| StreamError::Internal("a filter predicate is not boolean".into()))?;
            let mask = if mask.null_count() > 0 {
                prep_null_mask_filter(mask)
            } else {
                mask.clone()
            };
            rows = filter_record_batch(&rows, &mask)?;
            weights = filter(&weights, &mask)?
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| StreamError::Internal("weights are not Int64".into()))?;
        }
        let rows = match &self.projection {
            None => super::zset::rebatch(&self.schema, &rows)?,
            Some(exprs) => {
                let columns = exprs
                    .iter()
                    .map(|e| evaluate_counting(e.as_ref(), &rows, Some(weights.values()), ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    columns,
                    &datafusion::arrow::array::RecordBatchOptions::new()
                        .with_row_count(Some(rows.num_rows())),
                )?
            }
        };
        ZBatch::try_new(rows, weights)
    }

    fn describe(&self) -> String {
        match (&self.predicate, &self.projection) {
            (Some(p), _) => format!("Filter: {p} (stateless)"),
            (None, Some(exprs)) => format!(
                "Project: {} (stateless)",
                exprs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, None) => "Pass (stateless)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stream::testing::Harness;

    #[test]
    fn filters_and_projections_follow_inserts_and_deletes() {
        let mut h = Harness::new(
            "SELECT k * 2 AS d, upper(s) AS u, CASE WHEN v IS NULL THEN 'none' ELSE 'some' END AS c \
             FROM t WHERE v > 0 OR s LIKE 'a%'",
        );
        h.insert(
            "t",
            &[
                (Some(1), Some(1), Some("a")),
                (Some(2), Some(-1), Some("b")),
                (Some(3), None, Some("ab")),
            ],
        );
        h.check();
        h.delete("t", &[(Some(1), Some(1), Some("a"))]);
        h.insert(
            "t",
            &[(Some(1), Some(5), None), (Some(3), None, Some("ab"))],
        );
        h.check();
        h.delete(
            "t",
            &[(Some(3), None, Some("ab")), (Some(3), None, Some("ab"))],
        );
        h.check();
    }

    #[test]
    fn a_failing_row_becomes_null_and_is_counted() {
        let mut h = Harness::new("SELECT k, 10 / v AS q FROM t");
        h.insert(
            "t",
            &[(Some(1), Some(0), Some("a")), (Some(2), Some(5), Some("b"))],
        );
        assert_eq!(h.output(), vec!["1 NULL", "2 2"]);
        assert_eq!(h.errors(), 1);
    }
}
