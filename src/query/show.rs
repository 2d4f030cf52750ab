//! SHOW TABLES, SHOW COLUMNS / DESCRIBE: listings built from the catalog.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::catalog::{Catalog, TableDef};
use crate::error::{Error, Result};

/// The columns of `SHOW COLUMNS FROM t` and `DESCRIBE t`.
pub const COLUMN_LISTING: [&str; 5] = ["Name", "Type", "Nullable", "Default", "Primary Key"];

/// `SHOW TABLES [FROM schema]`: one `Name` column.
pub fn tables(catalog: &Catalog, schema: &str) -> Result<RecordBatch> {
    if !catalog.has_schema(schema) {
        return Err(Error::UndefinedSchema(schema.to_string()));
    }
    let names: Vec<String> = catalog.tables_in(schema).map(|t| t.name.clone()).collect();
    names_batch(names)
}

fn names_batch(names: Vec<String>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new("Name", DataType::Utf8, false)]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(names))],
    )?)
}

/// `SHOW COLUMNS FROM t`: name, type, nullability, default, key membership.
pub fn columns(def: &TableDef) -> Result<RecordBatch> {
    let text = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let columns = &def.columns;
    let out_schema = Arc::new(Schema::new(
        COLUMN_LISTING
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        out_schema.clone(),
        vec![
            text(columns.iter().map(|c| Some(c.name.clone())).collect()),
            text(columns.iter().map(|c| Some(c.ty.pg_name())).collect()),
            text(
                columns
                    .iter()
                    .map(|c| Some(if c.not_null { "NO" } else { "YES" }.into()))
                    .collect(),
            ),
            text(columns.iter().map(|c| c.default.clone()).collect()),
            text(
                (0..columns.len())
                    .map(|i| {
                        Some(
                            if def.primary_key.contains(&i) {
                                "YES"
                            } else {
                                "NO"
                            }
                            .into(),
                        )
                    })
                    .collect(),
            ),
        ],
    )?;
    Ok(batch)
}
