//! The expiry index: which lease expires next.
//!
//! With one TTL for everyone and a clock that moves forward, leases are pushed in
//! expiry order, so a FIFO holds them with sequential memory access and O(1) pushes. The
//! rare entry that arrives out of order (clock stepped back, TTL lowered at run time) goes
//! to a binary heap; the next expiry is the smaller of the two fronts. Entries are not
//! removed in place, except the newest (a lease released right after it was granted):
//! stale ones (released or re-touched leases) are skipped by the caller when they
//! surface, and dropped in one pass when stale entries outnumber live ones, which bounds
//! memory under churn.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// One scheduled expiry of a lease slot: 12 bytes (packed, so the time's 8-byte
/// alignment does not pad it to 16; this index holds an entry per lease).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
pub struct Entry {
    pub at: u64,
    pub handle: u32,
}

impl Entry {
    /// The time, copied out (a packed field cannot be borrowed).
    pub fn at(&self) -> u64 {
        self.at
    }
}

// Ordered by time only: equal times never need to sift past each other.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at() == other.at()
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
        self.at().cmp(&other.at())
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
            Some(last) if last.at() > entry.at() => self.out_of_order.push(Reverse(entry)),
            _ => self.in_order.push_back(entry),
        }
    }

    /// The earliest entry, live or stale.
    pub fn peek(&self) -> Option<Entry> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(if b < a { *b } else { *a }),
            (Some(a), None) => Some(*a),
            (None, Some(Reverse(b))) => Some(*b),
            (None, None) => None,
        }
    }

    /// Removes the entry `peek` returned.
    pub fn pop(&mut self) {
        let heap_first = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        if heap_first {
            self.out_of_order.pop();
        } else {
            self.in_order.pop_front();
        }
    }

    /// Drops the newest in-order entry if it is this one: the entry of a lease released
    /// before anything else was scheduled (an acquire + release pair) never goes stale.
    pub fn forget_newest(&mut self, handle: u32, at: u64) {
        if self
            .in_order
            .back()
            .is_some_and(|e| e.handle == handle && e.at() == at)
        {
            self.in_order.pop_back();
        }
    }

    /// Keeps only the entries `keep` accepts. In place, and the FIFO keeps its order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.in_order.retain(&mut keep);
        self.out_of_order.retain(|Reverse(e)| keep(e));
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
        }
    }

    fn drain(q: &mut ExpiryQueue) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(x) = q.peek() {
            out.push(x.at);
            q.pop();
        }
        out
    }

    #[test]
    fn an_entry_takes_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 12);
    }

    #[test]
    fn pops_in_time_order_whatever_the_push_order() {
        let mut q = ExpiryQueue::default();
        for at in [5, 7, 7, 3, 9, 1, 8, 10] {
            q.push(e(at));
        }
        assert_eq!(drain(&mut q), vec![1, 3, 5, 7, 7, 8, 9, 10]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn retain_keeps_the_order() {
        let mut q = ExpiryQueue::default();
        for at in [2, 4, 6, 8, 1, 5, 9] {
            q.push(e(at));
        }
        q.retain(|x| x.at() % 4 != 0);
        assert_eq!(q.len(), 5);
        assert_eq!(drain(&mut q), vec![1, 2, 5, 6, 9]);
    }

    #[test]
    fn only_the_newest_entry_is_forgotten() {
        let mut q = ExpiryQueue::default();
        q.push(e(1));
        q.push(e(2));
        q.forget_newest(1, 1);
        assert_eq!(q.len(), 2);
        q.forget_newest(2, 3);
        assert_eq!(q.len(), 2);
        q.forget_newest(2, 2);
        assert_eq!(drain(&mut q), vec![1]);
    }
}
