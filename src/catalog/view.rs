//! Plain views: a name for a query, planned again wherever it is read.
//!
//! A view keeps no data. What the catalog keeps is its SQL and what it
//! reads, so that DROP can refuse (2BP01) or cascade as PostgreSQL does,
//! and so that a replaced view can be planned again in the views over it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Catalog, MvDef, MvId, TableId, VIEW_PREFIX};
use crate::error::{Error, Result};

/// Drawn from the same sequence as table and MV ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ViewId(pub u64);

/// Anything a view's query can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Object {
    Table(TableId),
    Mv(MvId),
    View(ViewId),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Table(id) => write!(f, "table {id}"),
            Object::Mv(id) => write!(f, "materialized view {}", id.0),
            Object::View(id) => write!(f, "view {}", id.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub id: ViewId,
    pub schema: String,
    pub name: String,
    /// The defining query, as SQL text.
    pub sql: String,
    /// Where unqualified names in `sql` resolved when it was created.
    pub search_schema: String,
    /// Names given in `CREATE VIEW v (a, b)`, for the first output columns.
    pub columns: Vec<String>,
    /// What the query names directly.
    pub reads: Vec<Object>,
}

/// Something that depends on an object and goes with it under CASCADE.
#[derive(Debug, Clone)]
pub enum Dependent {
    Mv(Arc<MvDef>),
    View(Arc<ViewDef>),
}

impl Dependent {
    /// As PostgreSQL names it in a 2BP01 detail: `view v`.
    pub fn describe(&self) -> String {
        match self {
            Dependent::Mv(def) => format!("materialized view {}", def.name),
            Dependent::View(def) => format!("view {}", def.name),
        }
    }

    fn id(&self) -> u64 {
        match self {
            Dependent::Mv(def) => def.id.0,
            Dependent::View(def) => def.id.0,
        }
    }
}

impl Catalog {
    pub fn view(&self, schema: &str, name: &str) -> Option<&Arc<ViewDef>> {
        self.views.get(&(schema.to_string(), name.to_string()))
    }

    /// Every view, in creation order.
    pub fn views(&self) -> Vec<Arc<ViewDef>> {
        let mut all: Vec<Arc<ViewDef>> = self.views.values().cloned().collect();
        all.sort_by_key(|v| v.id);
        all
    }

    /// Creates the view, or replaces the one of that name
    /// (`CREATE OR REPLACE`, checked by the caller).
    pub fn put_view(&mut self, def: ViewDef) -> Result<Arc<ViewDef>> {
        if !self.schemas.contains(&def.schema) {
            return Err(Error::UndefinedSchema(def.schema));
        }
        let key = (def.schema.clone(), def.name.clone());
        if self.tables.contains_key(&key) || self.mvs.contains_key(&key) {
            return Err(Error::DuplicateTable(def.name));
        }
        self.put(&format!("{VIEW_PREFIX}{}", def.id.0), &def)?;
        let def = Arc::new(def);
        self.views.insert(key, def.clone());
        Ok(def)
    }

    pub fn drop_view(&mut self, schema: &str, name: &str) -> Result<Arc<ViewDef>> {
        let key = (schema.to_string(), name.to_string());
        let def = self
            .views
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        self.store
            .remove_catalog(&format!("{VIEW_PREFIX}{}", def.id.0))?;
        self.views.remove(&key);
        Ok(def)
    }

    /// The MVs and views that name `object` directly, oldest first.
    pub fn dependents_of(&self, object: Object) -> Vec<Dependent> {
        let mut found: Vec<Dependent> = self
            .mvs
            .values()
            .filter(|m| match object {
                Object::Table(id) => m.inputs.contains(&super::Relation::Table(id)),
                Object::Mv(id) => m.inputs.contains(&super::Relation::Mv(id)),
                Object::View(id) => m.views.contains(&id),
            })
            .map(|m| Dependent::Mv(m.clone()))
            .chain(
                self.views
                    .values()
                    .filter(|v| v.reads.contains(&object))
                    .map(|v| Dependent::View(v.clone())),
            )
            .collect();
        found.sort_by_key(Dependent::id);
        found
    }

    /// What a name in `schema` is, if anything.
    pub fn object(&self, schema: &str, name: &str) -> Option<Object> {
        let key = (schema.to_string(), name.to_string());
        if let Some(t) = self.tables.get(&key) {
            return Some(Object::Table(t.id));
        }
        if let Some(m) = self.mvs.get(&key) {
            return Some(Object::Mv(m.id));
        }
        self.views.get(&key).map(|v| Object::View(v.id))
    }
}
