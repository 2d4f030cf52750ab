//! Weighted batches: the one data type that flows between operators.
//!
//! A `ZBatch` is a Z-set in Arrow form: the rows of a `RecordBatch` and,
//! beside them (not as a column, so the row schema stays the query's), an
//! `Int64` weight per row: +1 an insert, -1 a delete, an update is -old +new.
//! Equal rows may appear several times; their meaning is the sum of their
//! weights, which `consolidate` computes.
//!
//! `RowCodec` turns rows into arrow-row bytes and back. Those bytes compare
//! equal exactly when the rows do (NULLs included) and, with sort options,
//! order as the rows do, which is what the keyed state of every stateful
//! operator is built on.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array, new_null_array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::HashMap;

use super::StreamError;

#[derive(Debug, Clone)]
pub struct ZBatch {
    rows: RecordBatch,
    weights: Int64Array,
}

impl ZBatch {
    pub fn try_new(rows: RecordBatch, weights: Int64Array) -> Result<Self, StreamError> {
        if rows.num_rows() != weights.len() {
            return Err(StreamError::Internal(format!(
                "{} rows with {} weights",
                rows.num_rows(),
                weights.len()
            )));
        }
        Ok(ZBatch { rows, weights })
    }

    pub fn empty(schema: SchemaRef) -> Self {
        ZBatch {
            rows: RecordBatch::new_empty(schema),
            weights: Int64Array::from(Vec::<i64>::new()),
        }
    }

    /// Every row with the same weight.
    pub fn uniform(rows: RecordBatch, weight: i64) -> Self {
        let weights = Int64Array::from(vec![weight; rows.num_rows()]);
        ZBatch { rows, weights }
    }

    /// Other rows (as many) with these weights, which are shared, not
    /// copied.
    pub fn with_rows(&self, rows: RecordBatch) -> Result<Self, StreamError> {
        Self::try_new(rows, self.weights.clone())
    }

    pub fn rows(&self) -> &RecordBatch {
        &self.rows
    }

    pub fn weights(&self) -> &[i64] {
        self.weights.values()
    }

    pub fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }

    pub fn len(&self) -> usize {
        self.rows.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.num_rows() == 0
    }

    /// The same rows with another schema of the same types (names and
    /// qualifiers differ between plan nodes, the data does not).
    pub fn with_schema(self, schema: SchemaRef) -> Result<Self, StreamError> {
        let rows = rebatch(&nullable(&schema), &self.rows)?;
        Ok(ZBatch {
            rows,
            weights: self.weights,
        })
    }

    pub fn negate(&self) -> Self {
        let weights: Int64Array = self.weights.values().iter().map(|w| Some(-w)).collect();
        ZBatch {
            rows: self.rows.clone(),
            weights,
        }
    }

    /// All parts as one batch, in `schema`.
    pub fn concat(schema: &SchemaRef, parts: &[ZBatch]) -> Result<Self, StreamError> {
        let parts: Vec<&ZBatch> = parts.iter().filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [] => return Ok(ZBatch::empty(schema.clone())),
            [one] => return (*one).clone().with_schema(schema.clone()),
            _ => {}
        }
        let target = nullable(schema);
        let batches = parts
            .iter()
            .map(|p| rebatch(&target, &p.rows))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = concat_batches(&target, &batches)?;
        let weights: Int64Array = parts
            .iter()
            .flat_map(|p| p.weights.values().iter().copied())
            .map(Some)
            .collect();
        Ok(ZBatch { rows, weights })
    }

    /// Equal rows merged by summing their weights; rows whose weights sum to
    /// zero dropped. The first occurrence of each row keeps its place.
    pub fn consolidate(&self) -> Result<Self, StreamError> {
        if self.len() <= 1 {
            return Ok(if self.weights().first() == Some(&0) {
                ZBatch::empty(self.schema())
            } else {
                self.clone()
            });
        }
        let codec = RowCodec::new(&self.schema())?;
        let encoded = codec.encode(&self.rows)?;
        let mut slots: HashMap<&[u8], usize> = HashMap::with_capacity(self.len());
        let mut first: Vec<u32> = Vec::new();
        let mut sums: Vec<i64> = Vec::new();
        for (i, w) in self.weights().iter().enumerate() {
            let slot = *slots.entry(encoded.row(i).data()).or_insert_with(|| {
                first.push(i as u32);
                sums.push(0);
                sums.len() - 1
            });
            sums[slot] += w;
        }
        if sums.len() == self.len() && sums.iter().all(|w| *w != 0) {
            return Ok(self.clone());
        }
        let (keep, weights): (Vec<u32>, Vec<i64>) =
            first.into_iter().zip(sums).filter(|(_, w)| *w != 0).unzip();
        let rows = take_rows(&self.rows, &UInt32Array::from(keep))?;
        Ok(ZBatch {
            rows,
            weights: Int64Array::from(weights),
        })
    }

    /// The rows repeated as often as their weight says: the multiset a batch
    /// query would see. Fails on a negative weight, which no accumulated
    /// relation may hold.
    pub fn expand(&self) -> Result<RecordBatch, StreamError> {
        if self.weights().iter().all(|w| *w == 1) {
            return Ok(self.rows.clone());
        }
        let mut indices = Vec::with_capacity(self.len());
        for (i, w) in self.weights().iter().enumerate() {
            if *w < 0 {
                return Err(StreamError::Internal(format!(
                    "a relation holds a row {} times",
                    w
                )));
            }
            indices.extend(std::iter::repeat_n(i as u32, *w as usize));
        }
        Ok(take_rows(&self.rows, &UInt32Array::from(indices))?)
    }
}

/// The rows of `batch` at `indices`, in that order; unlike arrow's
/// `take_record_batch`, also for a batch without columns.
pub fn take_rows(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch, ArrowError> {
    if batch.num_columns() > 0 {
        return take_record_batch(batch, indices);
    }
    RecordBatch::try_new_with_options(
        batch.schema(),
        Vec::new(),
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )
}

/// `batch`'s columns under another schema of the same types; keeps the row
/// count when there are no columns.
pub fn rebatch(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new_with_options(
        schema.clone(),
        batch.columns().to_vec(),
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// `schema` with every field nullable: operator output built from row bytes
/// or outer-join padding may hold NULLs where the plan's schema, derived
/// without knowing about retractions, says it cannot.
pub fn nullable(schema: &SchemaRef) -> SchemaRef {
    if schema.fields().iter().all(|f| f.is_nullable()) {
        return schema.clone();
    }
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// Rows of one schema to arrow-row bytes and back.
///
/// A schema without columns (`SELECT FROM t`, the probe side of EXISTS)
/// still has rows; arrow-row cannot encode zero columns, so such rows are
/// encoded as one NULL column, which every row shares.
pub struct RowCodec {
    schema: SchemaRef,
    converter: RowConverter,
    no_columns: bool,
}

impl RowCodec {
    pub fn new(schema: &SchemaRef) -> Result<Self, ArrowError> {
        let no_columns = schema.fields().is_empty();
        let fields = if no_columns {
            vec![SortField::new(DataType::Null)]
        } else {
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect()
        };
        Ok(RowCodec {
            schema: nullable(schema),
            converter: RowConverter::new(fields)?,
            no_columns,
        })
    }

    /// A codec whose bytes sort as the given sort fields do.
    pub fn sorted(schema: &SchemaRef, fields: Vec<SortField>) -> Result<Self, ArrowError> {
        Ok(RowCodec {
            schema: nullable(schema),
            converter: RowConverter::new(fields)?,
            no_columns: false,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows, ArrowError> {
        if self.no_columns {
            return self
                .converter
                .convert_columns(&[new_null_array(&DataType::Null, batch.num_rows())]);
        }
        self.encode_columns(batch.columns())
    }

    pub fn encode_columns(&self, columns: &[ArrayRef]) -> Result<Rows, ArrowError> {
        self.converter.convert_columns(columns)
    }

    /// Rows from their bytes, in the order given.
    pub fn decode<'a, I>(&self, rows: I) -> Result<RecordBatch, ArrowError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let parser = self.converter.parser();
        let columns = self
            .converter
            .convert_rows(rows.into_iter().map(|bytes| parser.parse(bytes)))?;
        if self.no_columns {
            let count = columns.first().map_or(0, |c| c.len());
            return RecordBatch::try_new_with_options(
                self.schema.clone(),
                Vec::new(),
                &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(count)),
            );
        }
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// A weighted multiset of encoded rows: the accumulated contents of a
/// relation inside an operator.
pub type RowCounts = HashMap<Box<[u8]>, i64>;

/// Adds `weight` to `row` in `counts`, removing the row when it reaches zero.
pub fn add_count(counts: &mut RowCounts, row: &[u8], weight: i64) {
    if let Some(count) = counts.get_mut(row) {
        *count += weight;
        if *count == 0 {
            counts.remove(row);
        }
    } else if weight != 0 {
        counts.insert(row.into(), weight);
    }
}

/// The Z-set `new - old` of two multisets of encoded rows, decoded.
pub fn difference(
    codec: &RowCodec,
    old: &RowCounts,
    new: &RowCounts,
) -> Result<ZBatch, StreamError> {
    let mut rows: Vec<&[u8]> = Vec::new();
    let mut weights: Vec<i64> = Vec::new();
    for (row, w) in new {
        let change = w - old.get(row).copied().unwrap_or(0);
        if change != 0 {
            rows.push(row);
            weights.push(change);
        }
    }
    for (row, w) in old {
        if !new.contains_key(row) {
            rows.push(row);
            weights.push(-w);
        }
    }
    weighted_rows(codec, rows, weights)
}

/// Decodes `rows` into a batch with the given weights.
pub fn weighted_rows(
    codec: &RowCodec,
    rows: Vec<&[u8]>,
    weights: Vec<i64>,
) -> Result<ZBatch, StreamError> {
    if rows.is_empty() {
        return Ok(ZBatch::empty(codec.schema().clone()));
    }
    let batch = codec.decode(rows)?;
    ZBatch::try_new(batch, Int64Array::from(weights))
}

#[cfg(test)]
pub(crate) mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::arrow::util::display::array_value_to_string;

    use super::*;

    /// A two-column (bigint, text) batch from `(weight, k, s)` triples; `None`
    /// is NULL.
    pub fn zbatch(rows: &[(i64, Option<i64>, Option<&str>)]) -> ZBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        ZBatch::try_new(
            batch,
            Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        )
        .unwrap()
    }

    /// A batch as sorted "weight col col ..." lines, for comparisons.
    pub fn lines(batch: &ZBatch) -> Vec<String> {
        let consolidated = batch.consolidate().unwrap();
        let mut out: Vec<String> = (0..consolidated.len())
            .map(|i| {
                let mut line = format!("{:+}", consolidated.weights()[i]);
                for column in consolidated.rows().columns() {
                    let value = if column.is_null(i) {
                        "NULL".to_string()
                    } else {
                        array_value_to_string(column, i).unwrap()
                    };
                    line.push(' ');
                    line.push_str(&value);
                }
                line
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn consolidate_sums_equal_rows_and_drops_zeros() {
        let batch = zbatch(&[
            (1, Some(1), Some("a")),
            (1, Some(1), Some("a")),
            (-1, Some(2), None),
            (1, Some(2), None),
            (1, None, None),
        ]);
        assert_eq!(lines(&batch), vec!["+1 NULL NULL", "+2 1 a"]);
    }

    #[test]
    fn expand_repeats_rows_and_refuses_negative_counts() {
        let batch = zbatch(&[(2, Some(1), Some("a")), (1, Some(3), None)]);
        assert_eq!(batch.expand().unwrap().num_rows(), 3);
        assert!(batch.negate().expand().is_err());
    }

    #[test]
    fn codec_round_trips_and_differences() {
        let batch = zbatch(&[(1, Some(1), Some("a")), (1, None, Some("b"))]);
        let codec = RowCodec::new(&batch.schema()).unwrap();
        let rows = codec.encode(batch.rows()).unwrap();
        let mut old = RowCounts::new();
        add_count(&mut old, rows.row(0).data(), 1);
        let mut new = old.clone();
        add_count(&mut new, rows.row(0).data(), -1);
        add_count(&mut new, rows.row(1).data(), 2);
        assert!(new.len() == 1);
        let diff = difference(&codec, &old, &new).unwrap();
        assert_eq!(lines(&diff), vec!["+2 NULL b", "-1 1 a"]);
    }
}
