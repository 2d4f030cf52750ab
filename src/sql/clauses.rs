//! Query forms DataFusion does not plan, rewritten on the AST into ones it
//! does, with PostgreSQL's meaning:
//!
//! - `FETCH FIRST n ROWS ONLY` (and `FETCH NEXT`, `ROW`, no count = 1) is
//!   `LIMIT n`; `WITH TIES` and `PERCENT` are left for DataFusion to refuse.
//! - `x LIKE 'p' ESCAPE 'c'` with an escape character other than backslash
//!   (or none, `ESCAPE ''`) becomes the same pattern written with
//!   backslash escapes, DataFusion's only kind. A pattern that is not a
//!   literal is left as it is.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, LimitClause, Query, Value, ValueWithSpan, VisitMut, VisitorMut, visit_expressions_mut,
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
    let Expr::Value(literal) = pattern else {
        return;
    };
    let Some(text) = string_of(literal) else {
        return;
    };
    *pattern = Expr::value(Value::SingleQuotedString(backslash_pattern(text, escape)));
    *escape_char = None;
}

/// Rewrites every such clause in `node`, at any depth.
pub fn rewrite_clauses<V: VisitMut>(node: &mut V) {
    let _ = node.visit(&mut FetchToLimit);
    let _ = visit_expressions_mut(node, |expr| {
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
    fn other_escape_characters_become_backslashes() {
        assert_eq!(backslash_pattern("b!_%", Some('!')), "b\\_%");
        assert_eq!(backslash_pattern("a\\b!!c", Some('!')), "a\\\\b!c");
        assert_eq!(backslash_pattern("50\\%", None), "50\\\\%");
        assert_eq!(
            rewritten("SELECT x LIKE 'b!_%' ESCAPE '!'"),
            "SELECT x LIKE 'b\\_%'"
        );
    }
}
