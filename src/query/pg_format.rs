//! PostgreSQL's `format(formatstr, args...)` and the identifier quoting it
//! shares with the catalog functions.
//!
//! A specifier is `%[position$][-][width]type`: `%s` the value as text
//! (NULL as nothing), `%I` an identifier quoted where needed, `%L` a
//! literal (NULL as `NULL`), `%%` a percent sign. An argument without a
//! position takes the one after the last used, as in PostgreSQL. Values
//! become text as PostgreSQL prints them for the common types (booleans
//! `t`/`f`, timestamps with a space).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, Volatility};

use crate::error::Error;

/// Keywords PostgreSQL's `quote_ident` quotes: every keyword that is not
/// unreserved (reserved, type/function-name and column-name keywords).
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// `name` as PostgreSQL's `quote_ident` writes it: bare when it is
/// lowercase letters, digits and underscores not starting with a digit and
/// not a keyword that needs quotes; else in double quotes, doubled inside.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !QUOTED_KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `text` as a SQL literal, as PostgreSQL's `quote_literal` writes it.
pub fn quote_literal(text: &str) -> String {
    let body = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

fn invalid(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(Error::Data {
        code: "22023",
        message,
    }))
}

/// Each value of `array` as PostgreSQL prints it, `None` for NULL.
fn texts(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    if let DataType::Boolean = array.data_type() {
        return Ok(array
            .as_boolean()
            .iter()
            .map(|b| b.map(|b| if b { "t" } else { "f" }.to_string()))
            .collect());
    }
    let options = FormatOptions::default()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    // Logical nulls: an untyped NULL argument is a NullArray, which has no
    // null buffer.
    let nulls = array.logical_nulls();
    Ok((0..array.len())
        .map(|i| {
            nulls
                .as_ref()
                .is_none_or(|n| n.is_valid(i))
                .then(|| formatter.value(i).to_string())
        })
        .collect())
}

/// One row: `format` applied to `args`.
fn format_row(format: &str, args: &[Option<&str>]) -> Result<String> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let mut position = None;
        if chars.peek() == Some(&'$') && !digits.is_empty() {
            chars.next();
            let n: usize = digits
                .parse()
                .map_err(|_| invalid("argument number is out of range".into()))?;
            if n == 0 {
                return Err(invalid(
                    "format specifies argument 0, but arguments are numbered from 1".into(),
                ));
            }
            position = Some(n - 1);
            digits.clear();
        }
        let left = chars.peek() == Some(&'-');
        if left {
            chars.next();
        }
        if digits.is_empty() {
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
        }
        let width: usize = if digits.is_empty() {
            0
        } else {
            digits
                .parse()
                .map_err(|_| invalid("number is out of range".into()))?
        };
        let Some(kind) = chars.next() else {
            return Err(invalid("unterminated format() type specifier".into()));
        };
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(invalid(format!(
                "unrecognized format() type specifier \"{kind}\""
            )));
        }
        let index = position.unwrap_or(next);
        next = index + 1;
        let Some(value) = args.get(index) else {
            return Err(invalid("too few arguments for format()".into()));
        };
        let text = match (kind, value) {
            ('s', v) => v.unwrap_or("").to_string(),
            ('L', None) => "NULL".to_string(),
            ('L', Some(v)) => quote_literal(v),
            (_, None) => {
                return Err(DataFusionError::External(Box::new(Error::Data {
                    code: "22004",
                    message: "null values cannot be formatted as an SQL identifier".into(),
                })));
            }
            (_, Some(v)) => quote_ident(v),
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// `format(formatstr, args...)`; a NULL format string gives NULL.
pub fn format_function() -> ScalarUDF {
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "format",
        Signature::variadic_any(Volatility::Stable),
        DataType::Utf8,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let Some((format, rest)) = arrays.split_first() else {
                return Err(invalid("format() needs a format string".into()));
            };
            let formats = texts(format)?;
            let values = rest.iter().map(texts).collect::<Result<Vec<_>>>()?;
            let rows = formats
                .iter()
                .enumerate()
                .map(|(row, format)| {
                    let Some(format) = format else {
                        return Ok(None);
                    };
                    let args: Vec<Option<&str>> =
                        values.iter().map(|v| v[row].as_deref()).collect();
                    format_row(format, &args).map(Some)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(rows))))
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values are PostgreSQL 15's answers to the same calls.
    #[test]
    fn formats_as_postgresql_does() {
        let cases: &[(&str, &[Option<&str>], &str)] = &[
            (
                "%s|%I|%L|%%|%2$s",
                &[Some("a b"), Some("Tab"), Some("it's")],
                "a b|\"Tab\"|'it''s'|%|Tab",
            ),
            ("[%5s][%-5s]", &[Some("ab"), Some("cd")], "[   ab][cd   ]"),
            ("%1$s %1$s %s", &[Some("x"), Some("y")], "x x y"),
            ("%L|%s|", &[None, None], "NULL||"),
            (
                "%I.%I",
                &[Some("public"), Some("select")],
                "public.\"select\"",
            ),
        ];
        for (format, args, expected) in cases {
            assert_eq!(format_row(format, args).unwrap(), *expected, "{format}");
        }
        assert!(format_row("%s", &[]).is_err());
        assert!(format_row("%z", &[Some("1")]).is_err());
        assert!(format_row("%I", &[None]).is_err());
    }
}
