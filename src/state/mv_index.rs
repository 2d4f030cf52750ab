//! A point-lookup index on a materialized view's unique key (its GROUP BY
//! columns, or a key it carries): `SELECT ... FROM mv WHERE key = 'x'` finds
//! its row through this map and a binary search of the chunks by row id,
//! instead of scanning the view.
//!
//! The runtime updates the map while it applies an epoch's delta to the
//! view, under the write lock, and records which chunk list the map now
//! describes. A query uses the map only if that chunk list is the very one
//! of the epoch it reads (`Arc::ptr_eq`); otherwise (it reads an older
//! epoch) it scans its own snapshot. So a lookup never mixes epochs.
//!
//! # Invariants
//! - When `chunks` is `Some(c)`, `rows` maps the key of every row in `c` to
//!   exactly the row ids of the rows in `c` with that key.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::Rows;
use datafusion::common::HashMap;

use super::Chunks;
use crate::stream::zset::RowCodec;

#[derive(Default)]
pub struct IndexState {
    pub chunks: Option<Chunks>,
    pub rows: HashMap<Box<[u8]>, Vec<u64>>,
}

pub struct MvIndex {
    /// Positions of the key columns in the view's schema.
    key: Vec<usize>,
    codec: RowCodec,
    state: RwLock<IndexState>,
}

impl MvIndex {
    pub fn try_new(schema: &SchemaRef, key: Vec<usize>) -> Result<Self, ArrowError> {
        let fields: Vec<Field> = key
            .iter()
            .map(|&i| schema.field(i).clone().with_nullable(true))
            .collect();
        Ok(MvIndex {
            codec: RowCodec::new(&Arc::new(Schema::new(fields)))?,
            key,
            state: RwLock::new(IndexState::default()),
        })
    }

    pub fn key(&self) -> &[usize] {
        &self.key
    }

    /// The key bytes of every row of `batch` (the view's columns).
    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows, ArrowError> {
        let columns: Vec<ArrayRef> = self.key.iter().map(|&i| batch.column(i).clone()).collect();
        self.codec.encode_columns(&columns)
    }

    /// Key bytes of one key given as one-row arrays, in key order.
    pub fn encode_key(&self, values: &[ArrayRef]) -> Result<Box<[u8]>, ArrowError> {
        let rows = self.codec.encode_columns(values)?;
        Ok(rows.row(0).data().into())
    }

    /// Bytes of the key-to-rows map (the chunks are the view's, counted
    /// there).
    pub fn footprint(&self) -> usize {
        let state = self.read();
        crate::stream::footprint::hash_table::<Box<[u8]>, Vec<u64>>(state.rows.capacity())
            + state
                .rows
                .iter()
                .map(|(key, ids)| key.len() + crate::stream::footprint::vec(ids))
                .sum::<usize>()
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, IndexState> {
        match self.state.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, IndexState> {
        match self.state.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The rows (row id first) with `key` in `chunks`, or `None` when the
    /// index describes another epoch than `chunks`.
    pub fn lookup(
        &self,
        chunks: &Chunks,
        key: &[u8],
    ) -> Result<Option<Vec<RecordBatch>>, ArrowError> {
        let state = self.read();
        if !state
            .chunks
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, chunks))
        {
            return Ok(None);
        }
        let Some(ids) = state.rows.get(key) else {
            return Ok(Some(Vec::new()));
        };
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = row_by_id(chunks, *id)? {
                found.push(row);
            }
        }
        Ok(Some(match found.first() {
            None => Vec::new(),
            Some(first) => vec![concat_batches(&first.schema(), &found)?],
        }))
    }
}

/// The row with row id `id`: chunks and the ids within them ascend, so two
/// binary searches find it.
fn row_by_id(chunks: &Chunks, id: u64) -> Result<Option<RecordBatch>, ArrowError> {
    let ids_of = |chunk: &RecordBatch| -> Option<UInt64Array> {
        chunk
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .cloned()
    };
    let position = chunks.partition_point(|chunk| {
        ids_of(chunk).is_some_and(|ids| !ids.is_empty() && ids.value(ids.len() - 1) < id)
    });
    let Some(chunk) = chunks.get(position) else {
        return Ok(None);
    };
    let Some(ids) = ids_of(chunk) else {
        return Ok(None);
    };
    match ids.values().binary_search(&id) {
        Ok(i) => Ok(Some(take_record_batch(
            chunk,
            &UInt32Array::from(vec![i as u32]),
        )?)),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;
    use crate::state::MvData;
    use crate::stream::ZBatch;
    use crate::stream::zset::tests::{lines, zbatch};

    fn key(index: &MvIndex, k: i64) -> Box<[u8]> {
        index
            .encode_key(&[Arc::new(Int64Array::from(vec![k])) as ArrayRef])
            .unwrap()
    }

    fn found(batches: Vec<RecordBatch>) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| lines(&ZBatch::uniform(b.project(&[1, 2]).unwrap(), 1)))
            .collect()
    }

    #[test]
    fn lookups_follow_the_view_and_refuse_other_epochs() {
        let first = zbatch(&[(1, Some(1), Some("a")), (1, Some(2), Some("b"))]);
        let index = Arc::new(MvIndex::try_new(&first.schema(), vec![0]).unwrap());
        let mut mv = MvData::try_new(&first.schema(), Some(index.clone())).unwrap();
        mv.apply(&first).unwrap();
        let epoch1 = mv.snapshot();
        assert_eq!(
            found(index.lookup(&epoch1, &key(&index, 2)).unwrap().unwrap()),
            vec!["+1 2 b"]
        );
        assert!(
            index
                .lookup(&epoch1, &key(&index, 9))
                .unwrap()
                .unwrap()
                .is_empty()
        );
        // An update of key 2 (-old +new) and a delete of key 1.
        mv.apply(&zbatch(&[
            (-1, Some(2), Some("b")),
            (1, Some(2), Some("c")),
            (-1, Some(1), Some("a")),
        ]))
        .unwrap();
        let epoch2 = mv.snapshot();
        assert_eq!(
            found(index.lookup(&epoch2, &key(&index, 2)).unwrap().unwrap()),
            vec!["+1 2 c"]
        );
        assert!(
            index
                .lookup(&epoch2, &key(&index, 1))
                .unwrap()
                .unwrap()
                .is_empty()
        );
        // A reader still at the first epoch scans instead.
        assert!(index.lookup(&epoch1, &key(&index, 2)).unwrap().is_none());
    }
}
