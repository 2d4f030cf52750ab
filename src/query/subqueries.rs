//! Scalar subqueries in the plans DataFusion makes, mended where its
//! physical planning of them goes wrong.
//!
//! DataFusion 55 runs an uncorrelated scalar subquery once, before the
//! query, and reads its value from a shared slot. It types the value as the
//! subquery's column, so a subquery over a NOT NULL column is typed NOT
//! NULL, yet it yields NULL when it finds no row and the batch holding that
//! NULL is rejected ("declared as non-nullable but contains null values").
//! The value is passed through `NULLABLE`, whose result is nullable, and
//! the plans above are typed again.
//!
//! (A `VALUES` list is computed while the plan is built, before any
//! subquery runs: one with a subquery is rewritten on the AST, in
//! `sql::clauses`.)

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, Projection, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Subquery, Volatility,
};

/// The identity, typed nullable.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nullable {
    signature: Signature,
}

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        "nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let arg = &args.arg_fields[0];
        Ok(Arc::new(
            Field::new(self.name(), arg.data_type().clone(), true)
                .with_metadata(arg.metadata().clone()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

static NULLABLE: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::new_from_impl(Nullable {
        signature: Signature::any(1, Volatility::Immutable),
    }))
});

/// `plan` with every scalar subquery typed nullable, at any depth. A plan
/// without such a subquery (nearly every statement) is returned as it is,
/// without being typed again.
pub fn mend(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut needed = false;
    plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            expr.apply(|e| {
                if let Expr::ScalarSubquery(subquery) = e
                    && !subquery.subquery.schema().field(0).is_nullable()
                {
                    needed = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if needed {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if !needed {
        return Ok(plan);
    }
    Ok(plan
        .transform_up_with_subqueries(|node| {
            let node = node.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::ScalarSubquery(subquery) => nullable(subquery),
                    other => Ok(Transformed::no(other)),
                })
            })?;
            // A child's fields may have become nullable: type this node
            // again from its inputs.
            Ok(Transformed::yes(node.data.recompute_schema()?))
        })?
        .data)
}

fn nullable(subquery: Subquery) -> Result<Transformed<Expr>> {
    let schema = subquery.subquery.schema();
    if schema.fields().len() != 1 || schema.field(0).is_nullable() {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }
    let (qualifier, field) = schema.qualified_field(0);
    let column = Expr::Column(datafusion::common::Column::new(
        qualifier.cloned(),
        field.name(),
    ));
    let value = Expr::ScalarFunction(ScalarFunction::new_udf(NULLABLE.clone(), vec![column]))
        .alias(field.name());
    let projection = Projection::try_new(vec![value], subquery.subquery.clone())?;
    Ok(Transformed::yes(Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(LogicalPlan::Projection(projection)),
        ..subquery
    })))
}
