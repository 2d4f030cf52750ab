//! Integer `+`, `-` and `*` that fail on overflow (22003), as PostgreSQL's
//! do. DataFusion's wrap around, so `UPDATE t SET n = n + 1` at the largest
//! bigint would store the smallest one, durably.
//!
//! DataFusion's physical binary operator has a checked mode that its SQL
//! planning never sets; this physical optimizer rule sets it on every
//! operator of the expressions a query computes rows with: projections
//! (the select list, an UPDATE's new values) and filters. A view keeps the
//! same rule through `checked` (`plan::Planner::physical`). The rewrite is
//! physical on purpose: the logical alternative, a function call per
//! operator, makes DataFusion rebuild the names of nested calls at every
//! level, cubic in a long chain of `+`.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// `expr` with every `+`, `-` and `*` in checked mode (the others cannot
/// overflow, or check already).
pub fn checked(expr: Arc<dyn PhysicalExpr>) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|e| {
        Ok(match e.downcast_ref::<BinaryExpr>() {
            Some(binary)
                if matches!(
                    binary.op(),
                    Operator::Plus | Operator::Minus | Operator::Multiply
                ) =>
            {
                Transformed::yes(Arc::new(
                    BinaryExpr::new(binary.left().clone(), *binary.op(), binary.right().clone())
                        .with_fail_on_overflow(true),
                ) as Arc<dyn PhysicalExpr>)
            }
            _ => Transformed::no(e),
        })
    })
}

#[derive(Debug)]
pub struct CheckedArithmetic;

impl PhysicalOptimizerRule for CheckedArithmetic {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(plan
            .transform_up(|node| {
                if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
                    let mut changed = false;
                    let mut exprs = Vec::with_capacity(projection.expr().len());
                    for item in projection.expr() {
                        let expr = checked(item.expr.clone())?;
                        changed |= expr.transformed;
                        exprs.push(ProjectionExpr::new(expr.data, item.alias.clone()));
                    }
                    if !changed {
                        return Ok(Transformed::no(node));
                    }
                    let rebuilt = ProjectionExec::try_new_with_schema_metadata(
                        exprs,
                        projection.input().clone(),
                        &projection.schema(),
                    )?;
                    return Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>));
                }
                if let Some(filter) = node.downcast_ref::<FilterExec>() {
                    let predicate = checked(filter.predicate().clone())?;
                    if !predicate.transformed {
                        return Ok(Transformed::no(node));
                    }
                    let rebuilt = FilterExecBuilder::from(filter)
                        .with_predicate(predicate.data)
                        .build()?;
                    return Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>));
                }
                Ok(Transformed::no(node))
            })?
            .data)
    }

    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
