//! Table definitions from SQL: CREATE TABLE's column list and constraints,
//! or the schema of a CREATE TABLE AS query.

use datafusion::arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, DataType as SqlType, TableConstraint,
};

use super::{ColumnDef, ColumnType};
use crate::error::{Error, Result};
use crate::sql::ident_name;

/// The integer type of a SERIAL column (`serial`, `bigserial`,
/// `smallserial`, `serial4`, `serial8`, `serial2`); SERIAL is no type, only
/// a column shorthand, so a cast to it stays an error.
fn serial_type(data_type: &SqlType) -> Option<ColumnType> {
    let SqlType::Custom(name, modifiers) = data_type else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    match name.to_string().to_ascii_lowercase().as_str() {
        "serial" | "serial4" => Some(ColumnType::Integer),
        "bigserial" | "serial8" => Some(ColumnType::BigInt),
        "smallserial" | "serial2" => Some(ColumnType::SmallInt),
        _ => None,
    }
}

/// Column definitions and primary key of a plain CREATE TABLE `schema.table`.
/// A SERIAL column is its integer type, NOT NULL, with a DEFAULT that draws
/// from the sequence `schema.table_column_seq` (which the caller creates).
pub fn table_columns(
    create: &CreateTable,
    schema: &str,
    table: &str,
) -> Result<(Vec<ColumnDef>, Vec<usize>)> {
    if create.columns.is_empty() {
        return Err(Error::NotSupported(
            "a table needs at least one column".into(),
        ));
    }
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(create.columns.len());
    let mut primary_key = Vec::new();
    for (i, column) in create.columns.iter().enumerate() {
        let name = ident_name(&column.name);
        if columns.iter().any(|c| c.name == name) {
            return Err(Error::DuplicateColumn(name));
        }
        let serial = serial_type(&column.data_type);
        let default = serial.as_ref().map(|_| {
            format!(
                "nextval('{}')",
                super::sequence::serial_sequence(schema, table, &name)
            )
        });
        let mut def = ColumnDef {
            ty: match serial {
                Some(ty) => ty,
                None => ColumnType::from_sql(&column.data_type)?,
            },
            not_null: default.is_some(),
            default,
            name,
        };
        for option in &column.options {
            match &option.option {
                ColumnOption::Null => {}
                ColumnOption::NotNull => def.not_null = true,
                ColumnOption::Default(expr) => def.default = Some(expr.to_string()),
                ColumnOption::PrimaryKey(_) => {
                    if !primary_key.is_empty() {
                        return Err(Error::InvalidParameter(format!(
                            "multiple primary keys for table \"{}\" are not allowed",
                            create.name
                        )));
                    }
                    primary_key.push(i);
                    def.not_null = true;
                }
                other => {
                    return Err(Error::NotSupported(format!(
                        "column constraint {other} is not supported"
                    )));
                }
            }
        }
        columns.push(def);
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(Error::InvalidParameter(format!(
                        "multiple primary keys for table \"{}\" are not allowed",
                        create.name
                    )));
                }
                for key in &pk.columns {
                    let name = key.column.expr.to_string().trim_matches('"').to_lowercase();
                    let position =
                        columns.iter().position(|c| c.name == name).ok_or_else(|| {
                            Error::UndefinedColumn(format!(
                                "column \"{name}\" named in key does not exist"
                            ))
                        })?;
                    columns[position].not_null = true;
                    primary_key.push(position);
                }
            }
            other => {
                return Err(Error::NotSupported(format!(
                    "table constraint {other} is not supported"
                )));
            }
        }
    }
    Ok((columns, primary_key))
}

pub fn columns_from_schema(schema: &Schema) -> Result<Vec<ColumnDef>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            Ok(ColumnDef {
                name: f.name().clone(),
                ty: ColumnType::from_arrow(f.data_type())?,
                not_null: false,
                default: None,
            })
        })
        .collect()
}
