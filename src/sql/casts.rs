//! Casts DataFusion does not plan as PostgreSQL does, rewritten on the AST:
//!
//! - `x::json`, `x::jsonb`, `CAST(x AS jsonb)` and `jsonb '...'` become
//!   `pg_json_in(x)` / `pg_jsonb_in(x)`: DataFusion has no JSON type, and
//!   these validate the text and tag it as json or jsonb.
//! - `x::varchar(n)` becomes `left(x::varchar, n)`: an explicit cast to
//!   varchar(n) truncates in PostgreSQL, and DataFusion drops the length.
//! - `ts AT TIME ZONE z` becomes `pg_at_time_zone(ts, z)`: DataFusion's
//!   relabels the type's zone, PostgreSQL's converts between an instant
//!   and the wall time in `z` (`query::time_zone::AtTimeZone`).
//!
//! Names of result columns come from the statement before this rewrite
//! (`sql::output_names`), so `'a'::varchar(3)` is still named `varchar`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, CharacterLength, DataType, Expr, Value, VisitMut, visit_expressions_mut,
};

use super::function_call;

fn json_input(data_type: &DataType) -> Option<&'static str> {
    match data_type {
        DataType::JSON => Some("pg_json_in"),
        DataType::JSONB => Some("pg_jsonb_in"),
        DataType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("jsonb") => {
            Some("pg_jsonb_in")
        }
        _ => None,
    }
}

fn varchar_length(data_type: &DataType) -> Option<u64> {
    match data_type {
        DataType::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharVarying(Some(CharacterLength::IntegerLength { length, .. })) => {
            Some(*length)
        }
        _ => None,
    }
}

/// The SQL text of a stored expression (a column DEFAULT) with its casts
/// rewritten, for the places that plan it alone rather than inside a
/// statement. Text that does not parse is returned as it is, so that the
/// planner reports the error.
pub fn expression_sql(sql: &str) -> String {
    match super::parse_expr(sql) {
        Ok(mut expr) => {
            rewrite_casts(&mut expr);
            expr.to_string()
        }
        Err(_) => sql.to_string(),
    }
}

/// Rewrites every such cast in `node` (a statement or an expression), at
/// any depth.
pub fn rewrite_casts<V: VisitMut>(node: &mut V) {
    let _ = visit_expressions_mut(node, |expr| {
        let replacement = match expr {
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr: inner,
                data_type,
                format: None,
                ..
            } => {
                if let Some(function) = json_input(data_type) {
                    Some(function_call(function, vec![(**inner).clone()]))
                } else {
                    varchar_length(data_type).map(|length| {
                        let plain = Expr::Cast {
                            kind: CastKind::Cast,
                            expr: inner.clone(),
                            data_type: DataType::Varchar(None),
                            array: false,
                            format: None,
                        };
                        function_call(
                            "left",
                            vec![plain, Expr::value(Value::Number(length.to_string(), false))],
                        )
                    })
                }
            }
            Expr::TypedString(typed) => json_input(&typed.data_type)
                .map(|function| function_call(function, vec![Expr::Value(typed.value.clone())])),
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => Some(function_call(
                "pg_at_time_zone",
                vec![(**timestamp).clone(), (**time_zone).clone()],
            )),
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
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
        rewrite_casts(&mut statement);
        statement.to_string()
    }

    #[test]
    fn json_casts_become_input_functions() {
        assert_eq!(
            rewritten(r#"SELECT '{"a":1}'::jsonb -> 'a', CAST(t AS json), jsonb '[1]' FROM x"#),
            r#"SELECT pg_jsonb_in('{"a":1}') -> 'a', pg_json_in(t), pg_jsonb_in('[1]') FROM x"#
        );
    }

    #[test]
    fn stored_defaults_are_rewritten_too() {
        assert_eq!(expression_sql("'{}'::jsonb"), "pg_jsonb_in('{}')");
        assert_eq!(expression_sql("1 +"), "1 +");
    }

    #[test]
    fn varchar_casts_with_a_length_truncate() {
        assert_eq!(
            rewritten("SELECT 'post'::varchar(3), CAST(c AS varchar)"),
            "SELECT left(CAST('post' AS VARCHAR), 3), CAST(c AS VARCHAR)"
        );
    }
}
