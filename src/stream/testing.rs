//! The operator tests' oracle: a query planned into a dataflow exactly as a
//! materialized view is, fed insert and retract batches by hand, and
//! compared after each step with DataFusion's batch answer over the
//! accumulated input.
//!
//! Two tables: `t(k bigint, v bigint, s text)` and `u(k bigint, w bigint,
//! s text)`. Rows are `(k, v, s)` triples, `None` for NULL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::datasource::MemTable;

use super::{Node, StepContext, ZBatch};
use crate::catalog::{Relation, TableId};
use crate::query::{self, StoredTable};
use crate::state::TableData;

pub type Row = (Option<i64>, Option<i64>, Option<&'static str>);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn table_schema(table: &str) -> SchemaRef {
    let second = if table == "t" { "v" } else { "w" };
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new(second, DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

/// A table's rows as one batch, without row ids.
pub fn batch(table: &str, rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        table_schema(table),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

pub fn id_of(table: &str) -> TableId {
    TableId(if table == "t" { 1 } else { 2 })
}

/// A batch's rows as text lines, one per copy, sorted.
pub fn row_lines(batch: &RecordBatch) -> Vec<String> {
    let mut lines: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            batch
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(i) {
                        "NULL".to_string()
                    } else {
                        array_value_to_string(c, i).unwrap()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.sort();
    lines
}

pub struct Harness {
    sql: String,
    root: Node,
    inputs: HashMap<&'static str, Vec<ZBatch>>,
    output: Vec<ZBatch>,
    errors: u64,
}

impl Harness {
    pub fn new(sql: &str) -> Self {
        Self::planned(sql, false)
    }

    /// For queries with INTERSECT ALL / EXCEPT ALL (see `plan::build`).
    pub fn with_multiset_set_ops(sql: &str) -> Self {
        Self::planned(sql, true)
    }

    fn planned(sql: &str, multiset_set_ops: bool) -> Self {
        let (root, _) = dataflow(sql, multiset_set_ops);
        let mut harness = Harness {
            sql: sql.to_string(),
            root,
            inputs: HashMap::new(),
            output: Vec::new(),
            errors: 0,
        };
        harness.step(HashMap::new());
        harness
    }

    fn step(&mut self, sources: HashMap<Relation, ZBatch>) {
        let mut ctx = StepContext::new(&sources);
        let out = self.root.step(&mut ctx).unwrap();
        self.errors += ctx.errors;
        self.output.push(out);
    }

    /// One epoch with these changes: `(table, weight, rows)`.
    pub fn epoch(&mut self, changes: &[(&'static str, i64, &[Row])]) {
        let mut per_table: HashMap<&'static str, Vec<ZBatch>> = HashMap::new();
        for (table, weight, rows) in changes {
            let delta = ZBatch::uniform(batch(table, rows), *weight);
            per_table.entry(table).or_default().push(delta.clone());
            self.inputs.entry(table).or_default().push(delta);
        }
        let sources = per_table
            .into_iter()
            .map(|(table, parts)| {
                let schema = table_schema(table);
                (
                    Relation::Table(id_of(table)),
                    ZBatch::concat(&schema, &parts).unwrap(),
                )
            })
            .collect();
        self.step(sources);
    }

    pub fn insert(&mut self, table: &'static str, rows: &[Row]) {
        self.epoch(&[(table, 1, rows)]);
    }

    pub fn delete(&mut self, table: &'static str, rows: &[Row]) {
        self.epoch(&[(table, -1, rows)]);
    }

    /// The accumulated output, one line per copy.
    pub fn output(&self) -> Vec<String> {
        let schema = self.output[0].schema();
        let all = ZBatch::concat(&schema, &self.output)
            .unwrap()
            .consolidate()
            .unwrap();
        row_lines(&all.expand().unwrap())
    }

    /// The dataflow as EXPLAIN prints it.
    pub fn explain(&self) -> String {
        self.root.explain().join("\n")
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// DataFusion's answer to the query over the accumulated input.
    pub fn expected(&self) -> Vec<String> {
        let contents: Vec<(&str, RecordBatch)> = ["t", "u"]
            .into_iter()
            .filter_map(|name| {
                let parts = self.inputs.get(name)?;
                let rows = ZBatch::concat(&table_schema(name), parts)
                    .unwrap()
                    .consolidate()
                    .unwrap()
                    .expand()
                    .unwrap();
                Some((name, rows))
            })
            .collect();
        batch_answer(&self.sql, &contents)
    }

    /// The accumulated output equals the batch answer.
    pub fn check(&self) {
        assert_eq!(self.output(), self.expected(), "query: {}", self.sql);
    }
}

/// The query planned into a dataflow exactly as a materialized view is,
/// with the schema of its rows.
pub fn dataflow(sql: &str, multiset_set_ops: bool) -> (Node, SchemaRef) {
    let ctx = query::new_context(None).unwrap();
    for name in ["t", "u"] {
        let schema = table_schema(name);
        let data = TableData::try_new(&schema, &[]).unwrap();
        let provider = StoredTable::new(
            id_of(name),
            schema,
            Arc::new(RwLock::new(data)),
            HashMap::new(),
            &[],
        );
        ctx.register_table(name, Arc::new(provider)).unwrap();
    }
    runtime().block_on(async {
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        let stream = crate::plan::build(&plan, &ctx.state(), multiset_set_ops)
            .await
            .unwrap();
        (stream.root, stream.schema)
    })
}

/// DataFusion's answer to the query over these contents of `t` and `u`
/// (a table not given is empty), one line per row, sorted.
pub fn batch_answer(sql: &str, contents: &[(&str, RecordBatch)]) -> Vec<String> {
    let ctx = query::new_context(None).unwrap();
    for name in ["t", "u"] {
        let schema = table_schema(name);
        let rows = contents
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, rows)| RecordBatch::try_new(schema.clone(), rows.columns().to_vec()).unwrap())
            .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
        let table = MemTable::try_new(schema, vec![vec![rows]]).unwrap();
        ctx.register_table(name, Arc::new(table)).unwrap();
    }
    let batches =
        runtime().block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() });
    let mut lines: Vec<String> = batches.iter().flat_map(row_lines).collect();
    lines.sort();
    lines
}
