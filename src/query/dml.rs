//! Turns DataFusion's plan of an INSERT, UPDATE, DELETE or TRUNCATE into the
//! query whose answer says what to change.
//!
//! DataFusion plans DML fully (name resolution, subqueries in WHERE, casts to
//! the column types, DEFAULTs, `$n` parameter types) but leaves writing to the
//! table. We take its input plan and run it as a query:
//!
//! ```text
//! INSERT   input                          -> rows to add (table schema)
//! DELETE   Filter(Scan t)                 -> Project[rowid](Filter(Scan t+rowid))
//! UPDATE   Project[new..](Filter(Scan t)) -> Project[new.., rowid](Filter(Scan t+rowid))
//! ```
//!
//! The scan of the target table is swapped for one that shows the hidden row
//! id, so the answer names exactly the rows to remove.

use std::sync::Arc;

use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, LogicalPlan, LogicalPlanBuilder, Projection, TableScanBuilder, WriteOp,
};

use super::provider::StoredTable;
use crate::state::ROWID_COLUMN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmlKind {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl DmlKind {
    /// The command tag PostgreSQL sends back.
    pub fn tag(&self) -> &'static str {
        match self {
            DmlKind::Insert => "INSERT",
            DmlKind::Update => "UPDATE",
            DmlKind::Delete => "DELETE",
            DmlKind::Truncate => "TRUNCATE TABLE",
        }
    }
}

/// What a DML statement writes, as a plan still to be run.
pub struct DmlPlan {
    pub kind: DmlKind,
    pub table: TableReference,
    pub target: Arc<StoredTable>,
    /// INSERT: the new rows. UPDATE: the new rows with their row id last.
    /// DELETE and TRUNCATE: the row ids to remove.
    pub input: LogicalPlan,
}

pub fn prepare(dml: &DmlStatement, with_old_rows: bool) -> Result<DmlPlan> {
    let provider = source_as_provider(&dml.target)?;
    let target = provider.downcast_ref::<StoredTable>().ok_or_else(|| {
        DataFusionError::Plan(format!("\"{}\" cannot be written to", dml.table_name))
    })?;
    let target = Arc::new(target.with_rowid());
    let kind = match &dml.op {
        WriteOp::Insert(InsertOp::Append) => DmlKind::Insert,
        WriteOp::Insert(op) => {
            return Err(DataFusionError::NotImplemented(format!(
                "INSERT {op} is not supported"
            )));
        }
        WriteOp::Update => DmlKind::Update,
        WriteOp::Delete => DmlKind::Delete,
        WriteOp::Truncate => DmlKind::Truncate,
        other => {
            return Err(DataFusionError::NotImplemented(format!(
                "{other} is not supported"
            )));
        }
    };
    let input = match kind {
        DmlKind::Insert => relax_values_nullability(dml.input.as_ref().clone())?,
        DmlKind::Update => {
            let LogicalPlan::Projection(projection) = dml.input.as_ref() else {
                return Err(DataFusionError::Internal(
                    "UPDATE plan does not end in a projection".into(),
                ));
            };
            let input = swap_target_scan(&projection.input, &dml.table_name, &target)?;
            let mut exprs = projection.expr.clone();
            exprs.push(rowid_column(&input)?);
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?)
        }
        DmlKind::Delete => {
            let input = swap_target_scan(&dml.input, &dml.table_name, &target)?;
            let rowid = rowid_column(&input)?;
            // A DELETE ... RETURNING needs the old rows: every column, then
            // the row id (last, as an UPDATE's).
            let mut exprs: Vec<Expr> = if with_old_rows {
                input
                    .schema()
                    .columns()
                    .into_iter()
                    .filter(|c| Expr::Column(c.clone()) != rowid)
                    .map(Expr::Column)
                    .collect()
            } else {
                Vec::new()
            };
            exprs.push(rowid);
            LogicalPlanBuilder::from(input).project(exprs)?.build()?
        }
        DmlKind::Truncate => {
            let scan = LogicalPlanBuilder::scan(
                dml.table_name.clone(),
                provider_as_source(target.clone()),
                None,
            )?
            .build()?;
            let rowid = rowid_column(&scan)?;
            LogicalPlanBuilder::from(scan)
                .project(vec![rowid])?
                .build()?
        }
    };
    Ok(DmlPlan {
        kind,
        table: dml.table_name.clone(),
        target,
        input,
    })
}

/// Replaces the scan of the target table (the leftmost leaf: DataFusion puts
/// the target first, before any UPDATE ... FROM tables) and recomputes the
/// schemas above it.
fn swap_target_scan(
    plan: &LogicalPlan,
    table: &TableReference,
    target: &Arc<StoredTable>,
) -> Result<LogicalPlan> {
    if let LogicalPlan::TableScan(scan) = plan
        && &scan.table_name == table
    {
        return Ok(LogicalPlan::TableScan(
            TableScanBuilder::new(scan.table_name.clone(), provider_as_source(target.clone()))
                .with_filters(scan.filters.clone())
                .with_fetch(scan.fetch)
                .build()?,
        ));
    }
    let mut inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
    let Some(first) = inputs.first_mut() else {
        return Err(DataFusionError::Internal(format!(
            "no scan of {table} in the DML plan"
        )));
    };
    *first = swap_target_scan(first, table, target)?;
    plan.with_new_exprs(plan.expressions(), inputs)
}

/// DataFusion types `INSERT ... VALUES` rows with the table's schema,
/// nullability included, so a NULL for a NOT NULL column fails inside the
/// VALUES with its positional name ("column2"). With the VALUES nullable, the
/// check is left to the write path, which names the table column as
/// PostgreSQL does.
fn relax_values_nullability(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::Values(mut values) => {
            let fields = values
                .schema
                .iter()
                .map(|(qualifier, field)| {
                    (
                        qualifier.cloned(),
                        Arc::new(field.as_ref().clone().with_nullable(true)),
                    )
                })
                .collect();
            values.schema = Arc::new(DFSchema::new_with_metadata(
                fields,
                values.schema.metadata().clone(),
            )?);
            Ok(Transformed::yes(LogicalPlan::Values(values)))
        }
        other => Ok(Transformed::yes(other.recompute_schema()?)),
    })
    .data()
}

fn rowid_column(plan: &LogicalPlan) -> Result<Expr> {
    let (qualifier, field) = plan
        .schema()
        .qualified_field_with_unqualified_name(ROWID_COLUMN)?;
    Ok(Expr::Column(Column::from((qualifier, field))))
}
