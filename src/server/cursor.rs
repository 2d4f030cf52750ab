//! SQL cursors: `DECLARE ... CURSOR`, `FETCH`, `MOVE`, `CLOSE`, as
//! psycopg's server-side cursors and psycopg2's named cursors use them.
//!
//! A cursor holds its query's row stream, opened at DECLARE (so it reads the
//! tables as they were then, the transaction's own writes included) and
//! pulled only as far as a FETCH needs. Positions follow PostgreSQL: 0 is
//! before the first row, `n + 1` after the last of `n`. Rows already read
//! are kept so that a cursor can go back, except for a `NO SCROLL` cursor,
//! which keeps only the current row: that is the one to declare for a
//! result too big to hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, Query, Statement};
use futures::StreamExt;

use crate::database::Outcome;
use crate::error::{Error, Result};
use crate::sql;
use crate::sql::cursor::{CursorStep, Direction};

/// The session's open cursors, by name.
#[derive(Default)]
pub(super) struct Cursors(Mutex<HashMap<String, Cursor>>);

pub(super) struct Cursor {
    /// The result columns as the DECLARE's query names them.
    schema: SchemaRef,
    rows: Option<SendableRecordBatchStream>,
    /// Rows `dropped + 1 ..= read`, in batches.
    kept: Vec<RecordBatch>,
    dropped: usize,
    read: usize,
    position: usize,
    scroll: bool,
    hold: bool,
    /// Declared in the transaction block that is still open: a ROLLBACK
    /// closes it even WITH HOLD.
    in_open_block: bool,
}

/// What DECLARE needs to know about the statement.
pub(super) struct Declared<'a> {
    pub name: String,
    pub declare: &'a Declare,
    query: &'a Query,
}

/// The DECLARE a statement is, if it declares a cursor.
pub(super) fn declared(statement: &Statement) -> Option<Declared<'_>> {
    let Statement::Declare { stmts } = statement else {
        return None;
    };
    let [declare] = stmts.as_slice() else {
        return None;
    };
    let [name] = declare.names.as_slice() else {
        return None;
    };
    Some(Declared {
        name: sql::ident_name(name),
        declare,
        query: declare.for_query.as_ref()?,
    })
}

impl Declared<'_> {
    /// PostgreSQL's checks before the query runs.
    pub(super) fn allowed(&self, in_block: bool) -> Result<()> {
        if self.declare.binary == Some(true) {
            return Err(Error::NotSupported(
                "DECLARE ... BINARY CURSOR (fetch in binary through the extended protocol instead)"
                    .into(),
            ));
        }
        if !in_block && self.declare.hold != Some(true) {
            return Err(Error::NoTransactionBlock("DECLARE CURSOR"));
        }
        Ok(())
    }

    /// The cursor's query as a statement of its own.
    pub(super) fn query(&self) -> Statement {
        Statement::Query(Box::new(self.query.clone()))
    }
}

impl Cursors {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cursor>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Opens the cursor over `outcome`, the DECLARE's query already
    /// started (`Declared::allowed` has passed). `in_block`: a transaction
    /// block is open.
    pub(super) fn declare(
        &self,
        declared: &Declared<'_>,
        outcome: Outcome,
        in_block: bool,
    ) -> Result<Outcome> {
        let Outcome::Rows { schema, rows } = outcome else {
            return Err(Error::Internal("a cursor's query returned no rows".into()));
        };
        let schema = super::handler::rename_columns(&schema, &declared.query());
        let mut cursors = self.lock();
        if cursors.contains_key(&declared.name) {
            return Err(Error::DuplicateCursor(declared.name.clone()));
        }
        cursors.insert(
            declared.name.clone(),
            Cursor {
                schema,
                rows: Some(rows),
                kept: Vec::new(),
                dropped: 0,
                read: 0,
                position: 0,
                scroll: declared.declare.scroll != Some(false),
                hold: declared.declare.hold == Some(true),
                in_open_block: in_block,
            },
        );
        Ok(Outcome::Command {
            tag: "DECLARE CURSOR".into(),
            rows: None,
        })
    }

    /// FETCH or MOVE. The cursor is out of the map while rows are pulled,
    /// so the lock is never held across an await; a FETCH that is cancelled
    /// midway loses the cursor, as its block is aborted anyway.
    pub(super) async fn step(&self, step: &CursorStep) -> Result<Stepped> {
        let mut cursor = self
            .lock()
            .remove(&step.cursor)
            .ok_or_else(|| Error::UndefinedCursor(step.cursor.clone()))?;
        let result = cursor.step(step).await;
        self.lock().insert(step.cursor.clone(), cursor);
        result
    }

    /// The result columns of a cursor, for Describe.
    pub(super) fn columns(&self, name: &str) -> Option<SchemaRef> {
        self.lock().get(name).map(|cursor| cursor.schema.clone())
    }

    pub(super) fn close(&self, close: &CloseCursor) -> Result<Outcome> {
        let mut cursors = self.lock();
        let tag = match close {
            CloseCursor::All => {
                cursors.clear();
                "CLOSE CURSOR ALL"
            }
            CloseCursor::Specific { name } => {
                let name = sql::ident_name(name);
                cursors.remove(&name).ok_or(Error::UndefinedCursor(name))?;
                "CLOSE CURSOR"
            }
        };
        Ok(Outcome::Command {
            tag: tag.into(),
            rows: None,
        })
    }

    /// The end of a transaction block: cursors without HOLD close; so do
    /// those declared in a block that rolls back.
    pub(super) fn end_block(&self, committed: bool) {
        self.lock().retain(|_, cursor| {
            let keep = cursor.hold && (committed || !cursor.in_open_block);
            cursor.in_open_block = false;
            keep
        });
    }

    /// DISCARD ALL.
    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}

/// What a FETCH or MOVE gives back.
pub(super) enum Stepped {
    /// FETCH: the rows.
    Rows {
        schema: SchemaRef,
        batch: RecordBatch,
    },
    /// MOVE: how many rows it passed.
    Moved(usize),
}

impl Stepped {
    pub(super) fn outcome(self) -> Outcome {
        match self {
            Stepped::Rows { schema, batch } => Outcome::batches(schema, vec![batch]),
            Stepped::Moved(rows) => Outcome::Command {
                tag: "MOVE".into(),
                rows: Some(rows),
            },
        }
    }
}

impl Cursor {
    async fn step(&mut self, step: &CursorStep) -> Result<Stepped> {
        let rows = match step.direction {
            Direction::Count(n) if n >= 0 => {
                if n == 0 {
                    self.relative(0).await?
                } else {
                    self.forward(n as usize).await?
                }
            }
            Direction::Count(n) => self.backward(n.unsigned_abs() as usize)?,
            Direction::ForwardAll => self.forward(usize::MAX).await?,
            Direction::BackwardAll => self.backward(usize::MAX)?,
            Direction::Absolute(n) => self.absolute(n).await?,
            Direction::Relative(n) => self.relative(n).await?,
        };
        let stepped = if step.is_move {
            Stepped::Moved(rows.len())
        } else {
            Stepped::Rows {
                schema: self.schema.clone(),
                batch: self.gather(&rows)?,
            }
        };
        self.drop_passed();
        Ok(stepped)
    }

    /// Reads from the query until `wanted` rows are read or it ends.
    async fn read_to(&mut self, wanted: usize) -> Result<()> {
        while self.read < wanted {
            let Some(rows) = self.rows.as_mut() else {
                return Ok(());
            };
            match rows.next().await {
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() > 0 {
                        self.read += batch.num_rows();
                        self.kept.push(batch);
                    }
                }
                None => self.rows = None,
            }
        }
        Ok(())
    }

    /// The number of rows, once the query has ended.
    fn total(&self) -> Option<usize> {
        self.rows.is_none().then_some(self.read)
    }

    fn backward_allowed(&self) -> Result<()> {
        if self.scroll {
            Ok(())
        } else {
            Err(Error::ForwardOnlyCursor)
        }
    }

    async fn forward(&mut self, count: usize) -> Result<Vec<usize>> {
        let end = self.position.saturating_add(count);
        self.read_to(end).await?;
        let first = self.position + 1;
        let last = end.min(self.read);
        let rows: Vec<usize> = (first..=last).collect();
        self.position = if rows.len() < count {
            self.read + 1
        } else {
            end
        };
        Ok(rows)
    }

    fn backward(&mut self, count: usize) -> Result<Vec<usize>> {
        self.backward_allowed()?;
        let available = self.position.saturating_sub(1);
        let taken = available.min(count);
        let rows: Vec<usize> = (0..taken).map(|i| self.position - 1 - i).collect();
        self.position = if taken < count {
            0
        } else {
            self.position - count
        };
        Ok(rows)
    }

    /// Moves to row `target` (0 and past the end are the two edges) and
    /// returns it if there is one.
    async fn land(&mut self, target: i64) -> Result<Vec<usize>> {
        let target = usize::try_from(target).unwrap_or(0);
        if target <= self.position && !(target == 0 && self.position == 0) {
            self.backward_allowed()?;
        }
        self.read_to(target).await?;
        if target == 0 {
            self.position = 0;
            return Ok(Vec::new());
        }
        if target > self.read {
            self.position = self.read + 1;
            return Ok(Vec::new());
        }
        self.position = target;
        Ok(vec![target])
    }

    async fn absolute(&mut self, n: i64) -> Result<Vec<usize>> {
        if n >= 0 {
            return self.land(n).await;
        }
        self.read_to(usize::MAX).await?;
        let total = self.total().unwrap_or(self.read) as i64;
        self.land((total + 1 + n).max(0)).await
    }

    async fn relative(&mut self, n: i64) -> Result<Vec<usize>> {
        if n == 0 {
            // Fetching the current row again is a step back for PostgreSQL.
            self.backward_allowed()?;
            let current = self.position;
            let on_row = current >= 1 && current <= self.read && current > self.dropped;
            return Ok(if on_row { vec![current] } else { Vec::new() });
        }
        if n < 0 {
            self.backward_allowed()?;
        }
        let target = (self.position as i64).saturating_add(n).max(0);
        if n > 0 {
            self.read_to(usize::try_from(target).unwrap_or(usize::MAX))
                .await?;
            if target as usize > self.read {
                self.position = self.read + 1;
                return Ok(Vec::new());
            }
        }
        // Moving back is allowed here, and forward never checks.
        let target = usize::try_from(target).unwrap_or(0);
        self.position = target;
        Ok(if target == 0 {
            Vec::new()
        } else {
            vec![target]
        })
    }

    /// A NO SCROLL cursor forgets the rows before its current one.
    fn drop_passed(&mut self) {
        if self.scroll {
            return;
        }
        while let Some(first) = self.kept.first() {
            if self.dropped + first.num_rows() >= self.position {
                break;
            }
            self.dropped += first.num_rows();
            self.kept.remove(0);
        }
    }

    /// The rows at 1-based positions `rows`, in that order, as one batch.
    fn gather(&self, rows: &[usize]) -> Result<RecordBatch> {
        let mut starts = Vec::with_capacity(self.kept.len());
        let mut start = self.dropped + 1;
        for batch in &self.kept {
            starts.push(start);
            start += batch.num_rows();
        }
        let indices: Vec<(usize, usize)> = rows
            .iter()
            .map(|&row| {
                let batch = starts.partition_point(|&s| s <= row).saturating_sub(1);
                (batch, row - starts.get(batch).copied().unwrap_or(1))
            })
            .collect();
        if indices.is_empty() || self.kept.is_empty() {
            return Ok(RecordBatch::new_empty(self.stream_schema()));
        }
        let batches: Vec<&RecordBatch> = self.kept.iter().collect();
        Ok(interleave_record_batch(&batches, &indices)?)
    }

    fn stream_schema(&self) -> SchemaRef {
        self.kept
            .first()
            .map(|batch| batch.schema())
            .unwrap_or_else(|| Arc::clone(&self.schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    /// A cursor over rows 1..=n in batches of 2.
    fn cursor(n: i64, scroll: bool) -> Cursor {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batches: Vec<_> = (1..=n)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|c| {
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(c.to_vec()))])
                    .map_err(Into::into)
            })
            .collect();
        let stream = RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(batches));
        Cursor {
            schema,
            rows: Some(Box::pin(stream)),
            kept: Vec::new(),
            dropped: 0,
            read: 0,
            position: 0,
            scroll,
            hold: false,
            in_open_block: true,
        }
    }

    async fn fetch(cursor: &mut Cursor, direction: Direction) -> Result<Vec<i64>> {
        let step = CursorStep {
            is_move: false,
            direction,
            cursor: "c".into(),
        };
        match cursor.step(&step).await? {
            Stepped::Rows { batch, .. } => {
                let values = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| (0..a.len()).map(|i| a.value(i)).collect())
                    .unwrap_or_default();
                Ok(values)
            }
            Stepped::Moved(_) => panic!("FETCH returns rows"),
        }
    }

    async fn moved(cursor: &mut Cursor, direction: Direction) -> usize {
        let step = CursorStep {
            is_move: true,
            direction,
            cursor: "c".into(),
        };
        match cursor.step(&step).await.unwrap() {
            Stepped::Moved(rows) => rows,
            Stepped::Rows { .. } => panic!("MOVE returns a count"),
        }
    }

    /// The sequence and answers were taken from PostgreSQL 15 over rows 1..5.
    #[tokio::test]
    async fn moves_as_postgresql_does() {
        use Direction::*;
        let mut c = cursor(5, true);
        let steps: Vec<(Direction, Vec<i64>)> = vec![
            (Count(1), vec![1]),
            (Count(1), vec![2]),
            (Count(2), vec![3, 4]),
            (Count(1), vec![5]),
            (Count(-1), vec![4]),
            (Count(-1), vec![3]),
            (Count(-2), vec![2, 1]),
            (Relative(0), vec![1]),
            (Absolute(-1), vec![5]),
            (Absolute(-1), vec![5]),
            (Absolute(1), vec![1]),
            (Absolute(10), vec![]),
            (Count(-1), vec![5]),
            (Count(1), vec![]),
            (Count(-1), vec![5]),
            (BackwardAll, vec![4, 3, 2, 1]),
            (ForwardAll, vec![1, 2, 3, 4, 5]),
            (Count(0), vec![]),
        ];
        for (i, (direction, expected)) in steps.into_iter().enumerate() {
            assert_eq!(
                fetch(&mut c, direction).await.unwrap(),
                expected,
                "step {i}: {direction:?}"
            );
        }
        assert_eq!(moved(&mut c, Count(-2)).await, 2);
        assert_eq!(moved(&mut c, Count(1)).await, 1);
        assert_eq!(moved(&mut c, Absolute(0)).await, 0);
        assert_eq!(moved(&mut c, ForwardAll).await, 5);
        assert_eq!(moved(&mut c, Count(-100)).await, 5);
        assert_eq!(
            fetch(&mut c, ForwardAll).await.unwrap(),
            vec![1, 2, 3, 4, 5]
        );
    }

    #[tokio::test]
    async fn no_scroll_goes_forward_only_and_forgets_what_it_passed() {
        let mut c = cursor(7, false);
        assert_eq!(
            fetch(&mut c, Direction::Count(3)).await.unwrap(),
            vec![1, 2, 3]
        );
        assert!(c.dropped >= 2, "rows behind the cursor are let go");
        assert!(matches!(
            fetch(&mut c, Direction::Relative(0)).await,
            Err(Error::ForwardOnlyCursor)
        ));
        assert!(matches!(
            fetch(&mut c, Direction::Count(-1)).await,
            Err(Error::ForwardOnlyCursor)
        ));
        assert!(matches!(
            fetch(&mut c, Direction::Absolute(1)).await,
            Err(Error::ForwardOnlyCursor)
        ));
        assert_eq!(
            fetch(&mut c, Direction::ForwardAll).await.unwrap(),
            vec![4, 5, 6, 7]
        );
    }

    #[tokio::test]
    async fn an_empty_result_fetches_nothing_anywhere() {
        let mut c = cursor(0, true);
        assert!(fetch(&mut c, Direction::Count(1)).await.unwrap().is_empty());
        assert!(
            fetch(&mut c, Direction::Absolute(-1))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            fetch(&mut c, Direction::BackwardAll)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
