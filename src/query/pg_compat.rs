//! Where DataFusion's SQL semantics differ from PostgreSQL's in ways users
//! see in their data, an analyzer rule brings them in line:
//!
//! - A string cast to `bytea` is PostgreSQL bytea input (`'\x0102'` is two
//!   bytes, `'a\\b'` escapes a backslash), not the string's UTF-8 bytes.
//! - A float or numeric cast to an integer rounds (`1.7::int` is 2), where
//!   Arrow truncates.
//! - Float division by zero is an error (22012), not `Infinity`.
//! - Numeric division keeps 16 decimals (`pg_numeric`).
//! - `to_char` takes PostgreSQL's template patterns (`YYYY-MM-DD HH24:MI`).
//! - `octet_length` takes bytea too (`OctetLength`).
//! - An interval times or divided by a number is an interval
//!   (`interval '1 day' * 1.5` is `1 day 12:00:00`).
//!
//! The rule runs after DataFusion's type coercion, so it also sees the casts
//! that coercion adds (an `INSERT` of a string literal into a bytea column).
//! Interval arithmetic needs an expression planner instead (see
//! `IntervalArithmetic`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Datum, Int32Array, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::kernels::numeric::{div, rem};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::{
    Field, Float64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, Projection, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, SubqueryAlias, Volatility, create_udf,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use std::sync::LazyLock;

use crate::catalog::{ColumnType, PG_TYPE_KEY};

#[derive(Debug, Default)]
pub struct PostgresCasts;

impl AnalyzerRule for PostgresCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, rewrite)
    }

    fn name(&self) -> &str {
        "freshet_postgres_casts"
    }
}

/// Integer literals typed as PostgreSQL types them: `integer` when the
/// value fits in 32 bits, `bigint` only beyond (DataFusion makes every one
/// an Int64). Runs before type coercion, which then widens a literal where
/// its context is bigint, so `int_col + 1` stays integer arithmetic (and
/// overflows where PostgreSQL's does), `SELECT 1` is an `int4` column for
/// drivers, and `pg_typeof(1)` is integer. A column of a named VALUES list
/// (`FROM (VALUES ...) AS v(x)`, a CTE) is integer when every row holds
/// such a literal (or NULL); other VALUES (an INSERT's, planned in the
/// target's column types) keep their types, as do LIMIT/OFFSET counts and
/// recursive CTEs.
#[derive(Debug)]
pub struct IntegerLiterals;

impl AnalyzerRule for IntegerLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut recursive = false;
        plan.apply_with_subqueries(|node| {
            recursive |= matches!(node, LogicalPlan::RecursiveQuery(_));
            Ok(if recursive {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        if recursive {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::SubqueryAlias(alias) => {
                    let input = narrow_named_values(Arc::unwrap_or_clone(alias.input))?;
                    LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                        Arc::new(input),
                        alias.alias,
                    )?)
                }
                LogicalPlan::Limit(_) | LogicalPlan::Values(_) => return Ok(Transformed::no(node)),
                other => other,
            };
            let names = NamePreserver::new(&node);
            let narrowed = node.map_expressions(|expr| {
                let saved = names.save(&expr);
                Ok(expr
                    .transform_up(|e| {
                        Ok(match e {
                            Expr::Literal(ScalarValue::Int64(Some(v)), metadata)
                                if narrow(Some(v)).is_some() =>
                            {
                                Transformed::yes(Expr::Literal(
                                    ScalarValue::Int32(narrow(Some(v))),
                                    metadata,
                                ))
                            }
                            other => Transformed::no(other),
                        })
                    })?
                    .update_data(|e| saved.restore(e)))
            })?;
            // Types below may have changed even where this node's did not.
            narrowed
                .map_data(|node| node.recompute_schema())
                .map(|t| Transformed::yes(t.data))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "freshet_integer_literals"
    }
}

/// A bigint value as an integer, when it fits.
fn narrow(value: Option<i64>) -> Option<i32> {
    value.and_then(|v| i32::try_from(v).ok())
}

/// The input of a SubqueryAlias with its VALUES narrowed, when it is one
/// (or the projection that names its columns).
fn narrow_named_values(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Values(values) => Ok(LogicalPlan::Values(narrow_values(values)?)),
        LogicalPlan::Projection(projection)
            if matches!(projection.input.as_ref(), LogicalPlan::Values(_)) =>
        {
            let input = narrow_named_values(Arc::unwrap_or_clone(projection.input))?;
            Ok(LogicalPlan::Projection(Projection::try_new(
                projection.expr,
                Arc::new(input),
            )?))
        }
        other => Ok(other),
    }
}

/// A VALUES list whose bigint columns hold only integer literals that fit
/// in 32 bits (or NULLs) with those columns integer.
fn narrow_values(
    mut values: datafusion::logical_expr::Values,
) -> Result<datafusion::logical_expr::Values> {
    let narrowable = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Int64(v), _) => v.is_none() || narrow(*v).is_some(),
        _ => false,
    };
    let mut fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> = values
        .schema
        .iter()
        .map(|(q, f)| (q.cloned(), f.clone()))
        .collect();
    let mut changed = false;
    for (column, (_, field)) in fields.iter_mut().enumerate() {
        if field.data_type() != &DataType::Int64
            || !values
                .values
                .iter()
                .all(|row| row.get(column).is_some_and(narrowable))
        {
            continue;
        }
        for row in &mut values.values {
            if let Expr::Literal(ScalarValue::Int64(v), metadata) = &row[column] {
                row[column] = Expr::Literal(ScalarValue::Int32(narrow(*v)), metadata.clone());
            }
        }
        *field = Arc::new(field.as_ref().clone().with_data_type(DataType::Int32));
        changed = true;
    }
    if changed {
        let metadata = values.schema.metadata().clone();
        values.schema = Arc::new(DFSchema::new_with_metadata(fields, metadata)?);
    }
    Ok(values)
}

/// Every expression of `plan` and of its subqueries rewritten bottom-up by
/// `rewrite` (given the schema the expression is evaluated against), each
/// node's output names kept as they were.
pub(super) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let schema = input_schema(&node);
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let saved = names.save(&expr);
            Ok(expr
                .transform_up(|e| rewrite(e, &schema))?
                .update_data(|e| saved.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// The schema a node's expressions are evaluated against.
fn input_schema(node: &LogicalPlan) -> Arc<DFSchema> {
    let inputs = node.inputs();
    match inputs.as_slice() {
        [] => Arc::new(DFSchema::empty()),
        [one] => one.schema().clone(),
        [first, rest @ ..] => {
            let mut merged = first.schema().as_ref().clone();
            for input in rest {
                merged.merge(input.schema());
            }
            Arc::new(merged)
        }
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if let Some(float) = decimal_literal_as_float(&expr) {
        return Ok(Transformed::yes(float));
    }
    if let Some(folded) = checked_constant(&expr)? {
        return Ok(Transformed::yes(folded));
    }
    if let Expr::ScalarFunction(function) = &expr {
        return rewrite_function(function, schema).map(|new| match new {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(expr),
        });
    }
    rewrite_arithmetic(expr, schema)
}

/// `+`, `-` or `*` of two integer literals of one type, folded here with
/// PostgreSQL's overflow check: DataFusion's own constant folding wraps
/// (`2147483647 + 1` was -2147483648). PostgreSQL folds constants when it
/// plans, so an overflow fails the statement there too.
fn checked_constant(expr: &Expr) -> Result<Option<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return Ok(None);
    };
    // A literal may come cast to the other side's type by coercion.
    let constant = |e: &Expr| match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(Cast { expr, field }) if field.data_type().is_integer() => match expr.as_ref() {
            Expr::Literal(v, _) => v.cast_to(field.data_type()).ok(),
            _ => None,
        },
        _ => None,
    };
    let (Some(l), Some(r)) = (constant(left), constant(right)) else {
        return Ok(None);
    };
    let apply = |a: i64, b: i64| match op {
        Operator::Plus => Some(a.checked_add(b)),
        Operator::Minus => Some(a.checked_sub(b)),
        Operator::Multiply => Some(a.checked_mul(b)),
        _ => None,
    };
    // Computed in i64, then held to the operands' type.
    type Typed = fn(i64) -> Option<ScalarValue>;
    let (a, b, name, typed): (i64, i64, &str, Typed) = match (&l, &r) {
        (ScalarValue::Int16(Some(a)), ScalarValue::Int16(Some(b))) => {
            (i64::from(*a), i64::from(*b), "smallint", |v| {
                i16::try_from(v).ok().map(|v| ScalarValue::Int16(Some(v)))
            })
        }
        (ScalarValue::Int32(Some(a)), ScalarValue::Int32(Some(b))) => {
            (i64::from(*a), i64::from(*b), "integer", |v| {
                i32::try_from(v).ok().map(|v| ScalarValue::Int32(Some(v)))
            })
        }
        (ScalarValue::Int64(Some(a)), ScalarValue::Int64(Some(b))) => {
            (*a, *b, "bigint", |v| Some(ScalarValue::Int64(Some(v))))
        }
        _ => return Ok(None),
    };
    let Some(result) = apply(a, b) else {
        return Ok(None);
    };
    match result.and_then(typed) {
        Some(value) => Ok(Some(Expr::Literal(value, None))),
        None => Err(DataFusionError::Execution(format!("{name} out of range"))),
    }
}

/// A decimal literal cast to a float (`1e15::float8`) as the float nearest
/// its digits, as PostgreSQL reads it. Arrow's cast divides by a power of
/// ten that a float cannot hold exactly for a negative or a large scale
/// (`1e15` is 1 at scale -15, and `1 / 1e-15` is 999999999999999.9).
fn decimal_literal_as_float(expr: &Expr) -> Option<Expr> {
    let Expr::Cast(cast) = expr else {
        return None;
    };
    let Expr::Literal(ScalarValue::Decimal128(Some(unscaled), _, scale), _) = cast.expr.as_ref()
    else {
        return None;
    };
    let digits = format!("{unscaled}e{}", -i32::from(*scale));
    let value = match cast.field.data_type() {
        DataType::Float64 => ScalarValue::Float64(Some(digits.parse().ok()?)),
        DataType::Float32 => ScalarValue::Float32(Some(digits.parse().ok()?)),
        _ => return None,
    };
    Some(Expr::Literal(value, None))
}

/// Function calls whose PostgreSQL meaning differs from DataFusion's.
fn rewrite_function(function: &ScalarFunction, schema: &DFSchema) -> Result<Option<Expr>> {
    let args = &function.args;
    let arg_type = |i: usize| args.get(i).and_then(|a| a.get_type(schema).ok());
    Ok(match (function.name(), arg_type(1)) {
        ("to_char", Some(_)) => match &args[1] {
            Expr::Literal(ScalarValue::Utf8(Some(pattern)), _) => Some(function.func.call(vec![
                args[0].clone(),
                Expr::Literal(ScalarValue::Utf8(Some(strftime_pattern(pattern))), None),
            ])),
            _ => None,
        },
        _ => None,
    })
}

/// Translates a PostgreSQL `to_char` template to the strftime pattern
/// DataFusion's `to_char` takes. Covers the common template patterns; other
/// text passes through (with `%` escaped).
pub fn strftime_pattern(template: &str) -> String {
    const PATTERNS: &[(&str, &str)] = &[
        ("YYYY", "%Y"),
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("Month", "%B"),
        ("MONTH", "%B"),
        ("Mon", "%b"),
        ("MON", "%b"),
        ("Day", "%A"),
        ("DAY", "%A"),
        ("Dy", "%a"),
        ("DY", "%a"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("HH", "%I"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("MS", "%3f"),
        ("US", "%6f"),
        ("AM", "%p"),
        ("PM", "%p"),
        ("TZ", "%Z"),
        ("D", "%u"),
    ];
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    'outer: while let Some(c) = rest.chars().next() {
        for (pg, strftime) in PATTERNS {
            if let Some(tail) = rest.strip_prefix(pg) {
                out.push_str(strftime);
                rest = tail;
                continue 'outer;
            }
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Plans the operators whose result type differs from DataFusion's:
/// `interval * number`, `number * interval` and `interval / number` (which
/// DataFusion rejects), `date +/- interval` (a timestamp) and `timestamp -
/// timestamp` (an interval). An expression planner, not the analyzer rule: an
/// analyzer rule may not change a plan's types.
#[derive(Debug, Default)]
pub struct IntervalArithmetic;

impl ExprPlanner for IntervalArithmetic {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (Ok(l), Ok(r)) = (expr.left.get_type(schema), expr.right.get_type(schema)) else {
            return Ok(PlannerResult::Original(expr));
        };
        // date +/- interval is a timestamp in PostgreSQL, not a date.
        if matches!(expr.op, BinaryOperator::Plus | BinaryOperator::Minus)
            && matches!(l, DataType::Date32 | DataType::Date64)
            && matches!(r, DataType::Interval(_))
        {
            let op = if expr.op == BinaryOperator::Plus {
                Operator::Plus
            } else {
                Operator::Minus
            };
            let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
            return Ok(PlannerResult::Planned(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(expr.left.cast_to(&timestamp, schema)?),
                op,
                Box::new(expr.right),
            ))));
        }
        // timestamp - timestamp is an interval with whole days split out of
        // the hours (DataFusion makes it a duration).
        if expr.op == BinaryOperator::Minus
            && matches!(l, DataType::Timestamp(..))
            && matches!(r, DataType::Timestamp(..))
        {
            let interval = DataType::Interval(IntervalUnit::MonthDayNano);
            let difference = Expr::BinaryExpr(BinaryExpr::new(
                Box::new(expr.left),
                Operator::Minus,
                Box::new(expr.right),
            ));
            return Ok(PlannerResult::Planned(
                JUSTIFY_HOURS.call(vec![difference.cast_to(&interval, schema)?]),
            ));
        }
        let number = |t: &DataType| t.is_numeric();
        let (interval, factor, divide) = match (&expr.op, &l, &r) {
            (BinaryOperator::Multiply, DataType::Interval(_), f) if number(f) => {
                (&expr.left, &expr.right, false)
            }
            (BinaryOperator::Multiply, f, DataType::Interval(_)) if number(f) => {
                (&expr.right, &expr.left, false)
            }
            (BinaryOperator::Divide, DataType::Interval(_), f) if number(f) => {
                (&expr.left, &expr.right, true)
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let interval_type = DataType::Interval(IntervalUnit::MonthDayNano);
        let udf = if divide {
            &INTERVAL_DIVIDE
        } else {
            &INTERVAL_MULTIPLY
        };
        Ok(PlannerResult::Planned(udf.call(vec![
            interval.clone().cast_to(&interval_type, schema)?,
            factor.clone().cast_to(&DataType::Float64, schema)?,
        ])))
    }
}

fn rewrite_arithmetic(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr
        && *op == Operator::Divide
        && let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema))
        && (matches!(l, DataType::Decimal128(..)) || matches!(r, DataType::Decimal128(..)))
        && (l.is_integer() || matches!(l, DataType::Decimal128(..)))
        && (r.is_integer() || matches!(r, DataType::Decimal128(..)))
    {
        return Ok(Transformed::yes(
            NUMERIC_DIVIDE.call(vec![left.as_ref().clone(), right.as_ref().clone()]),
        ));
    }
    if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr
        && matches!(op, Operator::Divide | Operator::Modulo)
        && let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema))
        && (l.is_floating() || r.is_floating())
    {
        let udf = if *op == Operator::Divide {
            &FLOAT_DIVIDE
        } else {
            &FLOAT_MODULO
        };
        let call = udf.call(vec![
            left.as_ref().clone().cast_to(&DataType::Float64, schema)?,
            right.as_ref().clone().cast_to(&DataType::Float64, schema)?,
        ]);
        let result_type = if l == DataType::Float64 || r == DataType::Float64 {
            DataType::Float64
        } else {
            DataType::Float32
        };
        return Ok(Transformed::yes(call.cast_to(&result_type, schema)?));
    }
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let target = field.data_type();
    if matches!(
        target,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) && let Expr::Literal(value, _) = inner.as_ref()
        && let Some(text) = string_value(value)
    {
        let bytes = text.map(bytea_input).transpose()?;
        let literal = ScalarValue::Binary(bytes).cast_to(target)?;
        return Ok(Transformed::yes(Expr::Literal(literal, None)));
    }
    if matches!(target, DataType::Timestamp(..)) {
        // Text becomes a timestamp the way PostgreSQL reads it: a literal
        // is mended here, any other text as it is cast.
        let mended = match inner.as_ref() {
            Expr::Literal(value, _) => string_value(value)
                .flatten()
                .and_then(timestamp_text)
                .map(|full| Expr::Literal(ScalarValue::Utf8(Some(full)), None)),
            Expr::ScalarFunction(f) if f.func.name() == TIMESTAMP_TEXT.name() => None,
            other => match other.get_type(schema) {
                Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                    Some(TIMESTAMP_TEXT.call(vec![other.clone().cast_to(&DataType::Utf8, schema)?]))
                }
                _ => None,
            },
        };
        if let Some(mended) = mended {
            return Ok(Transformed::yes(Expr::Cast(Cast {
                expr: Box::new(mended),
                field: field.clone(),
            })));
        }
    }
    if target.is_integer()
        && let Ok(source) = inner.get_type(schema)
        && (source.is_floating()
            || matches!(source, DataType::Decimal128(..) | DataType::Decimal256(..)))
    {
        let rounded = datafusion::functions::math::expr_fn::round(vec![inner.as_ref().clone()]);
        return Ok(Transformed::yes(Expr::Cast(Cast {
            expr: Box::new(rounded),
            field: field.clone(),
        })));
    }
    Ok(Transformed::no(expr))
}

/// A timestamp's text as Arrow parses it, where PostgreSQL's reading
/// differs: `2024-01-01 12:00` (no seconds; also with a one-digit hour, a
/// `T` or an offset after it) gets its `:00`. `None` when nothing changes.
pub fn timestamp_text(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range.end <= bytes.len() && bytes[range].iter().all(u8::is_ascii_digit)
    };
    let dated = digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10);
    if !dated || !matches!(bytes.get(10), Some(b' ' | b'T')) {
        return None;
    }
    let hour_digits = if digits(11..13) {
        2
    } else if digits(11..12) {
        1
    } else {
        return None;
    };
    let colon = 11 + hour_digits;
    if bytes.get(colon) != Some(&b':') || !digits(colon + 1..colon + 3) {
        return None;
    }
    let rest = &text[colon + 3..];
    if rest.starts_with(':') || rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let hour = &text[11..colon];
    Some(format!(
        "{}{hour:0>2}:{}:00{rest}",
        &text[..11],
        &text[colon + 1..colon + 3]
    ))
}

/// `pg_typeof(x)`: the PostgreSQL name of the argument's type, read from
/// its field (a table column's declared type) or else from its Arrow type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTypeof {
    signature: Signature,
}

impl Default for PgTypeof {
    fn default() -> Self {
        PgTypeof {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let field = &args.arg_fields[0];
        let declared = field.metadata().get(PG_TYPE_KEY).cloned();
        let name = match declared {
            Some(name) => name,
            None if field.data_type() == &DataType::Null => "unknown".to_string(),
            None => {
                // An array is its element type's name with `[]`.
                let (element, suffix) = match field.data_type() {
                    DataType::List(item) | DataType::LargeList(item) => (item.data_type(), "[]"),
                    other => (other, ""),
                };
                let name = ColumnType::from_arrow(element)
                    .map(|ty| ty.pg_name())
                    .map_err(|e| DataFusionError::Plan(e.to_string()))?;
                format!("{name}{suffix}")
            }
        };
        // A type modifier is not part of the type: numeric(10,2) is numeric.
        let name = match name.split_once('(') {
            Some((base, _)) => base.to_string(),
            None => name,
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `octet_length` of text or bytea, in bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OctetLength {
    signature: Signature,
}

impl Default for OctetLength {
    fn default() -> Self {
        OctetLength {
            signature: Signature::uniform(
                1,
                vec![
                    DataType::Utf8,
                    DataType::Utf8View,
                    DataType::LargeUtf8,
                    DataType::Binary,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for OctetLength {
    fn name(&self) -> &str {
        "octet_length"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let bytes = datafusion::arrow::compute::cast(&arrays[0], &DataType::Binary)?;
        let lengths: Int32Array = bytes
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(|b| b.len() as i32))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(lengths)))
    }
}

/// Text on its way to a timestamp, as Arrow parses it (`timestamp_text`).
pub static TIMESTAMP_TEXT: LazyLock<ScalarUDF> = LazyLock::new(|| {
    create_udf(
        "pg_timestamp_text",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let mended: datafusion::arrow::array::StringArray = arrays[0]
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|t| timestamp_text(t).unwrap_or_else(|| t.to_string())))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(mended)))
        }),
    )
});

/// PostgreSQL's `justify_hours`: whole 24-hour periods of the time part
/// become days.
pub static JUSTIFY_HOURS: LazyLock<ScalarUDF> = LazyLock::new(|| {
    let interval = DataType::Interval(IntervalUnit::MonthDayNano);
    create_udf(
        "justify_hours",
        vec![interval.clone()],
        interval,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            const DAY: i64 = 86_400_000_000_000;
            let result: IntervalMonthDayNanoArray = arrays[0]
                .as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        let days = v.nanoseconds / DAY;
                        IntervalMonthDayNano::new(
                            v.months,
                            v.days + days as i32,
                            v.nanoseconds - days * DAY,
                        )
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(result)))
        }),
    )
});

static NUMERIC_DIVIDE: LazyLock<ScalarUDF> =
    LazyLock::new(|| ScalarUDF::from(super::pg_numeric::NumericDivide::default()));
static FLOAT_DIVIDE: LazyLock<ScalarUDF> = LazyLock::new(|| float_op("freshet_float_divide", div));
static FLOAT_MODULO: LazyLock<ScalarUDF> = LazyLock::new(|| float_op("freshet_float_modulo", rem));

/// `a / b` (or `%`) on float8 that fails on a zero divisor, as PostgreSQL does.
fn float_op(
    name: &str,
    op: fn(&dyn Datum, &dyn Datum) -> std::result::Result<ArrayRef, ArrowError>,
) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let divisor = arrays[1].as_primitive::<Float64Type>();
            if divisor.iter().flatten().any(|d| d == 0.0) {
                return Err(DataFusionError::ArrowError(
                    Box::new(ArrowError::DivideByZero),
                    None,
                ));
            }
            Ok(ColumnarValue::Array(op(&arrays[0], &arrays[1])?))
        }),
    )
}

static INTERVAL_MULTIPLY: LazyLock<ScalarUDF> =
    LazyLock::new(|| interval_op("freshet_interval_multiply", false));
static INTERVAL_DIVIDE: LazyLock<ScalarUDF> =
    LazyLock::new(|| interval_op("freshet_interval_divide", true));

/// PostgreSQL's `interval * float8`: fractions of months spill into days (30
/// to a month) and fractions of days into time (24 hours to a day).
pub fn scale_interval(value: IntervalMonthDayNano, factor: f64) -> IntervalMonthDayNano {
    let months = value.months as f64 * factor;
    let whole_months = months.trunc();
    let days = value.days as f64 * factor + (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    let micros = (value.nanoseconds / 1_000) as f64 * factor + (days - whole_days) * 86_400e6;
    IntervalMonthDayNano::new(
        whole_months as i32,
        whole_days as i32,
        micros.round() as i64 * 1_000,
    )
}

fn interval_op(name: &str, divide: bool) -> ScalarUDF {
    let interval = DataType::Interval(IntervalUnit::MonthDayNano);
    create_udf(
        name,
        vec![interval.clone(), DataType::Float64],
        interval,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let values = arrays[0].as_primitive::<IntervalMonthDayNanoType>();
            let factors = arrays[1].as_primitive::<Float64Type>();
            if divide && factors.iter().flatten().any(|f| f == 0.0) {
                return Err(DataFusionError::ArrowError(
                    Box::new(ArrowError::DivideByZero),
                    None,
                ));
            }
            let result: IntervalMonthDayNanoArray = values
                .iter()
                .zip(factors.iter())
                .map(|(v, f)| match (v, f) {
                    (Some(v), Some(f)) => Some(scale_interval(v, if divide { 1.0 / f } else { f })),
                    _ => None,
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(result)))
        }),
    )
}

fn string_value(value: &ScalarValue) -> Option<Option<&str>> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
            Some(s.as_deref())
        }
        _ => None,
    }
}

/// PostgreSQL's bytea input: `\x` followed by hex digit pairs, or the escape
/// format where `\\` is a backslash and `\nnn` an octal byte.
pub fn bytea_input(text: &str) -> Result<Vec<u8>> {
    let invalid =
        || DataFusionError::Execution(format!("invalid input syntax for type bytea: \"{text}\""));
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
            return Err(DataFusionError::Execution(format!(
                "invalid hexadecimal digit: \"{}\"",
                *bad as char
            )));
        }
        if !digits.len().is_multiple_of(2) {
            return Err(DataFusionError::Execution(
                "invalid hexadecimal data: odd number of digits".into(),
            ));
        }
        return digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(invalid)
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes.get(i + 1..i + 4).ok_or_else(invalid)?;
            let value = std::str::from_utf8(octal)
                .ok()
                .filter(|o| o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                .and_then(|o| u8::from_str_radix(o, 8).ok())
                .ok_or_else(invalid)?;
            out.push(value);
            i += 4;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_scale_like_postgres() {
        let day_two_hours = IntervalMonthDayNano::new(0, 1, 7_200_000_000_000);
        assert_eq!(
            scale_interval(day_two_hours, 2.0),
            IntervalMonthDayNano::new(0, 2, 14_400_000_000_000)
        );
        // 1.5 months = 1 month 15 days; 1.5 days = 1 day 12 hours.
        assert_eq!(
            scale_interval(IntervalMonthDayNano::new(1, 1, 0), 1.5),
            IntervalMonthDayNano::new(1, 16, 43_200_000_000_000)
        );
    }

    #[test]
    fn timestamps_without_seconds_get_them() {
        let full = |t: &str| timestamp_text(t);
        assert_eq!(
            full("2024-01-01 12:00").as_deref(),
            Some("2024-01-01 12:00:00")
        );
        assert_eq!(
            full("2024-01-01T9:05+02").as_deref(),
            Some("2024-01-01T09:05:00+02")
        );
        assert_eq!(
            full("2024-01-01 12:00 UTC").as_deref(),
            Some("2024-01-01 12:00:00 UTC")
        );
        assert_eq!(full("2024-01-01 12:00:30"), None);
        assert_eq!(full("2024-01-01"), None);
        assert_eq!(full("2024-01-01 1200"), None);
        assert_eq!(full("now"), None);
    }

    #[test]
    fn to_char_templates_become_strftime() {
        assert_eq!(strftime_pattern("YYYY/MM/DD"), "%Y/%m/%d");
        assert_eq!(strftime_pattern("HH24:MI:SS.MS"), "%H:%M:%S.%3f");
        assert_eq!(strftime_pattern("Mon DD, YYYY 100%"), "%b %d, %Y 100%%");
    }

    #[test]
    fn bytea_input_formats() {
        assert_eq!(bytea_input("\\x0102ff").unwrap(), vec![1, 2, 255]);
        assert_eq!(bytea_input("\\x").unwrap(), Vec::<u8>::new());
        assert_eq!(bytea_input("ab\\\\c\\001").unwrap(), b"ab\\c\x01".to_vec());
        assert!(bytea_input("\\x0").is_err());
        assert!(bytea_input("\\9").is_err());
    }
}
