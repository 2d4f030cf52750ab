//! SQL text to statements: sqlparser's PostgreSQL dialect, through the
//! rewrites `datafusion-pg-catalog` applies so that the queries psql and other
//! clients send about `pg_catalog` plan in DataFusion.
//!
//! Also the small helpers every layer needs to read names the way PostgreSQL
//! does: unquoted identifiers fold to lower case, quoted ones keep theirs.

mod casts;
mod catalog_subqueries;
mod catalog_vectors;
mod catalog_views;
mod clauses;
pub mod cursor;
mod grouping;
mod literal_insert;
mod names;
mod precedence;
mod regtype;
pub mod returning;
mod rewrite;

pub use casts::{expression_sql, rewrite_casts};
pub use clauses::rewrite_clauses;
pub use grouping::{KeyedTable, group_by_dependents};
pub use names::{dedupe_projection, item_name, output_names};
pub use rewrite::{ColumnDefaults, rewrite_dml};

use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, Query, SetExpr, Statement, UnaryOperator, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_pg_catalog::sql::rules::{self, SqlStatementRewriteRule};

use crate::error::{Error, Result};

/// For the catalog queries clients send (psql's `\d`, drivers' type
/// lookups): token-level substitutions plus every rewrite rule.
static CATALOG_PARSER: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// For user queries: the rewrites that keep meaning. Deliberately without
/// `RemoveSubqueryFromProjection`, which turns correlated scalar subqueries in
/// a select list into NULL: fine for a client's catalog probe, a wrong answer
/// for a user's query.
static USER_RULES: LazyLock<Vec<Box<dyn SqlStatementRewriteRule>>> = LazyLock::new(|| {
    vec![
        Box::new(rules::AliasDuplicatedProjectionRewrite),
        Box::new(rules::ResolveUnqualifiedIdentifier),
        Box::new(rules::RewriteArrayAnyAllOperation),
        Box::new(rules::PrependUnqualifiedPgTableName),
        Box::new(rules::StripCallableQualifier),
        Box::new(rules::FixArrayLiteral),
        Box::new(rules::CurrentUserVariableToSessionUserFunctionCall),
        Box::new(rules::StripCollate),
        Box::new(rules::RewritePgCatalogOperator),
        Box::new(rules::RewriteRegCastToSubquery::new()),
        Box::new(rules::FixVersionColumnName),
    ]
});

/// Whether a statement reads PostgreSQL's catalogs, the way client tools do
/// (`to_regtype` becomes a read of pg_type).
fn is_catalog_query(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("pg_") || lower.contains("information_schema") || lower.contains("to_regtype")
}

/// Parses one or more `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    if let Some(insert) = literal_insert::parse(sql) {
        return Ok(vec![insert]);
    }
    if let Some(pieces) = split_special(sql) {
        let mut statements = Vec::new();
        for piece in pieces? {
            match piece {
                Piece::Parsed(statement) => statements.push(*statement),
                Piece::Text(text) => statements.extend(parse(&text)?),
            }
        }
        return Ok(statements);
    }
    // Every later pass (rewrites, planning, clone, drop) walks the tree
    // recursively, so depth is checked on the plain parse, first.
    let plain = Parser::parse_sql(&PostgreSqlDialect {}, sql);
    if let Ok(statements) = &plain
        && statements.iter().any(|s| depth_exceeds(s, MAX_DEPTH))
    {
        return Err(Error::TooDeep);
    }
    let parsed = if is_catalog_query(sql) {
        let decorrelated = plain.as_ref().ok().and_then(|statements| {
            let mut statements = statements.clone();
            let changed = statements
                .iter_mut()
                .fold(false, |changed, s| catalog_subqueries::rewrite(s) | changed);
            changed.then(|| {
                statements
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        });
        let sql = decorrelated.as_deref().unwrap_or(sql);
        let rewritten = regtype::regproc_literals(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        CATALOG_PARSER.parse(sql).map(|statements| {
            statements
                .into_iter()
                .map(|mut s| {
                    regtype::rewrite_to_regtype(&mut s);
                    catalog_vectors::rewrite(&mut s);
                    catalog_views::rewrite(s)
                })
                .collect()
        })
    } else {
        plain.map(|statements| {
            statements
                .into_iter()
                .map(|s| {
                    if is_literal_insert(&s) {
                        s
                    } else {
                        USER_RULES.iter().fold(s, |s, rule| rule.rewrite(s))
                    }
                })
                .collect()
        })
    };
    let parsed = parsed.map(|mut statements: Vec<Statement>| {
        statements.iter_mut().for_each(precedence::repair);
        statements
    });
    parsed.map_err(|e| {
        // The compatibility parser re-tokenizes and loses token locations;
        // plain sqlparser reports the same failure with its line and column.
        let e = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .err()
            .unwrap_or(e);
        streaming_statement(sql)
            .map(|what| {
                Error::NotSupported(format!(
                    "{what} is not supported yet: sources, sinks and subscriptions arrive with \
                     the streaming engine"
                ))
            })
            .unwrap_or_else(|| syntax_error(sql, &e))
    })
}

/// `INSERT ... VALUES` whose values are all literals, negated literals or
/// `$n` parameters: none of the compatibility rewrites can apply (running
/// their eleven passes over a bulk INSERT's thousands of values was a large
/// part of its cost), and bound parameters can be written in as literals.
pub fn is_literal_insert(statement: &Statement) -> bool {
    let Statement::Insert(insert) = statement else {
        return false;
    };
    let Some(source) = &insert.source else {
        return false;
    };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return false;
    };
    source.with.is_none()
        && insert.returning.is_none()
        && insert.on.is_none()
        && values
            .rows
            .iter()
            .flat_map(|row| row.content.iter())
            .all(|expr| match expr {
                Expr::Value(_) => true,
                Expr::UnaryOp { op, expr } => {
                    matches!(op, UnaryOperator::Minus | UnaryOperator::Plus)
                        && matches!(expr.as_ref(), Expr::Value(_))
                }
                _ => false,
            })
}

/// How deeply expressions and subqueries may nest. PostgreSQL (2 MB
/// max_stack_depth) answers a 1,000-term `1+1+...` chain and refuses a
/// 5,000-term one; a left-deep chain of n operators is n levels here.
const MAX_DEPTH: usize = 2000;

/// Whether `statement` nests expressions and queries more than `limit`
/// levels. The walk stops descending at the limit, so it never recurses
/// deeper than `limit` itself.
fn depth_exceeds(statement: &Statement, limit: usize) -> bool {
    struct Depth {
        current: usize,
        limit: usize,
    }
    impl Depth {
        fn enter(&mut self) -> ControlFlow<()> {
            self.current += 1;
            if self.current > self.limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        fn leave(&mut self) -> ControlFlow<()> {
            self.current -= 1;
            ControlFlow::Continue(())
        }
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.enter()
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.leave()
        }
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.enter()
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.leave()
        }
    }
    statement.visit(&mut Depth { current: 0, limit }).is_break()
}

/// `FLUSH` (RisingWave's statement: wait until every MV shows every write
/// acknowledged before it) is not in sqlparser's PostgreSQL grammar. It is
/// carried as sqlparser's FLUSH node, which nothing else produces here.
fn flush_statement() -> Statement {
    Statement::Flush {
        object_type: datafusion::sql::sqlparser::ast::FlushType::Tables,
        location: None,
        channel: None,
        read_lock: false,
        export: false,
        tables: Vec::new(),
    }
}

/// A statement that sqlparser cannot read, as `split_special` finds it.
enum Piece {
    Text(String),
    Parsed(Box<Statement>),
}

/// Splits `sql` at its top-level semicolons if one of the statements is a
/// bare `FLUSH` or a FETCH/MOVE (`sql::cursor`), which are read here; every
/// other statement is left as text. `None` when there is none of them (the
/// common case).
fn split_special(sql: &str) -> Option<Result<Vec<Piece>>> {
    let lower = sql.to_ascii_lowercase();
    if !["flush", "fetch", "move"].iter().any(|w| lower.contains(w)) {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut pieces: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        match token {
            Token::SemiColon => pieces.push(Vec::new()),
            token => pieces.last_mut()?.push(token),
        }
    }
    let is_flush = |piece: &[Token]| {
        let words: Vec<&Token> = piece
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        matches!(words.as_slice(), [Token::Word(w)] if w.value.eq_ignore_ascii_case("flush"))
    };
    if !pieces
        .iter()
        .any(|p| is_flush(p) || cursor::starts_cursor_step(p))
    {
        return None;
    }
    Some(
        pieces
            .into_iter()
            .filter(|p| p.iter().any(|t| !matches!(t, Token::Whitespace(_))))
            .map(|p| {
                if is_flush(&p) {
                    Ok(Piece::Parsed(Box::new(flush_statement())))
                } else if cursor::starts_cursor_step(&p) {
                    cursor::parse(&p).map(|s| Piece::Parsed(Box::new(s)))
                } else {
                    Ok(Piece::Text(p.iter().map(|t| t.to_string()).collect()))
                }
            })
            .collect(),
    )
}

/// Names the streaming statement (RisingWave or Materialize syntax) that
/// `sql` starts with, so that users get "not supported yet" instead of a
/// syntax error for a statement they rightly expect to exist.
fn streaming_statement(sql: &str) -> Option<&'static str> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_uppercase()),
            Token::Whitespace(_) => None,
            _ => Some(String::new()),
        })
        .take(2)
        .collect();
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["CREATE", "SOURCE"] => Some("CREATE SOURCE"),
        ["CREATE", "SINK"] => Some("CREATE SINK"),
        ["SUBSCRIBE", ..] => Some("SUBSCRIBE"),
        _ => None,
    }
}

/// Turns sqlparser's message into PostgreSQL's shape: `syntax error at or
/// near "x"`, with the character position of the offending token.
fn syntax_error(sql: &str, error: &ParserError) -> Error {
    let text = match error {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.as_str(),
        ParserError::RecursionLimitExceeded => return Error::TooDeep,
    };
    let position = location(text).map(|(line, column)| char_offset(sql, line, column));
    let found = text
        .split_once("found: ")
        .map(|(_, rest)| rest.split(" at Line:").next().unwrap_or(rest).trim());
    let message = match found {
        Some("EOF") => "syntax error at end of input".to_string(),
        Some(token) => format!("syntax error at or near \"{token}\""),
        None => format!(
            "syntax error: {}",
            text.split(" at Line:").next().unwrap_or(text)
        ),
    };
    let position = match found {
        Some("EOF") => Some(sql.chars().count() + 1),
        _ => position,
    };
    Error::Syntax { message, position }
}

fn location(message: &str) -> Option<(usize, usize)> {
    let (_, rest) = message.rsplit_once("Line: ")?;
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// 1-based character offset of (line, column), both 1-based.
fn char_offset(sql: &str, line: usize, column: usize) -> usize {
    let before: usize = sql
        .split('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.chars().count() + 1)
        .sum();
    before + column
}

/// One SQL expression, read as PostgreSQL's dialect reads it (for the
/// rewrites that build a replacement from SQL text).
pub fn parse_expr(sql: &str) -> std::result::Result<Expr, ParserError> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map(|mut expr| {
            precedence::repair(&mut expr);
            expr
        })
}

/// One query, read as `parse_expr` reads an expression.
pub fn parse_query(sql: &str) -> std::result::Result<Box<Query>, ParserError> {
    let mut query = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())?;
    precedence::repair(&mut query);
    Ok(query)
}

/// The argument of `expr` when it is a call of `name` (any schema) with
/// exactly one positional argument.
pub fn sole_argument_mut<'a>(expr: &'a mut Expr, name: &str) -> Option<&'a mut Expr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Expr::Function(function) = expr else {
        return None;
    };
    let named = function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.value.eq_ignore_ascii_case(name));
    match &mut function.args {
        FunctionArguments::List(list) if named => match list.args.as_mut_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))] => Some(argument),
            _ => None,
        },
        _ => None,
    }
}

/// The call `name(args...)`.
pub fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// An identifier as PostgreSQL resolves it.
pub fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

pub fn object_name_parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|part| {
            part.as_ident()
                .map(ident_name)
                .ok_or_else(|| Error::NotSupported(format!("name {name} is not supported")))
        })
        .collect()
}

/// The leading keywords of a statement, for messages ("CREATE FUNCTION").
pub fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()) && *w == w.to_uppercase())
        .take(3)
        .collect();
    if words.is_empty() {
        "this statement".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_have_postgres_shape_and_position() {
        let Err(Error::Syntax { message, position }) = parse("SELECT 1 FROMM t") else {
            panic!("expected a syntax error");
        };
        assert_eq!(message, "syntax error at or near \"t\"");
        assert_eq!(position, Some(16));

        let Err(Error::Syntax { message, position }) = parse("SELECT * FROM") else {
            panic!("expected a syntax error");
        };
        assert_eq!(message, "syntax error at end of input");
        assert_eq!(position, Some(14));

        let Err(Error::Syntax { position, .. }) = parse("SELECT 1;\nSELEC 2") else {
            panic!("expected a syntax error");
        };
        assert_eq!(position, Some(11));
    }

    #[test]
    fn streaming_statements_are_not_supported_yet() {
        assert!(matches!(
            parse("CREATE SOURCE s (a int) WITH (connector = 'datagen')"),
            Err(Error::NotSupported(m)) if m.starts_with("CREATE SOURCE")
        ));
        assert!(matches!(
            parse("SUBSCRIBE TO mv"),
            Err(Error::NotSupported(_))
        ));
    }

    #[test]
    fn identifiers_fold_like_postgres() {
        let stmt = parse("SELECT 1 FROM MySchema.\"MixedCase\"")
            .unwrap()
            .remove(0);
        let Statement::Query(q) = stmt else { panic!() };
        let text = q.to_string();
        assert!(text.contains("MySchema.\"MixedCase\""));
        assert_eq!(ident_name(&Ident::new("ABC")), "abc");
        assert_eq!(ident_name(&Ident::with_quote('"', "ABC")), "ABC");
    }

    #[test]
    fn statement_kind_names_the_keywords() {
        let stmt = parse("CREATE ROLE bob").unwrap().remove(0);
        assert_eq!(
            statement_kind(&stmt),
            "CREATE ROLE bob"
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}
