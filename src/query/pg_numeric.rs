//! PostgreSQL's numeric division, `avg` and `sum`.
//!
//! PostgreSQL gives a numeric quotient at least 16 significant digits:
//! its scale is `16 - 4 * w`, where `w` estimates the quotient's weight in
//! base-10,000 digits from the operands' first digits (`select_div_scale`),
//! and never less than either operand's scale. So `7.0 / 2` is
//! `3.5000000000000000`, `1 / 3` is `0.33333333333333333333` and
//! `3000001 / 2` is `1500000.500000000000`; DataFusion keeps 4 to 6
//! decimals. Both are computed here on scaled 128-bit integers at
//! PostgreSQL's scale, rounding half away from zero like PostgreSQL.
//!
//! A column has one scale, a PostgreSQL numeric one per value. A quotient
//! is kept as `numeric(38,20)` (`QUOTIENT_TYPE`), its digits past its own
//! scale zero, and printed (`quotient_text`) at the scale its value says:
//! `16 - 4 * w` for the quotient's actual weight `w`, 4 more for an exact
//! power of 10,000, more if its digits need them. That is PostgreSQL's
//! text except where PostgreSQL's estimate of the weight was one too low
//! and the digits it added are zeros (a one-row `avg` of 1.5 is
//! `1.50000000000000000000` there, `1.5000000000000000` here). Quotients
//! below 0.0001 keep 20 decimals (PostgreSQL: more), and those of 10^18 or
//! more overflow.
//!
//! `sum(bigint)` is numeric in PostgreSQL, so that a sum of bigints never
//! overflows; DataFusion keeps it bigint and wraps. `Sum` sums bigints as
//! `numeric(38,0)` and leaves every other input type to DataFusion's sum.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator, ReversedUDAF,
    ScalarFunctionArgs, ScalarUDFImpl, SetMonotonicity, Signature, Volatility,
};

use crate::catalog::ColumnType;

/// The scale a quotient is kept at: enough for PostgreSQL's scale of any
/// quotient of 0.0001 or more.
pub const RESULT_SCALE: i8 = 20;
/// The type of every quotient, and only of quotients (the text encoder
/// prints it at each value's own scale).
pub const QUOTIENT_TYPE: DataType = DataType::Decimal128(38, RESULT_SCALE);
const RESULT_TYPE: DataType = QUOTIENT_TYPE;

/// The scale a numeric or integer type is read at (integers are scale 0).
fn scale_of(data_type: &DataType) -> Option<i8> {
    match data_type {
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => Some(*s),
        t if t.is_integer() => Some(0),
        _ => None,
    }
}

fn as_decimal(array: &ArrayRef) -> Result<(Decimal128Array, i8)> {
    let scale = scale_of(array.data_type()).ok_or_else(|| {
        DataFusionError::Plan(format!("numeric division of {}", array.data_type()))
    })?;
    let cast = cast(array, &DataType::Decimal128(38, scale))?;
    Ok((cast.as_primitive::<Decimal128Type>().clone(), scale))
}

/// The weight of the first base-10,000 digit of `v / 10^scale` and that
/// digit (PostgreSQL's NumericVar weight and digits[0]); 0 and 0 for zero.
fn first_digit(v: i128, scale: i8) -> (i32, u128) {
    let v = v.unsigned_abs();
    if v == 0 {
        return (0, 0);
    }
    // The value lies in [10^e, 10^(e+1)).
    let e = v.ilog10() as i32 - scale as i32;
    let weight = e.div_euclid(4);
    let shift = scale as i32 + 4 * weight;
    let digit = if shift >= 0 {
        v / 10u128.pow(shift as u32)
    } else {
        v * 10u128.pow((-shift) as u32)
    };
    (weight, digit)
}

/// PostgreSQL's scale for `(n / 10^ns) / (d / 10^ds)` (`select_div_scale`).
fn quotient_scale(n: i128, ns: i8, d: i128, ds: i8) -> i32 {
    let (w1, f1) = first_digit(n, ns);
    let (w2, f2) = first_digit(d, ds);
    let weight = w1 - w2 - i32::from(f1 <= f2);
    (16 - 4 * weight).max(ns as i32).max(ds as i32).max(0)
}

/// `(n / 10^ns) / (d / 10^ds)` rounded half away from zero at PostgreSQL's
/// scale (at most `RESULT_SCALE`), kept at `RESULT_SCALE`. `None` if it
/// does not fit.
fn divide(n: i128, ns: i8, d: i128, ds: i8) -> Option<i128> {
    let scale = quotient_scale(n, ns, d, ds).min(RESULT_SCALE as i32);
    let shift = scale + ds as i32 - ns as i32;
    let (mut num, mut den) = (n, d);
    if shift >= 0 {
        num = num.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        den = den.checked_mul(10i128.checked_pow((-shift) as u32)?)?;
    }
    let (q, r) = (num / den, num % den);
    let round_up = r.unsigned_abs().checked_mul(2)? >= den.unsigned_abs();
    let q = if round_up {
        q + (num.signum() * den.signum())
    } else {
        q
    };
    q.checked_mul(10i128.pow((RESULT_SCALE as i32 - scale) as u32))
        .filter(|q| q.unsigned_abs() < 10u128.pow(38))
}

/// A quotient (`QUOTIENT_TYPE`, unscaled `v`) as PostgreSQL prints it: at
/// `16 - 4 * w` decimals for its base-10,000 weight `w` (20 - 4 * w for an
/// exact power of 10,000, whose operands' first digits were equal), or as
/// many as its digits need, within 0 to 20.
pub fn quotient_text(v: i128) -> String {
    let scale = RESULT_SCALE as i32;
    let magnitude = v.unsigned_abs();
    let shown = if magnitude == 0 {
        scale
    } else {
        let (weight, digit) = first_digit(v, RESULT_SCALE);
        let power = digit == 1 && magnitude == 10u128.pow((scale + 4 * weight).max(0) as u32);
        let least = if power {
            20 - 4 * weight
        } else {
            16 - 4 * weight
        };
        let mut zeros = 0;
        let mut rest = magnitude;
        while zeros < scale && rest.is_multiple_of(10) {
            rest /= 10;
            zeros += 1;
        }
        least.max(scale - zeros).clamp(0, scale)
    };
    let unit = 10u128.pow(scale as u32);
    let whole = magnitude / unit;
    let sign = if v < 0 { "-" } else { "" };
    if shown == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = (magnitude % unit) / 10u128.pow((scale - shown) as u32);
    format!("{sign}{whole}.{fraction:0width$}", width = shown as usize)
}

fn overflow() -> DataFusionError {
    DataFusionError::ArrowError(
        Box::new(ArrowError::ArithmeticOverflow(
            "numeric field overflow".into(),
        )),
        None,
    )
}

fn divide_by_zero() -> DataFusionError {
    DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None)
}

/// `sum` with PostgreSQL's result types: smaller integers sum to bigint,
/// bigint to numeric. The summing is DataFusion's: a bigint argument is
/// coerced to `numeric(38,0)`, and smaller integers are widened to bigint
/// inside the accumulator (`Widen`) rather than by a coerced cast, so that
/// coercing an already coerced plan again (a view inside a query) cannot
/// turn a sum of integers into a numeric one.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Sum {
    inner: datafusion::functions_aggregate::sum::Sum,
    signature: Signature,
}

impl Default for Sum {
    fn default() -> Self {
        Sum {
            inner: datafusion::functions_aggregate::sum::Sum::new(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Sum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [input] = arg_types else {
            return Err(DataFusionError::Plan(
                "sum takes exactly one argument".into(),
            ));
        };
        let coerced = match input {
            DataType::Null => DataType::Int32,
            DataType::Int8 | DataType::Int16 | DataType::Int32 => input.clone(),
            DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => DataType::Decimal128(38, 0),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => input.clone(),
            DataType::Dictionary(_, value) => return self.coerce_types(&[(**value).clone()]),
            other => {
                let name = ColumnType::from_arrow(other)
                    .map(|ty| ty.pg_name())
                    .unwrap_or_else(|_| other.to_string());
                return Err(DataFusionError::Plan(format!(
                    "function sum({name}) does not exist"
                )));
            }
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_small_int(t) => Ok(DataType::Int64),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let widen = widens(&args);
        let inner = self.inner.accumulator(args)?;
        Ok(if widen { Box::new(Widen(inner)) } else { inner })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let widen = widens(&args);
        let inner = self.inner.create_groups_accumulator(args)?;
        Ok(if widen { Box::new(Widen(inner)) } else { inner })
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let widen = widens(&args);
        let inner = self.inner.create_sliding_accumulator(args)?;
        Ok(if widen { Box::new(Widen(inner)) } else { inner })
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}

fn is_small_int(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32
    )
}

fn widens(args: &AccumulatorArgs) -> bool {
    args.expr_fields
        .first()
        .is_some_and(|f| is_small_int(f.data_type()))
}

fn widen(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| Ok(cast(v, &DataType::Int64)?))
        .collect()
}

/// DataFusion's bigint sum fed smallint or integer values, cast on the way
/// in; its state is already bigint.
#[derive(Debug)]
struct Widen<A: ?Sized>(Box<A>);

impl Accumulator for Widen<dyn Accumulator> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(&widen(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.retract_batch(&widen(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

impl GroupsAccumulator for Widen<dyn GroupsAccumulator> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0
            .update_batch(&widen(values)?, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.0.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(&widen(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// `numeric / numeric` (either side may be an integer).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NumericDivide {
    signature: Signature,
}

impl Default for NumericDivide {
    fn default() -> Self {
        NumericDivide {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NumericDivide {
    fn name(&self) -> &str {
        "freshet_numeric_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(RESULT_TYPE)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (left, ls) = as_decimal(&arrays[0])?;
        let (right, rs) = as_decimal(&arrays[1])?;
        let mut out = Vec::with_capacity(left.len());
        for (l, r) in left.iter().zip(right.iter()) {
            out.push(match (l, r) {
                (Some(_), Some(0)) => return Err(divide_by_zero()),
                (Some(l), Some(r)) => Some(divide(l, ls, r, rs).ok_or_else(overflow)?),
                _ => None,
            });
        }
        let result = Decimal128Array::from(out).with_precision_and_scale(38, RESULT_SCALE)?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

/// `avg`: numeric for integer and numeric input (as PostgreSQL), float8 for
/// floats. Retractable, so sliding window frames work.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Avg {
    signature: Signature,
}

impl Default for Avg {
    fn default() -> Self {
        Avg {
            signature: Signature::numeric(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Avg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match scale_of(&arg_types[0]) {
            Some(_) => RESULT_TYPE,
            None => DataType::Float64,
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let input = args.input_fields[0].data_type();
        let sum = match scale_of(input) {
            Some(scale) => DataType::Decimal128(38, scale),
            None => DataType::Float64,
        };
        if args.is_distinct {
            return Ok(vec![Arc::new(Field::new_list(
                format!("{}[distinct]", args.name),
                Field::new_list_field(sum, true),
                true,
            ))]);
        }
        Ok(vec![
            Arc::new(Field::new(format!("{}[sum]", args.name), sum, true)),
            Arc::new(Field::new(
                format!("{}[count]", args.name),
                DataType::Int64,
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let input = args.expr_fields[0].data_type();
        if args.is_distinct {
            return Ok(Box::new(DistinctAvg {
                scale: scale_of(input),
                values: HashSet::new(),
            }));
        }
        Ok(match scale_of(input) {
            Some(scale) => Box::new(NumericAvg {
                scale,
                sum: 0,
                count: 0,
            }),
            None => Box::new(FloatAvg { sum: 0.0, count: 0 }),
        })
    }
}

#[derive(Debug)]
struct NumericAvg {
    scale: i8,
    sum: i128,
    count: i64,
}

impl NumericAvg {
    fn add(&mut self, values: &ArrayRef, sign: i128) -> Result<()> {
        let values = cast(values, &DataType::Decimal128(38, self.scale))?;
        for value in values.as_primitive::<Decimal128Type>().iter().flatten() {
            self.sum = self.sum.checked_add(sign * value).ok_or_else(overflow)?;
            self.count += sign as i64;
        }
        Ok(())
    }
}

impl Accumulator for NumericAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = cast(&states[0], &DataType::Decimal128(38, self.scale))?;
        let counts = states[1].as_primitive::<Int64Type>();
        for (sum, count) in sums
            .as_primitive::<Decimal128Type>()
            .iter()
            .zip(counts.iter())
        {
            self.sum = self
                .sum
                .checked_add(sum.unwrap_or(0))
                .ok_or_else(overflow)?;
            self.count += count.unwrap_or(0);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal128(Some(self.sum), 38, self.scale),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = match self.count {
            0 => None,
            n => Some(divide(self.sum, self.scale, n as i128, 0).ok_or_else(overflow)?),
        };
        Ok(ScalarValue::Decimal128(value, 38, RESULT_SCALE))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// avg(DISTINCT x): the set of distinct values, averaged at the end.
/// Values are kept as i128 at `scale` for integers and numerics, or as the
/// bits of an f64 (`None` scale) with -0 folded into 0. DISTINCT is not
/// allowed in window frames, so nothing is ever retracted.
#[derive(Debug)]
struct DistinctAvg {
    scale: Option<i8>,
    values: HashSet<i128>,
}

impl DistinctAvg {
    fn list_type(&self) -> DataType {
        match self.scale {
            Some(scale) => DataType::Decimal128(38, scale),
            None => DataType::Float64,
        }
    }

    fn insert(&mut self, values: &ArrayRef) -> Result<()> {
        let values = cast(values, &self.list_type())?;
        match self.scale {
            Some(_) => self
                .values
                .extend(values.as_primitive::<Decimal128Type>().iter().flatten()),
            None => self.values.extend(
                values
                    .as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .map(|v| (v + 0.0).to_bits() as i128),
            ),
        }
        Ok(())
    }
}

impl Accumulator for DistinctAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.insert(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for list in states[0].as_list::<i32>().iter().flatten() {
            self.insert(&list)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: ArrayRef = match self.scale {
            Some(scale) => Arc::new(
                Decimal128Array::from_iter_values(self.values.iter().copied())
                    .with_precision_and_scale(38, scale)?,
            ),
            None => Arc::new(Float64Array::from_iter_values(
                self.values.iter().map(|bits| f64::from_bits(*bits as u64)),
            )),
        };
        Ok(vec![ScalarValue::List(Arc::new(
            datafusion::common::utils::SingleRowListArrayBuilder::new(values).build_list_array(),
        ))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let count = self.values.len() as i128;
        match self.scale {
            Some(scale) => {
                if count == 0 {
                    return Ok(ScalarValue::Decimal128(None, 38, RESULT_SCALE));
                }
                let sum = self
                    .values
                    .iter()
                    .try_fold(0i128, |sum, v| sum.checked_add(*v))
                    .ok_or_else(overflow)?;
                let quotient = divide(sum, scale, count, 0).ok_or_else(overflow)?;
                Ok(ScalarValue::Decimal128(Some(quotient), 38, RESULT_SCALE))
            }
            None => {
                let sum: f64 = self
                    .values
                    .iter()
                    .map(|bits| f64::from_bits(*bits as u64))
                    .sum();
                Ok(ScalarValue::Float64(
                    (count > 0).then(|| sum / count as f64),
                ))
            }
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<i128>()
    }
}

#[derive(Debug)]
struct FloatAvg {
    sum: f64,
    count: i64,
}

impl Accumulator for FloatAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = cast(&values[0], &DataType::Float64)?;
        for value in values.as_primitive::<Float64Type>().iter().flatten() {
            self.sum += value;
            self.count += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = cast(&values[0], &DataType::Float64)?;
        for value in values.as_primitive::<Float64Type>().iter().flatten() {
            self.sum -= value;
            self.count -= 1;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = states[0].as_primitive::<Float64Type>();
        let counts = states[1].as_primitive::<Int64Type>();
        for (sum, count) in sums.iter().zip(counts.iter()) {
            self.sum += sum.unwrap_or(0.0);
            self.count += count.unwrap_or(0);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum)),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(
            (self.count > 0).then(|| self.sum / self.count as f64),
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;

    fn text(value: i128) -> String {
        quotient_text(value)
    }

    #[test]
    fn division_takes_postgres_scale_and_rounds_half_away() {
        // Each as PostgreSQL 15 prints it.
        for (n, ns, d, ds, expected) in [
            (70, 1, 2, 0, "3.5000000000000000"),
            (2, 0, 3, 0, "0.66666666666666666667"),
            (-2, 0, 3, 0, "-0.66666666666666666667"),
            (68550, 2, 7, 0, "97.9285714285714286"),
            (1, 0, 3, 0, "0.33333333333333333333"),
            (100000, 0, 3, 0, "33333.333333333333"),
            (1000, 2, 4, 0, "2.5000000000000000"),
            (3000001, 0, 2, 0, "1500000.500000000000"),
            (123456789014, 0, 2, 0, "61728394507.00000000"),
            (51, 0, 3, 0, "17.0000000000000000"),
            (1, 0, 1, 0, "1.00000000000000000000"),
            (2, 0, 2, 0, "1.00000000000000000000"),
            (0, 0, 5, 0, "0.00000000000000000000"),
            (15, 0, 1, 0, "15.0000000000000000"),
            (1, 0, 2000, 0, "0.00050000000000000000"),
            (10000, 0, 1, 0, "10000.0000000000000000"),
        ] {
            assert_eq!(
                text(divide(n, ns, d, ds).unwrap()),
                expected,
                "{n}e-{ns} / {d}e-{ds}"
            );
        }
    }

    #[test]
    fn avg_retracts_and_merges() {
        let mut avg = NumericAvg {
            scale: 0,
            sum: 0,
            count: 0,
        };
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(6)]));
        avg.update_batch(std::slice::from_ref(&values)).unwrap();
        assert_eq!(
            avg.evaluate().unwrap().to_string(),
            "3.00000000000000000000"
        );
        let one: ArrayRef = Arc::new(Int64Array::from(vec![6]));
        avg.retract_batch(&[one]).unwrap();
        assert_eq!(
            avg.evaluate().unwrap().to_string(),
            "1.50000000000000000000"
        );

        let mut other = NumericAvg {
            scale: 0,
            sum: 0,
            count: 0,
        };
        let state: Vec<ArrayRef> = avg
            .state()
            .unwrap()
            .into_iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        other.merge_batch(&state).unwrap();
        assert_eq!(
            other.evaluate().unwrap().to_string(),
            "1.50000000000000000000"
        );
    }
}
