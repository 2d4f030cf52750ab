//! A stored table as DataFusion sees it.
//!
//! Every scan reads the snapshot current when the scan is planned, so one
//! SELECT sees one state of the table even while writers commit. The hidden
//! row-id column is cut off for users; DML plans use `with_rowid` to see it,
//! which is how UPDATE and DELETE learn which rows they touch.
//!
//! A query that reads a materialized view carries the epoch it reads
//! (`ReadEpoch`, a session config extension); tables then read their chunks
//! as of that epoch too, so a join of an MV with its own input agrees.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::TableId;
use crate::state::{Chunks, EpochSnapshot, TableData};

/// The epoch a query reads, when it reads any materialized view.
pub struct ReadEpoch(pub Arc<EpochSnapshot>);

/// The tables an open transaction has written, as it sees them: its
/// statements read these instead of the committed contents.
pub struct TxnView(pub HashMap<TableId, Chunks>);

/// The table a DML statement writes, under that table's writer lock: it
/// reads the table's latest chunks, changes not yet durable included (they
/// precede its own in the log), where every other reader sees only what is
/// durable.
pub struct WriterView(pub TableId);

pub struct StoredTable {
    id: TableId,
    /// The schema DataFusion plans against: the user's, or the stored one
    /// (row id first) for `with_rowid`.
    schema: SchemaRef,
    data: Arc<RwLock<TableData>>,
    with_rowid: bool,
    defaults: HashMap<String, Expr>,
    /// Positions of the primary key's columns in `schema` (empty without
    /// one): a view that carries them is indexed by them. Not declared to
    /// DataFusion as a constraint: its functional dependencies survive an
    /// `unnest`, and DISTINCT and GROUP BY then drop rows.
    primary_key: Vec<usize>,
}

impl fmt::Debug for StoredTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTable")
            .field("schema", &self.schema)
            .field("with_rowid", &self.with_rowid)
            .finish()
    }
}

impl StoredTable {
    /// `primary_key`: positions of the key columns in `schema` (none for
    /// a table without one).
    pub fn new(
        id: TableId,
        schema: SchemaRef,
        data: Arc<RwLock<TableData>>,
        defaults: HashMap<String, Expr>,
        primary_key: &[usize],
    ) -> Self {
        StoredTable {
            id,
            schema,
            data,
            with_rowid: false,
            defaults,
            primary_key: primary_key.to_vec(),
        }
    }

    /// The same table with the row id visible as its first column.
    pub fn with_rowid(&self) -> Self {
        let schema = self
            .data
            .read()
            .expect("table lock poisoned")
            .stored_schema()
            .clone();
        StoredTable {
            id: self.id,
            schema,
            data: self.data.clone(),
            with_rowid: true,
            defaults: self.defaults.clone(),
            primary_key: self.primary_key.iter().map(|i| i + 1).collect(),
        }
    }

    pub fn id(&self) -> TableId {
        self.id
    }

    pub fn data(&self) -> &Arc<RwLock<TableData>> {
        &self.data
    }

    pub fn primary_key(&self) -> &[usize] {
        &self.primary_key
    }
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let config = state.config();
        let own = config
            .get_extension::<TxnView>()
            .and_then(|view| view.0.get(&self.id).cloned());
        let writing = config
            .get_extension::<WriterView>()
            .is_some_and(|w| w.0 == self.id);
        let at_epoch = config
            .get_extension::<ReadEpoch>()
            .and_then(|epoch| epoch.0.tables.get(&self.id).cloned());
        let (chunks, stored_schema) = {
            let data = self.data.read().expect("table lock poisoned");
            // A transaction's own changes, then the writer's latest, then the
            // epoch a reader of views sees, then what is durable.
            let chunks = match (own, writing, at_epoch) {
                (Some(own), _, _) => own,
                (None, true, _) => data.snapshot(),
                (None, false, Some(at_epoch)) => at_epoch,
                (None, false, None) => data.visible(),
            };
            (chunks, data.stored_schema().clone())
        };
        // Positions in our schema become positions in the stored schema.
        let offset = usize::from(!self.with_rowid);
        scan_chunks(state, &chunks, stored_schema, projection, offset)
    }
}

/// A scan of stored chunks (row id first), spread over the session's target
/// partitions. `offset` is 1 when the reader's schema leaves the row id out.
pub fn scan_chunks(
    state: &dyn Session,
    chunks: &[datafusion::arrow::record_batch::RecordBatch],
    stored_schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    offset: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let projection: Vec<usize> = match projection {
        Some(p) => p.iter().map(|i| i + offset).collect(),
        None => (offset..stored_schema.fields().len()).collect(),
    };
    let partitions = state
        .config()
        .target_partitions()
        .max(1)
        .min(chunks.len().max(1));
    let mut parts = vec![Vec::new(); partitions];
    for (i, chunk) in chunks.iter().enumerate() {
        parts[i % partitions].push(chunk.clone());
    }
    Ok(MemorySourceConfig::try_new_exec(
        &parts,
        stored_schema,
        Some(projection),
    )?)
}
