//! The contents of one materialized view: a table the engine writes.
//!
//! Rows live in a `TableData` (Arrow chunks, hidden row ids), so a snapshot
//! is the same cheap `Arc` of a chunk list that table reads use. An MV is a
//! multiset (a query without a unique key may return a row twice), so an
//! index maps each distinct row (arrow-row bytes of all columns) to the row
//! ids holding its copies: a delta's `-1` finds the row to delete without a
//! scan, and `+n` appends n copies.
//!
//! # Invariants
//! - `copies[r]` lists the ids of exactly the live rows equal to r; rows
//!   with no copies are absent.
//! - A row with one copy (the common case) holds its id inline, so that
//!   a row costs one allocation (its bytes), not two.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::common::HashMap;

use super::{MvIndex, TableChange, TableData};
use crate::stream::ZBatch;
use crate::stream::footprint;
use crate::stream::zset::{RowCodec, take_rows};

/// Capacity below which a map is not shrunk after deletes.
const SLACK_FLOOR: usize = 1024;

/// The row ids of the copies of one row.
enum Copies {
    One(u64),
    Many(Vec<u64>),
}

impl Copies {
    fn push(&mut self, id: u64) {
        match self {
            Copies::One(first) => *self = Copies::Many(vec![*first, id]),
            Copies::Many(ids) if ids.is_empty() => *self = Copies::One(id),
            Copies::Many(ids) => ids.push(id),
        }
    }

    fn pop(&mut self) -> Option<u64> {
        match self {
            Copies::One(id) => {
                let id = *id;
                *self = Copies::Many(Vec::new());
                Some(id)
            }
            Copies::Many(ids) => ids.pop(),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Copies::Many(ids) if ids.is_empty())
    }
}

pub struct MvData {
    data: TableData,
    codec: RowCodec,
    copies: HashMap<Box<[u8]>, Copies>,
    /// The point-lookup index on the view's key, if it has one.
    index: Option<Arc<MvIndex>>,
}

impl MvData {
    /// `schema` is the MV's row schema (every field nullable).
    pub fn try_new(schema: &SchemaRef, index: Option<Arc<MvIndex>>) -> Result<Self, ArrowError> {
        let data = TableData::try_new(schema, &[])?;
        if let Some(index) = &index {
            index.write().chunks = Some(data.snapshot());
        }
        Ok(MvData {
            data,
            codec: RowCodec::new(schema)?,
            copies: HashMap::new(),
            index,
        })
    }

    /// The chunks as of now, row id first. Cheap: an `Arc` clone.
    /// Bytes the view's contents hold: its chunks, the index of its rows'
    /// copies, and the point-lookup index.
    pub fn footprint(&self) -> usize {
        let chunks = footprint::batches(&self.data.snapshot());
        let copies = footprint::hash_table::<Box<[u8]>, Copies>(self.copies.capacity())
            + self
                .copies
                .iter()
                .map(|(row, copies)| {
                    row.len()
                        + match copies {
                            Copies::One(_) => 0,
                            Copies::Many(ids) => footprint::vec(ids),
                        }
                })
                .sum::<usize>();
        chunks + copies + self.index.as_ref().map_or(0, |index| index.footprint())
    }

    pub fn snapshot(&self) -> Arc<Vec<RecordBatch>> {
        self.data.snapshot()
    }

    pub fn row_count(&self) -> usize {
        self.data.row_count()
    }

    /// Applies one epoch's output delta. A retraction of a row the MV does
    /// not hold is an engine bug and fails. A delta with retractions is
    /// consolidated first: an epoch may insert a row and retract it again,
    /// in either order. One with inserts only is taken as it is: equal rows
    /// are copies.
    pub fn apply(&mut self, delta: &ZBatch) -> Result<(), ArrowError> {
        if delta.is_empty() {
            return Ok(());
        }
        let consolidated;
        let delta = if delta.weights().iter().all(|w| *w > 0) {
            delta
        } else {
            consolidated = delta.consolidate().map_err(|e| match e {
                crate::stream::StreamError::Arrow(e) => e,
                other => ArrowError::ComputeError(other.to_string()),
            })?;
            &consolidated
        };
        let encoded = self.codec.encode(delta.rows())?;
        let mut index = self.index.as_ref().map(|index| (index.write(), index));
        let keys = match &index {
            Some((_, index)) => Some(index.encode(delta.rows())?),
            None => None,
        };
        let mut deleted = Vec::new();
        let mut repeat: Vec<u32> = Vec::new();
        for (i, w) in delta.weights().iter().enumerate() {
            if *w > 0 {
                repeat.extend(std::iter::repeat_n(i as u32, *w as usize));
                continue;
            }
            let first_deleted = deleted.len();
            let row = encoded.row(i).data();
            let ids = self.copies.get_mut(row).ok_or_else(|| {
                ArrowError::InvalidArgumentError("the view retracts a row it does not hold".into())
            })?;
            for _ in 0..w.unsigned_abs() {
                deleted.push(ids.pop().ok_or_else(|| {
                    ArrowError::InvalidArgumentError(
                        "the view retracts more copies of a row than it holds".into(),
                    )
                })?);
            }
            if ids.is_empty() {
                self.copies.remove(row);
            }
            if let (Some((state, _)), Some(keys)) = (&mut index, &keys) {
                let key = keys.row(i).data();
                if let Some(holders) = state.rows.get_mut(key) {
                    holders.retain(|id| !deleted[first_deleted..].contains(id));
                    if holders.is_empty() {
                        state.rows.remove(key);
                    }
                }
            }
        }
        // A hash map keeps its capacity when rows leave: after a big delete
        // most of it goes back (only once three quarters are empty, so the
        // rehash is paid for by the deletes before it).
        if self.copies.capacity() > SLACK_FLOOR && self.copies.len() < self.copies.capacity() / 4 {
            self.copies.shrink_to(self.copies.len() * 2);
        }
        if let Some((state, _)) = &mut index
            && state.rows.capacity() > SLACK_FLOOR
            && state.rows.len() < state.rows.capacity() / 4
        {
            let keep = state.rows.len() * 2;
            state.rows.shrink_to(keep);
        }
        deleted.sort_unstable();
        let inserted = if repeat.is_empty() {
            None
        } else {
            let rows = take_rows(delta.rows(), &UInt32Array::from(repeat.clone()))?;
            let first = self.data.reserve_rowids(rows.num_rows());
            let ids: Vec<u64> = (first..first + rows.num_rows() as u64).collect();
            for (id, i) in ids.iter().zip(&repeat) {
                let row = encoded.row(*i as usize).data();
                match self.copies.get_mut(row) {
                    Some(copies) => copies.push(*id),
                    None => {
                        self.copies.insert(row.into(), Copies::One(*id));
                    }
                }
                if let (Some((state, _)), Some(keys)) = (&mut index, &keys) {
                    state
                        .rows
                        .entry(keys.row(*i as usize).data().into())
                        .or_default()
                        .push(*id);
                }
            }
            let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(ids))];
            columns.extend(rows.columns().iter().cloned());
            Some(RecordBatch::try_new(
                self.data.stored_schema().clone(),
                columns,
            )?)
        };
        self.data.apply(&TableChange { deleted, inserted })?;
        if let Some((state, _)) = &mut index {
            state.chunks = Some(self.data.snapshot());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::zset::tests::zbatch;

    #[test]
    fn keeps_copies_and_deletes_one_at_a_time() {
        let delta = zbatch(&[(2, Some(1), Some("a")), (1, None, None)]);
        let mut mv = MvData::try_new(&delta.schema(), None).unwrap();
        mv.apply(&delta).unwrap();
        assert_eq!(mv.row_count(), 3);
        mv.apply(&zbatch(&[(-1, Some(1), Some("a"))])).unwrap();
        assert_eq!(mv.row_count(), 2);
        assert!(mv.apply(&zbatch(&[(-2, Some(1), Some("a"))])).is_err());
        // An insert and its retraction in one delta, retraction first.
        mv.apply(&zbatch(&[(-1, Some(7), None), (1, Some(7), None)]))
            .unwrap();
        assert_eq!(mv.row_count(), 2);
    }
}
