//! Materialized views: CREATE (plan, persist, backfill), DROP, EXPLAIN,
//! FLUSH and the listing, and their rebuild at start.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::SessionState;
use datafusion::sql::sqlparser::ast::{CreateView, ObjectName, Query, Statement};
use tokio::sync::oneshot;

use super::*;
use crate::catalog::{Dependent, MvDef, MvId, Object, ViewId};
use crate::error::{Error, Result};
use crate::plan::{self, StreamPlan};
use crate::query::MvTable;
use crate::state::MvIndex;
use crate::stream::runtime::Message;
use crate::stream::zset::nullable;

/// The names of a view's output columns: those of its column list first,
/// then PostgreSQL's for the query's select list, then DataFusion's.
pub(super) fn column_names(
    statement: &Statement,
    fields: &datafusion::arrow::datatypes::Fields,
    columns: &[String],
    kind: &str,
) -> Result<Vec<String>> {
    if columns.len() > fields.len() {
        let message = match kind {
            "VIEW" => "CREATE VIEW specifies more column names than columns".to_string(),
            _ => format!("CREATE {kind} specifies too many column names"),
        };
        return Err(Error::Syntax {
            message,
            position: None,
        });
    }
    let names = crate::sql::output_names(statement, fields.len());
    let mut chosen: Vec<String> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let name = columns
            .get(i)
            .cloned()
            .or_else(|| names.as_ref().and_then(|n| n[i].clone()))
            .unwrap_or_else(|| field.name().clone());
        if chosen.contains(&name) {
            return Err(Error::DuplicateColumn(name));
        }
        chosen.push(name);
    }
    Ok(chosen)
}

/// Whether the query has INTERSECT ALL or EXCEPT ALL. DataFusion plans
/// them as semi and anti joins on all columns with NULLs equal, which the
/// engine then maintains counting copies (min(m, n), max(m - n, 0)). A
/// subquery predicate (EXISTS, IN) could plan a join of the same shape with
/// the other meaning, so the two are not mixed in one view.
fn multiset_set_operations(statement: &Statement) -> Result<bool> {
    use datafusion::sql::sqlparser::ast::{
        Expr as SqlExpr, SetExpr, SetOperator, SetQuantifier, Visit, Visitor,
    };
    #[derive(Default)]
    struct Finder {
        all: bool,
        subquery: bool,
    }
    fn walk(body: &SetExpr) -> bool {
        match body {
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                (matches!(set_quantifier, SetQuantifier::All)
                    && matches!(
                        op,
                        SetOperator::Intersect | SetOperator::Except | SetOperator::Minus
                    ))
                    || walk(left)
                    || walk(right)
            }
            _ => false,
        }
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> std::ops::ControlFlow<()> {
            self.all |= walk(&query.body);
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &SqlExpr) -> std::ops::ControlFlow<()> {
            self.subquery |= matches!(
                expr,
                SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } | SqlExpr::Subquery(_)
            );
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut finder = Finder::default();
    let _ = statement.visit(&mut finder);
    if finder.all && finder.subquery {
        return Err(Error::NotIncremental(
            "INTERSECT ALL or EXCEPT ALL together with a subquery predicate is not supported in a materialized view yet".into(),
        ));
    }
    Ok(finder.all)
}

impl Database {
    /// A session state whose unqualified names resolve in `schema`.
    pub(super) fn state_in(&self, schema: &str) -> SessionState {
        let mut state = self.ctx.state();
        state.config_mut().options_mut().catalog.default_schema = schema.to_string();
        state
    }

    /// Plans the query of an MV as a dataflow, with the output columns named
    /// as PostgreSQL names them.
    /// `columns` renames the first output columns (`CREATE MATERIALIZED VIEW
    /// m (a, b) AS ...`).
    async fn plan_mv(
        &self,
        query: &Query,
        columns: &[String],
        search_schema: &str,
    ) -> Result<(StreamPlan, SchemaRef, Vec<ViewId>)> {
        let statement = Statement::Query(Box::new(query.clone()));
        let multiset = multiset_set_operations(&statement)?;
        let logical = self
            .plan(&statement, &super::Scope::new(search_schema))
            .await?;
        let views = self
            .reads_of(&statement, search_schema)
            .into_iter()
            .filter_map(|read| match read {
                Object::View(id) => Some(id),
                _ => None,
            })
            .collect();
        let stream = plan::build(&logical, &self.state_in(search_schema), multiset).await?;
        let names = column_names(
            &statement,
            stream.schema.fields(),
            columns,
            "MATERIALIZED VIEW",
        )?;
        let fields: Vec<Field> = stream
            .schema
            .fields()
            .iter()
            .zip(names)
            .map(|(field, name)| field.as_ref().clone().with_name(name))
            .collect();
        let schema = nullable(&Arc::new(Schema::new(fields)));
        Ok((stream, schema, views))
    }

    pub(super) async fn create_mv(
        &self,
        view: &CreateView,
        search_schema: &str,
    ) -> Result<Outcome> {
        if view.or_replace || view.or_alter {
            return Err(Error::NotSupported(
                "CREATE OR REPLACE MATERIALIZED VIEW is not supported: drop the view and create it again"
                    .into(),
            ));
        }
        let (schema, name) = self.resolve_name(&view.name, search_schema)?;
        let _ddl = self.ddl.lock().await;
        let exists = {
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            catalog.object(&schema, &name).is_some()
        };
        if exists {
            if view.if_not_exists {
                notice::exists_skipping("relation", &name);
                return Ok(Outcome::command("CREATE MATERIALIZED VIEW"));
            }
            return Err(Error::DuplicateTable(name));
        }
        let names: Vec<String> = view
            .columns
            .iter()
            .map(|c| crate::sql::ident_name(&c.name))
            .collect();
        let (stream, columns, views) = self.plan_mv(&view.query, &names, search_schema).await?;
        let def = MvDef {
            id: MvId(self.store.next_id()?),
            schema,
            name,
            sql: view.query.to_string(),
            search_schema: search_schema.to_string(),
            columns: names,
            inputs: stream.inputs.clone(),
            views,
        };
        let def = self
            .catalog
            .write()
            .expect("catalog lock poisoned")
            .create_mv(def)?;
        if let Err(e) = self.launch_mv(&def, stream, columns).await {
            self.forget_mv(&def);
            return Err(e);
        }
        self.store.flush().await?;
        self.catalog_changed();
        // PostgreSQL answers with the rows the view was built with.
        let rows = self
            .runtime
            .status()
            .get(&def.id)
            .map_or(0, |status| status.rows);
        Ok(Outcome::Command {
            tag: "SELECT".into(),
            rows: Some(rows),
        })
    }

    /// Rebuilds a persisted MV at start.
    pub(super) async fn start_mv(&self, def: &Arc<MvDef>) -> Result<()> {
        let statement = crate::sql::parse(&def.sql)?;
        let Some(Statement::Query(query)) = statement.into_iter().next() else {
            return Err(Error::Internal(format!(
                "the stored query of \"{}\" is not a query",
                def.name
            )));
        };
        let (stream, columns, _) = self
            .plan_mv(&query, &def.columns, &def.search_schema)
            .await?;
        self.launch_mv(def, stream, columns).await
    }

    /// Registers the MV for queries and hands its dataflow to the runtime,
    /// which backfills it before answering.
    async fn launch_mv(
        &self,
        def: &Arc<MvDef>,
        stream: StreamPlan,
        columns: SchemaRef,
    ) -> Result<()> {
        let index = match &stream.key {
            Some(key) => Some(Arc::new(MvIndex::try_new(&columns, key.clone())?)),
            None => None,
        };
        let provider = MvTable::new(
            def.id,
            def.name.clone(),
            columns.clone(),
            self.runtime.clone(),
            index.clone(),
        );
        self.schema_provider(&def.schema)?
            .register_table(def.name.clone(), Arc::new(provider))?;
        let (reply, answer) = oneshot::channel();
        {
            let _turn = self.sequencer.turn().await;
            self.runtime
                .send(Message::CreateMv {
                    id: def.id,
                    name: def.name.clone(),
                    dataflow: Box::new(stream.root),
                    schema: columns,
                    inputs: stream.inputs,
                    index,
                    reply,
                })
                .await?;
        }
        answer
            .await
            .map_err(|_| Error::Internal("the epoch runtime has stopped".into()))??;
        Ok(())
    }

    /// Removes an MV from the catalog, DataFusion and the runtime.
    fn forget_mv(&self, def: &MvDef) {
        let _ = self
            .catalog
            .write()
            .expect("catalog lock poisoned")
            .drop_mv(&def.schema, &def.name);
        if let Ok(schema) = self.schema_provider(&def.schema) {
            let _ = schema.deregister_table(&def.name);
        }
    }

    pub(super) async fn drop_mvs(
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
            match catalog.mv(&schema, &view) {
                Some(def) => targets.push((def.id, format!("materialized view {view}"))),
                None if catalog.object(&schema, &view).is_some() => {
                    return Err(Error::WrongObjectType(format!(
                        "\"{view}\" is not a materialized view"
                    )));
                }
                None if if_exists => notice::missing_skipping("materialized view", &view),
                None => return Err(Error::UndefinedTable(view)),
            }
        }
        if !cascade {
            for (id, what) in &targets {
                self.refuse_dependents(Object::Mv(*id), what)?;
            }
        }
        for (id, what) in targets {
            self.drop_relation(Object::Mv(id), &what, cascade).await?;
        }
        self.store.flush().await?;
        Ok(Outcome::command("DROP MATERIALIZED VIEW"))
    }

    /// 2BP01 if an MV or a view names `object`.
    pub(super) fn refuse_dependents(&self, object: Object, what: &str) -> Result<()> {
        let dependents = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .dependents_of(object);
        refuse(&dependents, what)
    }

    /// Drops the MVs and views that name `object` (all of them, deepest
    /// first, with CASCADE; refuses with 2BP01 otherwise), then `object`
    /// itself if it is an MV or a view. Tables are dropped by the caller.
    pub(super) async fn drop_relation(
        &self,
        object: Object,
        what: &str,
        cascade: bool,
    ) -> Result<()> {
        let dependents = self
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .dependents_of(object);
        if !cascade {
            refuse(&dependents, what)?;
        }
        for dependent in dependents {
            let object = match &dependent {
                Dependent::Mv(def) => Object::Mv(def.id),
                Dependent::View(def) => Object::View(def.id),
            };
            Box::pin(self.drop_relation(object, &dependent.describe(), true)).await?;
        }
        // A diamond reaches a dependent twice: the second time it is gone.
        let (mv, view) = {
            let catalog = self.catalog.read().expect("catalog lock poisoned");
            (
                catalog
                    .mvs()
                    .into_iter()
                    .find(|m| Object::Mv(m.id) == object),
                catalog
                    .views()
                    .into_iter()
                    .find(|v| Object::View(v.id) == object),
            )
        };
        if let Some(def) = view {
            self.forget_view(&def);
        }
        if let Some(def) = mv {
            self.forget_mv(&def);
            let _turn = self.sequencer.turn().await;
            self.runtime.send(Message::DropMv { id: def.id }).await?;
        }
        self.catalog_changed();
        Ok(())
    }

    /// EXPLAIN CREATE MATERIALIZED VIEW: the dataflow, one operator a line.
    pub(super) async fn explain_mv(
        &self,
        view: &CreateView,
        search_schema: &str,
    ) -> Result<Outcome> {
        let (stream, _, _) = self.plan_mv(&view.query, &[], search_schema).await?;
        let lines = stream.root.explain();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "QUERY PLAN",
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(lines))])?;
        Ok(Outcome::batches(schema, vec![batch]))
    }

    /// How often epochs run when nobody calls FLUSH; for every session.
    pub fn set_epoch_interval(&self, interval: std::time::Duration) {
        self.runtime.set_interval(interval);
    }

    pub fn set_backfill_rate_limit(&self, rows: Option<u64>) {
        self.runtime.set_backfill_rate_limit(rows);
    }

    pub fn epoch_interval(&self) -> std::time::Duration {
        self.runtime.interval()
    }

    /// The epoch interval the server started with (`--epoch-interval-ms`).
    pub fn default_epoch_interval(&self) -> std::time::Duration {
        self.runtime.started_interval()
    }

    pub fn backfill_rate_limit(&self) -> Option<u64> {
        self.runtime.backfill_rate_limit()
    }

    /// Returns once every change acknowledged before it is visible in every MV.
    pub async fn flush(&self) -> Result<()> {
        self.runtime.flush().await?;
        Ok(())
    }

    pub(super) fn show_mvs(
        &self,
        schema: &str,
        options: &datafusion::sql::sqlparser::ast::ShowStatementOptions,
    ) -> Result<Outcome> {
        let batch = crate::query::show::mvs(
            &self.catalog.read().expect("catalog lock poisoned"),
            schema,
            options,
        )?;
        Ok(Outcome::batches(batch.schema(), vec![batch]))
    }

    /// Whether a plan reads any MV: such a query reads one published epoch.
    pub(super) fn reads_mv(plan: &LogicalPlan) -> bool {
        let mut found = false;
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
                && provider.downcast_ref::<MvTable>().is_some()
            {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        found
    }
}

/// 2BP01 naming each of `dependents`, if there are any, as depending on
/// `what`.
fn refuse(dependents: &[Dependent], what: &str) -> Result<()> {
    if dependents.is_empty() {
        return Ok(());
    }
    let detail = dependents
        .iter()
        .map(|d| format!("{} depends on {what}", d.describe()))
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::DependentObjects {
        what: what.to_string(),
        detail,
    })
}
