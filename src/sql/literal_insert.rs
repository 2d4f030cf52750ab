//! The fast way in for `INSERT INTO t [(columns)] VALUES (literal, ...), ...`.
//!
//! This is what loaders, ORMs and benchmarks send, often thousands of rows
//! at a time. sqlparser's expression parser first tries each value as a
//! typed string (`DATE '...'`) and formats an error message when that
//! fails, so for a 1,000-row INSERT most of the statement's CPU went into
//! parsing (see docs/benchmarks.md). Here the VALUES rows are read by a
//! scanner that knows only plain literals: numbers, optionally signed,
//! single-quoted strings, NULL, TRUE and FALSE. The statement's head
//! (through its first row) is still parsed by sqlparser, so table and
//! column names mean what they always mean; the remaining rows are put into
//! that AST in the shape sqlparser would have given them.
//!
//! Anything outside that subset (a comment, an `E'...'` string, a cast, an
//! expression, a second statement) returns `None` and the caller parses the
//! whole text the ordinary way: the fast path changes speed, never meaning.

use datafusion::sql::sqlparser::ast::{Expr, SetExpr, Statement, UnaryOperator, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The statement, if `sql` is one literal INSERT ... VALUES.
pub fn parse(sql: &str) -> Option<Statement> {
    let mut scan = Scanner {
        text: sql.as_bytes(),
        at: 0,
    };
    scan.keyword("INSERT")?;
    scan.keyword("INTO")?;
    scan.name()?;
    while scan.eat(b'.') {
        scan.name()?;
    }
    scan.space();
    if scan.peek() == Some(b'(') {
        scan.at += 1;
        loop {
            scan.space();
            scan.name()?;
            scan.space();
            if scan.eat(b')') {
                break;
            }
            if !scan.eat(b',') {
                return None;
            }
        }
    }
    scan.keyword("VALUES")?;
    let mut rows: Vec<Vec<Expr>> = Vec::new();
    let mut head_end = 0;
    loop {
        scan.space();
        rows.push(scan.row()?);
        if head_end == 0 {
            head_end = scan.at;
        }
        scan.space();
        if !scan.eat(b',') {
            break;
        }
    }
    scan.space();
    scan.eat(b';');
    scan.space();
    if scan.at != sql.len() {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql.get(..head_end)?).ok()?;
    let mut statement = statements.pop()?;
    if !statements.is_empty() {
        return None;
    }
    let Statement::Insert(insert) = &mut statement else {
        return None;
    };
    let source = insert.source.as_mut()?;
    let SetExpr::Values(values) = source.body.as_mut() else {
        return None;
    };
    // The head parsed to exactly our first row, or the scanner and
    // sqlparser disagree about the text and the ordinary path decides.
    if values.rows.len() != 1 || values.rows[0].content != rows[0] {
        return None;
    }
    for content in rows.into_iter().skip(1) {
        let mut row = values.rows[0].clone();
        row.content = content;
        values.rows.push(row);
    }
    Some(statement)
}

struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Skips blanks. A comment is not skipped: it ends the fast path.
    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn word(&mut self) -> Option<&[u8]> {
        let start = self.at;
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_')) {
            return None;
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'$')
        ) {
            self.at += 1;
        }
        Some(&self.text[start..self.at])
    }

    fn keyword(&mut self, keyword: &str) -> Option<()> {
        self.space();
        self.word()?
            .eq_ignore_ascii_case(keyword.as_bytes())
            .then_some(())
    }

    /// An identifier, plain or double-quoted (its meaning is sqlparser's:
    /// the head is parsed again there).
    fn name(&mut self) -> Option<()> {
        self.space();
        if self.eat(b'"') {
            loop {
                match self.peek()? {
                    b'"' if self.text.get(self.at + 1) == Some(&b'"') => self.at += 2,
                    b'"' => {
                        self.at += 1;
                        return Some(());
                    }
                    _ => self.at += 1,
                }
            }
        }
        self.word().map(|_| ())
    }

    fn row(&mut self) -> Option<Vec<Expr>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut values = Vec::new();
        loop {
            self.space();
            values.push(self.literal()?);
            self.space();
            if self.eat(b')') {
                return Some(values);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// One literal, as sqlparser's AST has it: a sign is a unary operator
    /// over the number.
    fn literal(&mut self) -> Option<Expr> {
        let value = match self.peek()? {
            sign @ (b'-' | b'+') => {
                self.at += 1;
                self.space();
                let op = if sign == b'-' {
                    UnaryOperator::Minus
                } else {
                    UnaryOperator::Plus
                };
                let number = self.number()?;
                return Some(Expr::UnaryOp {
                    op,
                    expr: Box::new(Expr::Value(number.with_empty_span())),
                });
            }
            b'0'..=b'9' | b'.' => self.number()?,
            b'\'' => self.string()?,
            _ => {
                let word = self.word()?;
                if word.eq_ignore_ascii_case(b"NULL") {
                    Value::Null
                } else if word.eq_ignore_ascii_case(b"TRUE") {
                    Value::Boolean(true)
                } else if word.eq_ignore_ascii_case(b"FALSE") {
                    Value::Boolean(false)
                } else {
                    return None;
                }
            }
        };
        Some(Expr::Value(value.with_empty_span()))
    }

    /// Digits with an optional fraction and exponent, ending where a
    /// separator follows (`12abc` or `1.2.3` are not for this path).
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        let digits = |s: &mut Self| {
            let from = s.at;
            while matches!(s.peek(), Some(b'0'..=b'9')) {
                s.at += 1;
            }
            s.at - from
        };
        let mut count = digits(self);
        if self.eat(b'.') {
            count += digits(self);
        }
        if count == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        if !matches!(
            self.peek(),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b')')
        ) {
            return None;
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        Some(Value::Number(text.to_string(), false))
    }

    /// `'...'` with `''` for a quote; backslashes are plain characters
    /// (standard_conforming_strings). A string followed by another string
    /// on the next line (SQL's continuation) is left to sqlparser.
    fn string(&mut self) -> Option<Value> {
        self.at += 1;
        let mut bytes = Vec::new();
        loop {
            match self.peek()? {
                b'\'' if self.text.get(self.at + 1) == Some(&b'\'') => {
                    bytes.push(b'\'');
                    self.at += 2;
                }
                b'\'' => {
                    self.at += 1;
                    break;
                }
                byte => {
                    bytes.push(byte);
                    self.at += 1;
                }
            }
        }
        let rest = &self.text[self.at..];
        let next = rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if next.is_some_and(|n| rest[n] == b'\'') {
            return None;
        }
        Some(Value::SingleQuotedString(String::from_utf8(bytes).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ordinary(sql: &str) -> Statement {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        assert_eq!(statements.len(), 1);
        statements.pop().unwrap()
    }

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (any::<u32>(), 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
            (1u32..100, -20i32..20).prop_map(|(a, e)| format!("{a}e{e}")),
            "[a-z' \\\\;,()é]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
            Just("NULL".to_string()),
            Just("true".to_string()),
            Just("FALSE".to_string()),
            Just("- 5".to_string()),
            Just("+.5".to_string()),
            Just("7.".to_string()),
        ]
    }

    proptest! {
        /// Whatever the fast path accepts, it reads as sqlparser does.
        #[test]
        fn reads_as_sqlparser_does(
            rows in proptest::collection::vec(proptest::collection::vec(literal(), 3), 1..6),
            blank in "[ \n\t]{0,2}",
        ) {
            let body: Vec<String> = rows
                .iter()
                .map(|r| format!("({})", r.join(&format!(",{blank}"))))
                .collect();
            let sql = format!("insert into public.t (a, \"B\", c) values{blank}{};", body.join(", "));
            let fast = parse(&sql);
            prop_assert!(fast.is_some(), "{sql}");
            prop_assert_eq!(fast.unwrap(), ordinary(&sql));
        }
    }

    #[test]
    fn anything_else_takes_the_ordinary_path() {
        for sql in [
            "INSERT INTO t VALUES (1) RETURNING *",
            "INSERT INTO t VALUES (1 + 1)",
            "INSERT INTO t VALUES ('1'::int)",
            "INSERT INTO t VALUES (E'a\\n')",
            "INSERT INTO t VALUES (1) -- comment",
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            "INSERT INTO t VALUES ('a'\n'b')",
            "INSERT INTO t VALUES (12abc)",
            "INSERT INTO t SELECT 1",
            "INSERT INTO t VALUES (now())",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
        ] {
            assert!(parse(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn plain_inserts_take_it() {
        for sql in [
            "INSERT INTO t VALUES (1, 'a', NULL)",
            "insert into \"Odd\"\"Name\" (x) values (-1.5e3), (2)",
            "INSERT INTO s.t (k) VALUES ('it''s \\ fine');",
        ] {
            assert_eq!(parse(sql), Some(ordinary(sql)), "{sql}");
        }
    }
}
