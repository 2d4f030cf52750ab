//! `pg_catalog.pg_namespace` with PostgreSQL's fixed schemas, and it and
//! `pg_database` with their ACL columns typed as PostgreSQL's arrays.
//!
//! `datafusion-pg-catalog` lists only the schemas of DataFusion's catalogs,
//! but its static `pg_proc` and `pg_type` rows name `information_schema` by
//! PostgreSQL's oid 13283 (the functions and domains PostgreSQL defines
//! there). A client that joins a function or type to its namespace (sqlsmith,
//! pgJDBC) then finds no name and fails. This appends the fixed namespaces
//! the catalog does not list, by name, so every namespace oid those rows
//! carry resolves.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, Int32Array, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// PostgreSQL's namespaces with oids fixed by the catalog rows that name
/// them: (oid, name).
const FIXED: [(i32, &str); 2] = [(99, "pg_toast"), (13283, "information_schema")];

/// The superuser's oid, PostgreSQL's owner of its own schemas.
const BOOTSTRAP_SUPERUSER: i32 = 10;

/// `pg_namespace` (with its fixed schemas) or `pg_database`, the ACL column
/// `acl` as a text array.
pub struct WithAcl {
    pub inner: Arc<dyn TableProvider>,
    pub acl: &'static str,
    /// Add PostgreSQL's fixed namespaces the catalog does not list.
    pub fixed_namespaces: bool,
}

impl fmt::Debug for WithAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithAcl").field("acl", &self.acl).finish()
    }
}

/// `nspacl` and `datacl` are `aclitem[]` in PostgreSQL (psql's `\dn+` and
/// `\l+` pass them to `array_to_string`); the crate has them as text, NULL
/// in every row. Here they are text arrays, NULL too.
fn acl_as_array(schema: &SchemaRef, acl: &str) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == acl {
                Field::new(
                    acl,
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    true,
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` in `schema`'s shape: a column whose type differs (the ACL)
/// becomes NULLs of the new type.
fn reshaped(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                column.clone()
            } else {
                new_null_array(field.data_type(), rows)
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[async_trait]
impl TableProvider for WithAcl {
    fn schema(&self) -> SchemaRef {
        acl_as_array(&self.inner.schema(), self.acl)
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let mut batches = super::pg_attribute::read_all(&self.inner, state)
            .await?
            .into_iter()
            .map(|batch| reshaped(batch, &schema))
            .collect::<Result<Vec<_>>>()?;
        let listed: Vec<String> = batches
            .iter()
            .filter_map(|batch| batch.column_by_name("nspname"))
            .filter_map(|names| names.as_string_opt::<i32>())
            .flat_map(|names| {
                names
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let missing: Vec<(i32, &str)> = FIXED
            .into_iter()
            .filter(|(_, name)| self.fixed_namespaces && !listed.iter().any(|l| l == name))
            .collect();
        if !missing.is_empty() {
            batches.push(fixed_rows(&self.schema(), &missing)?);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// Rows for `missing` in pg_namespace's shape: oid, name and owner set,
/// every other column NULL.
fn fixed_rows(schema: &SchemaRef, missing: &[(i32, &str)]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match (field.name().as_str(), field.data_type()) {
                ("oid", DataType::Int32) => {
                    Arc::new(Int32Array::from_iter_values(missing.iter().map(|m| m.0)))
                }
                ("nspname", DataType::Utf8) => {
                    Arc::new(StringArray::from_iter_values(missing.iter().map(|m| m.1)))
                }
                ("nspowner", DataType::Int32) => {
                    Arc::new(Int32Array::from(vec![BOOTSTRAP_SUPERUSER; missing.len()]))
                }
                (_, data_type) => new_null_array(data_type, missing.len()),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
