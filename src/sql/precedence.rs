//! `IS [NOT] DISTINCT FROM` with PostgreSQL's precedence.
//!
//! sqlparser 0.62 reads the right side of `x IS DISTINCT FROM` as a whole
//! expression, so `a IS DISTINCT FROM 3 AND b > 1` becomes `a IS DISTINCT
//! FROM (3 AND b > 1)`, a type error. In PostgreSQL `IS` binds tighter than
//! `AND` and `OR` and associates to the left. This moves the operator back
//! down: an unparenthesized AND/OR or IS test on the right side takes the
//! `IS DISTINCT FROM` as its own left operand. Parenthesized right sides
//! (`Expr::Nested`) are left alone, as written.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Statement, Value, visit_expressions_mut,
};

pub fn repair(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        repair_expr(expr);
        ControlFlow::<()>::Continue(())
    });
}

fn repair_expr(expr: &mut Expr) {
    let (left, right, negated) = match std::mem::replace(expr, Expr::value(Value::Null)) {
        Expr::IsDistinctFrom(left, right) => (left, right, false),
        Expr::IsNotDistinctFrom(left, right) => (left, right, true),
        other => {
            *expr = other;
            return;
        }
    };
    // `left IS [NOT] DISTINCT FROM operand`; repaired again when the
    // operand came from deeper in the right side.
    let build = |operand: Box<Expr>, again: bool| {
        let mut e = if negated {
            Expr::IsNotDistinctFrom(left, operand)
        } else {
            Expr::IsDistinctFrom(left, operand)
        };
        if again {
            repair_expr(&mut e);
        }
        Box::new(e)
    };
    *expr = match *right {
        Expr::BinaryOp {
            left: operand,
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            right: rest,
        } => Expr::BinaryOp {
            left: build(operand, true),
            op,
            right: rest,
        },
        Expr::IsNull(operand) => Expr::IsNull(build(operand, true)),
        Expr::IsNotNull(operand) => Expr::IsNotNull(build(operand, true)),
        Expr::IsTrue(operand) => Expr::IsTrue(build(operand, true)),
        Expr::IsNotTrue(operand) => Expr::IsNotTrue(build(operand, true)),
        Expr::IsFalse(operand) => Expr::IsFalse(build(operand, true)),
        Expr::IsNotFalse(operand) => Expr::IsNotFalse(build(operand, true)),
        Expr::IsUnknown(operand) => Expr::IsUnknown(build(operand, true)),
        Expr::IsNotUnknown(operand) => Expr::IsNotUnknown(build(operand, true)),
        Expr::IsDistinctFrom(operand, rest) => Expr::IsDistinctFrom(build(operand, true), rest),
        Expr::IsNotDistinctFrom(operand, rest) => {
            Expr::IsNotDistinctFrom(build(operand, true), rest)
        }
        right => *build(Box::new(right), false),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    /// The tree with every operator's operands in explicit parentheses
    /// (`[...]` for parentheses that were written).
    fn shape(e: &Expr) -> String {
        match e {
            Expr::BinaryOp { left, op, right } => {
                format!("({} {op} {})", shape(left), shape(right))
            }
            Expr::IsDistinctFrom(l, r) => format!("({} IDF {})", shape(l), shape(r)),
            Expr::IsNotDistinctFrom(l, r) => format!("({} INDF {})", shape(l), shape(r)),
            Expr::IsNull(x) => format!("({} IS NULL)", shape(x)),
            Expr::Nested(x) => format!("[{}]", shape(x)),
            other => other.to_string(),
        }
    }

    fn repaired(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, &format!("SELECT {sql}"))
            .unwrap()
            .remove(0);
        repair(&mut statement);
        let mut shapes = Vec::new();
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(&statement, |e| {
            shapes.push(shape(e));
            ControlFlow::<()>::Break(())
        });
        shapes.remove(0)
    }

    #[test]
    fn is_distinct_from_binds_tighter_than_and_or_and_is() {
        let cases = [
            ("a IS DISTINCT FROM 3 AND b > 1", "((a IDF 3) AND (b > 1))"),
            (
                "a IS NOT DISTINCT FROM 3 OR b AND c",
                "((a INDF 3) OR (b AND c))",
            ),
            (
                "a IS DISTINCT FROM 1 AND b AND c",
                "(((a IDF 1) AND b) AND c)",
            ),
            ("a IS DISTINCT FROM b IS NULL", "((a IDF b) IS NULL)"),
            ("a IS DISTINCT FROM (3 AND b)", "(a IDF [(3 AND b)])"),
            ("a IS DISTINCT FROM b = c", "(a IDF (b = c))"),
        ];
        for (sql, expected) in cases {
            assert_eq!(repaired(sql), expected, "{sql}");
        }
    }
}
