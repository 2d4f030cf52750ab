//! Statements about the session itself: SET, SHOW, RESET, DISCARD and
//! transaction control. They change nothing in the database, only the
//! connection's settings, which pgwire keeps in the client's metadata map
//! (lower-case keys; the wire encoder reads `datestyle` and friends there).
//!
//! Transaction control here only answers and moves the transaction status
//! byte; the handler keeps the block itself (`database::transaction`), so a
//! COMMIT applies it atomically and a ROLLBACK drops it.

use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{DiscardObject, Expr, Reset, Set, Statement, Value};
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};

use crate::database::Outcome;
use crate::error::{Error, Result};
use crate::query;

/// Settings and their defaults, with the spelling `SHOW` prints. Unknown
/// settings are accepted by SET (drivers send many) and shown afterwards.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("implicit_flush", "off"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("max_identifier_length", "63"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("TimeZone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

/// Settings a client is told about (ParameterStatus) when they change.
pub const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "search_path",
];

/// The value each setting had before the session first SET it (from the
/// startup packet, or none), which RESET restores.
#[derive(Default)]
struct Saved(std::sync::Mutex<std::collections::HashMap<String, Option<String>>>);

/// What a session statement does; `None` for statements that are not about
/// the session.
pub enum SessionEffect {
    Response(Response),
    /// Rows to send (SHOW).
    Rows(Outcome),
    /// A setting changed: tell the client if it is a reported one.
    Changed {
        name: &'static str,
        value: String,
        tag: Response,
    },
}

fn canonical(name: &str) -> Option<&'static str> {
    DEFAULTS
        .iter()
        .map(|(n, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name))
}

fn metadata_key(name: &str) -> String {
    name.to_lowercase()
}

/// Settings a client sends at connect become the session's from the start,
/// as PostgreSQL takes them: a startup parameter (`TimeZone`, `search_path`,
/// `extra_float_digits`, as pgJDBC sends them; pgwire keeps the client's
/// spelling, settings are found by lower-case name), or a `-c name=value`
/// or `--name=value` in `options` (libpq's PGOPTIONS, psycopg's and
/// node-postgres's `options`).
pub fn adopt_startup_settings<C: ClientInfo + ?Sized>(client: &mut C) {
    let mut settings: Vec<(String, String)> = client
        .metadata()
        .iter()
        .filter(|(name, _)| name.as_str() != "options")
        .map(|(name, value)| (metadata_key(name), value.clone()))
        .collect();
    if let Some(options) = client.metadata().get("options") {
        settings.extend(startup_options(options));
    }
    for (name, value) in settings {
        let value = if name == "datestyle" {
            date_style(&value, "ISO, MDY")
        } else {
            value
        };
        client.metadata_mut().insert(name, value);
    }
}

/// DateStyle has two parts, the output style and the field order; a value
/// that names one keeps the other from `base` (the current value), as
/// PostgreSQL does (pgJDBC sends `ISO` and reads back `ISO, MDY`).
fn date_style(value: &str, base: &str) -> String {
    let (style, order) = base.split_once(", ").unwrap_or(("ISO", "MDY"));
    let (mut style, mut order) = (style.to_string(), order.to_string());
    let names_order = value.split(',').any(|p| {
        matches!(
            p.trim().to_ascii_uppercase().as_str(),
            "DMY" | "MDY" | "YMD" | "EURO" | "EUROPEAN" | "US" | "NONEURO" | "NONEUROPEAN"
        )
    });
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.to_ascii_uppercase().as_str() {
            "ISO" | "SQL" => style = part.to_ascii_uppercase(),
            // German implies day-month order unless the value names one.
            "GERMAN" => {
                style = "German".into();
                if !names_order {
                    order = "DMY".into();
                }
            }
            "POSTGRES" => style = "Postgres".into(),
            "DMY" | "MDY" | "YMD" => order = part.to_ascii_uppercase(),
            "EURO" | "EUROPEAN" => order = "DMY".into(),
            "US" | "NONEURO" | "NONEUROPEAN" => order = "MDY".into(),
            _ => return value.to_string(),
        }
    }
    format!("{style}, {order}")
}

/// The `name=value` pairs of a startup `options` string: words split at
/// spaces (a backslash keeps the next character), each `-c name=value`,
/// `-cname=value` or `--name=value`; dashes in a name are underscores.
fn startup_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut pairs = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next()
        } else {
            word.strip_prefix("--")
                .or_else(|| word.strip_prefix("-c"))
                .map(str::to_string)
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            pairs.push((metadata_key(&name.replace('-', "_")), value.to_string()));
        }
    }
    pairs
}

/// Settings that describe the server: shown, never set.
const READ_ONLY: [&str; 2] = ["server_version", "server_version_num"];

pub fn setting<C: ClientInfo + ?Sized>(client: &C, name: &str) -> Option<String> {
    let key = metadata_key(name);
    if key == "server_version" {
        return Some(query::server_version());
    }
    if key == "server_version_num" {
        return Some(query::server_version_num().to_string());
    }
    client
        .metadata()
        .get(&key)
        .cloned()
        .or_else(|| default_setting(name))
}

fn default_setting(name: &str) -> Option<String> {
    DEFAULTS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

/// The session's statement timeout, if one is set.
pub fn statement_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<Duration> {
    let value = setting(client, "statement_timeout")?;
    parse_duration("statement_timeout", &value)
        .ok()
        .filter(|d| !d.is_zero())
}

/// PostgreSQL's duration syntax for settings: a number in milliseconds, or a
/// number with a unit (`5s`, `100ms`, `2min`).
pub(super) fn parse_duration(setting: &str, text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        Error::InvalidParameter(format!(
            "invalid value for parameter \"{setting}\": \"{text}\""
        ))
    })?;
    let millis = match unit.trim() {
        "" | "ms" => number,
        "s" => number * 1_000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        "us" => number / 1_000.0,
        _ => {
            return Err(Error::InvalidParameter(format!(
                "invalid value for parameter \"{setting}\": \"{text}\""
            )));
        }
    };
    Ok(Duration::from_micros((millis * 1_000.0) as u64))
}

fn value_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

fn set_value<C: ClientInfo + ?Sized>(
    client: &mut C,
    name: &str,
    value: String,
) -> Result<SessionEffect> {
    if let Some(fixed) = READ_ONLY.iter().find(|n| n.eq_ignore_ascii_case(name)) {
        return Err(Error::CantChangeParameter(fixed.to_string()));
    }
    if name.eq_ignore_ascii_case("statement_timeout") {
        parse_duration("statement_timeout", &value)?;
    }
    let shown = canonical(name);
    let value = if value.eq_ignore_ascii_case("default") {
        default_setting(name).unwrap_or_default()
    } else {
        value
    };
    let key = metadata_key(name);
    let value = if key == "datestyle" {
        date_style(&value, &setting(client, "DateStyle").unwrap_or_default())
    } else {
        value
    };
    let original = client.metadata().get(&key).cloned();
    client
        .session_extensions()
        .get_or_insert_with(Saved::default)
        .0
        .lock()
        .expect("saved settings lock poisoned")
        .entry(key.clone())
        .or_insert(original);
    client.metadata_mut().insert(key, value.clone());
    let tag = Response::Execution(Tag::new("SET"));
    Ok(match shown.filter(|n| REPORTED.contains(n)) {
        Some(name) => SessionEffect::Changed { name, value, tag },
        None => SessionEffect::Response(tag),
    })
}

/// Handles a session statement, or returns `None` if `statement` is not one.
pub fn apply<C: ClientInfo + ?Sized>(
    client: &mut C,
    statement: &Statement,
) -> Option<Result<SessionEffect>> {
    let effect = match statement {
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) => {
            let name = variable.to_string();
            let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
            set_value(client, &name, value)
        }
        Statement::Set(Set::SetTimeZone { value, .. }) => {
            set_value(client, "TimeZone", value_text(value))
        }
        Statement::Set(Set::SetNames { charset_name, .. }) => {
            set_value(client, "client_encoding", charset_name.value.clone())
        }
        Statement::Set(_) => Ok(SessionEffect::Response(Response::Execution(Tag::new(
            "SET",
        )))),
        Statement::Reset(reset) => {
            match &reset.reset {
                Reset::ALL => reset_settings(client, None),
                Reset::ConfigurationParameter(name) => {
                    reset_settings(client, Some(metadata_key(&name.to_string())))
                }
            }
            Ok(SessionEffect::Response(Response::Execution(Tag::new(
                "RESET",
            ))))
        }
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            show(client, &name)
        }
        Statement::StartTransaction { .. } => Ok(SessionEffect::Response(
            Response::TransactionStart(Tag::new("BEGIN")),
        )),
        Statement::Commit { .. } => Ok(SessionEffect::Response(Response::TransactionEnd(
            Tag::new("COMMIT"),
        ))),
        Statement::Rollback { .. } => Ok(SessionEffect::Response(Response::TransactionEnd(
            Tag::new("ROLLBACK"),
        ))),
        Statement::Discard { object_type } => {
            if matches!(object_type, DiscardObject::ALL) {
                reset_settings(client, None);
            }
            Ok(SessionEffect::Response(Response::Execution(Tag::new(
                &format!("DISCARD {object_type}"),
            ))))
        }
        _ => return None,
    };
    Some(effect)
}

/// RESET: every setting the session changed (`None`), or one, back to what
/// it was at connect.
fn reset_settings<C: ClientInfo + ?Sized>(client: &mut C, only: Option<String>) {
    let saved = client
        .session_extensions()
        .get_or_insert_with(Saved::default);
    let mut saved = saved.0.lock().expect("saved settings lock poisoned");
    let keys: Vec<String> = match only {
        None => saved.keys().cloned().collect(),
        Some(key) => vec![key],
    };
    for key in keys {
        match saved.remove(&key) {
            Some(Some(original)) => {
                client.metadata_mut().insert(key, original);
            }
            Some(None) => {
                client.metadata_mut().remove(&key);
            }
            None => {}
        }
    }
}

/// The column `SHOW name` prints, or `None` for `SHOW ALL` (two columns).
pub fn shown_name(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    match lower.as_str() {
        "all" => None,
        "time zone" => Some("TimeZone".into()),
        "transaction isolation level" => Some("transaction_isolation".into()),
        _ => Some(canonical(name).map(str::to_string).unwrap_or(lower)),
    }
}

fn show<C: ClientInfo + ?Sized>(client: &C, name: &str) -> Result<SessionEffect> {
    let lower = name.to_lowercase();
    let rows: Vec<(String, String)> = match lower.as_str() {
        "all" => {
            let mut names: Vec<&str> = DEFAULTS.iter().map(|(n, _)| *n).collect();
            names.extend(READ_ONLY);
            names.sort_by_key(|n| n.to_lowercase());
            names
                .into_iter()
                .map(|n| (n.to_string(), setting(client, n).unwrap_or_default()))
                .collect()
        }
        _ => {
            let column = shown_name(name).unwrap_or_default();
            let value = match lower.as_str() {
                "time zone" => setting(client, "TimeZone"),
                "transaction isolation level" => setting(client, "transaction_isolation"),
                _ => setting(client, name),
            };
            match value {
                Some(value) => vec![(column, value)],
                None => {
                    return Err(Error::UndefinedObject(format!(
                        "unrecognized configuration parameter \"{name}\""
                    )));
                }
            }
        }
    };
    let batch = if lower == "all" {
        let schema = Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            schema.into(),
            vec![
                std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
                std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
            ],
        )?
    } else {
        let (column, value) = &rows[0];
        return Ok(SessionEffect::Rows(shown(column, value)?));
    };
    Ok(SessionEffect::Rows(Outcome::batches(
        batch.schema(),
        vec![batch],
    )))
}

/// What `SHOW name` answers for one setting: one row, one column.
pub fn shown(column: &str, value: &str) -> Result<Outcome> {
    let schema = Schema::new(vec![Field::new(column, DataType::Utf8, false)]);
    let batch = RecordBatch::try_new(
        schema.into(),
        vec![std::sync::Arc::new(StringArray::from(vec![
            value.to_string(),
        ]))],
    )?;
    Ok(Outcome::batches(batch.schema(), vec![batch]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_options_read_as_libpq_writes_them() {
        let pairs = |o: &str| startup_options(o);
        assert_eq!(
            pairs("-c search_path=s1 -cstatement_timeout=5s --extra-float-digits=3"),
            vec![
                ("search_path".to_string(), "s1".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
                ("extra_float_digits".to_string(), "3".to_string()),
            ]
        );
        assert_eq!(
            pairs(r"-c application_name=my\ app -c TimeZone=Asia/Kolkata"),
            vec![
                ("application_name".to_string(), "my app".to_string()),
                ("timezone".to_string(), "Asia/Kolkata".to_string()),
            ]
        );
        assert!(pairs("-x -c").is_empty());
    }

    #[test]
    fn date_style_keeps_the_part_not_named() {
        assert_eq!(date_style("ISO", "ISO, MDY"), "ISO, MDY");
        assert_eq!(date_style("german, dmy", "ISO, MDY"), "German, DMY");
        assert_eq!(date_style("ymd", "German, DMY"), "German, YMD");
        assert_eq!(date_style("postgres", "German, YMD"), "Postgres, YMD");
        assert_eq!(date_style("German", "ISO, MDY"), "German, DMY");
    }

    #[test]
    fn durations_follow_postgres_units() {
        assert_eq!(
            parse_duration("statement_timeout", "1500").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("statement_timeout", "5s").unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            parse_duration("statement_timeout", "2min").unwrap(),
            Duration::from_secs(120)
        );
        assert!(parse_duration("statement_timeout", "soon").is_err());
    }
}
