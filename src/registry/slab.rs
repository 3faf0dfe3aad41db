//! Storage for lease slots in fixed-size chunks.
//!
//! A plain `Vec` doubles as it grows, and wasm linear memory never shrinks: at a million
//! leases the last doubling leaves the old half-size buffer behind as unusable high water
//! (about 28 bytes per lease). Chunks are allocated once at their final size and never
//! move, so memory grows with the leases and nothing else.

use std::ops::{Index, IndexMut};

/// Slots per chunk (4096 × 56 bytes ≈ 224 KiB).
const SHIFT: usize = 12;
const CHUNK: usize = 1 << SHIFT;
const MASK: usize = CHUNK - 1;

#[derive(Debug)]
pub struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(&mut self, value: T) {
        if self.len & MASK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
        }
        self.len += 1;
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> SHIFT)?.get(i & MASK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> Index<usize> for Slab<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> SHIFT][i & MASK]
    }
}

impl<T> IndexMut<usize> for Slab<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> SHIFT][i & MASK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_across_chunks() {
        let mut slab = Slab::default();
        for i in 0..(3 * CHUNK + 5) {
            slab.push(i);
        }
        assert_eq!(slab.len(), 3 * CHUNK + 5);
        assert_eq!(slab[CHUNK], CHUNK);
        slab[2 * CHUNK + 1] = 7;
        assert_eq!(slab.get(2 * CHUNK + 1), Some(&7));
        assert_eq!(slab.get(3 * CHUNK + 5), None);
        assert_eq!(slab.iter().count(), 3 * CHUNK + 5);
        assert!(
            slab.chunks.iter().all(|c| c.capacity() == CHUNK),
            "chunks never regrow"
        );
    }
}
