//! Equi-joins of every kind: inner, left, right and full outer, semi and
//! anti (EXISTS, IN, NOT EXISTS), with an optional extra condition.
//!
//! State: both inputs, indexed by the join key (arrow-row bytes), each key
//! holding the weighted multiset of its rows.
//!
//! Matched pairs, of inner and outer joins alike, follow the bilinear rule,
//! d(A ⋈ B) = dA ⋈ B + (A + dA) ⋈ dB, so an epoch costs the size of its
//! output, not of the keys it touches. One-sided rows (outer joins' NULL
//! padding, semi and anti joins' rows) depend on whether a row has any
//! match, so they are recomputed per touched key: the key's one-sided rows
//! before the epoch (from the old state) and after (from the new), emitted
//! as new - old. That is what makes padding appear and vanish as matches
//! come and go, and semi/anti joins flip when a key's last match leaves,
//! without per-row match counters.
//!
//! A row whose key holds a NULL never matches (SQL equality), unless the
//! join compares NULLs as equal (DataFusion plans INTERSECT and EXCEPT that
//! way). Such rows keep no state: an outer join pads them at once.
//!
//! # Invariants
//! - `left[k]` and `right[k]` hold exactly the rows with key k seen so far
//!   (weights summed, zero entries removed); keys with no rows are absent.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, new_null_array};
use datafusion::arrow::compute::{cast, filter, filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::Rows;
use datafusion::common::{HashMap, HashSet, JoinType};
use datafusion::physical_expr::PhysicalExpr;

use super::footprint;
use super::zset::{RowCodec, RowCounts, add_count};
use super::{Operator, StepContext, StreamError, ZBatch, evaluate, output_schema};

/// A join as the planner fixes it.
pub struct JoinSpec {
    pub join_type: JoinType,
    /// Key expressions over the left input, and over the right, pairwise.
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The extra condition, over the left columns followed by the right.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub nulls_equal: bool,
    /// `x NOT IN (subquery)`: an anti join where a NULL on either side
    /// makes the comparison unknown (see `step_not_in`).
    pub null_aware: bool,
    /// INTERSECT ALL (semi) or EXCEPT ALL (anti) over all columns: a row
    /// appears min(m, n) or max(m - n, 0) times, not as often as on the left.
    pub multiset: bool,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    /// The join's output: left ++ right columns, or one side for semi/anti.
    pub schema: SchemaRef,
}

pub struct JoinOperator {
    spec: JoinSpec,
    key_types: Vec<DataType>,
    key_codec: RowCodec,
    left_codec: RowCodec,
    right_codec: RowCodec,
    /// left ++ right, for evaluating the condition and building pairs.
    pair_schema: SchemaRef,
    left: HashMap<Box<[u8]>, RowCounts>,
    right: HashMap<Box<[u8]>, RowCounts>,
    /// NOT IN only: left rows whose key is NULL, and the number of right
    /// rows in all and of those with a NULL key.
    left_null_keys: RowCounts,
    right_rows: i64,
    right_null_keys: i64,
}

/// What a join kind emits, besides nothing.
#[derive(Clone, Copy)]
struct Emits {
    pairs: bool,
    left_unmatched: bool,
    right_unmatched: bool,
    left_semi: bool,
    right_semi: bool,
}

impl Emits {
    fn of(join_type: JoinType) -> Result<Self, StreamError> {
        let none = Emits {
            pairs: false,
            left_unmatched: false,
            right_unmatched: false,
            left_semi: false,
            right_semi: false,
        };
        Ok(match join_type {
            JoinType::Inner => Emits {
                pairs: true,
                ..none
            },
            JoinType::Left => Emits {
                pairs: true,
                left_unmatched: true,
                ..none
            },
            JoinType::Right => Emits {
                pairs: true,
                right_unmatched: true,
                ..none
            },
            JoinType::Full => Emits {
                pairs: true,
                left_unmatched: true,
                right_unmatched: true,
                ..none
            },
            JoinType::LeftSemi => Emits {
                left_semi: true,
                ..none
            },
            JoinType::LeftAnti => Emits {
                left_unmatched: true,
                ..none
            },
            JoinType::RightSemi => Emits {
                right_semi: true,
                ..none
            },
            JoinType::RightAnti => Emits {
                right_unmatched: true,
                ..none
            },
            other => {
                return Err(StreamError::Internal(format!(
                    "{other} joins are not maintained incrementally"
                )));
            }
        })
    }

    /// Whether output rows carry only one side's columns.
    fn one_side(&self) -> bool {
        !self.pairs
    }
}

/// One input's delta, keyed: per row its encoded key and its encoded row.
struct KeyedDelta {
    /// `None`: the join has no equality, and every row has the one empty key.
    keys: Option<Rows>,
    /// Rows whose key holds a NULL: they never match.
    unmatchable: Vec<bool>,
    rows: Rows,
    weights: Vec<i64>,
}

impl KeyedDelta {
    fn len(&self) -> usize {
        self.weights.len()
    }

    /// Row `i`'s key, `None` when it never matches.
    fn key(&self, i: usize) -> Option<&[u8]> {
        if self.unmatchable[i] {
            return None;
        }
        Some(match &self.keys {
            Some(keys) => keys.row(i).data(),
            None => &[],
        })
    }
}

/// Output being assembled: pairs and one-sided rows, as encoded rows.
#[derive(Default)]
struct Pieces<'a> {
    pairs: Vec<(&'a [u8], &'a [u8], i64)>,
    left_only: Vec<(&'a [u8], i64)>,
    right_only: Vec<(&'a [u8], i64)>,
}

impl JoinOperator {
    pub fn try_new(spec: JoinSpec) -> Result<Self, StreamError> {
        Emits::of(spec.join_type)?;
        let key_types = spec
            .left_keys
            .iter()
            .map(|k| k.data_type(&spec.left_schema))
            .collect::<Result<Vec<_>, _>>()?;
        let key_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            key_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    datafusion::arrow::datatypes::Field::new(format!("k{i}"), t.clone(), true)
                })
                .collect::<Vec<_>>(),
        ));
        let mut pair_fields: Vec<_> = spec.left_schema.fields().iter().cloned().collect();
        pair_fields.extend(spec.right_schema.fields().iter().cloned());
        let pair_schema = output_schema(&Arc::new(datafusion::arrow::datatypes::Schema::new(
            pair_fields,
        )));
        Ok(JoinOperator {
            key_codec: RowCodec::new(&key_schema)?,
            left_codec: RowCodec::new(&spec.left_schema)?,
            right_codec: RowCodec::new(&spec.right_schema)?,
            key_types,
            pair_schema,
            left: HashMap::new(),
            right: HashMap::new(),
            left_null_keys: RowCounts::new(),
            right_rows: 0,
            right_null_keys: 0,
            spec,
        })
    }

    fn keyed(
        &self,
        delta: &ZBatch,
        keys: &[Arc<dyn PhysicalExpr>],
        codec: &RowCodec,
        ctx: &mut StepContext,
    ) -> Result<KeyedDelta, StreamError> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(keys.len());
        for (expr, ty) in keys.iter().zip(&self.key_types) {
            let array = evaluate(expr.as_ref(), delta.rows(), ctx)?;
            columns.push(if array.data_type() == ty {
                array
            } else {
                cast(&array, ty)?
            });
        }
        if columns.is_empty() {
            // No equality at all (a join on a condition alone): every row
            // shares the one empty key.
            return Ok(KeyedDelta {
                keys: None,
                unmatchable: vec![false; delta.len()],
                rows: codec.encode(delta.rows())?,
                weights: delta.weights().to_vec(),
            });
        }
        let encoded = self.key_codec.encode_columns(&columns)?;
        let unmatchable = (0..delta.len())
            .map(|i| !self.spec.nulls_equal && columns.iter().any(|c| c.is_null(i)))
            .collect();
        Ok(KeyedDelta {
            keys: Some(encoded),
            unmatchable,
            rows: codec.encode(delta.rows())?,
            weights: delta.weights().to_vec(),
        })
    }

    fn apply(state: &mut HashMap<Box<[u8]>, RowCounts>, delta: &KeyedDelta) {
        for i in 0..delta.len() {
            let Some(key) = delta.key(i) else { continue };
            let row = delta.rows.row(i).data();
            match state.get_mut(key) {
                Some(rows) => {
                    add_count(rows, row, delta.weights[i]);
                    if rows.is_empty() {
                        state.remove(key);
                    }
                }
                None if delta.weights[i] != 0 => {
                    let mut rows = RowCounts::new();
                    add_count(&mut rows, row, delta.weights[i]);
                    state.insert(key.into(), rows);
                }
                None => {}
            }
        }
    }

    /// Builds the output batch from pieces: pairs (filtered by the
    /// condition unless `filtered` says it was applied already) and padded
    /// one-sided rows.
    fn assemble(
        &self,
        pieces: &Pieces,
        filter_pairs: bool,
        ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        let emits = Emits::of(self.spec.join_type)?;
        let schema = output_schema(&self.spec.schema);
        let mut parts = Vec::new();
        if !pieces.pairs.is_empty() {
            let pairs = self.pair_batch(pieces.pairs.iter().map(|p| (p.0, p.1)))?;
            let weights = Int64Array::from(pieces.pairs.iter().map(|p| p.2).collect::<Vec<_>>());
            let (pairs, weights) = match (&self.spec.filter, filter_pairs) {
                (Some(condition), true) => {
                    let mask = condition_mask(condition.as_ref(), &pairs, ctx)?;
                    (
                        filter_record_batch(&pairs, &mask)?,
                        downcast_weights(filter(&weights, &mask)?)?,
                    )
                }
                _ => (pairs, weights),
            };
            parts.push(ZBatch::try_new(pairs, weights)?);
        }
        let left_width = self.spec.left_schema.fields().len();
        if !pieces.left_only.is_empty() {
            let rows = self
                .left_codec
                .decode(pieces.left_only.iter().map(|p| p.0))?;
            let weights =
                Int64Array::from(pieces.left_only.iter().map(|p| p.1).collect::<Vec<_>>());
            let mut columns = rows.columns().to_vec();
            if !emits.one_side() {
                columns.extend(
                    self.spec
                        .right_schema
                        .fields()
                        .iter()
                        .map(|f| new_null_array(f.data_type(), rows.num_rows())),
                );
            }
            parts.push(ZBatch::try_new(
                batch(&schema, columns, rows.num_rows())?,
                weights,
            )?);
        }
        if !pieces.right_only.is_empty() {
            let rows = self
                .right_codec
                .decode(pieces.right_only.iter().map(|p| p.0))?;
            let weights =
                Int64Array::from(pieces.right_only.iter().map(|p| p.1).collect::<Vec<_>>());
            let mut columns: Vec<ArrayRef> = Vec::new();
            if !emits.one_side() {
                columns.extend(
                    self.spec.left_schema.fields()[..left_width]
                        .iter()
                        .map(|f| new_null_array(f.data_type(), rows.num_rows())),
                );
            }
            columns.extend(rows.columns().iter().cloned());
            parts.push(ZBatch::try_new(
                batch(&schema, columns, rows.num_rows())?,
                weights,
            )?);
        }
        ZBatch::concat(&schema, &parts)
    }

    fn pair_batch<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    ) -> Result<RecordBatch, StreamError> {
        let left = self.left_codec.decode(pairs.clone().map(|p| p.0))?;
        let right = self.right_codec.decode(pairs.map(|p| p.1))?;
        let mut columns = left.columns().to_vec();
        columns.extend(right.columns().iter().cloned());
        batch(&self.pair_schema, columns, left.num_rows())
    }

    /// The pairs' delta: dL ⋈ R + (L + dL) ⋈ dR, applying both deltas to
    /// the state. Each half is decoded while the state it borrows from is
    /// as the rule needs it, so no row is copied out of the state. The
    /// output is not consolidated: every consumer takes any Z-set, and the
    /// view consolidates once.
    fn step_pairs(
        &mut self,
        dl: &KeyedDelta,
        dr: &KeyedDelta,
        ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        let mut pieces = Pieces::default();
        for i in 0..dl.len() {
            let Some(matches) = dl.key(i).and_then(|k| self.right.get(k)) else {
                continue;
            };
            let l = dl.rows.row(i).data();
            for (r, w) in matches {
                pieces.pairs.push((l, &r[..], dl.weights[i] * w));
            }
        }
        let first = self.assemble(&pieces, true, ctx)?;
        Self::apply(&mut self.left, dl);
        let mut pieces = Pieces::default();
        for j in 0..dr.len() {
            let Some(matches) = dr.key(j).and_then(|k| self.left.get(k)) else {
                continue;
            };
            let r = dr.rows.row(j).data();
            for (l, w) in matches {
                pieces.pairs.push((&l[..], r, w * dr.weights[j]));
            }
        }
        let second = self.assemble(&pieces, true, ctx)?;
        Self::apply(&mut self.right, dr);
        ZBatch::concat(&output_schema(&self.spec.schema), &[first, second])
    }

    /// The one-sided output of the given keys in the current state: outer
    /// joins' padded rows, semi and anti joins' rows. Pairs are not here:
    /// they follow the bilinear rule (`step_pairs`).
    fn one_sided_of_keys(
        &self,
        keys: &[&[u8]],
        ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        let emits = Emits::of(self.spec.join_type)?;
        let empty = RowCounts::new();
        if self.spec.multiset {
            return self.multiset_output_of_keys(keys, ctx);
        }
        let mut lefts: Vec<(&[u8], i64, usize)> = Vec::new();
        let mut rights: Vec<(&[u8], i64, usize)> = Vec::new();
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        for key in keys {
            let l = self.left.get(*key).unwrap_or(&empty);
            let r = self.right.get(*key).unwrap_or(&empty);
            let l0 = lefts.len();
            let r0 = rights.len();
            if self.spec.filter.is_none() {
                // Without a condition every row of a key matches every row
                // on the other side: no pair needs looking at.
                lefts.extend(l.iter().map(|(row, w)| (&row[..], *w, r.len())));
                rights.extend(r.iter().map(|(row, w)| (&row[..], *w, l.len())));
                continue;
            }
            lefts.extend(l.iter().map(|(row, w)| (&row[..], *w, 0)));
            rights.extend(r.iter().map(|(row, w)| (&row[..], *w, 0)));
            for li in l0..lefts.len() {
                for ri in r0..rights.len() {
                    candidates.push((li, ri));
                }
            }
        }
        if let (Some(condition), false) = (&self.spec.filter, candidates.is_empty()) {
            let pairs = self.pair_batch(
                candidates
                    .iter()
                    .map(|&(li, ri)| (lefts[li].0, rights[ri].0)),
            )?;
            let mask = condition_mask(condition.as_ref(), &pairs, ctx)?;
            for (&(li, ri), ok) in candidates.iter().zip(mask.values().iter()) {
                if ok {
                    lefts[li].2 += 1;
                    rights[ri].2 += 1;
                }
            }
        }
        let mut pieces = Pieces::default();
        for (row, w, matches) in &lefts {
            if (emits.left_unmatched && *matches == 0) || (emits.left_semi && *matches > 0) {
                pieces.left_only.push((row, *w));
            }
        }
        for (row, w, matches) in &rights {
            if (emits.right_unmatched && *matches == 0) || (emits.right_semi && *matches > 0) {
                pieces.right_only.push((row, *w));
            }
        }
        self.assemble(&pieces, false, ctx)
    }

    /// INTERSECT ALL / EXCEPT ALL: the key is the whole row, so each key's
    /// output is that row, min(m, n) or max(m - n, 0) times.
    fn multiset_output_of_keys(
        &self,
        keys: &[&[u8]],
        ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        let mut pieces = Pieces::default();
        for key in keys {
            let Some(left) = self.left.get(*key) else {
                continue;
            };
            let m: i64 = left.values().sum();
            let n: i64 = self.right.get(*key).map_or(0, |r| r.values().sum());
            let copies = if self.spec.join_type == JoinType::LeftSemi {
                m.min(n)
            } else {
                (m - n).max(0)
            };
            if let (Some(row), true) = (left.keys().next(), copies > 0) {
                pieces.left_only.push((row, copies));
            }
        }
        self.assemble(&pieces, false, ctx)
    }

    /// Outer, semi and anti joins: the pairs' delta, plus per touched key
    /// new one-sided rows - old ones; rows with a never-matching key pass
    /// straight through where unmatched rows are emitted.
    fn step_per_key(
        &mut self,
        dl: KeyedDelta,
        dr: KeyedDelta,
        pass_null_keys: bool,
        ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        let emits = Emits::of(self.spec.join_type)?;
        let mut touched: HashSet<Box<[u8]>> = HashSet::new();
        for delta in [&dl, &dr] {
            for i in 0..delta.len() {
                if let Some(key) = delta.key(i)
                    && !touched.contains(key)
                {
                    touched.insert(key.into());
                }
            }
        }
        let touched: Vec<Box<[u8]>> = touched.into_iter().collect();
        let keys: Vec<&[u8]> = touched.iter().map(|k| &k[..]).collect();
        let schema = output_schema(&self.spec.schema);
        let old = self.one_sided_of_keys(&keys, ctx)?;
        let pairs = if emits.pairs {
            self.step_pairs(&dl, &dr, ctx)?
        } else {
            Self::apply(&mut self.left, &dl);
            Self::apply(&mut self.right, &dr);
            ZBatch::empty(schema.clone())
        };
        let new = self.one_sided_of_keys(&keys, ctx)?;
        let mut pieces = Pieces::default();
        if emits.left_unmatched && pass_null_keys {
            for i in 0..dl.len() {
                if dl.key(i).is_none() {
                    pieces
                        .left_only
                        .push((dl.rows.row(i).data(), dl.weights[i]));
                }
            }
        }
        if emits.right_unmatched {
            for j in 0..dr.len() {
                if dr.key(j).is_none() {
                    pieces
                        .right_only
                        .push((dr.rows.row(j).data(), dr.weights[j]));
                }
            }
        }
        let unmatchable = self.assemble(&pieces, false, ctx)?;
        let one_sided =
            ZBatch::concat(&schema, &[old.negate(), new, unmatchable])?.consolidate()?;
        ZBatch::concat(&schema, &[pairs, one_sided])
    }
}

/// What `x NOT IN (subquery)` keeps of the left rows, given the right side:
/// all of them when the subquery is empty; none when it holds a NULL;
/// otherwise the rows with a non-NULL key the subquery does not hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotIn {
    Everything,
    Nothing,
    Unmatched,
}

impl JoinOperator {
    fn not_in_status(right_rows: i64, right_null_keys: i64) -> NotIn {
        if right_rows == 0 {
            NotIn::Everything
        } else if right_null_keys > 0 {
            NotIn::Nothing
        } else {
            NotIn::Unmatched
        }
    }

    /// Every output row of NOT IN in the current state.
    fn not_in_output(&self, status: NotIn, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let mut pieces = Pieces::default();
        match status {
            NotIn::Nothing => {}
            NotIn::Everything => {
                for rows in self.left.values() {
                    pieces
                        .left_only
                        .extend(rows.iter().map(|(r, w)| (&r[..], *w)));
                }
                pieces
                    .left_only
                    .extend(self.left_null_keys.iter().map(|(r, w)| (&r[..], *w)));
            }
            NotIn::Unmatched => {
                for (key, rows) in &self.left {
                    if !self.right.contains_key(key) {
                        pieces
                            .left_only
                            .extend(rows.iter().map(|(r, w)| (&r[..], *w)));
                    }
                }
            }
        }
        self.assemble(&pieces, false, ctx)
    }

    /// `x NOT IN (subquery)`. While the right side stays non-empty and
    /// NULL-free, touched keys are recomputed as an anti join; when it
    /// becomes empty or gains its first NULL (or loses it), every left row
    /// may change, and the whole output is recomputed once.
    fn step_not_in(
        &mut self,
        dl: KeyedDelta,
        dr: KeyedDelta,
        ctx: &mut StepContext,
    ) -> Result<ZBatch, StreamError> {
        let old_status = Self::not_in_status(self.right_rows, self.right_null_keys);
        let added: i64 = dr.weights.iter().sum();
        let added_nulls: i64 = (0..dr.len())
            .filter(|j| dr.key(*j).is_none())
            .map(|j| dr.weights[j])
            .sum();
        let new_status =
            Self::not_in_status(self.right_rows + added, self.right_null_keys + added_nulls);
        let apply_nulls = |this: &mut Self| {
            for i in 0..dl.len() {
                if dl.key(i).is_none() {
                    add_count(
                        &mut this.left_null_keys,
                        dl.rows.row(i).data(),
                        dl.weights[i],
                    );
                }
            }
            this.right_rows += added;
            this.right_null_keys += added_nulls;
        };
        let schema = output_schema(&self.spec.schema);
        if old_status != new_status {
            let old = self.not_in_output(old_status, ctx)?;
            Self::apply(&mut self.left, &dl);
            Self::apply(&mut self.right, &dr);
            apply_nulls(self);
            let new = self.not_in_output(new_status, ctx)?;
            return ZBatch::concat(&schema, &[old.negate(), new])?.consolidate();
        }
        match new_status {
            NotIn::Nothing => {
                Self::apply(&mut self.left, &dl);
                Self::apply(&mut self.right, &dr);
                apply_nulls(self);
                Ok(ZBatch::empty(schema))
            }
            NotIn::Everything => {
                let pieces = Pieces {
                    left_only: (0..dl.weights.len())
                        .map(|i| (dl.rows.row(i).data(), dl.weights[i]))
                        .collect(),
                    ..Pieces::default()
                };
                let out = self.assemble(&pieces, false, ctx)?;
                Self::apply(&mut self.left, &dl);
                Self::apply(&mut self.right, &dr);
                apply_nulls(self);
                Ok(out)
            }
            NotIn::Unmatched => {
                apply_nulls(self);
                self.step_per_key(dl, dr, false, ctx)
            }
        }
    }
}

impl Operator for JoinOperator {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let mut inputs = inputs.into_iter();
        let (Some(dl), Some(dr)) = (inputs.next(), inputs.next()) else {
            return Err(StreamError::Internal("a join needs two inputs".into()));
        };
        if dl.is_empty() && dr.is_empty() {
            return Ok(ZBatch::empty(output_schema(&self.spec.schema)));
        }
        // The bilinear rule takes any Z-set as it is; the kinds recomputed
        // per key consolidate first, so that a change that cancels itself
        // touches no key.
        let (dl, dr) = if self.spec.join_type == JoinType::Inner && !self.spec.null_aware {
            (dl, dr)
        } else {
            (dl.consolidate()?, dr.consolidate()?)
        };
        let left_keys = self.spec.left_keys.clone();
        let right_keys = self.spec.right_keys.clone();
        let kl = self.keyed(&dl, &left_keys, &self.left_codec, ctx)?;
        let kr = self.keyed(&dr, &right_keys, &self.right_codec, ctx)?;
        if self.spec.null_aware {
            self.step_not_in(kl, kr, ctx)
        } else if self.spec.join_type == JoinType::Inner {
            self.step_pairs(&kl, &kr, ctx)
        } else {
            self.step_per_key(kl, kr, true, ctx)
        }
    }

    fn describe(&self) -> String {
        let keys = self
            .spec
            .left_keys
            .iter()
            .zip(&self.spec.right_keys)
            .map(|(l, r)| format!("{l} = {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        let condition = self
            .spec
            .filter
            .as_ref()
            .map(|f| format!(" filter {f}"))
            .unwrap_or_default();
        let emits = Emits::of(self.spec.join_type);
        let rule = match emits {
            Ok(e) if e.pairs && self.spec.join_type == JoinType::Inner => "bilinear",
            Ok(e) if e.pairs => "pairs bilinear, padding recomputed per touched key",
            _ => "recomputed per touched key",
        };
        format!(
            "HashJoin ({}): on {keys}{condition}; {rule}; state: both inputs' rows by key",
            self.spec.join_type
        )
    }

    fn state_bytes(&self) -> usize {
        let side = |rows: &HashMap<Box<[u8]>, RowCounts>| {
            footprint::hash_table::<Box<[u8]>, RowCounts>(rows.capacity())
                + rows
                    .iter()
                    .map(|(key, counts)| key.len() + footprint::row_counts(counts))
                    .sum::<usize>()
        };
        side(&self.left) + side(&self.right) + footprint::row_counts(&self.left_null_keys)
    }
}

fn batch(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, StreamError> {
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The condition as a filter mask: NULL (and a failed evaluation) is false.
fn condition_mask(
    condition: &dyn PhysicalExpr,
    pairs: &RecordBatch,
    ctx: &mut StepContext,
) -> Result<BooleanArray, StreamError> {
    let mask = evaluate(condition, pairs, ctx)?;
    let mask = mask
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| StreamError::Internal("a join condition is not boolean".into()))?;
    Ok(if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    })
}

fn downcast_weights(array: ArrayRef) -> Result<Int64Array, StreamError> {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| StreamError::Internal("weights are not Int64".into()))
}

#[cfg(test)]
mod tests {
    use crate::stream::testing::Harness;

    const T: &[(Option<i64>, Option<i64>, Option<&str>)] = &[
        (Some(1), Some(10), Some("a")),
        (Some(1), Some(11), Some("b")),
        (Some(2), Some(20), None),
        (None, Some(30), Some("n")),
    ];
    const U: &[(Option<i64>, Option<i64>, Option<&str>)] = &[
        (Some(1), Some(100), Some("x")),
        (Some(3), Some(300), Some("y")),
        (None, Some(0), Some("n")),
    ];

    /// Feeds both sides, then takes matches away and brings them back,
    /// checking against the batch join after every epoch.
    fn exercise(sql: &str) {
        let mut h = Harness::new(sql);
        h.insert("t", T);
        h.check();
        h.insert("u", U);
        h.check();
        h.epoch(&[
            ("t", -1, &T[..1]),
            (
                "u",
                1,
                &[
                    (Some(2), Some(200), Some("z")),
                    (Some(2), Some(201), Some("z")),
                ],
            ),
        ]);
        h.check();
        h.delete("u", &U[..1]);
        h.check();
        h.epoch(&[("t", 1, &T[..1]), ("u", 1, &U[..1]), ("t", -1, &T[2..3])]);
        h.check();
        h.delete("t", &[T[0], T[1], T[3]]);
        h.check();
    }

    #[test]
    fn inner_join() {
        exercise("SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k");
    }

    #[test]
    fn inner_join_with_a_condition_and_two_keys() {
        exercise("SELECT t.v, u.w FROM t JOIN u ON t.k = u.k AND t.s IS NOT NULL AND u.w > t.v");
        exercise("SELECT t.v, u.w FROM t JOIN u ON t.k = u.k AND t.s = u.s");
    }

    #[test]
    fn outer_joins_pad_and_unpad() {
        exercise("SELECT t.k, t.v, u.w FROM t LEFT JOIN u ON t.k = u.k");
        exercise("SELECT t.k, t.v, u.w FROM t RIGHT JOIN u ON t.k = u.k");
        exercise("SELECT t.k, t.v, u.k, u.w FROM t FULL JOIN u ON t.k = u.k AND u.w > 150");
        exercise("SELECT t.k, t.s, u.w FROM t LEFT JOIN u ON t.k = u.k AND u.w > t.v * 10");
        exercise("SELECT t.k, u.k, u.s FROM t RIGHT JOIN u ON t.s = u.s");
    }

    #[test]
    fn semi_and_anti_joins() {
        exercise("SELECT k, v FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k)");
        exercise("SELECT k, v FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.k = t.k)");
        exercise("SELECT k, v FROM t WHERE k IN (SELECT k FROM u WHERE w > 150)");
    }

    #[test]
    fn not_in_follows_nulls_and_emptiness() {
        let sql = "SELECT k, v FROM t WHERE k NOT IN (SELECT k FROM u)";
        let mut h = Harness::new(sql);
        h.insert("t", T);
        h.check();
        h.insert("u", &U[..2]);
        h.check();
        // A NULL in the subquery: nothing qualifies.
        h.insert("u", &U[2..]);
        h.check();
        h.delete("u", &U[2..]);
        h.check();
        // Empty again: everything qualifies, NULL keys too.
        h.delete("u", &U[..2]);
        h.check();
        h.epoch(&[("u", 1, &U[..1]), ("t", -1, &T[..1])]);
        h.check();
    }

    #[test]
    fn intersect_all_and_except_all_count_copies() {
        let dup: &[(Option<i64>, Option<i64>, Option<&str>)] = &[
            (Some(1), None, Some("a")),
            (Some(1), None, Some("a")),
            (Some(1), None, Some("a")),
            (None, None, None),
        ];
        // The set forms against DataFusion's batch answer.
        for sql in [
            "SELECT k, s FROM t INTERSECT SELECT k, s FROM u",
            "SELECT k, s FROM t EXCEPT SELECT k, s FROM u",
        ] {
            let mut h = Harness::with_multiset_set_ops(sql);
            h.insert("t", dup);
            h.check();
            h.insert("u", &dup[2..]);
            h.check();
            h.insert("u", &dup[..1]);
            h.check();
            h.delete("t", &dup[..2]);
            h.check();
        }
        // The ALL forms against PostgreSQL's answers (DataFusion's batch
        // plan keeps every left copy or none).
        let steps: [(&str, [&[&str]; 4]); 2] = [
            (
                "SELECT k, s FROM t INTERSECT ALL SELECT k, s FROM u",
                [
                    &[],
                    &["1 a", "NULL NULL"],
                    &["1 a", "1 a", "NULL NULL"],
                    &["1 a", "NULL NULL"],
                ],
            ),
            (
                "SELECT k, s FROM t EXCEPT ALL SELECT k, s FROM u",
                [
                    &["1 a", "1 a", "1 a", "NULL NULL"],
                    &["1 a", "1 a"],
                    &["1 a"],
                    &[],
                ],
            ),
        ];
        for (sql, expected) in steps {
            let mut h = Harness::with_multiset_set_ops(sql);
            h.insert("t", dup);
            assert_eq!(h.output(), expected[0], "{sql}");
            h.insert("u", &dup[2..]);
            assert_eq!(h.output(), expected[1], "{sql}");
            h.insert("u", &dup[..1]);
            assert_eq!(h.output(), expected[2], "{sql}");
            h.delete("t", &dup[..2]);
            assert_eq!(h.output(), expected[3], "{sql}");
        }
    }

    #[test]
    fn join_on_a_condition_alone() {
        exercise("SELECT t.v, u.w FROM t JOIN u ON t.v < u.w");
        exercise("SELECT t.v, u.w FROM t LEFT JOIN u ON t.v * 10 = u.w");
    }
}
