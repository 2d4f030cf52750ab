//! The epoch runtime: one thread that owns every dataflow and every MV's
//! contents, fed through one bounded channel in commit order (it lends
//! MVs that read nothing of each other to a second thread for an epoch's
//! step, see `step_wave`).
//!
//! ```text
//! commit (in its turn) ──────────Change──┐
//! CREATE/DROP MV, CREATE/DROP TABLE ──────┤ bounded channel, FIFO
//! FLUSH ──────────────────────────────────┘
//!                    │
//!                    ▼
//!   pending deltas per table ── every epoch_interval, or on FLUSH ──>
//!   step every MV, wave by wave (an MV after the MVs it reads) ──>
//!   apply each output delta to the MV's contents ──> publish one
//!   EpochSnapshot (all tables and MVs at this epoch) with one swap
//! ```
//!
//! Because writers send their change in their turn (`database::sequencer`:
//! tickets taken under the tables' writer locks), the channel order is the
//! commit order: everything before a message happened before it. A CREATE MATERIALIZED VIEW message therefore finds the tables
//! exactly as they were when it was sent: the backfill reads them whole,
//! later changes arrive after it, so there is no gap and no double count.
//!
//! The channel is bounded: when the engine falls behind, committing
//! writers wait (backpressure) instead of memory growing without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::backfill::{Backfill, STEP_ROWS, without_rowid};
use super::{Node, StepContext, StreamError, ZBatch};
use crate::catalog::{MvId, Relation, TableId};
use crate::state::{Chunks, EpochSnapshot, MvData, MvIndex, Published};

/// Messages in flight before writers wait.
const CHANNEL_CAPACITY: usize = 1024;

/// How often a rate-limited backfill feeds its next slice, and how often
/// a long backfill logs its progress.
const BACKFILL_TICK: Duration = Duration::from_millis(100);
const BACKFILL_LOG_EVERY: Duration = Duration::from_secs(5);
const NO_LIMIT: u64 = u64::MAX;

/// One committed change of a table: the rows it removed and added (row id
/// first), and the table's chunks after it.
pub struct TableDelta {
    pub table: TableId,
    pub removed: Option<RecordBatch>,
    pub inserted: Option<RecordBatch>,
    pub snapshot: Chunks,
}

pub enum Message {
    /// The changes of one statement or one transaction, in order; they
    /// always land in the same epoch.
    Commit(Vec<TableDelta>),
    /// A table appeared (with its contents) or was dropped (`None`).
    Table {
        table: TableId,
        snapshot: Option<Chunks>,
    },
    CreateMv {
        id: MvId,
        name: String,
        dataflow: Box<Node>,
        schema: SchemaRef,
        inputs: Vec<Relation>,
        /// The point-lookup index to keep, when the view has a unique key.
        index: Option<Arc<MvIndex>>,
        reply: oneshot::Sender<Result<(), StreamError>>,
    },
    DropMv {
        id: MvId,
    },
    /// Run an epoch now; answers with the epoch that covers every message
    /// sent before this one.
    Flush {
        reply: oneshot::Sender<u64>,
    },
    /// Measure the state of every view (`freshet_catalog.mv_state`).
    Footprint {
        reply: oneshot::Sender<Vec<StatePart>>,
    },
}

/// The bytes one part of a view keeps: its contents (position 0) or the
/// state of one operator (position 1 is the root of its EXPLAIN tree, then
/// the rest in EXPLAIN order).
#[derive(Debug, Clone)]
pub struct StatePart {
    pub mv: MvId,
    pub position: usize,
    pub operator: String,
    pub bytes: usize,
}

/// What users can see of an MV's health (`freshet_catalog.mv_status`).
#[derive(Debug, Clone, Default)]
pub struct MvStatus {
    pub name: String,
    pub rows: usize,
    /// Rows whose expression failed and yielded NULL, since the MV started.
    pub row_errors: u64,
    pub last_error: Option<String>,
    /// Set when the dataflow itself failed: the MV stopped at its last
    /// good epoch, and reads report this.
    pub failed: Option<String>,
    pub epoch: u64,
    /// Set while CREATE MATERIALIZED VIEW computes it from its inputs'
    /// contents (`freshet_catalog.mv_progress`).
    pub backfill: Option<Progress>,
}

/// How far a backfill has come: rows of its inputs' contents fed so far.
#[derive(Debug, Clone)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub started: Instant,
}

pub type StatusTable = Arc<Mutex<HashMap<MvId, MvStatus>>>;

/// The handle sessions hold.
#[derive(Clone)]
pub struct Runtime {
    sender: mpsc::Sender<Message>,
    /// Set when the database closes: the runtime thread then ends and frees
    /// every view, even if some provider still holds a sender.
    stop: Arc<AtomicBool>,
    published: Arc<Published>,
    status: StatusTable,
    interval_ms: Arc<AtomicU64>,
    /// The interval the server started with, which SET ... DEFAULT and
    /// RESET restore.
    started_interval: Duration,
    /// Rows per second a backfill may feed (`NO_LIMIT`, or 0 to pause).
    rate_limit: Arc<AtomicU64>,
}

impl Runtime {
    /// Starts the runtime thread.
    pub fn start(interval: Duration) -> Result<Self, StreamError> {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let published = Arc::new(Published::default());
        let status: StatusTable = Arc::default();
        let interval_ms = Arc::new(AtomicU64::new(interval.as_millis().max(1) as u64));
        let stop = Arc::new(AtomicBool::new(false));
        let rate_limit = Arc::new(AtomicU64::new(NO_LIMIT));
        let mut engine = Engine {
            stop: stop.clone(),
            receiver,
            published: published.clone(),
            status: status.clone(),
            interval_ms: interval_ms.clone(),
            rate_limit: rate_limit.clone(),
            tables: HashMap::new(),
            pending: HashMap::new(),
            mvs: Vec::new(),
            backfills: VecDeque::new(),
            backfill_due: Instant::now(),
            backfill_logged: Instant::now(),
            epoch: 0,
            seq: 0,
        };
        std::thread::Builder::new()
            .name("freshet-epochs".into())
            // Plans of MVs are walked recursively here too (see main.rs).
            .stack_size(64 << 20)
            .spawn(move || engine.run())
            .map_err(|e| StreamError::Internal(format!("cannot start the epoch runtime: {e}")))?;
        Ok(Runtime {
            sender,
            stop,
            published,
            status,
            interval_ms,
            started_interval: interval.max(Duration::from_millis(1)),
            rate_limit,
        })
    }

    pub async fn send(&self, message: Message) -> Result<(), StreamError> {
        self.sender
            .send(message)
            .await
            .map_err(|_| StreamError::Internal("the epoch runtime has stopped".into()))
    }

    /// Returns once every message sent before it is visible to readers.
    pub async fn flush(&self) -> Result<u64, StreamError> {
        let (reply, answer) = oneshot::channel();
        self.send(Message::Flush { reply }).await?;
        answer
            .await
            .map_err(|_| StreamError::Internal("the epoch runtime has stopped".into()))
    }

    /// The state of every view and view being built, measured between
    /// epochs by the runtime thread.
    pub async fn footprint(&self) -> Result<Vec<StatePart>, StreamError> {
        let (reply, answer) = oneshot::channel();
        self.send(Message::Footprint { reply }).await?;
        answer
            .await
            .map_err(|_| StreamError::Internal("the epoch runtime has stopped".into()))
    }

    pub fn published(&self) -> Arc<EpochSnapshot> {
        self.published.current()
    }

    /// Records that an MV could not be built at start: reads of it and
    /// `mv_status` report `reason` until it is dropped, and the rest of
    /// the database runs.
    pub fn mark_failed(&self, id: MvId, name: &str, reason: String) {
        let mut status = match self.status.lock() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        };
        status.insert(
            id,
            MvStatus {
                name: name.to_string(),
                rows: 0,
                row_errors: 0,
                last_error: None,
                failed: Some(reason),
                epoch: 0,
                backfill: None,
            },
        );
    }

    pub fn status(&self) -> HashMap<MvId, MvStatus> {
        match self.status.lock() {
            Ok(status) => status.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_interval(&self, interval: Duration) {
        self.interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// Limits every backfill, also one already running, to `rows` input
    /// rows per second (RisingWave's `backfill_rate_limit`; 0 pauses
    /// them); `None` lifts it.
    pub fn set_backfill_rate_limit(&self, rows: Option<u64>) {
        self.rate_limit
            .store(rows.unwrap_or(NO_LIMIT), Ordering::Relaxed);
    }

    /// Ends the runtime thread at its next wake-up (within one interval).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed))
    }

    pub fn started_interval(&self) -> Duration {
        self.started_interval
    }

    /// The backfill rate limit in rows per second; `None` when lifted.
    pub fn backfill_rate_limit(&self) -> Option<u64> {
        Some(self.rate_limit.load(Ordering::Relaxed)).filter(|&r| r != NO_LIMIT)
    }
}

struct LiveMv {
    id: MvId,
    dataflow: Box<Node>,
    inputs: Vec<Relation>,
    data: MvData,
    failed: bool,
}

struct Engine {
    stop: Arc<AtomicBool>,
    receiver: mpsc::Receiver<Message>,
    published: Arc<Published>,
    status: StatusTable,
    interval_ms: Arc<AtomicU64>,
    rate_limit: Arc<AtomicU64>,
    /// Every table's chunks as of the last message received.
    tables: HashMap<TableId, Chunks>,
    /// Changes received since the last epoch, per table that a view reads
    /// (row id stripped).
    pending: HashMap<TableId, Vec<ZBatch>>,
    /// In creation order: an MV comes after every MV it reads.
    mvs: Vec<LiveMv>,
    /// Views being built, oldest first; the first one is fed.
    backfills: VecDeque<Backfill>,
    /// When a rate-limited backfill may feed its next slice.
    backfill_due: Instant,
    backfill_logged: Instant,
    epoch: u64,
    seq: u64,
}

impl Engine {
    fn run(&mut self) {
        let clock = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(clock) => clock,
            Err(e) => {
                error!(error = %e, "the epoch runtime cannot start its clock");
                return;
            }
        };
        let mut last_epoch = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let interval = Duration::from_millis(self.interval_ms.load(Ordering::Relaxed));
            let mut wait = interval.saturating_sub(last_epoch.elapsed());
            if !self.backfills.is_empty() {
                wait = wait.min(self.backfill_due.saturating_duration_since(Instant::now()));
            }
            let received = if wait.is_zero() {
                match self.receiver.try_recv() {
                    Ok(message) => Some(message),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match clock
                    .block_on(async { tokio::time::timeout(wait, self.receiver.recv()).await })
                {
                    Ok(None) => return,
                    Ok(Some(message)) => Some(message),
                    Err(_) => None,
                }
            };
            if let Some(message) = received
                && self.handle(message)
            {
                last_epoch = Instant::now();
            }
            if !self.backfills.is_empty() && Instant::now() >= self.backfill_due {
                self.feed_backfill();
            }
            if last_epoch.elapsed() >= interval {
                if !self.pending.is_empty() {
                    self.run_epoch();
                }
                last_epoch = Instant::now();
            }
        }
    }

    /// Handles one message; true if it ran an epoch.
    fn handle(&mut self, message: Message) -> bool {
        match message {
            Message::Commit(deltas) => {
                self.seq += 1;
                for delta in deltas {
                    self.tables.insert(delta.table, delta.snapshot);
                    // A view created later backfills from the snapshot, so
                    // a change no view reads now is not kept.
                    let read = Relation::Table(delta.table);
                    if !self.mvs.iter().any(|mv| mv.inputs.contains(&read))
                        && !self.backfills.iter().any(|b| b.inputs.contains(&read))
                    {
                        continue;
                    }
                    let pending = self.pending.entry(delta.table).or_default();
                    for (rows, weight) in [(delta.removed, -1), (delta.inserted, 1)] {
                        if let Some(rows) = rows.filter(|r| r.num_rows() > 0) {
                            pending.push(ZBatch::uniform(without_rowid(&rows), weight));
                        }
                    }
                }
                false
            }
            Message::Table { table, snapshot } => {
                match snapshot {
                    Some(snapshot) => {
                        self.tables.insert(table, snapshot);
                    }
                    None => {
                        self.tables.remove(&table);
                        self.pending.remove(&table);
                    }
                }
                false
            }
            Message::CreateMv {
                id,
                name,
                dataflow,
                schema,
                inputs,
                index,
                reply,
            } => {
                // The snapshot is taken with nothing pending: every later
                // change reaches the backfill through an epoch.
                if !self.pending.is_empty() {
                    self.run_epoch();
                }
                let prepared = self.contents_of(&inputs).and_then(|contents| {
                    let data = MvData::try_new(&super::output_schema(&schema), index)?;
                    Ok((contents, data))
                });
                match prepared {
                    Ok((contents, data)) => {
                        let backfill =
                            Backfill::new(id, name, inputs, dataflow, data, contents, reply);
                        info!(view = %backfill.name, rows = backfill.total, "backfilling materialized view");
                        self.set_status(&backfill);
                        self.backfills.push_back(backfill);
                        self.backfill_due = Instant::now();
                        self.backfill_logged = Instant::now();
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
                true
            }
            Message::DropMv { id } => {
                self.mvs.retain(|mv| mv.id != id);
                self.backfills.retain(|b| b.id != id);
                if let Ok(mut status) = self.status.lock() {
                    status.remove(&id);
                }
                self.publish();
                false
            }
            Message::Flush { reply } => {
                self.run_epoch();
                let _ = reply.send(self.epoch);
                true
            }
            Message::Footprint { reply } => {
                let _ = reply.send(self.footprint());
                false
            }
        }
    }

    fn footprint(&self) -> Vec<StatePart> {
        let views = self
            .mvs
            .iter()
            .map(|mv| (mv.id, mv.dataflow.as_ref(), &mv.data))
            .chain(
                self.backfills
                    .iter()
                    .map(|b| (b.id, b.dataflow(), b.data())),
            );
        let mut parts = Vec::new();
        for (mv, dataflow, data) in views {
            parts.push(StatePart {
                mv,
                position: 0,
                operator: "contents".into(),
                bytes: data.footprint(),
            });
            parts.extend(
                dataflow
                    .footprint()
                    .into_iter()
                    .map(|(position, operator, bytes)| StatePart {
                        mv,
                        position: position + 1,
                        operator,
                        bytes,
                    }),
            );
        }
        parts
    }

    /// Every input's contents now, row id first.
    fn contents_of(&self, inputs: &[Relation]) -> Result<Vec<(Relation, Chunks)>, StreamError> {
        inputs
            .iter()
            .map(|input| {
                let chunks = match input {
                    Relation::Table(table) => self.tables.get(table).cloned(),
                    Relation::Mv(mv) => self
                        .mvs
                        .iter()
                        .find(|m| m.id == *mv)
                        .map(|m| m.data.snapshot()),
                };
                chunks.map(|chunks| (*input, chunks)).ok_or_else(|| {
                    StreamError::Internal(format!("{input} is not known to the engine"))
                })
            })
            .collect()
    }

    /// Feeds the oldest backfill one slice; once its snapshot is fed, it
    /// catches up with the changes since and joins the running views.
    fn feed_backfill(&mut self) {
        let limit = match self.rate_limit.load(Ordering::Relaxed) {
            NO_LIMIT => STEP_ROWS,
            0 => {
                self.backfill_due = Instant::now() + BACKFILL_TICK;
                return;
            }
            rows => {
                self.backfill_due = Instant::now() + BACKFILL_TICK;
                let per_tick = rows / (1000 / BACKFILL_TICK.as_millis() as u64);
                per_tick.clamp(1, STEP_ROWS as u64) as usize
            }
        };
        let Some(backfill) = self.backfills.front_mut() else {
            return;
        };
        let stepped = backfill.step(limit);
        let fed = match stepped {
            Ok(()) => backfill.fed(),
            Err(e) => {
                self.fail_backfill(e);
                return;
            }
        };
        if self.backfill_logged.elapsed() >= BACKFILL_LOG_EVERY {
            info!(
                view = %backfill.name,
                done = backfill.done,
                total = backfill.total,
                "backfill progress"
            );
            self.backfill_logged = Instant::now();
        }
        if !fed {
            let backfill = &self.backfills[0];
            self.set_status(backfill);
            return;
        }
        // Changes that reached the runtime since the last epoch are recorded
        // by the backfill before it catches up: the CREATE answered next
        // shows every write acknowledged before it (without this a write
        // made while the backfill was paused could show only an epoch later,
        // after a SELECT right after the CREATE had missed it).
        if !self.pending.is_empty() {
            self.run_epoch();
        }
        let Some(mut backfill) = self.backfills.pop_front() else {
            return;
        };
        let (id, name, inputs, started) = (
            backfill.id,
            backfill.name.clone(),
            backfill.inputs.clone(),
            backfill.started,
        );
        let reply = backfill.reply.take();
        match backfill.finish() {
            Ok(built) => {
                info!(
                    view = %name,
                    rows = built.data.row_count(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "materialized view backfilled"
                );
                if let Ok(mut status) = self.status.lock() {
                    status.insert(
                        id,
                        MvStatus {
                            name,
                            rows: built.data.row_count(),
                            row_errors: built.errors,
                            last_error: built.last_error,
                            failed: None,
                            epoch: self.epoch,
                            backfill: None,
                        },
                    );
                }
                self.mvs.push(LiveMv {
                    id,
                    dataflow: built.dataflow,
                    inputs,
                    data: built.data,
                    failed: false,
                });
                self.publish();
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                if let Ok(mut status) = self.status.lock() {
                    status.remove(&id);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }

    /// The oldest backfill failed: CREATE MATERIALIZED VIEW answers the error.
    fn fail_backfill(&mut self, error: StreamError) {
        if let Some(mut backfill) = self.backfills.pop_front() {
            if let Ok(mut status) = self.status.lock() {
                status.remove(&backfill.id);
            }
            if let Some(reply) = backfill.reply.take() {
                let _ = reply.send(Err(error));
            }
        }
    }

    fn set_status(&self, backfill: &Backfill) {
        if let Ok(mut status) = self.status.lock() {
            status.insert(
                backfill.id,
                MvStatus {
                    name: backfill.name.clone(),
                    rows: backfill.row_count(),
                    row_errors: backfill.errors,
                    last_error: backfill.last_error.clone(),
                    failed: None,
                    epoch: self.epoch,
                    backfill: Some(Progress {
                        done: backfill.done,
                        total: backfill.total,
                        started: backfill.started,
                    }),
                },
            );
        }
    }

    /// Steps every MV over the pending changes and publishes the result.
    fn run_epoch(&mut self) {
        let mut sources: HashMap<Relation, ZBatch> = HashMap::new();
        for (table, parts) in self.pending.drain() {
            let Some(schema) = parts.first().map(|p| p.schema()) else {
                continue;
            };
            match ZBatch::concat(&schema, &parts) {
                Ok(delta) => {
                    sources.insert(Relation::Table(table), delta);
                }
                Err(e) => error!(error = %e, "a table delta does not concatenate"),
            }
        }
        self.epoch += 1;
        let mut start = 0;
        while start < self.mvs.len() {
            let end = wave_end(&self.mvs, start);
            let wave: Vec<&mut LiveMv> = self.mvs[start..end]
                .iter_mut()
                .filter(|mv| !mv.failed && mv.inputs.iter().any(|i| sources.contains_key(i)))
                .collect();
            for (mv, stepped) in step_wave(wave, &sources) {
                let mut status = match self.status.lock() {
                    Ok(status) => status,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let entry = status.entry(mv.id).or_default();
                entry.row_errors += stepped.errors;
                if stepped.last_error.is_some() {
                    entry.last_error = stepped.last_error;
                }
                match stepped.outcome {
                    Ok(delta) => {
                        entry.rows = mv.data.row_count();
                        entry.epoch = self.epoch;
                        drop(status);
                        sources.insert(Relation::Mv(mv.id), delta);
                    }
                    Err(e) => {
                        warn!(view = %entry.name, error = %e, "materialized view failed");
                        entry.failed = Some(e.to_string());
                        mv.failed = true;
                    }
                }
            }
            start = end;
        }
        for backfill in &mut self.backfills {
            backfill.record(&sources);
        }
        self.publish();
    }

    fn publish(&self) {
        self.published.publish(EpochSnapshot {
            epoch: self.epoch,
            seq: self.seq,
            tables: self.tables.clone(),
            mvs: self
                .mvs
                .iter()
                .map(|mv| (mv.id, mv.data.snapshot()))
                .collect(),
        });
    }
}

/// The end of the wave of MVs that starts at `start`: the longest run of
/// MVs none of which reads another of the run. MVs come after every MV
/// they read, so a wave reads only tables and earlier waves, and its MVs
/// can step at the same time.
fn wave_end(mvs: &[LiveMv], start: usize) -> usize {
    (start + 1..mvs.len())
        .find(|&i| {
            mvs[i].inputs.iter().any(|input| {
                matches!(input, Relation::Mv(id) if mvs[start..i].iter().any(|mv| mv.id == *id))
            })
        })
        .unwrap_or(mvs.len())
}

/// One MV's epoch: its output delta (already applied to its contents) or
/// why it failed, and the rows whose expressions failed.
struct Stepped {
    outcome: Result<ZBatch, StreamError>,
    errors: u64,
    last_error: Option<String>,
}

fn step_one(mv: &mut LiveMv, sources: &HashMap<Relation, ZBatch>) -> Stepped {
    let mut ctx = StepContext::new(sources);
    let outcome = guarded(|| {
        let delta = mv.dataflow.step(&mut ctx)?;
        mv.data.apply(&delta)?;
        Ok(delta)
    });
    Stepped {
        outcome,
        errors: ctx.errors,
        last_error: ctx.last_error.take(),
    }
}

/// Steps the MVs of one wave, on two threads when there are several and
/// the machine has a second core: each MV owns its dataflow and contents,
/// and the sources are only read, so the halves share nothing mutable.
fn step_wave<'a>(
    mut wave: Vec<&'a mut LiveMv>,
    sources: &HashMap<Relation, ZBatch>,
) -> Vec<(&'a mut LiveMv, Stepped)> {
    let in_turn = |mvs: Vec<&'a mut LiveMv>| -> Vec<(&'a mut LiveMv, Stepped)> {
        mvs.into_iter()
            .map(|mv| {
                let stepped = step_one(mv, sources);
                (mv, stepped)
            })
            .collect()
    };
    static CORES: std::sync::LazyLock<usize> =
        std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if wave.len() < 2 || *CORES < 2 {
        return in_turn(wave);
    }
    let other_half = wave.split_off(wave.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| in_turn(other_half));
        let mut done = in_turn(wave);
        match other.join() {
            Ok(rest) => done.extend(rest),
            // `step_one` catches a dataflow's panic; one outside it is a
            // bug of the runtime itself.
            Err(panic) => std::panic::resume_unwind(panic),
        }
        done
    })
}

/// Runs one step of a dataflow; a panic inside it (a bug) becomes an
/// error for that MV instead of stopping the runtime and every other MV.
pub(super) fn guarded<T>(step: impl FnOnce() -> Result<T, StreamError>) -> Result<T, StreamError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(StreamError::Internal(format!(
            "the dataflow panicked: {what}"
        )))
    })
}
