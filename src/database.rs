//! The database as sessions see it: one `execute` for every statement that is
//! not about the session itself.
//!
//! A statement's path: `sql::parse` gives an AST; DDL changes the `catalog`
//! (persisted, then registered with DataFusion); queries and DML are planned by
//! DataFusion (`query`); DML results become a `TableChange` that is validated,
//! written to the table's log in `state`, flushed, and only then applied to the
//! in-memory table and acknowledged.
//!
//! # Invariants
//! - Every table in the catalog has exactly one `LiveTable` and is registered
//!   with DataFusion under its schema and name.
//! - A table's in-memory contents equal the replay of its log: a change is
//!   applied only after it is durable, and once durable it is always applied
//!   (the commit step runs in its own task, so a cancelled or disconnected
//!   statement cannot stop halfway).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::catalog::SchemaProvider;
use datafusion::common::{DFSchema, TableReference};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{DmlStatement, LogicalPlan};
use datafusion::physical_plan::common::collect;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, Insert, ObjectName, ObjectType, SchemaName, ShowStatementIn,
    ShowStatementOptions, Statement, TableConstraint, TableObject,
};
use tracing::info;

use crate::catalog::{Catalog, ColumnDef, ColumnType, DEFAULT_SCHEMA, TableDef, TableId};
use crate::error::{Error, Result};
use crate::query::dml::{self, DmlKind, DmlPlan};
use crate::query::{self, StoredTable};
use crate::sql::{ident_name, object_name_parts};
use crate::state::{Store, TableChange, TableData};

/// Rows per log entry when a statement writes many: keeps sled values small.
const ROWS_PER_LOG_ENTRY: usize = 65_536;

/// The columns of `SHOW COLUMNS FROM t` and `DESCRIBE t`.
pub const COLUMN_LISTING: [&str; 5] = ["Name", "Type", "Nullable", "Default", "Primary Key"];

/// What a statement returns to the client.
pub enum Outcome {
    /// Rows, produced as the client reads them: a large result is never
    /// held in memory whole, and the first rows go out while later ones are
    /// computed.
    Rows {
        schema: SchemaRef,
        rows: SendableRecordBatchStream,
    },
    /// A command tag such as `CREATE TABLE` or `INSERT 0 3`.
    Command { tag: String, rows: Option<usize> },
}

impl Outcome {
    /// Rows that are already computed.
    pub fn batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        Outcome::Rows {
            rows: Box::pin(RecordBatchStreamAdapter::new(schema.clone(), stream)),
            schema,
        }
    }

    fn command(tag: &str) -> Self {
        Outcome::Command {
            tag: tag.to_string(),
            rows: None,
        }
    }
}

struct LiveTable {
    def: Arc<TableDef>,
    data: Arc<RwLock<TableData>>,
    /// One writer at a time per table: a DML statement reads, decides and
    /// commits under it, so UPDATEs never act on a stale row.
    writer: Arc<tokio::sync::Mutex<()>>,
}

pub struct Database {
    store: Store,
    ctx: SessionContext,
    catalog: Arc<RwLock<Catalog>>,
    tables: RwLock<HashMap<TableId, Arc<LiveTable>>>,
    /// DDL statements run one at a time.
    ddl: tokio::sync::Mutex<()>,
    /// Bumped by every DDL statement: a plan made at an earlier version may
    /// name tables that are gone.
    version: std::sync::atomic::AtomicU64,
}

impl Database {
    /// Opens the database on `store`: loads the catalog, replays every table
    /// log, and compacts logs that have grown much larger than their tables.
    pub async fn open(store: Store) -> Result<Arc<Self>> {
        let catalog = Arc::new(RwLock::new(Catalog::load(store.clone())?));
        let ctx = query::new_context()?;
        let declared = catalog.clone();
        query::declare_column_types(
            &ctx,
            Arc::new(move |schema: &str, table: &str| {
                let catalog = declared.read().ok()?;
                let def = catalog.table(schema, table)?;
                Some(
                    def.columns
                        .iter()
                        .map(|c| {
                            let (oid, modifier) = c.ty.pg_oid_and_modifier();
                            (c.name.clone(), oid, modifier)
                        })
                        .collect(),
                )
            }),
        )?;
        let db = Database {
            store,
            ctx,
            catalog,
            tables: RwLock::new(HashMap::new()),
            ddl: tokio::sync::Mutex::new(()),
            version: std::sync::atomic::AtomicU64::new(0),
        };
        let (schemas, defs): (Vec<String>, Vec<Arc<TableDef>>) = {
            let catalog = db.catalog.read().expect("catalog lock poisoned");
            (
                catalog.schemas().map(str::to_string).collect(),
                catalog.tables().cloned().collect(),
            )
        };
        for schema in &schemas {
            db.register_schema(schema)?;
        }
        for def in defs {
            let data = db.replay(&def)?;
            db.register_table(def, data)?;
        }
        let live: Vec<u64> = db
            .tables
            .read()
            .expect("lock")
            .keys()
            .map(|id| id.0)
            .collect();
        for orphan in db.store.logged_tables()? {
            if !live.contains(&orphan) {
                db.store.drop_table_log(orphan)?;
            }
        }
        db.store.flush().await?;
        Ok(Arc::new(db))
    }

    /// The catalog's version: plans made at the current version are valid.
    pub fn catalog_version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn catalog_changed(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn replay(&self, def: &TableDef) -> Result<TableData> {
        let mut data = TableData::try_new(&def.arrow_schema(), &def.primary_key)?;
        for (seq, bytes) in self.store.table_changes(def.id.0)? {
            let change = TableChange::decode(def.id.0, &bytes)?;
            data.apply(&change)?;
            data.replayed_seq(seq);
            data.logged(bytes.len());
        }
        if data.log_outgrown() {
            compact_log(&self.store, def, &mut data)?;
        }
        info!(table = %def.name, rows = data.row_count(), "table loaded");
        Ok(data)
    }

    fn register_schema(&self, name: &str) -> Result<()> {
        let catalog = self
            .ctx
            .catalog(query::DATABASE_NAME)
            .ok_or_else(|| Error::Internal("the DataFusion catalog is missing".into()))?;
        if catalog.schema(name).is_none() {
            catalog.register_schema(name, Arc::new(MemorySchemaProvider::new()))?;
        }
        Ok(())
    }

    fn register_table(&self, def: Arc<TableDef>, data: TableData) -> Result<()> {
        let data = Arc::new(RwLock::new(data));
        let state = self.ctx.state();
        let mut defaults = HashMap::new();
        for column in &def.columns {
            if let Some(sql) = &column.default {
                defaults.insert(
                    column.name.clone(),
                    state.create_logical_expr(sql, &DFSchema::empty())?,
                );
            }
        }
        let provider = StoredTable::new(Arc::new(def.arrow_schema()), data.clone(), defaults);
        self.schema_provider(&def.schema)?
            .register_table(def.name.clone(), Arc::new(provider))?;
        self.tables.write().expect("tables lock poisoned").insert(
            def.id,
            Arc::new(LiveTable {
                def,
                data,
                writer: Arc::new(tokio::sync::Mutex::new(())),
            }),
        );
        Ok(())
    }

    fn schema_provider(&self, schema: &str) -> Result<Arc<dyn SchemaProvider>> {
        self.ctx
            .catalog(query::DATABASE_NAME)
            .and_then(|c| c.schema(schema))
            .ok_or_else(|| Error::UndefinedSchema(schema.to_string()))
    }

    /// Plans a statement DataFusion understands (queries and DML), with `$n`
    /// placeholders left in: the extended protocol learns parameter and
    /// result types from this plan.
    /// `schema` is where unqualified names resolve (the session's search_path).
    pub async fn plan(&self, statement: &Statement, schema: &str) -> Result<LogicalPlan> {
        let mut state = self.ctx.state();
        state.config_mut().options_mut().catalog.default_schema = schema.to_string();
        let mut statement = statement.clone();
        crate::sql::dedupe_projection(&mut statement);
        crate::sql::rewrite_dml(&mut statement, |name| self.column_defaults(name, schema))?;
        Ok(state
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await?)
    }

    fn column_defaults(
        &self,
        name: &ObjectName,
        schema: &str,
    ) -> Option<crate::sql::ColumnDefaults> {
        let (schema, table) = self.resolve_name(name, schema).ok()?;
        let catalog = self.catalog.read().expect("catalog lock poisoned");
        let def = catalog.table(&schema, &table)?;
        Some(
            def.columns
                .iter()
                .map(|c| (c.name.clone(), c.default.clone()))
                .collect(),
        )
    }

    /// The first schema of a search path that exists (`"$user"` never does:
    /// there are no per-user schemas), or `public`.
    pub fn search_path_schema(&self, search_path: &str) -> String {
        let catalog = self.catalog.read().expect("catalog lock poisoned");
        search_path
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .find(|s| catalog.has_schema(s))
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_string())
    }

    /// Whether DataFusion plans this statement (see `plan`).
    pub fn is_planned(statement: &Statement) -> bool {
        matches!(
            statement,
            Statement::Query(_)
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
                | Statement::Explain { .. }
                | Statement::Truncate(_)
        )
    }

    pub async fn execute(&self, statement: &Statement, schema: &str) -> Result<Outcome> {
        if let Statement::Truncate(truncate) = statement
            && truncate.table_names.len() > 1
        {
            // One table at a time: DataFusion plans TRUNCATE of one table.
            for target in &truncate.table_names {
                let mut single = truncate.clone();
                single.table_names = vec![target.clone()];
                Box::pin(self.execute(&Statement::Truncate(single), schema)).await?;
            }
            return Ok(Outcome::command(DmlKind::Truncate.tag()));
        }
        if let Statement::Insert(insert) = statement
            && let Some(outcome) = self.insert_literals(insert, schema).await?
        {
            return Ok(outcome);
        }
        if Self::is_planned(statement) {
            let plan = self.plan(statement, schema).await?;
            return self.execute_plan(plan).await;
        }
        match statement {
            Statement::CreateTable(create) => self.create_table(create, schema).await,
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => self.create_schema(schema_name, *if_not_exists).await,
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => self.drop_tables(names, *if_exists, schema).await,
            Statement::CreateView(view) if view.materialized => Err(Error::NotSupported(
                "CREATE MATERIALIZED VIEW is not supported yet: incremental materialized views \
                 arrive with the streaming engine"
                    .into(),
            )),
            Statement::ShowTables { show_options, .. } => self.show_tables(show_options, schema),
            Statement::ShowColumns { show_options, .. } => {
                let Some(ShowStatementIn {
                    parent_name: Some(name),
                    ..
                }) = &show_options.show_in
                else {
                    return Err(Error::Syntax {
                        message: "SHOW COLUMNS needs FROM <table>".into(),
                        position: None,
                    });
                };
                self.show_columns(name, schema)
            }
            Statement::ExplainTable { table_name, .. } => self.show_columns(table_name, schema),
            other => Err(Error::NotSupported(format!(
                "{} is not supported",
                crate::sql::statement_kind(other)
            ))),
        }
    }

    /// `INSERT ... VALUES` of plain literals without the planner (see
    /// `query::values`); `None` if the statement needs the planner.
    async fn insert_literals(&self, insert: &Insert, schema: &str) -> Result<Option<Outcome>> {
        let TableObject::TableName(name) = &insert.table else {
            return Ok(None);
        };
        let Ok((schema, table)) = self.resolve_name(name, schema) else {
            return Ok(None);
        };
        let Some(def) = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .table(&schema, &table)
            .cloned()
        else {
            return Ok(None);
        };
        let Some(rows) = query::values::literal_rows(insert, &def) else {
            return Ok(None);
        };
        let Some(live) = self
            .tables
            .read()
            .expect("tables lock poisoned")
            .get(&def.id)
            .cloned()
        else {
            return Ok(None);
        };
        let guard = live.writer.clone().lock_owned().await;
        let count = rows.num_rows();
        self.commit(live, guard, Vec::new(), vec![rows]).await?;
        Ok(Some(Outcome::Command {
            tag: "INSERT".into(),
            rows: Some(count),
        }))
    }

    /// Runs a plan from `plan`, after any parameters have been bound.
    pub async fn execute_plan(&self, plan: LogicalPlan) -> Result<Outcome> {
        if let LogicalPlan::Dml(dml) = &plan {
            return self.execute_dml(dml).await;
        }
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let rows = frame.execute_stream().await?;
        Ok(Outcome::Rows { schema, rows })
    }

    /// The live table whose contents a planned scan reads. Matching by the
    /// data, not the name, finds the table the plan resolved, whatever the
    /// search path, and fails if it was dropped since.
    fn live_table(&self, target: &StoredTable, name: &TableReference) -> Result<Arc<LiveTable>> {
        self.tables
            .read()
            .expect("tables lock poisoned")
            .values()
            .find(|live| Arc::ptr_eq(&live.data, target.data()))
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(name.table().to_string()))
    }

    async fn execute_dml(&self, statement: &DmlStatement) -> Result<Outcome> {
        let DmlPlan {
            kind,
            table,
            target,
            input,
        } = dml::prepare(statement)?;
        let live = self.live_table(&target, &table)?;
        let guard = live.writer.clone().lock_owned().await;
        let batches = self
            .ctx
            .execute_logical_plan(input)
            .await?
            .collect()
            .await?;
        let (deleted, inserted) = match kind {
            DmlKind::Insert => (Vec::new(), batches),
            DmlKind::Delete | DmlKind::Truncate => {
                let mut ids = rowids_of(&batches, 0)?;
                ids.sort_unstable();
                ids.dedup();
                (ids, Vec::new())
            }
            DmlKind::Update => split_update(&batches)?,
        };
        let changed = match kind {
            DmlKind::Insert => inserted.iter().map(RecordBatch::num_rows).sum(),
            _ => deleted.len(),
        };
        self.commit(live, guard, deleted, inserted).await?;
        Ok(match kind {
            DmlKind::Insert => Outcome::Command {
                tag: "INSERT".into(),
                rows: Some(changed),
            },
            DmlKind::Truncate => Outcome::command(kind.tag()),
            _ => Outcome::Command {
                tag: kind.tag().into(),
                rows: Some(changed),
            },
        })
    }

    /// Validates, logs, flushes and applies one statement's change. The
    /// rows in `inserted` have the table's columns, without row ids.
    async fn commit(
        &self,
        live: Arc<LiveTable>,
        guard: tokio::sync::OwnedMutexGuard<()>,
        deleted: Vec<u64>,
        inserted: Vec<RecordBatch>,
    ) -> Result<()> {
        let def = &live.def;
        let user_schema = Arc::new(def.arrow_schema());
        let aligned = inserted
            .iter()
            .map(|b| conform(b, &user_schema, def))
            .collect::<Result<Vec<_>>>()?;
        let rows = match aligned.first() {
            None => RecordBatch::new_empty(user_schema.clone()),
            Some(first) => concat_batches(&first.schema(), &aligned)?,
        };
        let rows = crate::catalog::check_rows(def, &rows)?;
        let (stored, first_seq, entries) = {
            let mut data = live.data.write().expect("table lock poisoned");
            let first_id = data.reserve_rowids(rows.num_rows());
            let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
                first_id..first_id + rows.num_rows() as u64,
            ));
            let mut columns = vec![ids];
            columns.extend(rows.columns().iter().cloned());
            let stored = RecordBatch::try_new(data.stored_schema().clone(), columns)?;
            if let Some(conflict) = data.check_keys(&deleted, &stored)? {
                return Err(Error::UniqueViolation {
                    constraint: def.primary_key_name(),
                    detail: format!("Key {} already exists.", conflict.key),
                });
            }
            let entries = log_entries(&deleted, &stored)?;
            let first_seq = data.reserve_seqs(entries.len());
            (stored, first_seq, entries)
        };
        if entries.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let change = TableChange {
            deleted,
            inserted: (stored.num_rows() > 0).then_some(stored),
        };
        tokio::spawn(async move {
            let _guard = guard;
            store.append_changes(live.def.id.0, first_seq, &entries)?;
            store.flush().await?;
            let mut data = live.data.write().expect("table lock poisoned");
            data.apply(&change)?;
            data.logged(entries.iter().map(Vec::len).sum());
            // Still under the table's writer guard: no append can interleave.
            // The rewrite is one atomic batch, flushed with the next commit
            // or by sled's own periodic flush; until then the old log stands.
            if data.log_outgrown() {
                compact_log(&store, &live.def, &mut data)?;
            }
            Ok::<(), Error>(())
        })
        .await
        .map_err(|e| Error::Internal(format!("commit task failed: {e}")))?
    }

    async fn create_schema(&self, name: &SchemaName, if_not_exists: bool) -> Result<Outcome> {
        let name = match name {
            SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => {
                object_name_parts(name)?.pop().unwrap_or_default()
            }
            SchemaName::UnnamedAuthorization(ident) => ident_name(ident),
        };
        let _ddl = self.ddl.lock().await;
        {
            let mut catalog = self.catalog.write().expect("catalog lock poisoned");
            if catalog.has_schema(&name) && if_not_exists {
                return Ok(Outcome::command("CREATE SCHEMA"));
            }
            catalog.create_schema(&name)?;
        }
        self.register_schema(&name)?;
        self.catalog_changed();
        self.store.flush().await?;
        Ok(Outcome::command("CREATE SCHEMA"))
    }

    async fn create_table(&self, create: &CreateTable, search_schema: &str) -> Result<Outcome> {
        let (schema, name) = self.resolve_name(&create.name, search_schema)?;
        if create.query.is_some() && !create.columns.is_empty() {
            return Err(Error::NotSupported(
                "CREATE TABLE AS with a column list is not supported".into(),
            ));
        }
        let rows = match &create.query {
            Some(query) => {
                let plan = self
                    .plan(&Statement::Query(query.clone()), search_schema)
                    .await?;
                match self.execute_plan(plan).await? {
                    Outcome::Rows { schema, rows } => Some((schema, collect(rows).await?)),
                    Outcome::Command { .. } => None,
                }
            }
            None => None,
        };
        let (columns, primary_key) = match &rows {
            Some((schema, _)) => (columns_from_schema(schema)?, Vec::new()),
            None => table_columns(create)?,
        };
        let _ddl = self.ddl.lock().await;
        if create.if_not_exists
            && self
                .catalog
                .read()
                .expect("catalog lock poisoned")
                .table(&schema, &name)
                .is_some()
        {
            return Ok(Outcome::command("CREATE TABLE"));
        }
        let def = TableDef {
            id: TableId(self.store.next_id()?),
            schema,
            name,
            columns,
            primary_key,
        };
        // Check the DEFAULT expressions plan before anything is persisted.
        let state = self.ctx.state();
        for column in &def.columns {
            if let Some(sql) = &column.default {
                state.create_logical_expr(sql, &DFSchema::empty())?;
            }
        }
        let data = TableData::try_new(&def.arrow_schema(), &def.primary_key)?;
        let def = self
            .catalog
            .write()
            .expect("catalog lock poisoned")
            .create_table(def)?;
        self.register_table(def.clone(), data)?;
        self.catalog_changed();
        self.store.flush().await?;
        if let Some((_, batches)) = rows {
            let live = self
                .tables
                .read()
                .expect("tables lock poisoned")
                .get(&def.id)
                .cloned()
                .ok_or_else(|| Error::Internal("a created table is not live".into()))?;
            let guard = live.writer.clone().lock_owned().await;
            let count = batches.iter().map(RecordBatch::num_rows).sum();
            self.commit(live, guard, Vec::new(), batches).await?;
            return Ok(Outcome::Command {
                tag: "SELECT".into(),
                rows: Some(count),
            });
        }
        Ok(Outcome::command("CREATE TABLE"))
    }

    async fn drop_tables(
        &self,
        names: &[ObjectName],
        if_exists: bool,
        search_schema: &str,
    ) -> Result<Outcome> {
        let _ddl = self.ddl.lock().await;
        for name in names {
            let (schema, table) = self.resolve_name(name, search_schema)?;
            let def = {
                let mut catalog = self.catalog.write().expect("catalog lock poisoned");
                if catalog.table(&schema, &table).is_none() {
                    if if_exists {
                        continue;
                    }
                    return Err(Error::DropMissingTable(table));
                }
                catalog.drop_table(&schema, &table)?
            };
            self.schema_provider(&schema)?.deregister_table(&table)?;
            self.catalog_changed();
            self.tables
                .write()
                .expect("tables lock poisoned")
                .remove(&def.id);
            self.store.drop_table_log(def.id.0)?;
        }
        self.store.flush().await?;
        Ok(Outcome::command("DROP TABLE"))
    }

    /// `[schema.]name` with the default schema filled in, checked to exist.
    fn resolve_name(&self, name: &ObjectName, search_schema: &str) -> Result<(String, String)> {
        let mut parts = object_name_parts(name)?;
        let table = parts.pop().unwrap_or_default();
        let schema = match parts.len() {
            0 => search_schema.to_string(),
            1 => parts.remove(0),
            2 if parts[0] == query::DATABASE_NAME => parts.remove(1),
            _ => {
                return Err(Error::NotSupported(format!(
                    "cross-database references are not implemented: {name}"
                )));
            }
        };
        if !self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .has_schema(&schema)
        {
            return Err(Error::UndefinedSchema(schema));
        }
        Ok((schema, table))
    }

    fn show_tables(&self, options: &ShowStatementOptions, search_schema: &str) -> Result<Outcome> {
        let schema = match &options.show_in {
            Some(ShowStatementIn {
                parent_name: Some(name),
                ..
            }) => object_name_parts(name)?.pop().unwrap_or_default(),
            _ => search_schema.to_string(),
        };
        let catalog = self.catalog.read().expect("catalog lock poisoned");
        if !catalog.has_schema(&schema) {
            return Err(Error::UndefinedSchema(schema));
        }
        let names: Vec<String> = catalog.tables_in(&schema).map(|t| t.name.clone()).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("Name", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(names))])?;
        Ok(Outcome::batches(schema, vec![batch]))
    }

    fn show_columns(&self, name: &ObjectName, search_schema: &str) -> Result<Outcome> {
        let (schema, table) = self.resolve_name(name, search_schema)?;
        let def = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .table(&schema, &table)
            .cloned()
            .ok_or(Error::UndefinedTable(table))?;
        let text =
            |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
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
        Ok(Outcome::batches(out_schema, vec![batch]))
    }
}

/// Replaces a table's log with its current rows, in one atomic sled batch.
fn compact_log(store: &Store, def: &TableDef, data: &mut TableData) -> Result<()> {
    let (first_seq, entries) = data.compact_log()?;
    store.rewrite_table_log(def.id.0, first_seq, &entries)?;
    info!(table = %def.name, entries = entries.len(), "compacted table log");
    Ok(())
}

/// Column definitions and primary key of a plain CREATE TABLE.
fn table_columns(create: &CreateTable) -> Result<(Vec<ColumnDef>, Vec<usize>)> {
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

fn columns_from_schema(schema: &Schema) -> Result<Vec<ColumnDef>> {
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

/// A query result batch in the table's exact schema: same types (cast where
/// the plan produced an equivalent type) and the table's field metadata.
fn conform(batch: &RecordBatch, schema: &SchemaRef, def: &TableDef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::Internal(format!(
            "{} values for {} columns of \"{}\"",
            batch.num_columns(),
            schema.fields().len(),
            def.name
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                Ok(datafusion::arrow::compute::cast(column, field.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // Nullability is checked by `check_rows` with PostgreSQL's message;
    // build against a nullable copy so Arrow does not reject it first.
    let nullable = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(nullable, columns)?)
}

fn rowids_of(batches: &[RecordBatch], column: usize) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for batch in batches {
        let array = batch
            .column(column)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| Error::Internal("row id column is not UInt64".into()))?;
        ids.extend(array.values().iter().copied());
    }
    Ok(ids)
}

/// UPDATE results carry the new row with the old row id last. A row matched
/// more than once (UPDATE ... FROM) is updated once, as in PostgreSQL.
fn split_update(batches: &[RecordBatch]) -> Result<(Vec<u64>, Vec<RecordBatch>)> {
    let mut seen = std::collections::HashSet::new();
    let mut deleted = Vec::new();
    let mut inserted = Vec::new();
    for batch in batches {
        let last = batch.num_columns() - 1;
        let ids = rowids_of(std::slice::from_ref(batch), last)?;
        let keep: datafusion::arrow::array::BooleanArray =
            ids.iter().map(|id| Some(seen.insert(*id))).collect();
        deleted.extend(
            ids.iter()
                .zip(keep.values().iter())
                .filter(|(_, k)| *k)
                .map(|(id, _)| *id),
        );
        let rows = batch.project(&(0..last).collect::<Vec<_>>())?;
        inserted.push(datafusion::arrow::compute::filter_record_batch(
            &rows, &keep,
        )?);
    }
    deleted.sort_unstable();
    Ok((deleted, inserted))
}

/// Splits a change into log entries of bounded size; deletes go first.
fn log_entries(deleted: &[u64], stored: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let mut entries = Vec::new();
    if !deleted.is_empty() {
        entries.push(
            TableChange {
                deleted: deleted.to_vec(),
                inserted: None,
            }
            .encode()?,
        );
    }
    let mut offset = 0;
    while offset < stored.num_rows() {
        let len = ROWS_PER_LOG_ENTRY.min(stored.num_rows() - offset);
        entries.push(
            TableChange {
                deleted: Vec::new(),
                inserted: Some(stored.slice(offset, len)),
            }
            .encode()?,
        );
        offset += len;
    }
    Ok(entries)
}
