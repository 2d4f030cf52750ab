//! `IS [NOT] DISTINCT FROM` with PostgreSQL's precedence.
//!
//! sqlparser 0.62 reads the right side of `x IS DISTINCT FROM` as a whole
//! expression, so `a IS DISTINCT FROM 3 AND b > 1` becomes `a IS DISTINCT
//! FROM (3 AND b > 1)`, and `c AND a IS DISTINCT FROM 3 OR d` becomes `c
//! AND (a IS DISTINCT FROM (3 OR d))`. In PostgreSQL the `IS` tests bind
//! tighter than NOT, which binds tighter than AND, then OR.
//!
//! The tree sqlparser builds still lists operands and operators in the
//! order written. So a boolean expression of AND, OR, NOT and IS tests
//! (everything else, parentheses included, is an operand) that holds a
//! swallowing `IS DISTINCT FROM` is flattened back into that order and
//! rebuilt by precedence climbing. Expressions without one are left as
//! parsed.

use std::collections::VecDeque;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, UnaryOperator, Value, VisitMut, VisitorMut,
};

/// Repairs every expression of `tree` (a statement, or one expression).
/// Top-down: a boolean layer is rebuilt from its root, before the visit
/// reaches (and would rebuild apart) the operators inside it.
pub fn repair<T: VisitMut>(tree: &mut T) {
    struct Repair;
    impl VisitorMut for Repair {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            repair_expr(expr);
            ControlFlow::Continue(())
        }
    }
    let _ = tree.visit(&mut Repair);
}

/// Repairs `expr` itself, not the expressions nested in its operands
/// (`repair` visits those).
fn repair_expr(expr: &mut Expr) {
    if !swallows(expr) {
        return;
    }
    let mut items = VecDeque::new();
    flatten(
        std::mem::replace(expr, Expr::value(Value::Null)),
        &mut items,
    );
    *expr = climb(&mut items, OR);
}

/// An operator of the boolean layer.
enum Item {
    Operand(Box<Expr>),
    Not,
    /// AND, OR, IS DISTINCT FROM (`false`) or IS NOT DISTINCT FROM (`true`).
    And,
    Or,
    Distinct(bool),
    /// A postfix IS test: the constructor of its node.
    Test(fn(Box<Expr>) -> Expr),
}

/// Binding strengths of the binary and postfix operators. NOT, between AND
/// and IS, is prefix: its operand is what binds at least as tightly as IS.
const OR: u8 = 1;
const AND: u8 = 2;
const IS: u8 = 3;

fn is_test(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
    )
}

fn is_boolean_layer(expr: &Expr) -> bool {
    is_test(expr)
        || matches!(
            expr,
            Expr::BinaryOp {
                op: BinaryOperator::And | BinaryOperator::Or,
                ..
            } | Expr::UnaryOp {
                op: UnaryOperator::Not,
                ..
            }
        )
}

/// Whether the boolean layer of `expr` holds an `IS [NOT] DISTINCT FROM`
/// whose right side sqlparser let run past its operand.
fn swallows(expr: &Expr) -> bool {
    match expr {
        Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right) => {
            is_boolean_layer(right) || swallows(left)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And | BinaryOperator::Or,
            right,
        } => swallows(left) || swallows(right),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => swallows(expr),
        Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsTrue(e)
        | Expr::IsNotTrue(e)
        | Expr::IsFalse(e)
        | Expr::IsNotFalse(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotUnknown(e) => swallows(e),
        _ => false,
    }
}

/// The boolean layer of `expr` in written order.
fn flatten(expr: Expr, out: &mut VecDeque<Item>) {
    let test = |e: Box<Expr>, make: fn(Box<Expr>) -> Expr, out: &mut VecDeque<Item>| {
        flatten(*e, out);
        out.push_back(Item::Test(make));
    };
    match expr {
        Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            right,
        } => {
            flatten(*left, out);
            out.push_back(if op == BinaryOperator::And {
                Item::And
            } else {
                Item::Or
            });
            flatten(*right, out);
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => {
            out.push_back(Item::Not);
            flatten(*expr, out);
        }
        Expr::IsDistinctFrom(left, right) => {
            flatten(*left, out);
            out.push_back(Item::Distinct(false));
            flatten(*right, out);
        }
        Expr::IsNotDistinctFrom(left, right) => {
            flatten(*left, out);
            out.push_back(Item::Distinct(true));
            flatten(*right, out);
        }
        Expr::IsNull(e) => test(e, Expr::IsNull, out),
        Expr::IsNotNull(e) => test(e, Expr::IsNotNull, out),
        Expr::IsTrue(e) => test(e, Expr::IsTrue, out),
        Expr::IsNotTrue(e) => test(e, Expr::IsNotTrue, out),
        Expr::IsFalse(e) => test(e, Expr::IsFalse, out),
        Expr::IsNotFalse(e) => test(e, Expr::IsNotFalse, out),
        Expr::IsUnknown(e) => test(e, Expr::IsUnknown, out),
        Expr::IsNotUnknown(e) => test(e, Expr::IsNotUnknown, out),
        operand => out.push_back(Item::Operand(Box::new(operand))),
    }
}

/// Precedence climbing over `items`: the longest expression whose binary
/// operators bind at least as tightly as `min` (all left-associative).
fn climb(items: &mut VecDeque<Item>, min: u8) -> Expr {
    let mut left = match items.pop_front() {
        Some(Item::Not) => Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(climb(items, IS)),
        },
        Some(Item::Operand(e)) => *e,
        // sqlparser produced the sequence, so an operand comes first; an
        // empty one keeps the tree well-formed if it ever does not.
        _ => Expr::value(Value::Null),
    };
    loop {
        let precedence = match items.front() {
            Some(Item::Or) => OR,
            Some(Item::And) => AND,
            Some(Item::Distinct(_) | Item::Test(_)) => IS,
            _ => return left,
        };
        if precedence < min {
            return left;
        }
        left = match items.pop_front() {
            Some(Item::Test(make)) => make(Box::new(left)),
            Some(Item::Distinct(negated)) => {
                let right = Box::new(climb(items, IS + 1));
                if negated {
                    Expr::IsNotDistinctFrom(Box::new(left), right)
                } else {
                    Expr::IsDistinctFrom(Box::new(left), right)
                }
            }
            Some(Item::And) => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::And,
                right: Box::new(climb(items, AND + 1)),
            },
            Some(Item::Or) => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::Or,
                right: Box::new(climb(items, OR + 1)),
            },
            _ => return left,
        };
    }
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
            Expr::UnaryOp { op, expr } => format!("({op} {})", shape(expr)),
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
    fn is_distinct_from_binds_tighter_than_not_and_or() {
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
            (
                "id > 5 AND b IS DISTINCT FROM 'x' OR id = 1",
                "(((id > 5) AND (b IDF 'x')) OR (id = 1))",
            ),
            (
                "NOT b IS DISTINCT FROM 'x' AND id > 5",
                "((NOT (b IDF 'x')) AND (id > 5))",
            ),
            (
                "i IS DISTINCT FROM 1 AND b IS DISTINCT FROM 'y' OR i = 1",
                "(((i IDF 1) AND (b IDF 'y')) OR (i = 1))",
            ),
            ("a IS DISTINCT FROM b IS NULL", "((a IDF b) IS NULL)"),
            ("a IS DISTINCT FROM (3 AND b)", "(a IDF [(3 AND b)])"),
            ("a IS DISTINCT FROM b = c", "(a IDF (b = c))"),
            (
                "a IS DISTINCT FROM b BETWEEN 1 AND 2 AND c",
                "((a IDF b BETWEEN 1 AND 2) AND c)",
            ),
            // No swallowing: left exactly as parsed.
            (
                "a AND NOT b OR c IS NULL",
                "((a AND (NOT b)) OR (c IS NULL))",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(repaired(sql), expected, "{sql}");
        }
    }
}
