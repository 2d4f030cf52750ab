//! ORDER BY ... LIMIT n [OFFSET m]: the first rows of the input in order.
//!
//! Keeps every live row, not just the top n, ordered by its sort key
//! (arrow-row bytes, which order as the ORDER BY does, NULLS FIRST/LAST and
//! DESC included) and then by the row itself, so equal keys have a fixed
//! order. A retraction of a top row pulls row n+1 into view. The output is
//! recomputed from the ordered state when the input changed and emitted as
//! new - old: O(n + m) per changed epoch, plus O(log N) per input row.
//!
//! # Invariants
//! - `rows` holds exactly the live input rows; `output` exactly the rows
//!   emitted and not retracted, which are rows m+1 .. m+n of `rows` in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::SortField;
use datafusion::physical_expr::PhysicalSortExpr;

use super::footprint;
use super::zset::{RowCodec, RowCounts, add_count, difference};
use super::{Operator, StepContext, StreamError, ZBatch, evaluate, output_schema};

/// A row's sort key and the row itself, both encoded.
type SortedRow = (Box<[u8]>, Box<[u8]>);

pub struct TopN {
    order: Vec<PhysicalSortExpr>,
    skip: usize,
    fetch: Option<usize>,
    key_codec: RowCodec,
    row_codec: RowCodec,
    schema: SchemaRef,
    /// (sort key, row) -> copies.
    rows: BTreeMap<SortedRow, i64>,
    output: RowCounts,
}

impl TopN {
    pub fn try_new(
        order: Vec<PhysicalSortExpr>,
        skip: usize,
        fetch: Option<usize>,
        schema: SchemaRef,
    ) -> Result<Self, StreamError> {
        let mut key_fields = Vec::with_capacity(order.len());
        let mut sort_fields = Vec::with_capacity(order.len());
        for (i, sort) in order.iter().enumerate() {
            let ty = sort.expr.data_type(&schema)?;
            key_fields.push(Field::new(format!("k{i}"), ty.clone(), true));
            sort_fields.push(SortField::new_with_options(ty, sort.options));
        }
        Ok(TopN {
            key_codec: RowCodec::sorted(&Arc::new(Schema::new(key_fields)), sort_fields)?,
            row_codec: RowCodec::new(&schema)?,
            schema: output_schema(&schema),
            order,
            skip,
            fetch,
            rows: BTreeMap::new(),
            output: RowCounts::new(),
        })
    }
}

impl Operator for TopN {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let delta = inputs
            .into_iter()
            .next()
            .ok_or_else(|| StreamError::Internal("a top-n needs an input".into()))?
            .consolidate()?;
        if delta.is_empty() {
            return Ok(ZBatch::empty(self.schema.clone()));
        }
        let keys = self
            .order
            .iter()
            .map(|s| evaluate(s.expr.as_ref(), delta.rows(), ctx))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = self.key_codec.encode_columns(&keys)?;
        let rows = self.row_codec.encode(delta.rows())?;
        for (i, w) in delta.weights().iter().enumerate() {
            let entry = (keys.row(i).data().into(), rows.row(i).data().into());
            let count = self.rows.entry(entry).or_insert(0);
            *count += w;
            if *count == 0 {
                self.rows
                    .remove(&(keys.row(i).data().into(), rows.row(i).data().into()));
            }
        }
        let mut new = RowCounts::new();
        let mut to_skip = self.skip;
        let mut left = self.fetch.unwrap_or(usize::MAX);
        for ((_, row), count) in &self.rows {
            if left == 0 {
                break;
            }
            let mut count = usize::try_from(*count).map_err(|_| {
                StreamError::Internal("the top-n state holds a negative count".into())
            })?;
            let skipped = count.min(to_skip);
            to_skip -= skipped;
            count -= skipped;
            let taken = count.min(left);
            left -= taken;
            if taken > 0 {
                add_count(&mut new, row, taken as i64);
            }
        }
        let out = difference(&self.row_codec, &self.output, &new)?;
        self.output = new;
        Ok(out)
    }

    fn describe(&self) -> String {
        format!(
            "TopN: order by [{}], offset {}, limit {}; state: all input rows in order",
            self.order
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.skip,
            self.fetch
                .map(|n| n.to_string())
                .unwrap_or_else(|| "none".into()),
        )
    }

    fn state_bytes(&self) -> usize {
        footprint::btree::<SortedRow, i64>(self.rows.len())
            + self
                .rows
                .keys()
                .map(|(key, row)| key.len() + row.len())
                .sum::<usize>()
            + footprint::row_counts(&self.output)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::arrow::compute::SortOptions;
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::stream::zset::tests::{lines, zbatch};

    #[test]
    fn a_retracted_top_row_pulls_the_next_one_in() {
        let first = zbatch(&[
            (1, Some(3), Some("c")),
            (1, Some(1), Some("a")),
            (1, Some(2), Some("b")),
            (1, None, Some("n")),
        ]);
        let order = vec![PhysicalSortExpr::new(
            Arc::new(Column::new("k", 0)),
            SortOptions {
                descending: false,
                nulls_first: false,
            },
        )];
        let mut top = TopN::try_new(order, 0, Some(2), first.schema()).unwrap();
        let sources = HashMap::new();
        let mut ctx = StepContext::new(&sources);
        let out = top.step(vec![first], &mut ctx).unwrap();
        assert_eq!(lines(&out), vec!["+1 1 a", "+1 2 b"]);
        let out = top
            .step(vec![zbatch(&[(-1, Some(1), Some("a"))])], &mut ctx)
            .unwrap();
        assert_eq!(lines(&out), vec!["+1 3 c", "-1 1 a"]);
        let out = top
            .step(
                vec![zbatch(&[
                    (-1, Some(3), Some("c")),
                    (-1, Some(2), Some("b")),
                ])],
                &mut ctx,
            )
            .unwrap();
        assert_eq!(lines(&out), vec!["+1 NULL n", "-1 2 b", "-1 3 c"]);
    }
}

#[cfg(test)]
mod planned {
    use crate::stream::testing::Harness;

    #[test]
    fn order_by_limit_offset_follows_deletes() {
        for sql in [
            "SELECT k, v, s FROM t ORDER BY v DESC, k, s LIMIT 2",
            "SELECT k, v, s FROM t ORDER BY v NULLS FIRST, k, s LIMIT 2 OFFSET 1",
        ] {
            let mut h = Harness::new(sql);
            h.insert(
                "t",
                &[
                    (Some(1), Some(5), Some("a")),
                    (Some(2), Some(9), Some("b")),
                    (Some(3), None, Some("c")),
                    (Some(4), Some(7), Some("d")),
                ],
            );
            h.check();
            h.delete("t", &[(Some(2), Some(9), Some("b"))]);
            h.check();
            h.insert("t", &[(Some(5), Some(8), None)]);
            h.delete("t", &[(Some(3), None, Some("c"))]);
            h.check();
        }
    }
}
