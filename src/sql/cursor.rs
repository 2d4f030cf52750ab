//! `FETCH` and `MOVE` in PostgreSQL's grammar. sqlparser has no MOVE, and
//! its FETCH takes neither a signed count, nor `FORWARD`/`BACKWARD` without
//! one, nor a missing `FROM`/`IN` (`FETCH c`, `MOVE -5 c`, as psycopg
//! sends them), so both are read here from sqlparser's tokens.
//!
//! Both travel as sqlparser's FETCH node; MOVE is told apart by an `INTO`
//! of `MOVE_MARKER`, which no parsed statement can carry (this parser takes
//! every FETCH and refuses INTO, which PostgreSQL has only in PL/pgSQL).

use datafusion::sql::sqlparser::ast::{
    FetchDirection, FetchPosition, Ident, ObjectName, ObjectNamePart, Statement, Value,
    ValueWithSpan,
};
use datafusion::sql::sqlparser::tokenizer::{Token, Word};

use crate::error::{Error, Result};

const MOVE_MARKER: &str = "freshet.move";

/// Where a FETCH or MOVE goes, in PostgreSQL's terms (a count is signed:
/// negative goes backward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `n`, `FORWARD n`, `BACKWARD n` (as `-n`), NEXT (1), PRIOR (-1).
    Count(i64),
    /// `ALL`, `FORWARD ALL`.
    ForwardAll,
    BackwardAll,
    /// `ABSOLUTE n`, FIRST (1), LAST (-1).
    Absolute(i64),
    Relative(i64),
}

/// A FETCH or MOVE as the cursor runtime takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorStep {
    /// MOVE positions the cursor without returning rows.
    pub is_move: bool,
    pub direction: Direction,
    pub cursor: String,
}

/// Whether the statement's first word makes it a FETCH or MOVE.
pub(super) fn starts_cursor_step(tokens: &[Token]) -> bool {
    words(tokens).first().is_some_and(|t| {
        matches!(t, Token::Word(w) if w.quote_style.is_none()
            && (w.value.eq_ignore_ascii_case("fetch") || w.value.eq_ignore_ascii_case("move")))
    })
}

fn words(tokens: &[Token]) -> Vec<&Token> {
    tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect()
}

/// Parses one FETCH or MOVE statement (its tokens, without the `;`).
pub(super) fn parse(tokens: &[Token]) -> Result<Statement> {
    let tokens = words(tokens);
    let mut at = 0;
    let keyword = |t: Option<&&Token>, k: &str| matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let is_move = keyword(tokens.first(), "move");
    let what = if is_move { "MOVE" } else { "FETCH" };
    at += 1;
    // A word followed by more than the cursor name is a direction keyword.
    let direction = if let Some(count) = count_at(&tokens, at) {
        at += count.1;
        Direction::Count(count.0)
    } else if tokens.len() > at + 1 || keyword(tokens.get(at), "from") {
        let next = tokens.get(at);
        let direction = if keyword(next, "next") {
            Some(Direction::Count(1))
        } else if keyword(next, "prior") {
            Some(Direction::Count(-1))
        } else if keyword(next, "first") {
            Some(Direction::Absolute(1))
        } else if keyword(next, "last") {
            Some(Direction::Absolute(-1))
        } else if keyword(next, "all") {
            Some(Direction::ForwardAll)
        } else if keyword(next, "absolute") || keyword(next, "relative") {
            let absolute = keyword(next, "absolute");
            let (n, used) = count_at(&tokens, at + 1)
                .ok_or_else(|| syntax(what, "a row count after ABSOLUTE or RELATIVE"))?;
            at += used;
            Some(if absolute {
                Direction::Absolute(n)
            } else {
                Direction::Relative(n)
            })
        } else if keyword(next, "forward") || keyword(next, "backward") {
            let sign = if keyword(next, "forward") { 1 } else { -1 };
            if keyword(tokens.get(at + 1), "all") {
                at += 1;
                Some(if sign > 0 {
                    Direction::ForwardAll
                } else {
                    Direction::BackwardAll
                })
            } else if let Some((n, used)) = count_at(&tokens, at + 1) {
                at += used;
                Some(Direction::Count(sign * n))
            } else {
                Some(Direction::Count(sign))
            }
        } else {
            None
        };
        if direction.is_some() {
            at += 1;
        }
        direction.unwrap_or(Direction::Count(1))
    } else {
        Direction::Count(1)
    };
    if keyword(tokens.get(at), "from") || keyword(tokens.get(at), "in") {
        at += 1;
    }
    let cursor = match tokens.get(at) {
        Some(Token::Word(word)) if at + 1 == tokens.len() => name(word),
        _ => return Err(syntax(what, "a cursor name at the end")),
    };
    Ok(encode(&CursorStep {
        is_move,
        direction,
        cursor,
    }))
}

/// A signed integer at `at`: its value and how many tokens it took.
fn count_at(tokens: &[&Token], at: usize) -> Option<(i64, usize)> {
    let (sign, at_number, used) = match tokens.get(at) {
        Some(Token::Minus) => (-1, at + 1, 2),
        Some(Token::Plus) => (1, at + 1, 2),
        _ => (1, at, 1),
    };
    match tokens.get(at_number) {
        Some(Token::Number(digits, _)) => digits.parse::<i64>().ok().map(|n| (sign * n, used)),
        _ => None,
    }
}

fn name(word: &Word) -> String {
    super::ident_name(&match word.quote_style {
        Some(quote) => Ident::with_quote(quote, word.value.clone()),
        None => Ident::new(word.value.clone()),
    })
}

fn syntax(what: &str, expected: &str) -> Error {
    Error::Syntax {
        message: format!("syntax error in {what}: expected {expected}"),
        position: None,
    }
}

fn encode(step: &CursorStep) -> Statement {
    let number = |n: i64| Value::Number(n.to_string(), false).into();
    let direction = match step.direction {
        Direction::Count(n) => FetchDirection::Count { limit: number(n) },
        Direction::ForwardAll => FetchDirection::ForwardAll,
        Direction::BackwardAll => FetchDirection::BackwardAll,
        Direction::Absolute(n) => FetchDirection::Absolute { limit: number(n) },
        Direction::Relative(n) => FetchDirection::Relative { limit: number(n) },
    };
    Statement::Fetch {
        name: Ident::with_quote('"', step.cursor.clone()),
        direction,
        position: FetchPosition::From,
        into: step
            .is_move
            .then(|| ObjectName::from(vec![Ident::new(MOVE_MARKER)])),
    }
}

/// The FETCH or MOVE a statement carries (see the module doc).
pub fn step(statement: &Statement) -> Option<CursorStep> {
    let Statement::Fetch {
        name,
        direction,
        into,
        ..
    } = statement
    else {
        return None;
    };
    let number = |v: &ValueWithSpan| match &v.value {
        Value::Number(n, _) => n.parse::<i64>().ok(),
        _ => None,
    };
    let direction = match direction {
        FetchDirection::Count { limit } => Direction::Count(number(limit)?),
        FetchDirection::ForwardAll | FetchDirection::All => Direction::ForwardAll,
        FetchDirection::BackwardAll => Direction::BackwardAll,
        FetchDirection::Absolute { limit } => Direction::Absolute(number(limit)?),
        FetchDirection::Relative { limit } => Direction::Relative(number(limit)?),
        FetchDirection::Next => Direction::Count(1),
        FetchDirection::Prior => Direction::Count(-1),
        FetchDirection::First => Direction::Absolute(1),
        FetchDirection::Last => Direction::Absolute(-1),
        FetchDirection::Forward { limit } => {
            Direction::Count(limit.as_ref().map_or(Some(1), number)?)
        }
        FetchDirection::Backward { limit } => {
            Direction::Count(-limit.as_ref().map_or(Some(1), number)?)
        }
    };
    Some(CursorStep {
        is_move: into.as_ref().is_some_and(|into| {
            matches!(into.0.as_slice(), [ObjectNamePart::Identifier(i)] if i.value == MOVE_MARKER)
        }),
        direction,
        cursor: name.value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    fn read(sql: &str) -> Result<CursorStep> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize()
            .unwrap();
        assert!(starts_cursor_step(&tokens));
        Ok(step(&parse(&tokens)?).unwrap())
    }

    fn fetch(direction: Direction, cursor: &str) -> CursorStep {
        CursorStep {
            is_move: false,
            direction,
            cursor: cursor.into(),
        }
    }

    #[test]
    fn reads_every_direction_postgresql_has() {
        use Direction::*;
        let cases = [
            ("FETCH c", Count(1)),
            ("fetch from c", Count(1)),
            ("FETCH NEXT FROM c", Count(1)),
            ("FETCH PRIOR IN c", Count(-1)),
            ("FETCH FIRST c", Absolute(1)),
            ("FETCH LAST FROM c", Absolute(-1)),
            ("FETCH ABSOLUTE -2 FROM c", Absolute(-2)),
            ("FETCH RELATIVE 0 c", Relative(0)),
            ("FETCH 5 c", Count(5)),
            ("FETCH -5 FROM c", Count(-5)),
            ("FETCH +3 FROM c", Count(3)),
            ("FETCH ALL c", ForwardAll),
            ("FETCH FORWARD FROM c", Count(1)),
            ("FETCH FORWARD 10 FROM c", Count(10)),
            ("FETCH FORWARD ALL FROM c", ForwardAll),
            ("FETCH BACKWARD c", Count(-1)),
            ("FETCH BACKWARD 2 IN c", Count(-2)),
            ("FETCH BACKWARD ALL FROM c", BackwardAll),
        ];
        for (sql, direction) in cases {
            assert_eq!(read(sql).unwrap(), fetch(direction, "c"), "{sql}");
        }
    }

    #[test]
    fn move_and_quoted_names() {
        let step = read(r#"MOVE ABSOLUTE 3 FROM "My Cursor""#).unwrap();
        assert!(step.is_move);
        assert_eq!(step.direction, Direction::Absolute(3));
        assert_eq!(step.cursor, "My Cursor");
        assert_eq!(read("move -100 C").unwrap().cursor, "c");
        assert!(!read("FETCH 1 FROM c").unwrap().is_move);
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        for sql in [
            "FETCH",
            "FETCH FROM",
            "FETCH 1 FROM c d",
            "FETCH ABSOLUTE FROM c",
        ] {
            assert!(
                matches!(read(sql), Err(Error::Syntax { .. })),
                "{sql} should be refused"
            );
        }
    }
}
