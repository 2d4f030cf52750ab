//! Table definitions from SQL: CREATE TABLE's column list and constraints,
//! or the schema of a CREATE TABLE AS query.

use datafusion::arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast::{ColumnOption, CreateTable, TableConstraint};

use super::{ColumnDef, ColumnType};
use crate::error::{Error, Result};
use crate::sql::ident_name;

/// Column definitions and primary key of a plain CREATE TABLE.
pub fn table_columns(create: &CreateTable) -> Result<(Vec<ColumnDef>, Vec<usize>)> {
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
        let mut def = ColumnDef {
            name,
            ty: ColumnType::from_sql(&column.data_type)?,
            not_null: false,
            default: None,
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
