//! One DML statement's effect on one table, as it is written to the log.
//!
//! A change is a Z-set in two parts: the row ids it removes (weight -1) and
//! the rows it adds (weight +1, each with a fresh row id). An UPDATE is both.
//! Rows travel as Arrow IPC so the log stores exactly what the engine holds,
//! with no conversion that could lose a type.
//!
//! Layout: `[version u8][deleted count u64][deleted row ids u64...][IPC stream]`,
//! little-endian; the IPC stream is absent when nothing is inserted.

use std::io::Cursor;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

use super::StorageError;

const VERSION: u8 = 1;

#[derive(Debug, Clone, Default)]
pub struct TableChange {
    /// Row ids removed, in ascending order.
    pub deleted: Vec<u64>,
    /// Rows added, with the row id as the first column.
    pub inserted: Option<RecordBatch>,
}

impl TableChange {
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.inserted.as_ref().is_none_or(|b| b.num_rows() == 0)
    }

    pub fn encode(&self) -> Result<Vec<u8>, datafusion::arrow::error::ArrowError> {
        let mut out = Vec::with_capacity(9 + self.deleted.len() * 8);
        out.push(VERSION);
        out.extend_from_slice(&(self.deleted.len() as u64).to_le_bytes());
        for id in &self.deleted {
            out.extend_from_slice(&id.to_le_bytes());
        }
        if let Some(batch) = &self.inserted {
            let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
            writer.write(batch)?;
            writer.finish()?;
        }
        Ok(out)
    }

    pub fn decode(table: u64, bytes: &[u8]) -> Result<Self, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt { table, reason };
        if bytes.first() != Some(&VERSION) || bytes.len() < 9 {
            return Err(corrupt("unknown entry version".into()));
        }
        let count = u64::from_le_bytes(bytes[1..9].try_into().expect("length checked")) as usize;
        let ids_end = 9 + count * 8;
        if bytes.len() < ids_end {
            return Err(corrupt("truncated row ids".into()));
        }
        let deleted = bytes[9..ids_end]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect();
        let rest = &bytes[ids_end..];
        let inserted = if rest.is_empty() {
            None
        } else {
            let reader = StreamReader::try_new(Cursor::new(rest), None)
                .map_err(|e| corrupt(e.to_string()))?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| corrupt(e.to_string()))?;
            match batches.len() {
                0 => None,
                1 => batches.into_iter().next(),
                _ => {
                    let schema = batches[0].schema();
                    Some(
                        datafusion::arrow::compute::concat_batches(&schema, &batches)
                            .map_err(|e| corrupt(e.to_string()))?,
                    )
                }
            }
        };
        Ok(TableChange { deleted, inserted })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{StringArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn round_trips_deletes_and_inserts() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("__rowid", DataType::UInt64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        let change = TableChange {
            deleted: vec![1, 5],
            inserted: Some(batch.clone()),
        };
        let decoded = TableChange::decode(1, &change.encode().unwrap()).unwrap();
        assert_eq!(decoded.deleted, vec![1, 5]);
        assert_eq!(decoded.inserted.unwrap(), batch);

        let only_deletes = TableChange {
            deleted: vec![3],
            inserted: None,
        };
        let decoded = TableChange::decode(1, &only_deletes.encode().unwrap()).unwrap();
        assert_eq!(decoded.deleted, vec![3]);
        assert!(decoded.inserted.is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(TableChange::decode(1, &[9, 9]).is_err());
        assert!(TableChange::decode(1, &[1, 5, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
