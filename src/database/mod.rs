//! The database as sessions see it: one `execute` for every statement that is
//! not about the session itself.
//!
//! A statement's path: `sql::parse` gives an AST; `execute` dispatches it.
//! DDL (`ddl`) changes the `catalog` (persisted, then registered with
//! DataFusion); queries are planned and run by DataFusion (`query`); DML
//! (`commit`) runs DataFusion's plan of what to change, and the resulting
//! `TableChange` is validated, written to the table's log in `state`,
//! flushed, and only then applied to the in-memory table and acknowledged.
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
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::catalog::SchemaProvider;
use datafusion::common::DFSchema;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectType, ShowStatementIn, ShowStatementOptions, Statement,
};
use tracing::info;

use crate::catalog::{Catalog, DEFAULT_SCHEMA, TableDef, TableId};
use crate::error::{Error, Result};
use crate::query::dml::DmlKind;
use crate::query::{self, ReadEpoch, StoredTable, TxnView, WriterView};
use crate::sql::object_name_parts;
use crate::state::{Store, TableChange, TableData};
use crate::stream::runtime::{Message, Runtime};

mod commit;
mod copy;
mod ddl;
mod mv;
pub mod notice;
mod sequencer;
mod transaction;
mod upsert;
mod view;

pub use commit::watch_commit;
pub use copy::{CopyRecord, CopyTarget, copy_query};
pub use transaction::Transaction;

use commit::compact_log;

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
    /// The rows of a RETURNING, and the command's tag (`INSERT 0`,
    /// `UPDATE`, `DELETE`) the row count completes.
    Returned {
        tag: &'static str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
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
    /// Set by DROP TABLE under the writer lock: a writer that waited for
    /// the lock must not write to a table that is gone.
    dropped: std::sync::atomic::AtomicBool,
}

impl LiveTable {
    /// The writer lock; 42P01 if the table was dropped while we waited.
    async fn lock_writer(&self) -> Result<tokio::sync::OwnedMutexGuard<()>> {
        let guard = self.writer.clone().lock_owned().await;
        if self.dropped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::UndefinedTable(self.def.name.clone()));
        }
        Ok(guard)
    }
}

/// Where a statement runs: the schema its unqualified names resolve in (the
/// first of the session's search_path that exists) and the session's
/// TimeZone, `None` for UTC, which timestamptz conversions to and from
/// local time follow (`query::time_zone`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub schema: String,
    pub time_zone: Option<String>,
}

impl Scope {
    /// Names resolve in `schema`; local time is UTC.
    pub fn new(schema: impl Into<String>) -> Self {
        Scope {
            schema: schema.into(),
            time_zone: None,
        }
    }

    /// Local time in `zone`; UTC, or a zone Arrow does not know (it is
    /// rendered as UTC too), leaves the default.
    pub fn with_time_zone(mut self, zone: &str) -> Self {
        self.time_zone = (!query::time_zone::is_utc(zone)
            && zone
                .parse::<datafusion::arrow::array::timezone::Tz>()
                .is_ok())
        .then(|| zone.to_string());
        self
    }
}

pub struct Database {
    store: Store,
    ctx: SessionContext,
    /// The sequences of SERIAL columns (`nextval`).
    sequences: Arc<crate::catalog::Sequences>,
    /// What `pg_table_is_visible` consults (see `query::session_functions`).
    relation_namespaces: query::RelationNamespaces,
    catalog: Arc<RwLock<Catalog>>,
    tables: Arc<RwLock<HashMap<TableId, Arc<LiveTable>>>>,
    /// DDL statements run one at a time.
    ddl: tokio::sync::Mutex<()>,
    /// Bumped by every DDL statement: a plan made at an earlier version may
    /// name tables that are gone.
    version: std::sync::atomic::AtomicU64,
    /// The epoch runtime that maintains every materialized view.
    runtime: Runtime,
    /// Turns for showing commits to readers and handing them (and DDL's
    /// news of relations) to the runtime: the runtime's channel order is the
    /// commit order (one global sequence).
    sequencer: Arc<sequencer::Sequencer>,
}

impl Database {
    /// Opens the database on `store`: loads the catalog, replays every table
    /// log, and compacts logs that have grown much larger than their tables.
    /// Queries share a memory pool of `memory_limit` bytes (none: no limit).
    pub async fn open(
        store: Store,
        epoch_interval: Duration,
        memory_limit: Option<usize>,
    ) -> Result<Arc<Self>> {
        let catalog = Arc::new(RwLock::new(Catalog::load(store.clone())?));
        let ctx = query::new_context(memory_limit)?;
        let declared = catalog.clone();
        let relation_namespaces = query::declare_column_types(
            &ctx,
            Arc::new(move |schema: &str, table: &str| {
                let catalog = declared.read().ok()?;
                let def = catalog.table(schema, table)?;
                Some(
                    def.columns
                        .iter()
                        .map(|c| {
                            let (oid, modifier) = c.ty.pg_oid_and_modifier();
                            (c.name.clone(), oid, modifier, c.default.is_some())
                        })
                        .collect(),
                )
            }),
            {
                let catalog = catalog.clone();
                Arc::new(move |schema: &str, name: &str| {
                    catalog
                        .read()
                        .map(|c| c.mv(schema, name).is_some())
                        .unwrap_or(false)
                })
            },
            {
                let catalog = catalog.clone();
                Arc::new(move || {
                    catalog
                        .read()
                        .map(|c| {
                            c.views()
                                .iter()
                                .map(|v| (v.schema.clone(), v.name.clone(), format!(" {};", v.sql)))
                                .collect()
                        })
                        .unwrap_or_default()
                })
            },
            {
                let catalog = catalog.clone();
                Arc::new(move || {
                    catalog
                        .read()
                        .map(|c| {
                            c.mvs()
                                .iter()
                                .map(|m| (m.schema.clone(), m.name.clone(), format!(" {};", m.sql)))
                                .collect()
                        })
                        .unwrap_or_default()
                })
            },
            {
                let catalog = catalog.clone();
                Arc::new(move || {
                    catalog
                        .read()
                        .map(|c| c.tables().cloned().collect())
                        .unwrap_or_default()
                })
            },
        )?;
        let sequences = Arc::new(crate::catalog::Sequences::load(store.clone())?);
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(
            query::nextval::NextVal::new(sequences.clone()),
        ));
        let db = Database {
            store,
            ctx,
            sequences,
            relation_namespaces,
            catalog,
            tables: Arc::default(),
            ddl: tokio::sync::Mutex::new(()),
            version: std::sync::atomic::AtomicU64::new(0),
            runtime: Runtime::start(epoch_interval)?,
            sequencer: sequencer::Sequencer::new(),
        };
        for function in query::pg_size::functions(db.relation_size(), db.database_size()) {
            db.ctx.register_udf(function);
        }
        db.ctx
            .register_udf(query::pg_get_viewdef(db.view_definition()));
        db.ctx.register_udf(query::pg_has_role());
        db.ctx.register_udf(query::pg_function_is_visible());
        let signatures = Arc::new(query::pg_proc::Signatures::load(&db.ctx).await?);
        for function in signatures.functions() {
            db.ctx.register_udf(function);
        }
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
        db.register_schema(query::system::SYSTEM_SCHEMA)?;
        db.schema_provider(query::system::SYSTEM_SCHEMA)?
            .register_table(
                "mv_status".into(),
                Arc::new(query::system::SystemTable::mv_status(db.runtime.clone())),
            )?;
        db.schema_provider(query::system::SYSTEM_SCHEMA)?
            .register_table(
                "mv_progress".into(),
                Arc::new(query::system::SystemTable::mv_progress(db.runtime.clone())),
            )?;
        db.schema_provider(query::system::SYSTEM_SCHEMA)?
            .register_table(
                "mv_state".into(),
                Arc::new(query::system::SystemTable::mv_state(db.runtime.clone())),
            )?;
        for def in defs {
            let data = db.replay(&def)?;
            db.register_table(def, data).await?;
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
        let (mvs, views) = {
            let catalog = db.catalog.read().expect("catalog lock poisoned");
            (catalog.mvs(), catalog.views())
        };
        // In creation order, so that whatever a view or MV names is there.
        let mut mvs = mvs.into_iter().peekable();
        let mut views = views.into_iter().peekable();
        loop {
            let view_first = match (mvs.peek(), views.peek()) {
                (Some(mv), Some(view)) => view.id.0 < mv.id.0,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            // One view or MV that no longer builds (its data overflows, a
            // view it reads failed) must not keep the database from
            // starting: it reports its error until it is dropped.
            if view_first {
                if let Some(def) = views.next()
                    && let Err(e) = db.start_view(&def).await
                {
                    tracing::error!(view = %def.name, error = %e, "view could not be planned at start");
                }
            } else if let Some(def) = mvs.next()
                // Until checkpoints exist, an MV is rebuilt from its inputs.
                && let Err(e) = db.start_mv(&def).await
            {
                tracing::error!(view = %def.name, error = %e, "materialized view could not be rebuilt at start");
                db.runtime.mark_failed(
                    def.id,
                    &def.name,
                    format!("it could not be rebuilt at start: {e}"),
                );
            }
        }
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

    async fn register_table(&self, def: Arc<TableDef>, data: TableData) -> Result<()> {
        let snapshot = data.snapshot();
        let id = def.id;
        let data = Arc::new(RwLock::new(data));
        let state = self.ctx.state();
        let mut defaults = HashMap::new();
        for column in &def.columns {
            if let Some(sql) = &column.default {
                defaults.insert(
                    column.name.clone(),
                    state.create_logical_expr(
                        &crate::sql::expression_sql(sql),
                        &DFSchema::empty(),
                    )?,
                );
            }
        }
        let provider = StoredTable::new(
            def.id,
            Arc::new(def.arrow_schema()),
            data.clone(),
            defaults,
            &def.primary_key,
        );
        self.schema_provider(&def.schema)?
            .register_table(def.name.clone(), Arc::new(provider))?;
        self.tables.write().expect("tables lock poisoned").insert(
            def.id,
            Arc::new(LiveTable {
                def,
                data,
                writer: Arc::new(tokio::sync::Mutex::new(())),
                dropped: Default::default(),
            }),
        );
        let _turn = self.sequencer.turn().await;
        self.runtime
            .send(Message::Table {
                table: id,
                snapshot: Some(snapshot),
            })
            .await?;
        Ok(())
    }

    /// Bytes of a table's rows as committed, or of an MV's as of the last
    /// published epoch, by the oid `pg_class` gave it.
    fn relation_size(&self) -> query::pg_size::RelationSize {
        let relations = self.relation_namespaces.clone();
        let catalog = self.catalog.clone();
        let tables = self.tables.clone();
        let runtime = self.runtime.clone();
        Arc::new(move |oid| {
            let (schema, name) = relations.read().ok()?.get(&oid)?.clone();
            let catalog = catalog.read().ok()?;
            let chunks = match catalog.table(&schema, &name) {
                Some(table) => {
                    let live = tables.read().ok()?.get(&table.id)?.clone();
                    live.data.read().ok()?.snapshot()
                }
                None => runtime
                    .published()
                    .mvs
                    .get(&catalog.mv(&schema, &name)?.id)?
                    .clone(),
            };
            Some(crate::stream::footprint::batches(&chunks) as u64)
        })
    }

    /// Bytes of every table's committed rows and every MV's rows as of
    /// the last published epoch.
    fn database_size(&self) -> query::pg_size::DatabaseSize {
        let tables = self.tables.clone();
        let runtime = self.runtime.clone();
        Arc::new(move || {
            let tables: u64 = tables
                .read()
                .map(|tables| {
                    tables
                        .values()
                        .filter_map(|live| live.data.read().ok().map(|d| d.snapshot()))
                        .map(|chunks| crate::stream::footprint::batches(&chunks) as u64)
                        .sum()
                })
                .unwrap_or(0);
            let mvs: u64 = runtime
                .published()
                .mvs
                .values()
                .map(|chunks| crate::stream::footprint::batches(chunks) as u64)
                .sum();
            tables + mvs
        })
    }

    /// The query of a view or MV, by the oid `pg_class` gave it, as
    /// `pg_views` prints it.
    fn view_definition(&self) -> query::ViewDefinition {
        let relations = self.relation_namespaces.clone();
        let catalog = self.catalog.clone();
        Arc::new(move |oid| {
            let (schema, name) = relations.read().ok()?.get(&oid)?.clone();
            let catalog = catalog.read().ok()?;
            let sql = match catalog.view(&schema, &name) {
                Some(view) => view.sql.clone(),
                None => catalog.mv(&schema, &name)?.sql.clone(),
            };
            Some(format!(" {sql};"))
        })
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
    pub async fn plan(&self, statement: &Statement, scope: &Scope) -> Result<LogicalPlan> {
        let schema = scope.schema.as_str();
        let mut state = self.ctx.state();
        state.config_mut().options_mut().catalog.default_schema = schema.to_string();
        for function in crate::query::session_functions(schema, &self.relation_namespaces) {
            state.register_udf(Arc::new(function))?;
        }
        let prepare = || -> Result<Statement> {
            let mut statement = statement.clone();
            crate::sql::dedupe_projection(&mut statement);
            crate::sql::rewrite_dml(&mut statement, |name| self.column_defaults(name, schema))?;
            crate::sql::rewrite_casts(&mut statement);
            crate::sql::rewrite_clauses(&mut statement);
            Ok(statement)
        };
        let plan = match state
            .statement_to_plan(DfStatement::Statement(Box::new(prepare()?)))
            .await
        {
            Err(e) if crate::query::is_grouping_error(&e) => {
                // Columns that depend on a grouped primary key are grouped
                // too, and the statement planned again (only now: the
                // rewrite reads the catalog).
                let mut statement = prepare()?;
                if !crate::sql::group_by_dependents(&mut statement, |name| {
                    self.keyed_table(name, schema)
                }) {
                    return Err(e.into());
                }
                state
                    .statement_to_plan(DfStatement::Statement(Box::new(statement)))
                    .await?
            }
            planned => planned?,
        };
        let plan = crate::query::subqueries::mend(plan)?;
        // Analyzed here, with the zone in the config, where the session has
        // one: the plan then carries its local-time conversions into any
        // session state it runs in. A plan with parameters is analyzed once
        // they are bound, in UTC.
        match &scope.time_zone {
            Some(zone) if plan.get_parameter_types()?.is_empty() => {
                state.config_mut().options_mut().execution.time_zone = Some(zone.clone());
                Ok(state
                    .analyzer()
                    .execute_and_check(plan, state.config_options(), |_, _| {})?)
            }
            _ => Ok(plan),
        }
    }

    fn keyed_table(&self, name: &ObjectName, schema: &str) -> Option<crate::sql::KeyedTable> {
        let (schema, table) = self.resolve_name(name, schema).ok()?;
        let catalog = self.catalog.read().expect("catalog lock poisoned");
        let def = catalog.table(&schema, &table)?;
        Some(crate::sql::KeyedTable {
            key: def
                .primary_key
                .iter()
                .map(|&i| def.columns[i].name.clone())
                .collect(),
            columns: def.columns.iter().map(|c| c.name.clone()).collect(),
        })
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

    /// Runs one statement; DML inside an open transaction block goes into
    /// `txn` instead of committing. DDL always commits on its own.
    pub async fn execute(
        &self,
        statement: &Statement,
        scope: &Scope,
        mut txn: Option<&mut Transaction>,
    ) -> Result<Outcome> {
        let schema = scope.schema.as_str();
        if let Statement::Truncate(truncate) = statement
            && truncate.table_names.len() > 1
        {
            // One table at a time: DataFusion plans TRUNCATE of one table.
            // Every name is checked first, so that a missing one truncates
            // nothing.
            for target in &truncate.table_names {
                let (schema, table) = self.resolve_name(&target.name, schema)?;
                let catalog = self.catalog.read().expect("catalog lock poisoned");
                if catalog.table(&schema, &table).is_none() {
                    return Err(Error::UndefinedTable(table));
                }
            }
            for target in &truncate.table_names {
                let mut single = truncate.clone();
                single.table_names = vec![target.clone()];
                Box::pin(self.execute(&Statement::Truncate(single), scope, txn.as_deref_mut()))
                    .await?;
            }
            return Ok(Outcome::command(DmlKind::Truncate.tag()));
        }
        if let Statement::Insert(insert) = statement
            && insert.on.is_some()
        {
            if insert.returning.is_some() {
                return Err(Error::NotSupported(
                    "INSERT ... ON CONFLICT ... RETURNING is not supported yet".into(),
                ));
            }
            return self.execute_upsert(insert, scope, txn).await;
        }
        if let Statement::Insert(insert) = statement
            && let Some(outcome) = self
                .insert_literals(insert, scope, txn.as_deref_mut())
                .await?
        {
            return Ok(outcome);
        }
        if let Statement::Explain {
            statement: inner, ..
        } = statement
            && let Statement::CreateView(view) = inner.as_ref()
            && view.materialized
        {
            return self.explain_mv(view, schema).await;
        }
        if Self::is_planned(statement) {
            if crate::sql::returning::has(statement) {
                let mut statement = statement.clone();
                let returning = crate::sql::returning::take(&mut statement)?;
                let plan = self.plan(&statement, scope).await?;
                return self
                    .execute_plan_returning(plan, returning.as_ref(), txn)
                    .await;
            }
            let plan = self.plan(statement, scope).await?;
            return self.execute_plan(plan, txn).await;
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
                cascade,
                ..
            } => self.drop_tables(names, *if_exists, *cascade, schema).await,
            Statement::Drop {
                object_type: ObjectType::MaterializedView,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop_mvs(names, *if_exists, *cascade, schema).await,
            Statement::Drop {
                object_type: ObjectType::Schema,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop_schemas(names, *if_exists, *cascade).await,
            Statement::CreateView(view) if view.materialized => self.create_mv(view, schema).await,
            Statement::CreateView(view) => self.create_view(view, schema).await,
            Statement::Drop {
                object_type: ObjectType::View,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop_views(names, *if_exists, *cascade, schema).await,
            Statement::ShowViews {
                materialized: true,
                show_options,
                ..
            } => {
                let target = match &show_options.show_in {
                    Some(ShowStatementIn {
                        parent_name: Some(name),
                        ..
                    }) => object_name_parts(name)?.pop().unwrap_or_default(),
                    _ => schema.to_string(),
                };
                self.show_mvs(&target, show_options)
            }
            Statement::Flush { .. } => {
                self.flush().await?;
                Ok(Outcome::command("FLUSH"))
            }
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

    /// Runs a plan from `plan`, after any parameters have been bound.
    pub async fn execute_plan(
        &self,
        plan: LogicalPlan,
        txn: Option<&mut Transaction>,
    ) -> Result<Outcome> {
        self.execute_plan_returning(plan, None, txn).await
    }

    /// `execute_plan` of a DML plan whose statement had a RETURNING
    /// (`sql::returning`, taken off before planning).
    pub async fn execute_plan_returning(
        &self,
        plan: LogicalPlan,
        returning: Option<&crate::sql::returning::Returning>,
        txn: Option<&mut Transaction>,
    ) -> Result<Outcome> {
        if let LogicalPlan::Dml(dml) = &plan {
            return self.execute_dml(dml, returning, txn).await;
        }
        let state = self.state_for(&plan, txn.as_deref());
        let frame = DataFrame::new(state, plan);
        let logical = frame.schema().as_arrow().clone();
        let rows = frame.execute_stream().await?;
        let schema = with_types_of(&logical, &rows.schema());
        Ok(Outcome::Rows { schema, rows })
    }

    /// The columns a plan's rows will have, before it runs (for Describe).
    /// A plan straight from the SQL planner has not been through type
    /// coercion yet, and its types can differ from the rows' (a CASE of an
    /// integer and a numeric is an integer there, numeric after): the
    /// analyzed plan's are the rows'. A plan the analyzer refuses keeps its
    /// own; running it will report why.
    pub fn result_schema(&self, plan: &LogicalPlan) -> SchemaRef {
        let state = self.ctx.state();
        let analyzed =
            state
                .analyzer()
                .execute_and_check(plan.clone(), state.config_options(), |_, _| {});
        let logical = plan.schema().as_arrow();
        match analyzed {
            Ok(analyzed) => with_types_of(logical, analyzed.schema().as_arrow()),
            Err(_) => Arc::new(logical.clone()),
        }
    }

    /// The session state a plan runs in: one published epoch for every MV
    /// and table it reads if it reads any MV, and the transaction's own view
    /// of the tables it wrote.
    fn state_for(&self, plan: &LogicalPlan, txn: Option<&Transaction>) -> SessionState {
        self.state_for_writer(plan, txn, None)
    }

    /// `state_for` a DML statement that writes `target` under its writer
    /// lock (see `WriterView`).
    fn state_for_writer(
        &self,
        plan: &LogicalPlan,
        txn: Option<&Transaction>,
        target: Option<TableId>,
    ) -> SessionState {
        let state = self.ctx.state();
        let reads_mv = Self::reads_mv(plan);
        let own = txn.map(Transaction::view).filter(|v| !v.is_empty());
        if !reads_mv && own.is_none() && target.is_none() {
            return state;
        }
        let mut config = state.config().clone();
        if let Some(target) = target {
            config = config.with_extension(Arc::new(WriterView(target)));
        }
        if reads_mv {
            config = config.with_extension(Arc::new(ReadEpoch(self.runtime.published())));
        }
        if let Some(own) = own {
            config = config.with_extension(Arc::new(TxnView(own)));
        }
        SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build()
    }

    /// COMMIT: every change of the transaction, atomically, in one epoch.
    pub async fn commit_transaction(&self, txn: Transaction) -> Result<()> {
        if txn.is_empty() {
            return Ok(());
        }
        let (changes, guards) = txn.into_changes();
        self.commit_changes(changes, guards).await
    }

    fn show_tables(&self, options: &ShowStatementOptions, search_schema: &str) -> Result<Outcome> {
        let schema = match &options.show_in {
            Some(ShowStatementIn {
                parent_name: Some(name),
                ..
            }) => object_name_parts(name)?.pop().unwrap_or_default(),
            _ => search_schema.to_string(),
        };
        let batch = query::show::tables(
            &self.catalog.read().expect("catalog lock poisoned"),
            &schema,
            options,
        )?;
        Ok(Outcome::batches(batch.schema(), vec![batch]))
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
        let batch = query::show::columns(&def)?;
        Ok(Outcome::batches(batch.schema(), vec![batch]))
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
}

/// DataFusion's catalogs refer to each other (information_schema and
/// pg_catalog hold the catalog list), so they are never freed by reference
/// counting alone: on close the runtime is stopped and our schemas are
/// taken out of them, which frees the tables and views.
impl Drop for Database {
    fn drop(&mut self) {
        self.runtime.stop();
        if let Some(catalog) = self.ctx.catalog(query::DATABASE_NAME) {
            for schema in catalog.schema_names() {
                let _ = catalog.deregister_schema(&schema, true);
            }
        }
    }
}

/// `logical`'s columns (names and declared types in metadata) with the
/// data types of `actual`, the schema the rows really have.
fn with_types_of(logical: &Schema, actual: &Schema) -> SchemaRef {
    if logical.fields().len() != actual.fields().len() {
        return Arc::new(actual.clone());
    }
    let fields: Vec<Field> = logical
        .fields()
        .iter()
        .zip(actual.fields())
        .map(|(l, a)| {
            if l.data_type() == a.data_type() {
                l.as_ref().clone()
            } else {
                l.as_ref().clone().with_data_type(a.data_type().clone())
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(
        fields,
        logical.metadata().clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|name| name.trim() == "freshet-epochs")
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Every dataflow holds what it needs without holding the database: when
    /// the database goes, its epoch runtime stops and frees the MV state.
    #[tokio::test]
    async fn a_dropped_database_stops_its_runtime() {
        let before = epoch_threads();
        let db = Database::open(Store::in_memory().unwrap(), Duration::from_millis(10), None)
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE t (k int, v int)",
            "INSERT INTO t VALUES (1, 2), (1, 3)",
            "CREATE MATERIALIZED VIEW m AS SELECT k, avg(v) AS a, count(*) AS n FROM t GROUP BY k",
            "CREATE MATERIALIZED VIEW m2 AS SELECT m.k, m.a, t.v FROM m JOIN t ON m.k = t.k",
        ] {
            let statement = crate::sql::parse(sql).unwrap().remove(0);
            db.execute(&statement, &Scope::new(DEFAULT_SCHEMA), None)
                .await
                .unwrap();
        }
        assert_eq!(epoch_threads(), before + 1);
        drop(db);
        for _ in 0..100 {
            if epoch_threads() == before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the epoch runtime outlived its database");
    }
}
