//! GROUP BY aggregates and window functions, maintained by recomputing only
//! the groups (or window partitions) that an epoch touched.
//!
//! State per key (the GROUP BY values, or the PARTITION BY values): the
//! weighted multiset of the key's input rows, and the output rows the key
//! last emitted. An epoch applies its delta to the rows, runs DataFusion's
//! own aggregate (or window) operator over the rows of the touched keys
//! only, and emits new output - old output per key. Keys whose rows are all
//! gone emit their retraction and vanish.
//!
//! Why this shape: DataFusion's operators give every aggregate and window
//! function exactly DataFusion's semantics (DISTINCT, FILTER, ORDER BY
//! inside string_agg, rank with ties, frames), with no second evaluator to
//! keep right. min/max survive the deletion of the current extreme because
//! the rows are kept. The cost of an epoch is the size of the touched keys,
//! not of the delta: fine for many small groups, linear in the input for a
//! global aggregate or an unpartitioned window. Linear aggregates (count,
//! sum) over huge groups want a fast path that keeps running totals instead.
//!
//! A global aggregate (no GROUP BY) always has its one row, also over an
//! empty input (count 0, sum NULL), as in PostgreSQL.
//!
//! # Invariants
//! - `groups[k].rows` holds exactly the live input rows with key k;
//!   `groups[k].output` exactly what has been emitted for k and not retracted.
//! - A key with no rows and no output is absent.

use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::common::{HashMap, HashSet};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Window};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::footprint;
use super::zset::{RowCodec, RowCounts, add_count, difference};
use super::{Operator, StepContext, StreamError, ZBatch, evaluate, output_schema};

/// Runs DataFusion's futures from the engine's synchronous step. The
/// dataflow runs on its own thread, outside any async context, so blocking
/// here stalls no client.
static EXECUTOR: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread tokio runtime builds")
});

/// The qualifier of the feed relation's columns `c0, c1, ...`.
const FEED: &str = "__freshet_feed";

/// The leaf of the recompute plan: whatever rows were put in before the
/// plan is executed.
#[derive(Debug)]
struct Feed {
    schema: SchemaRef,
    batches: Mutex<Vec<RecordBatch>>,
}

#[async_trait]
impl TableProvider for Feed {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batches = self
            .batches
            .lock()
            .map_err(|_| datafusion::error::DataFusionError::Internal("feed lock poisoned".into()))?
            .clone();
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

struct Group {
    rows: RowCounts,
    output: RowCounts,
}

pub struct Recompute {
    label: &'static str,
    /// Keys over the input rows, and over the output rows of the plan.
    input_keys: Vec<Arc<dyn PhysicalExpr>>,
    output_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// A global aggregate: one group that always has output.
    global: bool,
    started: bool,
    input_codec: RowCodec,
    key_codec: RowCodec,
    output_codec: RowCodec,
    feed: Arc<Feed>,
    plan: LogicalPlan,
    session: SessionState,
    schema: SchemaRef,
    groups: HashMap<Box<[u8]>, Group>,
    description: String,
}

/// Columns of `schema` as feed columns `c0, c1, ...` of the same types.
fn feed_for(schema: &DFSchema) -> Arc<Feed> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
        .collect();
    Arc::new(Feed {
        schema: Arc::new(Schema::new(fields)),
        batches: Mutex::new(Vec::new()),
    })
}

/// `expr` with every column of `input` renamed to its feed column.
fn onto_feed(expr: &Expr, input: &DFSchema) -> Result<Expr, StreamError> {
    Ok(expr
        .clone()
        .transform(|e| match e {
            Expr::Column(column) => {
                let index = input.index_of_column(&column)?;
                Ok(Transformed::yes(Expr::Column(Column::new(
                    Some(FEED),
                    format!("c{index}"),
                ))))
            }
            other => Ok(Transformed::no(other)),
        })
        .data()?)
}

fn feed_scan(feed: &Arc<Feed>) -> Result<LogicalPlan, StreamError> {
    Ok(LogicalPlanBuilder::scan(FEED, provider_as_source(feed.clone()), None)?.build()?)
}

impl Recompute {
    /// GROUP BY `group` computing `aggregates`, over rows of `input`;
    /// `input_keys` are the group expressions as physical expressions.
    pub fn aggregate(
        node: &Aggregate,
        input_keys: Vec<Arc<dyn PhysicalExpr>>,
        session: SessionState,
    ) -> Result<Self, StreamError> {
        let input = node.input.schema();
        let feed = feed_for(input);
        let group = node
            .group_expr
            .iter()
            .map(|e| onto_feed(e, input))
            .collect::<Result<Vec<_>, _>>()?;
        let aggregates = node
            .aggr_expr
            .iter()
            .map(|e| onto_feed(e, input))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(feed_scan(&feed)?),
            group,
            aggregates,
        )?);
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        let output_keys: Vec<Arc<dyn PhysicalExpr>> = (0..node.group_expr.len())
            .map(|i| {
                Arc::new(datafusion::physical_expr::expressions::Column::new(
                    schema.field(i).name(),
                    i,
                )) as Arc<dyn PhysicalExpr>
            })
            .collect();
        let description = format!(
            "HashAggregate: group by [{}], [{}]; state: input rows per group, output per group",
            node.group_expr
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            node.aggr_expr
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
        Self::try_new(
            "aggregate",
            input_keys,
            output_keys,
            node.group_expr.is_empty(),
            Arc::new(input.as_arrow().clone()),
            feed,
            plan,
            session,
            schema,
            description,
        )
    }

    /// Window functions over rows of `node.input`, recomputed per partition
    /// of `partition` (the PARTITION BY shared by every window expression,
    /// as physical expressions over the input; empty for one partition).
    pub fn window(
        node: &Window,
        partition: Vec<Arc<dyn PhysicalExpr>>,
        session: SessionState,
    ) -> Result<Self, StreamError> {
        let input = node.input.schema();
        let feed = feed_for(input);
        let exprs = node
            .window_expr
            .iter()
            .map(|e| onto_feed(e, input))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = LogicalPlan::Window(Window::try_new(exprs, Arc::new(feed_scan(&feed)?))?);
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        let description = format!(
            "Window: [{}]; partitions: [{}]; state: input rows and output per partition",
            node.window_expr
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            partition
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
        // The window's output starts with its input columns, so the
        // partition expressions read the same positions there.
        Self::try_new(
            "window",
            partition.clone(),
            partition,
            false,
            Arc::new(input.as_arrow().clone()),
            feed,
            plan,
            session,
            schema,
            description,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn try_new(
        label: &'static str,
        input_keys: Vec<Arc<dyn PhysicalExpr>>,
        output_keys: Vec<Arc<dyn PhysicalExpr>>,
        global: bool,
        input_schema: SchemaRef,
        feed: Arc<Feed>,
        plan: LogicalPlan,
        session: SessionState,
        schema: SchemaRef,
        description: String,
    ) -> Result<Self, StreamError> {
        let key_fields: Vec<Field> = input_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Ok(Field::new(
                    format!("k{i}"),
                    k.data_type(&input_schema)?,
                    true,
                ))
            })
            .collect::<Result<Vec<_>, StreamError>>()?;
        Ok(Recompute {
            label,
            input_keys,
            output_keys,
            global,
            started: false,
            input_codec: RowCodec::new(&input_schema)?,
            key_codec: RowCodec::new(&Arc::new(Schema::new(key_fields)))?,
            output_codec: RowCodec::new(&schema)?,
            feed,
            plan,
            session,
            schema: output_schema(&schema),
            groups: HashMap::new(),
            description,
        })
    }

    fn keys_of(
        &self,
        exprs: &[Arc<dyn PhysicalExpr>],
        batch: &RecordBatch,
        ctx: &mut StepContext,
    ) -> Result<Option<datafusion::arrow::row::Rows>, StreamError> {
        if exprs.is_empty() {
            // No key: every row belongs to the one group, keyed by no bytes.
            return Ok(None);
        }
        let columns = exprs
            .iter()
            .map(|e| evaluate(e.as_ref(), batch, ctx))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(self.key_codec.encode_columns(&columns)?))
    }

    /// Runs the plan over `rows` (the touched groups' input, expanded).
    fn run(&self, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, StreamError> {
        *self
            .feed
            .batches
            .lock()
            .map_err(|_| StreamError::Internal("feed lock poisoned".into()))? = rows;
        let result = EXECUTOR.block_on(async {
            let physical = self.session.create_physical_plan(&self.plan).await?;
            collect(physical, self.session.task_ctx()).await
        });
        self.feed
            .batches
            .lock()
            .map_err(|_| StreamError::Internal("feed lock poisoned".into()))?
            .clear();
        Ok(result?)
    }

    /// The plan's output in our schema's types.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, StreamError> {
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type())
                }
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(batch.num_rows())),
        )?)
    }
}

impl Operator for Recompute {
    fn step(&mut self, inputs: Vec<ZBatch>, ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        let delta = inputs
            .into_iter()
            .next()
            .ok_or_else(|| StreamError::Internal("a recompute needs an input".into()))?
            .consolidate()?;
        let mut touched: HashSet<Box<[u8]>> = HashSet::new();
        if !delta.is_empty() {
            let keys = self.keys_of(&self.input_keys.clone(), delta.rows(), ctx)?;
            let rows = self.input_codec.encode(delta.rows())?;
            for (i, w) in delta.weights().iter().enumerate() {
                let key: Box<[u8]> = match &keys {
                    None => Box::default(),
                    Some(keys) => keys.row(i).data().into(),
                };
                let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    rows: RowCounts::new(),
                    output: RowCounts::new(),
                });
                add_count(&mut group.rows, rows.row(i).data(), *w);
                touched.insert(key);
            }
        }
        if self.global && !self.started {
            touched.insert(Box::default());
            self.groups.entry(Box::default()).or_insert_with(|| Group {
                rows: RowCounts::new(),
                output: RowCounts::new(),
            });
        }
        self.started = true;
        if touched.is_empty() {
            return Ok(ZBatch::empty(self.schema.clone()));
        }
        // Feed the touched groups' rows, each repeated by its count.
        let mut fed: Vec<&[u8]> = Vec::new();
        for key in &touched {
            if let Some(group) = self.groups.get(key) {
                for (row, count) in &group.rows {
                    if *count < 0 {
                        return Err(StreamError::Internal(format!(
                            "the {} state holds a row {count} times",
                            self.label
                        )));
                    }
                    fed.extend(std::iter::repeat_n(&row[..], *count as usize));
                }
            }
        }
        let feed = if fed.is_empty() {
            Vec::new()
        } else {
            let batch = self.input_codec.decode(fed)?;
            let feed_schema = self.feed.schema.clone();
            vec![super::zset::rebatch(&feed_schema, &batch)?]
        };
        let produced = self.run(feed)?;
        let produced = match produced.first() {
            None => RecordBatch::new_empty(self.schema.clone()),
            Some(first) => {
                let conformed = produced
                    .iter()
                    .map(|b| self.conform(b))
                    .collect::<Result<Vec<_>, _>>()?;
                concat_batches(
                    &conformed
                        .first()
                        .map(|b| b.schema())
                        .unwrap_or_else(|| first.schema()),
                    &conformed,
                )?
            }
        };
        let mut new_outputs: HashMap<Box<[u8]>, RowCounts> = HashMap::new();
        if produced.num_rows() > 0 {
            let keys = self.keys_of(&self.output_keys.clone(), &produced, ctx)?;
            let rows = self.output_codec.encode(&produced)?;
            for i in 0..produced.num_rows() {
                let key: Box<[u8]> = match &keys {
                    None => Box::default(),
                    Some(keys) => keys.row(i).data().into(),
                };
                add_count(new_outputs.entry(key).or_default(), rows.row(i).data(), 1);
            }
        }
        let mut parts = Vec::with_capacity(touched.len());
        for key in touched {
            let new = new_outputs.remove(&key).unwrap_or_default();
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            parts.push(difference(&self.output_codec, &group.output, &new)?);
            group.output = new;
            if group.rows.is_empty() && group.output.is_empty() {
                self.groups.remove(&key);
            }
        }
        ZBatch::concat(&self.schema, &parts)?.consolidate()
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn state_bytes(&self) -> usize {
        footprint::hash_table::<Box<[u8]>, Group>(self.groups.capacity())
            + self
                .groups
                .iter()
                .map(|(key, group)| {
                    key.len()
                        + footprint::row_counts(&group.rows)
                        + footprint::row_counts(&group.output)
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use crate::stream::testing::Harness;

    type Row = (Option<i64>, Option<i64>, Option<&'static str>);

    fn exercise(sql: &str) {
        let rows: Vec<Row> = vec![
            (Some(1), Some(5), Some("a")),
            (Some(1), Some(3), Some("b")),
            (Some(1), Some(5), Some("a")),
            (Some(2), None, Some("c")),
            (None, Some(7), None),
            (Some(2), Some(-1), Some("d")),
        ];
        let mut h = Harness::new(sql);
        h.check();
        h.insert("t", &rows[..3]);
        h.check();
        h.insert("t", &rows[3..]);
        h.check();
        // Delete the current minimum and maximum, and one of two copies.
        h.delete("t", &[rows[1], rows[0]]);
        h.check();
        h.epoch(&[
            ("t", -1, &rows[3..4]),
            ("t", 1, &[(Some(2), Some(9), Some("e"))]),
        ]);
        h.check();
        // The last rows of every group go.
        h.delete(
            "t",
            &[rows[2], rows[4], rows[5], (Some(2), Some(9), Some("e"))],
        );
        h.check();
    }

    #[test]
    fn grouped_aggregates_survive_deleting_the_extremes() {
        exercise(
            "SELECT k, count(*) AS n, count(v), sum(v), min(v), max(s), avg(v) FROM t GROUP BY k",
        );
        exercise(
            "SELECT k % 2 AS p, bool_or(v > 4), string_agg(s, ',' ORDER BY s) FROM t GROUP BY k % 2",
        );
        exercise(
            "SELECT k, count(DISTINCT v), sum(DISTINCT v), count(*) FILTER (WHERE v > 0) FROM t GROUP BY k",
        );
        exercise("SELECT k, sum(v) FROM t GROUP BY k HAVING count(*) > 1");
    }

    /// An argument that fails for a row is NULL for that row (and counted),
    /// as in every other operator: `avg` then skips it.
    #[test]
    fn a_failing_argument_is_null_for_its_row() {
        let mut h = Harness::new(
            "SELECT k, avg(10 / v) AS a, string_agg(s, ',' ORDER BY 10 / v, s) AS l FROM t GROUP BY k",
        );
        assert!(
            h.explain().contains("input rows per group"),
            "{}",
            h.explain()
        );
        h.insert(
            "t",
            &[
                (Some(1), Some(5), Some("a")),
                (Some(1), Some(0), Some("b")),
                (Some(2), Some(2), Some("c")),
            ],
        );
        assert_eq!(
            h.output(),
            vec!["1 2.00000000000000000000 a,b", "2 5.00000000000000000000 c"]
        );
        assert!(h.errors() >= 1, "the failed row is counted");
        h.delete("t", &[(Some(1), Some(0), Some("b"))]);
        assert_eq!(
            h.output(),
            vec!["1 2.00000000000000000000 a", "2 5.00000000000000000000 c"]
        );
    }

    #[test]
    fn a_global_aggregate_always_has_its_row() {
        exercise("SELECT avg(v), bool_and(v > 0), count(DISTINCT s) FROM t");
        exercise("SELECT count(*) FILTER (WHERE v > 0) FROM t WHERE EXISTS (SELECT 1 FROM u)");
    }

    #[test]
    fn distinct_is_a_group_without_aggregates() {
        exercise("SELECT DISTINCT k, s FROM t");
        exercise("SELECT k FROM t UNION SELECT v FROM t");
    }

    #[test]
    fn window_functions_per_partition() {
        exercise("SELECT k, v, s, row_number() OVER (PARTITION BY k ORDER BY v, s) AS rn FROM t");
        exercise(
            "SELECT k, v, rank() OVER (PARTITION BY k ORDER BY v) AS r, sum(v) OVER (PARTITION BY k) FROM t",
        );
        exercise(
            "SELECT * FROM (SELECT k, v, s, row_number() OVER (PARTITION BY k ORDER BY v DESC, s) AS rn FROM t) x WHERE rn <= 1",
        );
        exercise("SELECT v, s, lag(v) OVER (ORDER BY v, s) FROM t");
    }
}
