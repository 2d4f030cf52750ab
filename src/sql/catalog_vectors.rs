//! `unnest` of PostgreSQL's vector catalog columns.
//!
//! `oidvector` and `int2vector` columns (`pg_proc.proargtypes`,
//! `pg_index.indkey`, ...) are text of space-separated numbers here, as
//! PostgreSQL prints them, so `unnest(proargtypes)` (sqlsmith's routine
//! parameters, SQLAlchemy's index columns) would find no array. Each such
//! call becomes `unnest(CAST(string_to_array(NULLIF(col, ''), ' ') AS
//! BIGINT[]))`: one row per element, in order, none for an empty vector.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Statement, visit_expressions_mut};

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

/// The column a bare or qualified name ends in, if it is a vector column.
fn vector_column(expr: &Expr) -> bool {
    let last = match expr {
        Expr::Identifier(ident) => Some(ident),
        Expr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    };
    last.is_some_and(|ident| VECTOR_COLUMNS.contains(&super::ident_name(ident).as_str()))
}

pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
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
    fn vector_columns_are_split_before_unnest() {
        assert_eq!(
            rewritten("SELECT unnest(p.proargtypes) FROM pg_proc p"),
            "SELECT unnest(CAST(string_to_array(NULLIF(p.proargtypes, ''), ' ') AS BIGINT[])) \
             FROM pg_proc p"
        );
        let other = "SELECT unnest(a) FROM t";
        assert_eq!(rewritten(other), other);
    }
}
