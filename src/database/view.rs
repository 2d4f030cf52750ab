//! Plain views: CREATE [OR REPLACE] VIEW and DROP VIEW.
//!
//! A view is registered with DataFusion as a `ViewTable` over its planned
//! query, so any read inlines the query over the relations as they are at
//! that read. The plan binds the relations it names, so a view is planned
//! again whenever something it reads is replaced (CREATE OR REPLACE of a
//! view below it) and at every start.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::catalog::view::ViewTable;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{
    CreateView, ObjectName, Query, SelectItem, SetExpr, Statement, Visit, Visitor,
};

use super::*;
use crate::catalog::{Dependent, Object, ViewDef, ViewId};
use crate::error::{Error, Result};

impl Database {
    pub(super) async fn create_view(
        &self,
        view: &CreateView,
        search_schema: &str,
    ) -> Result<Outcome> {
        if view.if_not_exists {
            return Err(Error::Syntax {
                message: "syntax error at or near \"NOT\": CREATE VIEW has no IF NOT EXISTS".into(),
                position: None,
            });
        }
        let (schema, name) = self.resolve_name(&view.name, search_schema)?;
        let _ddl = self.ddl.lock().await;
        let replaced = {
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            match catalog.object(&schema, &name) {
                None => None,
                Some(Object::View(_)) if view.or_replace => catalog.view(&schema, &name).cloned(),
                Some(Object::View(_)) => return Err(Error::DuplicateTable(name)),
                Some(_) if view.or_replace => {
                    return Err(Error::WrongObjectType(format!("\"{name}\" is not a view")));
                }
                Some(_) => return Err(Error::DuplicateTable(name)),
            }
        };
        let columns: Vec<String> = view
            .columns
            .iter()
            .map(|c| crate::sql::ident_name(&c.name))
            .collect();
        let statement = Statement::Query(view.query.clone());
        let plan = self.view_plan(&statement, &columns, search_schema).await?;
        let reads = self.reads_of(&statement, search_schema);
        if let Some(old) = &replaced {
            self.check_replacement(old, &plan).await?;
        }
        let def = ViewDef {
            id: match &replaced {
                Some(old) => old.id,
                None => ViewId(self.store.next_id()?),
            },
            schema,
            name,
            sql: view.query.to_string(),
            search_schema: search_schema.to_string(),
            columns,
            reads,
        };
        let def = self
            .catalog
            .write()
            .expect("catalog lock poisoned")
            .put_view(def)?;
        self.register_view(&def, plan)?;
        if replaced.is_some() {
            self.replan_views_over(Object::View(def.id)).await?;
        }
        self.store.flush().await?;
        self.catalog_changed();
        Ok(Outcome::command("CREATE VIEW"))
    }

    /// The view's query planned, its output columns renamed as the view
    /// names them (the column list first, then PostgreSQL's names).
    async fn view_plan(
        &self,
        statement: &Statement,
        columns: &[String],
        search_schema: &str,
    ) -> Result<LogicalPlan> {
        // DataFusion refuses a select list with two equal aliases in words
        // of its own; PostgreSQL's answer for a view is 42701.
        if let Statement::Query(query) = statement
            && let SetExpr::Select(select) = query.body.as_ref()
        {
            let mut seen: Vec<String> = Vec::new();
            for (i, item) in select.projection.iter().enumerate() {
                let given = match item {
                    SelectItem::ExprWithAlias { alias, .. } => Some(crate::sql::ident_name(alias)),
                    _ => None,
                };
                if let Some(name) = columns.get(i).cloned().or(given) {
                    if seen.contains(&name) {
                        return Err(Error::DuplicateColumn(name));
                    }
                    seen.push(name);
                }
            }
        }
        let plan = self
            .plan(statement, &super::Scope::new(search_schema))
            .await?;
        let names = super::mv::column_names(statement, plan.schema().fields(), columns, "VIEW")?;
        let renamed: Vec<Expr> = plan
            .schema()
            .iter()
            .zip(names)
            .map(|((qualifier, field), name)| {
                Expr::Column(Column::new(qualifier.cloned(), field.name())).alias(name)
            })
            .collect();
        Ok(LogicalPlanBuilder::from(plan).project(renamed)?.build()?)
    }

    /// What the query names directly. DataFusion inlines a view's plan
    /// when it plans a scan of it, so this reads the SQL, not the plan; a
    /// name a CTE of the query defines is not a relation.
    pub(super) fn reads_of(&self, statement: &Statement, search_schema: &str) -> Vec<Object> {
        let mut found = Names::default();
        let _ = statement.visit(&mut found);
        let catalog = self.catalog.read().expect("catalog lock poisoned");
        let mut reads: Vec<Object> = found
            .relations
            .iter()
            .filter(|name| {
                let parts = crate::sql::object_name_parts(name).unwrap_or_default();
                !(parts.len() == 1 && found.ctes.contains(&parts[0]))
            })
            .filter_map(|name| {
                let (schema, table) = self.resolve_name(name, search_schema).ok()?;
                catalog.object(&schema, &table)
            })
            .collect();
        reads.sort();
        reads.dedup();
        reads
    }

    /// PostgreSQL's rule for CREATE OR REPLACE VIEW: the old columns stay,
    /// with their names and types, in their order; new ones may follow.
    /// A materialized view keeps the query it was built with, so a view one
    /// reads cannot change under it.
    async fn check_replacement(&self, old: &ViewDef, plan: &LogicalPlan) -> Result<()> {
        let mvs: Vec<String> = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .dependents_of(Object::View(old.id))
            .into_iter()
            .filter_map(|d| match d {
                Dependent::Mv(def) => Some(def.name.clone()),
                Dependent::View(_) => None,
            })
            .collect();
        if let Some(mv) = mvs.first() {
            return Err(Error::NotSupported(format!(
                "cannot replace view {}: materialized view {mv} depends on it",
                old.name
            )));
        }
        let statement = stored_query(&old.sql, &old.name)?;
        let before = self
            .view_plan(&statement, &old.columns, &old.search_schema)
            .await?;
        let (before, after) = (before.schema().fields(), plan.schema().fields());
        if after.len() < before.len() {
            return Err(Error::InvalidDefinition(
                "cannot drop columns from view".into(),
            ));
        }
        for (old_field, new_field) in before.iter().zip(after.iter()) {
            if old_field.name() != new_field.name() {
                return Err(Error::InvalidDefinition(format!(
                    "cannot change name of view column \"{}\" to \"{}\"",
                    old_field.name(),
                    new_field.name()
                )));
            }
            if old_field.data_type() != new_field.data_type() {
                let name = |field: &datafusion::arrow::datatypes::Field| {
                    arrow_pg::datatypes::into_pg_type(field.data_type())
                        .map(|t| t.name().to_string())
                        .unwrap_or_else(|_| field.data_type().to_string())
                };
                return Err(Error::InvalidDefinition(format!(
                    "cannot change data type of view column \"{}\" from {} to {}",
                    old_field.name(),
                    name(old_field),
                    name(new_field)
                )));
            }
        }
        Ok(())
    }

    fn register_view(&self, def: &ViewDef, plan: LogicalPlan) -> Result<()> {
        let provider = self.schema_provider(&def.schema)?;
        provider.deregister_table(&def.name)?;
        let table = ViewTable::new(plan, Some(def.sql.clone()));
        provider.register_table(def.name.clone(), Arc::new(table))?;
        Ok(())
    }

    /// Plans a stored view again and registers it (at start, and when a
    /// view below it was replaced).
    pub(super) async fn start_view(&self, def: &ViewDef) -> Result<()> {
        let statement = stored_query(&def.sql, &def.name)?;
        let plan = self
            .view_plan(&statement, &def.columns, &def.search_schema)
            .await?;
        self.register_view(def, plan)
    }

    /// The views over `object`, transitively, planned again in creation
    /// order (a view after the views it reads).
    async fn replan_views_over(&self, object: Object) -> Result<()> {
        let mut pending = vec![object];
        let mut found: Vec<Arc<ViewDef>> = Vec::new();
        while let Some(object) = pending.pop() {
            let dependents = self
                .catalog
                .read()
                .expect("catalog lock poisoned")
                .dependents_of(object);
            for dependent in dependents {
                if let Dependent::View(def) = dependent
                    && !found.iter().any(|f| f.id == def.id)
                {
                    pending.push(Object::View(def.id));
                    found.push(def);
                }
            }
        }
        found.sort_by_key(|d| d.id);
        for def in found {
            self.start_view(&def).await?;
        }
        Ok(())
    }

    pub(super) async fn drop_views(
        &self,
        names: &[ObjectName],
        if_exists: bool,
        cascade: bool,
        search_schema: &str,
    ) -> Result<Outcome> {
        let _ddl = self.ddl.lock().await;
        // Every name is checked first: a statement that fails drops nothing.
        let mut targets = Vec::with_capacity(names.len());
        for name in names {
            let (schema, view) = self.resolve_name(name, search_schema)?;
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            match catalog.object(&schema, &view) {
                Some(Object::View(id)) => targets.push((id, format!("view {view}"))),
                Some(_) => {
                    return Err(Error::WrongObjectType(format!("\"{view}\" is not a view")));
                }
                None if if_exists => notice::missing_skipping("view", &view),
                None => {
                    return Err(Error::DropMissing {
                        kind: "view",
                        name: view,
                    });
                }
            }
        }
        if !cascade {
            for (id, what) in &targets {
                self.refuse_dependents(Object::View(*id), what)?;
            }
        }
        for (id, what) in targets {
            self.drop_relation(Object::View(id), &what, cascade).await?;
        }
        self.store.flush().await?;
        Ok(Outcome::command("DROP VIEW"))
    }

    /// Removes a view from the catalog and DataFusion.
    pub(super) fn forget_view(&self, def: &ViewDef) {
        let _ = self
            .catalog
            .write()
            .expect("catalog lock poisoned")
            .drop_view(&def.schema, &def.name);
        if let Ok(schema) = self.schema_provider(&def.schema) {
            let _ = schema.deregister_table(&def.name);
        }
    }
}

/// The relation names of a query and the names its CTEs define.
#[derive(Default)]
struct Names {
    relations: Vec<ObjectName>,
    ctes: Vec<String>,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.ctes.extend(
                with.cte_tables
                    .iter()
                    .map(|c| crate::sql::ident_name(&c.alias.name)),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.relations.push(relation.clone());
        ControlFlow::Continue(())
    }
}

/// A stored view's query, parsed again.
fn stored_query(sql: &str, name: &str) -> Result<Statement> {
    match crate::sql::parse(sql)?.into_iter().next() {
        Some(statement @ Statement::Query(_)) => Ok(statement),
        _ => Err(Error::Internal(format!(
            "the stored query of view \"{name}\" is not a query"
        ))),
    }
}
