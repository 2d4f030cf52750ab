//! JSON values as PostgreSQL's jsonb keeps them.
//!
//! serde_json reads numbers as f64 or i64, so `1.50` would come back as
//! `1.5` and `12345678901234567890123` as a float; jsonb keeps numbers as
//! `numeric`, with their scale. This is a small parser of our own with
//! numbers kept as canonical numeric text, and the two output forms:
//! jsonb's (`{"a": 1, "b": [1, 2]}`, keys shortest first then bytewise, a
//! repeated key keeping its last value) and the spacing `json_build_object`
//! gives (`{"a" : 1}`).
//!
//! # Invariants
//! - `Number` holds numeric text as PostgreSQL prints it: no exponent, no
//!   leading zeros, no `-0`, the scale the input had (`1.50e1` is `15.0`).
//! - `Object` entries built by `parse` or `Json::object` are sorted and
//!   unique.

use std::cmp::Ordering;
use std::fmt::{self, Write};

/// Deeper nesting than this is refused, so a hostile document cannot run
/// the parser (or the recursive drop, print and compare) out of stack on a
/// 2 MiB thread, even in a debug build.
const MAX_DEPTH: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Why a text is not JSON, in PostgreSQL's words (SQLSTATE 22P02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `text` as jsonb does.
pub fn parse(text: &str) -> Result<Json, JsonError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    parser.skip_space();
    let value = parser.value(0)?;
    parser.skip_space();
    if parser.at < parser.bytes.len() {
        return Err(parser.error("Expected end of input"));
    }
    Ok(value)
}

/// jsonb's key order: shorter keys first, then bytewise.
fn key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Json {
    /// An object from entries in any order; a repeated key keeps its last
    /// value.
    pub fn object(mut entries: Vec<(String, Json)>) -> Json {
        // A stable sort keeps repeated keys in input order; the last wins.
        entries.sort_by(|a, b| key_order(&a.0, &b.0));
        let mut unique: Vec<(String, Json)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match unique.last_mut() {
                Some(last) if last.0 == key => last.1 = value,
                _ => unique.push((key, value)),
            }
        }
        Json::Object(unique)
    }

    /// A number from numeric or integer text (`None` if it is not one).
    pub fn number(text: &str) -> Option<Json> {
        canonical_number(text).map(Json::Number)
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The element at `index`; a negative index counts from the end.
    pub fn at(&self, index: i64) -> Option<&Json> {
        let Json::Array(items) = self else {
            return None;
        };
        let len = items.len() as i64;
        let index = if index < 0 { len + index } else { index };
        usize::try_from(index).ok().and_then(|i| items.get(i))
    }

    /// The value `->>` gives: a string's contents, NULL for JSON null, the
    /// jsonb text of anything else.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// jsonb's `@>`: every key and element of `other` is found in `self`,
    /// recursively. At the top level an array also contains a scalar that
    /// is one of its elements.
    pub fn contains(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Array(_), scalar) if !matches!(scalar, Json::Array(_) | Json::Object(_)) => {
                self.deep_contains(&Json::Array(vec![scalar.clone()]))
            }
            _ => self.deep_contains(other),
        }
    }

    fn deep_contains(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Object(_), Json::Object(wanted)) => wanted
                .iter()
                .all(|(key, value)| self.get(key).is_some_and(|have| have.deep_contains(value))),
            (Json::Array(items), Json::Array(wanted)) => wanted
                .iter()
                .all(|w| items.iter().any(|item| item.deep_contains(w))),
            (Json::Number(a), Json::Number(b)) => same_number(a, b),
            (a, b) => a == b,
        }
    }

    /// jsonb's `?`: `key` is a top-level key, or a string element of a
    /// top-level array (or the string itself).
    pub fn has_key(&self, key: &str) -> bool {
        match self {
            Json::Object(_) => self.get(key).is_some(),
            Json::Array(items) => items
                .iter()
                .any(|item| matches!(item, Json::String(s) if s == key)),
            Json::String(s) => s == key,
            _ => false,
        }
    }

    /// jsonb's `||`: objects merge (the right side wins), anything else
    /// concatenates as arrays.
    pub fn concat(self, other: Json) -> Json {
        match (self, other) {
            (Json::Object(mut left), Json::Object(right)) => {
                left.extend(right);
                Json::object(left)
            }
            (left, right) => {
                let mut items = left.into_items();
                items.extend(right.into_items());
                Json::Array(items)
            }
        }
    }

    fn into_items(self) -> Vec<Json> {
        match self {
            Json::Array(items) => items,
            other => vec![other],
        }
    }

    /// jsonb's `- text`: drops a key, or the matching string elements.
    pub fn without_key(self, key: &str) -> Json {
        match self {
            Json::Object(entries) => {
                Json::Object(entries.into_iter().filter(|(k, _)| k != key).collect())
            }
            Json::Array(items) => Json::Array(
                items
                    .into_iter()
                    .filter(|item| !matches!(item, Json::String(s) if s == key))
                    .collect(),
            ),
            other => other,
        }
    }

    /// jsonb's `- integer`: drops an array element (negative from the end).
    pub fn without_index(self, index: i64) -> Json {
        match self {
            Json::Array(mut items) => {
                let len = items.len() as i64;
                let index = if index < 0 { len + index } else { index };
                if (0..len).contains(&index) {
                    items.remove(index as usize);
                }
                Json::Array(items)
            }
            other => other,
        }
    }

    /// `jsonb_strip_nulls`: object fields whose value is null, at any depth.
    pub fn strip_nulls(self) -> Json {
        match self {
            Json::Object(entries) => Json::Object(
                entries
                    .into_iter()
                    .filter(|(_, v)| *v != Json::Null)
                    .map(|(k, v)| (k, v.strip_nulls()))
                    .collect(),
            ),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::strip_nulls).collect()),
            other => other,
        }
    }

    /// The text `json_build_object` and `json_agg` give (type json): a
    /// space on both sides of every colon.
    pub fn to_json_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, " : ");
        out
    }

    fn write(&self, out: &mut String, colon: &str) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out, colon);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_string(key, out);
                    out.push_str(colon);
                    value.write(out, colon);
                }
                out.push('}');
            }
        }
    }
}

/// jsonb's output form.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out, ": ");
        f.write_str(&out)
    }
}

/// A string literal with PostgreSQL's escapes.
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Numbers are equal when their values are: `1.0` and `1` are.
fn same_number(a: &str, b: &str) -> bool {
    fn trimmed(n: &str) -> &str {
        if n.contains('.') {
            n.trim_end_matches('0').trim_end_matches('.')
        } else {
            n
        }
    }
    trimmed(a) == trimmed(b)
}

/// `-?digits(.digits)?(e[+-]?digits)?` as PostgreSQL's numeric prints it.
fn canonical_number(text: &str) -> Option<String> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: String = format!("{whole}{fraction}");
    // The value is digits * 10^-(scale).
    let scale = fraction.len() as i64 - exponent;
    if scale.unsigned_abs() > 100_000 {
        return None;
    }
    let (integer, decimals) = if scale <= 0 {
        (
            format!("{digits}{}", "0".repeat((-scale) as usize)),
            String::new(),
        )
    } else {
        let scale = scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (i, d) = padded.split_at(padded.len() - scale);
        (i.to_string(), d.to_string())
    };
    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let zero = integer == "0" && decimals.bytes().all(|b| b == b'0');
    let mut out = String::new();
    if negative && !zero {
        out.push('-');
    }
    out.push_str(integer);
    if !decimals.is_empty() {
        out.push('.');
        out.push_str(&decimals);
    }
    Some(out)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, detail: &str) -> JsonError {
        let token: String = self.text[self.at.min(self.text.len())..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !",:]}".contains(*c))
            .take(20)
            .collect();
        let token = if token.is_empty() {
            "end of input".to_string()
        } else {
            format!("\"{token}\"")
        };
        JsonError(format!(
            "invalid input syntax for type json: {detail} at {token}"
        ))
    }

    fn skip_space(&mut self) {
        while self.at < self.bytes.len()
            && matches!(self.bytes[self.at], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError(format!(
                "invalid input syntax for type json: nested deeper than {MAX_DEPTH} levels"
            )));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.word(),
            None => Err(self.error("The input string ended unexpectedly")),
        }
    }

    fn word(&mut self) -> Result<Json, JsonError> {
        for (word, value) in [
            ("true", Json::Bool(true)),
            ("false", Json::Bool(false)),
            ("null", Json::Null),
        ] {
            if self.text[self.at..].starts_with(word) {
                let end = self.at + word.len();
                if !self
                    .bytes
                    .get(end)
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                {
                    self.at = end;
                    return Ok(value);
                }
            }
        }
        Err(self.error("Token is invalid"))
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.at += 1;
            }
            p.at - from
        };
        let whole_start = self.at;
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.bytes[whole_start] == b'0') {
            self.at = start;
            return Err(self.error("Token is invalid"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                self.at = start;
                return Err(self.error("Token is invalid"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                self.at = start;
                return Err(self.error("Token is invalid"));
            }
        }
        if self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.at = start;
            return Err(self.error("Token is invalid"));
        }
        canonical_number(&self.text[start..self.at])
            .map(Json::Number)
            .ok_or_else(|| JsonError("value overflows numeric format".into()))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("The input string ended unexpectedly"));
            };
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self
                        .peek()
                        .ok_or_else(|| self.error("The input string ended unexpectedly"))?;
                    self.at += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            self.at -= 2;
                            return Err(self.error("Escape sequence is invalid"));
                        }
                    }
                }
                b if b < 0x20 => {
                    return Err(
                        self.error(&format!("Character with value 0x{b:02x} must be escaped"))
                    );
                }
                _ => {
                    let rest = &self.text[self.at..];
                    let end = rest.find(['"', '\\']).unwrap_or(rest.len());
                    let chunk = &rest[..end];
                    let clean = chunk.bytes().position(|b| b < 0x20).unwrap_or(chunk.len());
                    out.push_str(&chunk[..clean]);
                    self.at += clean;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            return Err(self.error("\"\\u\" must be followed by four hexadecimal digits"));
        };
        self.at += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("Escape sequence is invalid"))
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        if first == 0 {
            return Err(JsonError(
                "unsupported Unicode escape sequence: \\u0000 cannot be converted to text".into(),
            ));
        }
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.text[self.at..].starts_with("\\u") {
                return Err(JsonError("invalid input syntax for type json: Unicode high surrogate must not follow a high surrogate or be alone".into()));
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(JsonError("invalid input syntax for type json: Unicode low surrogate must follow a high surrogate".into()));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| JsonError("invalid input syntax for type json: Unicode low surrogate must follow a high surrogate".into()))
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_space();
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                None => return Err(self.error("The input string ended unexpectedly")),
                Some(_) => return Err(self.error("Expected \",\" or \"]\", but found")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.at += 1;
        let mut entries = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return Err(self.error("Expected string, but found"));
            }
            let key = self.string()?;
            self.skip_space();
            if self.peek() != Some(b':') {
                return Err(self.error("Expected \":\", but found"));
            }
            self.at += 1;
            self.skip_space();
            entries.push((key, self.value(depth + 1)?));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::object(entries));
                }
                None => return Err(self.error("The input string ended unexpectedly")),
                Some(_) => return Err(self.error("Expected \",\" or \"}\", but found")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonb(text: &str) -> String {
        parse(text).unwrap().to_string()
    }

    #[test]
    fn output_is_jsonb_canonical() {
        assert_eq!(
            jsonb(r#"{"bb":1, "a" : [1,2,{"c":null}], "bb": 2}"#),
            r#"{"a": [1, 2, {"c": null}], "bb": 2}"#
        );
        assert_eq!(
            jsonb(r#""tab\there\u00e9 \"q\"""#),
            "\"tab\\there\u{e9} \\\"q\\\"\""
        );
        assert_eq!(jsonb(" true "), "true");
    }

    #[test]
    fn numbers_keep_their_scale_as_numeric_does() {
        assert_eq!(jsonb("1.50"), "1.50");
        assert_eq!(jsonb("1e2"), "100");
        assert_eq!(jsonb("1.50e1"), "15.0");
        assert_eq!(jsonb("-0"), "0");
        assert_eq!(jsonb("2.5E-3"), "0.0025");
        assert_eq!(jsonb("12345678901234567890123"), "12345678901234567890123");
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "tru",
            r#"{"a" 1}"#,
            r#""\x""#,
            "\"a\nb\"",
            "1 2",
            r#""\u0000""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn containment_follows_jsonb() {
        let c = |a: &str, b: &str| parse(a).unwrap().contains(&parse(b).unwrap());
        assert!(c(r#"{"a":1,"b":{"c":2,"d":3}}"#, r#"{"b":{"c":2}}"#));
        assert!(!c(r#"{"a":1}"#, r#"{"a":2}"#));
        assert!(c("[1,2,[3,4]]", "[[3]]"));
        assert!(c("[1,2,3]", "[1,1]"));
        assert!(c(r#"["foo","bar"]"#, r#""foo""#));
        assert!(!c(r#"{"a":[1,2]}"#, r#"{"a":1}"#));
        assert!(c("[1.0]", "[1]"));
        assert!(!c("1", "[1]"));
    }

    #[test]
    fn edits_follow_jsonb() {
        let j = |t: &str| parse(t).unwrap();
        assert_eq!(
            j(r#"{"a":1}"#).concat(j(r#"{"a":2,"b":3}"#)).to_string(),
            r#"{"a": 2, "b": 3}"#
        );
        assert_eq!(j("[1]").concat(j("2")).to_string(), "[1, 2]");
        assert_eq!(
            j(r#"{"a":1,"b":2}"#).without_key("a").to_string(),
            r#"{"b": 2}"#
        );
        assert_eq!(j("[1,2,3]").without_index(-1).to_string(), "[1, 2]");
        assert_eq!(
            j(r#"{"a":null,"b":[{"c":null}]}"#)
                .strip_nulls()
                .to_string(),
            r#"{"b": [{}]}"#
        );
        assert_eq!(j(r#"{"a":[1,"x"]}"#).to_json_text(), r#"{"a" : [1, "x"]}"#);
    }
}
