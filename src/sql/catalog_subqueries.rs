//! Correlated scalar subqueries in the select lists of catalog queries.
//!
//! Client tools read one value per row this way: psql's `\d t` takes each
//! column's DEFAULT as `(SELECT pg_get_expr(d.adbin, d.adrelid, true) FROM
//! pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND
//! a.atthasdef)`. DataFusion decorrelates a scalar subquery only when it
//! aggregates and its correlation is by equalities, so the catalog crate's
//! rewriter turns every correlated one in a select list into NULL (psql then
//! showed no defaults).
//!
//! This pass, run before it, rewrites the subqueries it can make plannable:
//! one select-list expression, no aggregate, GROUP BY, DISTINCT or LIMIT,
//! outer columns only in WHERE, and each WHERE conjunct either inner alone,
//! outer alone, or `inner = outer`. The value becomes `max(value)` (the
//! subquery selects at most one row: on a catalog's keys, the row or none),
//! and outer-only conjuncts move out as `CASE WHEN outer THEN (subquery)
//! END` (no row when they fail: NULL either way). A subquery it cannot
//! handle is left for the crate's rule, which gives NULL as before.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, SelectItem, SetExpr, Statement, TableFactor,
    VisitMut, VisitorMut, visit_expressions,
};

use super::{function_call, parse_expr};

/// Rewrites `statement`'s select-list subqueries; true if any changed.
pub fn rewrite(statement: &mut Statement) -> bool {
    let mut visitor = Rewriter { changed: false };
    let _ = statement.visit(&mut visitor);
    visitor.changed
}

struct Rewriter {
    changed: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                    && let Some(rewritten) = plannable(expr)
                {
                    *expr = rewritten;
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The plannable form of `expr` if it is a subquery this pass handles.
fn plannable(expr: &Expr) -> Option<Expr> {
    let Expr::Subquery(query) = expr else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain_group =
        matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty());
    if query.with.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || query.order_by.is_some()
        || select.distinct.is_some()
        || select.having.is_some()
        || !plain_group
        || select.projection.len() != 1
    {
        return None;
    }
    let (SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }) =
        &select.projection[0]
    else {
        return None;
    };
    let scope = scope(select);
    if scope.aliases.is_empty() || has_aggregate_or_subquery(value) || refs(value, &scope).outer {
        return None;
    }
    let mut kept = Vec::new();
    let mut lifted = Vec::new();
    let mut correlated = false;
    for conjunct in select.selection.iter().flat_map(conjuncts) {
        if has_aggregate_or_subquery(conjunct) {
            return None;
        }
        let found = refs(conjunct, &scope);
        match (found.inner, found.outer) {
            (_, false) => kept.push(conjunct.clone()),
            (false, true) => lifted.push(conjunct.clone()),
            (true, true) => match conjunct {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } if one_sided(left, right, &scope) => {
                    correlated = true;
                    kept.push(conjunct.clone());
                }
                _ => return None,
            },
        }
    }
    if !correlated && lifted.is_empty() {
        return None;
    }
    let mut query = query.clone();
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(function_call(
            "max",
            vec![value.clone()],
        ))];
        select.selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        });
    }
    let subquery = Expr::Subquery(query);
    if lifted.is_empty() {
        // Nested, so that the crate's rule (which NULLs a bare correlated
        // subquery in a select list) leaves it alone.
        return Some(Expr::Nested(Box::new(subquery)));
    }
    let condition = lifted
        .iter()
        .map(|c| format!("({c})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    parse_expr(&format!("CASE WHEN {condition} THEN ({subquery}) END")).ok()
}

/// The column-name prefix of each PostgreSQL catalog table (`pronamespace`
/// is a column of `pg_proc`); every one of them also has `oid`.
const CATALOG_PREFIXES: &[(&str, &str)] = &[
    ("pg_am", "am"),
    ("pg_attrdef", "ad"),
    ("pg_attribute", "att"),
    ("pg_class", "rel"),
    ("pg_collation", "coll"),
    ("pg_constraint", "con"),
    ("pg_database", "dat"),
    ("pg_index", "ind"),
    ("pg_namespace", "nsp"),
    ("pg_operator", "opr"),
    ("pg_proc", "pro"),
    ("pg_roles", "rol"),
    ("pg_type", "typ"),
];

/// What the subquery's FROM names: its relations' aliases (or the tables'
/// own names), and, when every relation is a catalog table of
/// `CATALOG_PREFIXES`, the prefixes of their columns, which tell an
/// unqualified inner column from an outer one.
struct Scope {
    aliases: HashSet<String>,
    prefixes: Option<Vec<&'static str>>,
}

fn scope(select: &datafusion::sql::sqlparser::ast::Select) -> Scope {
    let mut aliases = HashSet::new();
    let mut prefixes = Some(Vec::new());
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
        {
            let TableFactor::Table { name, alias, .. } = factor else {
                return Scope {
                    aliases: HashSet::new(),
                    prefixes: None,
                };
            };
            let table = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase())
                .unwrap_or_default();
            let prefix = CATALOG_PREFIXES
                .iter()
                .find(|(t, _)| *t == table)
                .map(|(_, p)| *p);
            match (prefix, prefixes.as_mut()) {
                (Some(prefix), Some(all)) => all.push(prefix),
                _ => prefixes = None,
            }
            aliases.insert(match alias {
                Some(alias) => alias.name.value.to_lowercase(),
                None => table,
            });
        }
    }
    Scope { aliases, prefixes }
}

fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

#[derive(Default)]
struct Refs {
    inner: bool,
    outer: bool,
}

/// Which side the column references of `expr` belong to: a qualified name
/// whose qualifier is one of the scope's aliases is the subquery's, any
/// other qualified name the outer query's; an unqualified name is inner,
/// unless the scope knows its catalog tables' columns and it is none of
/// them.
fn refs(expr: &Expr, scope: &Scope) -> Refs {
    let mut found = Refs::default();
    let _ = visit_expressions(expr, |e| {
        match e {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let qualifier = parts[parts.len() - 2].value.to_lowercase();
                if scope.aliases.contains(&qualifier) {
                    found.inner = true;
                } else {
                    found.outer = true;
                }
            }
            Expr::Identifier(ident) => {
                let name = ident.value.to_lowercase();
                let inner = match &scope.prefixes {
                    Some(prefixes) => name == "oid" || prefixes.iter().any(|p| name.starts_with(p)),
                    None => true,
                };
                if inner {
                    found.inner = true;
                } else {
                    found.outer = true;
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `left = right` with one side only inner and the other only outer.
fn one_sided(left: &Expr, right: &Expr, scope: &Scope) -> bool {
    let (l, r) = (refs(left, scope), refs(right, scope));
    (l.inner && !l.outer && r.outer && !r.inner) || (l.outer && !l.inner && r.inner && !r.outer)
}

fn has_aggregate_or_subquery(expr: &Expr) -> bool {
    const AGGREGATES: [&str; 8] = [
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_or",
    ];
    visit_expressions(expr, |e| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => ControlFlow::Break(()),
        Expr::Function(f)
            if f.over.is_some()
                || f.name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| AGGREGATES.contains(&i.value.to_lowercase().as_str())) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> Option<String> {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut statement).then(|| statement.to_string())
    }

    #[test]
    fn psqls_default_lookup_becomes_a_plannable_aggregate() {
        let sql = "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) \
                   FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid \
                   AND d.adnum = a.attnum AND a.atthasdef) FROM pg_catalog.pg_attribute a";
        assert_eq!(
            rewritten(sql).unwrap(),
            "SELECT a.attname, CASE WHEN (a.atthasdef) THEN ((SELECT \
             max(pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)) FROM pg_catalog.pg_attrdef d \
             WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum)) END FROM pg_catalog.pg_attribute a"
        );
    }

    #[test]
    fn an_equality_correlated_subquery_is_nested_under_max() {
        let sql = "SELECT (SELECT t.typname FROM pg_type t WHERE t.oid = a.atttypid) AS ty \
                   FROM pg_attribute a";
        assert_eq!(
            rewritten(sql).unwrap(),
            "SELECT ((SELECT max(t.typname) FROM pg_type t WHERE t.oid = a.atttypid)) AS ty \
             FROM pg_attribute a"
        );
    }

    #[test]
    fn unqualified_names_are_told_apart_by_the_catalog_tables_columns() {
        let sql = "SELECT (SELECT nspname FROM pg_namespace WHERE oid = pronamespace), proname \
                   FROM pg_proc";
        assert_eq!(
            rewritten(sql).unwrap(),
            "SELECT ((SELECT max(nspname) FROM pg_namespace WHERE oid = pronamespace)), proname \
             FROM pg_proc"
        );
    }

    #[test]
    fn what_datafusion_cannot_decorrelate_is_left_alone() {
        for sql in [
            // a correlation that is not an equality
            "SELECT (SELECT c.collname FROM pg_collation c, pg_type t WHERE c.oid = a.attcollation \
             AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) FROM pg_attribute a",
            // already an aggregate, a LIMIT, an outer column in the value
            "SELECT (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) FROM pg_class c",
            "SELECT (SELECT i.indkey FROM pg_index i WHERE i.indrelid = c.oid LIMIT 1) FROM pg_class c",
            "SELECT (SELECT i.indkey || c.relname FROM pg_index i WHERE i.indrelid = c.oid) FROM pg_class c",
            // not correlated at all
            "SELECT (SELECT n.nspname FROM pg_namespace n WHERE n.oid = 11)",
        ] {
            assert_eq!(rewritten(sql), None, "{sql}");
        }
    }
}
