//! The names PostgreSQL gives result columns that have no alias.
//!
//! DataFusion names an unaliased column after its whole expression
//! (`Int64(1) + Int64(1)`); PostgreSQL says `?column?`, a function's name, or
//! the target type of a cast (`int8`). Clients and scripts read these names,
//! so the server relabels the outgoing columns with PostgreSQL's choice. Only
//! the wire names change: the plan keeps DataFusion's (which must be unique).

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Ident, Query, SelectItem, SetExpr, Statement, TrimWhereField,
};

use super::ident_name;
use crate::catalog::ColumnType;

const UNNAMED: &str = "?column?";

/// PostgreSQL's name for each of a query's `width` output columns, `None`
/// where the name DataFusion gives is already right (aliases, plain
/// columns, the columns a `*` expands to). `None` overall when the
/// statement is not a query or its columns cannot be lined up with the
/// select list.
pub fn output_names(statement: &Statement, width: usize) -> Option<Vec<Option<String>>> {
    match statement {
        Statement::Query(query) => line_up(query_names(query)?, width),
        _ => None,
    }
}

/// One select item's name, or a `*` that expands to columns of its own.
enum Slot {
    Named(Option<String>),
    Star,
}

/// The names of `width` columns from the select list's slots: items before
/// the first `*` line up from the start, items after the last one from the
/// end; the columns of one `*` keep their names. Items between two stars
/// cannot be placed and keep theirs too.
fn line_up(slots: Vec<Slot>, width: usize) -> Option<Vec<Option<String>>> {
    let stars = slots.iter().filter(|s| matches!(s, Slot::Star)).count();
    if stars == 0 {
        return (slots.len() == width).then(|| {
            slots
                .into_iter()
                .map(|s| match s {
                    Slot::Named(name) => name,
                    Slot::Star => None,
                })
                .collect()
        });
    }
    let leading = slots
        .iter()
        .take_while(|s| matches!(s, Slot::Named(_)))
        .count();
    let trailing = slots
        .iter()
        .rev()
        .take_while(|s| matches!(s, Slot::Named(_)))
        .count();
    if leading + trailing > width {
        return None;
    }
    let mut names = vec![None; width];
    for (i, slot) in slots.iter().enumerate() {
        if let Slot::Named(name) = slot {
            if i < leading {
                names[i] = name.clone();
            } else if i >= slots.len() - trailing {
                names[width - (slots.len() - i)] = name.clone();
            }
        }
    }
    Some(names)
}

fn query_names(query: &Query) -> Option<Vec<Slot>> {
    set_expr_names(&query.body)
}

fn set_expr_names(body: &SetExpr) -> Option<Vec<Slot>> {
    match body {
        SetExpr::Select(select) => Some(
            select
                .projection
                .iter()
                .map(|item| match item {
                    SelectItem::UnnamedExpr(expr) => Slot::Named(unaliased_name(expr)),
                    SelectItem::ExprWithAlias { alias, .. } => Slot::Named(Some(ident_name(alias))),
                    SelectItem::ExprWithAliases { .. } => Slot::Named(None),
                    SelectItem::QualifiedWildcard(..) | SelectItem::Wildcard(_) => Slot::Star,
                })
                .collect(),
        ),
        SetExpr::Query(query) => query_names(query),
        SetExpr::SetOperation { left, .. } => set_expr_names(left),
        _ => None,
    }
}

/// The column name PostgreSQL gives one select item (`None` for `*`).
pub fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(expr) => Some(figure_name(expr)),
        SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
        _ => None,
    }
}

fn unaliased_name(expr: &Expr) -> Option<String> {
    Some(figure_name(expr))
}

/// Gives unnamed select items unique aliases. PostgreSQL allows equal column
/// names (`SELECT 1, 1`, `SELECT (SELECT 1), (SELECT 2)`), DataFusion's
/// planner does not, and its names for expressions are not the SQL text, so
/// every unnamed expression gets an alias; a plain column keeps its name
/// unless it repeats. The wire names still come from `output_names` of the
/// original statement.
/// The query of an `INSERT ... SELECT` too (`SELECT g, g FROM ...`): its
/// columns go to the target's by position, so their names do not matter.
pub fn dedupe_projection(statement: &mut Statement) {
    let query = match statement {
        Statement::Query(query) => query,
        Statement::Insert(insert) => match insert.source.as_mut() {
            Some(source) => source,
            None => return,
        },
        _ => return,
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    let mut aliases = std::collections::HashSet::new();
    for (i, item) in select.projection.iter_mut().enumerate() {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                let plain = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                if !seen.insert(expr.to_string()) || !plain {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::with_quote('"', format!("{UNNAMED}{i}")),
                    };
                }
            }
            // `SELECT 1 AS c, 2 AS c` is allowed in PostgreSQL; DataFusion
            // wants unique names, and the wire names come from the
            // statement as written anyway.
            SelectItem::ExprWithAlias { alias, .. } if !aliases.insert(ident_name(alias)) => {
                *alias = Ident::with_quote('"', format!("{UNNAMED}{i}"));
            }
            _ => {}
        }
    }
}

/// PostgreSQL's `FigureColname`, for the expressions sqlparser produces.
fn figure_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => ident_name(ident),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(ident_name)
            .unwrap_or_else(|| UNNAMED.into()),
        Expr::Nested(inner) => figure_name(inner),
        Expr::Function(function) => function
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(|ident| ident.value.to_lowercase())
            .unwrap_or_else(|| UNNAMED.into()),
        Expr::Cast {
            expr, data_type, ..
        } => match figure_name(expr) {
            name if name != UNNAMED => name,
            _ => type_name(data_type),
        },
        Expr::TypedString(typed) => type_name(&typed.data_type),
        Expr::Interval(_) => "interval".into(),
        Expr::Case { .. } => "case".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Substring { shorthand, .. } => if *shorthand { "substr" } else { "substring" }.into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Trim { trim_where, .. } => match trim_where {
            Some(TrimWhereField::Leading) => "ltrim".into(),
            Some(TrimWhereField::Trailing) => "rtrim".into(),
            _ => "btrim".into(),
        },
        Expr::Exists { .. } => "exists".into(),
        Expr::AtTimeZone { .. } => "timezone".into(),
        Expr::Array(_) => "array".into(),
        Expr::Subquery(query) => query_names(query)
            .and_then(|names| match names.into_iter().next() {
                Some(Slot::Named(name)) => name,
                _ => None,
            })
            .unwrap_or_else(|| UNNAMED.into()),
        _ => UNNAMED.into(),
    }
}

/// The type name PostgreSQL prints for a cast (`int4`, not `integer`).
fn type_name(data_type: &DataType) -> String {
    match ColumnType::from_sql(data_type) {
        Ok(ty) => ty.internal_name().into(),
        Err(_) => UNNAMED.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse;

    /// The names of a query whose `*`s expand to no columns.
    fn names(sql: &str) -> Option<Vec<Option<String>>> {
        let statement = parse(sql).unwrap().remove(0);
        let Statement::Query(query) = &statement else {
            return output_names(&statement, 0);
        };
        let width = query_names(query)?
            .iter()
            .filter(|s| matches!(s, Slot::Named(_)))
            .count();
        output_names(&statement, width)
    }

    fn some(values: &[&str]) -> Option<Vec<Option<String>>> {
        Some(values.iter().map(|v| Some(v.to_string())).collect())
    }

    #[test]
    fn follows_postgres_rules() {
        assert_eq!(
            names(
                "SELECT 1 + 1, upper('x'), '5'::bigint, CAST(1.7 AS int), CASE WHEN true THEN 1 END"
            ),
            some(&["?column?", "upper", "int8", "int4", "case"])
        );
        assert_eq!(
            names("SELECT count(*), extract(year FROM d), trim(' x '), date '2024-01-01' FROM t"),
            some(&["count", "extract", "btrim", "date"])
        );
        assert_eq!(
            names("SELECT a, t.B, c AS d, a::text FROM t"),
            Some(vec![
                Some("a".into()),
                Some("b".into()),
                Some("d".into()),
                Some("a".into())
            ])
        );
    }

    #[test]
    fn lines_up_items_around_wildcards() {
        let statement = parse("SELECT 1, *, count(*) FROM t").unwrap().remove(0);
        assert_eq!(
            output_names(&statement, 4),
            Some(vec![
                Some("?column?".into()),
                None,
                None,
                Some("count".into())
            ])
        );
        let statement = parse("SELECT t.*, 1, u.*, upper(s) FROM t, u")
            .unwrap()
            .remove(0);
        assert_eq!(
            output_names(&statement, 5),
            Some(vec![None, None, None, None, Some("upper".into())])
        );
        assert_eq!(output_names(&statement, 0), None);
        assert_eq!(names("INSERT INTO t VALUES (1)"), None);
    }

    #[test]
    fn repeated_items_get_unique_aliases() {
        let mut statement = parse("SELECT 1, 1, a, a FROM t").unwrap().remove(0);
        dedupe_projection(&mut statement);
        assert_eq!(
            statement.to_string(),
            "SELECT 1 AS \"?column?0\", 1 AS \"?column?1\", a, a AS \"?column?3\" FROM t"
        );
        assert_eq!(names("SELECT 1, 1"), some(&["?column?", "?column?"]));

        let mut statement = parse("SELECT 1 AS c, 2 AS C").unwrap().remove(0);
        dedupe_projection(&mut statement);
        assert_eq!(statement.to_string(), "SELECT 1 AS c, 2 AS \"?column?1\"");
        assert_eq!(names("SELECT 1 AS c, 2 AS C"), some(&["c", "c"]));
    }

    #[test]
    fn set_operations_take_the_left_names() {
        assert_eq!(names("SELECT 1 UNION SELECT 2 AS x"), some(&["?column?"]));
    }
}
