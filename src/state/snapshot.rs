//! One committed epoch of every table and MV, as queries read it.
//!
//! The runtime publishes a new `EpochSnapshot` after each epoch with one
//! atomic swap; a query that reads any MV clones the `Arc` once and reads all
//! its relations from it, so it never sees one MV ahead of another or of
//! the tables it joins with (Feldera's controller does the same).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::record_batch::RecordBatch;

use crate::catalog::{MvId, TableId};

/// Chunks with the hidden row id first, as `TableData::snapshot` gives them.
pub type Chunks = Arc<Vec<RecordBatch>>;

#[derive(Default)]
pub struct EpochSnapshot {
    pub epoch: u64,
    /// The global commit sequence the epoch covers: every change up to it.
    pub seq: u64,
    pub tables: HashMap<TableId, Chunks>,
    pub mvs: HashMap<MvId, Chunks>,
}

/// The latest published epoch. Readers clone the `Arc`; the runtime swaps it.
#[derive(Default)]
pub struct Published(RwLock<Arc<EpochSnapshot>>);

impl Published {
    pub fn current(&self) -> Arc<EpochSnapshot> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn publish(&self, snapshot: EpochSnapshot) {
        let snapshot = Arc::new(snapshot);
        match self.0.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}
