//! The current contents of one table, in memory, rebuilt from its log.
//!
//! Rows live in Arrow chunks of at most `CHUNK_ROWS` rows. Every row carries a
//! hidden row id (the first column, `ROWID_COLUMN`), assigned once and never
//! reused: UPDATE and DELETE name the rows they remove by id, which is what the
//! log records. Ids ascend through the chunks, so finding the chunks a delete
//! touches is a binary search, not a scan.
//!
//! Readers take `snapshot()`, an `Arc` of the chunk list: a statement that
//! commits afterwards swaps in a new list and never disturbs a running scan.
//!
//! # Invariants
//! - Row ids are strictly ascending across `chunks` (in order) and within each.
//! - With a primary key, `key_index` maps the key of every live row to its id,
//!   and holds nothing else.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBufferBuilder, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::HashMap;

use super::TableChange;

/// Name of the hidden row-id column. Users never see it in SELECT *.
pub const ROWID_COLUMN: &str = "__freshet_rowid";

const CHUNK_ROWS: usize = 8192;

/// The stored schema: the row id followed by the user's columns.
pub fn schema_with_rowid(schema: &Schema) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(ROWID_COLUMN, DataType::UInt64, false))];
    fields.extend(schema.fields().iter().cloned());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Primary-key values of live rows, encoded with arrow-row so that equal keys
/// have equal bytes whatever their types.
struct KeyIndex {
    /// Positions of the key columns in the stored schema (after the row id).
    columns: Vec<usize>,
    converter: RowConverter,
    rows: HashMap<Box<[u8]>, u64>,
}

/// What a proposed row's primary key meets (`TableData::match_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// No live row and no earlier proposed row has it.
    New,
    /// The live row with this id has it.
    Existing(u64),
    /// An earlier row of the same proposal has it (whether a live row
    /// has it too or not).
    Repeated,
}

/// A primary key that two rows share: what the caller reports to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConflict {
    /// "(id)=(1)" in PostgreSQL's style.
    pub key: String,
}

pub struct TableData {
    stored_schema: SchemaRef,
    chunks: Arc<Vec<RecordBatch>>,
    /// What readers other than the table's writer see while changes that
    /// are applied are not yet durable (see `hold_visible`); `None`: the
    /// current chunks.
    visible: Option<Arc<Vec<RecordBatch>>>,
    next_rowid: u64,
    next_seq: u64,
    /// Bytes written to the log since it was last rewritten: when the log
    /// outgrows the table it describes, it is compacted.
    log_bytes: usize,
    key_index: Option<KeyIndex>,
}

impl TableData {
    /// `primary_key` holds the positions of the key columns in the user schema.
    pub fn try_new(schema: &Schema, primary_key: &[usize]) -> Result<Self, ArrowError> {
        let stored_schema = schema_with_rowid(schema);
        let key_index = if primary_key.is_empty() {
            None
        } else {
            let columns: Vec<usize> = primary_key.iter().map(|i| i + 1).collect();
            let fields = columns
                .iter()
                .map(|&i| SortField::new(stored_schema.field(i).data_type().clone()))
                .collect();
            Some(KeyIndex {
                columns,
                converter: RowConverter::new(fields)?,
                rows: HashMap::new(),
            })
        };
        Ok(TableData {
            stored_schema,
            chunks: Arc::new(Vec::new()),
            visible: None,
            next_rowid: 1,
            next_seq: 0,
            log_bytes: 0,
            key_index,
        })
    }

    pub fn stored_schema(&self) -> &SchemaRef {
        &self.stored_schema
    }

    /// The chunks as of now, row id first. Cheap: an `Arc` clone.
    pub fn snapshot(&self) -> Arc<Vec<RecordBatch>> {
        self.chunks.clone()
    }

    /// The chunks readers see: without changes applied but not yet durable.
    pub fn visible(&self) -> Arc<Vec<RecordBatch>> {
        self.visible.clone().unwrap_or_else(|| self.chunks.clone())
    }

    /// Before applying a change that is not yet durable: readers keep
    /// seeing the chunks as they are.
    pub fn hold_visible(&mut self) {
        if self.visible.is_none() {
            self.visible = Some(self.chunks.clone());
        }
    }

    /// Once the change that produced `chunks` is durable (commits call this
    /// in commit order): readers see it, and follow the table again when
    /// nothing was applied after it.
    pub fn reveal(&mut self, chunks: &Arc<Vec<RecordBatch>>) {
        self.visible = (!Arc::ptr_eq(&self.chunks, chunks)).then(|| chunks.clone());
    }

    pub fn row_count(&self) -> usize {
        self.chunks.iter().map(|c| c.num_rows()).sum()
    }

    /// The row id the next inserted row gets. A writer holding the table's
    /// writer lock may use ids from here on: they become taken when its
    /// change is applied.
    pub fn next_rowid(&self) -> u64 {
        self.next_rowid
    }

    /// A private copy that a transaction changes until it commits; shares
    /// the chunks (copy on write), copies the key index.
    pub fn fork(&self) -> Result<Self, ArrowError> {
        let key_index = match &self.key_index {
            None => None,
            Some(index) => {
                let fields = index
                    .columns
                    .iter()
                    .map(|&i| SortField::new(self.stored_schema.field(i).data_type().clone()))
                    .collect();
                Some(KeyIndex {
                    columns: index.columns.clone(),
                    converter: RowConverter::new(fields)?,
                    rows: index.rows.clone(),
                })
            }
        };
        Ok(TableData {
            stored_schema: self.stored_schema.clone(),
            chunks: self.chunks.clone(),
            visible: None,
            next_rowid: self.next_rowid,
            next_seq: self.next_seq,
            log_bytes: self.log_bytes,
            key_index,
        })
    }

    /// Reserves `n` fresh row ids and returns the first. Ids reserved by a
    /// statement that then fails are simply never used.
    pub fn reserve_rowids(&mut self, n: usize) -> u64 {
        let first = self.next_rowid;
        self.next_rowid += n as u64;
        first
    }

    /// Reserves `n` log sequence numbers and returns the first.
    pub fn reserve_seqs(&mut self, n: usize) -> u64 {
        let first = self.next_seq;
        self.next_seq += n as u64;
        first
    }

    /// Continues numbering after a replayed log entry.
    pub fn replayed_seq(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// Counts bytes appended to the table's log.
    pub fn logged(&mut self, bytes: usize) {
        self.log_bytes += bytes;
    }

    /// Whether the log holds much more than the table: over twice the
    /// table's size, plus a floor so small tables are not rewritten often.
    pub fn log_outgrown(&self) -> bool {
        const FLOOR: usize = 64 * 1024;
        if self.log_bytes <= FLOOR {
            return false;
        }
        let table_bytes: usize = self.chunks.iter().map(|c| c.get_array_memory_size()).sum();
        self.log_bytes > 2 * table_bytes + FLOOR
    }

    /// The current rows as log entries of plain inserts, numbered from the
    /// returned sequence number on: the caller replaces the whole log with
    /// them. Numbering continues where the log stood, never restarts.
    pub fn compact_log(&mut self) -> Result<(u64, Vec<Vec<u8>>), ArrowError> {
        let entries = self
            .compacted_changes()
            .iter()
            .map(TableChange::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let first_seq = self.reserve_seqs(entries.len());
        self.log_bytes = entries.iter().map(Vec::len).sum();
        Ok((first_seq, entries))
    }

    /// Checks that applying `deleted` then `inserted` (stored schema) keeps
    /// the primary key unique. Returns the first conflicting key.
    pub fn check_keys(
        &self,
        deleted: &[u64],
        inserted: &RecordBatch,
    ) -> Result<Option<KeyConflict>, ArrowError> {
        let Some(index) = &self.key_index else {
            return Ok(None);
        };
        let columns: Vec<ArrayRef> = index
            .columns
            .iter()
            .map(|&i| inserted.column(i).clone())
            .collect();
        let rows = index.converter.convert_columns(&columns)?;
        let mut seen: HashMap<&[u8], ()> = HashMap::with_capacity(rows.num_rows());
        for i in 0..rows.num_rows() {
            let bytes = rows.row(i).data();
            let taken_by_live_row = index
                .rows
                .get(bytes)
                .is_some_and(|id| deleted.binary_search(id).is_err());
            if taken_by_live_row || seen.insert(bytes, ()).is_some() {
                return Ok(Some(KeyConflict {
                    key: describe_key(&self.stored_schema, &columns, &index.columns, i)?,
                }));
            }
        }
        Ok(None)
    }

    /// For each row of `rows` (the table's columns, without the row id):
    /// what its primary key meets (`ON CONFLICT`). Without a primary key
    /// every row is new.
    pub fn match_keys(&self, rows: &RecordBatch) -> Result<Vec<KeyMatch>, ArrowError> {
        let Some(index) = &self.key_index else {
            return Ok(vec![KeyMatch::New; rows.num_rows()]);
        };
        let columns: Vec<ArrayRef> = index
            .columns
            .iter()
            .map(|&i| rows.column(i - 1).clone())
            .collect();
        let keys = index.converter.convert_columns(&columns)?;
        let mut seen: HashMap<&[u8], ()> = HashMap::with_capacity(keys.num_rows());
        Ok((0..keys.num_rows())
            .map(|i| {
                let bytes = keys.row(i).data();
                if seen.insert(bytes, ()).is_some() {
                    return KeyMatch::Repeated;
                }
                match index.rows.get(bytes) {
                    Some(id) => KeyMatch::Existing(*id),
                    None => KeyMatch::New,
                }
            })
            .collect())
    }

    /// The live rows with the given ids (stored schema, row id first), in
    /// the order of `ids`. A scan of the table: fine for the few rows an
    /// upsert updates, not for bulk use.
    pub fn rows_by_id(&self, ids: &[u64]) -> Result<RecordBatch, ArrowError> {
        let wanted: HashMap<u64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut found: Vec<Option<(usize, u32)>> = vec![None; ids.len()];
        for (c, chunk) in self.chunks.iter().enumerate() {
            for (r, id) in rowids(chunk).values().iter().enumerate() {
                if let Some(&at) = wanted.get(id) {
                    found[at] = Some((c, r as u32));
                }
            }
        }
        let mut parts = Vec::with_capacity(ids.len());
        for place in found {
            let (c, r) = place.ok_or_else(|| {
                ArrowError::InvalidArgumentError("a matched row is not in the table".into())
            })?;
            parts.push(self.chunks[c].slice(r as usize, 1));
        }
        if parts.is_empty() {
            return Ok(RecordBatch::new_empty(self.stored_schema.clone()));
        }
        concat_batches(&self.stored_schema, &parts)
    }

    /// Applies a change that has been validated and logged. Returns the
    /// rows it removed (stored schema), found in the same pass that removes
    /// them: the old values a dataflow needs to retract.
    pub fn apply(&mut self, change: &TableChange) -> Result<Option<RecordBatch>, ArrowError> {
        let mut chunks: Vec<RecordBatch> = self.chunks.as_ref().clone();
        let mut removed = Vec::new();
        if !change.deleted.is_empty() {
            self.delete(&mut chunks, &change.deleted, &mut removed)?;
        }
        if let Some(batch) = &change.inserted
            && batch.num_rows() > 0
        {
            self.insert(&mut chunks, batch)?;
        }
        self.chunks = Arc::new(chunks);
        Ok(match removed.len() {
            0 => None,
            1 => removed.pop(),
            _ => Some(concat_batches(&self.stored_schema, &removed)?),
        })
    }

    fn delete(
        &mut self,
        chunks: &mut Vec<RecordBatch>,
        deleted: &[u64],
        removed: &mut Vec<RecordBatch>,
    ) -> Result<(), ArrowError> {
        // Both id lists ascend: each chunk takes the run of `deleted` that
        // falls in its id range, and each of those ids is found in the chunk
        // by binary search. The cost is the deleted rows' (plus one copy of
        // each touched chunk), not a lookup for every row of the table.
        let mut rest = deleted;
        for chunk in chunks.iter_mut() {
            if rest.is_empty() {
                break;
            }
            let ids = rowids(chunk).values();
            let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
                continue;
            };
            rest = &rest[rest.partition_point(|&d| d < first)..];
            let run = &rest[..rest.partition_point(|&d| d <= last)];
            rest = &rest[run.len()..];
            let positions: Vec<u32> = run
                .iter()
                .filter_map(|id| ids.binary_search(id).ok().map(|p| p as u32))
                .collect();
            if positions.is_empty() {
                continue;
            }
            let mut keep = BooleanBufferBuilder::new(ids.len());
            keep.append_n(ids.len(), true);
            for &p in &positions {
                keep.set_bit(p as usize, false);
            }
            let gone = take_record_batch(chunk, &UInt32Array::from(positions))?;
            if let Some(index) = &mut self.key_index {
                let columns: Vec<ArrayRef> = index
                    .columns
                    .iter()
                    .map(|&i| gone.column(i).clone())
                    .collect();
                for row in index.converter.convert_columns(&columns)?.iter() {
                    index.rows.remove(row.as_ref());
                }
            }
            removed.push(gone);
            *chunk = filter_record_batch(chunk, &BooleanArray::new(keep.finish(), None))?;
        }
        chunks.retain(|c| c.num_rows() > 0);
        Ok(())
    }

    fn insert(
        &mut self,
        chunks: &mut Vec<RecordBatch>,
        batch: &RecordBatch,
    ) -> Result<(), ArrowError> {
        let ids = rowids(batch);
        if let Some(max) = ids.values().iter().max() {
            self.next_rowid = self.next_rowid.max(max + 1);
        }
        if let Some(index) = &mut self.key_index {
            let columns: Vec<ArrayRef> = index
                .columns
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect();
            for (row, id) in index
                .converter
                .convert_columns(&columns)?
                .iter()
                .zip(ids.values().iter())
            {
                index.rows.insert(row.as_ref().into(), *id);
            }
        }
        let mut offset = 0;
        // Top up a small last chunk first so single-row inserts do not leave
        // thousands of one-row chunks for every scan to walk.
        if let Some(last) = chunks.last_mut()
            && last.num_rows() < CHUNK_ROWS
        {
            let take = (CHUNK_ROWS - last.num_rows()).min(batch.num_rows());
            *last = concat_batches(&self.stored_schema, [&*last, &batch.slice(0, take)])?;
            offset = take;
        }
        while offset < batch.num_rows() {
            let take = CHUNK_ROWS.min(batch.num_rows() - offset);
            chunks.push(batch.slice(offset, take));
            offset += take;
        }
        Ok(())
    }

    fn compacted_changes(&self) -> Vec<TableChange> {
        self.chunks
            .iter()
            .map(|c| TableChange {
                deleted: Vec::new(),
                inserted: Some(c.clone()),
            })
            .collect()
    }
}

fn rowids(batch: &RecordBatch) -> &UInt64Array {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .expect("the first stored column is the UInt64 row id")
}

fn describe_key(
    schema: &Schema,
    columns: &[ArrayRef],
    positions: &[usize],
    row: usize,
) -> Result<String, ArrowError> {
    let names: Vec<&str> = positions
        .iter()
        .map(|&i| schema.field(i).name().as_str())
        .collect();
    let values = columns
        .iter()
        .map(|c| {
            if c.is_null(row) {
                Ok("null".to_string())
            } else {
                array_value_to_string(c, row)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("({})=({})", names.join(", "), values.join(", ")))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;

    fn user_schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ])
    }

    fn rows(data: &TableData, first_id: u64, ids: &[i64], vs: &[i64]) -> RecordBatch {
        let rowids: Vec<u64> = (0..ids.len() as u64).map(|i| first_id + i).collect();
        RecordBatch::try_new(
            data.stored_schema().clone(),
            vec![
                Arc::new(UInt64Array::from(rowids)),
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(Int64Array::from(vs.to_vec())),
            ],
        )
        .unwrap()
    }

    fn live_ids(data: &TableData) -> Vec<i64> {
        let mut out = Vec::new();
        for chunk in data.snapshot().iter() {
            let col = chunk
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            out.extend(col.values().iter().copied());
        }
        out
    }

    #[test]
    fn insert_delete_and_key_reuse() {
        let mut data = TableData::try_new(&user_schema(), &[0]).unwrap();
        let first = data.reserve_rowids(3);
        let batch = rows(&data, first, &[1, 2, 3], &[10, 20, 30]);
        assert_eq!(data.check_keys(&[], &batch).unwrap(), None);
        data.apply(&TableChange {
            deleted: vec![],
            inserted: Some(batch),
        })
        .unwrap();
        assert_eq!(live_ids(&data), vec![1, 2, 3]);

        // Inserting key 2 again conflicts with the live row.
        let dup = rows(&data, 100, &[2], &[0]);
        assert_eq!(data.check_keys(&[], &dup).unwrap().unwrap().key, "(id)=(2)");
        // ...unless the same statement deletes that row (an UPDATE of v).
        assert_eq!(data.check_keys(&[first + 1], &dup).unwrap(), None);

        data.apply(&TableChange {
            deleted: vec![first + 1],
            inserted: None,
        })
        .unwrap();
        assert_eq!(live_ids(&data), vec![1, 3]);
        assert_eq!(data.check_keys(&[], &dup).unwrap(), None);
        assert_eq!(data.row_count(), 2);
    }

    #[test]
    fn duplicate_keys_within_one_statement_conflict() {
        let data = TableData::try_new(&user_schema(), &[0]).unwrap();
        let batch = rows(&data, 1, &[5, 5], &[1, 2]);
        assert!(data.check_keys(&[], &batch).unwrap().is_some());
    }

    #[test]
    fn many_small_inserts_share_chunks() {
        let mut data = TableData::try_new(&user_schema(), &[]).unwrap();
        for i in 0..100 {
            let id = data.reserve_rowids(1);
            let batch = rows(&data, id, &[i], &[i]);
            data.apply(&TableChange {
                deleted: vec![],
                inserted: Some(batch),
            })
            .unwrap();
        }
        assert_eq!(data.snapshot().len(), 1);
        assert_eq!(data.row_count(), 100);
        // Deleting every other row keeps the order of the rest.
        let doomed: Vec<u64> = (1..=100).filter(|i| i % 2 == 0).collect();
        data.apply(&TableChange {
            deleted: doomed,
            inserted: None,
        })
        .unwrap();
        assert_eq!(live_ids(&data), (0..100).step_by(2).collect::<Vec<i64>>());
    }
}
