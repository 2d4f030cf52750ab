//! Declared column types in `pg_catalog.pg_attribute`.
//!
//! `datafusion-pg-catalog` derives each column's type from its Arrow type,
//! so psql's `\d t` would show `text` for a `varchar(20)` and `numeric` for
//! a `numeric(10,2)`. This wraps its `pg_catalog` schema and, when
//! `pg_attribute` is read, puts back the type and type modifier each column
//! was declared with (found through `pg_class` and `pg_namespace` of the
//! same catalog, so the OIDs agree). Anything it cannot match keeps the
//! derived answer.
//!
//! It also makes `pg_class` call a materialized view one (`relkind = 'm'`,
//! which psql's `\dm` lists) instead of a plain view, and leaves Freshet's
//! own system schema out of it, as psql's `\d` leaves out PostgreSQL's
//! (its tables are still there to SELECT from).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Int32Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::pg_keys::{self, Definitions, KeyTable, Located, Tables};
use crate::catalog::TableDef;

/// Declared (name, type OID, type modifier, has a DEFAULT) of a table's
/// columns, by schema and table name.
pub type DeclaredColumns =
    Arc<dyn Fn(&str, &str) -> Option<Vec<(String, i32, i32, bool)>> + Send + Sync>;

/// Whether `schema.name` is a materialized view.
pub type MaterializedViews = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// The (namespace, name) of each relation `pg_class` has listed, by oid:
/// filled by its scans, read by `pg_table_is_visible` and the size
/// functions (clients call them in the same query that scans `pg_class`).
pub type RelationNamespaces = Arc<std::sync::RwLock<HashMap<i32, (String, String)>>>;

/// Every plain view (or every materialized view): (schema, name,
/// definition), for `pg_views` (or `pg_matviews`).
pub type PlainViews = Arc<dyn Fn() -> Vec<(String, String, String)> + Send + Sync>;

pub struct PgCatalogWithDeclaredTypes {
    pub inner: Arc<dyn SchemaProvider>,
    pub declared: DeclaredColumns,
    pub materialized: MaterializedViews,
    pub views: PlainViews,
    pub matviews: PlainViews,
    /// Every table, for primary keys and defaults (`pg_keys`).
    pub tables: Tables,
    pub definitions: Definitions,
    pub relation_namespaces: RelationNamespaces,
}

impl fmt::Debug for PgCatalogWithDeclaredTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCatalogWithDeclaredTypes").finish()
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogWithDeclaredTypes {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = self.inner.table(name).await?;
        let acl = match name {
            "pg_namespace" => Some("nspacl"),
            "pg_database" => Some("datacl"),
            _ => None,
        };
        if let (Some(acl), Some(inner)) = (acl, table.clone()) {
            return Ok(Some(Arc::new(super::pg_namespace::WithAcl {
                inner,
                acl,
                fixed_namespaces: name == "pg_namespace",
            })));
        }
        if name == "pg_views"
            && let Some(table) = &table
        {
            return Ok(Some(views_table(table.schema(), (self.views)())?));
        }
        if name == "pg_matviews"
            && let Some(table) = &table
        {
            return Ok(Some(matviews_table(table.schema(), (self.matviews)())?));
        }
        let which = match name {
            "pg_index" => Some(KeyTable::Index),
            "pg_constraint" => Some(KeyTable::Constraint),
            "pg_attrdef" => Some(KeyTable::Attrdef),
            _ => None,
        };
        if let (Some(which), Some(table), Some(class), Some(namespace)) = (
            which,
            &table,
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
        ) {
            return Ok(Some(Arc::new(Keys {
                which,
                schema: table.schema(),
                class,
                namespace,
                tables: self.tables.clone(),
                definitions: self.definitions.clone(),
            })));
        }
        if name == "pg_class"
            && let (Some(class), Some(namespace)) =
                (table.clone(), self.inner.table("pg_namespace").await?)
        {
            return Ok(Some(Arc::new(Classes {
                class,
                namespace,
                materialized: self.materialized.clone(),
                tables: self.tables.clone(),
                seen: self.relation_namespaces.clone(),
            })));
        }
        if name != "pg_attribute" {
            return Ok(table);
        }
        let (Some(attribute), Some(class), Some(namespace)) = (
            table,
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
        ) else {
            return self.inner.table(name).await;
        };
        Ok(Some(Arc::new(Attributes {
            attribute,
            class,
            namespace,
            declared: self.declared.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

struct Attributes {
    attribute: Arc<dyn TableProvider>,
    class: Arc<dyn TableProvider>,
    namespace: Arc<dyn TableProvider>,
    declared: DeclaredColumns,
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attributes").finish()
    }
}

/// Every row of a catalog table.
pub(super) async fn read_all(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

/// `oid` to the value of `column` (a string column) in a catalog table.
fn names_by_oid(batches: &[RecordBatch], column: &str) -> HashMap<i32, String> {
    let mut out = HashMap::new();
    for batch in batches {
        let (Some(oids), Some(names)) = (batch.column_by_name("oid"), batch.column_by_name(column))
        else {
            continue;
        };
        let (Some(oids), Some(names)) = (
            oids.as_primitive_opt::<Int32Type>(),
            names.as_string_opt::<i32>(),
        ) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            if oids.is_valid(i) && names.is_valid(i) {
                out.insert(oids.value(i), names.value(i).to_string());
            }
        }
    }
    out
}

#[async_trait]
impl TableProvider for Attributes {
    fn schema(&self) -> SchemaRef {
        self.attribute.schema()
    }

    fn table_type(&self) -> TableType {
        self.attribute.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let attributes = read_all(&self.attribute, state).await?;
        let classes = read_all(&self.class, state).await?;
        let namespaces = names_by_oid(&read_all(&self.namespace, state).await?, "nspname");
        let relnames = names_by_oid(&classes, "relname");
        let mut relnamespace = HashMap::new();
        for batch in &classes {
            if let (Some(oids), Some(spaces)) = (
                batch.column_by_name("oid"),
                batch.column_by_name("relnamespace"),
            ) && let (Some(oids), Some(spaces)) = (
                oids.as_primitive_opt::<Int32Type>(),
                spaces.as_primitive_opt::<Int32Type>(),
            ) {
                for i in 0..batch.num_rows() {
                    relnamespace.insert(oids.value(i), spaces.value(i));
                }
            }
        }
        // PostgreSQL never marks a view's columns NOT NULL.
        let mut views = std::collections::HashSet::new();
        for batch in &classes {
            if let (Some(oids), Some(kinds)) =
                (batch.column_by_name("oid"), batch.column_by_name("relkind"))
                && let (Some(oids), Some(kinds)) = (
                    oids.as_primitive_opt::<Int32Type>(),
                    kinds.as_string_opt::<i32>(),
                )
            {
                for i in 0..batch.num_rows() {
                    if matches!(kinds.is_valid(i).then(|| kinds.value(i)), Some("v" | "m")) {
                        views.insert(oids.value(i));
                    }
                }
            }
        }
        let mut declared_cache: HashMap<i32, Option<Vec<(String, i32, i32, bool)>>> =
            HashMap::new();
        let mut patched = Vec::with_capacity(attributes.len());
        for batch in attributes {
            let schema = batch.schema();
            let (Ok(rel), Ok(name), Ok(typ), Ok(modifier), Ok(has_default)) = (
                schema.index_of("attrelid"),
                schema.index_of("attname"),
                schema.index_of("atttypid"),
                schema.index_of("atttypmod"),
                schema.index_of("atthasdef"),
            ) else {
                patched.push(batch);
                continue;
            };
            let rels = batch.column(rel).as_primitive::<Int32Type>().clone();
            let names = batch.column(name).as_string::<i32>().clone();
            let mut types: Vec<Option<i32>> = batch
                .column(typ)
                .as_primitive::<Int32Type>()
                .iter()
                .collect();
            let mut modifiers: Vec<Option<i32>> = batch
                .column(modifier)
                .as_primitive::<Int32Type>()
                .iter()
                .collect();
            let mut defaults: Vec<Option<bool>> =
                batch.column(has_default).as_boolean().iter().collect();
            for i in 0..batch.num_rows() {
                let relid = rels.value(i);
                let columns = declared_cache.entry(relid).or_insert_with(|| {
                    let table = relnames.get(&relid)?;
                    let schema = namespaces.get(relnamespace.get(&relid)?)?;
                    (self.declared)(schema, table)
                });
                if let Some(columns) = columns
                    && let Some((_, oid, typmod, default)) =
                        columns.iter().find(|(n, _, _, _)| n == names.value(i))
                {
                    types[i] = Some(*oid);
                    modifiers[i] = Some(*typmod);
                    defaults[i] = Some(*default);
                }
            }
            let mut columns = batch.columns().to_vec();
            columns[typ] = Arc::new(Int32Array::from(types));
            columns[modifier] = Arc::new(Int32Array::from(modifiers));
            columns[has_default] = Arc::new(BooleanArray::from(defaults));
            if let Ok(not_null) = schema.index_of("attnotnull") {
                let flags: BooleanArray = batch
                    .column(not_null)
                    .as_boolean()
                    .iter()
                    .enumerate()
                    .map(|(i, flag)| flag.map(|f| f && !views.contains(&rels.value(i))))
                    .collect();
                columns[not_null] = Arc::new(flags);
            }
            patched.push(RecordBatch::try_new(schema, columns)?);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[patched],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

struct Classes {
    class: Arc<dyn TableProvider>,
    namespace: Arc<dyn TableProvider>,
    materialized: MaterializedViews,
    tables: Tables,
    seen: RelationNamespaces,
}

impl fmt::Debug for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classes").finish()
    }
}

/// PostgreSQL's `pg_class` columns the catalog crate lacks, NULL in every
/// row here (no ACLs, no storage options): psql's `\d+` reads them.
const MISSING_CLASS_COLUMNS: [&str; 2] = ["relacl", "reloptions"];

impl Classes {
    fn missing_columns(&self) -> Vec<&'static str> {
        let inner = self.class.schema();
        MISSING_CLASS_COLUMNS
            .into_iter()
            .filter(|name| inner.index_of(name).is_err())
            .collect()
    }

    /// `batch` with the missing columns appended, as NULL text arrays.
    fn with_missing_columns(&self, batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        for field in schema.fields().iter().skip(columns.len()) {
            columns.push(datafusion::arrow::array::new_null_array(
                field.data_type(),
                rows,
            ));
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for Classes {
    fn schema(&self) -> SchemaRef {
        let inner = self.class.schema();
        let missing = self.missing_columns();
        if missing.is_empty() {
            return inner;
        }
        let text_array = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        let mut fields: Vec<Field> = inner.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(
            missing
                .into_iter()
                .map(|name| Field::new(name, text_array.clone(), true)),
        );
        Arc::new(Schema::new_with_metadata(fields, inner.metadata().clone()))
    }

    fn table_type(&self) -> TableType {
        self.class.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let classes = read_all(&self.class, state).await?;
        let namespaces = names_by_oid(&read_all(&self.namespace, state).await?, "nspname");
        let mut patched = Vec::with_capacity(classes.len());
        for batch in classes {
            let schema = batch.schema();
            let (Ok(kind), Ok(name), Ok(space)) = (
                schema.index_of("relkind"),
                schema.index_of("relname"),
                schema.index_of("relnamespace"),
            ) else {
                patched.push(batch);
                continue;
            };
            let names = batch.column(name).as_string::<i32>().clone();
            let spaces = batch.column(space).as_primitive::<Int32Type>().clone();
            let kinds: Vec<Option<String>> = batch
                .column(kind)
                .as_string::<i32>()
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let k = k?;
                    let is_mv = k == "v"
                        && spaces.is_valid(i)
                        && namespaces
                            .get(&spaces.value(i))
                            .is_some_and(|ns| (self.materialized)(ns, names.value(i)));
                    Some(if is_mv {
                        "m".to_string()
                    } else {
                        k.to_string()
                    })
                })
                .collect();
            let visible: datafusion::arrow::array::BooleanArray = (0..batch.num_rows())
                .map(|i| {
                    Some(
                        !spaces.is_valid(i)
                            || namespaces.get(&spaces.value(i)).map(String::as_str)
                                != Some(crate::query::system::SYSTEM_SCHEMA),
                    )
                })
                .collect();
            let mut columns = batch.columns().to_vec();
            columns[kind] = Arc::new(datafusion::arrow::array::StringArray::from(kinds));
            let batch = RecordBatch::try_new(schema, columns)?;
            patched.push(datafusion::arrow::compute::filter_record_batch(
                &batch, &visible,
            )?);
        }
        let patched = with_key_indexes(patched, &namespaces, &(self.tables)())?;
        let mut seen = match self.seen.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for batch in &patched {
            if let (Some(oids), Some(spaces), Some(names)) = (
                batch.column_by_name("oid"),
                batch.column_by_name("relnamespace"),
                batch.column_by_name("relname"),
            ) {
                let (oids, spaces, names) = (
                    oids.as_primitive::<Int32Type>(),
                    spaces.as_primitive::<Int32Type>(),
                    names.as_string::<i32>(),
                );
                for i in 0..batch.num_rows() {
                    if let Some(namespace) = namespaces.get(&spaces.value(i)) {
                        seen.insert(
                            oids.value(i),
                            (namespace.clone(), names.value(i).to_string()),
                        );
                    }
                }
            }
        }
        drop(seen);
        let schema = self.schema();
        let patched = patched
            .into_iter()
            .map(|batch| self.with_missing_columns(batch, &schema))
            .collect::<Result<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[patched],
            schema,
            projection.cloned(),
        )?)
    }
}

/// `pg_class` with a row (kind `i`) for each table's primary-key index, and
/// `relhasindex` set on the table.
fn with_key_indexes(
    classes: Vec<RecordBatch>,
    namespaces: &HashMap<i32, String>,
    tables: &[Arc<TableDef>],
) -> Result<Vec<RecordBatch>> {
    let keyed: HashMap<(&str, &str), &Arc<TableDef>> = tables
        .iter()
        .filter(|t| !t.primary_key.is_empty())
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t))
        .collect();
    if keyed.is_empty() {
        return Ok(classes);
    }
    let mut out = Vec::with_capacity(classes.len() * 2);
    for batch in classes {
        let schema = batch.schema();
        let (Ok(oid), Ok(name), Ok(kind), Ok(space), Ok(has_index)) = (
            schema.index_of("oid"),
            schema.index_of("relname"),
            schema.index_of("relkind"),
            schema.index_of("relnamespace"),
            schema.index_of("relhasindex"),
        ) else {
            out.push(batch);
            continue;
        };
        let names = batch.column(name).as_string::<i32>();
        let kinds = batch.column(kind).as_string::<i32>();
        let spaces = batch.column(space).as_primitive::<Int32Type>();
        let mut rows = Vec::new();
        let mut index_names = Vec::new();
        let mut flags: Vec<Option<bool>> = batch.column(has_index).as_boolean().iter().collect();
        for (i, flag) in flags.iter_mut().enumerate() {
            let Some(namespace) = namespaces.get(&spaces.value(i)) else {
                continue;
            };
            if kinds.value(i) == "r"
                && let Some(def) = keyed.get(&(namespace.as_str(), names.value(i)))
            {
                rows.push(i as u32);
                index_names.push(def.primary_key_name());
                *flag = Some(true);
            }
        }
        let mut columns = batch.columns().to_vec();
        columns[has_index] = Arc::new(BooleanArray::from(flags));
        let tables_batch = RecordBatch::try_new(schema.clone(), columns)?;
        if rows.is_empty() {
            out.push(tables_batch);
            continue;
        }
        let indexes =
            datafusion::arrow::compute::take_record_batch(&tables_batch, &UInt32Array::from(rows))?;
        let mut columns = indexes.columns().to_vec();
        columns[oid] = Arc::new(Int32Array::from_iter_values(
            indexes
                .column(oid)
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&t| pg_keys::index_oid(t)),
        ));
        columns[name] = Arc::new(StringArray::from(index_names));
        columns[kind] = Arc::new(StringArray::from(vec!["i"; indexes.num_rows()]));
        columns[has_index] = Arc::new(BooleanArray::from(vec![false; indexes.num_rows()]));
        out.push(tables_batch);
        out.push(RecordBatch::try_new(schema, columns)?);
    }
    Ok(out)
}

/// `pg_index`, `pg_constraint` or `pg_attrdef`, computed at each scan from
/// the tables' definitions and `pg_class`'s oids.
struct Keys {
    which: KeyTable,
    schema: SchemaRef,
    class: Arc<dyn TableProvider>,
    namespace: Arc<dyn TableProvider>,
    tables: Tables,
    definitions: Definitions,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("which", &self.which).finish()
    }
}

#[async_trait]
impl TableProvider for Keys {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let classes = read_all(&self.class, state).await?;
        let namespaces = names_by_oid(&read_all(&self.namespace, state).await?, "nspname");
        let mut located: HashMap<(String, String), (i32, i32)> = HashMap::new();
        for batch in &classes {
            let (Some(oids), Some(names), Some(kinds), Some(spaces)) = (
                batch.column_by_name("oid"),
                batch.column_by_name("relname"),
                batch.column_by_name("relkind"),
                batch.column_by_name("relnamespace"),
            ) else {
                continue;
            };
            let (oids, names, kinds, spaces) = (
                oids.as_primitive::<Int32Type>(),
                names.as_string::<i32>(),
                kinds.as_string::<i32>(),
                spaces.as_primitive::<Int32Type>(),
            );
            for i in 0..batch.num_rows() {
                if kinds.value(i) == "r"
                    && let Some(namespace) = namespaces.get(&spaces.value(i))
                {
                    located.insert(
                        (namespace.clone(), names.value(i).to_string()),
                        (oids.value(i), spaces.value(i)),
                    );
                }
            }
        }
        let tables: Vec<Located> = (self.tables)()
            .into_iter()
            .filter_map(|def| {
                let &(oid, namespace) = located.get(&(def.schema.clone(), def.name.clone()))?;
                Some(Located {
                    oid,
                    namespace,
                    def,
                })
            })
            .collect();
        let batch = pg_keys::rows(self.which, &self.schema, &tables, &self.definitions)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The (schema, name, definition) columns of `pg_views` and `pg_matviews`,
/// and their owner.
struct ViewColumns {
    schema: Arc<dyn Array>,
    name: Arc<dyn Array>,
    owner: Arc<dyn Array>,
    definition: Arc<dyn Array>,
}

impl ViewColumns {
    fn new(views: &[(String, String, String)]) -> Self {
        use datafusion::arrow::array::StringArray;
        let column = |pick: fn(&(String, String, String)) -> &str| -> Arc<dyn Array> {
            Arc::new(StringArray::from_iter_values(views.iter().map(pick)))
        };
        ViewColumns {
            schema: column(|v| &v.0),
            name: column(|v| &v.1),
            owner: column(|_| super::DATABASE_NAME),
            definition: column(|v| &v.2),
        }
    }
}

fn memory_table(schema: SchemaRef, columns: Vec<Arc<dyn Array>>) -> Result<Arc<dyn TableProvider>> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(
        schema,
        vec![vec![batch]],
    )?))
}

/// `pg_views` over Freshet's plain views (the library's is always empty).
fn views_table(
    schema: SchemaRef,
    views: Vec<(String, String, String)>,
) -> Result<Arc<dyn TableProvider>> {
    let c = ViewColumns::new(&views);
    memory_table(schema, vec![c.schema, c.name, c.owner, c.definition])
}

/// `pg_matviews`: every MV is populated (a read waits out its backfill) and
/// has an index, the one on its unique key that point lookups use.
fn matviews_table(
    schema: SchemaRef,
    views: Vec<(String, String, String)>,
) -> Result<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::{BooleanArray, new_null_array};
    let c = ViewColumns::new(&views);
    let yes: Arc<dyn Array> = Arc::new(BooleanArray::from(vec![true; views.len()]));
    let tablespace = new_null_array(schema.field(3).data_type(), views.len());
    memory_table(
        schema,
        vec![
            c.schema,
            c.name,
            c.owner,
            tablespace,
            yes.clone(),
            yes,
            c.definition,
        ],
    )
}
