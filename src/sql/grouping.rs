//! Columns that depend on a grouped primary key.
//!
//! PostgreSQL lets a query grouped by a table's whole primary key select
//! that table's other columns: each group is one row of the table, so the
//! other columns have one value per group. DataFusion does not know our
//! keys and refuses such a query. The statement is therefore rewritten, and
//! only after DataFusion refused it: for every table in a SELECT's FROM
//! whose whole primary key is in the GROUP BY, the other columns of it that
//! the SELECT list, HAVING or ORDER BY name are added to the GROUP BY. Being
//! functions of the key, they split no group, so the answer is PostgreSQL's.
//! Columns of a table whose key is not grouped are left alone, and the
//! query keeps failing with PostgreSQL's grouping error.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableFactor, Visit, VisitMut, Visitor, VisitorMut,
};

use super::ident_name;

/// A table's primary-key columns and all its columns, by name.
pub struct KeyedTable {
    pub key: Vec<String>,
    pub columns: Vec<String>,
}

/// Adds to each GROUP BY the columns that depend on a grouped primary key
/// (see the module doc); `table` looks a table up by name. Returns whether
/// anything was added.
pub fn group_by_dependents(
    statement: &mut datafusion::sql::sqlparser::ast::Statement,
    table: impl Fn(&ObjectName) -> Option<KeyedTable>,
) -> bool {
    let mut ctes = CteNames::default();
    let _ = Visit::visit(&*statement, &mut ctes);
    let mut rewriter = Rewriter {
        table,
        ctes: ctes.0,
        changed: false,
    };
    let _ = statement.visit(&mut rewriter);
    rewriter.changed
}

struct Rewriter<F> {
    table: F,
    /// Names the statement's CTEs give: a FROM item of such a name may be
    /// the CTE, whose columns no catalog key determines.
    ctes: Vec<String>,
    changed: bool,
}

/// The names of every CTE in a statement.
#[derive(Default)]
struct CteNames(Vec<String>);

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.0.extend(
                with.cte_tables
                    .iter()
                    .map(|cte| ident_name(&cte.alias.name)),
            );
        }
        ControlFlow::Continue(())
    }
}

impl<F: Fn(&ObjectName) -> Option<KeyedTable>> VisitorMut for Rewriter<F> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // ORDER BY belongs to the query, but names the columns of a SELECT
        // that is its whole body.
        let order_by: Vec<Expr> = match (query.body.as_ref(), &query.order_by) {
            (SetExpr::Select(_), Some(order_by)) => match &order_by.kind {
                datafusion::sql::sqlparser::ast::OrderByKind::Expressions(items) => {
                    items.iter().map(|item| item.expr.clone()).collect()
                }
                datafusion::sql::sqlparser::ast::OrderByKind::All(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut bodies = vec![query.body.as_mut()];
        while let Some(body) = bodies.pop() {
            match body {
                SetExpr::Select(select) => {
                    self.changed |= self.rewrite_select(select, &order_by);
                }
                SetExpr::SetOperation { left, right, .. } => {
                    bodies.push(left.as_mut());
                    bodies.push(right.as_mut());
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

/// A table of a FROM clause: the name its columns are qualified with.
struct Relation {
    binding: String,
    table: KeyedTable,
}

impl<F: Fn(&ObjectName) -> Option<KeyedTable>> Rewriter<F> {
    fn rewrite_select(&self, select: &mut Select, order_by: &[Expr]) -> bool {
        let GroupByExpr::Expressions(grouped, modifiers) = &select.group_by else {
            return false;
        };
        if grouped.is_empty() || !modifiers.is_empty() {
            return false;
        }
        let relations = self.relations(select);
        if relations.iter().all(|r| r.table.key.is_empty()) {
            return false;
        }
        let resolve = |qualifier: Option<&str>, column: &str| -> Option<usize> {
            let mut owners = relations.iter().enumerate().filter(|(_, r)| {
                qualifier.is_none_or(|q| q == r.binding)
                    && r.table.columns.iter().any(|c| c == column)
            });
            let first = owners.next().map(|(i, _)| i);
            if owners.next().is_some() { None } else { first }
        };
        let grouped: Vec<(usize, String)> = grouped
            .iter()
            .filter_map(column_reference)
            .filter_map(|(q, c)| resolve(q.as_deref(), &c).map(|r| (r, c)))
            .collect();
        let keyed: Vec<bool> = relations
            .iter()
            .enumerate()
            .map(|(i, r)| {
                !r.table.key.is_empty()
                    && r.table
                        .key
                        .iter()
                        .all(|k| grouped.iter().any(|(g, c)| *g == i && c == k))
            })
            .collect();
        let mut referenced = References::default();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(expr)
                | SelectItem::ExprWithAlias { expr, .. }
                | SelectItem::ExprWithAliases { expr, .. } => {
                    let _ = expr.visit(&mut referenced);
                }
                SelectItem::Wildcard(_) => {
                    for r in &relations {
                        referenced.all_of.push(r.binding.clone());
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => {
                    if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        referenced.all_of.push(ident_name(last));
                    }
                }
                SelectItem::QualifiedWildcard(..) => {}
            }
        }
        if let Some(having) = &select.having {
            let _ = having.visit(&mut referenced);
        }
        for expr in order_by {
            let _ = expr.visit(&mut referenced);
        }
        let mut additions: Vec<(usize, String)> = Vec::new();
        let mut add = |r: usize, column: &str| {
            if keyed[r]
                && !grouped.iter().any(|(g, c)| *g == r && c == column)
                && !additions.iter().any(|(g, c)| *g == r && c == column)
            {
                additions.push((r, column.to_string()));
            }
        };
        for (qualifier, column) in &referenced.columns {
            if let Some(r) = resolve(qualifier.as_deref(), column) {
                add(r, column);
            }
        }
        for binding in &referenced.all_of {
            for (r, relation) in relations.iter().enumerate() {
                if relation.binding == *binding {
                    for column in &relation.table.columns {
                        add(r, column);
                    }
                }
            }
        }
        if additions.is_empty() {
            return false;
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
            exprs.extend(additions.into_iter().map(|(r, column)| {
                Expr::CompoundIdentifier(vec![
                    Ident::with_quote('"', relations[r].binding.clone()),
                    Ident::with_quote('"', column),
                ])
            }));
        }
        true
    }

    /// The catalog tables named in the FROM clause (not derived tables,
    /// functions or nested joins), each under the name that qualifies it.
    fn relations(&self, select: &Select) -> Vec<Relation> {
        let mut relations = Vec::new();
        for from in &select.from {
            for factor in
                std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
            {
                let TableFactor::Table { name, alias, .. } = factor else {
                    continue;
                };
                let cte = match name.0.as_slice() {
                    [only] => only
                        .as_ident()
                        .is_some_and(|i| self.ctes.contains(&ident_name(i))),
                    _ => false,
                };
                if cte {
                    continue;
                }
                let Some(table) = (self.table)(name) else {
                    continue;
                };
                let binding = match alias {
                    Some(alias) => ident_name(&alias.name),
                    None => match name.0.last().and_then(|p| p.as_ident()) {
                        Some(last) => ident_name(last),
                        None => continue,
                    },
                };
                relations.push(Relation { binding, table });
            }
        }
        relations
    }
}

/// `c` or `q.c` (or `s.q.c`) as (qualifier, column).
fn column_reference(expr: &Expr) -> Option<(Option<String>, String)> {
    match expr {
        Expr::Identifier(ident) => Some((None, ident_name(ident))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let column = ident_name(&parts[parts.len() - 1]);
            Some((Some(ident_name(&parts[parts.len() - 2])), column))
        }
        _ => None,
    }
}

/// The columns an expression names, outside its subqueries (their names
/// belong to their own FROM), and the tables whose every column is named.
#[derive(Default)]
struct References {
    columns: Vec<(Option<String>, String)>,
    all_of: Vec<String>,
    depth: usize,
}

impl Visitor for References {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth == 0
            && let Some(reference) = column_reference(expr)
        {
            self.columns.push(reference);
        }
        ControlFlow::Continue(())
    }
}
