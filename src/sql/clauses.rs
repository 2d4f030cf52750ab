//! Query forms DataFusion does not plan, rewritten on the AST into ones it
//! does, with PostgreSQL's meaning:
//!
//! - `FETCH FIRST n ROWS ONLY` (and `FETCH NEXT`, `ROW`, no count = 1) is
//!   `LIMIT n`; `WITH TIES` and `PERCENT` are left for DataFusion to refuse.
//! - `x LIKE 'p' ESCAPE 'c'` with an escape character other than backslash
//!   (or none, `ESCAPE ''`) becomes the same pattern written with
//!   backslash escapes, DataFusion's only kind. A pattern that is not a
//!   literal is left as it is.
//! - `(a, b) IN (SELECT x, y ...)` as a condition of a WHERE (one of its
//!   top-level ANDs) becomes `EXISTS (SELECT 1 FROM (SELECT x, y ...) AS
//!   in(c0, c1) WHERE in.c0 = a AND in.c1 = b)`, which DataFusion turns
//!   into a semi join. There a row whose IN is NULL (a NULL on either side,
//!   no equal row) is dropped just as one whose IN is false, so the two mean
//!   the same; anywhere else (NOT IN, OR, the select list) they do not, and
//!   the IN is left for DataFusion to refuse.
//! - `NULLIF(a, b)` is `CASE WHEN a = b THEN NULL ELSE a END`, PostgreSQL's
//!   definition of it, so that its type is a's (`NULLIF(1, 1.5)` is the
//!   integer 1; DataFusion gives the common type, numeric 1.0).
//! - A one-column set-returning function in FROM (`generate_series`,
//!   `unnest` of one array) without column names takes its column's name
//!   from its alias, or its own name without one: `SELECT g FROM
//!   generate_series(1, 3) g` and `SELECT generate_series FROM
//!   generate_series(1, 3)`, as in PostgreSQL (DataFusion names the column
//!   `value` or after the whole call).
//! - `ARRAY(SELECT e FROM ... WHERE ... ORDER BY o)` is `coalesce((SELECT
//!   array_agg(e ORDER BY o) FROM ... WHERE ...), ARRAY[])`: the same
//!   array, `{}` when no row matches, and an aggregate DataFusion
//!   decorrelates when the subquery is correlated (psql's `\du`). A
//!   subquery with DISTINCT, GROUP BY, LIMIT or a set operation is left for
//!   DataFusion to refuse.
//! - A `VALUES` list with a subquery among its values (`VALUES (1, (SELECT
//!   max(x) FROM t))`, also as an INSERT's rows) is the UNION ALL of one
//!   SELECT per row: DataFusion computes VALUES rows while it plans, before
//!   any subquery has run, and refuses one whose columns' metadata differ.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    LimitClause, OrderBy, OrderByKind, Query, SelectItem, SetExpr, TableAlias, TableAliasColumnDef,
    TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut, visit_expressions,
    visit_expressions_mut,
};

struct FetchToLimit;

impl VisitorMut for FetchToLimit {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let Some(fetch) = &query.fetch else {
            return ControlFlow::Continue(());
        };
        if fetch.with_ties || fetch.percent {
            return ControlFlow::Continue(());
        }
        let count = fetch
            .quantity
            .clone()
            .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
        match &mut query.limit_clause {
            None => {
                query.limit_clause = Some(LimitClause::LimitOffset {
                    limit: Some(count),
                    offset: None,
                    limit_by: Vec::new(),
                });
            }
            Some(LimitClause::LimitOffset {
                limit: limit @ None,
                ..
            }) => *limit = Some(count),
            Some(_) => return ControlFlow::Continue(()),
        }
        query.fetch = None;
        ControlFlow::Continue(())
    }
}

struct FunctionColumnNames;

impl VisitorMut for FunctionColumnNames {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let (alias, function) = match factor {
            TableFactor::Table {
                name,
                alias,
                args: Some(_),
                with_ordinality: false,
                ..
            } => {
                let function = name
                    .0
                    .last()
                    .and_then(|part| part.as_ident())
                    .map(|ident| ident.value.to_ascii_lowercase());
                match function.as_deref() {
                    Some("generate_series") => (alias, "generate_series"),
                    _ => return ControlFlow::Continue(()),
                }
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality: false,
                ..
            } if array_exprs.len() == 1 => (alias, "unnest"),
            _ => return ControlFlow::Continue(()),
        };
        let alias = alias.get_or_insert_with(|| TableAlias {
            explicit: true,
            name: Ident::new(function),
            columns: Vec::new(),
            at: None,
        });
        if alias.columns.is_empty() {
            alias.columns = vec![TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            }];
        }
        ControlFlow::Continue(())
    }
}

/// The alias of a rewritten IN's subquery; a user cannot name it.
const IN_ALIAS: &str = "__freshet_in";

struct TupleInToExists;

impl VisitorMut for TupleInToExists {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        rewrite_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn rewrite_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            if let Some(selection) = &mut select.selection {
                rewrite_conjuncts(selection);
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left);
            rewrite_set_expr(right);
        }
        _ => {}
    }
}

fn rewrite_conjuncts(expr: &mut Expr) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            rewrite_conjuncts(left);
            rewrite_conjuncts(right);
        }
        Expr::Nested(inner) => rewrite_conjuncts(inner),
        Expr::InSubquery {
            expr: tuple,
            subquery,
            negated: false,
        } => {
            let Expr::Tuple(items) = tuple.as_ref() else {
                return;
            };
            if let Some(exists) = tuple_in_exists(items, subquery) {
                *expr = exists;
            }
        }
        _ => {}
    }
}

fn tuple_in_exists(items: &[Expr], subquery: &Query) -> Option<Expr> {
    let columns: Vec<String> = (0..items.len()).map(|i| format!("c{i}")).collect();
    let conditions: Vec<String> = items
        .iter()
        .zip(&columns)
        .map(|(item, column)| format!("{IN_ALIAS}.{column} = ({item})"))
        .collect();
    let sql = format!(
        "EXISTS (SELECT 1 FROM ({subquery}) AS {IN_ALIAS}({}) WHERE {})",
        columns.join(", "),
        conditions.join(" AND ")
    );
    super::parse_expr(&sql).ok()
}

fn nullif_case(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let [part] = function.name.0.as_slice() else {
        return None;
    };
    if !part.as_ident()?.value.eq_ignore_ascii_case("nullif") {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [
        FunctionArg::Unnamed(FunctionArgExpr::Expr(a)),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(b)),
    ] = list.args.as_slice()
    else {
        return None;
    };
    let sql = format!("CASE WHEN ({a}) = ({b}) THEN NULL ELSE ({a}) END");
    super::parse_expr(&sql).ok()
}

/// `pattern` with escape character `escape` (None: no escape at all)
/// rewritten to backslash escapes.
fn backslash_pattern(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next @ ('%' | '_' | '\\')) => {
                    out.push('\\');
                    out.push(next);
                }
                Some(next) => out.push(next),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

fn string_of(value: &ValueWithSpan) -> Option<&str> {
    match &value.value {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s),
        _ => None,
    }
}

/// The text of a string literal, or of literals joined by `||`
/// (SQLAlchemy writes `'pg/_' || '%'`).
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(literal) => string_of(literal).map(str::to_string),
        Expr::Nested(inner) => literal_text(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::StringConcat,
            right,
        } => Some(literal_text(left)? + &literal_text(right)?),
        _ => None,
    }
}

fn rewrite_escape(pattern: &mut Expr, escape_char: &mut Option<ValueWithSpan>) {
    let Some(escape) = escape_char.as_ref().and_then(string_of) else {
        return;
    };
    let escape = match escape.chars().collect::<Vec<_>>().as_slice() {
        [] => None,
        ['\\'] => return,
        [c] => Some(*c),
        _ => return,
    };
    let Some(text) = literal_text(pattern) else {
        return;
    };
    *pattern = Expr::value(Value::SingleQuotedString(backslash_pattern(&text, escape)));
    *escape_char = None;
}

struct SubqueryValues;

impl VisitorMut for SubqueryValues {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Values(values) = query.body.as_ref() else {
            return ControlFlow::Continue(());
        };
        let has_subquery = visit_expressions(&values.rows, |expr| match expr {
            Expr::Subquery(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .is_break();
        if !has_subquery {
            return ControlFlow::Continue(());
        }
        let mut values = values.clone();
        // Each row's ordinal goes along, so that the rows come out in
        // their order, as PostgreSQL gives them.
        let width = values.rows.first().map_or(0, |r| r.len());
        let mut names = vec!["\"?ord\"".to_string()];
        names.extend((1..=width).map(|i| format!("column{i}")));
        for (i, row) in values.rows.iter_mut().enumerate() {
            row.insert(0, Expr::value(Value::Number((i + 1).to_string(), false)));
        }
        let Some(union) = super::rewrite::values_as_union(&values, &names) else {
            return ControlFlow::Continue(());
        };
        let sql = format!(
            "SELECT {} FROM ({union}) AS \"?values\" ORDER BY \"?ord\"",
            names[1..].join(", ")
        );
        if let Ok(mut ordered) = super::parse_query(&sql) {
            if query.order_by.is_some() {
                ordered.order_by = query.order_by.take();
            }
            query.body = ordered.body;
            query.order_by = ordered.order_by;
        }
        ControlFlow::Continue(())
    }
}

/// `ARRAY(subquery)` as an aggregate, when the subquery is a plain
/// filtered SELECT of one value.
fn array_of_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let FunctionArguments::Subquery(query) = &function.args else {
        return None;
    };
    let [name] = function.name.0.as_slice() else {
        return None;
    };
    if !name
        .as_ident()
        .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("array"))
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let ungrouped = matches!(&select.group_by,
        GroupByExpr::Expressions(keys, modifiers) if keys.is_empty() && modifiers.is_empty());
    if query.with.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || select.distinct.is_some()
        || select.having.is_some()
        || !ungrouped
    {
        return None;
    }
    let [SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }] =
        select.projection.as_slice()
    else {
        return None;
    };
    let order = match &query.order_by {
        None => String::new(),
        Some(OrderBy {
            kind: OrderByKind::Expressions(items),
            ..
        }) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| {
                    let mut item = item.clone();
                    // `ORDER BY 1` names the one value.
                    if matches!(&item.expr, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "1"))
                    {
                        item.expr = value.clone();
                    }
                    item.to_string()
                })
                .collect();
            format!(" ORDER BY {}", items.join(", "))
        }
        Some(_) => return None,
    };
    let mut aggregated = select.as_ref().clone();
    aggregated.projection = vec![SelectItem::UnnamedExpr(
        super::parse_expr(&format!("array_agg({value}{order})")).ok()?,
    )];
    super::parse_expr(&format!("coalesce(({aggregated}), ARRAY[])")).ok()
}

/// Rewrites every such clause in `node`, at any depth.
pub fn rewrite_clauses<V: VisitMut>(node: &mut V) {
    let _ = node.visit(&mut FetchToLimit);
    let _ = node.visit(&mut FunctionColumnNames);
    let _ = node.visit(&mut TupleInToExists);
    let _ = node.visit(&mut SubqueryValues);
    let _ = visit_expressions_mut(node, |expr| {
        if let Some(case) = nullif_case(expr) {
            *expr = case;
        }
        if let Some(array) = array_of_subquery(expr) {
            *expr = array;
        }
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = expr
        {
            rewrite_escape(pattern, escape_char);
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse;

    fn rewritten(sql: &str) -> String {
        let mut statement = parse(sql).unwrap().remove(0);
        rewrite_clauses(&mut statement);
        statement.to_string()
    }

    #[test]
    fn fetch_first_is_a_limit() {
        assert_eq!(
            rewritten("SELECT a FROM t ORDER BY a FETCH FIRST 3 ROWS ONLY"),
            "SELECT a FROM t ORDER BY a LIMIT 3"
        );
        assert_eq!(
            rewritten("SELECT a FROM t OFFSET 2 ROWS FETCH NEXT ROW ONLY"),
            "SELECT a FROM t LIMIT 1 OFFSET 2 ROWS"
        );
        assert!(
            rewritten("SELECT a FROM t ORDER BY a FETCH FIRST 3 ROWS WITH TIES").contains("FETCH")
        );
    }

    #[test]
    fn an_array_of_a_subquery_is_an_aggregate() {
        assert_eq!(
            rewritten(
                "SELECT ARRAY(SELECT b.rolname FROM m JOIN r AS b ON m.roleid = b.oid \
                 WHERE m.member = r.oid ORDER BY 1 DESC) AS memberof FROM r"
            ),
            "SELECT coalesce((SELECT array_agg(b.rolname ORDER BY b.rolname DESC) FROM m \
             JOIN r AS b ON m.roleid = b.oid WHERE m.member = r.oid), ARRAY[]) AS memberof FROM r"
        );
        let limited = "SELECT ARRAY(SELECT x FROM t LIMIT 2)";
        assert_eq!(rewritten(limited), limited);
    }

    #[test]
    fn values_with_a_subquery_become_a_union() {
        assert_eq!(
            rewritten("VALUES ((SELECT b FROM r WHERE id = 2)), ('q')"),
            "SELECT column1 FROM (SELECT 1 AS \"?ord\", (SELECT b FROM r WHERE id = 2) AS column1 \
             UNION ALL SELECT 2, 'q') AS \"?values\" ORDER BY \"?ord\""
        );
        assert_eq!(
            rewritten("INSERT INTO t VALUES (1, (SELECT max(a) FROM t)) RETURNING a"),
            "INSERT INTO t SELECT column1, column2 FROM (SELECT 1 AS \"?ord\", 1 AS column1, \
             (SELECT max(a) FROM t) AS column2) AS \"?values\" ORDER BY \"?ord\" RETURNING a"
        );
        assert_eq!(rewritten("VALUES (1), (2)"), "VALUES (1), (2)");
    }

    #[test]
    fn a_tuple_in_a_where_becomes_exists() {
        assert_eq!(
            rewritten("SELECT * FROM t WHERE k > 1 AND (a, b) IN (SELECT x, y FROM u)"),
            "SELECT * FROM t WHERE k > 1 AND EXISTS (SELECT 1 FROM (SELECT x, y FROM u) \
             AS __freshet_in (c0, c1) WHERE __freshet_in.c0 = (a) AND __freshet_in.c1 = (b))"
        );
        let not_in = "SELECT * FROM t WHERE (a, b) NOT IN (SELECT x, y FROM u)";
        assert_eq!(rewritten(not_in), not_in);
        let in_or = "SELECT * FROM t WHERE k = 1 OR (a, b) IN (SELECT x, y FROM u)";
        assert_eq!(rewritten(in_or), in_or);
    }

    #[test]
    fn a_set_returning_function_names_its_column_after_its_alias() {
        assert_eq!(
            rewritten("SELECT g FROM generate_series(1, 3) g"),
            "SELECT g FROM generate_series(1, 3) g (g)"
        );
        assert_eq!(
            rewritten("SELECT * FROM generate_series(1, 3)"),
            "SELECT * FROM generate_series(1, 3) AS generate_series (generate_series)"
        );
        assert_eq!(
            rewritten("SELECT u FROM unnest(ARRAY[1, 2]) AS u"),
            "SELECT u FROM UNNEST(ARRAY[1, 2]) AS u (u)"
        );
        let named = "SELECT a FROM generate_series(1, 3) AS s (a)";
        assert_eq!(rewritten(named), named);
    }

    #[test]
    fn nullif_is_a_case_of_its_first_argument() {
        assert_eq!(
            rewritten("SELECT nullif(a, 1.5) FROM t"),
            "SELECT CASE WHEN (a) = (1.5) THEN NULL ELSE (a) END FROM t"
        );
    }

    #[test]
    fn other_escape_characters_become_backslashes() {
        assert_eq!(backslash_pattern("b!_%", Some('!')), "b\\_%");
        assert_eq!(backslash_pattern("a\\b!!c", Some('!')), "a\\\\b!c");
        assert_eq!(backslash_pattern("50\\%", None), "50\\\\%");
        assert_eq!(
            rewritten("SELECT x LIKE 'b!_%' ESCAPE '!'"),
            "SELECT x LIKE 'b\\_%'"
        );
        assert_eq!(
            rewritten("SELECT x NOT LIKE 'pg/_' || '%' ESCAPE '/'"),
            "SELECT x NOT LIKE 'pg\\_%'"
        );
    }
}
