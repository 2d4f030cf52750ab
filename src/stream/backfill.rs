//! A materialized view being built from its inputs' contents.
//!
//! The contents are fed to the dataflow a slice at a time, between the
//! runtime's other work, so that a long backfill neither stalls the epochs
//! of the views that already run nor copies its inputs whole, and its
//! progress can be shown while it runs.
//!
//! Invariant: the snapshot is taken at an epoch boundary with nothing
//! pending, and every change of an input after it is recorded here; so the
//! snapshot plus the recorded changes are every change of the inputs, each
//! exactly once, whatever order the slices are fed in (each operator's
//! output sums to the same answer for any order of its inputs' deltas).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use tokio::sync::oneshot;

use super::{Node, StepContext, StreamError, ZBatch};
use crate::catalog::{MvId, Relation};
use crate::state::{Chunks, MvData};

/// The most rows fed in one step when no rate limit applies: big enough
/// that per-step costs stay small against the rows, small enough that
/// other views' epochs wait at most a few tens of milliseconds.
pub const STEP_ROWS: usize = 1 << 20;

pub struct Backfill {
    pub id: MvId,
    pub name: String,
    pub inputs: Vec<Relation>,
    dataflow: Box<Node>,
    data: MvData,
    /// The inputs' contents still to feed, smallest input first: a join
    /// then probes a complete state of its smaller side.
    queue: VecDeque<Cursor>,
    /// Changes of the inputs committed after the snapshot.
    changes: HashMap<Relation, Vec<ZBatch>>,
    stepped: bool,
    pub done: u64,
    pub total: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub started: Instant,
    pub reply: Option<oneshot::Sender<Result<(), StreamError>>>,
}

/// A backfilled view, ready to follow its inputs' epochs.
pub struct Built {
    pub dataflow: Box<Node>,
    pub data: MvData,
    pub errors: u64,
    pub last_error: Option<String>,
}

/// One input's contents and how far they have been fed.
struct Cursor {
    relation: Relation,
    chunks: Chunks,
    chunk: usize,
    offset: usize,
    rows: usize,
}

impl Cursor {
    /// Up to `limit` rows from where the cursor stands (row id stripped),
    /// as one batch: a slice of one chunk when it can, else a copy of the
    /// slices of several.
    fn take(&mut self, limit: usize) -> Result<Option<RecordBatch>, StreamError> {
        let mut parts = Vec::new();
        let mut taken = 0;
        while taken < limit && self.chunk < self.chunks.len() {
            let chunk = &self.chunks[self.chunk];
            let n = (chunk.num_rows() - self.offset).min(limit - taken);
            if n > 0 {
                parts.push(without_rowid(&chunk.slice(self.offset, n)));
                taken += n;
            }
            self.offset += n;
            if self.offset == chunk.num_rows() {
                self.chunk += 1;
                self.offset = 0;
            }
        }
        match parts.len() {
            0 => Ok(None),
            1 => Ok(parts.pop()),
            _ => Ok(Some(concat_batches(&parts[0].schema(), parts.iter())?)),
        }
    }

    fn exhausted(&self) -> bool {
        self.chunk >= self.chunks.len()
    }
}

impl Backfill {
    pub fn dataflow(&self) -> &Node {
        &self.dataflow
    }

    pub fn data(&self) -> &MvData {
        &self.data
    }

    /// `contents` are the inputs' contents at the snapshot, row id first.
    pub fn new(
        id: MvId,
        name: String,
        inputs: Vec<Relation>,
        dataflow: Box<Node>,
        data: MvData,
        contents: Vec<(Relation, Chunks)>,
        reply: oneshot::Sender<Result<(), StreamError>>,
    ) -> Self {
        let mut queue: Vec<Cursor> = contents
            .into_iter()
            .map(|(relation, chunks)| Cursor {
                relation,
                rows: chunks.iter().map(|c| c.num_rows()).sum(),
                chunks,
                chunk: 0,
                offset: 0,
            })
            .collect();
        queue.sort_by_key(|c| c.rows);
        let total = queue.iter().map(|c| c.rows as u64).sum();
        Backfill {
            id,
            name,
            inputs,
            dataflow,
            data,
            queue: queue.into(),
            changes: HashMap::new(),
            stepped: false,
            done: 0,
            total,
            errors: 0,
            last_error: None,
            started: Instant::now(),
            reply: Some(reply),
        }
    }

    /// Nothing of the snapshot is left to feed.
    pub fn fed(&self) -> bool {
        self.stepped && self.queue.is_empty()
    }

    /// Feeds up to `limit` rows of the snapshot. The first step runs even
    /// over empty inputs: constants and a global aggregate's row come
    /// from it.
    pub fn step(&mut self, limit: usize) -> Result<(), StreamError> {
        let mut sources = HashMap::new();
        while let Some(cursor) = self.queue.front_mut() {
            let slice = cursor.take(limit.max(1))?;
            let relation = cursor.relation;
            if cursor.exhausted() {
                self.queue.pop_front();
            }
            if let Some(rows) = slice {
                self.done += rows.num_rows() as u64;
                sources.insert(relation, ZBatch::uniform(rows, 1));
                break;
            }
        }
        self.stepped = true;
        self.run(&sources, true)
    }

    /// Keeps the changes of this view's inputs in an epoch's deltas.
    pub fn record(&mut self, sources: &HashMap<Relation, ZBatch>) {
        for input in &self.inputs {
            if let Some(delta) = sources.get(input).filter(|d| !d.is_empty()) {
                self.changes.entry(*input).or_default().push(delta.clone());
            }
        }
    }

    /// Feeds the changes recorded since the snapshot in one last step,
    /// which also lets out what operators held, and hands over the view,
    /// now current.
    pub fn finish(mut self) -> Result<Built, StreamError> {
        let mut sources = HashMap::new();
        for (relation, parts) in std::mem::take(&mut self.changes) {
            if let Some(first) = parts.first() {
                sources.insert(relation, ZBatch::concat(&first.schema(), &parts)?);
            }
        }
        self.run(&sources, false)?;
        Ok(Built {
            dataflow: self.dataflow,
            data: self.data,
            errors: self.errors,
            last_error: self.last_error,
        })
    }

    pub fn row_count(&self) -> usize {
        self.data.row_count()
    }

    fn run(&mut self, sources: &HashMap<Relation, ZBatch>, hold: bool) -> Result<(), StreamError> {
        let mut ctx = StepContext::new(sources);
        ctx.hold = hold;
        let delta = super::runtime::guarded(|| self.dataflow.step(&mut ctx))?;
        self.errors += ctx.errors;
        if ctx.last_error.is_some() {
            self.last_error = ctx.last_error;
        }
        self.data.apply(&delta)?;
        Ok(())
    }
}

/// Rows as the user sees them: the stored row id (column 0) removed.
pub fn without_rowid(rows: &RecordBatch) -> RecordBatch {
    let columns: Vec<usize> = (1..rows.num_columns()).collect();
    rows.project(&columns).unwrap_or_else(|_| rows.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::stream::output_schema;
    use crate::stream::testing::{self, Row};

    /// `rows` as stored chunks of these sizes, each with a row id first.
    fn stored(table: &str, rows: &[Row], sizes: &[usize]) -> Chunks {
        let mut chunks = Vec::new();
        let mut at = 0;
        for size in sizes.iter().copied().chain(std::iter::repeat(rows.len())) {
            if at >= rows.len() {
                break;
            }
            let part = testing::batch(table, &rows[at..(at + size).min(rows.len())]);
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
                (at as i64)..(at + part.num_rows()) as i64,
            ));
            let mut fields = vec![Field::new("rowid", DataType::Int64, false)];
            fields.extend(part.schema().fields().iter().map(|f| f.as_ref().clone()));
            let mut columns = vec![ids];
            columns.extend(part.columns().iter().cloned());
            chunks.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap());
            at += part.num_rows();
        }
        Arc::new(chunks)
    }

    fn rows_of(n: i64, seed: i64) -> Vec<Row> {
        const WORDS: [&str; 3] = ["x", "y", "z"];
        (0..n)
            .map(|i| {
                let k = (i * seed) % 7;
                let v = (i * 31 + seed) % 23 - 5;
                (
                    (k != 3).then_some(k),
                    (i % 9 != 0).then_some(v),
                    Some(WORDS[(i % 3) as usize]),
                )
            })
            .collect()
    }

    /// Backfills `sql` over `t` and `u` fed `limit` rows a step, with
    /// `later` (table, weight, rows) committed meanwhile, and checks the
    /// view against DataFusion's answer over the final contents.
    fn check(
        sql: &str,
        t: &[Row],
        u: &[Row],
        later: &[(&'static str, i64, Vec<Row>)],
        limit: usize,
    ) {
        let (dataflow, schema) = testing::dataflow(sql, false);
        let data = MvData::try_new(&output_schema(&schema), None).unwrap();
        let (t_id, u_id) = (
            Relation::Table(testing::id_of("t")),
            Relation::Table(testing::id_of("u")),
        );
        let contents = vec![
            (t_id, stored("t", t, &[7, 1, 20])),
            (u_id, stored("u", u, &[5])),
        ];
        let (reply, _answer) = oneshot::channel();
        let mut backfill = Backfill::new(
            MvId(1),
            "v".into(),
            vec![t_id, u_id],
            Box::new(dataflow),
            data,
            contents,
            reply,
        );
        assert_eq!(backfill.total, (t.len() + u.len()) as u64);
        let mut final_rows: HashMap<&str, Vec<Row>> =
            HashMap::from([("t", t.to_vec()), ("u", u.to_vec())]);
        let mut later = later.iter();
        while !backfill.fed() {
            let before = backfill.done;
            backfill.step(limit).unwrap();
            assert!(backfill.done - before <= limit as u64);
            if let Some((table, weight, rows)) = later.next() {
                let delta = ZBatch::uniform(testing::batch(table, rows), *weight);
                let relation = Relation::Table(testing::id_of(table));
                backfill.record(&HashMap::from([(relation, delta)]));
                let all = final_rows.entry(table).or_default();
                for row in rows {
                    if *weight > 0 {
                        all.push(*row);
                    } else if let Some(at) = all.iter().position(|r| r == row) {
                        all.remove(at);
                    }
                }
            }
        }
        assert_eq!(backfill.done, backfill.total);
        let built = backfill.finish().unwrap();
        let mut got: Vec<String> = built
            .data
            .snapshot()
            .iter()
            .flat_map(|chunk| testing::row_lines(&without_rowid(chunk)))
            .collect();
        got.sort();
        let contents: Vec<(&str, RecordBatch)> = final_rows
            .iter()
            .map(|(table, rows)| (*table, testing::batch(table, rows)))
            .collect();
        assert_eq!(got, testing::batch_answer(sql, &contents), "query: {sql}");
    }

    #[test]
    fn sliced_backfills_with_changes_meanwhile_equal_the_batch_answer() {
        let t = rows_of(60, 5);
        let u = rows_of(25, 3);
        let later: Vec<(&'static str, i64, Vec<Row>)> = vec![
            ("t", -1, t[..10].to_vec()),
            ("u", 1, rows_of(4, 11)),
            ("t", 1, rows_of(6, 2)),
            ("u", -1, u[3..9].to_vec()),
        ];
        for sql in [
            "SELECT k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi FROM t GROUP BY k",
            "SELECT t.k, t.v, u.w FROM t LEFT JOIN u ON t.k = u.k",
            "SELECT t.s, count(*) AS n FROM t JOIN u ON t.k = u.k AND t.s = u.s GROUP BY t.s",
            "SELECT DISTINCT s, k FROM t WHERE v > 0",
        ] {
            for limit in [1, 3, 17, STEP_ROWS] {
                check(sql, &t, &u, &later, limit);
            }
        }
    }

    #[test]
    fn a_backfill_over_empty_inputs_still_steps_once() {
        check("SELECT count(*) AS n, sum(v) AS s FROM t", &[], &[], &[], 3);
        check("SELECT 1 AS one", &[], &[], &[], 3);
    }
}
