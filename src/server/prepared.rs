//! SQL-level prepared statements: `PREPARE name AS ...`, `EXECUTE name(...)`,
//! `DEALLOCATE [PREPARE] name | ALL`. Protocol-level statements (Parse/Bind)
//! live in pgwire's portal store; drivers clean those up with `DEALLOCATE
//! ALL` (psycopg does on rollback), so it must succeed.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, visit_expressions_mut};
use pgwire::api::ClientInfo;

use crate::error::{Error, Result};

/// The statements one session prepared with PREPARE.
#[derive(Default)]
struct Prepared(Mutex<HashMap<String, Statement>>);

fn prepared<C: ClientInfo + ?Sized>(client: &C) -> std::sync::Arc<Prepared> {
    client
        .session_extensions()
        .get_or_insert_with(Prepared::default)
}

pub fn prepare<C: ClientInfo + ?Sized>(
    client: &C,
    name: &str,
    statement: &Statement,
) -> Result<()> {
    // PostgreSQL prepares only these; anything else (EXECUTE itself among
    // them, which would recurse without end) is a syntax error there too.
    if !matches!(
        statement,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_)
    ) {
        let text = statement.to_string();
        let keyword = text.split_whitespace().next().unwrap_or_default();
        return Err(Error::Syntax {
            message: format!("syntax error at or near \"{keyword}\""),
            position: None,
        });
    }
    let all = prepared(client);
    let mut map = all.0.lock().expect("prepared statements lock poisoned");
    if map.contains_key(name) {
        return Err(Error::DuplicatePrepared(name.to_string()));
    }
    map.insert(name.to_string(), statement.clone());
    Ok(())
}

/// The prepared statement with `$n` replaced by the EXECUTE arguments.
pub fn bind<C: ClientInfo + ?Sized>(
    client: &C,
    name: &str,
    arguments: &[Expr],
) -> Result<Statement> {
    let mut statement = prepared(client)
        .0
        .lock()
        .expect("prepared statements lock poisoned")
        .get(name)
        .cloned()
        .ok_or_else(|| Error::UndefinedPrepared(name.to_string()))?;
    substitute(&mut statement, name, arguments, true)?;
    Ok(statement)
}

/// `statement` with `$n` replaced by `literals[n - 1]` as they are.
pub fn with_literals(statement: &Statement, literals: &[Expr]) -> Result<Statement> {
    let mut statement = statement.clone();
    substitute(&mut statement, "", literals, false)?;
    Ok(statement)
}

/// Replaces every `$n` with argument n, in parentheses when `nest` (an
/// EXECUTE argument is any expression).
fn substitute(statement: &mut Statement, name: &str, arguments: &[Expr], nest: bool) -> Result<()> {
    let mut missing = None;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(id) = &v.value
            && let Some(index) = id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        {
            match arguments.get(index.wrapping_sub(1)) {
                Some(argument) if nest => *expr = Expr::Nested(Box::new(argument.clone())),
                Some(argument) => *expr = argument.clone(),
                None => missing = Some(index),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(index) = missing {
        return Err(Error::InvalidParameter(format!(
            "wrong number of parameters for prepared statement \"{name}\": no value for ${index}"
        )));
    }
    Ok(())
}

/// Forgets one statement, or all with `None`. A name we do not hold may be
/// a protocol-level statement (psycopg evicts its cache this way), which
/// pgwire's store owns: that is not an error.
pub fn deallocate<C: ClientInfo + ?Sized>(client: &C, name: Option<&str>) {
    let all = prepared(client);
    let mut map = all.0.lock().expect("prepared statements lock poisoned");
    match name {
        None => map.clear(),
        Some(name) => {
            map.remove(name);
        }
    }
}
