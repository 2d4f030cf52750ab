//! Everything Freshet keeps on disk: an embedded sled database behind our
//! own write-ahead log (`wal`).
//!
//! Two sled trees hold the state: `catalog` (one entry per schema, table and
//! view definition) and `table_log` (the changes each DML statement made,
//! keyed by table id and a sequence number); `meta` holds the id counter. A
//! table's contents are the replay of its log; nothing else is needed to
//! rebuild them after a crash. No sled type leaves this module: callers see
//! `Store` and plain bytes.
//!
//! Durability: every mutation is applied to sled and appended to the
//! write-ahead log under one lock, so both see one order. A write is durable
//! once `flush` returns: the log has been `fdatasync`ed past it. DML and DDL
//! are acknowledged only after that. One statement's entries are one record
//! and one atomic sled batch, so a crash never leaves half a statement.
//! At open, the log is replayed on top of sled, sled is made durable and the
//! log starts afresh.

mod change;
mod mv;
mod mv_index;
mod snapshot;
mod table;
mod wal;

pub use change::TableChange;
pub use mv::MvData;
pub use mv_index::MvIndex;
pub use snapshot::{Chunks, EpochSnapshot, Published};
pub use table::{KeyMatch, ROWID_COLUMN, TableData, schema_with_rowid};

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wal::{Op, TableEntries, Wal, WalError};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("corrupt table log entry for table {table}: {reason}")]
    Corrupt { table: u64, reason: String },
}

/// The handle to the data directory (or to an in-memory database).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    catalog: sled::Tree,
    log: sled::Tree,
    meta: sled::Tree,
    /// `None` in memory: nothing outlives the process anyway.
    wal: Option<Arc<Wal>>,
    /// Held while a mutation is applied to sled and appended to the log.
    order: Arc<Mutex<()>>,
    next_id: Arc<AtomicU64>,
}

const NEXT_ID_KEY: &[u8] = b"next_id";

/// What a replay of the write-ahead log did.
#[derive(Debug, Default, PartialEq)]
struct Replayed {
    applied: usize,
    skipped: usize,
}

fn log_key(table: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&table.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Makes everything applied to sled so far durable: sled's flush writes its
/// buffers (with `sync_file_range` only), then every file sled keeps and
/// the directories that name them are fsynced.
fn make_durable(db: &sled::Db, dir: &Path) -> std::io::Result<()> {
    db.flush().map_err(std::io::Error::other)?;
    for sub in [dir.to_path_buf(), dir.join("blobs")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::File::open(entry.path())?.sync_all()?;
            }
        }
        std::fs::File::open(&sub)?.sync_all()?;
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the data directory at `path`, replaying its
    /// write-ahead log.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = sled::Config::new().path(path).open()?;
        let wal_dir = path.join("wal");
        let (ops, next_segment) = wal::recover(&wal_dir)?;
        let mut store = Self::with_db(db)?;
        let replayed = store.replay(&ops)?;
        make_durable(&store.db, path).map_err(WalError::Io)?;
        if !ops.is_empty() {
            tracing::info!(
                records = ops.len(),
                applied = replayed.applied,
                "replayed the write-ahead log"
            );
        }
        let db = store.db.clone();
        let dir: PathBuf = path.to_path_buf();
        store.wal = Some(Arc::new(Wal::start(
            &wal_dir,
            next_segment,
            Arc::new(move || make_durable(&db, &dir)),
        )?));
        Ok(store)
    }

    /// A store that lives only as long as the process: for tests and demos.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::with_db(sled::Config::new().temporary(true).open()?)
    }

    fn with_db(db: sled::Db) -> Result<Self, StorageError> {
        let catalog = db.open_tree("catalog")?;
        let log = db.open_tree("table_log")?;
        let meta = db.open_tree("meta")?;
        // Ids handed out before the counter lived in `meta` came from sled's
        // generator; never go below either.
        let stored = meta
            .get(NEXT_ID_KEY)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let next_id = stored.max(db.generate_id()? + 1);
        Ok(Store {
            db,
            catalog,
            log,
            meta,
            wal: None,
            order: Arc::new(Mutex::new(())),
            next_id: Arc::new(AtomicU64::new(next_id)),
        })
    }

    /// Applies one mutation to sled and, on disk, appends it to the log, in
    /// one order for both. Durable after the next `flush`.
    fn mutate(&self, op: Op<'_>) -> Result<(), StorageError> {
        let record = self.wal.as_ref().map(|_| op.encode());
        let _order = self.order.lock().expect("store lock poisoned");
        self.apply(&op)?;
        if let (Some(wal), Some(record)) = (&self.wal, record) {
            wal.append(&record);
        }
        Ok(())
    }

    /// Brings sled to the log's state, writing only what sled lacks. A
    /// record whose every key a later record overwrites (a put or removal
    /// of the same catalog key, a rewrite of the same table's log) is
    /// skipped, and so is one sled already holds: nothing reads sled during
    /// the replay, so the end state is the log's either way. Why not apply
    /// everything: rewriting what sled holds churns its segments, and a
    /// burst of that at start can deadlock sled 0.34 (a tip bump under its
    /// segment mutex waits for a file truncation queued behind I/O tasks
    /// that wait for that mutex).
    fn replay(&self, ops: &[Op<'_>]) -> Result<Replayed, StorageError> {
        let mut last_rewrite = HashMap::new();
        let mut last_catalog = HashMap::new();
        let mut last_next_id = None;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Append(_) => {}
                Op::Rewrite { table, .. } => {
                    last_rewrite.insert(*table, i);
                }
                Op::PutCatalog { key, .. } | Op::RemoveCatalog(key) => {
                    last_catalog.insert(key.as_ref(), i);
                }
                Op::NextId(_) => last_next_id = Some(i),
            }
        }
        let overwritten = |last: Option<&usize>, i: usize| last.is_some_and(|&last| last > i);
        let mut replayed = Replayed::default();
        for (i, op) in ops.iter().enumerate() {
            let live = match op {
                Op::Append(tables) => {
                    let kept: Vec<TableEntries> = tables
                        .iter()
                        .filter(|(table, ..)| !overwritten(last_rewrite.get(table), i))
                        .cloned()
                        .collect();
                    (!kept.is_empty()).then_some(Op::Append(Cow::Owned(kept)))
                }
                Op::Rewrite { table, .. } => {
                    (!overwritten(last_rewrite.get(table), i)).then(|| op.clone())
                }
                Op::PutCatalog { key, .. } | Op::RemoveCatalog(key) => {
                    (!overwritten(last_catalog.get(key.as_ref()), i)).then(|| op.clone())
                }
                Op::NextId(next) => {
                    self.next_id.fetch_max(*next, Ordering::AcqRel);
                    (!overwritten(last_next_id.as_ref(), i)).then(|| op.clone())
                }
            };
            match live {
                Some(op) if !self.holds(&op, &ops[i + 1..])? => {
                    self.apply(&op)?;
                    replayed.applied += 1;
                }
                _ => replayed.skipped += 1,
            }
        }
        Ok(replayed)
    }

    /// Whether applying `op`, and then the records `after` it, would leave
    /// sled as it is. Only a rewrite needs `after`: sled may hold the
    /// appends that follow it as well as its entries.
    fn holds(&self, op: &Op<'_>, after: &[Op<'_>]) -> Result<bool, StorageError> {
        Ok(match op {
            Op::Append(tables) => {
                for (table, first_seq, entries) in tables.iter() {
                    for (i, entry) in entries.iter().enumerate() {
                        let key = log_key(*table, first_seq + i as u64);
                        if self.log.get(key)?.as_deref() != Some(entry.as_slice()) {
                            return Ok(false);
                        }
                    }
                }
                true
            }
            Op::Rewrite {
                table,
                first_seq,
                entries,
            } => {
                let mut wanted: BTreeMap<u64, &[u8]> = entries
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| (first_seq + i as u64, entry.as_slice()))
                    .collect();
                for later in after {
                    if let Op::Append(tables) = later {
                        for (_, first, appended) in tables.iter().filter(|(t, ..)| t == table) {
                            for (i, entry) in appended.iter().enumerate() {
                                wanted.insert(first + i as u64, entry.as_slice());
                            }
                        }
                    }
                }
                let mut held = BTreeMap::new();
                for found in self
                    .log
                    .range(log_key(*table, 0)..=log_key(*table, u64::MAX))
                {
                    let (key, value) = found?;
                    let seq = u64::from_be_bytes(key[8..16].try_into().unwrap_or_default());
                    held.insert(seq, value);
                }
                held.len() == wanted.len()
                    && held
                        .iter()
                        .zip(&wanted)
                        .all(|((a, x), (b, y))| a == b && x.as_ref() == *y)
            }
            Op::PutCatalog { key, value } => {
                self.catalog.get(key.as_bytes())?.as_deref() == Some(value.as_ref())
            }
            Op::RemoveCatalog(key) => !self.catalog.contains_key(key.as_bytes())?,
            Op::NextId(next) => {
                self.meta.get(NEXT_ID_KEY)?.as_deref() == Some(next.to_be_bytes().as_slice())
            }
        })
    }

    fn apply(&self, op: &Op<'_>) -> Result<(), StorageError> {
        match op {
            Op::Append(tables) => {
                let mut batch = sled::Batch::default();
                for (table, first_seq, entries) in tables.iter() {
                    for (i, entry) in entries.iter().enumerate() {
                        batch.insert(&log_key(*table, first_seq + i as u64), entry.as_slice());
                    }
                }
                self.log.apply_batch(batch)?;
            }
            Op::Rewrite {
                table,
                first_seq,
                entries,
            } => {
                let mut batch = sled::Batch::default();
                for key in self
                    .log
                    .range(log_key(*table, 0)..=log_key(*table, u64::MAX))
                    .keys()
                {
                    batch.remove(key?);
                }
                for (i, entry) in entries.iter().enumerate() {
                    batch.insert(&log_key(*table, first_seq + i as u64), entry.as_slice());
                }
                self.log.apply_batch(batch)?;
            }
            Op::PutCatalog { key, value } => {
                self.catalog.insert(key.as_bytes(), value.as_ref())?;
            }
            Op::RemoveCatalog(key) => {
                self.catalog.remove(key.as_bytes())?;
            }
            Op::NextId(next) => {
                self.meta.insert(NEXT_ID_KEY, &next.to_be_bytes())?;
                self.next_id.fetch_max(*next, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    /// A fresh id, unique for the life of the data directory (durable with
    /// the next `flush`, as the definition that uses it).
    pub fn next_id(&self) -> Result<u64, StorageError> {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        self.mutate(Op::NextId(id + 1))?;
        Ok(id)
    }

    pub fn put_catalog(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.mutate(Op::PutCatalog {
            key: Cow::Borrowed(key),
            value: Cow::Borrowed(value),
        })
    }

    pub fn remove_catalog(&self, key: &str) -> Result<(), StorageError> {
        self.mutate(Op::RemoveCatalog(Cow::Borrowed(key)))
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

    /// Appends the changes of one statement or transaction, over one or
    /// more tables, in one atomic batch: `(table, first_seq, entries)` each.
    /// The caller owns the numbering (see `TableData::reserve_seqs`).
    pub fn append_changes_of(
        &self,
        tables: &[(u64, u64, Vec<Vec<u8>>)],
    ) -> Result<(), StorageError> {
        self.mutate(Op::Append(Cow::Borrowed(tables)))
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
        self.mutate(Op::Rewrite {
            table,
            first_seq,
            entries: Cow::Borrowed(entries),
        })
    }

    pub fn drop_table_log(&self, table: u64) -> Result<(), StorageError> {
        self.rewrite_table_log(table, 0, &[])
    }

    /// Makes every write so far durable: returns once the log has been
    /// synced past it. Concurrent callers share one sync.
    pub async fn flush(&self) -> Result<(), StorageError> {
        match &self.wal {
            Some(wal) => Ok(wal.sync().await?),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_logs_keep_their_numbering_and_other_tables() {
        let store = Store::in_memory().unwrap();
        store
            .append_changes_of(&[(1, 0, vec![b"a".to_vec(), b"b".to_vec()])])
            .unwrap();
        store
            .append_changes_of(&[(2, 0, vec![b"other".to_vec()])])
            .unwrap();
        store.rewrite_table_log(1, 2, &[b"ab".to_vec()]).unwrap();
        store
            .append_changes_of(&[(1, 3, vec![b"c".to_vec()])])
            .unwrap();
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

    /// Catalog entries, and each table's log.
    type Contents = (Vec<(String, Vec<u8>)>, Vec<(u64, Vec<(u64, Vec<u8>)>)>);

    /// Everything a store holds, to compare two stores.
    fn contents(store: &Store) -> Contents {
        let tables = store
            .logged_tables()
            .unwrap()
            .into_iter()
            .map(|t| (t, store.table_changes(t).unwrap()))
            .collect();
        (store.catalog_entries().unwrap(), tables)
    }

    #[test]
    fn a_replay_applies_only_what_sled_lost_and_ends_in_the_logs_state() {
        let ops = vec![
            Op::PutCatalog {
                key: "table/t".into(),
                value: Cow::Borrowed(b"def"),
            },
            Op::Append(Cow::Owned(vec![(7, 0, vec![b"a".to_vec(), b"b".to_vec()])])),
            Op::Rewrite {
                table: 7,
                first_seq: 2,
                entries: Cow::Owned(vec![b"ab".to_vec()]),
            },
            Op::Append(Cow::Owned(vec![
                (7, 3, vec![b"c".to_vec()]),
                (8, 0, vec![b"x".to_vec()]),
            ])),
            Op::RemoveCatalog("table/t".into()),
            Op::PutCatalog {
                key: "table/u".into(),
                value: Cow::Borrowed(b"def2"),
            },
            Op::NextId(9),
        ];
        let full = Store::in_memory().unwrap();
        for op in &ops {
            full.apply(op).unwrap();
        }
        // A sled that kept everything: nothing is written again.
        assert_eq!(
            full.replay(&ops).unwrap(),
            Replayed {
                applied: 0,
                skipped: ops.len()
            }
        );
        // A sled that kept only a prefix, as after a crash.
        for kept in 0..ops.len() {
            let partial = Store::in_memory().unwrap();
            for op in &ops[..kept] {
                partial.apply(op).unwrap();
            }
            partial.replay(&ops).unwrap();
            assert_eq!(contents(&partial), contents(&full), "kept {kept}");
            assert!(partial.next_id().unwrap() >= 9);
        }
    }

    #[tokio::test]
    async fn the_log_alone_rebuilds_what_was_acknowledged() {
        let root =
            std::env::temp_dir().join(format!("freshet-store-replay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (first, second) = (root.join("first"), root.join("second"));
        let id = {
            let store = Store::open(&first).unwrap();
            let id = store.next_id().unwrap();
            store.put_catalog("table/t", b"def").unwrap();
            store
                .append_changes_of(&[
                    (id, 0, vec![b"a".to_vec()]),
                    (id + 1, 0, vec![b"x".to_vec()]),
                ])
                .unwrap();
            store.rewrite_table_log(id, 1, &[b"a2".to_vec()]).unwrap();
            store
                .append_changes_of(&[(id, 2, vec![b"b".to_vec()])])
                .unwrap();
            store.remove_catalog("table/t").unwrap();
            store.put_catalog("table/u", b"def2").unwrap();
            store.flush().await.unwrap();
            // Copied while the store is open: what a crash right after the
            // acknowledgment leaves of the log, beside a sled that has none of it.
            std::fs::create_dir_all(second.join("wal")).unwrap();
            for entry in std::fs::read_dir(first.join("wal")).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, second.join("wal").join(path.file_name().unwrap())).unwrap();
            }
            id
        };
        for dir in [&first, &second] {
            let store = Store::open(dir).unwrap();
            assert_eq!(
                store.table_changes(id).unwrap(),
                vec![(1, b"a2".to_vec()), (2, b"b".to_vec())]
            );
            assert_eq!(
                store.table_changes(id + 1).unwrap(),
                vec![(0, b"x".to_vec())]
            );
            assert_eq!(
                store.catalog_entries().unwrap(),
                vec![("table/u".to_string(), b"def2".to_vec())]
            );
            assert!(store.next_id().unwrap() > id);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
