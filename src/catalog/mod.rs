//! What exists: schemas, tables with their columns and constraints,
//! materialized views with the relations they read, and plain views.
//!
//! The catalog is small and read on every statement, so it lives in memory
//! and is written through to the store on every change; the caller flushes
//! the store before the DDL statement returns, so a definition a client saw
//! created survives any crash.

mod check;
mod ddl;
pub mod json;
pub mod sequence;
mod types;
mod view;

pub use check::{check_rows, uuid_text};
pub use ddl::{columns_from_schema, table_columns};
pub use sequence::Sequences;
pub use types::{ColumnType, DEFAULT_NUMERIC_SCALE, PG_TYPE_KEY};
pub use view::{Dependent, Object, ViewDef, ViewId};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::Store;

pub const DEFAULT_SCHEMA: &str = "public";

const SCHEMA_PREFIX: &str = "schema/";
const TABLE_PREFIX: &str = "table/";
const MV_PREFIX: &str = "mv/";
const VIEW_PREFIX: &str = "view/";

/// A table's identity for the life of the data directory; names can be
/// dropped and reused, ids never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId(pub u64);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A materialized view's identity; drawn from the same sequence as table
/// ids, so the two never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MvId(pub u64);

/// Something a query can read and a dataflow can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Relation {
    Table(TableId),
    Mv(MvId),
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Relation::Table(id) => write!(f, "table {id}"),
            Relation::Mv(id) => write!(f, "materialized view {}", id.0),
        }
    }
}

/// A materialized view as declared. Its columns come from planning `sql`
/// (again at every start, in `search_schema`), not from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MvDef {
    pub id: MvId,
    pub schema: String,
    pub name: String,
    /// The defining query, as SQL text.
    pub sql: String,
    /// Where unqualified names in `sql` resolved when it was created.
    pub search_schema: String,
    /// Names given in `CREATE MATERIALIZED VIEW m (a, b)`, for the first
    /// output columns.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The tables and MVs the query reads.
    pub inputs: Vec<Relation>,
    /// The plain views the query names (their queries are inlined, so
    /// `inputs` holds what they read).
    #[serde(default)]
    pub views: Vec<ViewId>,
}

impl From<Relation> for Object {
    fn from(relation: Relation) -> Self {
        match relation {
            Relation::Table(id) => Object::Table(id),
            Relation::Mv(id) => Object::Mv(id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub not_null: bool,
    /// The DEFAULT expression as SQL text, planned again at each INSERT.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Positions of the primary-key columns, in key order; empty if none.
    pub primary_key: Vec<usize>,
}

impl TableDef {
    /// The sequences its SERIAL columns draw from.
    pub fn sequences(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter_map(|c| c.default.as_deref().and_then(sequence::drawn_from))
    }

    pub fn arrow_schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| c.ty.field(&c.name, !c.not_null))
                .collect::<Vec<_>>(),
        )
    }

    /// The name PostgreSQL gives the primary-key constraint.
    pub fn primary_key_name(&self) -> String {
        format!("{}_pkey", self.name)
    }
}

pub struct Catalog {
    store: Store,
    schemas: BTreeSet<String>,
    tables: BTreeMap<(String, String), Arc<TableDef>>,
    mvs: BTreeMap<(String, String), Arc<MvDef>>,
    views: BTreeMap<(String, String), Arc<ViewDef>>,
}

impl Catalog {
    /// Reads every definition from the store; creates `public` on first use.
    pub fn load(store: Store) -> Result<Self> {
        let mut catalog = Catalog {
            store,
            schemas: BTreeSet::new(),
            tables: BTreeMap::new(),
            mvs: BTreeMap::new(),
            views: BTreeMap::new(),
        };
        for (key, value) in catalog.store.catalog_entries()? {
            if let Some(name) = key.strip_prefix(SCHEMA_PREFIX) {
                catalog.schemas.insert(name.to_string());
            } else if key.starts_with(TABLE_PREFIX) {
                let def: TableDef = serde_json::from_slice(&value).map_err(|e| {
                    Error::Internal(format!("catalog entry {key} does not decode: {e}"))
                })?;
                catalog
                    .tables
                    .insert((def.schema.clone(), def.name.clone()), Arc::new(def));
            } else if key.starts_with(MV_PREFIX) {
                let def: MvDef = serde_json::from_slice(&value).map_err(|e| {
                    Error::Internal(format!("catalog entry {key} does not decode: {e}"))
                })?;
                catalog
                    .mvs
                    .insert((def.schema.clone(), def.name.clone()), Arc::new(def));
            } else if key.starts_with(VIEW_PREFIX) {
                let def: ViewDef = serde_json::from_slice(&value).map_err(|e| {
                    Error::Internal(format!("catalog entry {key} does not decode: {e}"))
                })?;
                catalog
                    .views
                    .insert((def.schema.clone(), def.name.clone()), Arc::new(def));
            }
        }
        if !catalog.schemas.contains(DEFAULT_SCHEMA) {
            catalog.create_schema(DEFAULT_SCHEMA)?;
        }
        Ok(catalog)
    }

    /// Writes one definition through to the store.
    fn put(&self, key: &str, def: &impl Serialize) -> Result<()> {
        let bytes = serde_json::to_vec(def)
            .map_err(|e| Error::Internal(format!("definition {key} does not encode: {e}")))?;
        self.store.put_catalog(key, &bytes)?;
        Ok(())
    }

    pub fn schemas(&self) -> impl Iterator<Item = &str> {
        self.schemas.iter().map(String::as_str)
    }

    pub fn has_schema(&self, name: &str) -> bool {
        self.schemas.contains(name)
    }

    pub fn create_schema(&mut self, name: &str) -> Result<()> {
        if self.schemas.contains(name) {
            return Err(Error::DuplicateSchema(name.to_string()));
        }
        self.store
            .put_catalog(&format!("{SCHEMA_PREFIX}{name}"), b"")?;
        self.schemas.insert(name.to_string());
        Ok(())
    }

    /// Forgets an empty schema (`Database::drop_schemas` empties it first;
    /// one that something was created in meanwhile is refused).
    pub fn drop_schema(&mut self, name: &str) -> Result<()> {
        if !self.schemas.contains(name) {
            return Err(Error::UndefinedSchema(name.to_string()));
        }
        if self.tables_in(name).next().is_some()
            || self.mvs_in(name).next().is_some()
            || self.views.values().any(|v| v.schema == name)
        {
            return Err(Error::DependentObjects {
                what: format!("schema {name}"),
                detail: format!("objects were created in schema {name} while it was dropped"),
            });
        }
        self.store
            .remove_catalog(&format!("{SCHEMA_PREFIX}{name}"))?;
        self.schemas.remove(name);
        Ok(())
    }

    pub fn table(&self, schema: &str, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(&(schema.to_string(), name.to_string()))
    }

    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.tables.values()
    }

    pub fn tables_in<'a>(&'a self, schema: &'a str) -> impl Iterator<Item = &'a Arc<TableDef>> {
        self.tables.values().filter(move |t| t.schema == schema)
    }

    pub fn create_table(&mut self, def: TableDef) -> Result<Arc<TableDef>> {
        if !self.schemas.contains(&def.schema) {
            return Err(Error::UndefinedSchema(def.schema));
        }
        let key = (def.schema.clone(), def.name.clone());
        if self.object(&key.0, &key.1).is_some() {
            return Err(Error::DuplicateTable(def.name));
        }
        self.put(&format!("{TABLE_PREFIX}{}", def.id), &def)?;
        let def = Arc::new(def);
        self.tables.insert(key, def.clone());
        Ok(def)
    }

    pub fn drop_table(&mut self, schema: &str, name: &str) -> Result<Arc<TableDef>> {
        let key = (schema.to_string(), name.to_string());
        let def = self
            .tables
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        self.store
            .remove_catalog(&format!("{TABLE_PREFIX}{}", def.id))?;
        self.tables.remove(&key);
        Ok(def)
    }
}

impl Catalog {
    pub fn mv(&self, schema: &str, name: &str) -> Option<&Arc<MvDef>> {
        self.mvs.get(&(schema.to_string(), name.to_string()))
    }

    /// Every MV, in creation order (ids grow), which is also an order in
    /// which each MV comes after the MVs it reads.
    pub fn mvs(&self) -> Vec<Arc<MvDef>> {
        let mut all: Vec<Arc<MvDef>> = self.mvs.values().cloned().collect();
        all.sort_by_key(|m| m.id);
        all
    }

    pub fn mvs_in<'a>(&'a self, schema: &'a str) -> impl Iterator<Item = &'a Arc<MvDef>> {
        self.mvs.values().filter(move |m| m.schema == schema)
    }

    /// The name of a table or MV, for messages.
    pub fn relation_name(&self, relation: Relation) -> Option<String> {
        match relation {
            Relation::Table(id) => self
                .tables
                .values()
                .find(|t| t.id == id)
                .map(|t| t.name.clone()),
            Relation::Mv(id) => self
                .mvs
                .values()
                .find(|m| m.id == id)
                .map(|m| m.name.clone()),
        }
    }

    pub fn create_mv(&mut self, def: MvDef) -> Result<Arc<MvDef>> {
        if !self.schemas.contains(&def.schema) {
            return Err(Error::UndefinedSchema(def.schema));
        }
        let key = (def.schema.clone(), def.name.clone());
        if self.object(&key.0, &key.1).is_some() {
            return Err(Error::DuplicateTable(def.name));
        }
        self.put(&format!("{MV_PREFIX}{}", def.id.0), &def)?;
        let def = Arc::new(def);
        self.mvs.insert(key, def.clone());
        Ok(def)
    }

    pub fn drop_mv(&mut self, schema: &str, name: &str) -> Result<Arc<MvDef>> {
        let key = (schema.to_string(), name.to_string());
        let def = self
            .mvs
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        self.store
            .remove_catalog(&format!("{MV_PREFIX}{}", def.id.0))?;
        self.mvs.remove(&key);
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(id: u64, name: &str) -> TableDef {
        TableDef {
            id: TableId(id),
            schema: DEFAULT_SCHEMA.into(),
            name: name.into(),
            columns: vec![ColumnDef {
                name: "a".into(),
                ty: ColumnType::Integer,
                not_null: true,
                default: Some("1".into()),
            }],
            primary_key: vec![0],
        }
    }

    #[test]
    fn definitions_survive_reload() {
        let store = Store::in_memory().unwrap();
        let mut catalog = Catalog::load(store.clone()).unwrap();
        catalog.create_schema("s").unwrap();
        catalog.create_table(def(1, "t")).unwrap();
        catalog.create_table(def(2, "u")).unwrap();
        catalog.drop_table(DEFAULT_SCHEMA, "u").unwrap();

        let reloaded = Catalog::load(store).unwrap();
        assert!(reloaded.has_schema("s"));
        assert_eq!(
            reloaded.table(DEFAULT_SCHEMA, "t").unwrap().as_ref(),
            &def(1, "t")
        );
        assert!(reloaded.table(DEFAULT_SCHEMA, "u").is_none());
    }

    #[test]
    fn refuses_duplicates_and_missing_schemas() {
        let mut catalog = Catalog::load(Store::in_memory().unwrap()).unwrap();
        catalog.create_table(def(1, "t")).unwrap();
        assert!(matches!(
            catalog.create_table(def(2, "t")),
            Err(Error::DuplicateTable(_))
        ));
        assert!(matches!(
            catalog.create_schema("public"),
            Err(Error::DuplicateSchema(_))
        ));
        let mut orphan = def(3, "x");
        orphan.schema = "nowhere".into();
        assert!(matches!(
            catalog.create_table(orphan),
            Err(Error::UndefinedSchema(_))
        ));
    }
}
