//! The session's TimeZone in timestamptz arithmetic.
//!
//! A timestamptz is stored as a UTC instant (Arrow `Timestamp(µs, "UTC")`).
//! PostgreSQL reads the session's TimeZone wherever a timestamptz meets
//! local time: text without an offset and a plain timestamp become
//! timestamptz as local time there; a timestamptz becomes a date, a time or
//! a plain timestamp, and `extract`/`date_trunc` split it, in local time
//! there. Arrow does all of that in the zone of the type, so this rule,
//! after type coercion, routes those conversions through the same instant
//! typed with the session's zone. With a UTC session (the default) it
//! changes nothing, and a plan analyzed again under a UTC config (as every
//! plan is before it runs) is left as it is: the rule only rewrites
//! conversions whose zone is UTC, and the ones it writes are not.

use std::sync::Arc;

use chrono::{Offset, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err, not_impl_err, plan_err};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::pg_compat::rewrite_expressions;

#[derive(Debug)]
pub struct SessionTimeZone;

/// Whether a zone is UTC: the label of stored and UTC-planned timestamptz
/// values, and the sessions whose local time needs no conversion.
pub fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "+00:00" | "+00" | "Z" | "Etc/UTC" | "GMT")
}

impl AnalyzerRule for SessionTimeZone {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let Some(zone) = config.execution.time_zone.as_deref().filter(|z| !is_utc(z)) else {
            return Ok(plan);
        };
        let zone: Arc<str> = zone.into();
        rewrite_expressions(plan, |e, schema| rewrite(e, schema, &zone))
    }

    fn name(&self) -> &str {
        "freshet_session_time_zone"
    }
}

fn rewrite(expr: Expr, schema: &DFSchema, zone: &Arc<str>) -> Result<Transformed<Expr>> {
    let rewritten = match &expr {
        Expr::Cast(Cast { expr: inner, field }) => {
            conversion(inner, field.data_type(), schema, zone)?
                .map(|via| Expr::Cast(Cast::new_from_field(Box::new(via), field.clone())))
        }
        Expr::TryCast(TryCast { expr: inner, field }) => {
            conversion(inner, field.data_type(), schema, zone)?.map(|via| {
                Expr::TryCast(TryCast {
                    expr: Box::new(via),
                    field: field.clone(),
                })
            })
        }
        Expr::ScalarFunction(function) => split(function, schema, zone)?,
        _ => None,
    };
    Ok(match rewritten {
        Some(new) => Transformed::yes(new),
        None => Transformed::no(expr),
    })
}

/// The value a cast of `inner` to `target` should start from: `inner` as
/// a timestamptz of the session's zone, where the cast crosses between
/// local time and a UTC timestamptz. A timestamptz to a plain timestamp is
/// the instant's local wall time (`to_local_time`), which Arrow's cast does
/// not give.
fn conversion(
    inner: &Expr,
    target: &DataType,
    schema: &DFSchema,
    zone: &Arc<str>,
) -> Result<Option<Expr>> {
    let source = inner.get_type(schema)?;
    let local = |unit: TimeUnit| DataType::Timestamp(unit, Some(zone.clone()));
    Ok(match (&source, target) {
        (
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Timestamp(_, None),
            DataType::Timestamp(unit, Some(to)),
        ) if is_utc(to) => Some(cast_expr(inner.clone(), local(*unit))),
        (DataType::Timestamp(unit, Some(from)), DataType::Date32 | DataType::Time64(_))
            if is_utc(from) =>
        {
            Some(cast_expr(inner.clone(), local(*unit)))
        }
        (DataType::Timestamp(unit, Some(from)), DataType::Timestamp(_, None)) if is_utc(from) => {
            Some(to_local_time(cast_expr(inner.clone(), local(*unit))))
        }
        _ => None,
    })
}

/// `extract`/`date_part` and `date_trunc` of a UTC timestamptz, computed
/// on the instant in the session's zone; `date_trunc`'s answer is cast back
/// to the argument's type, so the plan's types do not change.
fn split(function: &ScalarFunction, schema: &DFSchema, zone: &Arc<str>) -> Result<Option<Expr>> {
    let name = function.func.name();
    if !matches!(name, "date_part" | "date_trunc") || function.args.len() != 2 {
        return Ok(None);
    }
    let argument = &function.args[1];
    let ty = argument.get_type(schema)?;
    let DataType::Timestamp(unit, Some(from)) = &ty else {
        return Ok(None);
    };
    if !is_utc(from) {
        return Ok(None);
    }
    let local = cast_expr(
        argument.clone(),
        DataType::Timestamp(*unit, Some(zone.clone())),
    );
    let call = Expr::ScalarFunction(ScalarFunction::new_udf(
        function.func.clone(),
        vec![function.args[0].clone(), local],
    ));
    Ok(Some(if name == "date_trunc" {
        cast_expr(call, ty.clone())
    } else {
        call
    }))
}

fn cast_expr(expr: Expr, to: DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(expr), to))
}

fn to_local_time(expr: Expr) -> Expr {
    datafusion::functions::datetime::expr_fn::to_local_time(vec![expr])
}

/// `ts AT TIME ZONE zone` (the SQL rewrite calls it `pg_at_time_zone`), as
/// PostgreSQL answers it: a timestamptz becomes the plain timestamp of its
/// wall time in `zone`; a plain timestamp (or a date) is read as wall time
/// in `zone` and becomes that instant. DataFusion's own AT TIME ZONE only
/// relabels the zone of the type, which answers a timestamptz for both.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AtTimeZone {
    signature: Signature,
}

impl Default for AtTimeZone {
    fn default() -> Self {
        AtTimeZone {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// Whether a value of `ty` is an instant (timestamptz, or text read as one,
/// as PostgreSQL resolves an untyped literal) rather than a wall time.
fn is_instant(ty: &DataType) -> Option<bool> {
    match ty {
        DataType::Timestamp(_, Some(_))
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => Some(true),
        DataType::Timestamp(_, None) | DataType::Date32 | DataType::Null => Some(false),
        _ => None,
    }
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        "pg_at_time_zone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match is_instant(&arg_types[0]) {
            Some(true) => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
            Some(false) => Ok(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            )),
            None => plan_err!("function timezone(text, {}) does not exist", arg_types[0]),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(zone) = &args.args[1] else {
            return not_impl_err!("AT TIME ZONE with a zone that is not a constant");
        };
        let Some(zone) = zone.try_as_str().flatten() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(
                args.return_field.data_type(),
            )?));
        };
        let name = match zone.parse::<Tz>() {
            Ok(_) => zone.to_string(),
            Err(_) if is_utc(&zone.to_ascii_uppercase()) => "UTC".to_string(),
            Err(_) => return exec_err!("time zone \"{zone}\" not recognized"),
        };
        let tz: Tz = name.parse()?;
        let rows = args.number_rows;
        let input = args.args[0].to_array(rows)?;
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let out: ArrayRef = if is_instant(input.data_type()) == Some(true) {
            let instants = cast(&input, &utc)?;
            let walls: TimestampMicrosecondArray = instants
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| v.map(|micros| micros + offset_micros(&tz, micros)))
                .collect();
            Arc::new(walls)
        } else {
            let walls = cast(&input, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let local = cast(
                &walls,
                &DataType::Timestamp(TimeUnit::Microsecond, Some(name.into())),
            )?;
            cast(&local, &utc)?
        };
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(out),
        })
    }
}

/// The offset of `tz` from UTC at the instant `micros`, in microseconds.
fn offset_micros(tz: &Tz, micros: i64) -> i64 {
    let Some(instant) = chrono::DateTime::from_timestamp_micros(micros) else {
        return 0;
    };
    let offset = tz.offset_from_utc_datetime(&instant.naive_utc()).fix();
    i64::from(offset.local_minus_utc()) * 1_000_000
}
