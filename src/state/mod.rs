//! Everything Freshet keeps on disk, in one embedded sled database.
//!
//! Two trees: `catalog` (one entry per schema and table definition) and
//! `table_log` (the changes each DML statement made, keyed by table id and a
//! sequence number). A table's contents are the replay of its log; nothing
//! else is needed to rebuild them after a crash. No sled type leaves this
//! module: callers see `Store` and plain bytes.
//!
//! Durability: a write is durable once `flush` returns. DML is acknowledged
//! only after that, so a `kill -9` loses nothing that a client saw succeed.
//! One statement's entries go in with one atomic sled batch, so a crash never
//! leaves half a statement behind.

mod change;
mod mv;
mod mv_index;
mod snapshot;
mod table;

pub use change::TableChange;
pub use mv::MvData;
pub use mv_index::MvIndex;
pub use snapshot::{Chunks, EpochSnapshot, Published};
pub use table::{ROWID_COLUMN, TableData, schema_with_rowid};

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt table log entry for table {table}: {reason}")]
    Corrupt { table: u64, reason: String },
}

/// The handle to the data directory (or to an in-memory database).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    catalog: sled::Tree,
    log: sled::Tree,
}

fn log_key(table: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&table.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl Store {
    /// Opens (or creates) the data directory at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::from_config(sled::Config::new().path(path))
    }

    /// A store that lives only as long as the process: for tests and demos.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::from_config(sled::Config::new().temporary(true))
    }

    fn from_config(config: sled::Config) -> Result<Self, StorageError> {
        let db = config.open()?;
        let catalog = db.open_tree("catalog")?;
        let log = db.open_tree("table_log")?;
        Ok(Store { db, catalog, log })
    }

    /// A fresh id, unique for the life of the data directory.
    pub fn next_id(&self) -> Result<u64, StorageError> {
        Ok(self.db.generate_id()? + 1)
    }

    pub fn put_catalog(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.catalog.insert(key.as_bytes(), value)?;
        Ok(())
    }

    pub fn remove_catalog(&self, key: &str) -> Result<(), StorageError> {
        self.catalog.remove(key.as_bytes())?;
        Ok(())
    }

    /// All catalog entries, in key order.
    pub fn catalog_entries(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.catalog
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    /// Appends one statement's change entries to a table's log, atomically.
    /// `first_seq` is the sequence number of the first entry; the caller owns
    /// the numbering (see `TableData::next_seq`).
    pub fn append_changes(
        &self,
        table: u64,
        first_seq: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (i, entry) in entries.iter().enumerate() {
            batch.insert(&log_key(table, first_seq + i as u64), entry.as_slice());
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    /// Appends the changes of several tables (one transaction) in one
    /// atomic batch: `(table, first_seq, entries)` each.
    pub fn append_changes_of(
        &self,
        tables: &[(u64, u64, Vec<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (table, first_seq, entries) in tables {
            for (i, entry) in entries.iter().enumerate() {
                batch.insert(&log_key(*table, first_seq + i as u64), entry.as_slice());
            }
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    /// The log of one table in order: (sequence number, entry).
    pub fn table_changes(&self, table: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.log
            .range(log_key(table, 0)..=log_key(table, u64::MAX))
            .map(|entry| {
                let (k, v) = entry?;
                let seq =
                    u64::from_be_bytes(k[8..16].try_into().map_err(|_| StorageError::Corrupt {
                        table,
                        reason: "short log key".into(),
                    })?);
                Ok((seq, v.to_vec()))
            })
            .collect()
    }

    /// Table ids that have log entries, for removing the logs of tables that
    /// a crash left behind between dropping the definition and its rows.
    pub fn logged_tables(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::new();
        let mut next = Some(log_key(0, 0));
        while let Some(start) = next {
            next = None;
            if let Some(entry) = self.log.range(start..).next() {
                let (k, _) = entry?;
                let id = u64::from_be_bytes(k[..8].try_into().unwrap_or([0xff; 8]));
                ids.push(id);
                next = id.checked_add(1).map(|n| log_key(n, 0));
            }
        }
        Ok(ids)
    }

    /// Replaces a table's whole log with `entries`, numbered from
    /// `first_seq`, in one atomic batch: used to compact a log into the
    /// table's current rows. Sequence numbers keep growing across rewrites,
    /// so a position in the log never names two different changes.
    pub fn rewrite_table_log(
        &self,
        table: u64,
        first_seq: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for key in self
            .log
            .range(log_key(table, 0)..=log_key(table, u64::MAX))
            .keys()
        {
            batch.remove(key?);
        }
        for (i, entry) in entries.iter().enumerate() {
            batch.insert(&log_key(table, first_seq + i as u64), entry.as_slice());
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    pub fn drop_table_log(&self, table: u64) -> Result<(), StorageError> {
        self.rewrite_table_log(table, 0, &[])
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_logs_keep_their_numbering_and_other_tables() {
        let store = Store::in_memory().unwrap();
        store
            .append_changes(1, 0, &[b"a".to_vec(), b"b".to_vec()])
            .unwrap();
        store.append_changes(2, 0, &[b"other".to_vec()]).unwrap();
        store.rewrite_table_log(1, 2, &[b"ab".to_vec()]).unwrap();
        store.append_changes(1, 3, &[b"c".to_vec()]).unwrap();
        assert_eq!(
            store.table_changes(1).unwrap(),
            vec![(2, b"ab".to_vec()), (3, b"c".to_vec())]
        );
        assert_eq!(
            store.table_changes(2).unwrap(),
            vec![(0, b"other".to_vec())]
        );
        assert_eq!(store.logged_tables().unwrap(), vec![1, 2]);
        store.drop_table_log(1).unwrap();
        assert!(store.table_changes(1).unwrap().is_empty());
        assert_eq!(store.logged_tables().unwrap(), vec![2]);
    }
}
