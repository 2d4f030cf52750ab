//! Parameter and column types on the wire, and decoding bound parameters.
//!
//! Arrow has one string type; PostgreSQL has text, varchar, bpchar, json and
//! jsonb, and drivers care: tokio-postgres binds `serde_json::Value` only to
//! a json/jsonb parameter, psycopg sends its `Jsonb` wrapper typed as jsonb.
//! Table columns carry their PostgreSQL type in field metadata
//! (`PG_TYPE_KEY`), and DataFusion copies a column's field onto the `$n`
//! compared with or assigned to it, so both result columns and parameters
//! can be described with the declared type.
//!
//! Decoding: the string-like types are decoded here (text bytes, or jsonb's
//! binary form with its version byte); everything else goes to arrow-pg.

use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::into_pg_type;
use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, IntervalUnit, TimeUnit};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{Cast, Placeholder, TryCast};
use datafusion::logical_expr::{Expr, LogicalPlan};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::stmt::StoredStatement;
use pgwire::error::{PgWireError, PgWireResult};

use crate::catalog::{ColumnType, PG_TYPE_KEY, uuid_text};
use crate::error::{Error, Result};

/// The PostgreSQL type of a result column or parameter.
pub fn pg_type(field: &Field) -> PgWireResult<Type> {
    match field.metadata().get(PG_TYPE_KEY).map(String::as_str) {
        Some("json") => Ok(Type::JSON),
        Some("jsonb") => Ok(Type::JSONB),
        Some(name) if name.starts_with("character varying") => Ok(Type::VARCHAR),
        Some(name) if name.starts_with("character(") => Ok(Type::BPCHAR),
        Some("uuid") => Ok(Type::UUID),
        _ => into_pg_type(field.data_type()),
    }
}

/// Gives a `$n` that only a cast types (`$1::int`, `CAST($1 AS bigint)`,
/// `$1::jsonb`) that cast's type, as PostgreSQL does. DataFusion leaves
/// such a parameter untyped: it is described as `unknown`, and drivers that
/// encode by the described type (asyncpg, node-postgres with binary
/// buffers) then cannot send it.
pub fn type_cast_parameters(plan: LogicalPlan) -> Result<LogicalPlan> {
    let untyped = |e: &Expr| matches!(e, Expr::Placeholder(Placeholder { field: None, .. }));
    let typed = |e: Expr, field: FieldRef| match e {
        Expr::Placeholder(p) => Expr::Placeholder(Placeholder {
            id: p.id,
            field: Some(field),
        }),
        other => other,
    };
    let transformed = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| {
                Ok(match e {
                    Expr::Cast(Cast { expr, field }) if untyped(&expr) => {
                        Transformed::yes(Expr::Cast(Cast {
                            expr: Box::new(typed(*expr, field.clone())),
                            field,
                        }))
                    }
                    Expr::TryCast(TryCast { expr, field }) if untyped(&expr) => {
                        Transformed::yes(Expr::TryCast(TryCast {
                            expr: Box::new(typed(*expr, field.clone())),
                            field,
                        }))
                    }
                    Expr::ScalarFunction(mut call)
                        if call.args.len() == 1 && untyped(&call.args[0]) =>
                    {
                        let json = match call.name() {
                            "pg_json_in" => Some(ColumnType::Json),
                            "pg_jsonb_in" => Some(ColumnType::Jsonb),
                            _ => None,
                        };
                        match json {
                            Some(ty) => {
                                let arg = call.args.remove(0);
                                call.args.push(typed(arg, Arc::new(ty.field("", true))));
                                Transformed::yes(Expr::ScalarFunction(call))
                            }
                            None => Transformed::no(Expr::ScalarFunction(call)),
                        }
                    }
                    other => Transformed::no(other),
                })
            })
        })
    })?;
    Ok(transformed.data)
}

/// The column a parameter of PostgreSQL type `ty` binds as, for the types
/// clients declare in Parse.
fn declared_field(ty: &Type) -> Option<Field> {
    let data_type = match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => DataType::Decimal128(38, 10),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        Type::BYTEA => DataType::Binary,
        Type::JSON => return Some(ColumnType::Json.field("", true)),
        Type::JSONB => return Some(ColumnType::Jsonb.field("", true)),
        _ => return None,
    };
    Some(Field::new("", data_type, true))
}

/// Gives each `$n` the type the client declared for it in Parse, as
/// PostgreSQL does: psycopg 3 declares numeric for a Decimal and
/// timestamptz for an aware datetime, and `SELECT $1 * 2` must then compute
/// in numeric (DataFusion types `$1` from the `2`, and the fraction was
/// lost), `SELECT $1` return a timestamptz. A parameter that DataFusion
/// typed from what it meets keeps that type, except an integer where the
/// client declared a fraction.
pub fn type_declared_parameters(
    plan: LogicalPlan,
    declared: &[Option<Type>],
) -> Result<LogicalPlan> {
    let field_for = |id: &str| -> Option<Field> {
        let n: usize = id.strip_prefix('$')?.parse().ok()?;
        declared_field(declared.get(n.checked_sub(1)?)?.as_ref()?)
    };
    if !declared
        .iter()
        .flatten()
        .any(|ty| declared_field(ty).is_some())
    {
        return Ok(plan);
    }
    let transformed = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| {
                let Expr::Placeholder(placeholder) = &e else {
                    return Ok(Transformed::no(e));
                };
                let Some(wanted) = field_for(&placeholder.id) else {
                    return Ok(Transformed::no(e));
                };
                // Over a type DataFusion inferred, only a declared
                // fraction wins over an integer (`$1 * 2` with a Decimal):
                // a declared integer width, or a numeric against a numeric
                // column, keeps the inferred type, whose column or function
                // then checks the value's range.
                let replace = match &placeholder.field {
                    None => true,
                    Some(field) => {
                        field.data_type().is_integer()
                            && matches!(
                                wanted.data_type(),
                                DataType::Decimal128(..) | DataType::Float32 | DataType::Float64
                            )
                    }
                };
                if !replace {
                    return Ok(Transformed::no(e));
                }
                // A declared smallint or integer binds as bigint, DataFusion's
                // integer: function signatures (substr's positions) take it.
                let wanted = match wanted.data_type() {
                    DataType::Int16 | DataType::Int32 => wanted.with_data_type(DataType::Int64),
                    _ => wanted,
                };
                Ok(Transformed::yes(Expr::Placeholder(Placeholder {
                    id: placeholder.id.clone(),
                    field: Some(Arc::new(wanted)),
                })))
            })
        })?
        .map_data(|node| node.recompute_schema())
    })?;
    Ok(transformed.data)
}

/// The plan's parameters in `$n` order (missing numbers are `None`).
pub fn parameter_fields(plan: &LogicalPlan) -> Result<Vec<Option<FieldRef>>> {
    let fields = plan.get_parameter_fields()?;
    let count = fields
        .keys()
        .filter_map(|k| k.trim_start_matches('$').parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    Ok((1..=count)
        .map(|i| fields.get(&format!("${i}")).cloned().flatten())
        .collect())
}

pub fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Type>> {
    parameter_fields(plan)?
        .iter()
        .map(|field| match field {
            Some(field) => pg_type(field).map_err(|e| Error::Internal(e.to_string())),
            None => Ok(Type::UNKNOWN),
        })
        .collect()
}

fn is_string_like(ty: &Type) -> bool {
    [
        Type::JSON,
        Type::JSONB,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
    ]
    .contains(ty)
}

/// Decodes the portal's parameters into values for `plan`'s placeholders.
pub fn bind<S: Clone>(portal: &Portal<S>, plan: &LogicalPlan) -> Result<ParamValues> {
    let fields = parameter_fields(plan)?;
    let server_types = parameter_types(plan)?;
    let count = portal.parameter_len();
    let mut types = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    let mut formats = Vec::with_capacity(count);
    for i in 0..count {
        let declared = portal
            .statement
            .parameter_types
            .get(i)
            .cloned()
            .flatten()
            .filter(|t| *t != Type::UNKNOWN)
            .or_else(|| server_types.get(i).cloned());
        let raw = portal.parameters.get(i).cloned().flatten();
        match declared {
            Some(ty) if is_string_like(&ty) => {
                let text = raw
                    .map(|bytes| string_parameter(&ty, portal.parameter_format.is_binary(i), bytes))
                    .transpose()?;
                types.push(Some(Type::TEXT));
                values.push(text);
                formats.push(0);
            }
            other => {
                types.push(other);
                values.push(raw);
                formats.push(i16::from(portal.parameter_format.is_binary(i)));
            }
        }
    }
    let mut patched = Portal::<()>::default();
    patched.statement = Arc::new(StoredStatement::new(String::new(), (), types));
    patched.parameters = values;
    patched.parameter_format = Format::Individual(formats);
    let inferred: Vec<Option<DataType>> = fields
        .iter()
        .map(|f| f.as_ref().map(|f| f.data_type().clone()))
        .collect();
    let inferred: Vec<Option<&DataType>> = inferred.iter().map(Option::as_ref).collect();
    deserialize_parameters(&patched, &inferred).map_err(parameter_error)
}

/// `plan` with its parameters bound to `values`. A bigint value is bound as
/// a cast of its literal to bigint: the analyzer types integer literals
/// that fit as integer (`query::pg_compat::IntegerLiterals`), which is
/// right for literals written in the SQL but not for a value the client
/// sent as int8 (`$1 + 1` with 2147483647 must not overflow).
pub fn bound(plan: LogicalPlan, values: &ParamValues) -> Result<LogicalPlan> {
    let bigint = |p: &Placeholder| {
        values
            .get_placeholders_with_values(&p.id)
            .is_ok_and(|v| v.value.data_type() == DataType::Int64)
    };
    let plan = plan
        .transform_up_with_subqueries(|node| {
            node.map_expressions(|expr| {
                expr.transform_up(|e| {
                    Ok(match e {
                        Expr::Placeholder(p) if bigint(&p) => Transformed::yes(Expr::Cast(
                            Cast::new(Box::new(Expr::Placeholder(p)), DataType::Int64),
                        )),
                        other => Transformed::no(other),
                    })
                })
            })
        })?
        .data;
    Ok(plan.replace_params_with_values(values)?)
}

/// The text of a string-like parameter; jsonb's binary form starts with a
/// version byte (1), uuid's is its 16 bytes.
fn string_parameter(ty: &Type, binary: bool, bytes: Bytes) -> Result<Bytes> {
    if binary && *ty == Type::UUID {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        return Ok(Bytes::from(uuid_text(&hex)?));
    }
    let bytes = if binary && *ty == Type::JSONB {
        match bytes.first() {
            Some(1) => bytes.slice(1..),
            _ => {
                return Err(Error::Data {
                    code: "22P02",
                    message: "unsupported jsonb version number".into(),
                });
            }
        }
    } else {
        bytes
    };
    std::str::from_utf8(&bytes).map_err(|_| Error::Data {
        code: "22021",
        message: "invalid byte sequence for encoding \"UTF8\"".into(),
    })?;
    Ok(bytes)
}

fn parameter_error(error: PgWireError) -> Error {
    let message = match &error {
        PgWireError::UserError(info) => info.message.clone(),
        other => other.to_string(),
    };
    let code = if message.contains("out of range") {
        "22003"
    } else {
        "22P02"
    };
    Error::Data {
        code,
        message: format!("invalid value for parameter: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnType;

    #[test]
    fn declared_types_reach_the_wire() {
        assert_eq!(
            pg_type(&ColumnType::Jsonb.field("j", true)).unwrap(),
            Type::JSONB
        );
        assert_eq!(
            pg_type(&ColumnType::Varchar(Some(3)).field("v", true)).unwrap(),
            Type::VARCHAR
        );
        assert_eq!(
            pg_type(&ColumnType::Char(3).field("c", true)).unwrap(),
            Type::BPCHAR
        );
        assert_eq!(
            pg_type(&ColumnType::Text.field("t", true)).unwrap(),
            Type::TEXT
        );
        assert_eq!(
            pg_type(&ColumnType::BigInt.field("b", true)).unwrap(),
            Type::INT8
        );
    }

    #[test]
    fn jsonb_binary_parameters_drop_the_version_byte() {
        let text =
            string_parameter(&Type::JSONB, true, Bytes::from_static(b"\x01{\"a\":1}")).unwrap();
        assert_eq!(&text[..], b"{\"a\":1}");
        assert!(string_parameter(&Type::JSONB, true, Bytes::from_static(b"\x02{}")).is_err());
        let plain = string_parameter(&Type::JSON, true, Bytes::from_static(b"[1]")).unwrap();
        assert_eq!(&plain[..], b"[1]");
    }
}
