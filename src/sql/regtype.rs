//! `to_regtype(name)`, which drivers call to look a type up (psycopg's
//! `TypeInfo.fetch`): the type's `pg_type.oid`, or NULL when there is no
//! such type. It becomes a scalar subquery over `pg_type`. A literal name is
//! read as SQL reads a type (`integer`, `character varying`, `int4` all
//! name int4's row); any other argument is compared with `typname`.
//!
//! Also `'name'::regproc`: a function, which prints as its name. pg_type's
//! `typinput` and friends are text here, so the literal is that name
//! (schema dropped): pgJDBC's type lookup compares `typinput =
//! 'pg_catalog.array_in'::regproc`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{DataType, Expr, Statement, Value, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::catalog::ColumnType;

/// The `typname` a literal type name stands for.
fn typname(name: &str) -> String {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(name)
        .and_then(|mut p| p.parse_data_type())
        .ok()
        .and_then(|t| ColumnType::from_sql(&t).ok())
        .map(|t| t.internal_name().to_string())
        .unwrap_or_else(|| name.trim().to_lowercase())
}

fn lookup(argument: Expr) -> Option<Expr> {
    // max(): NULL when no type matches (a bare `oid` column is declared
    // non-null, and a subquery with no row would break that).
    let sql = format!("(SELECT max(oid) FROM pg_catalog.pg_type WHERE typname = {argument})");
    super::parse_expr(&sql).ok()
}

pub fn rewrite_to_regtype(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Some(argument) = super::sole_argument_mut(expr, "to_regtype") {
            let argument = match &*argument {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(name) => {
                        Expr::value(Value::SingleQuotedString(typname(name)))
                    }
                    _ => argument.clone(),
                },
                other => other.clone(),
            };
            if let Some(replacement) = lookup(argument) {
                *expr = replacement;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `sql` with every `'name'::regproc` written as the text `'name'` (without
/// its schema); `None` when it has none, or does not parse.
pub fn regproc_literals(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("regproc") {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut changed = false;
    for statement in &mut statements {
        let _ = visit_expressions_mut(statement, |expr| {
            if let Expr::Cast {
                expr: inner,
                data_type: DataType::Custom(name, _),
                ..
            } = expr
                && name.to_string().eq_ignore_ascii_case("regproc")
                && let Expr::Value(v) = inner.as_ref()
                && let Value::SingleQuotedString(function) = &v.value
            {
                let bare = function.rsplit('.').next().unwrap_or(function).to_string();
                *expr = Expr::value(Value::SingleQuotedString(bare));
                changed = true;
            }
            ControlFlow::<()>::Continue(())
        });
    }
    changed.then(|| {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_names_are_read_as_types() {
        let mut statement = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT to_regtype('integer'), to_regtype('character varying'), to_regtype(x)",
        )
        .unwrap()
        .remove(0);
        rewrite_to_regtype(&mut statement);
        assert_eq!(
            statement.to_string(),
            "SELECT (SELECT max(oid) FROM pg_catalog.pg_type WHERE typname = 'int4'), \
             (SELECT max(oid) FROM pg_catalog.pg_type WHERE typname = 'varchar'), \
             (SELECT max(oid) FROM pg_catalog.pg_type WHERE typname = x)"
        );
    }

    #[test]
    fn a_regproc_literal_is_the_function_name() {
        assert_eq!(
            super::regproc_literals(
                "SELECT typinput = 'pg_catalog.array_in'::regproc FROM pg_type WHERE oid = $1"
            )
            .as_deref(),
            Some("SELECT typinput = 'array_in' FROM pg_type WHERE oid = $1")
        );
        assert_eq!(super::regproc_literals("SELECT 1"), None);
    }
}
