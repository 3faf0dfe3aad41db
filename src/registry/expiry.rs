//! The expiry index: which lease expires next.
//!
//! With one TTL for everyone and a clock that moves forward, leases are pushed in
//! expiry order, so a FIFO holds them with sequential memory access and O(1) pushes. The
//! rare entry that arrives out of order (clock stepped back, TTL lowered at run time) goes
//! to a binary heap; the next expiry is the smaller of the two fronts. Entries are never
//! removed in place: stale ones (released or re-touched leases) are skipped by the
//! caller when they surface, and the whole index is rebuilt from the live leases when
//! stale entries outnumber live ones, which bounds memory under churn.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// One scheduled expiry of a lease slot.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub at: u64,
    pub handle: u32,
    pub generation: u32,
}

// Ordered by time only: equal times never need to sift past each other.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

#[derive(Debug, Default)]
pub struct ExpiryQueue {
    in_order: VecDeque<Entry>,
    out_of_order: BinaryHeap<Reverse<Entry>>,
}

impl ExpiryQueue {
    pub fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    pub fn push(&mut self, entry: Entry) {
        match self.in_order.back() {
            Some(last) if last.at > entry.at => self.out_of_order.push(Reverse(entry)),
            _ => self.in_order.push_back(entry),
        }
    }

    /// The earliest entry, live or stale.
    pub fn peek(&self) -> Option<Entry> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(if b.at < a.at { *b } else { *a }),
            (Some(a), None) => Some(*a),
            (None, Some(Reverse(b))) => Some(*b),
            (None, None) => None,
        }
    }

    /// Removes the entry `peek` returned.
    pub fn pop(&mut self) {
        let heap_first = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => b.at < a.at,
            (None, Some(_)) => true,
            _ => false,
        };
        if heap_first {
            self.out_of_order.pop();
        } else {
            self.in_order.pop_front();
        }
    }

    /// Replaces the contents with `entries` (the live leases). They go to the heap
    /// (heapify is O(n), and reuses the heap's code rather than pulling a sort into the
    /// .wasm); later in-order pushes fill the FIFO again.
    pub fn rebuild(&mut self, entries: Vec<Entry>) {
        self.in_order.clear();
        self.out_of_order = entries.into_iter().map(Reverse).collect();
    }

    /// Every entry, in no particular order (for invariant checks).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.in_order
            .iter()
            .chain(self.out_of_order.iter().map(|Reverse(e)| e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(at: u64) -> Entry {
        Entry {
            at,
            handle: at as u32,
            generation: 0,
        }
    }

    #[test]
    fn pops_in_time_order_whatever_the_push_order() {
        let mut q = ExpiryQueue::default();
        for at in [5, 7, 7, 3, 9, 1, 8, 10] {
            q.push(e(at));
        }
        let mut out = Vec::new();
        while let Some(x) = q.peek() {
            out.push(x.at);
            q.pop();
        }
        assert_eq!(out, vec![1, 3, 5, 7, 7, 8, 9, 10]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn rebuild_sorts() {
        let mut q = ExpiryQueue::default();
        q.push(e(1));
        q.rebuild(vec![e(4), e(2), e(3)]);
        assert_eq!(q.len(), 3);
        assert_eq!(q.peek().map(|x| x.at), Some(2));
    }
}
