//! From DataFusion's optimized logical plan to a dataflow of incremental
//! operators (`stream::Node`), node by node.
//!
//! | plan node | operator |
//! |---|---|
//! | TableScan of a table or MV | `Source`: that relation's delta |
//! | Filter, Projection | `Map` (stateless) |
//! | Aggregate of count/sum/min/max | `HashAggregate` (running totals) |
//! | other Aggregate, Distinct | `Recompute` per touched group |
//! | Window | `Recompute` per touched partition |
//! | Join (inner, outer, semi, anti) | `JoinOperator` |
//! | Union | `Union` |
//! | Sort with a fetch, Limit over Sort | `TopN` |
//! | Sort without a fetch | nothing: an MV has no order |
//! | Values, EmptyRelation | `Constant` |
//! | SubqueryAlias | nothing: names only |
//!
//! Anything else is refused with `Error::NotIncremental` (0A000) naming the
//! construct, as are functions whose value changes without any input
//! changing (now(), random()): never a silently wrong view.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, JoinType};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{
    Aggregate, Distinct, Expr, FetchType, LogicalPlan, SkipType, SortExpr, Volatility,
};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::collect;

use crate::catalog::Relation;
use crate::error::{Error, Result};
use crate::query::{MvTable, StoredTable};
use crate::stream::{
    AggregateCall, AggregateKind, Constant, HashAggregate, JoinOperator, JoinSpec, Map, Node,
    Recompute, Source, TopN, Union,
};

/// A dataflow ready to run, with what it reads.
pub struct StreamPlan {
    pub root: Node,
    pub inputs: Vec<Relation>,
    pub schema: SchemaRef,
    /// Output columns that are unique in every row (the GROUP BY columns,
    /// or a key the view carries), from DataFusion's functional
    /// dependencies: what a point-lookup index is built on.
    pub key: Option<Vec<usize>>,
}

/// Plans `plan` (a query's logical plan, not yet optimized) as a dataflow.
/// `multiset_set_ops`: the query has INTERSECT ALL or EXCEPT ALL, which
/// DataFusion plans as semi/anti joins on all columns with NULLs equal;
/// those joins then count copies (see `JoinSpec::multiset`). The caller
/// makes sure no other construct of the query plans the same way.
pub async fn build(
    plan: &LogicalPlan,
    session: &SessionState,
    multiset_set_ops: bool,
) -> Result<StreamPlan> {
    // Before the optimizer: it folds now() into a constant.
    check_functions(plan)?;
    let optimized = session.optimize(plan)?;
    // The dataflow's own session: one partition, and no catalog. The
    // operators keep it for as long as the view lives; with the catalog it
    // would hold the MV providers, and through them the runtime's channel,
    // which would then never close. Nor the queries' memory pool: an epoch
    // must not fail halfway because ad hoc queries hold the budget (MV
    // state is accounted in freshet_catalog.mv_state instead).
    let config = session.config().clone().with_target_partitions(1);
    let session = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let mut planner = Planner {
        session,
        inputs: Vec::new(),
        multiset_set_ops,
    };
    let root = planner.node(&optimized).await?;
    let key = optimized
        .schema()
        .functional_dependencies()
        .iter()
        .find(|d| d.mode == datafusion::common::Dependency::Single && !d.source_indices.is_empty())
        .map(|d| d.source_indices.clone())
        .or_else(|| carried_key(&optimized));
    Ok(StreamPlan {
        root,
        inputs: planner.inputs,
        schema: Arc::new(optimized.schema().as_arrow().clone()),
        key,
    })
}

/// Output columns that carry a unique key of the one table or view the
/// plan reads through filters, projections, renames and orderings: a
/// table's primary key, another view's key. (DataFusion's functional
/// dependencies find GROUP BY keys; tables do not declare their keys to it,
/// see `StoredTable::primary_key`.)
fn carried_key(plan: &LogicalPlan) -> Option<Vec<usize>> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let key: Vec<usize> = if let Some(table) = provider.downcast_ref::<StoredTable>() {
                table.primary_key().to_vec()
            } else {
                provider.downcast_ref::<MvTable>()?.key()?.to_vec()
            };
            if key.is_empty() {
                return None;
            }
            match &scan.projection {
                None => Some(key),
                Some(projection) => key
                    .iter()
                    .map(|k| projection.iter().position(|p| p == k))
                    .collect(),
            }
        }
        LogicalPlan::Projection(projection) => {
            let input = projection.input.schema();
            carried_key(&projection.input)?
                .into_iter()
                .map(|k| {
                    projection.expr.iter().position(|e| {
                        let column = match e {
                            Expr::Column(c) => c,
                            Expr::Alias(alias) => match alias.expr.as_ref() {
                                Expr::Column(c) => c,
                                _ => return false,
                            },
                            _ => return false,
                        };
                        input.index_of_column(column).ok() == Some(k)
                    })
                })
                .collect()
        }
        LogicalPlan::Filter(filter) => carried_key(&filter.input),
        LogicalPlan::SubqueryAlias(alias) => carried_key(&alias.input),
        LogicalPlan::Sort(sort) => carried_key(&sort.input),
        LogicalPlan::Limit(limit) => carried_key(&limit.input),
        _ => None,
    }
}

struct Planner {
    session: SessionState,
    inputs: Vec<Relation>,
    multiset_set_ops: bool,
}

fn refuse(what: impl std::fmt::Display) -> Error {
    Error::NotIncremental(format!(
        "{what} cannot be maintained incrementally in a materialized view"
    ))
}

impl Planner {
    /// Integer `+`, `-` and `*` are checked: PostgreSQL raises "bigint out
    /// of range" where DataFusion wraps, and an MV turns that error into a
    /// NULL and a counted row error, never a wrapped number.
    fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        check_expr(expr)?;
        let physical = self.session.create_physical_expr(expr.clone(), schema)?;
        Ok(crate::query::checked_arithmetic::checked(physical)?.data)
    }

    fn sort_exprs(&self, exprs: &[SortExpr], schema: &DFSchema) -> Result<Vec<PhysicalSortExpr>> {
        exprs
            .iter()
            .map(|s| {
                Ok(PhysicalSortExpr::new(
                    self.physical(&s.expr, schema)?,
                    SortOptions::new(!s.asc, s.nulls_first),
                ))
            })
            .collect()
    }

    fn node<'a>(
        &'a mut self,
        plan: &'a LogicalPlan,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Node>> + Send + 'a>> {
        Box::pin(async move { self.node_inner(plan).await })
    }

    async fn node_inner(&mut self, plan: &LogicalPlan) -> Result<Node> {
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(refuse("a LIMIT without ORDER BY"));
                }
                let provider = source_as_provider(&scan.source)?;
                let relation = if let Some(table) = provider.downcast_ref::<StoredTable>() {
                    Relation::Table(table.id())
                } else if let Some(mv) = provider.downcast_ref::<MvTable>() {
                    Relation::Mv(mv.id())
                } else {
                    return Err(refuse(format!("reading \"{}\"", scan.table_name)));
                };
                if !self.inputs.contains(&relation) {
                    self.inputs.push(relation);
                }
                let source = Node::new(
                    Source::new(relation, scan.projection.clone(), schema.clone()),
                    vec![],
                );
                if scan.filters.is_empty() {
                    return Ok(source);
                }
                let predicate = scan
                    .filters
                    .iter()
                    .cloned()
                    .reduce(|a, b| a.and(b))
                    .ok_or_else(|| Error::Internal("no filters".into()))?;
                let predicate = self.physical(&predicate, plan.schema())?;
                Ok(Node::new(Map::filter(predicate, schema), vec![source]))
            }
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) if has_scalar_subquery(plan) => {
                let lifted = lift_scalar_subqueries(plan)?;
                self.node(&lifted).await
            }
            LogicalPlan::Projection(projection) => {
                let input = self.node(&projection.input).await?;
                let exprs = projection
                    .expr
                    .iter()
                    .map(|e| self.physical(e, projection.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Node::new(Map::project(exprs, schema), vec![input]))
            }
            LogicalPlan::Filter(filter) => {
                let input = self.node(&filter.input).await?;
                let predicate = self.physical(&filter.predicate, filter.input.schema())?;
                Ok(Node::new(Map::filter(predicate, schema), vec![input]))
            }
            LogicalPlan::SubqueryAlias(alias) => self.node(&alias.input).await,
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate).await,
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let group = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                let aggregate = Aggregate::try_new(input.clone(), group, vec![])?;
                self.aggregate(&aggregate).await
            }
            LogicalPlan::Distinct(Distinct::On(_)) => Err(refuse("DISTINCT ON")),
            LogicalPlan::Window(window) => {
                for expr in &window.window_expr {
                    check_expr(expr)?;
                }
                let input = self.node(&window.input).await?;
                let partition = shared_partition(&window.window_expr);
                let partition = partition
                    .iter()
                    .map(|e| self.physical(e, window.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                let op = Recompute::window(window, partition, self.session.clone())?;
                Ok(Node::new(op, vec![input]))
            }
            LogicalPlan::Join(join) => {
                if join.null_aware
                    && (join.join_type != JoinType::LeftAnti || join.filter.is_some())
                {
                    return Err(refuse("this NOT IN (subquery)"));
                }
                if matches!(join.join_type, JoinType::LeftMark | JoinType::RightMark) {
                    return Err(refuse("a subquery inside OR or the select list"));
                }
                let left = self.node(&join.left).await?;
                let right = self.node(&join.right).await?;
                let left_keys = join
                    .on
                    .iter()
                    .map(|(l, _)| self.physical(l, join.left.schema()))
                    .collect::<Result<Vec<_>>>()?;
                let right_keys = join
                    .on
                    .iter()
                    .map(|(_, r)| self.physical(r, join.right.schema()))
                    .collect::<Result<Vec<_>>>()?;
                let both = join.left.schema().join(join.right.schema())?;
                let filter = join
                    .filter
                    .as_ref()
                    .map(|f| self.physical(f, &both))
                    .transpose()?;
                let spec = JoinSpec {
                    join_type: join.join_type,
                    left_keys,
                    right_keys,
                    filter,
                    nulls_equal: join.null_equality
                        == datafusion::common::NullEquality::NullEqualsNull,
                    null_aware: join.null_aware,
                    multiset: self.multiset_set_ops && is_set_operation(join),
                    left_schema: Arc::new(join.left.schema().as_arrow().clone()),
                    right_schema: Arc::new(join.right.schema().as_arrow().clone()),
                    schema,
                };
                Ok(Node::new(JoinOperator::try_new(spec)?, vec![left, right]))
            }
            LogicalPlan::Union(union) => {
                let mut inputs = Vec::with_capacity(union.inputs.len());
                for input in &union.inputs {
                    inputs.push(self.node(input).await?);
                }
                Ok(Node::new(Union::new(schema), inputs))
            }
            LogicalPlan::Sort(sort) => match sort.fetch {
                None => self.node(&sort.input).await,
                Some(fetch) => {
                    let input = self.node(&sort.input).await?;
                    let order = self.sort_exprs(&sort.expr, sort.input.schema())?;
                    Ok(Node::new(
                        TopN::try_new(order, 0, Some(fetch), schema)?,
                        vec![input],
                    ))
                }
            },
            LogicalPlan::Limit(limit) => {
                let skip = match limit.get_skip_type()? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => return Err(refuse("a computed OFFSET")),
                };
                let fetch = match limit.get_fetch_type()? {
                    FetchType::Literal(n) => n,
                    FetchType::UnsupportedExpr => return Err(refuse("a computed LIMIT")),
                };
                let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
                    return Err(refuse("a LIMIT without ORDER BY"));
                };
                let input = self.node(&sort.input).await?;
                let order = self.sort_exprs(&sort.expr, sort.input.schema())?;
                Ok(Node::new(
                    TopN::try_new(order, skip, fetch, schema)?,
                    vec![input],
                ))
            }
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
                let physical = self.session.create_physical_plan(plan).await?;
                let batches = collect(physical, self.session.task_ctx()).await?;
                let rows = match batches.first() {
                    None => datafusion::arrow::record_batch::RecordBatch::new_empty(schema),
                    Some(first) => {
                        datafusion::arrow::compute::concat_batches(&first.schema(), &batches)?
                    }
                };
                Ok(Node::new(Constant::new(rows), vec![]))
            }
            other => Err(refuse(format!("the plan node {}", node_name(other)))),
        }
    }

    async fn aggregate(&mut self, aggregate: &Aggregate) -> Result<Node> {
        for expr in aggregate.group_expr.iter().chain(&aggregate.aggr_expr) {
            if matches!(expr, Expr::GroupingSet(_)) {
                return Err(refuse("GROUPING SETS, ROLLUP or CUBE"));
            }
            check_expr(expr)?;
        }
        let keys = aggregate
            .group_expr
            .iter()
            .map(|e| self.physical(e, aggregate.input.schema()))
            .collect::<Result<Vec<_>>>()?;
        if let Some(calls) = self.linear_calls(aggregate)? {
            let description = format!(
                "HashAggregate: group by [{}], [{}]; running totals: per group the row count, counts and sums, min/max value multisets",
                aggregate
                    .group_expr
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                aggregate
                    .aggr_expr
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            let input_schema: SchemaRef = Arc::new(aggregate.input.schema().as_arrow().clone());
            let schema: SchemaRef = Arc::new(aggregate.schema.as_arrow().clone());
            if let Some(op) =
                HashAggregate::try_new(keys.clone(), calls, &input_schema, schema, description)?
            {
                let input = self.node(&aggregate.input).await?;
                return Ok(Node::new(op, vec![input]));
            }
        }
        // Recomputed: over the arguments' projection when it has one, so
        // the input is planned once, below whichever aggregate runs.
        let projected = with_arguments_projected(aggregate)?;
        let aggregate = projected.as_ref().unwrap_or(aggregate);
        let input = self.node(&aggregate.input).await?;
        let keys = if projected.is_some() {
            aggregate
                .group_expr
                .iter()
                .map(|e| self.physical(e, aggregate.input.schema()))
                .collect::<Result<Vec<_>>>()?
        } else {
            keys
        };
        let op = Recompute::aggregate(aggregate, keys, self.session.clone())?;
        Ok(Node::new(op, vec![input]))
    }
}

/// The aggregate function call under an aggregate expression's aliases.
fn aggregate_function(expr: &Expr) -> Option<&datafusion::logical_expr::expr::AggregateFunction> {
    let mut inner = expr;
    while let Expr::Alias(alias) = inner {
        inner = &alias.expr;
    }
    match inner {
        Expr::AggregateFunction(function) => Some(function),
        _ => None,
    }
}

/// `aggregate` with its aggregate functions' computed arguments (and FILTER
/// and ORDER BY expressions) evaluated by a projection below it, each under
/// an alias; `None` when every argument is a column or a constant. The
/// projection is a `Map`, where an expression that fails for a row gives
/// NULL and is counted; inside `Recompute`, DataFusion's evaluation of
/// `avg(10 / v)` would fail the whole view at the first `v = 0`.
fn with_arguments_projected(aggregate: &Aggregate) -> Result<Option<Aggregate>> {
    let mut computed: Vec<Expr> = Vec::new();
    let mut note = |e: &Expr| {
        if !matches!(e, Expr::Column(_) | Expr::Literal(..)) && !computed.contains(e) {
            computed.push(e.clone());
        }
    };
    for expr in &aggregate.aggr_expr {
        let Some(function) = aggregate_function(expr) else {
            return Ok(None);
        };
        function.params.args.iter().for_each(&mut note);
        function.params.filter.iter().for_each(|f| note(f));
        function.params.order_by.iter().for_each(|o| note(&o.expr));
    }
    if computed.is_empty() {
        return Ok(None);
    }
    let name = |i: usize| format!("__freshet_argument_{i}");
    let input = aggregate.input.schema();
    let projection: Vec<Expr> = input
        .columns()
        .into_iter()
        .map(Expr::Column)
        .chain(
            computed
                .iter()
                .enumerate()
                .map(|(i, e)| e.clone().alias(name(i))),
        )
        .collect();
    let projected =
        datafusion::logical_expr::LogicalPlanBuilder::from(aggregate.input.as_ref().clone())
            .project(projection)?
            .build()?;
    let group = aggregate.group_expr.len();
    let aggr_expr = aggregate
        .aggr_expr
        .iter()
        .enumerate()
        .map(|(i, expr)| {
            let replaced = expr
                .clone()
                .transform_down(|e| {
                    Ok(match computed.iter().position(|c| *c == e) {
                        Some(at) => Transformed::new(
                            Expr::Column(datafusion::common::Column::from_name(name(at))),
                            true,
                            TreeNodeRecursion::Jump,
                        ),
                        None => Transformed::no(e),
                    })
                })?
                .data;
            let original = aggregate.schema.field(group + i).name();
            Ok(match replaced {
                Expr::Alias(alias) => alias.expr.alias(original),
                other => other.alias(original),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rewritten =
        Aggregate::try_new(Arc::new(projected), aggregate.group_expr.clone(), aggr_expr)?;
    // The plan above reads the aggregate's columns by name.
    let same = rewritten.schema.fields().len() == aggregate.schema.fields().len()
        && rewritten
            .schema
            .iter()
            .zip(aggregate.schema.iter())
            .all(|((_, a), (_, b))| a.name() == b.name() && a.data_type() == b.data_type());
    Ok(same.then_some(rewritten))
}

/// The shape DataFusion gives INTERSECT and EXCEPT: a semi or anti join of
/// every left column with the right column at the same position, NULLs
/// equal, no other condition.
fn is_set_operation(join: &datafusion::logical_expr::Join) -> bool {
    let left = join.left.schema();
    let right = join.right.schema();
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == datafusion::common::NullEquality::NullEqualsNull
        && join.filter.is_none()
        && join.on.len() == left.fields().len()
        && join.on.len() == right.fields().len()
        && join.on.iter().enumerate().all(|(i, (l, r))| {
            matches!((l, r), (Expr::Column(a), Expr::Column(b))
                if left.index_of_column(a).ok() == Some(i) && right.index_of_column(b).ok() == Some(i))
        })
}

fn has_scalar_subquery(plan: &LogicalPlan) -> bool {
    plan.expressions().iter().any(|e| {
        e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_))))
            .unwrap_or(false)
    })
}

/// Whether a plan returns at most one row, whatever its input holds.
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Limit(limit) => {
            matches!(limit.get_fetch_type(), Ok(FetchType::Literal(Some(n))) if n <= 1)
                || at_most_one_row(&limit.input)
        }
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::SubqueryAlias(a) => at_most_one_row(&a.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::Sort(s) => s.fetch.is_some_and(|n| n <= 1) || at_most_one_row(&s.input),
        _ => false,
    }
}

/// A Filter or Projection with uncorrelated scalar subqueries, rewritten
/// so that each subquery is a LEFT join of the input with the subquery's
/// (at most one) row, and the subquery's value a column of it: a join the
/// engine maintains, with NULL when the subquery has no row, as SQL says.
/// A subquery that may return several rows is refused (PostgreSQL would
/// fail at run time; a view cannot).
fn lift_scalar_subqueries(plan: &LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::Column;
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::LogicalPlanBuilder;
    let input = plan
        .inputs()
        .first()
        .map(|i| (*i).clone())
        .ok_or_else(|| Error::Internal("a filter without input".into()))?;
    let mut joined = input.clone();
    let mut count = 0;
    let mut exprs = Vec::new();
    for expr in plan.expressions() {
        let rewritten = expr.transform(|e| match e {
            Expr::ScalarSubquery(subquery) => {
                if !subquery.outer_ref_columns.is_empty() {
                    return Err(datafusion::error::DataFusionError::NotImplemented(
                        "a correlated scalar subquery cannot be maintained incrementally in a materialized view".into(),
                    ));
                }
                if !at_most_one_row(&subquery.subquery) {
                    return Err(datafusion::error::DataFusionError::NotImplemented(
                        "a scalar subquery that may return more than one row cannot be maintained in a materialized view".into(),
                    ));
                }
                let alias = format!("__freshet_subquery_{count}");
                count += 1;
                let right = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
                    .alias(alias.as_str())?
                    .build()?;
                let name = right.schema().field(0).name().clone();
                joined = LogicalPlanBuilder::from(joined.clone())
                    .join_on(right, JoinType::Left, vec![datafusion::logical_expr::lit(true)])?
                    .build()?;
                Ok(Transformed::yes(Expr::Column(Column::new(Some(alias), name))))
            }
            other => Ok(Transformed::no(other)),
        })?;
        exprs.push(rewritten.data);
    }
    let original_columns: Vec<Expr> = input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(match plan {
        LogicalPlan::Filter(_) => {
            let predicate = exprs
                .pop()
                .ok_or_else(|| Error::Internal("a filter without predicate".into()))?;
            LogicalPlanBuilder::from(joined)
                .filter(predicate)?
                .project(original_columns)?
                .build()?
        }
        _ => {
            let named: Vec<Expr> = exprs
                .into_iter()
                .zip(plan.schema().iter())
                .map(|(e, (qualifier, field))| e.alias_qualified(qualifier.cloned(), field.name()))
                .collect();
            LogicalPlanBuilder::from(joined).project(named)?.build()?
        }
    })
}

impl Planner {
    /// The aggregates as running-total calls, if every one is a plain
    /// count, sum, min or max of one argument.
    fn linear_calls(&self, aggregate: &Aggregate) -> Result<Option<Vec<AggregateCall>>> {
        let mut calls = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in &aggregate.aggr_expr {
            let Some(function) = aggregate_function(expr) else {
                return Ok(None);
            };
            let params = &function.params;
            if params.distinct
                || params.filter.is_some()
                || !params.order_by.is_empty()
                || params.args.len() != 1
            {
                return Ok(None);
            }
            let kind = match function.func.name() {
                "count" => AggregateKind::Count,
                "sum" => AggregateKind::Sum,
                "min" => AggregateKind::Min,
                "max" => AggregateKind::Max,
                _ => return Ok(None),
            };
            calls.push(AggregateCall {
                kind,
                arg: self.physical(&params.args[0], aggregate.input.schema())?,
            });
        }
        Ok(Some(calls))
    }
}

/// The PARTITION BY expressions every window expression shares (in the
/// first one's order): each partition is then recomputed on its own.
fn shared_partition(window_exprs: &[Expr]) -> Vec<Expr> {
    let partitions: Vec<Vec<Expr>> = window_exprs
        .iter()
        .map(|e| {
            let mut inner = e;
            while let Expr::Alias(alias) = inner {
                inner = &alias.expr;
            }
            match inner {
                Expr::WindowFunction(window) => window.params.partition_by.clone(),
                _ => Vec::new(),
            }
        })
        .collect();
    let Some(first) = partitions.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|e| partitions.iter().all(|p| p.contains(e)))
        .cloned()
        .collect()
}

/// Refuses functions whose value changes without the input changing, in
/// every node of the plan and of its subqueries.
fn check_functions(plan: &LogicalPlan) -> Result<()> {
    let mut problem: Option<Error> = None;
    plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    problem = Some(refuse(format!("the function {}()", f.func.name())));
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    match problem {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Refuses expressions whose value can change without the input changing,
/// and subqueries the optimizer could not turn into joins.
fn check_expr(expr: &Expr) -> Result<()> {
    let mut problem: Option<Error> = None;
    expr.apply(|e| {
        let found = match e {
            Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable => {
                Some(refuse(format!("the function {}()", f.func.name())))
            }
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                Some(refuse("this subquery"))
            }
            Expr::OuterReferenceColumn(..) => Some(refuse("this correlated subquery")),
            Expr::Placeholder(_) => Some(Error::InvalidParameter(
                "a materialized view cannot have parameters".into(),
            )),
            _ => None,
        };
        Ok(match found {
            Some(error) => {
                problem = Some(error);
                TreeNodeRecursion::Stop
            }
            None => TreeNodeRecursion::Continue,
        })
    })?;
    match problem {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn node_name(plan: &LogicalPlan) -> String {
    let display = plan.display().to_string();
    display
        .split([':', ' '])
        .next()
        .unwrap_or("unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::RwLock;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::catalog::TableId;
    use crate::state::TableData;

    /// The index key of a view over `t(id PRIMARY KEY, a, s)`.
    async fn key_of(sql: &str) -> Option<Vec<usize>> {
        let ctx = crate::query::new_context(None).unwrap();
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let data = TableData::try_new(&schema, &[]).unwrap();
        let table = StoredTable::new(
            TableId(1),
            schema,
            Arc::new(RwLock::new(data)),
            HashMap::new(),
            &[0],
        );
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        build(&plan, &ctx.state(), false).await.unwrap().key
    }

    #[tokio::test]
    async fn a_view_is_keyed_by_the_primary_key_it_carries() {
        assert_eq!(
            key_of("SELECT id, a FROM t WHERE a > 1").await,
            Some(vec![0])
        );
        assert_eq!(key_of("SELECT a, id AS ident FROM t").await, Some(vec![1]));
        assert_eq!(
            key_of("SELECT s, id FROM (SELECT * FROM t WHERE s <> 'x') AS x").await,
            Some(vec![1])
        );
        assert_eq!(
            key_of("SELECT a, count(*) AS n FROM t GROUP BY a").await,
            Some(vec![0])
        );
        assert_eq!(key_of("SELECT a FROM t").await, None);
        assert_eq!(key_of("SELECT id + 1 AS x FROM t").await, None);
        assert_eq!(
            key_of("SELECT t.id FROM t JOIN t AS u ON u.a = t.a").await,
            None
        );
    }
}
