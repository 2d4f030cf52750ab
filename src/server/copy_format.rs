//! COPY's text and CSV formats, as PostgreSQL reads and writes them
//! (binary is `copy_binary.rs`).
//!
//! Text: one line per row, fields split by the delimiter (tab), `\N` for
//! NULL, backslash escapes (`\n`, `\t`, `\\`, octal `\123`, hex `\x41`, and
//! a backslash before any other character stands for that character), and
//! `\.` alone on a line ends the data. NULL is recognised on the field as
//! sent, before escapes are undone, as PostgreSQL does.
//!
//! CSV: fields split by the delimiter (`,`), quoted with `"` when they hold
//! a delimiter, quote, newline or carriage return, a quote inside doubled
//! (or preceded by ESCAPE). NULL is an unquoted empty field; a quoted empty
//! field is the empty string. A quoted field may span lines.
//!
//! Line numbers count records from 1, the header included, so that an
//! error names the line a person sees in the file.

use datafusion::arrow::datatypes::Field;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, Ident};

use crate::error::{Error, Result};

/// The options of one COPY statement that decide how its data looks.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFormat {
    pub csv: bool,
    pub binary: bool,
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
    /// CSV output: columns quoted even when they need not be.
    pub force_quote: Option<Vec<String>>,
}

use crate::database::CopyRecord as Record;

fn one_byte(what: &str, c: char) -> Result<u8> {
    if c.is_ascii() && c != '\n' && c != '\r' {
        Ok(c as u8)
    } else {
        Err(Error::NotSupported(format!(
            "COPY {what} must be a single one-byte character"
        )))
    }
}

fn names(idents: &[Ident]) -> Vec<String> {
    idents.iter().map(crate::sql::ident_name).collect()
}

impl CopyFormat {
    /// The format the statement's options describe: the `WITH (...)` form
    /// and the pre-9.0 form (`WITH CSV HEADER`, `DELIMITER ','`, `BINARY`).
    pub fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Self> {
        let mut format = CopyFormat {
            csv: false,
            binary: false,
            delimiter: b'\t',
            null: "\\N".into(),
            header: false,
            quote: b'"',
            escape: b'"',
            force_quote: None,
        };
        let (mut delimiter, mut null, mut escape) = (None, None, None);
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                    "text" => (format.csv, format.binary) = (false, false),
                    "csv" => (format.csv, format.binary) = (true, false),
                    "binary" => (format.csv, format.binary) = (false, true),
                    other => {
                        return Err(Error::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )));
                    }
                },
                CopyOption::Delimiter(c) => delimiter = Some(one_byte("delimiter", *c)?),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(on) => format.header = *on,
                CopyOption::Quote(c) => format.quote = one_byte("quote", *c)?,
                CopyOption::Escape(c) => escape = Some(one_byte("escape", *c)?),
                CopyOption::ForceQuote(columns) => format.force_quote = Some(names(columns)),
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                CopyOption::ForceNotNull(_) | CopyOption::ForceNull(_) => {
                    return Err(Error::NotSupported(
                        "COPY FORCE_NOT_NULL and FORCE_NULL are not supported".into(),
                    ));
                }
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Binary => format.binary = true,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(one_byte("delimiter", *c)?),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Header => format.header = true,
                CopyLegacyOption::Csv(csv_options) => {
                    format.csv = true;
                    for csv_option in csv_options {
                        match csv_option {
                            CopyLegacyCsvOption::Header => format.header = true,
                            CopyLegacyCsvOption::Quote(c) => format.quote = one_byte("quote", *c)?,
                            CopyLegacyCsvOption::Escape(c) => {
                                escape = Some(one_byte("escape", *c)?)
                            }
                            CopyLegacyCsvOption::ForceQuote(columns) => {
                                format.force_quote = Some(names(columns))
                            }
                            CopyLegacyCsvOption::ForceNotNull(_) => {
                                return Err(Error::NotSupported(
                                    "COPY FORCE NOT NULL is not supported".into(),
                                ));
                            }
                        }
                    }
                }
                other => {
                    return Err(Error::NotSupported(format!(
                        "COPY option {other} is not supported"
                    )));
                }
            }
        }
        if format.header && format.binary {
            return Err(Error::InvalidParameter(
                "cannot specify HEADER in BINARY mode".into(),
            ));
        }
        format.delimiter = delimiter.unwrap_or(if format.csv { b',' } else { b'\t' });
        format.null = null.unwrap_or_else(|| {
            if format.csv {
                String::new()
            } else {
                "\\N".into()
            }
        });
        format.escape = escape.unwrap_or(format.quote);
        if !format.csv && format.delimiter == b'\\' {
            return Err(Error::InvalidParameter(
                "COPY delimiter cannot be backslash".into(),
            ));
        }
        Ok(format)
    }

    /// The records of `data` for columns `fields`, header skipped. An error
    /// names its line (its tuple in binary).
    pub fn decode(
        &self,
        data: &[u8],
        fields: &[Field],
    ) -> std::result::Result<Vec<Record>, (usize, String)> {
        if self.binary {
            return super::copy_binary::decode(data, fields);
        }
        let text = std::str::from_utf8(data).map_err(|e| {
            let line = data[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            (
                line,
                "invalid byte sequence for encoding \"UTF8\"".to_string(),
            )
        })?;
        let mut records = if self.csv {
            self.decode_csv(text)?
        } else {
            self.decode_text(text)?
        };
        if self.header && !records.is_empty() {
            records.remove(0);
        }
        Ok(records)
    }

    fn decode_text(&self, text: &str) -> std::result::Result<Vec<Record>, (usize, String)> {
        let mut records = Vec::new();
        let body = text.strip_suffix('\n').unwrap_or(text);
        if text.is_empty() {
            return Ok(records);
        }
        for (i, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "\\." {
                break;
            }
            let fields = split_text(line, self.delimiter)
                .into_iter()
                .map(|raw| {
                    if raw == self.null {
                        Ok(None)
                    } else {
                        unescape(raw).map(Some)
                    }
                })
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(|e| (i + 1, e))?;
            records.push((i + 1, fields));
        }
        Ok(records)
    }

    fn decode_csv(&self, text: &str) -> std::result::Result<Vec<Record>, (usize, String)> {
        let bytes = text.as_bytes();
        let mut records = Vec::new();
        let mut at = 0;
        let mut line = 1;
        while at < bytes.len() {
            let start_line = line;
            if text[at..].starts_with("\\.") {
                let rest = &bytes[at + 2..];
                if rest.is_empty() || rest[0] == b'\n' || rest.starts_with(b"\r\n") {
                    break;
                }
            }
            let mut fields = Vec::new();
            loop {
                // One field.
                let mut value = Vec::new();
                let mut quoted = false;
                if at < bytes.len() && bytes[at] == self.quote {
                    quoted = true;
                    at += 1;
                    loop {
                        if at >= bytes.len() {
                            return Err((start_line, "unterminated CSV quoted field".into()));
                        }
                        let b = bytes[at];
                        if b == self.escape
                            && at + 1 < bytes.len()
                            && (bytes[at + 1] == self.quote || bytes[at + 1] == self.escape)
                            && (self.escape != self.quote || bytes[at + 1] == self.quote)
                        {
                            value.push(bytes[at + 1]);
                            at += 2;
                        } else if b == self.quote {
                            at += 1;
                            break;
                        } else {
                            if b == b'\n' {
                                line += 1;
                            }
                            value.push(b);
                            at += 1;
                        }
                    }
                }
                // Unquoted part (or what follows a closing quote).
                while at < bytes.len()
                    && bytes[at] != self.delimiter
                    && bytes[at] != b'\n'
                    && bytes[at] != b'\r'
                {
                    value.push(bytes[at]);
                    at += 1;
                }
                let value = String::from_utf8(value).map_err(|_| {
                    (
                        start_line,
                        "invalid byte sequence for encoding \"UTF8\"".into(),
                    )
                })?;
                fields.push(if !quoted && value == self.null {
                    None
                } else {
                    Some(value)
                });
                if at < bytes.len() && bytes[at] == self.delimiter {
                    at += 1;
                    continue;
                }
                break;
            }
            if at < bytes.len() && bytes[at] == b'\r' {
                at += 1;
            }
            if at < bytes.len() && bytes[at] == b'\n' {
                at += 1;
            }
            line += 1;
            records.push((start_line, fields));
        }
        Ok(records)
    }

    /// The header line of CSV output.
    pub fn header_line(&self, columns: &[String], out: &mut Vec<u8>) {
        let fields: Vec<Option<&[u8]>> = columns.iter().map(|c| Some(c.as_bytes())).collect();
        self.encode_row(&fields, &[], out);
    }

    /// One row of output, `\n` included. `forced[i]` quotes column i in CSV.
    pub fn encode_row(&self, fields: &[Option<&[u8]>], forced: &[bool], out: &mut Vec<u8>) {
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            match field {
                None => out.extend_from_slice(self.null.as_bytes()),
                Some(value) if self.csv => {
                    let value: &[u8] = value;
                    let needs = forced.get(i).copied().unwrap_or(false)
                        || value == self.null.as_bytes()
                        || value.iter().any(|&b| {
                            b == self.delimiter
                                || b == self.quote
                                || b == self.escape
                                || b == b'\n'
                                || b == b'\r'
                        })
                        || value.starts_with(b"\\.");
                    if needs {
                        out.push(self.quote);
                        for &b in value.iter() {
                            if b == self.quote || b == self.escape {
                                out.push(self.escape);
                            }
                            out.push(b);
                        }
                        out.push(self.quote);
                    } else {
                        out.extend_from_slice(value);
                    }
                }
                Some(value) => {
                    for &b in value.iter() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            8 => out.extend_from_slice(b"\\b"),
                            11 => out.extend_from_slice(b"\\v"),
                            12 => out.extend_from_slice(b"\\f"),
                            b if b == self.delimiter => {
                                out.push(b'\\');
                                out.push(b);
                            }
                            b => out.push(b),
                        }
                    }
                }
            }
        }
        out.push(b'\n');
    }
}

/// Splits a text-format line at unescaped delimiters, escapes kept.
fn split_text(line: &str, delimiter: u8) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut fields = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        if bytes[at] == b'\\' {
            at += 2;
            continue;
        }
        if bytes[at] == delimiter {
            fields.push(&line[start..at]);
            start = at + 1;
        }
        at += 1;
    }
    fields.push(&line[start.min(line.len())..]);
    fields
}

/// Undoes text-format escapes.
fn unescape(raw: &str) -> std::result::Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b != b'\\' || at + 1 >= bytes.len() {
            out.push(b);
            at += 1;
            continue;
        }
        let next = bytes[at + 1];
        at += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(next - b'0');
                for _ in 0..2 {
                    match bytes.get(at) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            at += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if bytes.get(at).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                for _ in 0..2 {
                    match bytes.get(at).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            at += 1;
                        }
                        None => break,
                    }
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> CopyFormat {
        CopyFormat::from_options(&[], &[]).unwrap()
    }

    fn csv() -> CopyFormat {
        CopyFormat::from_options(&[CopyOption::Format(Ident::new("csv"))], &[]).unwrap()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn text_fields_nulls_and_escapes() {
        let records = text()
            .decode(b"1\ta\\tb\t\\N\n2\t\\\\x\\101\\x41\t\n\\.\nignored\n", &[])
            .unwrap();
        assert_eq!(
            records,
            vec![
                (1, vec![s("1"), s("a\tb"), None]),
                (2, vec![s("2"), s("\\xAA"), s("")]),
            ]
        );
    }

    #[test]
    fn csv_quotes_nulls_and_multiline_fields() {
        let format = CopyFormat {
            header: true,
            ..csv()
        };
        let records = format
            .decode(
                b"id,note\r\n1,\"a,\"\"b\"\"\"\r\n2,\n3,\"\"\n4,\"two\nlines\"\n5,x\n",
                &[],
            )
            .unwrap();
        assert_eq!(
            records,
            vec![
                (2, vec![s("1"), s("a,\"b\"")]),
                (3, vec![s("2"), None]),
                (4, vec![s("3"), s("")]),
                (5, vec![s("4"), s("two\nlines")]),
                (7, vec![s("5"), s("x")]),
            ]
        );
        assert_eq!(csv().decode(b"1,\"open\n", &[]).unwrap_err().0, 1);
    }

    #[test]
    fn output_round_trips_through_input() {
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"1"), Some(b"tab\there, \"quoted\"\nnewline\\"), None],
            vec![Some(b"2"), Some(b""), Some(b"\\.")],
        ];
        for format in [text(), csv()] {
            let mut out = Vec::new();
            for row in &rows {
                format.encode_row(row, &[], &mut out);
            }
            let back: Vec<Vec<Option<String>>> = format
                .decode(&out, &[])
                .unwrap()
                .into_iter()
                .map(|(_, fields)| fields)
                .collect();
            let expected: Vec<Vec<Option<String>>> = rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|f| f.map(|b| String::from_utf8(b.to_vec()).unwrap()))
                        .collect()
                })
                .collect();
            assert_eq!(back, expected, "{format:?}");
        }
    }

    #[test]
    fn legacy_options_and_bad_ones() {
        let format = CopyFormat::from_options(
            &[],
            &[
                CopyLegacyOption::Delimiter('|'),
                CopyLegacyOption::Csv(vec![CopyLegacyCsvOption::Header]),
            ],
        )
        .unwrap();
        assert!(format.csv && format.header);
        assert_eq!((format.delimiter, format.null.as_str()), (b'|', ""));
        assert!(
            CopyFormat::from_options(&[CopyOption::Format(Ident::new("parquet"))], &[]).is_err()
        );
    }
}
