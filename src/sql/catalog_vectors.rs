//! `unnest` of PostgreSQL's vector and array catalog columns.
//!
//! `oidvector` and `int2vector` columns (`pg_proc.proargtypes`,
//! `pg_index.indkey`, ...) are text of space-separated numbers here, as
//! PostgreSQL prints them, so `unnest(proargtypes)` (sqlsmith's routine
//! parameters, SQLAlchemy's index columns) would find no array. Each such
//! call becomes `unnest(CAST(string_to_array(NULLIF(col, ''), ' ') AS
//! BIGINT[]))`: one row per element, in order, none for an empty vector.
//!
//! `pg_proc.proacl` is likewise the text of an array (`{postgres=X/postgres}`
//! or NULL): `array_to_string(proacl, sep)` (psql's `\df+`) reads it
//! through `string_to_array(btrim(proacl, '{}'), ',')`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SetExpr, Statement, TableFactor,
    visit_expressions_mut,
};

/// PostgreSQL's catalog columns of type oidvector or int2vector.
const VECTOR_COLUMNS: [&str; 7] = [
    "proargtypes",
    "indkey",
    "indclass",
    "indcollation",
    "indoption",
    "partattrs",
    "stxkeys",
];

/// Whether `expr` is a bare or qualified name of a column in `columns`.
fn names_one_of(expr: &Expr, columns: &[&str]) -> bool {
    let last = match expr {
        Expr::Identifier(ident) => Some(ident),
        Expr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    };
    last.is_some_and(|ident| columns.contains(&super::ident_name(ident).as_str()))
}

fn vector_column(expr: &Expr) -> bool {
    names_one_of(expr, &VECTOR_COLUMNS)
}

/// Catalog array columns that are NULL in every row here (no options, no
/// ACLs): `ARRAY(SELECT ... FROM unnest(c.reloptions) x)` (psql's `\d+`)
/// has no rows to collect, and is the empty array.
const NULL_ARRAYS: [&str; 7] = [
    "reloptions",
    "relacl",
    "nspacl",
    "attoptions",
    "attacl",
    "datacl",
    "proacl",
];

/// Whether `query` is `SELECT ... FROM unnest(<always-NULL array>) [alias]`.
fn unnests_a_null_array(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let [from] = select.from.as_slice() else {
        return false;
    };
    if !from.joins.is_empty() {
        return false;
    }
    match &from.relation {
        // `unnest(x)`, which sqlparser reads as its own factor.
        TableFactor::UNNEST { array_exprs, .. } => {
            matches!(array_exprs.as_slice(), [column] if null_array_column(column))
        }
        // `pg_catalog.unnest(x)`, a table function by name.
        TableFactor::Table {
            name,
            args: Some(args),
            ..
        } => {
            name.0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest"))
                && matches!(args.args.as_slice(),
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(column))] if null_array_column(column))
        }
        _ => false,
    }
}

fn null_array_column(expr: &Expr) -> bool {
    names_one_of(expr, &NULL_ARRAYS)
}

pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Function(function) = expr
            && function
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("array_to_string"))
            && let FunctionArguments::List(list) = &mut function.args
            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut()
            && names_one_of(first, &["proacl"])
            && let Ok(elements) =
                super::parse_expr(&format!("string_to_array(btrim({first}, '{{}}'), ',')"))
        {
            *first = elements;
            return ControlFlow::<()>::Continue(());
        }
        if let Expr::Function(function) = expr
            && function
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("array"))
            && let FunctionArguments::Subquery(query) = &function.args
            && unnests_a_null_array(query)
            && let Ok(empty) = super::parse_expr("CAST(ARRAY[] AS TEXT[])")
        {
            *expr = empty;
            return ControlFlow::<()>::Continue(());
        }
        if let Some(argument) = super::sole_argument_mut(expr, "unnest")
            && vector_column(argument)
            && let Ok(elements) = super::parse_expr(&format!(
                "CAST(string_to_array(NULLIF({argument}, ''), ' ') AS BIGINT[])"
            ))
        {
            *argument = elements;
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn a_text_acl_is_split_before_array_to_string() {
        assert_eq!(
            rewritten("SELECT pg_catalog.array_to_string(p.proacl, E'\\n') FROM pg_proc p"),
            "SELECT pg_catalog.array_to_string(string_to_array(btrim(p.proacl, '{}'), ','), E'\\n') \
             FROM pg_proc p"
        );
    }

    #[test]
    fn vector_columns_are_split_before_unnest() {
        assert_eq!(
            rewritten("SELECT unnest(p.proargtypes) FROM pg_proc p"),
            "SELECT unnest(CAST(string_to_array(NULLIF(p.proargtypes, ''), ' ') AS BIGINT[])) \
             FROM pg_proc p"
        );
        let other = "SELECT unnest(a) FROM t";
        assert_eq!(rewritten(other), other);
    }

    #[test]
    fn an_array_of_an_always_null_array_is_empty() {
        assert_eq!(
            rewritten(
                "SELECT array_to_string(c.reloptions || array(SELECT 'toast.' || x \
                 FROM pg_catalog.unnest(tc.reloptions) x), ', ') FROM pg_class c"
            ),
            "SELECT array_to_string(c.reloptions || CAST(ARRAY[] AS TEXT[]), ', ') FROM pg_class c"
        );
        assert_eq!(
            rewritten("SELECT array(SELECT x FROM unnest(n.nspacl) x) FROM pg_namespace n"),
            "SELECT CAST(ARRAY[] AS TEXT[]) FROM pg_namespace n"
        );
        let other = rewritten("SELECT array(SELECT x FROM unnest(t.a) x) FROM t");
        assert!(!other.contains("ARRAY[]"), "{other}");
    }
}
