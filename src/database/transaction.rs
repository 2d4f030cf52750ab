//! An open transaction block: BEGIN ... COMMIT applies atomically and
//! enters one epoch whole; ROLLBACK leaves no trace.
//!
//! A transaction keeps, per table it writes, a private copy of the table
//! (`TableData::fork`: the chunks are shared until changed) with its
//! statements' changes applied, so its own reads and later statements see
//! them; nobody else does. It holds each such table's writer lock from its
//! first write until it ends, so no other writer changes the rows it read
//! (table-level locking: simpler than PostgreSQL's row locks, and the same
//! answers; a writer waits for the transaction to end). COMMIT writes every
//! change in one atomic sled batch, syncs, applies them to the tables and
//! hands them to the epoch runtime as one message.
//!
//! Reads of materialized views inside a transaction see the last published
//! epoch, not the transaction's own uncommitted writes.
//!
//! A SAVEPOINT records, per table written so far, how many changes it had
//! and a fork of its data then (cheap: chunks are shared). ROLLBACK TO puts
//! every table back to that point; a table first written after the
//! savepoint goes back to the table's committed contents, which its held
//! lock has kept unchanged. Locks taken after a savepoint stay held until
//! the block ends, as in PostgreSQL.
//!
//! # Invariants
//! - `pending[t].data` equals table t's contents when the lock was taken
//!   with `pending[t].changes` applied in order.
//! - For each savepoint and table t in it, `tables[t].1` equals table t's
//!   contents with the first `tables[t].0` of `pending[t].changes` applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::OwnedMutexGuard;

use super::LiveTable;
use super::commit::prepare_change;
use crate::catalog::TableId;
use crate::error::{Error, Result};
use crate::state::{Chunks, TableChange, TableData};

/// How long a statement in a transaction waits for another writer's table
/// lock before giving up (two transactions waiting on each other's tables
/// would otherwise wait forever).
pub(super) const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

struct Pending {
    live: Arc<LiveTable>,
    guard: OwnedMutexGuard<()>,
    data: TableData,
    changes: Vec<TableChange>,
}

/// Per table, its changes in order; what COMMIT writes.
pub(super) type Changes = Vec<(Arc<LiveTable>, Vec<TableChange>)>;

struct Savepoint {
    name: String,
    tables: BTreeMap<TableId, (usize, TableData)>,
}

#[derive(Default)]
pub struct Transaction {
    pending: BTreeMap<TableId, Pending>,
    /// Oldest first; a name may repeat (the latest one wins).
    savepoints: Vec<Savepoint>,
}

impl Transaction {
    /// Takes the table's writer lock on the first write to it.
    pub(super) async fn enter(&mut self, live: &Arc<LiveTable>) -> Result<()> {
        if self.pending.contains_key(&live.def.id) {
            return Ok(());
        }
        let guard = tokio::time::timeout(LOCK_TIMEOUT, live.lock_writer())
            .await
            .map_err(|_| Error::LockNotAvailable(live.def.name.clone()))??;
        let data = live.data.read().expect("table lock poisoned").fork()?;
        self.pending.insert(
            live.def.id,
            Pending {
                live: live.clone(),
                guard,
                data,
                changes: Vec::new(),
            },
        );
        Ok(())
    }

    /// Validates one statement's change against the transaction's view of
    /// the table and applies it there.
    pub(super) fn stage(
        &mut self,
        live: &Arc<LiveTable>,
        deleted: Vec<u64>,
        inserted: Vec<RecordBatch>,
    ) -> Result<()> {
        let pending = self.pending.get_mut(&live.def.id).ok_or_else(|| {
            Error::Internal("a transaction writes a table it did not lock".into())
        })?;
        let change = prepare_change(&live.def, &pending.data, deleted, inserted)?;
        if change.is_empty() {
            return Ok(());
        }
        pending.data.apply(&change)?;
        pending.changes.push(change);
        Ok(())
    }

    /// The transaction's copy of a table it has entered.
    pub(super) fn data(&self, table: TableId) -> Option<&TableData> {
        self.pending.get(&table).map(|p| &p.data)
    }

    /// The transaction's own view of the tables it wrote.
    pub(super) fn view(&self) -> HashMap<TableId, Chunks> {
        self.pending
            .iter()
            .map(|(id, p)| (*id, p.data.snapshot()))
            .collect()
    }

    pub fn savepoint(&mut self, name: &str) -> Result<()> {
        let tables = self
            .pending
            .iter()
            .map(|(id, p)| Ok((*id, (p.changes.len(), p.data.fork()?))))
            .collect::<Result<_>>()?;
        self.savepoints.push(Savepoint {
            name: name.to_string(),
            tables,
        });
        Ok(())
    }

    fn find(&self, name: &str) -> Result<usize> {
        self.savepoints
            .iter()
            .rposition(|s| s.name == name)
            .ok_or_else(|| Error::UndefinedSavepoint(name.to_string()))
    }

    /// RELEASE SAVEPOINT: forgets it and every later one; changes stay.
    pub fn release(&mut self, name: &str) -> Result<()> {
        let at = self.find(name)?;
        self.savepoints.truncate(at);
        Ok(())
    }

    /// ROLLBACK TO SAVEPOINT: undoes every change since it. The savepoint
    /// stays (it can be rolled back to again); later ones are forgotten.
    pub fn rollback_to(&mut self, name: &str) -> Result<()> {
        let at = self.find(name)?;
        self.savepoints.truncate(at + 1);
        let saved = &self.savepoints[at].tables;
        for (id, pending) in self.pending.iter_mut() {
            match saved.get(id) {
                Some((count, data)) => {
                    pending.changes.truncate(*count);
                    pending.data = data.fork()?;
                }
                None => {
                    pending.changes.clear();
                    pending.data = pending
                        .live
                        .data
                        .read()
                        .expect("table lock poisoned")
                        .fork()?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.values().all(|p| p.changes.is_empty())
    }

    /// The changes to commit, per table in id order, and the locks to hold
    /// until they are applied.
    pub(super) fn into_changes(self) -> (Changes, Vec<OwnedMutexGuard<()>>) {
        let mut changes = Vec::new();
        let mut guards = Vec::new();
        for (_, pending) in self.pending {
            guards.push(pending.guard);
            if !pending.changes.is_empty() {
                changes.push((pending.live, pending.changes));
            }
        }
        (changes, guards)
    }
}
