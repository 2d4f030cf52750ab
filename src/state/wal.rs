//! The write-ahead log in front of sled: what makes an acknowledged write
//! durable.
//!
//! Why a log of our own: sled 0.34 writes its log with `sync_file_range`,
//! which flushes neither the drive's cache nor the file's metadata, and it
//! writes values over its blob threshold (about 128 KiB) to blob files it
//! never fsyncs. So every mutation of the store is also one record here, and
//! a write is acknowledged only once its record has been `fdatasync`ed.
//!
//! Invariants:
//! - Records are appended in the order their mutations are applied to sled
//!   (the store holds one lock around both), so replaying the log in order
//!   on top of whatever sled kept reproduces every acknowledged state.
//! - Each record sets keys to values or replaces one table's whole log, so
//!   replaying a record that sled already holds changes nothing.
//! - One thread writes and syncs whatever is pending; every writer waits for
//!   the synced position to pass its own. Concurrent writers share a sync
//!   (group commit) instead of queueing one sync each.
//! - When a segment outgrows `SEGMENT_BYTES`, a new one starts; the older
//!   ones are deleted only after sled has been made durable (its own flush
//!   plus an fsync of its files), which is a checkpoint.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

/// Size past which the log starts a new segment and checkpoints sled. A
/// start after a crash replays up to about this much into sled again.
const SEGMENT_BYTES: u64 = 16 << 20;

/// The log entries of one table in one record: `(table, first_seq, entries)`.
pub type TableEntries = (u64, u64, Vec<Vec<u8>>);

/// One mutation of the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Op<'a> {
    /// Log entries of one or more tables, from one statement or transaction:
    /// `(table, first_seq, entries)` each.
    Append(Cow<'a, [TableEntries]>),
    /// A table's whole log replaced (compaction; no entries when dropped).
    Rewrite {
        table: u64,
        first_seq: u64,
        entries: Cow<'a, [Vec<u8>]>,
    },
    PutCatalog {
        key: Cow<'a, str>,
        value: Cow<'a, [u8]>,
    },
    RemoveCatalog(Cow<'a, str>),
    /// The next id the store hands out.
    NextId(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log: {0}")]
    Io(#[from] std::io::Error),
    #[error("write-ahead log {path}: corrupt record at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A write or sync failed once: nothing written after it can be trusted
    /// to be durable, so every later write is refused (PostgreSQL panics).
    #[error("write-ahead log failed, writes are refused until restart: {0}")]
    Failed(String),
}

const APPEND: u8 = 1;
const REWRITE: u8 = 2;
const PUT_CATALOG: u8 = 3;
const REMOVE_CATALOG: u8 = 4;
const NEXT_ID: u8 = 5;

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl Op<'_> {
    /// The record: payload length, CRC-32 of the payload, payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 12];
        match self {
            Op::Append(tables) => {
                out.push(APPEND);
                put_u64(&mut out, tables.len() as u64);
                for (table, first_seq, entries) in tables.iter() {
                    put_u64(&mut out, *table);
                    put_u64(&mut out, *first_seq);
                    put_u64(&mut out, entries.len() as u64);
                    for entry in entries {
                        put_bytes(&mut out, entry);
                    }
                }
            }
            Op::Rewrite {
                table,
                first_seq,
                entries,
            } => {
                out.push(REWRITE);
                put_u64(&mut out, *table);
                put_u64(&mut out, *first_seq);
                put_u64(&mut out, entries.len() as u64);
                for entry in entries.iter() {
                    put_bytes(&mut out, entry);
                }
            }
            Op::PutCatalog { key, value } => {
                out.push(PUT_CATALOG);
                put_bytes(&mut out, key.as_bytes());
                put_bytes(&mut out, value);
            }
            Op::RemoveCatalog(key) => {
                out.push(REMOVE_CATALOG);
                put_bytes(&mut out, key.as_bytes());
            }
            Op::NextId(id) => {
                out.push(NEXT_ID);
                put_u64(&mut out, *id);
            }
        }
        let len = (out.len() - 12) as u64;
        let crc = crc32fast::hash(&out[12..]);
        out[..8].copy_from_slice(&len.to_le_bytes());
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(payload: &[u8]) -> Result<Op<'static>, String> {
        let mut reader = Reader(payload);
        let op = match reader.byte()? {
            APPEND => {
                let n = reader.u64()?;
                let mut tables = Vec::new();
                for _ in 0..n {
                    let table = reader.u64()?;
                    let first_seq = reader.u64()?;
                    tables.push((table, first_seq, reader.entries()?));
                }
                Op::Append(Cow::Owned(tables))
            }
            REWRITE => Op::Rewrite {
                table: reader.u64()?,
                first_seq: reader.u64()?,
                entries: Cow::Owned(reader.entries()?),
            },
            PUT_CATALOG => Op::PutCatalog {
                key: Cow::Owned(reader.text()?),
                value: Cow::Owned(reader.bytes()?.to_vec()),
            },
            REMOVE_CATALOG => Op::RemoveCatalog(Cow::Owned(reader.text()?)),
            NEXT_ID => Op::NextId(reader.u64()?),
            tag => return Err(format!("unknown record kind {tag}")),
        };
        if !reader.0.is_empty() {
            return Err("trailing bytes after the record".into());
        }
        Ok(op)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "length out of range".to_string())?;
        if n > self.0.len() {
            return Err("record ends early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| "short")?))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u64()?;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "key is not UTF-8".to_string())
    }

    fn entries(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let n = self.u64()?;
        (0..n).map(|_| Ok(self.bytes()?.to_vec())).collect()
    }
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016}.wal"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let index = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(index) = index {
            found.push((index, path));
        }
    }
    found.sort();
    Ok(found)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Deletes the segments numbered below `bound` (all of them for `None`),
/// durably: their records are in a checkpoint of sled.
fn remove_segments(dir: &Path, bound: Option<u64>) -> std::io::Result<()> {
    for (index, path) in segments(dir)? {
        if bound.is_none_or(|bound| index < bound) {
            std::fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

/// Every record in the log at `dir`, oldest first, and the index for the
/// next segment. A torn record at the end of the newest segment is a write
/// that was never acknowledged and ends the replay; damage anywhere else is
/// corruption and stops the server from starting on a wrong state.
pub fn recover(dir: &Path) -> Result<(Vec<Op<'static>>, u64), WalError> {
    std::fs::create_dir_all(dir)?;
    let found = segments(dir)?;
    let mut ops = Vec::new();
    for (position, (_, path)) in found.iter().enumerate() {
        let newest = position + 1 == found.len();
        let mut bytes = Vec::new();
        File::open(path)?.read_to_end(&mut bytes)?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            let corrupt = |reason: String| WalError::Corrupt {
                path: path.clone(),
                offset: offset as u64,
                reason,
            };
            let record = bytes[offset..].get(..12).and_then(|header| {
                let len = usize::try_from(u64::from_le_bytes(header[..8].try_into().ok()?)).ok()?;
                let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
                let payload = bytes[offset + 12..].get(..len)?;
                (crc32fast::hash(payload) == crc).then_some(payload)
            });
            match record {
                Some(payload) => {
                    ops.push(Op::decode(payload).map_err(corrupt)?);
                    offset += 12 + payload.len();
                }
                None if newest => {
                    tracing::warn!(
                        "write-ahead log {}: discarding a torn record at byte {offset} \
                         (a write that was never acknowledged)",
                        path.display()
                    );
                    break;
                }
                None => return Err(corrupt("length or checksum does not match".into())),
            }
        }
    }
    let next = found.last().map_or(0, |(index, _)| index + 1);
    Ok((ops, next))
}

/// What writers wait on: how far the log is durable, or why it stopped.
#[derive(Clone, Default)]
struct Synced {
    position: u64,
    failed: Option<String>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Position just past the last byte appended.
    end: u64,
    stop: bool,
    /// Stop as a crash would: without the final checkpoint (tests).
    abandon: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
    /// A checkpoint thread is running; at most one runs at a time.
    checkpointing: Mutex<bool>,
    checkpoint_done: Condvar,
}

impl Shared {
    /// Claims the one checkpoint slot; false if a checkpoint is running.
    fn begin_checkpoint(&self) -> bool {
        let mut running = lock(&self.checkpointing);
        !std::mem::replace(&mut *running, true)
    }

    fn end_checkpoint(&self) {
        *lock(&self.checkpointing) = false;
        self.checkpoint_done.notify_all();
    }

    /// Blocks (without spinning) until no checkpoint runs.
    fn wait_checkpoint(&self) {
        let mut running = lock(&self.checkpointing);
        while *running {
            running = match self.checkpoint_done.wait(running) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }
}

/// A lock that a panicking holder does not make unusable: the flag it
/// guards is valid at every point.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes sled durable up to everything applied to it so far.
pub type Checkpoint = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// The open log: appends, and a thread that syncs them.
pub struct Wal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// Starts a fresh segment numbered `next` in `dir` and deletes the older
    /// ones: the caller has replayed them and made sled durable.
    pub fn start(dir: &Path, next: u64, checkpoint: Checkpoint) -> Result<Wal, WalError> {
        let file = open_segment(dir, next)?;
        remove_segments(dir, Some(next))?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            synced: watch::Sender::new(Synced::default()),
            checkpointing: Mutex::new(false),
            checkpoint_done: Condvar::new(),
        });
        let writer = Writer {
            shared: shared.clone(),
            dir: dir.to_path_buf(),
            file,
            index: next,
            written: 0,
            checkpoint,
        };
        let thread = std::thread::Builder::new()
            .name("freshet-wal".into())
            .spawn(move || writer.run())?;
        Ok(Wal {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues an encoded record (see `Op::encode`). Durable once `sync`
    /// returns for a position at or after this call.
    pub fn append(&self, record: &[u8]) {
        let mut pending = self.shared.pending.lock().expect("wal lock poisoned");
        pending.bytes.extend_from_slice(record);
        pending.end += record.len() as u64;
    }

    /// Waits until everything appended before this call is on stable
    /// storage.
    pub async fn sync(&self) -> Result<(), WalError> {
        let target = {
            let pending = self.shared.pending.lock().expect("wal lock poisoned");
            pending.end
        };
        let mut synced = self.shared.synced.subscribe();
        if synced.borrow().position < target {
            self.shared.wake.notify_one();
        }
        let state = synced
            .wait_for(|s| s.failed.is_some() || s.position >= target)
            .await
            .map_err(|_| WalError::Failed("the log writer stopped".into()))?;
        match &state.failed {
            Some(reason) => Err(WalError::Failed(reason.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
impl Wal {
    /// Stops the writer after what is pending, as a crash right after the
    /// last sync would: the segments stay for `recover`.
    fn crash(self) {
        self.shared
            .pending
            .lock()
            .expect("wal lock poisoned")
            .abandon = true;
    }
}

impl Drop for Wal {
    /// Syncs what is pending, then stops the writer.
    fn drop(&mut self) {
        self.shared.pending.lock().expect("wal lock poisoned").stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().expect("wal lock poisoned").take() {
            let _ = thread.join();
        }
    }
}

fn open_segment(dir: &Path, index: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, index))
        .or_else(|e| match e.kind() {
            // A segment left empty by a crash right after it was created.
            ErrorKind::AlreadyExists => OpenOptions::new()
                .append(true)
                .open(segment_path(dir, index)),
            _ => Err(e),
        })?;
    sync_dir(dir)?;
    Ok(file)
}

struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    file: File,
    index: u64,
    /// Bytes in the current segment.
    written: u64,
    checkpoint: Checkpoint,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (bytes, end, stop, abandon) = {
                let mut pending = self.shared.pending.lock().expect("wal lock poisoned");
                while pending.bytes.is_empty() && !pending.stop {
                    pending = self.shared.wake.wait(pending).expect("wal lock poisoned");
                }
                (
                    std::mem::take(&mut pending.bytes),
                    pending.end,
                    pending.stop,
                    pending.abandon,
                )
            };
            if !bytes.is_empty() {
                if let Err(e) = self.write(&bytes) {
                    tracing::error!("write-ahead log: {e}; refusing writes from now on");
                    self.shared.synced.send_replace(Synced {
                        position: 0,
                        failed: Some(e.to_string()),
                    });
                    return;
                }
                self.shared.synced.send_modify(|s| s.position = end);
            }
            if stop {
                if !abandon {
                    self.close();
                }
                return;
            }
            if self.written >= SEGMENT_BYTES {
                self.rotate();
            }
        }
    }

    /// On a clean stop: checkpoint sled and drop every segment, so that
    /// the next start has nothing to replay. A crash midway leaves segments
    /// that replay harmlessly.
    fn close(&self) {
        self.shared.wait_checkpoint();
        let result = (self.checkpoint)().and_then(|()| remove_segments(&self.dir, None));
        if let Err(e) = result {
            tracing::warn!("final checkpoint failed, the log keeps its segments: {e}");
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Starts the next segment and, on its own thread, checkpoints sled and
    /// deletes the segments before it. Every record in them was applied to
    /// sled before it was appended here, so sled's flush covers them all.
    fn rotate(&mut self) {
        if !self.shared.begin_checkpoint() {
            return; // the previous checkpoint is still running
        }
        let next = self.index + 1;
        match open_segment(&self.dir, next) {
            Ok(file) => {
                self.file = file;
                self.index = next;
                self.written = 0;
            }
            Err(e) => {
                tracing::warn!("write-ahead log: cannot start a new segment: {e}");
                self.shared.end_checkpoint();
                return;
            }
        }
        let shared = self.shared.clone();
        let dir = self.dir.clone();
        let checkpoint = self.checkpoint.clone();
        let spawned = std::thread::Builder::new()
            .name("freshet-checkpoint".into())
            .spawn(move || {
                let result = checkpoint().and_then(|()| remove_segments(&dir, Some(next)));
                if let Err(e) = result {
                    tracing::warn!("checkpoint failed, the log keeps its segments: {e}");
                }
                shared.end_checkpoint();
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a checkpoint: {e}");
            self.shared.end_checkpoint();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "freshet-wal-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A log whose checkpoints only count themselves.
    fn counting_wal(dir: &Path) -> (Wal, Arc<std::sync::atomic::AtomicUsize>) {
        let (_, next) = recover(dir).unwrap();
        let checkpoints = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = checkpoints.clone();
        let wal = Wal::start(
            dir,
            next,
            Arc::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
        )
        .unwrap();
        (wal, checkpoints)
    }

    fn sample() -> Vec<Op<'static>> {
        vec![
            Op::PutCatalog {
                key: "table/public.t".into(),
                value: b"{}".to_vec().into(),
            },
            Op::Append(vec![(7, 0, vec![b"one".to_vec(), Vec::new()]), (8, 3, vec![])].into()),
            Op::Rewrite {
                table: 7,
                first_seq: 2,
                entries: vec![b"both".to_vec()].into(),
            },
            Op::RemoveCatalog("table/public.t".into()),
            Op::NextId(42),
        ]
    }

    #[tokio::test]
    async fn synced_records_come_back_in_order() {
        let dir = scratch("order");
        let (ops, next) = recover(&dir).unwrap();
        assert!(ops.is_empty());
        let wal = Wal::start(&dir, next, Arc::new(|| Ok(()))).unwrap();
        for op in sample() {
            wal.append(&op.encode());
        }
        wal.sync().await.unwrap();
        wal.crash();
        let (ops, next) = recover(&dir).unwrap();
        assert_eq!(ops, sample());
        assert_eq!(next, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_torn_tail_is_dropped_and_damage_before_it_is_refused() {
        let dir = scratch("torn");
        let (_, next) = recover(&dir).unwrap();
        let wal = Wal::start(&dir, next, Arc::new(|| Ok(()))).unwrap();
        for op in sample() {
            wal.append(&op.encode());
        }
        wal.sync().await.unwrap();
        wal.crash();
        let path = segment_path(&dir, 0);
        let full = std::fs::read(&path).unwrap();
        // Half of the last record, as a crash in the middle of a write leaves.
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let (ops, _) = recover(&dir).unwrap();
        assert_eq!(ops, sample()[..4]);
        // The same damage in a segment that is not the newest is corruption.
        std::fs::write(segment_path(&dir, 1), b"").unwrap();
        assert!(matches!(recover(&dir), Err(WalError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_full_segment_is_deleted_after_the_checkpoint() {
        let dir = scratch("rotate");
        let (wal, checkpoints) = counting_wal(&dir);
        let big = Op::Append(vec![(1, 0, vec![vec![7u8; SEGMENT_BYTES as usize]])].into());
        wal.append(&big.encode());
        wal.sync().await.unwrap();
        // The rotation follows the sync that filled the segment.
        wal.append(&Op::NextId(1).encode());
        wal.sync().await.unwrap();
        wal.shared.wait_checkpoint();
        wal.crash();
        assert_eq!(checkpoints.load(Ordering::SeqCst), 1);
        let (ops, _) = recover(&dir).unwrap();
        assert_eq!(ops, vec![Op::NextId(1)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_clean_stop_checkpoints_and_leaves_nothing_to_replay() {
        let dir = scratch("close");
        let (wal, checkpoints) = counting_wal(&dir);
        wal.append(&Op::NextId(9).encode());
        wal.sync().await.unwrap();
        drop(wal);
        assert_eq!(checkpoints.load(Ordering::SeqCst), 1);
        let (ops, _) = recover(&dir).unwrap();
        assert!(ops.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
