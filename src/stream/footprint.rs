//! Estimates of the memory that operator state holds
//! (`freshet_catalog.mv_state`).
//!
//! They count what the state's own containers allocate: hash tables at
//! their capacity (an entry plus one control byte per slot, slots at 8/7 of
//! the capacity), vectors at their capacity, B-tree nodes at two thirds
//! full, and the heap bytes of encoded rows. The allocator's own overhead
//! is not counted, so a figure is a slight underestimate that grows and
//! shrinks with the state; it is computed only when someone reads the
//! table, by walking the state, never on the epoch's path.

use std::collections::HashSet;
use std::mem::size_of;
use std::ptr::NonNull;

use datafusion::arrow::array::{Array, ArrayData, RecordBatch};

use super::zset::RowCounts;

/// Arrow batches, each buffer counted once: chunks cut from one batch
/// share its buffers, and Arrow's own per-array figure would count them
/// once per chunk.
pub fn batches(batches: &[RecordBatch]) -> usize {
    let mut seen = HashSet::new();
    let mut total = 0;
    for batch in batches {
        for column in batch.columns() {
            buffers(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}

fn buffers(data: &ArrayData, seen: &mut HashSet<NonNull<u8>>, total: &mut usize) {
    let nulls = data.nulls().map(|n| n.buffer());
    for buffer in data.buffers().iter().chain(nulls) {
        if seen.insert(buffer.data_ptr()) {
            *total += buffer.capacity();
        }
    }
    for child in data.child_data() {
        buffers(child, seen, total);
    }
}

/// The slots of a hash table that holds `capacity` entries of `(K, V)`.
pub fn hash_table<K, V>(capacity: usize) -> usize {
    capacity * 8 / 7 * (size_of::<(K, V)>() + 1)
}

/// The buffer of a vector.
pub fn vec<T>(values: &Vec<T>) -> usize {
    values.capacity() * size_of::<T>()
}

/// The nodes of a B-tree of `len` entries of `(K, V)`.
pub fn btree<K, V>(len: usize) -> usize {
    len * size_of::<(K, V)>() * 3 / 2
}

/// A multiset of encoded rows: its table and every row's bytes.
pub fn row_counts(counts: &RowCounts) -> usize {
    hash_table::<Box<[u8]>, i64>(counts.capacity()) + counts.keys().map(|k| k.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn slices_of_one_batch_count_its_buffers_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let values = Int64Array::from_iter((0..10_000).map(|i| (i % 7 != 0).then_some(i)));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let whole = batches(std::slice::from_ref(&batch));
        assert!(whole >= 10_000 * 8 + 10_000 / 8, "{whole}");
        let chunks: Vec<RecordBatch> = (0..10).map(|i| batch.slice(i * 1000, 1000)).collect();
        assert_eq!(batches(&chunks), whole);
        let copy = datafusion::arrow::compute::concat_batches(&batch.schema(), &chunks).unwrap();
        assert!(batches(&[batch, copy]) >= 2 * whole - 128);
    }

    #[test]
    fn a_row_multiset_grows_with_its_rows_and_their_bytes() {
        let mut counts = RowCounts::new();
        let empty = row_counts(&counts);
        counts.insert(vec![7u8; 100].into_boxed_slice(), 1);
        let one = row_counts(&counts);
        assert!(one >= empty + 100 + size_of::<(Box<[u8]>, i64)>());
        for i in 0..1000u32 {
            counts.insert(i.to_le_bytes().to_vec().into_boxed_slice(), 1);
        }
        let many = row_counts(&counts);
        assert!(many >= 1001 * size_of::<(Box<[u8]>, i64)>() + 100 + 4000);
        counts.clear();
        counts.shrink_to_fit();
        assert_eq!(row_counts(&counts), empty);
    }
}
