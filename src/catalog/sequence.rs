//! The sequences behind SERIAL columns. `nextval('schema.name')` hands out
//! increasing numbers from 1; a number is never handed out twice, also
//! across restarts, and numbers may be skipped (a rolled-back INSERT uses
//! its numbers up, as in PostgreSQL).
//!
//! The store keeps, per sequence, the highest number that may have been
//! handed out; numbers are reserved in blocks of `BLOCK`, so most calls
//! touch only memory. The reservation is written before any number of its
//! block is used, and the store's log is ordered: a row that carries a
//! number is synced after the reservation that covers it, so a restart
//! never hands that number out again (it starts after the block, skipping
//! what was left of it).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::state::Store;

const PREFIX: &str = "sequence/";
const BLOCK: i64 = 1000;

struct Counter {
    next: i64,
    reserved: i64,
}

pub struct Sequences {
    store: Store,
    counters: Mutex<HashMap<String, Counter>>,
}

impl Sequences {
    /// The sequences the store holds; each goes on after its reservation.
    pub fn load(store: Store) -> Result<Self> {
        let mut counters = HashMap::new();
        for (key, value) in store.catalog_entries()? {
            if let Some(name) = key.strip_prefix(PREFIX) {
                let reserved = value
                    .try_into()
                    .map(i64::from_be_bytes)
                    .map_err(|_| Error::Internal(format!("sequence {name} does not decode")))?;
                counters.insert(
                    name.to_string(),
                    Counter {
                        next: reserved + 1,
                        reserved,
                    },
                );
            }
        }
        Ok(Sequences {
            store,
            counters: Mutex::new(counters),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counter>> {
        match self.counters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn create(&self, name: &str) -> Result<()> {
        self.store
            .put_catalog(&format!("{PREFIX}{name}"), &0i64.to_be_bytes())?;
        self.lock().insert(
            name.to_string(),
            Counter {
                next: 1,
                reserved: 0,
            },
        );
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.store.remove_catalog(&format!("{PREFIX}{name}"))?;
        self.lock().remove(name);
        Ok(())
    }

    /// The next `count` numbers of sequence `name`.
    pub fn next(&self, name: &str, count: usize) -> Result<Vec<i64>> {
        let mut counters = self.lock();
        let counter = counters.get_mut(name).ok_or_else(|| {
            Error::UndefinedTable(name.rsplit('.').next().unwrap_or(name).to_string())
        })?;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let last = counter
            .next
            .checked_add(count - 1)
            .ok_or_else(|| Error::Data {
                code: "2200H",
                message: format!("nextval: reached maximum value of sequence \"{name}\""),
            })?;
        if last > counter.reserved {
            let reserved = last.saturating_add(BLOCK);
            self.store
                .put_catalog(&format!("{PREFIX}{name}"), &reserved.to_be_bytes())?;
            counter.reserved = reserved;
        }
        let numbers = (counter.next..=last).collect();
        counter.next = last + 1;
        Ok(numbers)
    }
}

/// The name PostgreSQL gives the sequence of a SERIAL column.
pub fn serial_sequence(schema: &str, table: &str, column: &str) -> String {
    format!("{schema}.{table}_{column}_seq")
}

/// The sequence a column default draws from (`nextval('s.t_c_seq')`).
pub fn drawn_from(default: &str) -> Option<&str> {
    default
        .strip_prefix("nextval('")
        .and_then(|rest| rest.strip_suffix("')"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_grow_and_a_restart_never_repeats_one() {
        let store = Store::in_memory().unwrap();
        let sequences = Sequences::load(store.clone()).unwrap();
        sequences.create("public.t_id_seq").unwrap();
        assert_eq!(sequences.next("public.t_id_seq", 3).unwrap(), vec![1, 2, 3]);
        assert_eq!(sequences.next("public.t_id_seq", 1).unwrap(), vec![4]);
        let again = Sequences::load(store.clone()).unwrap();
        let after = again.next("public.t_id_seq", 1).unwrap()[0];
        assert!(after > 4, "a restart went back to {after}");
        again.remove("public.t_id_seq").unwrap();
        assert!(
            Sequences::load(store)
                .unwrap()
                .next("public.t_id_seq", 1)
                .is_err()
        );
        assert_eq!(
            drawn_from("nextval('public.t_id_seq')"),
            Some("public.t_id_seq")
        );
        assert_eq!(drawn_from("now()"), None);
    }
}
