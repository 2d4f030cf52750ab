//! GROUP BY with count, sum, min and max: running totals per group.
//!
//! The fast path beside `Recompute`: when every aggregate of a GROUP BY is
//! count(*), count(x), sum(x), min(x) or max(x), without DISTINCT, FILTER or
//! ORDER BY, an epoch costs the size of its delta, not of the groups it
//! touches. Per group it keeps the number of input rows and, per aggregate:
//! - count: the count of non-NULL values (linear: f(a+b) = f(a)+f(b));
//! - sum: the sum and the count of non-NULL values (NULL when none), in i128
//!   for integers and decimals, so intermediate overflow cannot wrap;
//! - min/max: the multiset of non-NULL values (arrow-row bytes, which order
//!   as the values do), so deleting the current extreme finds the next one.
//!   min and max of the same expression share one multiset.
//!
//! At the end of a step each touched group emits -old +new (the output row
//! it emitted last is kept encoded); a group whose last row goes emits its
//! retraction and vanishes. A global aggregate (no GROUP BY) always has its
//! one row, as in PostgreSQL (count 0, sum/min/max NULL over no rows).
//!
//! # Invariants
//! - `groups[k].rows` is the number of live input rows with key k; every
//!   accumulator equals its aggregate over exactly those rows.
//! - `groups[k].emitted` is the output row last emitted for k and not
//!   retracted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    RecordBatchOptions, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef,
};
use datafusion::physical_expr::PhysicalExpr;

use super::zset::RowCodec;
use super::{Operator, StepContext, StreamError, ZBatch, evaluate, output_schema};

/// One aggregate of the select list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Count,
    Sum,
    Min,
    Max,
}

/// What the planner hands over: each aggregate's kind and argument.
pub struct AggregateCall {
    pub kind: Kind,
    pub arg: Arc<dyn PhysicalExpr>,
}

/// How a sum adds: decided by the argument's type.
#[derive(Debug, Clone, Copy)]
enum Adder {
    Int,
    Float,
    /// Decimal128 of this scale.
    Decimal,
}

enum Acc {
    Count(i64),
    SumInt {
        sum: i128,
        n: i64,
    },
    SumFloat {
        sum: f64,
        n: i64,
    },
    /// min/max: the value multiset `multiset_of` names.
    Extreme,
}

/// The multiset of one min/max argument's values in a group. Integers are
/// kept as i64 keys (about a third of the memory of encoded bytes: this is
/// most of the state of a min/max view).
#[derive(Clone)]
enum Values {
    Bytes(BTreeMap<Box<[u8]>, i64>),
    Ints(BTreeMap<i64, i64>),
}

fn add_value<K: Ord>(values: &mut BTreeMap<K, i64>, value: K, weight: i64) {
    match values.get_mut(&value) {
        Some(count) => {
            *count += weight;
            if *count == 0 {
                values.remove(&value);
            }
        }
        None => {
            values.insert(value, weight);
        }
    }
}

struct Group {
    rows: i64,
    accs: Vec<Acc>,
    values: Vec<Values>,
    emitted: Option<Box<[u8]>>,
}

pub struct HashAggregate {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    calls: Vec<AggregateCall>,
    adders: Vec<Option<Adder>>,
    /// For each aggregate, which multiset it reads (min/max) and the codec
    /// of its values.
    multiset_of: Vec<Option<usize>>,
    value_codecs: Vec<RowCodec>,
    /// Per multiset: whether its values are integers, kept as i64.
    int_values: Vec<bool>,
    key_codec: RowCodec,
    output_codec: RowCodec,
    schema: SchemaRef,
    global: bool,
    started: bool,
    groups: HashMap<Box<[u8]>, Group>,
    description: String,
}

impl HashAggregate {
    /// `None` when an aggregate's argument has a type the running sums do
    /// not handle (the planner then uses `Recompute`).
    pub fn try_new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        calls: Vec<AggregateCall>,
        input: &SchemaRef,
        schema: SchemaRef,
        description: String,
    ) -> Result<Option<Self>, StreamError> {
        let mut adders = Vec::with_capacity(calls.len());
        let mut multiset_of = Vec::with_capacity(calls.len());
        let mut value_codecs: Vec<RowCodec> = Vec::new();
        let mut int_values: Vec<bool> = Vec::new();
        let mut multiset_args: Vec<String> = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let ty = call.arg.data_type(input)?;
            let out = schema.field(keys.len() + i).data_type().clone();
            match call.kind {
                Kind::Count => {
                    adders.push(None);
                    multiset_of.push(None);
                }
                Kind::Sum => {
                    let adder = match (&ty, &out) {
                        (t, DataType::Int64) if t.is_integer() => Adder::Int,
                        (t, DataType::UInt64) if t.is_integer() => Adder::Int,
                        (DataType::Decimal128(_, s), DataType::Decimal128(_, so)) if s == so => {
                            Adder::Decimal
                        }
                        (t, DataType::Float64) if t.is_floating() => Adder::Float,
                        _ => return Ok(None),
                    };
                    adders.push(Some(adder));
                    multiset_of.push(None);
                }
                Kind::Min | Kind::Max => {
                    adders.push(None);
                    let name = call.arg.to_string();
                    let slot = match multiset_args.iter().position(|a| *a == name) {
                        Some(slot) => slot,
                        None => {
                            multiset_args.push(name);
                            int_values.push(matches!(
                                ty,
                                DataType::Int8
                                    | DataType::Int16
                                    | DataType::Int32
                                    | DataType::Int64
                                    | DataType::UInt8
                                    | DataType::UInt16
                                    | DataType::UInt32
                            ));
                            value_codecs.push(RowCodec::new(&Arc::new(Schema::new(vec![
                                Field::new("v", ty.clone(), true),
                            ])))?);
                            multiset_args.len() - 1
                        }
                    };
                    multiset_of.push(Some(slot));
                }
            }
        }
        let key_fields: Vec<Field> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Ok(Field::new(format!("k{i}"), k.data_type(input)?, true)))
            .collect::<Result<Vec<_>, StreamError>>()?;
        Ok(Some(HashAggregate {
            global: keys.is_empty(),
            key_codec: RowCodec::new(&Arc::new(Schema::new(key_fields)))?,
            output_codec: RowCodec::new(&schema)?,
            schema: output_schema(&schema),
            keys,
            calls,
            adders,
            multiset_of,
            value_codecs,
            int_values,
            started: false,
            groups: HashMap::new(),
            description,
        }))
    }

    fn new_group(&self) -> Group {
        Group {
            rows: 0,
            accs: self
                .calls
                .iter()
                .enumerate()
                .map(|(i, call)| match (call.kind, self.adders[i]) {
                    (Kind::Count, _) => Acc::Count(0),
                    (Kind::Sum, Some(Adder::Float)) => Acc::SumFloat { sum: 0.0, n: 0 },
                    (Kind::Sum, _) => Acc::SumInt { sum: 0, n: 0 },
                    (Kind::Min | Kind::Max, _) => Acc::Extreme,
                })
                .collect(),
            values: self
                .int_values
                .iter()
                .map(|ints| {
                    if *ints {
                        Values::Ints(BTreeMap::new())
                    } else {
                        Values::Bytes(BTreeMap::new())
                    }
                })
                .collect(),
            emitted: None,
        }
    }

    /// The output rows of `keys` in the current state (None: no row).
    fn outputs(&self, keys: &[Box<[u8]>]) -> Result<Vec<Option<Box<[u8]>>>, StreamError> {
        let live: Vec<&Box<[u8]>> = keys
            .iter()
            .filter(|k| {
                self.groups
                    .get(*k)
                    .is_some_and(|g| g.rows > 0 || self.global)
            })
            .collect();
        let mut out = vec![None; keys.len()];
        if live.is_empty() {
            return Ok(out);
        }
        let n = live.len();
        let mut columns: Vec<ArrayRef> = if self.keys.is_empty() {
            Vec::new()
        } else {
            self.key_codec
                .decode(live.iter().map(|k| &k[..]))?
                .columns()
                .to_vec()
        };
        for (i, call) in self.calls.iter().enumerate() {
            let field = self.schema.field(self.keys.len() + i);
            let groups: Vec<&Group> = live.iter().map(|k| &self.groups[*k]).collect();
            let column: ArrayRef = match call.kind {
                Kind::Count => {
                    Arc::new(Int64Array::from_iter_values(groups.iter().map(
                        |g| match g.accs[i] {
                            Acc::Count(c) => c,
                            _ => 0,
                        },
                    )))
                }
                Kind::Sum => sum_column(&groups, i, field.data_type())?,
                Kind::Min | Kind::Max => {
                    let slot = self.multiset_of[i].unwrap_or(0);
                    let min = call.kind == Kind::Min;
                    let mut present = Vec::with_capacity(n);
                    let mut bytes: Vec<&[u8]> = Vec::new();
                    let mut ints: Vec<i64> = Vec::new();
                    for g in &groups {
                        let found = match &g.values[slot] {
                            Values::Bytes(values) => {
                                let extreme = if min {
                                    values.keys().next()
                                } else {
                                    values.keys().next_back()
                                };
                                extreme.map(|v| bytes.push(v)).is_some()
                            }
                            Values::Ints(values) => {
                                let extreme = if min {
                                    values.keys().next()
                                } else {
                                    values.keys().next_back()
                                };
                                extreme.map(|v| ints.push(*v)).is_some()
                            }
                        };
                        present.push(found);
                    }
                    let picked: ArrayRef = if self.int_values[slot] {
                        Arc::new(Int64Array::from(ints))
                    } else {
                        self.value_codecs[slot].decode(bytes)?.column(0).clone()
                    };
                    spread(&picked, &present, field.data_type())?
                }
            };
            columns.push(if column.data_type() == field.data_type() {
                column
            } else {
                cast(&column, field.data_type())?
            });
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let encoded = self.output_codec.encode(&batch)?;
        let mut next = 0;
        for (slot, key) in keys.iter().enumerate() {
            if live.get(next).is_some_and(|k| **k == *key) {
                out[slot] = Some(encoded.row(next).data().into());
                next += 1;
            }
        }
        Ok(out)
    }
}

/// The sums of aggregate `i` over `groups`, NULL where a group has no
/// non-NULL value, in the output type.
fn sum_column(groups: &[&Group], i: usize, out: &DataType) -> Result<ArrayRef, StreamError> {
    Ok(match out {
        DataType::Float64 => Arc::new(Float64Array::from(
            groups
                .iter()
                .map(|g| match g.accs[i] {
                    Acc::SumFloat { sum, n } if n > 0 => Some(sum),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Decimal128(p, s) => Arc::new(
            Decimal128Array::from(
                groups
                    .iter()
                    .map(|g| match g.accs[i] {
                        Acc::SumInt { sum, n } if n > 0 => Some(sum),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(*p, *s)?,
        ),
        _ => {
            let mut values = Vec::with_capacity(groups.len());
            for g in groups {
                values.push(match g.accs[i] {
                    Acc::SumInt { sum, n } if n > 0 => Some(i64::try_from(sum).map_err(|_| {
                        StreamError::DataFusion(datafusion::error::DataFusionError::Execution(
                            "bigint out of range".into(),
                        ))
                    })?),
                    _ => None,
                });
            }
            Arc::new(Int64Array::from(values))
        }
    })
}

/// `picked` (one value per present group) spread over all groups, NULL
/// where absent.
fn spread(picked: &ArrayRef, present: &[bool], ty: &DataType) -> Result<ArrayRef, StreamError> {
    if present.iter().all(|p| *p) {
        return Ok(picked.clone());
    }
    let mut indices: Vec<Option<u32>> = Vec::with_capacity(present.len());
    let mut next = 0u32;
    for p in present {
        if *p {
            indices.push(Some(next));
            next += 1;
        } else {
            indices.push(None);
        }
    }
    if picked.is_empty() {
        return Ok(new_null_array(ty, present.len()));
    }
    Ok(datafusion::arrow::compute::take(
        picked.as_ref(),
        &datafusion::arrow::array::UInt32Array::from(indices),
        None,
    )?)
}

impl Operator for HashAggregate {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let delta = inputs
            .into_iter()
            .next()
            .ok_or_else(|| StreamError::Internal("an aggregate needs an input".into()))?;
        let mut touched: HashSet<Box<[u8]>> = HashSet::new();
        if self.global && !self.started {
            touched.insert(Box::default());
            let group = self.new_group();
            self.groups.entry(Box::default()).or_insert(group);
        }
        self.started = true;
        if !delta.is_empty() {
            let rows = delta.rows();
            let keys = if self.keys.is_empty() {
                None
            } else {
                let columns = self
                    .keys
                    .iter()
                    .map(|k| evaluate(k.as_ref(), rows, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(self.key_codec.encode_columns(&columns)?)
            };
            // Arguments in the type their accumulator adds: integers as
            // Int64, floats as Float64, decimals as they are.
            let mut args = Vec::with_capacity(self.calls.len());
            for (i, call) in self.calls.iter().enumerate() {
                let arg = evaluate(call.arg.as_ref(), rows, ctx)?;
                args.push(match self.adders[i] {
                    Some(Adder::Int) if arg.data_type() != &DataType::Int64 => {
                        cast(&arg, &DataType::Int64)?
                    }
                    Some(Adder::Float) if arg.data_type() != &DataType::Float64 => {
                        cast(&arg, &DataType::Float64)?
                    }
                    _ => arg,
                });
            }
            // min/max values, encoded once per multiset, with the aggregate
            // whose argument they are.
            let mut encoded_values = Vec::with_capacity(self.value_codecs.len());
            for (slot, codec) in self.value_codecs.iter().enumerate() {
                let i = self
                    .multiset_of
                    .iter()
                    .position(|m| *m == Some(slot))
                    .ok_or_else(|| {
                        StreamError::Internal("a multiset without an aggregate".into())
                    })?;
                let encoded = if self.int_values[slot] {
                    None
                } else {
                    Some(codec.encode_columns(&[args[i].clone()])?)
                };
                let ints = if self.int_values[slot] {
                    Some(cast(&args[i], &DataType::Int64)?)
                } else {
                    None
                };
                encoded_values.push((i, encoded, ints));
            }
            let weights = delta.weights();
            for (row, w) in weights.iter().enumerate() {
                let key: &[u8] = match &keys {
                    None => &[],
                    Some(keys) => keys.row(row).data(),
                };
                // Look up by the borrowed bytes; allocate a key only for a
                // group or a touch seen for the first time.
                if !self.groups.contains_key(key) {
                    let group = self.new_group();
                    self.groups.insert(key.into(), group);
                }
                if !touched.contains(key) {
                    touched.insert(key.into());
                }
                let group = self
                    .groups
                    .get_mut(key)
                    .ok_or_else(|| StreamError::Internal("a group vanished".into()))?;
                group.rows += w;
                for (i, acc) in group.accs.iter_mut().enumerate() {
                    let arg = &args[i];
                    if arg.is_null(row) {
                        continue;
                    }
                    match acc {
                        Acc::Count(c) => *c += w,
                        Acc::SumInt { sum, n } => {
                            let value: i128 = match self.adders[i] {
                                Some(Adder::Decimal) => {
                                    arg.as_primitive::<Decimal128Type>().value(row)
                                }
                                _ => arg.as_primitive::<Int64Type>().value(row).into(),
                            };
                            *sum += value * i128::from(*w);
                            *n += w;
                        }
                        Acc::SumFloat { sum, n } => {
                            *sum += arg.as_primitive::<Float64Type>().value(row) * *w as f64;
                            *n += w;
                        }
                        Acc::Extreme => {}
                    }
                }
                for (slot, (i, encoded, ints)) in encoded_values.iter().enumerate() {
                    if args[*i].is_null(row) {
                        continue;
                    }
                    match (&mut group.values[slot], encoded, ints) {
                        (Values::Ints(values), _, Some(ints)) => {
                            add_value(values, ints.as_primitive::<Int64Type>().value(row), *w)
                        }
                        (Values::Bytes(values), Some(encoded), _) => {
                            let value = encoded.row(row).data();
                            match values.get_mut(value) {
                                Some(count) => {
                                    *count += w;
                                    if *count == 0 {
                                        values.remove(value);
                                    }
                                }
                                None => {
                                    values.insert(value.into(), *w);
                                }
                            }
                        }
                        _ => {
                            return Err(StreamError::Internal(
                                "a min/max multiset of the wrong kind".into(),
                            ));
                        }
                    }
                }
            }
        }
        if touched.is_empty() {
            return Ok(ZBatch::empty(self.schema.clone()));
        }
        let touched: Vec<Box<[u8]>> = touched.into_iter().collect();
        let outputs = self.outputs(&touched)?;
        let mut rows: Vec<Box<[u8]>> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for (key, new) in touched.iter().zip(outputs) {
            let Some(group) = self.groups.get_mut(key) else {
                continue;
            };
            if group.emitted == new {
                continue;
            }
            if let Some(old) = group.emitted.take() {
                rows.push(old);
                weights.push(-1);
            }
            if let Some(new) = new {
                rows.push(new.clone());
                weights.push(1);
                group.emitted = Some(new);
            }
            if group.rows == 0 && group.emitted.is_none() {
                self.groups.remove(key);
            }
        }
        super::zset::weighted_rows(
            &self.output_codec,
            rows.iter().map(|r| &r[..]).collect(),
            weights,
        )
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::stream::testing::Harness;

    type Row = (Option<i64>, Option<i64>, Option<&'static str>);

    fn exercise(sql: &str) {
        let rows: Vec<Row> = vec![
            (Some(1), Some(5), Some("a")),
            (Some(1), Some(3), Some("b")),
            (Some(1), Some(5), Some("a")),
            (Some(2), None, Some("c")),
            (None, Some(7), None),
            (Some(2), Some(-1), Some("d")),
        ];
        let mut h = Harness::new(sql);
        assert!(h.explain().contains("running totals"), "{}", h.explain());
        h.check();
        h.insert("t", &rows[..3]);
        h.check();
        h.insert("t", &rows[3..]);
        h.check();
        // The current minimum and maximum go, and one of two copies.
        h.delete("t", &[rows[1], rows[0]]);
        h.check();
        h.epoch(&[
            ("t", -1, &rows[3..4]),
            ("t", 1, &[(Some(2), Some(9), Some("e"))]),
        ]);
        h.check();
        h.delete(
            "t",
            &[rows[2], rows[4], rows[5], (Some(2), Some(9), Some("e"))],
        );
        h.check();
    }

    #[test]
    fn counts_sums_and_extremes_per_group() {
        exercise(
            "SELECT k, count(*) AS n, count(v), sum(v), min(v), max(v), min(s), max(s) FROM t GROUP BY k",
        );
        exercise(
            "SELECT k % 2 AS p, s IS NULL AS blank, sum(v * 2), max(v) FROM t GROUP BY k % 2, s IS NULL",
        );
    }

    #[test]
    fn float_and_numeric_sums() {
        exercise(
            "SELECT k, sum(CAST(v AS double precision)) AS f, sum(v * 1.5) AS d FROM t GROUP BY k",
        );
    }

    #[test]
    fn a_global_aggregate_has_its_row_over_nothing() {
        exercise("SELECT count(*), count(s), sum(v), min(v), max(s) FROM t");
        exercise("SELECT count(*) FROM t");
    }

    #[test]
    fn having_filters_the_totals() {
        exercise("SELECT k, sum(v) AS total FROM t GROUP BY k HAVING count(*) > 1");
    }
}
