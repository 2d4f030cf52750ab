//! A multiset of ordered values with weights: the state behind min and max
//! under retraction.
//!
//! Most groups hold few values (W1: about 100 per group), so a multiset
//! starts as a sorted vector: 16 bytes per distinct integer, no per-entry
//! node overhead, and a bulk load from sorted values is one pass. Once it
//! grows past `SMALL_LIMIT` distinct values an insert would shift too much,
//! so it becomes a B-tree and stays one.
//!
//! # Invariants
//! - Every stored weight is non-zero; a value whose weight sums to zero is
//!   removed.
//! - `Small` is sorted by value, without duplicates.

use std::borrow::Borrow;
use std::collections::BTreeMap;

/// Distinct values a sorted vector holds before it becomes a B-tree.
const SMALL_LIMIT: usize = 256;

#[derive(Clone, Debug)]
pub enum Multiset<K> {
    Small(Vec<(K, i64)>),
    Large(BTreeMap<K, i64>),
}

impl<K: Ord> Default for Multiset<K> {
    fn default() -> Self {
        Multiset::Small(Vec::new())
    }
}

impl<K: Ord> Multiset<K> {
    /// A multiset of `values`, which must be sorted by value; equal values
    /// may repeat and their weights are summed. `distinct` is the number of
    /// distinct values (an upper bound does too): the vector is allocated
    /// once, at its size, because at a backfill this is most of the memory
    /// the view touches.
    pub fn from_sorted(values: impl IntoIterator<Item = (K, i64)>, distinct: usize) -> Self {
        let mut merged: Vec<(K, i64)> = Vec::with_capacity(distinct);
        for (value, weight) in values {
            match merged.last_mut() {
                Some((last, sum)) if *last == value => *sum += weight,
                _ => {
                    if merged.last().is_some_and(|(_, sum)| *sum == 0) {
                        merged.pop();
                    }
                    merged.push((value, weight));
                }
            }
        }
        if merged.last().is_some_and(|(_, sum)| *sum == 0) {
            merged.pop();
        }
        if merged.len() > SMALL_LIMIT {
            Multiset::Large(merged.into_iter().collect())
        } else {
            if merged.capacity() > merged.len() + merged.len() / 4 {
                merged.shrink_to_fit();
            }
            Multiset::Small(merged)
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Multiset::Small(values) => values.is_empty(),
            Multiset::Large(values) => values.is_empty(),
        }
    }

    /// Adds `weight` copies of `value`; `make` builds the owned value only
    /// when it is new.
    pub fn add<Q>(&mut self, value: &Q, weight: i64, make: impl FnOnce(&Q) -> K)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if weight == 0 {
            return;
        }
        match self {
            Multiset::Small(values) => {
                match values.binary_search_by(|(k, _)| k.borrow().cmp(value)) {
                    Ok(at) => {
                        values[at].1 += weight;
                        if values[at].1 == 0 {
                            values.remove(at);
                        }
                    }
                    Err(at) => {
                        values.insert(at, (make(value), weight));
                        if values.len() > SMALL_LIMIT {
                            let tree: BTreeMap<K, i64> =
                                std::mem::take(values).into_iter().collect();
                            *self = Multiset::Large(tree);
                        }
                    }
                }
            }
            Multiset::Large(values) => match values.get_mut(value) {
                Some(count) => {
                    *count += weight;
                    if *count == 0 {
                        values.remove(value);
                    }
                }
                None => {
                    values.insert(make(value), weight);
                }
            },
        }
    }

    /// Adds `values` (sorted by value, equal values may repeat) with their
    /// weights. A small multiset is merged with them in one pass into a
    /// vector of the final size, instead of shifting its tail once per new
    /// value: a backfill adds each group's values a slice at a time.
    pub fn add_sorted<'q, Q>(
        &mut self,
        values: impl ExactSizeIterator<Item = (&'q Q, i64)>,
        make: impl Fn(&Q) -> K,
    ) where
        K: Borrow<Q>,
        Q: Ord + ?Sized + 'q,
    {
        let Multiset::Small(existing) = self else {
            for (value, weight) in values {
                self.add(value, weight, &make);
            }
            return;
        };
        let mut merged: Vec<(K, i64)> = Vec::with_capacity(existing.len() + values.len());
        let mut old = std::mem::take(existing).into_iter().peekable();
        for (value, weight) in values {
            while old
                .peek()
                .is_some_and(|(k, _)| <K as Borrow<Q>>::borrow(k) < value)
            {
                merged.extend(old.next());
            }
            match old.peek_mut() {
                Some((k, sum)) if <K as Borrow<Q>>::borrow(k) == value => *sum += weight,
                _ => match merged.last_mut() {
                    Some((k, sum)) if <K as Borrow<Q>>::borrow(k) == value => *sum += weight,
                    _ => merged.push((make(value), weight)),
                },
            }
        }
        merged.extend(old);
        merged.retain(|(_, sum)| *sum != 0);
        *self = if merged.len() > SMALL_LIMIT {
            Multiset::Large(merged.into_iter().collect())
        } else {
            Multiset::Small(merged)
        };
    }

    pub fn first(&self) -> Option<&K> {
        match self {
            Multiset::Small(values) => values.first().map(|(k, _)| k),
            Multiset::Large(values) => values.keys().next(),
        }
    }

    pub fn last(&self) -> Option<&K> {
        match self {
            Multiset::Small(values) => values.last().map(|(k, _)| k),
            Multiset::Large(values) => values.keys().next_back(),
        }
    }

    /// Bytes the multiset holds; `heap` gives those a value owns besides
    /// itself (an encoded value's bytes).
    pub fn footprint(&self, heap: impl Fn(&K) -> usize) -> usize {
        match self {
            Multiset::Small(values) => {
                super::footprint::vec(values) + values.iter().map(|(k, _)| heap(k)).sum::<usize>()
            }
            Multiset::Large(values) => {
                super::footprint::btree::<K, i64>(values.len())
                    + values.keys().map(&heap).sum::<usize>()
            }
        }
    }

    #[cfg(test)]
    fn entries(&self) -> Vec<(&K, i64)> {
        match self {
            Multiset::Small(values) => values.iter().map(|(k, w)| (k, *w)).collect(),
            Multiset::Large(values) => values.iter().map(|(k, w)| (k, *w)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sequence of weighted adds, in any mix of bulk loads, single
        /// adds and sorted runs, leaves what a plain map of sums holds.
        #[test]
        fn matches_a_map_of_sums(
            bulk in proptest::collection::vec((0i64..400, -2i64..3), 0..600),
            adds in proptest::collection::vec((0i64..400, -2i64..3), 0..600),
        ) {
            let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
            for (v, w) in bulk.iter().chain(&adds) {
                *expected.entry(*v).or_default() += w;
            }
            expected.retain(|_, w| *w != 0);
            let mut sorted = bulk.clone();
            sorted.sort_by_key(|(v, _)| *v);
            let mut set = Multiset::from_sorted(sorted, 0);
            // The adds, half one by one and half as sorted runs.
            let (single, runs) = adds.split_at(adds.len() / 2);
            for (v, w) in single {
                set.add(v, *w, |v| *v);
            }
            for run in runs.chunks(37) {
                let mut run = run.to_vec();
                run.sort_by_key(|(v, _)| *v);
                set.add_sorted(run.iter().map(|(v, w)| (v, *w)), |v| *v);
            }
            let got: Vec<(i64, i64)> = set.entries().into_iter().map(|(k, w)| (*k, w)).collect();
            let want: Vec<(i64, i64)> = expected.into_iter().collect();
            prop_assert_eq!(set.first().copied(), want.first().map(|(k, _)| *k));
            prop_assert_eq!(set.last().copied(), want.last().map(|(k, _)| *k));
            prop_assert_eq!(set.is_empty(), want.is_empty());
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn bytes_are_looked_up_borrowed_and_grow_into_a_tree() {
        let mut set: Multiset<Box<[u8]>> = Multiset::default();
        for i in 0..(SMALL_LIMIT as u32 + 10) {
            set.add(&i.to_be_bytes()[..], 1, |v| v.into());
        }
        assert!(matches!(set, Multiset::Large(_)));
        set.add(&0u32.to_be_bytes()[..], -1, |v| v.into());
        assert_eq!(set.first().map(|k| &k[..]), Some(&1u32.to_be_bytes()[..]));
    }
}
