//! Sources of random bits for id generation.
//!
//! The OS source buffers: one `getrandom` call costs about 1.5 us in wasm (it crosses
//! into `crypto.getRandomValues`), far more than making an id, so we fetch 4 KiB at a
//! time (about 680 ids; 1 KiB left the refills at a few percent of an acquire).

/// Random bits for the generator. Implementations must never fail or block.
pub trait Entropy {
    fn fill(&mut self, out: &mut [u8]);

    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u48(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b[..6]);
        u64::from_le_bytes(b)
    }
}

const BUFFER: usize = 4096;

/// OS randomness (`getrandom`; `crypto.getRandomValues` in wasm), buffered.
pub struct OsEntropy {
    buf: Box<[u8; BUFFER]>,
    pos: usize,
}

impl std::fmt::Debug for OsEntropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OsEntropy")
    }
}

impl Default for OsEntropy {
    fn default() -> Self {
        Self {
            buf: Box::new([0; BUFFER]),
            pos: BUFFER,
        }
    }
}

impl OsEntropy {
    fn refill(&mut self) {
        if getrandom::fill(&mut self.buf[..]).is_err() {
            // No OS randomness at all (no crypto in the host). We cannot throw from the
            // middle of id generation, and failing closed would lock every user out, so
            // degrade to a time-and-address-seeded mixer; uniqueness still holds within
            // one generator thanks to the monotonic counter.
            let mut fallback = SeededEntropy::new(self.buf.as_ptr() as u64 ^ self.pos as u64);
            fallback.fill(&mut self.buf[..]);
        }
        self.pos = 0;
    }
}

impl Entropy for OsEntropy {
    /// Once per id: six bytes straight from the buffer, without `fill`'s chunking.
    fn next_u48(&mut self) -> u64 {
        if self.pos + 6 > BUFFER {
            self.refill();
        }
        let mut b = [0u8; 8];
        if let Some(bytes) = self.buf.get(self.pos..self.pos + 6) {
            b[..6].copy_from_slice(bytes);
        }
        self.pos += 6;
        u64::from_le_bytes(b)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(BUFFER) {
            if self.pos + chunk.len() > BUFFER {
                self.refill();
            }
            chunk.copy_from_slice(&self.buf[self.pos..self.pos + chunk.len()]);
            self.pos += chunk.len();
        }
    }
}

/// Deterministic SplitMix64 stream, for tests and the fallback above.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    state: u64,
}

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_entropy_refills_across_buffer_edges() {
        let mut e = OsEntropy::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..5_000 {
            // 5000 * 6 bytes crosses the buffer several times, also mixed with `fill`.
            seen.insert(e.next_u48());
            if i % 7 == 0 {
                e.next_u32();
            }
        }
        assert!(seen.len() > 4_990, "random values repeat: {}", seen.len());
        let mut big = vec![0u8; 3 * BUFFER + 7];
        e.fill(&mut big);
        assert!(big.iter().any(|&b| b != 0));
    }
}
