//! The column types Freshet stores, and how each maps to Arrow and to
//! PostgreSQL.
//!
//! A column's type is persisted as this enum, not as an Arrow type, so that
//! what the user declared (`varchar(20)`, `jsonb`) survives restarts and is
//! shown back exactly; the Arrow type is derived from it.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    CharacterLength, DataType as SqlType, ExactNumberInfo, TimezoneInfo,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Field metadata key carrying the PostgreSQL type name of a stored column,
/// for types Arrow cannot tell apart (json vs text, varchar(n) vs text).
pub const PG_TYPE_KEY: &str = "freshet.pg_type";

/// Unconstrained `numeric` keeps this many digits after the point: PostgreSQL
/// keeps any scale, Arrow decimals need one fixed scale. `numeric(38,6)` is
/// therefore what `numeric` means here: it is named `numeric`, and its
/// values are printed without trailing zeros (`server/text.rs`).
pub const DEFAULT_NUMERIC_SCALE: i8 = 6;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Numeric { precision: u8, scale: i8 },
    Text,
    Varchar(Option<u32>),
    Char(u32),
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Json,
    Jsonb,
    Bytea,
    Uuid,
}

impl ColumnType {
    pub fn from_sql(sql: &SqlType) -> Result<Self> {
        let length = |len: &Option<CharacterLength>| match len {
            Some(CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length)
                .map(Some)
                .map_err(|_| Error::InvalidParameter(format!("length {length} is too large"))),
            _ => Ok(None),
        };
        Ok(match sql {
            SqlType::Bool | SqlType::Boolean => ColumnType::Boolean,
            SqlType::SmallInt(_) | SqlType::Int2(_) => ColumnType::SmallInt,
            SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => ColumnType::Integer,
            SqlType::BigInt(_) | SqlType::Int8(_) => ColumnType::BigInt,
            SqlType::Real | SqlType::Float4 => ColumnType::Real,
            SqlType::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => ColumnType::Real,
            SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float(_) => {
                ColumnType::Double
            }
            SqlType::Numeric(info) | SqlType::Decimal(info) | SqlType::Dec(info) => numeric(info)?,
            SqlType::Text | SqlType::String(None) => ColumnType::Text,
            SqlType::Varchar(len) | SqlType::CharacterVarying(len) | SqlType::CharVarying(len) => {
                ColumnType::Varchar(length(len)?)
            }
            SqlType::Char(len) | SqlType::Character(len) => {
                ColumnType::Char(length(len)?.unwrap_or(1))
            }
            SqlType::Date => ColumnType::Date,
            SqlType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                ColumnType::Time
            }
            SqlType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                ColumnType::Timestamp
            }
            SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
                ColumnType::TimestampTz
            }
            SqlType::Interval { .. } => ColumnType::Interval,
            SqlType::JSON => ColumnType::Json,
            SqlType::JSONB => ColumnType::Jsonb,
            SqlType::Bytea => ColumnType::Bytea,
            SqlType::Uuid => ColumnType::Uuid,
            SqlType::Custom(name, _) => match name.to_string().to_lowercase().as_str() {
                "timestamptz" => ColumnType::TimestampTz,
                "int2" => ColumnType::SmallInt,
                "int4" => ColumnType::Integer,
                _ => return Err(Error::UndefinedType(name.to_string())),
            },
            other => {
                return Err(Error::NotSupported(format!(
                    "type {other} is not supported"
                )));
            }
        })
    }

    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::SmallInt => DataType::Int16,
            ColumnType::Integer => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Real => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Text
            | ColumnType::Varchar(_)
            | ColumnType::Char(_)
            | ColumnType::Json
            | ColumnType::Jsonb
            | ColumnType::Uuid => DataType::Utf8,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ColumnType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            ColumnType::Bytea => DataType::Binary,
        }
    }

    /// The name PostgreSQL's `format_type` would print.
    pub fn pg_name(&self) -> String {
        match self {
            ColumnType::Boolean => "boolean".into(),
            ColumnType::SmallInt => "smallint".into(),
            ColumnType::Integer => "integer".into(),
            ColumnType::BigInt => "bigint".into(),
            ColumnType::Real => "real".into(),
            ColumnType::Double => "double precision".into(),
            ColumnType::Numeric {
                precision: 38,
                scale: DEFAULT_NUMERIC_SCALE,
            } => "numeric".into(),
            ColumnType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            ColumnType::Text => "text".into(),
            ColumnType::Varchar(None) => "character varying".into(),
            ColumnType::Varchar(Some(n)) => format!("character varying({n})"),
            ColumnType::Char(n) => format!("character({n})"),
            ColumnType::Date => "date".into(),
            ColumnType::Time => "time without time zone".into(),
            ColumnType::Timestamp => "timestamp without time zone".into(),
            ColumnType::TimestampTz => "timestamp with time zone".into(),
            ColumnType::Interval => "interval".into(),
            ColumnType::Json => "json".into(),
            ColumnType::Jsonb => "jsonb".into(),
            ColumnType::Bytea => "bytea".into(),
            ColumnType::Uuid => "uuid".into(),
        }
    }

    /// The type's OID in PostgreSQL and its type modifier (`atttypmod`:
    /// -1 for none, length + 4 for character types, `(p << 16 | s) + 4`
    /// for numeric).
    pub fn pg_oid_and_modifier(&self) -> (i32, i32) {
        match self {
            ColumnType::Boolean => (16, -1),
            ColumnType::SmallInt => (21, -1),
            ColumnType::Integer => (23, -1),
            ColumnType::BigInt => (20, -1),
            ColumnType::Real => (700, -1),
            ColumnType::Double => (701, -1),
            ColumnType::Numeric {
                precision: 38,
                scale: DEFAULT_NUMERIC_SCALE,
            } => (1700, -1),
            ColumnType::Numeric { precision, scale } => {
                (1700, ((*precision as i32) << 16 | *scale as i32) + 4)
            }
            ColumnType::Text => (25, -1),
            ColumnType::Varchar(None) => (1043, -1),
            ColumnType::Varchar(Some(n)) => (1043, *n as i32 + 4),
            ColumnType::Char(n) => (1042, *n as i32 + 4),
            ColumnType::Date => (1082, -1),
            ColumnType::Time => (1083, -1),
            ColumnType::Timestamp => (1114, -1),
            ColumnType::TimestampTz => (1184, -1),
            ColumnType::Interval => (1186, -1),
            ColumnType::Json => (114, -1),
            ColumnType::Jsonb => (3802, -1),
            ColumnType::Bytea => (17, -1),
            ColumnType::Uuid => (2950, -1),
        }
    }

    /// The internal name PostgreSQL uses in result column names (`int4`).
    pub fn internal_name(&self) -> &'static str {
        match self {
            ColumnType::Boolean => "bool",
            ColumnType::SmallInt => "int2",
            ColumnType::Integer => "int4",
            ColumnType::BigInt => "int8",
            ColumnType::Real => "float4",
            ColumnType::Double => "float8",
            ColumnType::Numeric { .. } => "numeric",
            ColumnType::Text => "text",
            ColumnType::Varchar(_) => "varchar",
            ColumnType::Char(_) => "bpchar",
            ColumnType::Date => "date",
            ColumnType::Time => "time",
            ColumnType::Timestamp => "timestamp",
            ColumnType::TimestampTz => "timestamptz",
            ColumnType::Interval => "interval",
            ColumnType::Json => "json",
            ColumnType::Jsonb => "jsonb",
            ColumnType::Bytea => "bytea",
            ColumnType::Uuid => "uuid",
        }
    }

    /// The Arrow field for a column of this type, tagged with its PostgreSQL
    /// name so that the wire encoder and `SHOW COLUMNS` can recover it.
    pub fn field(&self, name: &str, nullable: bool) -> Field {
        Field::new(name, self.arrow_type(), nullable)
            .with_metadata(HashMap::from([(PG_TYPE_KEY.to_string(), self.pg_name())]))
    }

    /// The type a query result column of `data_type` gets when a table is
    /// created from it (`CREATE TABLE ... AS SELECT`).
    pub fn from_arrow(data_type: &DataType) -> Result<Self> {
        Ok(match data_type {
            DataType::Boolean => ColumnType::Boolean,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => ColumnType::SmallInt,
            DataType::Int32 | DataType::UInt16 => ColumnType::Integer,
            DataType::Int64 | DataType::UInt32 => ColumnType::BigInt,
            DataType::Float16 | DataType::Float32 => ColumnType::Real,
            DataType::Float64 => ColumnType::Double,
            DataType::Decimal128(p, s) => ColumnType::Numeric {
                precision: *p,
                scale: *s,
            },
            DataType::UInt64 => ColumnType::Numeric {
                precision: 20,
                scale: 0,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                ColumnType::Text
            }
            DataType::Date32 | DataType::Date64 => ColumnType::Date,
            DataType::Time32(_) | DataType::Time64(_) => ColumnType::Time,
            DataType::Timestamp(_, None) => ColumnType::Timestamp,
            DataType::Timestamp(_, Some(_)) => ColumnType::TimestampTz,
            DataType::Interval(_) | DataType::Duration(_) => ColumnType::Interval,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ColumnType::Bytea,
            other => {
                return Err(Error::NotSupported(format!(
                    "a column of type {other} cannot be stored in a table"
                )));
            }
        })
    }
}

fn numeric(info: &ExactNumberInfo) -> Result<ColumnType> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => (38, DEFAULT_NUMERIC_SCALE as i64),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if !(1..=38).contains(&precision) {
        return Err(Error::Data {
            code: "22023",
            message: format!("NUMERIC precision {precision} must be between 1 and 38"),
        });
    }
    if scale < 0 || scale > precision as i64 {
        return Err(Error::Data {
            code: "22023",
            message: format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
        });
    }
    Ok(ColumnType::Numeric {
        precision: precision as u8,
        scale: scale as i8,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse_type(text: &str) -> Result<ColumnType> {
        let sql = format!("CREATE TABLE t (c {text})");
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            .unwrap()
            .remove(0);
        let datafusion::sql::sqlparser::ast::Statement::CreateTable(ct) = stmt else {
            panic!("not a CREATE TABLE");
        };
        ColumnType::from_sql(&ct.columns[0].data_type)
    }

    #[test]
    fn maps_the_postgres_type_names() {
        let cases = [
            ("boolean", "boolean"),
            ("int2", "smallint"),
            ("int", "integer"),
            ("int8", "bigint"),
            ("float4", "real"),
            ("double precision", "double precision"),
            ("numeric(10,2)", "numeric(10,2)"),
            ("numeric", "numeric"),
            ("varchar(5)", "character varying(5)"),
            ("text", "text"),
            ("timestamptz", "timestamp with time zone"),
            ("timestamp", "timestamp without time zone"),
            ("interval", "interval"),
            ("jsonb", "jsonb"),
            ("bytea", "bytea"),
        ];
        for (sql, pg) in cases {
            assert_eq!(parse_type(sql).unwrap().pg_name(), pg, "for {sql}");
        }
    }

    #[test]
    fn rejects_bad_numeric_and_unknown_types() {
        assert!(parse_type("numeric(50,2)").is_err());
        assert!(matches!(
            parse_type("frobnicator"),
            Err(Error::UndefinedType(_))
        ));
    }
}
