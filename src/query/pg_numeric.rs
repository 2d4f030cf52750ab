//! PostgreSQL's numeric division, `avg` and `sum`.
//!
//! PostgreSQL gives a numeric quotient at least 16 significant digits
//! (`7.0 / 2` is `3.5000000000000000`, `avg(int)` is numeric too); DataFusion
//! keeps 4 to 6 decimals. Both are computed here on scaled 128-bit integers
//! and returned as `numeric(38,16)`, rounding half away from zero like
//! PostgreSQL. PostgreSQL chooses the scale from the quotient's magnitude
//! (more decimals below 1, fewer above 10,000); a fixed 16 matches it for
//! quotients from 1 to 9,999, the common case.
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

pub const RESULT_SCALE: i8 = 16;
const RESULT_TYPE: DataType = DataType::Decimal128(38, RESULT_SCALE);

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

/// `(n / 10^ns) / (d / 10^ds)` at `RESULT_SCALE`, rounded half away from
/// zero. `None` if it does not fit.
fn divide(n: i128, ns: i8, d: i128, ds: i8) -> Option<i128> {
    let shift = RESULT_SCALE as i32 + ds as i32 - ns as i32;
    let (mut num, mut den) = (n, d);
    if shift >= 0 {
        num = num.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        den = den.checked_mul(10i128.checked_pow((-shift) as u32)?)?;
    }
    let (q, r) = (num / den, num % den);
    let round_up = r.unsigned_abs().checked_mul(2)? >= den.unsigned_abs();
    Some(if round_up {
        q + (num.signum() * den.signum())
    } else {
        q
    })
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
        ScalarValue::Decimal128(Some(value), 38, RESULT_SCALE).to_string()
    }

    #[test]
    fn division_keeps_sixteen_decimals_and_rounds_half_away() {
        // 7.0 / 2
        assert_eq!(text(divide(70, 1, 2, 0).unwrap()), "3.5000000000000000");
        // 2 / 3 and -2 / 3
        assert_eq!(text(divide(2, 0, 3, 0).unwrap()), "0.6666666666666667");
        assert_eq!(text(divide(-2, 0, 3, 0).unwrap()), "-0.6666666666666667");
        // 685.50 / 7
        assert_eq!(text(divide(68550, 2, 7, 0).unwrap()), "97.9285714285714286");
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
        assert_eq!(avg.evaluate().unwrap().to_string(), "3.0000000000000000");
        let one: ArrayRef = Arc::new(Int64Array::from(vec![6]));
        avg.retract_batch(&[one]).unwrap();
        assert_eq!(avg.evaluate().unwrap().to_string(), "1.5000000000000000");

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
        assert_eq!(other.evaluate().unwrap().to_string(), "1.5000000000000000");
    }
}
