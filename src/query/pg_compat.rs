//! Where DataFusion's SQL semantics differ from PostgreSQL's in ways users
//! see in their data, an analyzer rule brings them in line:
//!
//! - A string cast to `bytea` is PostgreSQL bytea input (`'\x0102'` is two
//!   bytes, `'a\\b'` escapes a backslash), not the string's UTF-8 bytes.
//! - A float or numeric cast to an integer rounds (`1.7::int` is 2), where
//!   Arrow truncates.
//!
//! It runs after DataFusion's type coercion, so it also sees the casts that
//! coercion adds (an `INSERT` of a string literal into a bytea column).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct PostgresCasts;

impl AnalyzerRule for PostgresCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let saved = names.save(&expr);
                Ok(expr
                    .transform_up(|e| rewrite(e, &schema))?
                    .update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "freshet_postgres_casts"
    }
}

/// The schema a node's expressions are evaluated against.
fn input_schema(node: &LogicalPlan) -> Arc<DFSchema> {
    let inputs = node.inputs();
    match inputs.as_slice() {
        [] => Arc::new(DFSchema::empty()),
        [one] => one.schema().clone(),
        [first, rest @ ..] => {
            let mut merged = first.schema().as_ref().clone();
            for input in rest {
                merged.merge(input.schema());
            }
            Arc::new(merged)
        }
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let target = field.data_type();
    if matches!(
        target,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) && let Expr::Literal(value, _) = inner.as_ref()
        && let Some(text) = string_value(value)
    {
        let bytes = text.map(|t| bytea_input(t)).transpose()?;
        let literal = ScalarValue::Binary(bytes).cast_to(target)?;
        return Ok(Transformed::yes(Expr::Literal(literal, None)));
    }
    if target.is_integer()
        && let Ok(source) = inner.get_type(schema)
        && (source.is_floating()
            || matches!(source, DataType::Decimal128(..) | DataType::Decimal256(..)))
    {
        let rounded = datafusion::functions::math::expr_fn::round(vec![inner.as_ref().clone()]);
        return Ok(Transformed::yes(Expr::Cast(Cast {
            expr: Box::new(rounded),
            field: field.clone(),
        })));
    }
    Ok(Transformed::no(expr))
}

fn string_value(value: &ScalarValue) -> Option<Option<&str>> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
            Some(s.as_deref())
        }
        _ => None,
    }
}

/// PostgreSQL's bytea input: `\x` followed by hex digit pairs, or the escape
/// format where `\\` is a backslash and `\nnn` an octal byte.
pub fn bytea_input(text: &str) -> Result<Vec<u8>> {
    let invalid =
        || DataFusionError::Execution(format!("invalid input syntax for type bytea: \"{text}\""));
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if digits.len() % 2 != 0 {
            return Err(invalid());
        }
        return digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(invalid)
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes.get(i + 1..i + 4).ok_or_else(invalid)?;
            let value = std::str::from_utf8(octal)
                .ok()
                .filter(|o| o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                .and_then(|o| u8::from_str_radix(o, 8).ok())
                .ok_or_else(invalid)?;
            out.push(value);
            i += 4;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_input_formats() {
        assert_eq!(bytea_input("\\x0102ff").unwrap(), vec![1, 2, 255]);
        assert_eq!(bytea_input("\\x").unwrap(), Vec::<u8>::new());
        assert_eq!(bytea_input("ab\\\\c\\001").unwrap(), b"ab\\c\x01".to_vec());
        assert!(bytea_input("\\x0").is_err());
        assert!(bytea_input("\\9").is_err());
    }
}
