//! DDL: schemas and tables created and dropped, in the catalog, the store
//! and DataFusion's view of them.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_plan::common::collect;
use datafusion::sql::sqlparser::ast::{CreateTable, Ident, ObjectName, SchemaName, Statement};

use super::*;
use crate::catalog::Object;
use crate::catalog::{TableDef, TableId};
use crate::catalog::{columns_from_schema, table_columns};
use crate::error::{Error, Result};
use crate::sql::{ident_name, object_name_parts};
use crate::state::TableData;
use crate::stream::runtime::Message;

impl Database {
    pub(super) async fn create_schema(
        &self,
        name: &SchemaName,
        if_not_exists: bool,
    ) -> Result<Outcome> {
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
                notice::exists_skipping("schema", &name);
                return Ok(Outcome::command("CREATE SCHEMA"));
            }
            catalog.create_schema(&name)?;
        }
        self.register_schema(&name)?;
        self.catalog_changed();
        self.store.flush().await?;
        Ok(Outcome::command("CREATE SCHEMA"))
    }

    /// DROP SCHEMA: with CASCADE its views, MVs and tables go first (and
    /// what depends on them elsewhere), each as its own DROP would; without
    /// it a schema that holds anything is refused (2BP01). The system
    /// schemas cannot be dropped.
    pub(super) async fn drop_schemas(
        &self,
        names: &[ObjectName],
        if_exists: bool,
        cascade: bool,
    ) -> Result<Outcome> {
        let mut schemas = Vec::with_capacity(names.len());
        for name in names {
            schemas.push(object_name_parts(name)?.pop().unwrap_or_default());
        }
        // Every name is checked before anything is dropped.
        for schema in &schemas {
            if matches!(
                schema.as_str(),
                "pg_catalog" | "information_schema" | "freshet_catalog"
            ) {
                return Err(Error::Data {
                    code: "2BP01",
                    message: format!(
                        "cannot drop schema {schema} because it is required by the database system"
                    ),
                });
            }
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            if !catalog.has_schema(schema) {
                if !if_exists {
                    return Err(Error::UndefinedSchema(schema.clone()));
                }
                continue;
            }
            let holds_anything = catalog.tables_in(schema).next().is_some()
                || catalog.mvs_in(schema).next().is_some()
                || catalog.views().iter().any(|v| &v.schema == schema);
            if holds_anything && !cascade {
                let detail = catalog
                    .tables_in(schema)
                    .map(|t| format!("table {schema}.{}", t.name))
                    .chain(
                        catalog
                            .views()
                            .iter()
                            .filter(|v| &v.schema == schema)
                            .map(|v| format!("view {schema}.{}", v.name)),
                    )
                    .chain(
                        catalog
                            .mvs_in(schema)
                            .map(|m| format!("materialized view {schema}.{}", m.name)),
                    )
                    .map(|object| format!("{object} depends on schema {schema}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(Error::DependentObjects {
                    what: format!("schema {schema}"),
                    detail,
                });
            }
        }
        for schema in schemas {
            let contents = {
                let catalog = self.catalog.read().expect("catalog lock poisoned");
                if !catalog.has_schema(&schema) {
                    notice::missing_skipping("schema", &schema);
                    continue;
                }
                let views: Vec<String> = catalog
                    .views()
                    .iter()
                    .filter(|v| v.schema == schema)
                    .map(|v| v.name.clone())
                    .collect();
                let mvs: Vec<String> = catalog.mvs_in(&schema).map(|m| m.name.clone()).collect();
                let tables: Vec<String> =
                    catalog.tables_in(&schema).map(|t| t.name.clone()).collect();
                (views, mvs, tables)
            };
            let (views, mvs, tables) = contents;
            let qualified = |names: &[String]| -> Vec<ObjectName> {
                names
                    .iter()
                    .map(|n| {
                        ObjectName::from(vec![
                            Ident::with_quote('"', schema.clone()),
                            Ident::with_quote('"', n.clone()),
                        ])
                    })
                    .collect()
            };
            let (views, mvs, tables) = (qualified(&views), qualified(&mvs), qualified(&tables));
            // Views and MVs first: dropping a table drops them too, and a
            // name dropped that way is then skipped.
            self.drop_views(&views, true, true, &schema).await?;
            self.drop_mvs(&mvs, true, true, &schema).await?;
            self.drop_tables(&tables, true, true, &schema).await?;
            let _ddl = self.ddl.lock().await;
            self.catalog
                .write()
                .expect("catalog lock poisoned")
                .drop_schema(&schema)?;
            if let Some(catalog) = self.ctx.catalog(crate::query::DATABASE_NAME) {
                let _ = catalog.deregister_schema(&schema, true);
            }
            self.catalog_changed();
        }
        self.store.flush().await?;
        Ok(Outcome::command("DROP SCHEMA"))
    }

    pub(super) async fn create_table(
        &self,
        create: &CreateTable,
        search_schema: &str,
    ) -> Result<Outcome> {
        let (schema, name) = self.resolve_name(&create.name, search_schema)?;
        if create.query.is_some() && !create.columns.is_empty() {
            return Err(Error::NotSupported(
                "CREATE TABLE AS with a column list is not supported".into(),
            ));
        }
        let rows = match &create.query {
            Some(query) => {
                let plan = self
                    .plan(
                        &Statement::Query(query.clone()),
                        &super::Scope::new(search_schema),
                    )
                    .await?;
                match self.execute_plan(plan, None).await? {
                    Outcome::Rows { schema, rows } => Some((schema, collect(rows).await?)),
                    Outcome::Command { .. } | Outcome::Returned { .. } => None,
                }
            }
            None => None,
        };
        let (columns, primary_key) = match &rows {
            Some((schema, _)) => (columns_from_schema(schema)?, Vec::new()),
            None => table_columns(create, &schema, &name)?,
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
            notice::exists_skipping("relation", &name);
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
                state.create_logical_expr(&crate::sql::expression_sql(sql), &DFSchema::empty())?;
            }
        }
        let data = TableData::try_new(&def.arrow_schema(), &def.primary_key)?;
        let def = self
            .catalog
            .write()
            .expect("catalog lock poisoned")
            .create_table(def)?;
        for sequence in def.sequences() {
            self.sequences.create(sequence)?;
        }
        self.register_table(def.clone(), data).await?;
        self.catalog_changed();
        self.store.flush().await?;
        if let Some((_, batches)) = rows {
            let live = self
                .live_by_id(def.id)
                .ok_or_else(|| Error::Internal("a created table is not live".into()))?;
            let guard = live.lock_writer().await?;
            let count = batches.iter().map(RecordBatch::num_rows).sum();
            self.commit(live, guard, Vec::new(), batches).await?;
            return Ok(Outcome::Command {
                tag: "SELECT".into(),
                rows: Some(count),
            });
        }
        Ok(Outcome::command("CREATE TABLE"))
    }

    pub(super) async fn drop_tables(
        &self,
        names: &[ObjectName],
        if_exists: bool,
        cascade: bool,
        search_schema: &str,
    ) -> Result<Outcome> {
        let _ddl = self.ddl.lock().await;
        // Every name is checked before anything is dropped: a statement that
        // fails drops nothing, as in PostgreSQL.
        let mut targets = Vec::with_capacity(names.len());
        for name in names {
            let (schema, table) = self.resolve_name(name, search_schema)?;
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            match catalog.table(&schema, &table) {
                Some(def) => targets.push((schema, table, def.id)),
                None if catalog.object(&schema, &table).is_some() => {
                    return Err(Error::WrongObjectType(format!(
                        "\"{table}\" is not a table"
                    )));
                }
                None if if_exists => notice::missing_skipping("table", &table),
                None => {
                    return Err(Error::DropMissing {
                        kind: "table",
                        name: table,
                    });
                }
            }
        }
        if !cascade {
            for (_, table, id) in &targets {
                self.refuse_dependents(Object::Table(*id), &format!("table {table}"))?;
            }
        }
        for (schema, table, id) in targets {
            // In-flight writes to the table finish first (they hold its
            // writer lock until their change is applied), and no new one
            // starts while it goes: an acknowledged write never lands in a
            // dropped table. A transaction holding the table gets
            // lock_timeout's answer, as it would from its own lock wait.
            let live = self.live_by_id(id);
            let writer = match &live {
                Some(live) => Some(
                    tokio::time::timeout(super::transaction::LOCK_TIMEOUT, live.lock_writer())
                        .await
                        .map_err(|_| Error::LockNotAvailable(table.clone()))??,
                ),
                None => None,
            };
            self.drop_relation(Object::Table(id), &format!("table {table}"), cascade)
                .await?;
            if let Some(live) = &live {
                live.dropped
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            drop(writer);
            let def = self
                .catalog
                .write()
                .expect("catalog lock poisoned")
                .drop_table(&schema, &table)?;
            for sequence in def.sequences() {
                self.sequences.remove(sequence)?;
            }
            {
                let _turn = self.sequencer.turn().await;
                self.runtime
                    .send(Message::Table {
                        table: def.id,
                        snapshot: None,
                    })
                    .await?;
            }
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
}
