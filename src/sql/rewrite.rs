//! PostgreSQL DML forms that DataFusion does not plan, rewritten into
//! equivalent forms it does. Each rewrite works on the AST, before planning:
//!
//! - `DEFAULT` as a value (`VALUES (1, DEFAULT)`, `SET c = DEFAULT`) becomes
//!   the column's default expression, or NULL.
//! - `INSERT INTO t VALUES (1)` with fewer values than columns and no column
//!   list names the leading columns, so the rest get their defaults.
//! - A VALUES in the FROM of an INSERT's query becomes a UNION ALL of
//!   SELECTs (DataFusion plans it with the target table's width).
//! - `UPDATE t SET c = t.c + f.x FROM f WHERE p` becomes
//!   `UPDATE t SET c = t.c + (SELECT max(f.x) FROM f WHERE p) WHERE EXISTS
//!   (SELECT 1 FROM f WHERE p)`: every reference to a FROM table becomes a
//!   scalar subquery correlated only through `p`, which DataFusion
//!   decorrelates into a join. PostgreSQL updates a row that matches several
//!   source rows with an arbitrary one of them; this takes the largest value.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr, GroupByExpr, Ident, ObjectName, Query, Select,
    SelectFlavor, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, Update,
    UpdateTableFromKind, Value, Values, VisitMut, VisitorMut,
    helpers::attached_token::AttachedToken, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::{ident_name, object_name_parts};
use crate::error::{Error, Result};

/// A table's columns in order, each with its DEFAULT expression's SQL.
pub type ColumnDefaults = Vec<(String, Option<String>)>;

/// Rewrites `statement` in place. `columns` looks a table up by name.
pub fn rewrite_dml(
    statement: &mut Statement,
    columns: impl Fn(&ObjectName) -> Option<ColumnDefaults>,
) -> Result<()> {
    match statement {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return Ok(());
            };
            let Some(table) = columns(name) else {
                return Ok(());
            };
            let Some(source) = insert.source.as_mut() else {
                return Ok(());
            };
            let SetExpr::Values(values) = source.body.as_mut() else {
                // DataFusion plans a VALUES nested in an INSERT's query
                // with the target table's width (SQLAlchemy's
                // `INSERT ... SELECT p0 FROM (VALUES ($1, 0), ...) AS
                // imp_sen(p0, sen_counter)`): it becomes a UNION ALL.
                let _ = source.visit(&mut NestedValues);
                return Ok(());
            };
            if insert.columns.is_empty()
                && let Some(widest) = values.rows.iter().map(|r| r.len()).max()
                && widest < table.len()
            {
                insert.columns = table[..widest]
                    .iter()
                    .map(|(name, _)| ObjectName::from(vec![Ident::with_quote('"', name)]))
                    .collect();
            }
            let targets: Vec<String> = if insert.columns.is_empty() {
                table.iter().map(|(name, _)| name.clone()).collect()
            } else {
                insert
                    .columns
                    .iter()
                    .map(|c| object_name_parts(c).map(|mut p| p.pop().unwrap_or_default()))
                    .collect::<Result<_>>()?
            };
            for row in values.rows.iter_mut() {
                for (value, target) in row.iter_mut().zip(&targets) {
                    if is_default(value) {
                        *value = default_of(&table, target)?;
                    }
                }
            }
        }
        Statement::Update(update) => {
            if let TableFactor::Table { name, .. } = &update.table.relation
                && let Some(table) = columns(name)
            {
                for assignment in update.assignments.iter_mut() {
                    if is_default(&assignment.value)
                        && let AssignmentTarget::ColumnName(column) = &assignment.target
                    {
                        let column = object_name_parts(column)?.pop().unwrap_or_default();
                        assignment.value = default_of(&table, &column)?;
                    }
                }
            }
            if update.from.is_some() {
                rewrite_update_from(update, &columns);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `(VALUES (a, b), (c, d)) AS v(x, y)` in FROM as `(SELECT a AS x, b AS
/// y UNION ALL SELECT c, d) AS v`, the same rows (VALUES columns without
/// names are PostgreSQL's `column1`, `column2`, ...).
struct NestedValues;

impl VisitorMut for NestedValues {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Derived {
            subquery, alias, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let SetExpr::Values(values) = subquery.body.as_ref() else {
            return ControlFlow::Continue(());
        };
        if subquery.order_by.is_some() || subquery.limit_clause.is_some() {
            return ControlFlow::Continue(());
        }
        let names: Vec<String> = match alias {
            Some(alias) if !alias.columns.is_empty() => {
                alias.columns.iter().map(|c| c.name.to_string()).collect()
            }
            _ => (1..=values.rows.first().map_or(0, |r| r.len()))
                .map(|i| format!("column{i}"))
                .collect(),
        };
        if let Some(query) = values_as_union(values, &names) {
            *subquery = query;
            if let Some(alias) = alias {
                alias.columns.clear();
            }
        }
        ControlFlow::Continue(())
    }
}

/// `VALUES` rows as the UNION ALL of one SELECT per row, the first row's
/// values named `names`: the same rows, typed as a UNION is, which is how
/// PostgreSQL types a VALUES list.
pub(super) fn values_as_union(values: &Values, names: &[String]) -> Option<Box<Query>> {
    let selects: Vec<String> = values
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let items: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(j, value)| match (i, names.get(j)) {
                    (0, Some(name)) => format!("{value} AS {name}"),
                    _ => value.to_string(),
                })
                .collect();
            format!("SELECT {}", items.join(", "))
        })
        .collect();
    match Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&selects.join(" UNION ALL "))
        .and_then(|mut p| p.parse_statement())
    {
        Ok(Statement::Query(query)) => Some(query),
        _ => None,
    }
}

fn is_default(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(ident) if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("default"))
}

fn default_of(table: &ColumnDefaults, column: &str) -> Result<Expr> {
    let default = table
        .iter()
        .find(|(name, _)| name == column)
        .and_then(|(_, default)| default.as_ref());
    match default {
        None => Ok(Expr::value(Value::Null)),
        Some(sql) => super::parse_expr(sql)
            .map_err(|e| Error::Internal(format!("stored DEFAULT {sql} does not parse: {e}"))),
    }
}

/// The name a table is referred to by in a query, and its columns.
fn relation_names(
    factor: &TableFactor,
    columns: &impl Fn(&ObjectName) -> Option<ColumnDefaults>,
) -> Option<(String, Vec<String>)> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    let qualifier = match alias {
        Some(alias) => ident_name(&alias.name),
        None => object_name_parts(name).ok()?.pop()?,
    };
    let names = columns(name)
        .map(|c| c.into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    Some((qualifier, names))
}

fn rewrite_update_from(
    update: &mut Update,
    columns: &impl Fn(&ObjectName) -> Option<ColumnDefaults>,
) {
    let from: Vec<TableWithJoins> = match update.from.take() {
        Some(UpdateTableFromKind::AfterSet(tables) | UpdateTableFromKind::BeforeSet(tables)) => {
            tables
        }
        None => return,
    };
    let target_columns = relation_names(&update.table.relation, columns)
        .map(|(_, names)| names)
        .unwrap_or_default();
    let sources: Vec<(String, Vec<String>)> = from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .filter_map(|factor| relation_names(factor, columns))
        .collect();
    let is_source_column = |expr: &Expr| match expr {
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let qualifier = ident_name(&parts[parts.len() - 2]);
            sources.iter().any(|(q, _)| *q == qualifier)
        }
        Expr::Identifier(ident) => {
            let name = ident_name(ident);
            !target_columns.contains(&name) && sources.iter().any(|(_, cols)| cols.contains(&name))
        }
        _ => false,
    };
    let predicate = update.selection.take();
    let subquery = |projection: Vec<SelectItem>| -> Box<Query> {
        let select = Select {
            select_token: AttachedToken::empty(),
            optimizer_hints: Vec::new(),
            distinct: None,
            select_modifiers: None,
            top: None,
            top_before_distinct: false,
            projection,
            exclude: None,
            into: None,
            from: from.clone(),
            lateral_views: Vec::new(),
            prewhere: None,
            selection: predicate.clone(),
            connect_by: Vec::new(),
            group_by: GroupByExpr::Expressions(Vec::new(), Vec::new()),
            cluster_by: Vec::new(),
            distribute_by: Vec::new(),
            sort_by: Vec::new(),
            having: None,
            named_window: Vec::new(),
            qualify: None,
            window_before_qualify: false,
            value_table_mode: None,
            flavor: SelectFlavor::Standard,
        };
        Box::new(Query {
            with: None,
            body: Box::new(SetExpr::Select(Box::new(select))),
            order_by: None,
            limit_clause: None,
            fetch: None,
            locks: Vec::new(),
            for_clause: None,
            settings: None,
            format_clause: None,
            pipe_operators: Vec::new(),
        })
    };
    let max_of = |expr: Expr| super::function_call("max", vec![expr]);
    for Assignment { value, .. } in update.assignments.iter_mut() {
        let _ = visit_expressions_mut(value, |expr| {
            if is_source_column(expr) {
                *expr = Expr::Subquery(subquery(vec![SelectItem::UnnamedExpr(max_of(
                    expr.clone(),
                ))]));
            }
            ControlFlow::<()>::Continue(())
        });
    }
    update.selection = Some(Expr::Exists {
        subquery: subquery(vec![SelectItem::UnnamedExpr(Expr::value(Value::Number(
            "1".into(),
            false,
        )))]),
        negated: false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse;

    fn table(name: &ObjectName) -> Option<ColumnDefaults> {
        if name.to_string() == "s" {
            return Some(vec![("id".into(), None), ("x".into(), None)]);
        }
        Some(vec![
            ("id".into(), None),
            ("v".into(), Some("42".into())),
            ("w".into(), None),
        ])
    }

    fn rewritten(sql: &str) -> String {
        let mut statement = parse(sql).unwrap().remove(0);
        rewrite_dml(&mut statement, table).unwrap();
        statement.to_string()
    }

    #[test]
    fn default_keyword_becomes_the_default() {
        assert_eq!(
            rewritten("INSERT INTO t VALUES (1, DEFAULT, DEFAULT)"),
            "INSERT INTO t VALUES (1, 42, NULL)"
        );
        assert_eq!(
            rewritten("INSERT INTO t (w, v) VALUES (DEFAULT, DEFAULT)"),
            "INSERT INTO t (w, v) VALUES (NULL, 42)"
        );
        assert_eq!(rewritten("UPDATE t SET v = DEFAULT"), "UPDATE t SET v = 42");
    }

    #[test]
    fn short_values_name_leading_columns() {
        assert_eq!(
            rewritten("INSERT INTO t VALUES (1)"),
            "INSERT INTO t (\"id\") VALUES (1)"
        );
    }

    #[test]
    fn values_inside_an_insert_query_become_a_union() {
        assert_eq!(
            rewritten(
                "INSERT INTO t (a) SELECT p0 FROM (VALUES ($1, 0), ($2, 1)) AS v(p0, n) ORDER BY n"
            ),
            "INSERT INTO t (a) SELECT p0 FROM (SELECT $1 AS p0, 0 AS n UNION ALL SELECT $2, 1) AS v ORDER BY n"
        );
    }

    #[test]
    fn update_from_becomes_subqueries() {
        assert_eq!(
            rewritten("UPDATE t SET v = t.v + s.x FROM s WHERE s.id = t.id"),
            "UPDATE t SET v = t.v + (SELECT max(s.x) FROM s WHERE s.id = t.id) \
             WHERE EXISTS (SELECT 1 FROM s WHERE s.id = t.id)"
        );
        assert_eq!(
            rewritten("UPDATE t SET v = x + w FROM s AS u WHERE u.id = t.id"),
            "UPDATE t SET v = (SELECT max(x) FROM s AS u WHERE u.id = t.id) + w \
             WHERE EXISTS (SELECT 1 FROM s AS u WHERE u.id = t.id)"
        );
    }
}
