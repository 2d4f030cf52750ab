//! The one place where errors become PostgreSQL ErrorResponses.
//!
//! Clients branch on SQLSTATE (psycopg raises `UndefinedTable` for 42P01,
//! ORMs retry on 40001, ...), so the code matters as much as the message.
//! DataFusion reports most user mistakes as plan or Arrow errors with a
//! message; we recognise the common ones and say them the way PostgreSQL does.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use pgwire::error::ErrorInfo;

use crate::error::Error;

const OUT_OF_MEMORY: &str = "out of memory: ";

pub fn error_info(error: &Error) -> ErrorInfo {
    let (code, message) = classify(error);
    // PostgreSQL's out-of-memory error is two words; what ran out, and how
    // much, is its detail (DataFusion's report names the operators).
    let (message, detail) = match message.strip_prefix(OUT_OF_MEMORY) {
        Some(detail) if code == "53200" => ("out of memory".to_string(), Some(detail.to_string())),
        _ => (message, None),
    };
    let mut info = ErrorInfo::new("ERROR".to_string(), code.to_string(), message);
    if let Some(detail) = detail {
        info.detail = Some(detail);
        info.hint = Some(
            "Queries share the memory set by the server's --memory-limit; \
             a sort or an aggregate spills past it, a hash join's build side cannot."
                .into(),
        );
    }
    match error {
        Error::Syntax {
            position: Some(p), ..
        } => info.position = Some(p.to_string()),
        Error::UniqueViolation {
            schema,
            table,
            constraint,
            detail,
        } => {
            info.detail = Some(detail.clone());
            info.schema = Some(schema.clone());
            info.table = Some(table.clone());
            info.constraint = Some(constraint.clone());
        }
        Error::ForwardOnlyCursor => {
            info.hint = Some("Declare it with SCROLL option to enable backward scan.".into());
        }
        Error::DependentObjects { detail, .. } => {
            info.detail = Some(detail.clone());
            info.hint = Some("Use DROP ... CASCADE to drop the dependent objects too.".into());
        }
        Error::NotNullViolation { table, column } => {
            info.table = Some(table.clone());
            info.column = Some(column.clone());
        }
        Error::InCopy { error, context } => {
            info = error_info(error);
            info.where_context = Some(context.clone());
        }
        _ => {}
    }
    info
}

/// An error that ends the connection (severity FATAL: pgwire then closes it).
pub fn fatal_info(error: &Error) -> ErrorInfo {
    let mut info = error_info(error);
    info.severity = "FATAL".into();
    info
}

fn classify(error: &Error) -> (&'static str, String) {
    let message = error.to_string();
    let code = match error {
        Error::Syntax { .. } => "42601",
        Error::TooDeep => "54001",
        Error::TooManyConnections => "53300",
        Error::UndefinedTable(_) | Error::DropMissing { .. } => "42P01",
        Error::UndefinedSchema(_) => "3F000",
        Error::UndefinedColumn(_) => "42703",
        Error::DuplicateTable(_) => "42P07",
        Error::DuplicateSchema(_) => "42P06",
        Error::DuplicateColumn(_) => "42701",
        Error::NotNullViolation { .. } => "23502",
        Error::UniqueViolation { .. } => "23505",
        Error::Data { code, .. } => code,
        Error::UndefinedType(_) | Error::UndefinedObject(_) => "42704",
        Error::NotSupported(_) | Error::NotIncremental(_) => "0A000",
        Error::DependentObjects { .. } => "2BP01",
        Error::WrongObjectType(_) => "42809",
        Error::InvalidDefinition(_) => "42P16",
        Error::UndefinedPrepared(_) => "26000",
        Error::DuplicatePrepared(_) => "42P05",
        Error::InvalidParameter(_) => "22023",
        Error::CantChangeParameter(_) => "55P02",
        Error::NotReady(_) => "55000",
        Error::StatementTimeout | Error::Cancelled | Error::CopyFailed(_) => "57014",
        Error::TransactionAborted => "25P02",
        Error::NoTransactionBlock(_) => "25P01",
        Error::UndefinedSavepoint(_) => "3B001",
        Error::UndefinedCursor(_) => "34000",
        Error::ForwardOnlyCursor => "55000",
        Error::ActiveTransaction(_) => "25001",
        Error::DuplicateCursor(_) => "42P03",
        Error::Cardinality(_) => "21000",
        Error::AmbiguousColumn(_) => "42702",
        Error::InvalidColumnReference(_) => "42P10",
        Error::LockNotAvailable(_) => "55P03",
        Error::Storage(_) => "58030",
        Error::Internal(_) => "XX000",
        Error::DataFusion(e) => return classify_datafusion(e),
        Error::InCopy { error, .. } => return classify(error),
    };
    (code, message)
}

fn classify_datafusion(error: &DataFusionError) -> (&'static str, String) {
    match error {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify_datafusion(inner)
        }
        DataFusionError::Shared(inner) => classify_datafusion(inner),
        DataFusionError::Collection(errors) if !errors.is_empty() => {
            classify_datafusion(&errors[0])
        }
        DataFusionError::ArrowError(e, _) => classify_arrow(e),
        DataFusionError::External(e) => {
            if let Some(arrow) = e.downcast_ref::<ArrowError>() {
                classify_arrow(arrow)
            } else if let Some(inner) = e.downcast_ref::<DataFusionError>() {
                classify_datafusion(inner)
            } else if let Some(ours) = e.downcast_ref::<Error>() {
                classify(ours)
            } else {
                ("XX000", e.to_string())
            }
        }
        DataFusionError::SQL(e, _) => ("42601", e.to_string()),
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { field, .. } => (
                "42703",
                format!("column \"{}\" does not exist", field.flat_name()),
            ),
            SchemaError::AmbiguousReference { field } => (
                "42702",
                format!("column reference \"{}\" is ambiguous", field.name()),
            ),
            other => ("42P10", other.to_string()),
        },
        DataFusionError::NotImplemented(m) => ("0A000", m.clone()),
        DataFusionError::ResourcesExhausted(m) => ("53200", format!("{OUT_OF_MEMORY}{m}")),
        DataFusionError::Plan(m) => classify_plan(m),
        DataFusionError::Execution(m) => classify_message(m).unwrap_or(("XX000", m.clone())),
        other => ("XX000", other.strip_backtrace()),
    }
}

fn classify_plan(message: &str) -> (&'static str, String) {
    if let Some(rest) = message.strip_prefix("table '")
        && let Some(name) = rest.strip_suffix("' not found")
    {
        let table = name.rsplit('.').next().unwrap_or(name);
        return ("42P01", format!("relation \"{table}\" does not exist"));
    }
    if message.starts_with("Invalid function") || message.contains("No function matches") {
        return ("42883", message.to_string());
    }
    if crate::query::is_grouping_message(message) {
        return ("42803", message.to_string());
    }
    if message.contains("Cannot coerce arithmetic expression")
        || message.contains("Cannot infer common argument type for comparison")
    {
        return ("42883", format!("operator does not exist: {message}"));
    }
    if message.contains("Inconsistent data length across values list") {
        return (
            "42601",
            format!("VALUES lists must all be the same length: {message}"),
        );
    }
    if message.contains("Cannot infer common")
        || message.contains("Cannot coerce")
        || message.contains("cannot be cast")
        || message.contains("Cannot automatically convert")
        || message.contains("There isn't a common type")
        || message.contains("Unsupported CAST")
    {
        return ("42804", message.to_string());
    }
    if message.contains("Inserting query must have the same schema")
        || message.contains("more expressions than target columns")
        || message.contains("Column count doesn't match")
    {
        return (
            "42601",
            "INSERT has more expressions than target columns".to_string(),
        );
    }
    // PostgreSQL runs these; DataFusion cannot decorrelate them.
    if message.contains("Correlated scalar subquery must be aggregated") {
        return ("0A000", message.to_string());
    }
    if message.contains("not found") || message.contains("No field named") {
        return ("42703", message.to_string());
    }
    classify_message(message).unwrap_or(("42000", message.to_string()))
}

/// PostgreSQL's message for an overflow Arrow reports as `Overflow happened
/// on: a * b`: operands that small overflow only the narrower type (two
/// values within i32 cannot overflow an i64 by `+`, `-` or `*`).
fn overflow_message(message: &str) -> String {
    let operands = message
        .strip_prefix("Overflow happened on: ")
        .and_then(|rest| {
            let mut parts = rest.split(' ');
            let (a, _, b) = (parts.next()?, parts.next()?, parts.next()?);
            Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?))
        });
    match operands {
        Some((a, b)) if i16::try_from(a).is_ok() && i16::try_from(b).is_ok() => {
            "smallint out of range".into()
        }
        Some((a, b)) if i32::try_from(a).is_ok() && i32::try_from(b).is_ok() => {
            "integer out of range".into()
        }
        Some(_) => "bigint out of range".into(),
        None => format!("value out of range: {message}"),
    }
}

fn classify_arrow(error: &ArrowError) -> (&'static str, String) {
    match error {
        ArrowError::DivideByZero => ("22012", "division by zero".to_string()),
        ArrowError::ArithmeticOverflow(m) => ("22003", overflow_message(m)),
        ArrowError::CastError(m)
        | ArrowError::ParseError(m)
        | ArrowError::InvalidArgumentError(m) => {
            classify_message(m).unwrap_or(("22P02", m.clone()))
        }
        ArrowError::ComputeError(m) => classify_message(m).unwrap_or(("22000", m.clone())),
        ArrowError::MemoryError(m) => ("53200", format!("{OUT_OF_MEMORY}{m}")),
        other => ("XX000", other.to_string()),
    }
}

/// Recognises data errors by Arrow's wording, which reaches us as text
/// through several error layers.
fn classify_message(message: &str) -> Option<(&'static str, String)> {
    if matches!(
        message,
        "integer out of range" | "bigint out of range" | "smallint out of range"
    ) {
        return Some(("22003", message.to_string()));
    }
    if message.contains("invalid hexadecimal")
        || (message.starts_with("time zone \"") && message.ends_with("\" not recognized"))
    {
        return Some(("22023", message.to_string()));
    }
    if message.contains("invalid input syntax for type bytea") {
        return Some(("22P02", message.to_string()));
    }
    if message.contains("Scalar subquery returned more than one row") {
        return Some((
            "21000",
            "more than one row returned by a subquery used as an expression".to_string(),
        ));
    }
    if message.contains("Divide by zero") || message.contains("division by zero") {
        return Some(("22012", "division by zero".to_string()));
    }
    if let Some(rest) = message.split("Can't cast value ").nth(1) {
        let (value, target) = rest.split_once(" to type ")?;
        return Some((
            "22003",
            format!(
                "value \"{value}\" is out of range for type {}",
                pg_type_name(target.trim())
            ),
        ));
    }
    if let Some(rest) = message
        .split("Cannot cast string '")
        .nth(1)
        .or_else(|| message.split("Cannot cast value '").nth(1))
    {
        let (value, target) = rest.split_once("' to value of ")?;
        let target = target.trim_end_matches(" type").trim();
        if is_datetime(target) && shaped_like_date(value) {
            return Some(out_of_range_date(value));
        }
        // Digits that do not fit: PostgreSQL says out of range, not syntax.
        let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
        if target.starts_with("Int")
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Some((
                "22003",
                format!(
                    "value \"{value}\" is out of range for type {}",
                    pg_type_name(target)
                ),
            ));
        }
        let code = if is_datetime(target) {
            "22007"
        } else {
            "22P02"
        };
        return Some((
            code,
            format!(
                "invalid input syntax for type {}: \"{value}\"",
                pg_type_name(target)
            ),
        ));
    }
    if message.contains("too large to store in a Decimal") {
        return Some(("22003", "numeric field overflow".into()));
    }
    if message.contains("too large to store in a Decimal")
        || message.contains("overflow")
        || message.contains("Overflow")
        || message.contains("out of range")
    {
        return Some(("22003", format!("value out of range: {message}")));
    }
    let lower = message.to_lowercase();
    if [
        "type date",
        "type time",
        "type timestamp",
        "type interval",
        "parsing timestamp",
    ]
    .iter()
    .any(|t| lower.contains(t))
    {
        // A value shaped like a date whose fields are impossible (February
        // 30th) is out of range (22008); anything else is bad syntax (22007).
        let quoted = message.rsplit('"').nth(1).unwrap_or_default();
        if shaped_like_date(quoted) {
            return Some(out_of_range_date(quoted));
        }
        return Some(("22007", message.to_string()));
    }
    if message.contains("Error parsing timestamp")
        || message.contains("Cannot cast string")
        || message.contains("Error parsing")
        || message.contains("Invalid input syntax")
        || message.contains("invalid digit")
    {
        return Some(("22P02", format!("invalid input syntax: {message}")));
    }
    None
}

fn shaped_like_date(text: &str) -> bool {
    let time_follows = text
        .as_bytes()
        .get(10)
        .is_none_or(|b| *b == b' ' || *b == b'T');
    text.len() >= 10
        && time_follows
        && text.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

fn out_of_range_date(value: &str) -> (&'static str, String) {
    (
        "22008",
        format!("date/time field value out of range: \"{value}\""),
    )
}

fn is_datetime(arrow: &str) -> bool {
    ["Date", "Time", "Interval"]
        .iter()
        .any(|p| arrow.starts_with(p))
}

fn pg_type_name(arrow: &str) -> &str {
    match arrow {
        "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Date32" => "date",
        "Utf8" => "text",
        t if t.starts_with("Decimal") => "numeric",
        t if t.starts_with("Timestamp") => "timestamp",
        t if t.starts_with("Time") => "time",
        t if t.starts_with("Interval") => "interval",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: Error) -> String {
        error_info(&error).code
    }

    #[test]
    fn maps_user_mistakes_to_their_sqlstate() {
        assert_eq!(
            code(Error::DataFusion(DataFusionError::Plan(
                "table 'freshet.public.nope' not found".into()
            ))),
            "42P01"
        );
        let info = error_info(&Error::DataFusion(DataFusionError::Plan(
            "table 'freshet.public.nope' not found".into(),
        )));
        assert_eq!(info.message, "relation \"nope\" does not exist");
        assert_eq!(
            code(Error::DataFusion(DataFusionError::ArrowError(
                Box::new(ArrowError::DivideByZero),
                None
            ))),
            "22012"
        );
        let cast = error_info(&Error::DataFusion(DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Can't cast value 100000 to type Int16".into(),
            )),
            None,
        )));
        assert_eq!(cast.code, "22003");
        assert_eq!(
            cast.message,
            "value \"100000\" is out of range for type smallint"
        );
        let parse = error_info(&Error::DataFusion(DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Cannot cast string 'abc' to value of Int32 type".into(),
            )),
            None,
        )));
        assert_eq!(parse.code, "22P02");
        assert_eq!(
            parse.message,
            "invalid input syntax for type integer: \"abc\""
        );
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let info = error_info(&Error::Syntax {
            message: "syntax error at or near \"x\"".into(),
            position: Some(8),
        });
        assert_eq!(info.code, "42601");
        assert_eq!(info.position.as_deref(), Some("8"));
    }

    #[test]
    fn wrapped_errors_are_classified_by_their_cause() {
        let inner = DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None);
        let wrapped = DataFusionError::Context("while running".into(), Box::new(inner));
        assert_eq!(code(Error::DataFusion(wrapped)), "22012");
    }
}
