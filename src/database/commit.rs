//! DML: a statement's answer turned into a table change, validated, and
//! either committed at once (logged, synced, applied, handed to the epoch
//! runtime) or kept in the session's open transaction until COMMIT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{DmlStatement, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{Insert, SelectItem, TableObject};
use tracing::info;

use super::transaction::Transaction;
use super::*;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::query::dml::{self, DmlKind, DmlPlan};
use crate::query::{self, StoredTable};
use crate::sql::returning::Returning;
use crate::state::{Store, TableChange, TableData};
use crate::stream::runtime::TableDelta;

/// Rows per log entry when a statement writes many: keeps sled values small.
const ROWS_PER_LOG_ENTRY: usize = 65_536;

tokio::task_local! {
    /// Set when the running statement passes its commit point (see
    /// `watch_commit`).
    static COMMIT_POINT: Arc<AtomicBool>;
}

/// Runs one statement with `reached` set once it passes its commit point:
/// from there its change will land whatever happens to the caller, so a
/// cancel or a timeout must let it finish and answer what it did instead of
/// reporting 57014 for a write that was made.
pub async fn watch_commit<F: Future>(reached: Arc<AtomicBool>, statement: F) -> F::Output {
    COMMIT_POINT.scope(reached, statement).await
}

fn pass_commit_point() {
    let _ = COMMIT_POINT.try_with(|reached| reached.store(true, Ordering::Release));
}

impl Database {
    /// `INSERT ... VALUES` of plain literals without the planner (see
    /// `query::values`); `None` if the statement needs the planner.
    pub(super) async fn insert_literals(
        &self,
        insert: &Insert,
        scope: &super::Scope,
        txn: Option<&mut Transaction>,
    ) -> Result<Option<Outcome>> {
        let TableObject::TableName(name) = &insert.table else {
            return Ok(None);
        };
        let Ok((schema, table)) = self.resolve_name(name, &scope.schema) else {
            return Ok(None);
        };
        let Some(def) = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .table(&schema, &table)
            .cloned()
        else {
            return Ok(None);
        };
        let Some(rows) = query::values::literal_rows(insert, &def, scope.time_zone.as_deref())
        else {
            return Ok(None);
        };
        let Some(live) = self.live_by_id(def.id) else {
            return Ok(None);
        };
        let count = rows.num_rows();
        self.write(live, Vec::new(), vec![rows], txn).await?;
        Ok(Some(Outcome::Command {
            tag: "INSERT".into(),
            rows: Some(count),
        }))
    }

    /// The live table with `id`, if it has not been dropped.
    pub(super) fn live_by_id(&self, id: TableId) -> Option<Arc<LiveTable>> {
        self.tables
            .read()
            .expect("tables lock poisoned")
            .get(&id)
            .cloned()
    }

    /// The live table whose contents a planned scan reads. Matching by the
    /// data, not the name, finds the table the plan resolved, whatever the
    /// search path, and fails if it was dropped since.
    pub(super) fn live_table(
        &self,
        target: &StoredTable,
        name: &TableReference,
    ) -> Result<Arc<LiveTable>> {
        self.tables
            .read()
            .expect("tables lock poisoned")
            .values()
            .find(|live| Arc::ptr_eq(&live.data, target.data()))
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(name.table().to_string()))
    }

    pub(super) async fn execute_dml(
        &self,
        statement: &DmlStatement,
        returning: Option<&Returning>,
        mut txn: Option<&mut Transaction>,
    ) -> Result<Outcome> {
        let DmlPlan {
            kind,
            table,
            target,
            input,
        } = dml::prepare(statement, returning.is_some())?;
        // The columns of the rows a RETURNING reads: the table's (an UPDATE's
        // and a DELETE's input end in the row id).
        let written_schema = {
            let schema = input.schema().as_arrow();
            let width = match kind {
                DmlKind::Insert => schema.fields().len(),
                _ => schema.fields().len().saturating_sub(1),
            };
            Arc::new(schema.project(&(0..width).collect::<Vec<_>>())?)
        };
        let live = self.live_table(&target, &table)?;
        // Decide under the table's writer lock, so the rows read are the
        // rows changed: held until the commit, or until the transaction ends.
        let guard = match txn.as_deref_mut() {
            None => Some(live.lock_writer().await?),
            Some(txn) => {
                txn.enter(&live).await?;
                None
            }
        };
        let state = self.state_for_writer(&input, txn.as_deref(), Some(live.def.id));
        let batches = DataFrame::new(state, input).collect().await?;
        let mut old_rows = Vec::new();
        let (deleted, inserted) = match kind {
            DmlKind::Insert => (Vec::new(), batches),
            DmlKind::Delete | DmlKind::Truncate => {
                let last = written_schema.fields().len();
                let mut ids = rowids_of(&batches, last)?;
                ids.sort_unstable();
                ids.dedup();
                if returning.is_some() {
                    for batch in &batches {
                        old_rows.push(batch.project(&(0..last).collect::<Vec<_>>())?);
                    }
                }
                (ids, Vec::new())
            }
            DmlKind::Update => split_update(&batches)?,
        };
        let returned_rows = match kind {
            DmlKind::Delete | DmlKind::Truncate => old_rows,
            // Rows as the table will hold them: the plan's types can be
            // narrower than its target's (an integer literal of a query).
            _ if returning.is_some() => inserted
                .iter()
                .map(|b| conform(b, &written_schema, &live.def))
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let changed = match kind {
            DmlKind::Insert => inserted.iter().map(RecordBatch::num_rows).sum(),
            _ => deleted.len(),
        };
        // A RETURNING is computed before the change is written, so that
        // one that fails (an unknown column, a division by zero) writes
        // nothing, as in PostgreSQL.
        let returned = match returning {
            Some(returning) => {
                let tag = match kind {
                    DmlKind::Insert => "INSERT 0",
                    _ => kind.tag(),
                };
                Some(
                    self.returned(returning, written_schema, returned_rows, tag)
                        .await?,
                )
            }
            None => None,
        };
        match (txn, guard) {
            (Some(txn), _) => txn.stage(&live, deleted, inserted)?,
            (None, Some(guard)) => self.commit(live, guard, deleted, inserted).await?,
            (None, None) => return Err(Error::Internal("a write without its lock".into())),
        }
        if let Some(returned) = returned {
            return Ok(returned);
        }
        Ok(match kind {
            DmlKind::Insert => Outcome::Command {
                tag: "INSERT".into(),
                rows: Some(changed),
            },
            DmlKind::Truncate => Outcome::command(kind.tag()),
            _ => Outcome::Command {
                tag: kind.tag().into(),
                rows: Some(changed),
            },
        })
    }

    /// A RETURNING's items over the rows its statement wrote (new rows) or
    /// deleted (old rows), known by the name the statement gave its target.
    /// Each item gets PostgreSQL's column name (`sql::item_name`).
    async fn returned(
        &self,
        returning: &Returning,
        schema: SchemaRef,
        rows: Vec<RecordBatch>,
        tag: &'static str,
    ) -> Result<Outcome> {
        // The rows come from the optimized plan, whose columns may be typed
        // NOT NULL where the statement's plan was not (or the reverse); a
        // RETURNING reads them as nullable columns of the table's types.
        let schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_nullable(true)
                        .with_metadata(Default::default())
                })
                .collect::<Vec<_>>(),
        ));
        let rows = rows
            .into_iter()
            .map(|batch| RecordBatch::try_new(schema.clone(), batch.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let table = MemTable::try_new(schema, vec![rows])?;
        let scan = LogicalPlanBuilder::scan(
            returning.relation.value.clone(),
            provider_as_source(Arc::new(table)),
            None,
        )?
        .build()?;
        let frame = DataFrame::new(self.ctx.state(), scan);
        let mut exprs = Vec::new();
        for item in &returning.items {
            match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => exprs.extend(
                    frame
                        .schema()
                        .columns()
                        .into_iter()
                        .map(datafusion::logical_expr::Expr::Column),
                ),
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    let name =
                        crate::sql::item_name(item).unwrap_or_else(|| "?column?".to_string());
                    exprs.push(frame.parse_sql_expr(&expr.to_string())?.alias(name));
                }
                other => {
                    return Err(Error::NotSupported(format!("RETURNING {other}")));
                }
            }
        }
        let selected = frame.select(exprs)?;
        let schema = Arc::new(selected.schema().as_arrow().clone());
        let batches = selected.collect().await?;
        Ok(Outcome::Returned {
            tag,
            schema,
            batches,
        })
    }

    /// Writes one statement's change: at once, or into the transaction.
    pub(super) async fn write(
        &self,
        live: Arc<LiveTable>,
        deleted: Vec<u64>,
        inserted: Vec<RecordBatch>,
        txn: Option<&mut Transaction>,
    ) -> Result<()> {
        match txn {
            Some(txn) => {
                txn.enter(&live).await?;
                txn.stage(&live, deleted, inserted)
            }
            None => {
                let guard = live.lock_writer().await?;
                self.commit(live, guard, deleted, inserted).await
            }
        }
    }

    /// Validates, logs, syncs and applies one statement's change. The
    /// rows in `inserted` have the table's columns, without row ids.
    pub(super) async fn commit(
        &self,
        live: Arc<LiveTable>,
        guard: tokio::sync::OwnedMutexGuard<()>,
        deleted: Vec<u64>,
        inserted: Vec<RecordBatch>,
    ) -> Result<()> {
        let change = {
            let data = live.data.write().expect("table lock poisoned");
            prepare_change(&live.def, &data, deleted, inserted)?
        };
        if change.is_empty() {
            return Ok(());
        }
        self.commit_changes(vec![(live, vec![change])], vec![guard])
            .await
    }

    /// Makes the changes of one statement or one transaction durable in
    /// one atomic record, applies them, and hands them to the runtime as
    /// one message, so they enter one epoch together. Runs in its own task:
    /// a cancelled statement or a vanished client cannot stop it halfway.
    /// The writer guards are released once the change is applied, before
    /// the sync; readers see it only after (see `sequencer`).
    pub(super) async fn commit_changes(
        &self,
        changes: super::transaction::Changes,
        guards: Vec<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Result<()> {
        let mut logged = Vec::with_capacity(changes.len());
        for (live, table_changes) in &changes {
            let mut entries = Vec::new();
            for change in table_changes {
                let stored = change.inserted.clone().unwrap_or_else(|| {
                    RecordBatch::new_empty(
                        live.data
                            .read()
                            .expect("table lock poisoned")
                            .stored_schema()
                            .clone(),
                    )
                });
                entries.extend(log_entries(&change.deleted, &stored)?);
            }
            let first_seq = live
                .data
                .write()
                .expect("table lock poisoned")
                .reserve_seqs(entries.len());
            logged.push((live.def.id.0, first_seq, entries));
        }
        let store = self.store.clone();
        let runtime = self.runtime.clone();
        let sequencer = self.sequencer.clone();
        // No await between here and the spawn: once the flag is up, the
        // commit task exists.
        pass_commit_point();
        tokio::spawn(async move {
            // Under the writer guards: logged (not yet synced), applied for
            // the next writer of these tables to build on, hidden from every
            // other reader, and a ticket taken in the tables' order.
            store.append_changes_of(&logged)?;
            let mut deltas = Vec::new();
            let mut applied = Vec::with_capacity(changes.len());
            for ((live, table_changes), (_, _, entries)) in changes.into_iter().zip(&logged) {
                let mut data = live.data.write().expect("table lock poisoned");
                data.hold_visible();
                for change in table_changes {
                    let removed = data.apply(&change)?;
                    deltas.push(TableDelta {
                        table: live.def.id,
                        removed,
                        inserted: change.inserted,
                        snapshot: data.snapshot(),
                    });
                }
                data.logged(entries.iter().map(Vec::len).sum());
                // Still under the table's writer guard: no append can interleave.
                // The rewrite is one atomic record, synced with this commit.
                if data.log_outgrown() {
                    compact_log(&store, &live.def, &mut data)?;
                }
                applied.push((live.clone(), data.snapshot()));
            }
            let ticket = sequencer.ticket();
            // The next writer of these tables may go while this one syncs:
            // concurrent writers share one sync.
            drop(guards);
            store.flush().await?;
            // Durable: shown to readers and handed to the runtime in ticket
            // order, so both see each table's changes in the order they were
            // made.
            let _turn = ticket.wait().await;
            for (live, chunks) in &applied {
                live.data
                    .write()
                    .expect("table lock poisoned")
                    .reveal(chunks);
            }
            runtime.send(Message::Commit(deltas)).await?;
            Ok::<(), Error>(())
        })
        .await
        .map_err(|e| Error::Internal(format!("commit task failed: {e}")))?
    }
}

/// Turns a statement's answer into a change of `data`'s table: rows cast to
/// the column types, constraints checked (NOT NULL, lengths, the primary key
/// against `data` as it stands), fresh row ids assigned.
pub(super) fn prepare_change(
    def: &TableDef,
    data: &TableData,
    deleted: Vec<u64>,
    inserted: Vec<RecordBatch>,
) -> Result<TableChange> {
    let user_schema = Arc::new(def.arrow_schema());
    let aligned = inserted
        .iter()
        .map(|b| conform(b, &user_schema, def))
        .collect::<Result<Vec<_>>>()?;
    let rows = match aligned.first() {
        None => RecordBatch::new_empty(user_schema.clone()),
        Some(first) => concat_batches(&first.schema(), &aligned)?,
    };
    let rows = crate::catalog::check_rows(def, &rows)?;
    let first_id = data.next_rowid();
    let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
        first_id..first_id + rows.num_rows() as u64,
    ));
    let mut columns = vec![ids];
    columns.extend(rows.columns().iter().cloned());
    let stored = RecordBatch::try_new(data.stored_schema().clone(), columns)?;
    if let Some(conflict) = data.check_keys(&deleted, &stored)? {
        return Err(Error::UniqueViolation {
            schema: def.schema.clone(),
            table: def.name.clone(),
            constraint: def.primary_key_name(),
            detail: format!("Key {} already exists.", conflict.key),
        });
    }
    Ok(TableChange {
        deleted,
        inserted: (stored.num_rows() > 0).then_some(stored),
    })
}

/// Replaces a table's log with its current rows, in one atomic sled batch.
pub(super) fn compact_log(store: &Store, def: &TableDef, data: &mut TableData) -> Result<()> {
    let (first_seq, entries) = data.compact_log()?;
    store.rewrite_table_log(def.id.0, first_seq, &entries)?;
    info!(table = %def.name, entries = entries.len(), "compacted table log");
    Ok(())
}

/// A query result batch in the table's exact schema: same types (cast where
/// the plan produced an equivalent type) and the table's field metadata.
pub(super) fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    def: &TableDef,
) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::Internal(format!(
            "{} values for {} columns of \"{}\"",
            batch.num_columns(),
            schema.fields().len(),
            def.name
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                Ok(datafusion::arrow::compute::cast(column, field.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // Nullability is checked by `check_rows` with PostgreSQL's message;
    // build against a nullable copy so Arrow does not reject it first.
    let nullable = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(nullable, columns)?)
}

fn rowids_of(batches: &[RecordBatch], column: usize) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for batch in batches {
        let array = batch
            .column(column)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| Error::Internal("row id column is not UInt64".into()))?;
        ids.extend(array.values().iter().copied());
    }
    Ok(ids)
}

/// UPDATE results carry the new row with the old row id last. A row matched
/// more than once (UPDATE ... FROM) is updated once, as in PostgreSQL.
fn split_update(batches: &[RecordBatch]) -> Result<(Vec<u64>, Vec<RecordBatch>)> {
    let mut seen = std::collections::HashSet::new();
    let mut deleted = Vec::new();
    let mut inserted = Vec::new();
    for batch in batches {
        let last = batch.num_columns() - 1;
        let ids = rowids_of(std::slice::from_ref(batch), last)?;
        let keep: datafusion::arrow::array::BooleanArray =
            ids.iter().map(|id| Some(seen.insert(*id))).collect();
        deleted.extend(
            ids.iter()
                .zip(keep.values().iter())
                .filter(|(_, k)| *k)
                .map(|(id, _)| *id),
        );
        let rows = batch.project(&(0..last).collect::<Vec<_>>())?;
        inserted.push(datafusion::arrow::compute::filter_record_batch(
            &rows, &keep,
        )?);
    }
    deleted.sort_unstable();
    Ok((deleted, inserted))
}

/// Splits a change into log entries of bounded size; deletes go first.
fn log_entries(deleted: &[u64], stored: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let mut entries = Vec::new();
    if !deleted.is_empty() {
        entries.push(
            TableChange {
                deleted: deleted.to_vec(),
                inserted: None,
            }
            .encode()?,
        );
    }
    let mut offset = 0;
    while offset < stored.num_rows() {
        let len = ROWS_PER_LOG_ENTRY.min(stored.num_rows() - offset);
        entries.push(
            TableChange {
                deleted: Vec::new(),
                inserted: Some(stored.slice(offset, len)),
            }
            .encode()?,
        );
        offset += len;
    }
    Ok(entries)
}
