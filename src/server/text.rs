//! PostgreSQL's text output for the types whose default rendering in the wire
//! encoder differs from PostgreSQL's: floats (`1024`, not `1024.0`;
//! `1e+21`; `Infinity`) and times and timestamps (no `.000000` when the
//! fraction is zero; `timestamptz` in the session's time zone).
//!
//! jsonb and uuid columns are rendered in binary format here too: Arrow
//! holds them as text, the wire wants jsonb's version byte or uuid's 16 bytes.
//!
//! Intervals are rendered here in both formats: the encoder writes a NULL
//! interval as zero, so we hand it finished bytes (text, or PostgreSQL's
//! 16-byte binary form) where NULL stays NULL.
//!
//! The encoder still labels rendered columns with their real type OID; other
//! binary columns are untouched.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float32Type, Float64Type, IntervalMonthDayNanoType,
    IntervalUnit, Schema, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::error::ArrowError;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldFormat;

use crate::catalog::{DEFAULT_NUMERIC_SCALE, PG_TYPE_KEY};
use crate::query::pg_numeric::{QUOTIENT_TYPE, quotient_text};

/// Renders the text-format columns that need it; others pass through.
/// `schema` is the result's schema, whose field metadata tells jsonb columns
/// apart.
pub fn render(
    batch: RecordBatch,
    schema: &Schema,
    format: &Format,
    time_zone: &str,
) -> Result<RecordBatch, ArrowError> {
    let mut changed = false;
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut fields = Vec::with_capacity(batch.num_columns());
    for (i, (column, field)) in batch.columns().iter().zip(schema.fields()).enumerate() {
        let declared = field.metadata().get(PG_TYPE_KEY).map(String::as_str);
        let rendered = match (format.format_for(i), column.data_type()) {
            (FieldFormat::Binary, DataType::Interval(_)) => Some(interval_binary(column)?),
            (FieldFormat::Binary, DataType::Utf8) if declared == Some("jsonb") => {
                Some(jsonb_binary(column))
            }
            (FieldFormat::Binary, DataType::Utf8) if declared == Some("uuid") => {
                Some(uuid_binary(column))
            }
            (FieldFormat::Binary, DataType::Decimal128(_, scale)) if *scale >= 0 => {
                Some(numeric_binary(column, *scale as u32))
            }
            (FieldFormat::Binary, _) => None,
            (FieldFormat::Text, _) => render_column(column, time_zone)?,
        };
        match rendered {
            Some(text) => {
                changed = true;
                fields.push(Field::new(field.name(), text.data_type().clone(), true));
                columns.push(text);
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The scales of `numeric` without a scale: a column's
/// (`DEFAULT_NUMERIC_SCALE`) and DataFusion's cast to `numeric` (10).
const UNCONSTRAINED_SCALES: [i8; 2] = [DEFAULT_NUMERIC_SCALE, 10];

/// `v / 10^scale` with as few decimals as its digits need.
fn unpadded_text(v: i128, scale: i8) -> String {
    let magnitude = v.unsigned_abs();
    let unit = 10u128.pow(scale as u32);
    let sign = if v < 0 { "-" } else { "" };
    let (whole, mut fraction) = (magnitude / unit, magnitude % unit);
    let mut digits = scale as usize;
    while digits > 0 && fraction.is_multiple_of(10) {
        fraction /= 10;
        digits -= 1;
    }
    if digits == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction:0digits$}")
    }
}

fn render_column(column: &ArrayRef, time_zone: &str) -> Result<Option<ArrayRef>, ArrowError> {
    let text: StringArray = match column.data_type() {
        DataType::Float64 => column
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| float_text(v, 15)))
            .collect(),
        DataType::Float32 => column
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(|v| float_text(v as f64, 6)))
            .collect(),
        DataType::Timestamp(_, zone) => {
            let micros = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            let mut out = StringBuilder::with_capacity(micros.len(), micros.len() * 26);
            let session_zone = zone
                .as_ref()
                .map(|_| Tz::from_str(time_zone).unwrap_or_else(|_| utc()));
            for value in micros.iter() {
                match value.and_then(DateTime::from_timestamp_micros) {
                    None => out.append_null(),
                    Some(utc_time) => match &session_zone {
                        None => out.append_value(timestamp_text(&utc_time.naive_utc(), None)),
                        Some(tz) => {
                            let local = tz.from_utc_datetime(&utc_time.naive_utc());
                            let offset = local.offset().fix().local_minus_utc();
                            out.append_value(timestamp_text(&local.naive_local(), Some(offset)));
                        }
                    },
                }
            }
            out.finish()
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let micros = cast(column, &DataType::Time64(TimeUnit::Microsecond))?;
            micros
                .as_primitive::<Time64MicrosecondType>()
                .iter()
                .map(|v| {
                    v.and_then(|us| {
                        NaiveTime::from_num_seconds_from_midnight_opt(
                            (us / 1_000_000) as u32,
                            ((us % 1_000_000) * 1_000) as u32,
                        )
                    })
                    .map(|t| time_text(&t))
                })
                .collect()
        }
        // Arrow's own text is PostgreSQL's (`-1.50`) and exact at any size;
        // the encoder's goes through a 96-bit decimal and refuses more than
        // 28 digits (avg(bigint) of 1e13).
        // A quotient is printed at each value's own scale, as PostgreSQL's
        // numeric is.
        t if *t == QUOTIENT_TYPE => column
            .as_primitive::<Decimal128Type>()
            .iter()
            .map(|v| v.map(quotient_text))
            .collect(),
        // An unconstrained numeric (a column's, or a cast's) has no scale in
        // PostgreSQL but its value's: printed without trailing zeros, a
        // value reads as it was written (`1.5`, `2`), where the stored scale
        // would pad it (`1.500000`).
        DataType::Decimal128(38, scale) if UNCONSTRAINED_SCALES.contains(scale) => {
            let scale = *scale;
            column
                .as_primitive::<Decimal128Type>()
                .iter()
                .map(|v| v.map(|v| unpadded_text(v, scale)))
                .collect()
        }
        DataType::Decimal128(..) => return Ok(Some(cast(column, &DataType::Utf8)?)),
        DataType::Interval(_) => intervals(column)?
            .iter()
            .map(|v| v.map(|(months, days, micros)| interval_text(months, days, micros)))
            .collect(),
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(text)))
}

/// An interval as (months, days, microseconds).
type IntervalParts = (i32, i32, i64);

/// Interval values as parts.
fn intervals(column: &ArrayRef) -> Result<Vec<Option<IntervalParts>>, ArrowError> {
    let unified = cast(column, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    Ok(unified
        .as_primitive::<IntervalMonthDayNanoType>()
        .iter()
        .map(|v| v.map(|v| (v.months, v.days, v.nanoseconds / 1_000)))
        .collect())
}

/// jsonb's binary form: a version byte (1), then the text.
fn jsonb_binary(column: &ArrayRef) -> ArrayRef {
    let values: BinaryArray = column
        .as_string::<i32>()
        .iter()
        .map(|v| {
            v.map(|text| {
                let mut bytes = Vec::with_capacity(text.len() + 1);
                bytes.push(1);
                bytes.extend_from_slice(text.as_bytes());
                bytes
            })
        })
        .collect();
    Arc::new(values)
}

/// uuid's binary form: its 16 bytes. Stored uuids are canonical (see
/// `catalog::check`), so the hex digits parse.
fn uuid_binary(column: &ArrayRef) -> ArrayRef {
    let values: BinaryArray = column
        .as_string::<i32>()
        .iter()
        .map(|v| {
            v.map(|text| {
                let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
                hex.chunks(2)
                    .map(|pair| {
                        std::str::from_utf8(pair)
                            .ok()
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<u8>>()
            })
        })
        .collect();
    Arc::new(values)
}

/// PostgreSQL's binary interval: microseconds, days, months, big-endian.
fn interval_binary(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let values: BinaryArray = intervals(column)?
        .into_iter()
        .map(|v| {
            v.map(|(months, days, micros)| {
                let mut bytes = Vec::with_capacity(16);
                bytes.extend_from_slice(&micros.to_be_bytes());
                bytes.extend_from_slice(&days.to_be_bytes());
                bytes.extend_from_slice(&months.to_be_bytes());
                bytes
            })
        })
        .collect();
    Ok(Arc::new(values))
}

/// Decimals in PostgreSQL's binary numeric form: digit count, weight (of
/// the first base-10000 digit), sign, display scale, then the digits, with
/// leading and trailing zero digits left out. Exact for every Decimal128.
fn numeric_binary(column: &ArrayRef, scale: u32) -> ArrayRef {
    let values: BinaryArray = column
        .as_primitive::<Decimal128Type>()
        .iter()
        .map(|v| v.map(|unscaled| numeric_bytes(unscaled, scale)))
        .collect();
    Arc::new(values)
}

fn numeric_bytes(unscaled: i128, scale: u32) -> Vec<u8> {
    const NEGATIVE: u16 = 0x4000;
    let scale = scale as usize;
    let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    // Base-10000 groups aligned on the decimal point: the whole part padded
    // on the left, the fraction on the right, to multiples of four.
    let whole = format!("{whole:0>width$}", width = whole.len().div_ceil(4) * 4);
    let fraction = format!(
        "{fraction:0<width$}",
        width = fraction.len().div_ceil(4) * 4
    );
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0')))
            .collect()
    };
    let whole_groups = group(&whole);
    let mut groups = whole_groups.clone();
    groups.extend(group(&fraction));
    let mut weight = whole_groups.len() as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if unscaled < 0 && !groups.is_empty() {
        NEGATIVE
    } else {
        0
    };
    let mut bytes = Vec::with_capacity(8 + 2 * groups.len());
    bytes.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    bytes.extend_from_slice(&weight.to_be_bytes());
    bytes.extend_from_slice(&sign.to_be_bytes());
    bytes.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        bytes.extend_from_slice(&g.to_be_bytes());
    }
    bytes
}

/// PostgreSQL's default (`postgres`) interval style: `1 year 2 mons -3 days
/// 04:05:06.5`; each unit carries its own sign; `00:00:00` for zero.
pub fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let unit = |n: i64, name: &str| {
        if n == 1 {
            format!("{n} {name}")
        } else {
            format!("{n} {name}s")
        }
    };
    let mut parts = Vec::new();
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        parts.push(unit(years as i64, "year"));
    }
    if months != 0 {
        parts.push(unit(months as i64, "mon"));
    }
    if days != 0 {
        parts.push(unit(days as i64, "day"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let total = micros.unsigned_abs();
        let (seconds, fraction) = (total / 1_000_000, (total % 1_000_000) as u32);
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{}",
            seconds / 3600,
            (seconds % 3600) / 60,
            seconds % 60,
            fraction_text(fraction)
        ));
    }
    parts.join(" ")
}

fn utc() -> Tz {
    Tz::from_str("+00:00").expect("a fixed offset parses")
}

/// PostgreSQL's float output with the default `extra_float_digits = 1`: the
/// shortest digits that read back exactly, in positional notation unless the
/// decimal exponent is below -4 or at least `precision` (15 for float8, 6 for
/// float4), where it switches to `1.5e+20` style.
pub fn float_text(value: f64, precision: i32) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.024e3".
    let scientific = if precision <= 6 {
        format!("{:e}", value as f32)
    } else {
        format!("{value:e}")
    };
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is a number");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if exponent < -4 || exponent >= precision {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }
    let point = exponent + 1;
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!(
            "{sign}{digits}{}",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

fn fraction_text(micros: u32) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

fn time_text(time: &NaiveTime) -> String {
    format!(
        "{}{}",
        time.format("%H:%M:%S"),
        fraction_text(time.nanosecond() / 1_000)
    )
}

/// `2024-01-02 03:04:05.5`, with `+00` / `+05:30` for timestamptz.
fn timestamp_text(time: &chrono::NaiveDateTime, offset_seconds: Option<i32>) -> String {
    let mut text = format!(
        "{}{}",
        time.format("%Y-%m-%d %H:%M:%S"),
        fraction_text(time.nanosecond() / 1_000)
    );
    if let Some(offset) = offset_seconds {
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.abs();
        text.push_str(&format!("{sign}{:02}", offset / 3600));
        if offset % 3600 != 0 {
            text.push_str(&format!(":{:02}", (offset % 3600) / 60));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, TimestampMicrosecondArray};

    use super::*;

    #[test]
    fn unconstrained_numerics_drop_trailing_zeros() {
        for (v, scale, expected) in [
            (1_500_000, 6, "1.5"),
            (2_000_000, 6, "2"),
            (-125_000, 6, "-0.125"),
            (0, 6, "0"),
            (125_000_000_000, 10, "12.5"),
            (-7, 6, "-0.000007"),
        ] {
            assert_eq!(unpadded_text(v, scale), expected);
        }
    }

    /// Expected bytes from PostgreSQL 15's `numeric_send`.
    #[test]
    fn numerics_in_postgres_binary_form() {
        let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let cases: [(i128, u32, &str); 7] = [
            (1250, 2, "0002000000000002000c1388"),
            (5, 2, "0001ffff0000000201f4"),
            (-10000, 0, "00010001400000000001"),
            (1, 5, "0001fffe0000000503e8"),
            (0, 2, "0000000000000002"),
            (
                100_000_000_000_000_000_000_000_000_000,
                16,
                "0001000300000010000a",
            ),
            (
                -99_999_999_999_999_999_999_999_123_456,
                6,
                "000800054000000603e7270f270f270f270f270f04d215e0",
            ),
        ];
        for (unscaled, scale, expected) in cases {
            assert_eq!(
                hex(numeric_bytes(unscaled, scale)),
                expected,
                "{unscaled} scale {scale}"
            );
        }
    }

    #[test]
    fn floats_print_like_postgres() {
        let cases = [
            (1024.0, "1024"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-2.25, "-2.25"),
            (1e21, "1e+21"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (f64::INFINITY, "Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (value, text) in cases {
            assert_eq!(float_text(value, 15), text, "for {value}");
        }
        assert_eq!(float_text(1e6_f32 as f64, 6), "1e+06");
        assert_eq!(float_text(100000.0, 6), "100000");
        assert_eq!(float_text(0.1_f32 as f64, 6), "0.1");
    }

    #[test]
    fn timestamps_drop_zero_fractions_and_show_offsets() {
        // 2024-01-02 03:04:05 UTC and the same plus 123 ms.
        let base = 1_704_164_645_000_000_i64;
        let plain: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            Some(base),
            Some(base + 123_000),
            None,
        ]));
        let text = render_column(&plain, "UTC").unwrap().unwrap();
        let text = text.as_string::<i32>();
        assert_eq!(text.value(0), "2024-01-02 03:04:05");
        assert_eq!(text.value(1), "2024-01-02 03:04:05.123");
        assert!(text.is_null(2));

        let zoned: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![base]).with_timezone("UTC"));
        let utc = render_column(&zoned, "UTC").unwrap().unwrap();
        assert_eq!(utc.as_string::<i32>().value(0), "2024-01-02 03:04:05+00");
        let india = render_column(&zoned, "Asia/Kolkata").unwrap().unwrap();
        assert_eq!(
            india.as_string::<i32>().value(0),
            "2024-01-02 08:34:05+05:30"
        );
    }

    #[test]
    fn intervals_print_like_postgres() {
        assert_eq!(interval_text(0, 1, 7_200_000_000), "1 day 02:00:00");
        assert_eq!(interval_text(3, -1, 0), "3 mons -1 days");
        assert_eq!(interval_text(14, 0, 0), "1 year 2 mons");
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(0, 0, -5_400_500_000), "-01:30:00.5");
        assert_eq!(interval_text(0, 0, 259_199_000_000), "71:59:59");
    }

    #[test]
    fn other_columns_pass_through() {
        let batch = RecordBatch::try_from_iter(vec![(
            "f",
            Arc::new(Float64Array::from(vec![2.0])) as ArrayRef,
        )])
        .unwrap();
        let schema = batch.schema();
        let binary = render(batch.clone(), &schema, &Format::UnifiedBinary, "UTC").unwrap();
        assert_eq!(binary.column(0).data_type(), &DataType::Float64);
        let text = render(batch, &schema, &Format::UnifiedText, "UTC").unwrap();
        assert_eq!(text.column(0).as_string::<i32>().value(0), "2");
    }
}
