//! GROUP BY with count, sum, min and max: running totals per group.
//!
//! The fast path beside `Recompute`: when every aggregate of a GROUP BY is
//! count(*), count(x), sum(x), min(x) or max(x), without DISTINCT, FILTER or
//! ORDER BY, an epoch costs the size of its delta, not of the groups it
//! touches. Per group it keeps the number of input rows and, per aggregate:
//! - count: the count of non-NULL values (linear: f(a+b) = f(a)+f(b));
//!   count(*) is the row count itself and keeps nothing;
//! - sum: the sum and the count of non-NULL values (NULL when none), in i128
//!   for integers and decimals, so intermediate overflow cannot wrap;
//! - min/max: the multiset of non-NULL values (`Multiset`), so deleting the
//!   current extreme finds the next one. min and max of the same expression
//!   share one multiset.
//!
//! The work is vectorised, so that a backfill of millions of rows costs
//! about what DataFusion's own aggregate does: DataFusion's `GroupValues`
//! turns each batch of keys into dense group ids, and every total is a
//! column indexed by group id. Values for min/max are bucketed by group
//! with a counting sort when a delta is large, and each group's multiset is
//! then loaded from its sorted run in one pass.
//!
//! At the end of a step each touched group emits -old +new (the output row
//! it emitted last is kept encoded); a group whose last row goes emits its
//! retraction and becomes dead. Dead groups keep their id until they are
//! more than half of all groups; then the ids are rebuilt from the live
//! keys. A global aggregate (no GROUP BY) always has its one row, as in
//! PostgreSQL (count 0, sum/min/max NULL over no rows).
//!
//! # Invariants
//! - Every per-group vector has one entry per group id `GroupValues` gave.
//! - `rows[g]` is the number of live input rows of group g; every total
//!   equals its aggregate over exactly those rows.
//! - `emitted[g]` is the output row last emitted for g and not retracted.
//! - `dead` is the number of groups with no rows and no emitted row.

use std::borrow::Borrow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch,
    RecordBatchOptions, UInt32Array, new_null_array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{cast, concat, filter, take};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema, SchemaRef};
use datafusion::logical_expr::EmitTo;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::footprint;
use super::multiset::Multiset;
use super::zset::RowCodec;
use super::{Operator, StepContext, StreamError, ZBatch, evaluate, output_schema};

/// Rows of keys interned at once: bounds `GroupValues`' scratch memory.
const INTERN_ROWS: usize = 65_536;
/// A delta at least this large (and not much smaller than the number of
/// groups) loads min/max values by counting sort instead of one by one.
const BULK_ROWS: usize = 4096;
/// Dead groups tolerated before ids are rebuilt (and then only when they
/// are more than half of all groups).
const DEAD_GROUPS: usize = 4096;

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

/// One aggregate's running totals, one entry per group id.
enum Totals {
    /// count(*) (a count of a non-NULL constant): the group's row count.
    Rows,
    Count(Vec<i64>),
    /// Integer or decimal sums (`decimal`: the argument is Decimal128 and
    /// is summed unscaled) and the count of non-NULL values.
    Int {
        decimal: bool,
        sum: Vec<i128>,
        n: Vec<i64>,
    },
    /// min or max: the extreme of multiset `slot`.
    Extreme {
        slot: usize,
        min: bool,
    },
}

/// The values of one min/max argument, a multiset per group.
enum Values {
    /// Integers that fit i64, kept as i64: about a third of the memory of
    /// encoded bytes, and this is most of the state of a min/max view.
    Ints(Vec<Multiset<i64>>),
    /// Anything else as arrow-row bytes, which order as the values do.
    Bytes {
        codec: RowCodec,
        sets: Vec<Multiset<Box<[u8]>>>,
    },
}

/// A min/max argument: the call whose argument it is, and its values.
struct Slot {
    call: usize,
    values: Values,
}

pub struct HashAggregate {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    key_schema: SchemaRef,
    calls: Vec<AggregateCall>,
    /// Dense ids of the key values; `None` for a global aggregate, whose
    /// one group is id 0.
    group_ids: Option<Box<dyn GroupValues>>,
    rows: Vec<i64>,
    totals: Vec<Totals>,
    slots: Vec<Slot>,
    emitted: Vec<Option<Box<[u8]>>>,
    /// The step that last touched each group: a touched set without a
    /// hash set.
    stamp: Vec<u64>,
    steps: u64,
    dead: usize,
    /// Groups touched by held backfill steps (`StepContext::hold`), whose
    /// output is not emitted yet.
    held: Vec<Touched>,
    output_codec: RowCodec,
    schema: SchemaRef,
    description: String,
}

/// The groups one step touched: each once, whether it was alive before
/// the step, and its key values (a column per key, a row per group).
struct Touched {
    groups: Vec<u32>,
    was_alive: Vec<bool>,
    keys: Vec<ArrayRef>,
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
        let mut totals = Vec::with_capacity(calls.len());
        let mut slots: Vec<Slot> = Vec::new();
        let mut slot_args: Vec<String> = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let ty = call.arg.data_type(input)?;
            let out = schema.field(keys.len() + i).data_type().clone();
            let constant = call
                .arg
                .downcast_ref::<Literal>()
                .is_some_and(|l| !l.value().is_null());
            totals.push(match call.kind {
                Kind::Count if constant => Totals::Rows,
                Kind::Count => Totals::Count(Vec::new()),
                Kind::Sum => match (&ty, &out) {
                    (t, DataType::Int64 | DataType::UInt64) if t.is_integer() => Totals::Int {
                        decimal: false,
                        sum: Vec::new(),
                        n: Vec::new(),
                    },
                    (DataType::Decimal128(_, s), DataType::Decimal128(_, so)) if s == so => {
                        Totals::Int {
                            decimal: true,
                            sum: Vec::new(),
                            n: Vec::new(),
                        }
                    }
                    // Floating-point sums are not kept running: a retraction
                    // cannot undo a rounding (1e20 + 1 - 1e20 is 0) nor a
                    // NaN, so they are recomputed per group from its rows.
                    _ => return Ok(None),
                },
                Kind::Min | Kind::Max => {
                    let name = call.arg.to_string();
                    let slot = match slot_args.iter().position(|a| *a == name) {
                        Some(slot) => slot,
                        None => {
                            slot_args.push(name);
                            let ints = matches!(
                                ty,
                                DataType::Int8
                                    | DataType::Int16
                                    | DataType::Int32
                                    | DataType::Int64
                                    | DataType::UInt8
                                    | DataType::UInt16
                                    | DataType::UInt32
                            );
                            let values = if ints {
                                Values::Ints(Vec::new())
                            } else {
                                Values::Bytes {
                                    codec: RowCodec::new(&Arc::new(Schema::new(vec![
                                        Field::new("v", ty.clone(), true),
                                    ])))?,
                                    sets: Vec::new(),
                                }
                            };
                            slots.push(Slot { call: i, values });
                            slots.len() - 1
                        }
                    };
                    Totals::Extreme {
                        slot,
                        min: call.kind == Kind::Min,
                    }
                }
            });
        }
        let key_schema: SchemaRef = Arc::new(Schema::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| Ok(Field::new(format!("k{i}"), k.data_type(input)?, true)))
                .collect::<Result<Vec<_>, StreamError>>()?,
        ));
        let group_ids = if keys.is_empty() {
            None
        } else {
            Some(new_group_values(key_schema.clone(), &GroupOrdering::None)?)
        };
        let mut aggregate = HashAggregate {
            output_codec: RowCodec::new(&schema)?,
            schema: output_schema(&schema),
            keys,
            key_schema,
            calls,
            group_ids,
            rows: Vec::new(),
            totals,
            slots,
            emitted: Vec::new(),
            stamp: Vec::new(),
            steps: 0,
            held: Vec::new(),
            dead: 0,
            description,
        };
        if aggregate.group_ids.is_none() {
            aggregate.grow(1);
        }
        Ok(Some(aggregate))
    }

    fn groups(&self) -> usize {
        self.rows.len()
    }

    fn alive(&self, group: usize) -> bool {
        self.rows[group] != 0 || self.emitted[group].is_some()
    }

    /// Extends every per-group vector to `groups` entries; new groups are
    /// dead until a row arrives.
    fn grow(&mut self, groups: usize) {
        let old = self.groups();
        if groups <= old {
            return;
        }
        self.dead += groups - old;
        self.rows.resize(groups, 0);
        self.emitted.resize(groups, None);
        self.stamp.resize(groups, 0);
        for totals in &mut self.totals {
            match totals {
                Totals::Count(counts) => counts.resize(groups, 0),
                Totals::Int { sum, n, .. } => {
                    sum.resize(groups, 0);
                    n.resize(groups, 0);
                }
                Totals::Rows | Totals::Extreme { .. } => {}
            }
        }
        for slot in &mut self.slots {
            match &mut slot.values {
                Values::Ints(sets) => sets.resize_with(groups, Multiset::default),
                Values::Bytes { sets, .. } => sets.resize_with(groups, Multiset::default),
            }
        }
    }

    /// The group id of every row of `keys`.
    fn intern(&mut self, keys: &[ArrayRef], rows: usize) -> Result<Vec<u32>, StreamError> {
        let Some(ids) = self.group_ids.as_mut() else {
            return Ok(vec![0; rows]);
        };
        let mut gids = Vec::with_capacity(rows);
        let mut part = Vec::new();
        let mut at = 0;
        while at < rows {
            let len = (rows - at).min(INTERN_ROWS);
            let slice: Vec<ArrayRef> = keys.iter().map(|k| k.slice(at, len)).collect();
            ids.intern(&slice, &mut part)?;
            for g in &part {
                gids.push(u32::try_from(*g).map_err(|_| {
                    StreamError::Internal("more than 2^32 groups in one aggregate".into())
                })?);
            }
            at += len;
        }
        let groups = ids.len();
        self.grow(groups);
        Ok(gids)
    }

    /// Rebuilds the group ids from the live groups' keys, dropping the
    /// state of dead groups.
    fn compact(&mut self) -> Result<(), StreamError> {
        if self.group_ids.is_none() {
            return Ok(());
        }
        let keep: Vec<bool> = (0..self.groups()).map(|g| self.alive(g)).collect();
        let Some(ids) = self.group_ids.as_mut() else {
            return Ok(());
        };
        let mask = BooleanArray::from(keep.clone());
        let keys = ids.emit(EmitTo::All)?;
        let live = keys
            .iter()
            .map(|k| Ok(filter(k.as_ref(), &mask)?))
            .collect::<Result<Vec<ArrayRef>, StreamError>>()?;
        let mut fresh = new_group_values(self.key_schema.clone(), &GroupOrdering::None)?;
        let mut gids = Vec::new();
        if live.first().is_some_and(|k| !k.is_empty()) {
            fresh.intern(&live, &mut gids)?;
        }
        if gids.iter().enumerate().any(|(i, g)| i != *g) {
            return Err(StreamError::Internal(
                "live group keys are not distinct".into(),
            ));
        }
        self.group_ids = Some(fresh);
        retain(&mut self.rows, &keep);
        retain(&mut self.emitted, &keep);
        retain(&mut self.stamp, &keep);
        for totals in &mut self.totals {
            match totals {
                Totals::Count(counts) => retain(counts, &keep),
                Totals::Int { sum, n, .. } => {
                    retain(sum, &keep);
                    retain(n, &keep);
                }
                Totals::Rows | Totals::Extreme { .. } => {}
            }
        }
        for slot in &mut self.slots {
            match &mut slot.values {
                Values::Ints(sets) => retain(sets, &keep),
                Values::Bytes { sets, .. } => retain(sets, &keep),
            }
        }
        self.dead = 0;
        Ok(())
    }

    /// The held steps' touched groups and `last`'s as one step's: each
    /// group once, alive as before the first step that touched it.
    fn release(&mut self, last: Touched) -> Result<Touched, StreamError> {
        let mut parts = std::mem::take(&mut self.held);
        if !last.groups.is_empty() {
            parts.push(last);
        }
        // A fresh stamp marks the groups already taken.
        self.steps += 1;
        let mark = self.steps;
        let mut groups = Vec::new();
        let mut was_alive = Vec::new();
        let mut picks: Vec<u32> = Vec::new();
        let mut offset = 0;
        for part in &parts {
            for (i, g) in part.groups.iter().enumerate() {
                if self.stamp[*g as usize] != mark {
                    self.stamp[*g as usize] = mark;
                    groups.push(*g);
                    was_alive.push(part.was_alive[i]);
                    picks.push((offset + i) as u32);
                }
            }
            offset += part.groups.len();
        }
        let picks = UInt32Array::from(picks);
        let width = parts.first().map_or(0, |p| p.keys.len());
        let keys = (0..width)
            .map(|k| {
                let columns: Vec<&dyn Array> = parts.iter().map(|p| p.keys[k].as_ref()).collect();
                Ok(take(concat(&columns)?.as_ref(), &picks, None)?)
            })
            .collect::<Result<Vec<ArrayRef>, StreamError>>()?;
        Ok(Touched {
            groups,
            was_alive,
            keys,
        })
    }

    /// Adds the delta's arguments into the totals and value multisets.
    fn accumulate(
        &mut self,
        rows: &RecordBatch,
        gids: &[u32],
        weights: &[i64],
        touched: &[u32],
        ctx: &mut StepContext,
    ) -> Result<(), StreamError> {
        let mut args = Vec::with_capacity(self.calls.len());
        for (call, totals) in self.calls.iter().zip(&self.totals) {
            args.push(match totals {
                Totals::Rows => None,
                _ => Some(evaluate(call.arg.as_ref(), rows, ctx)?),
            });
        }
        for (totals, arg) in self.totals.iter_mut().zip(&args) {
            let Some(arg) = arg else { continue };
            let nulls = arg.logical_nulls();
            let valid = |i: usize| nulls.as_ref().is_none_or(|b| b.is_valid(i));
            match totals {
                Totals::Count(counts) => {
                    for (i, (g, w)) in gids.iter().zip(weights).enumerate() {
                        if valid(i) {
                            counts[*g as usize] += w;
                        }
                    }
                }
                Totals::Int { decimal, sum, n } => {
                    let mut add = |i: usize, g: u32, w: i64, value: i128| {
                        if valid(i) {
                            sum[g as usize] += value * i128::from(w);
                            n[g as usize] += w;
                        }
                    };
                    if *decimal {
                        let values = arg.as_primitive::<Decimal128Type>().values();
                        for (i, (g, w)) in gids.iter().zip(weights).enumerate() {
                            add(i, *g, *w, values[i]);
                        }
                    } else {
                        let ints = cast(arg, &DataType::Int64)?;
                        let values = ints.as_primitive::<Int64Type>().values();
                        for (i, (g, w)) in gids.iter().zip(weights).enumerate() {
                            add(i, *g, *w, i128::from(values[i]));
                        }
                    }
                }
                Totals::Rows | Totals::Extreme { .. } => {}
            }
        }
        for slot in &mut self.slots {
            let arg = args[slot.call]
                .as_ref()
                .ok_or_else(|| StreamError::Internal("a min/max without its argument".into()))?;
            let nulls = arg.logical_nulls();
            let delta = DeltaRows {
                gids,
                weights,
                nulls: nulls.as_ref(),
                touched,
            };
            match &mut slot.values {
                Values::Ints(sets) => {
                    let ints = cast(arg, &DataType::Int64)?;
                    let values = ints.as_primitive::<Int64Type>().values();
                    add_values(sets, &delta, |i| &values[i], |v| *v);
                }
                Values::Bytes { codec, sets } => {
                    let encoded = codec.encode_columns(std::slice::from_ref(arg))?;
                    add_values(sets, &delta, |i| encoded.row(i).data(), |v| v.into());
                }
            }
        }
        Ok(())
    }

    /// The output row of each group in `touched` in the current state
    /// (None: no row); `keys` holds their key values, in the same order.
    fn outputs(
        &self,
        touched: &[u32],
        keys: &[ArrayRef],
    ) -> Result<Vec<Option<Box<[u8]>>>, StreamError> {
        let global = self.group_ids.is_none();
        let live: Vec<u32> = (0..touched.len() as u32)
            .filter(|at| global || self.rows[touched[*at as usize] as usize] > 0)
            .collect();
        let mut out = vec![None; touched.len()];
        if live.is_empty() {
            return Ok(out);
        }
        let groups: Vec<usize> = live
            .iter()
            .map(|at| touched[*at as usize] as usize)
            .collect();
        let positions = UInt32Array::from(live.clone());
        let mut columns: Vec<ArrayRef> = keys
            .iter()
            .map(|k| Ok(take(k.as_ref(), &positions, None)?))
            .collect::<Result<_, StreamError>>()?;
        for (i, totals) in self.totals.iter().enumerate() {
            let field = self.schema.field(self.keys.len() + i);
            let column: ArrayRef = match totals {
                Totals::Rows => Arc::new(Int64Array::from_iter_values(
                    groups.iter().map(|g| self.rows[*g]),
                )),
                Totals::Count(counts) => Arc::new(Int64Array::from_iter_values(
                    groups.iter().map(|g| counts[*g]),
                )),
                Totals::Int { sum, n, .. } => int_sums(&groups, sum, n, field.data_type())?,
                Totals::Extreme { slot, min } => {
                    self.extremes(&self.slots[*slot].values, &groups, *min, field.data_type())?
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
            &RecordBatchOptions::new().with_row_count(Some(groups.len())),
        )?;
        let encoded = self.output_codec.encode(&batch)?;
        for (row, at) in live.iter().enumerate() {
            out[*at as usize] = Some(encoded.row(row).data().into());
        }
        Ok(out)
    }

    /// The min or max of each group's values, NULL where it has none.
    fn extremes(
        &self,
        values: &Values,
        groups: &[usize],
        min: bool,
        ty: &DataType,
    ) -> Result<ArrayRef, StreamError> {
        fn pick<K: Ord>(set: &Multiset<K>, min: bool) -> Option<&K> {
            if min { set.first() } else { set.last() }
        }
        Ok(match values {
            Values::Ints(sets) => Arc::new(Int64Array::from(
                groups
                    .iter()
                    .map(|g| pick(&sets[*g], min).copied())
                    .collect::<Vec<_>>(),
            )),
            Values::Bytes { codec, sets } => {
                let picked: Vec<Option<&Box<[u8]>>> =
                    groups.iter().map(|g| pick(&sets[*g], min)).collect();
                let present: Vec<bool> = picked.iter().map(|p| p.is_some()).collect();
                let decoded = codec.decode(picked.iter().flatten().map(|b| &b[..]))?;
                spread(decoded.column(0), &present, ty)?
            }
        })
    }
}

/// Keeps the entries of `values` whose flag in `keep` is set.
fn retain<T>(values: &mut Vec<T>, keep: &[bool]) {
    let mut at = 0;
    values.retain(|_| {
        at += 1;
        keep[at - 1]
    });
}

/// The rows of one step's delta as the min/max multisets see them: each
/// row's group, weight and whether its value is NULL; and the groups the
/// step touched.
struct DeltaRows<'a> {
    gids: &'a [u32],
    weights: &'a [i64],
    nulls: Option<&'a NullBuffer>,
    touched: &'a [u32],
}

/// Adds each non-NULL row's value with its weight to its group's multiset.
/// A large delta is bucketed by group first (a counting sort) and each
/// touched group's run sorted, so that an empty multiset (every group at a
/// backfill) is loaded in one pass instead of by one insert per row.
fn add_values<'a, K, Q>(
    sets: &mut [Multiset<K>],
    delta: &DeltaRows,
    value: impl Fn(usize) -> &'a Q,
    make: impl Fn(&Q) -> K,
) where
    K: Ord + Borrow<Q>,
    Q: Ord + ?Sized + 'a,
{
    let DeltaRows {
        gids,
        weights,
        nulls,
        touched,
    } = *delta;
    let valid = |i: usize| nulls.is_none_or(|b| b.is_valid(i));
    if gids.len() < BULK_ROWS || gids.len() < sets.len() / 8 {
        for (i, (g, w)) in gids.iter().zip(weights).enumerate() {
            if valid(i) {
                sets[*g as usize].add(value(i), *w, &make);
            }
        }
        return;
    }
    let mut start = vec![0u32; sets.len() + 1];
    for (i, g) in gids.iter().enumerate() {
        if valid(i) {
            start[*g as usize + 1] += 1;
        }
    }
    for g in 1..start.len() {
        start[g] += start[g - 1];
    }
    let mut next: Vec<u32> = start[..sets.len()].to_vec();
    let mut order = vec![0u32; start[sets.len()] as usize];
    for (i, g) in gids.iter().enumerate() {
        if valid(i) {
            let at = &mut next[*g as usize];
            order[*at as usize] = i as u32;
            *at += 1;
        }
    }
    for g in touched {
        let g = *g as usize;
        let run = &mut order[start[g] as usize..start[g + 1] as usize];
        if run.is_empty() {
            continue;
        }
        run.sort_unstable_by(|a, b| value(*a as usize).cmp(value(*b as usize)));
        let set = &mut sets[g];
        if set.is_empty() {
            let distinct = 1 + run
                .windows(2)
                .filter(|pair| value(pair[0] as usize) != value(pair[1] as usize))
                .count();
            *set = Multiset::from_sorted(
                run.iter()
                    .map(|i| (make(value(*i as usize)), weights[*i as usize])),
                distinct,
            );
        } else {
            set.add_sorted(
                run.iter()
                    .map(|i| (value(*i as usize), weights[*i as usize])),
                &make,
            );
        }
    }
}

/// Integer or decimal sums of `groups`, NULL where a group has no non-NULL
/// value, in the output type.
fn int_sums(
    groups: &[usize],
    sum: &[i128],
    n: &[i64],
    out: &DataType,
) -> Result<ArrayRef, StreamError> {
    let sums = groups.iter().map(|g| (n[*g] > 0).then_some(sum[*g]));
    Ok(match out {
        DataType::Decimal128(p, s) => Arc::new(
            Decimal128Array::from(sums.collect::<Vec<_>>()).with_precision_and_scale(*p, *s)?,
        ),
        _ => {
            let mut values = Vec::with_capacity(groups.len());
            for total in sums {
                values.push(match total {
                    Some(total) => Some(i64::try_from(total).map_err(|_| {
                        StreamError::DataFusion(datafusion::error::DataFusionError::Execution(
                            "bigint out of range".into(),
                        ))
                    })?),
                    None => None,
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
    if picked.is_empty() {
        return Ok(new_null_array(ty, present.len()));
    }
    let mut next = 0u32;
    let indices: UInt32Array = present
        .iter()
        .map(|p| {
            p.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    Ok(take(picked.as_ref(), &indices, None)?)
}

impl Operator for HashAggregate {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let delta = inputs
            .into_iter()
            .next()
            .ok_or_else(|| StreamError::Internal("an aggregate needs an input".into()))?;
        self.steps += 1;
        let step = self.steps;
        // Each touched group once, with the delta row where it first
        // appears (its key) and whether it was alive before this step.
        let mut touched: Vec<u32> = Vec::new();
        let mut first_rows: Vec<u32> = Vec::new();
        let mut was_alive: Vec<bool> = Vec::new();
        if self.group_ids.is_none() && step == 1 {
            self.stamp[0] = step;
            touched.push(0);
            first_rows.push(0);
            was_alive.push(false);
        }
        let mut key_columns: Vec<ArrayRef> = Vec::new();
        if !delta.is_empty() {
            let rows = delta.rows();
            key_columns = self
                .keys
                .iter()
                .map(|k| evaluate(k.as_ref(), rows, ctx))
                .collect::<Result<Vec<_>, _>>()?;
            let gids = self.intern(&key_columns, rows.num_rows())?;
            let weights = delta.weights();
            for (i, (g, w)) in gids.iter().zip(weights).enumerate() {
                let g = *g as usize;
                if self.stamp[g] != step {
                    self.stamp[g] = step;
                    touched.push(g as u32);
                    first_rows.push(i as u32);
                    was_alive.push(self.alive(g));
                }
                self.rows[g] += w;
            }
            self.accumulate(rows, &gids, weights, &touched, ctx)?;
        }
        let first_rows = UInt32Array::from(first_rows);
        let keys = key_columns
            .iter()
            .map(|k| Ok(take(k.as_ref(), &first_rows, None)?))
            .collect::<Result<Vec<ArrayRef>, StreamError>>()?;
        let mut step_touched = Touched {
            groups: touched,
            was_alive,
            keys,
        };
        if ctx.hold {
            if !step_touched.groups.is_empty() {
                self.held.push(step_touched);
            }
            return Ok(ZBatch::empty(self.schema.clone()));
        }
        if !self.held.is_empty() {
            step_touched = self.release(step_touched)?;
        }
        let Touched {
            groups: touched,
            was_alive,
            keys,
        } = step_touched;
        if touched.is_empty() {
            return Ok(ZBatch::empty(self.schema.clone()));
        }
        let outputs = self.outputs(&touched, &keys)?;
        let mut rows: Vec<Box<[u8]>> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for ((g, new), was) in touched.iter().zip(outputs).zip(was_alive) {
            let g = *g as usize;
            if self.emitted[g] != new {
                if let Some(old) = self.emitted[g].take() {
                    rows.push(old);
                    weights.push(-1);
                }
                if let Some(new) = new {
                    rows.push(new.clone());
                    weights.push(1);
                    self.emitted[g] = Some(new);
                }
            }
            match (was, self.alive(g)) {
                (true, false) => self.dead += 1,
                (false, true) => self.dead -= 1,
                _ => {}
            }
        }
        if self.dead > DEAD_GROUPS && self.dead * 2 > self.groups() {
            self.compact()?;
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

    fn state_bytes(&self) -> usize {
        let ids = self.group_ids.as_ref().map_or(0, |ids| ids.size());
        let totals: usize = self
            .totals
            .iter()
            .map(|totals| match totals {
                Totals::Rows | Totals::Extreme { .. } => 0,
                Totals::Count(n) => footprint::vec(n),
                Totals::Int { sum, n, .. } => footprint::vec(sum) + footprint::vec(n),
            })
            .sum();
        let values: usize = self
            .slots
            .iter()
            .map(|slot| match &slot.values {
                Values::Ints(sets) => {
                    footprint::vec(sets) + sets.iter().map(|s| s.footprint(|_| 0)).sum::<usize>()
                }
                Values::Bytes { sets, .. } => {
                    footprint::vec(sets)
                        + sets.iter().map(|s| s.footprint(|v| v.len())).sum::<usize>()
                }
            })
            .sum();
        let emitted = footprint::vec(&self.emitted)
            + self
                .emitted
                .iter()
                .flatten()
                .map(|row| row.len())
                .sum::<usize>();
        ids + footprint::vec(&self.rows) + totals + values + emitted + footprint::vec(&self.stamp)
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
    fn numeric_sums() {
        exercise("SELECT k, sum(v * 1.5) AS d FROM t GROUP BY k");
    }

    /// A running float sum would keep 0 after 1e20 + 3 - 1e20, and NaN
    /// after its row went: float sums are recomputed from the group's rows.
    #[test]
    fn float_sums_forget_retracted_magnitudes_and_nans() {
        let mut h = Harness::new(
            "SELECT k, sum(CASE WHEN v > 4 THEN CAST(1e20 AS double precision) WHEN v < 0 THEN CAST('NaN' AS double precision) \
             ELSE CAST(v AS double precision) END) AS f FROM t GROUP BY k",
        );
        assert!(!h.explain().contains("running totals"), "{}", h.explain());
        let rows: [Row; 3] = [
            (Some(1), Some(5), None),
            (Some(1), Some(3), None),
            (Some(1), Some(-1), None),
        ];
        h.insert("t", &rows);
        h.check();
        h.delete("t", &rows[..1]);
        h.delete("t", &rows[2..]);
        h.check();
        assert_eq!(h.output(), vec!["1 3.0".to_string()]);
    }

    #[test]
    fn a_global_aggregate_has_its_row_over_nothing() {
        exercise("SELECT count(*), count(s), sum(v), min(v), max(s) FROM t");
        exercise("SELECT count(*) FROM t");
    }

    #[test]
    fn large_deltas_and_many_dead_groups() {
        let rows = |keys: std::ops::Range<i64>, shift: i64| -> Vec<Row> {
            keys.map(|k| (Some(k), Some((k * 7 + shift) % 13), None))
                .collect()
        };
        let mut h =
            Harness::new("SELECT k, count(*) AS n, sum(v), min(v), max(v) FROM t GROUP BY k");
        // Large enough for the counting-sort load, into empty multisets and
        // then into full ones.
        h.insert("t", &rows(0..10_000, 0));
        h.check();
        h.insert("t", &rows(0..10_000, 5));
        h.check();
        // Most groups lose every row: their ids are rebuilt from the live
        // keys, and later rows find the right groups.
        h.delete("t", &rows(0..9_000, 0));
        h.delete("t", &rows(0..9_000, 5));
        h.check();
        h.insert("t", &rows(8_990..9_010, 1));
        h.check();
        h.delete("t", &rows(9_000..9_010, 0));
        h.check();
    }

    #[test]
    fn having_filters_the_totals() {
        exercise("SELECT k, sum(v) AS total FROM t GROUP BY k HAVING count(*) > 1");
    }
}
