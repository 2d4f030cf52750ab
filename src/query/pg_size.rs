//! Object sizes and descriptions, as psql's `\dt+`, `\dm+`, `\di+` and
//! `\dn+` ask for them.
//!
//! `pg_table_size(oid)`, `pg_relation_size(oid)` and
//! `pg_total_relation_size(oid)` are the bytes of a table's or a
//! materialized view's rows in memory (Arrow buffers, each counted once):
//! Freshet keeps them there, and on disk only the log, so this is the size
//! that matters to the machine. `pg_indexes_size` is 0 (the primary-key
//! index is not measured yet). An oid that names no table or view gives
//! NULL, as PostgreSQL does for a dropped relation. `pg_size_pretty`
//! follows PostgreSQL 15's rounding and units exactly. There are no
//! comments on objects, so `obj_description`, `col_description` and
//! `shobj_description` are NULL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, StringArray, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionImplementation, ScalarUDF, Volatility,
};

/// Bytes of the relation with this oid, `None` if it is no table or view.
pub type RelationSize = Arc<dyn Fn(i32) -> Option<u64> + Send + Sync>;

/// PostgreSQL 15's `pg_size_pretty(bigint)`: bytes below 10 kB, then each
/// unit while the value stays under 20 of the next (half-rounded).
pub fn size_pretty(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    // One extra bit kept for the rounding.
    let mut size = bytes / (1 << 9);
    for (i, unit) in UNITS.iter().enumerate() {
        if i == UNITS.len() - 1 || size.abs() < 20 * 1024 - 1 {
            return format!("{} {unit}", half_rounded(size));
        }
        size /= 1 << 10;
    }
    unreachable!("the last unit always answers")
}

fn udf(
    name: &str,
    signatures: Vec<Vec<DataType>>,
    returns: DataType,
    fun: ScalarFunctionImplementation,
) -> ScalarUDF {
    super::overloaded(name, signatures, returns, Volatility::Volatile, fun)
}

/// The functions of this module; `size` measures a relation.
/// The bytes of every table's and MV's rows in memory.
pub type DatabaseSize = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn functions(size: RelationSize, database: DatabaseSize) -> Vec<ScalarUDF> {
    let oid_types = || vec![vec![DataType::Int32], vec![DataType::Int64]];
    let measured = |size: RelationSize| -> ScalarFunctionImplementation {
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let oids = cast(&arrays[0], &DataType::Int32)?;
            let bytes: Int64Array = oids
                .as_primitive::<Int32Type>()
                .iter()
                .map(|oid| oid.and_then(|oid| size(oid)).map(|b| b as i64))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(bytes)))
        })
    };
    let mut functions: Vec<ScalarUDF> = [
        "pg_table_size",
        "pg_relation_size",
        "pg_total_relation_size",
    ]
    .into_iter()
    .map(|name| udf(name, oid_types(), DataType::Int64, measured(size.clone())))
    .collect();
    functions.push(udf(
        "pg_indexes_size",
        oid_types(),
        DataType::Int64,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let zeros: Int64Array = (0..arrays[0].len())
                .map(|i| arrays[0].is_valid(i).then_some(0))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(zeros)))
        }),
    ));
    // One database: every name or oid of it measures the whole (psql's
    // `\l+`).
    functions.push(udf(
        "pg_database_size",
        vec![
            vec![DataType::Utf8],
            vec![DataType::Int32],
            vec![DataType::Int64],
        ],
        DataType::Int64,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let total = database() as i64;
            let bytes: Int64Array = (0..arrays[0].len())
                .map(|i| arrays[0].is_valid(i).then_some(total))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(bytes)))
        }),
    ));
    functions.push(udf(
        "pg_size_pretty",
        vec![vec![DataType::Int64]],
        DataType::Utf8,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let texts: StringArray = arrays[0]
                .as_primitive::<Int64Type>()
                .iter()
                .map(|bytes| bytes.map(size_pretty))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts)))
        }),
    ));
    let none = || -> ScalarFunctionImplementation {
        Arc::new(|args: &[ColumnarValue]| {
            let rows = ColumnarValue::values_to_arrays(args)?
                .first()
                .map_or(1, |a| a.len());
            Ok(ColumnarValue::Array(
                new_null_array(&DataType::Utf8, rows) as ArrayRef
            ))
        })
    };
    let with_second = |second: DataType| {
        vec![
            vec![DataType::Int32, second.clone()],
            vec![DataType::Int64, second],
        ]
    };
    functions.push(udf(
        "obj_description",
        [oid_types(), with_second(DataType::Utf8)].concat(),
        DataType::Utf8,
        none(),
    ));
    functions.push(udf(
        "shobj_description",
        with_second(DataType::Utf8),
        DataType::Utf8,
        none(),
    ));
    functions.push(udf(
        "col_description",
        [with_second(DataType::Int32), with_second(DataType::Int64)].concat(),
        DataType::Utf8,
        none(),
    ));
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value as PostgreSQL 15 prints it (`SELECT pg_size_pretty(n)`).
    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        for (bytes, text) in [
            (0, "0 bytes"),
            (10239, "10239 bytes"),
            (10240, "10 kB"),
            (20971519, "20 MB"),
            (20971520, "20 MB"),
            (-123456789, "-118 MB"),
            (1099511627776 * 5000, "5000 TB"),
        ] {
            assert_eq!(size_pretty(bytes), text, "{bytes}");
        }
    }
}
