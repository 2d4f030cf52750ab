//! `INSERT ... ON CONFLICT DO NOTHING | DO UPDATE`: PostgreSQL's upsert.
//!
//! The proposed rows are computed as for a plain INSERT (defaults filled,
//! types cast), under the table's writer lock. Each row's primary key is
//! then looked up (`TableData::match_keys`): a new key is inserted; a key a
//! live row holds is skipped (DO NOTHING) or updates that row (DO UPDATE);
//! a key an earlier proposed row holds is skipped by DO NOTHING and refused
//! by DO UPDATE (21000, PostgreSQL's "cannot affect row a second time").
//! The SET expressions and the WHERE of DO UPDATE are evaluated by
//! DataFusion over the existing rows joined with the proposed ones, which
//! it reads as `excluded`. Inserts and updates are one change, committed at
//! once or staged into the open transaction.
//!
//! The only unique constraint a table has is its primary key, so that is
//! the only conflict target there is to name.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{JoinType, TableReference};
use datafusion::logical_expr::{LogicalPlan, col};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::{
    ConflictTarget, DoUpdate, Expr, Ident, Insert, OnConflict, OnConflictAction, OnInsert,
    Statement, TableObject, visit_expressions_mut,
};

use super::commit::conform;
use super::transaction::Transaction;
use super::*;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::query::dml;
use crate::state::KeyMatch;

/// The target rows' alias inside the DO UPDATE query; a user cannot name it.
const TARGET: &str = "__freshet_target";
/// The column pairing each existing row with the proposed row that met it.
const POSITION: &str = "__freshet_position";

impl Database {
    pub(super) async fn execute_upsert(
        &self,
        insert: &Insert,
        scope: &super::Scope,
        mut txn: Option<&mut Transaction>,
    ) -> Result<Outcome> {
        let Some(OnInsert::OnConflict(on_conflict)) = &insert.on else {
            return Err(Error::NotSupported(
                "ON DUPLICATE KEY UPDATE is not supported; use ON CONFLICT".into(),
            ));
        };
        let TableObject::TableName(name) = &insert.table else {
            return Err(Error::NotSupported("INSERT into a table function".into()));
        };
        let (schema_name, table) = self.resolve_name(name, &scope.schema)?;
        let def = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .table(&schema_name, &table)
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(table.clone()))?;
        check_target(&def, on_conflict)?;
        let live = self
            .live_by_id(def.id)
            .ok_or_else(|| Error::UndefinedTable(table.clone()))?;

        let mut plain = insert.clone();
        plain.on = None;
        plain.table_alias = None;
        let plan = self.plan(&Statement::Insert(plain), scope).await?;
        let LogicalPlan::Dml(statement) = &plan else {
            return Err(Error::Internal("an INSERT did not plan as DML".into()));
        };
        let input = dml::prepare(statement, false)?.input;

        let guard = match txn.as_deref_mut() {
            None => Some(live.lock_writer().await?),
            Some(txn) => {
                txn.enter(&live).await?;
                None
            }
        };
        let state = self.state_for_writer(&input, txn.as_deref(), Some(def.id));
        let batches = DataFrame::new(state, input).collect().await?;
        let user_schema = Arc::new(def.arrow_schema());
        let aligned = batches
            .iter()
            .map(|b| conform(b, &user_schema, &def))
            .collect::<Result<Vec<_>>>()?;
        let proposed = match aligned.first() {
            Some(first) => concat_batches(&first.schema(), &aligned)?,
            None => return Ok(inserted(0)),
        };

        let (matches, existing) = {
            let own = txn.as_deref().and_then(|t| t.data(def.id));
            let read;
            let data = match own {
                Some(data) => data,
                None => {
                    read = live.data.read().expect("table lock poisoned");
                    &*read
                }
            };
            let matches = data.match_keys(&proposed)?;
            let ids: Vec<u64> = matches
                .iter()
                .filter_map(|m| match m {
                    KeyMatch::Existing(id) => Some(*id),
                    _ => None,
                })
                .collect();
            (matches, data.rows_by_id(&ids)?)
        };

        let new: BooleanArray = matches.iter().map(|m| Some(*m == KeyMatch::New)).collect();
        let mut rows = vec![filter_record_batch(&proposed, &new)?];
        let mut deleted = Vec::new();
        if let OnConflictAction::DoUpdate(update) = &on_conflict.action {
            if matches.contains(&KeyMatch::Repeated) {
                return Err(Error::Cardinality(
                    "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
                ));
            }
            let met: BooleanArray = matches
                .iter()
                .map(|m| Some(matches!(m, KeyMatch::Existing(_))))
                .collect();
            let excluded = filter_record_batch(&proposed, &met)?;
            let alias = insert
                .table_alias
                .as_ref()
                .map(|a| crate::sql::ident_name(&a.alias))
                .unwrap_or_else(|| def.name.clone());
            let (ids, updated) = self
                .updated_rows(&def, &alias, update, existing, excluded)
                .await?;
            deleted = ids;
            rows.push(updated);
        }
        // Rows inserted plus rows updated, as PostgreSQL counts them.
        let count = rows.iter().map(RecordBatch::num_rows).sum::<usize>();
        deleted.sort_unstable();
        match (txn, guard) {
            (Some(txn), _) => txn.stage(&live, deleted, rows)?,
            (None, Some(guard)) => self.commit(live, guard, deleted, rows).await?,
            (None, None) => return Err(Error::Internal("a write without its lock".into())),
        }
        Ok(inserted(count))
    }

    /// The DO UPDATE rows: for each existing row (stored schema, paired by
    /// position with `excluded`, the proposed rows that met it) that passes
    /// the WHERE, its id and its new values.
    async fn updated_rows(
        &self,
        def: &TableDef,
        alias: &str,
        update: &DoUpdate,
        existing: RecordBatch,
        excluded: RecordBatch,
    ) -> Result<(Vec<u64>, RecordBatch)> {
        let positions: ArrayRef =
            Arc::new(UInt64Array::from_iter_values(0..existing.num_rows() as u64));
        let ctx = SessionContext::new_with_state(self.ctx.state());
        let target = ctx
            .read_batch(with_column(&existing, POSITION, positions.clone())?)?
            .alias(TARGET)?;
        let proposed = ctx
            .read_batch(with_column(&excluded, POSITION, positions)?)?
            .alias("excluded")?;
        let mut joined = target.join(proposed, JoinType::Inner, &[POSITION], &[POSITION], None)?;
        if let Some(selection) = &update.selection {
            let predicate = joined.parse_sql_expr(&target_sql(selection, def, alias)?)?;
            joined = joined.filter(predicate)?;
        }
        let mut exprs = vec![col(datafusion::common::Column::new(
            Some(TableReference::bare(TARGET)),
            crate::state::ROWID_COLUMN,
        ))];
        for column in &def.columns {
            let assigned = update
                .assignments
                .iter()
                .rev()
                .find(|a| assignment_column(a).is_some_and(|c| c == column.name));
            let expr = match assigned {
                Some(a) => joined.parse_sql_expr(&target_sql(&a.value, def, alias)?)?,
                None => col(datafusion::common::Column::new(
                    Some(TableReference::bare(TARGET)),
                    column.name.clone(),
                )),
            };
            exprs.push(expr.alias(column.name.clone()));
        }
        for assignment in &update.assignments {
            let name = assignment_column(assignment).unwrap_or_default();
            if !def.columns.iter().any(|c| c.name == name) {
                return Err(Error::UndefinedColumn(format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    def.name
                )));
            }
        }
        let batches = joined.select(exprs)?.collect().await?;
        let schema = match batches.first() {
            Some(batch) => batch.schema(),
            None => {
                return Ok((
                    Vec::new(),
                    RecordBatch::new_empty(Arc::new(def.arrow_schema())),
                ));
            }
        };
        let all = concat_batches(&schema, &batches)?;
        let ids = all
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| Error::Internal("row ids are not u64".into()))?
            .values()
            .to_vec();
        let values = all.project(&(1..all.num_columns()).collect::<Vec<_>>())?;
        Ok((ids, values))
    }
}

fn inserted(rows: usize) -> Outcome {
    Outcome::Command {
        tag: "INSERT".into(),
        rows: Some(rows),
    }
}

/// The conflict target must name the primary key (its columns, in any
/// order, or its constraint); DO UPDATE must name one.
fn check_target(def: &TableDef, on_conflict: &OnConflict) -> Result<()> {
    let key: Vec<&str> = def
        .primary_key
        .iter()
        .map(|&i| def.columns[i].name.as_str())
        .collect();
    let no_match = || {
        Error::InvalidColumnReference(
            "there is no unique or exclusion constraint matching the ON CONFLICT specification"
                .into(),
        )
    };
    match &on_conflict.conflict_target {
        None => match on_conflict.action {
            OnConflictAction::DoNothing => Ok(()),
            OnConflictAction::DoUpdate(_) => Err(Error::Syntax {
                message:
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name"
                        .into(),
                position: None,
            }),
        },
        Some(ConflictTarget::Columns(columns)) => {
            let mut named: Vec<String> = columns.iter().map(crate::sql::ident_name).collect();
            let mut wanted: Vec<String> = key.iter().map(|k| k.to_string()).collect();
            named.sort();
            named.dedup();
            wanted.sort();
            if key.is_empty() || named != wanted {
                return Err(no_match());
            }
            Ok(())
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            let name = crate::sql::object_name_parts(name)?
                .pop()
                .unwrap_or_default();
            if key.is_empty() || name != def.primary_key_name() {
                return Err(Error::UndefinedObject(format!(
                    "constraint \"{name}\" for table \"{}\" does not exist",
                    def.name
                )));
            }
            Ok(())
        }
    }
}

fn assignment_column(assignment: &datafusion::sql::sqlparser::ast::Assignment) -> Option<String> {
    match &assignment.target {
        datafusion::sql::sqlparser::ast::AssignmentTarget::ColumnName(name) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(crate::sql::ident_name),
        _ => None,
    }
}

/// `expr` as SQL over the DO UPDATE join: the target's columns, qualified
/// by the table's name or alias, read from `TARGET`; `excluded` stays as
/// it is. A bare column name is ambiguous there, as in PostgreSQL: both
/// the target and `excluded` have it.
fn target_sql(expr: &Expr, def: &TableDef, alias: &str) -> Result<String> {
    let mut expr = expr.clone();
    let is_column = |ident: &Ident| {
        let name = crate::sql::ident_name(ident);
        def.columns.iter().any(|c| c.name == name)
    };
    let flow = visit_expressions_mut(&mut expr, |e| {
        match e {
            Expr::Identifier(ident) if is_column(ident) => {
                return std::ops::ControlFlow::Break(crate::sql::ident_name(ident));
            }
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2
                    && crate::sql::ident_name(&parts[0]) == alias
                    && is_column(&parts[1]) =>
            {
                parts[0] = Ident::new(TARGET);
            }
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    });
    if let std::ops::ControlFlow::Break(name) = flow {
        return Err(Error::AmbiguousColumn(name));
    }
    crate::sql::rewrite_casts(&mut expr);
    Ok(expr.to_string())
}

/// `batch` with one more column.
fn with_column(batch: &RecordBatch, name: &str, column: ArrayRef) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(name, DataType::UInt64, false));
    let mut columns = batch.columns().to_vec();
    columns.push(column);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
