//! COPY: rows in from a client's data, and the rows that COPY TO sends.
//!
//! COPY FROM is one statement: every row lands or none does, in one commit
//! (or in the open transaction), through the same checks as INSERT. A
//! field that does not read as its column's type rejects the whole COPY,
//! and the error names the line and the column, as PostgreSQL's CONTEXT
//! does.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{CopySource, Ident, ObjectName, Statement};

use super::transaction::Transaction;
use super::*;
use crate::catalog::{Object, TableDef, TableId};
use crate::error::{Error, Result};
use crate::query::pg_compat::bytea_input;

/// One record of COPY input: its line number and its fields as text.
pub type CopyRecord = (usize, Vec<Option<String>>);

/// The table and columns a COPY FROM fills, resolved when the statement
/// starts, before the client sends any data.
#[derive(Debug, Clone)]
pub struct CopyTarget {
    id: TableId,
    schema: String,
    table: String,
    /// Positions in the table of the columns the data holds, in data order.
    columns: Vec<usize>,
    /// Those columns, with their declared types (binary COPY reads each
    /// value in its type's format).
    fields: Vec<Field>,
}

impl CopyTarget {
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
}

/// Where in the data an error was found: PostgreSQL's CONTEXT line.
fn context(table: &str, line: usize, column: Option<(&str, &str)>) -> String {
    match column {
        Some((name, value)) => format!("COPY {table}, line {line}, column {name}: \"{value}\""),
        None => format!("COPY {table}, line {line}"),
    }
}

fn in_copy(error: Error, context: String) -> Error {
    Error::InCopy {
        error: Box::new(error),
        context,
    }
}

impl Database {
    /// Resolves `COPY table [(columns)] FROM STDIN`.
    pub fn copy_target(
        &self,
        name: &ObjectName,
        columns: &[Ident],
        search_schema: &str,
    ) -> Result<CopyTarget> {
        let (schema, table) = self.resolve_name(name, search_schema)?;
        let catalog = self.catalog.read().expect("catalog lock poisoned");
        let def = match catalog.table(&schema, &table) {
            Some(def) => def,
            None if let Some(object) = catalog.object(&schema, &table) => {
                let kind = match object {
                    Object::Mv(_) => "materialized view",
                    Object::View(_) => "view",
                    Object::Table(_) => "relation",
                };
                return Err(Error::WrongObjectType(format!(
                    "cannot copy to {kind} \"{table}\""
                )));
            }
            None => return Err(Error::UndefinedTable(table)),
        };
        let positions: Vec<usize> = if columns.is_empty() {
            (0..def.columns.len()).collect()
        } else {
            columns
                .iter()
                .map(|ident| {
                    let name = crate::sql::ident_name(ident);
                    def.columns
                        .iter()
                        .position(|c| c.name == name)
                        .ok_or_else(|| {
                            Error::UndefinedColumn(format!(
                                "column \"{name}\" of relation \"{table}\" does not exist"
                            ))
                        })
                })
                .collect::<Result<_>>()?
        };
        for (i, position) in positions.iter().enumerate() {
            if positions[..i].contains(position) {
                return Err(Error::DuplicateColumn(def.columns[*position].name.clone()));
            }
        }
        let fields = positions
            .iter()
            .map(|&p| def.columns[p].ty.field(&def.columns[p].name, true))
            .collect();
        Ok(CopyTarget {
            id: def.id,
            schema,
            table,
            columns: positions,
            fields,
        })
    }

    /// Writes the records of a COPY FROM as one statement: all or nothing.
    pub async fn copy_from(
        &self,
        target: &CopyTarget,
        records: Vec<CopyRecord>,
        txn: Option<&mut Transaction>,
    ) -> Result<usize> {
        let def = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .table(&target.schema, &target.table)
            .filter(|def| def.id == target.id)
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(target.table.clone()))?;
        let batch = self.copy_batch(&def, target, &records).await?;
        let live = self
            .live_by_id(def.id)
            .ok_or_else(|| Error::UndefinedTable(def.name.clone()))?;
        let count = batch.num_rows();
        if count > 0 {
            self.write(live, Vec::new(), vec![batch], txn).await?;
        }
        Ok(count)
    }

    /// The records as one batch in the table's column order: fields cast
    /// to their columns' types, omitted columns at their defaults.
    async fn copy_batch(
        &self,
        def: &TableDef,
        target: &CopyTarget,
        records: &[CopyRecord],
    ) -> Result<RecordBatch> {
        let width = target.columns.len();
        for (line, fields) in records {
            if fields.len() > width {
                return Err(in_copy(
                    Error::Data {
                        code: "22P04",
                        message: "extra data after last expected column".into(),
                    },
                    context(&def.name, *line, None),
                ));
            }
            if fields.len() < width {
                let missing = &def.columns[target.columns[fields.len()]].name;
                return Err(in_copy(
                    Error::Data {
                        code: "22P04",
                        message: format!("missing data for column \"{missing}\""),
                    },
                    context(&def.name, *line, None),
                ));
            }
        }
        let schema = Arc::new(Schema::new(
            def.columns
                .iter()
                .map(|c| c.ty.field(&c.name, true))
                .collect::<Vec<_>>(),
        ));
        let rows = records.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(def.columns.len());
        for (position, column) in def.columns.iter().enumerate() {
            let data_type = schema.field(position).data_type();
            let array = match target.columns.iter().position(|&c| c == position) {
                Some(field) => {
                    let text: StringArray = records
                        .iter()
                        .map(|(_, fields)| fields[field].as_deref())
                        .collect();
                    typed(&text, data_type).map_err(|row| {
                        let (line, fields) = &records[row.0];
                        let value = fields[field].as_deref().unwrap_or_default();
                        in_copy(
                            row.1,
                            context(&def.name, *line, Some((&column.name, value))),
                        )
                    })?
                }
                None => match &column.default {
                    Some(default) => self.default_array(default, data_type, rows).await?,
                    None => new_null_array(data_type, rows),
                },
            };
            columns.push(array);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// A column's DEFAULT for `rows` rows, evaluated once for the COPY; a
    /// SERIAL column's draws a number per row.
    async fn default_array(
        &self,
        default: &str,
        data_type: &DataType,
        rows: usize,
    ) -> Result<ArrayRef> {
        if let Some(sequence) = crate::catalog::sequence::drawn_from(default) {
            let numbers: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(
                self.sequences.next(sequence, rows)?,
            ));
            return Ok(cast_with_options(
                &numbers,
                data_type,
                &CastOptions::default(),
            )?);
        }
        let batches = self
            .ctx
            .sql(&format!("SELECT {}", crate::sql::expression_sql(default)))
            .await?
            .collect()
            .await?;
        let value = match batches.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => ScalarValue::try_from_array(batch.column(0), 0)?,
            None => ScalarValue::Null,
        };
        let array = value.to_array_of_size(rows)?;
        Ok(cast_with_options(
            &array,
            data_type,
            &CastOptions::default(),
        )?)
    }
}

/// Text fields as `data_type`; on failure, the first row that does not
/// read, and why.
fn typed(
    text: &StringArray,
    data_type: &DataType,
) -> std::result::Result<ArrayRef, (usize, Error)> {
    if *data_type == DataType::Binary {
        let mut bytes = Vec::with_capacity(text.len());
        for (row, value) in text.iter().enumerate() {
            bytes.push(match value {
                Some(v) => Some(bytea_input(v).map_err(|e| (row, Error::from(e)))?),
                None => None,
            });
        }
        let array: BinaryArray = bytes.iter().map(|b| b.as_deref()).collect();
        return Ok(Arc::new(array));
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let whole = Arc::new(text.clone()) as ArrayRef;
    match cast_with_options(&whole, data_type, &strict) {
        Ok(array) => Ok(array),
        Err(whole_error) => {
            for row in 0..text.len() {
                if let Err(e) = cast_with_options(&whole.slice(row, 1), data_type, &strict) {
                    return Err((row, Error::from(DataFusionError::from(e))));
                }
            }
            Err((0, Error::from(DataFusionError::from(whole_error))))
        }
    }
}

/// The query COPY TO runs: the query itself, or all (or the named)
/// columns of the table.
pub fn copy_query(source: &CopySource) -> Result<Statement> {
    match source {
        CopySource::Query(query) => Ok(Statement::Query(query.clone())),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let columns = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut statements = crate::sql::parse(&format!("SELECT {columns} FROM {table_name}"))?;
            match statements.pop() {
                Some(statement @ Statement::Query(_)) => Ok(statement),
                _ => Err(Error::Internal(format!(
                    "COPY {table_name} did not read as a query"
                ))),
            }
        }
    }
}
