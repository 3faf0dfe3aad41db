//! UUIDv7 generation, RFC 9562 section 6.2 method 1 ("fixed bit-length dedicated counter").
//!
//! Layout of the 128 bits, most significant first:
//!
//! ```text
//! 48 unix_ts_ms | 4 ver=7 | 12 counter_hi | 2 var=0b10 | 14 counter_lo | 48 random
//! ```
//!
//! The 26-bit counter is re-seeded with random bits (top bit clear, so there is room to
//! count) whenever the millisecond advances, and incremented otherwise. Every id also gets
//! 48 fresh random bits. When the clock steps backwards we keep the last timestamp and keep
//! counting; when the counter overflows we carry into the timestamp. Either way ids from
//! one generator are strictly increasing, and because the suffix encoding preserves order,
//! so are their strings.

use super::entropy::Entropy;

const COUNTER_BITS: u32 = 26;
const COUNTER_MAX: u32 = (1 << COUNTER_BITS) - 1;
/// Largest 48-bit millisecond timestamp (year 10889).
pub const MAX_TIMESTAMP_MS: u64 = (1 << 48) - 1;

/// A monotonic UUIDv7 source. Time is passed in; randomness comes from `E`.
#[derive(Debug, Clone)]
pub struct Uuid7Generator<E> {
    last_ms: u64,
    counter: u32,
    entropy: E,
}

impl<E: Entropy> Uuid7Generator<E> {
    pub fn new(entropy: E) -> Self {
        Self {
            last_ms: 0,
            counter: 0,
            entropy,
        }
    }

    /// The generator state that must survive a snapshot to stay monotonic after restore.
    pub fn state(&self) -> (u64, u32) {
        (self.last_ms, self.counter)
    }

    /// Restores `state()`; a later id is still greater than any id made before it.
    pub fn set_state(&mut self, last_ms: u64, counter: u32) {
        self.last_ms = last_ms.min(MAX_TIMESTAMP_MS);
        self.counter = counter.min(COUNTER_MAX);
    }

    fn seed_counter(&mut self) -> u32 {
        // Top counter bit clear: at least 2^25 increments fit before a carry.
        self.entropy.next_u32() & (COUNTER_MAX >> 1)
    }

    /// Next id for the wall-clock time `now_ms` (clamped to 48 bits).
    pub fn next(&mut self, now_ms: u64) -> u128 {
        let now_ms = now_ms.min(MAX_TIMESTAMP_MS);
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.counter = self.seed_counter();
        } else if self.counter < COUNTER_MAX {
            self.counter += 1;
        } else {
            // Counter exhausted within this millisecond: borrow the next one. At the very
            // end of the 48-bit range there is nothing to borrow; the timestamp saturates
            // and the counter restarts, which would only matter in the year 10889.
            self.last_ms = (self.last_ms + 1).min(MAX_TIMESTAMP_MS);
            self.counter = self.seed_counter();
        }
        let random = self.entropy.next_u48();
        let counter = u128::from(self.counter);
        (u128::from(self.last_ms) << 80)
            | (0x7 << 76)
            | ((counter >> 14) << 64)
            | (0b10 << 62)
            | ((counter & 0x3fff) << 48)
            | u128::from(random)
    }
}

/// Millisecond timestamp stored in a UUIDv7.
pub fn timestamp_ms(uuid: u128) -> u64 {
    (uuid >> 80) as u64
}

/// Whether the version and variant bits say UUIDv7.
pub fn is_v7(uuid: u128) -> bool {
    (uuid >> 76) & 0xf == 7 && (uuid >> 62) & 0b11 == 0b10
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::entropy::SeededEntropy;

    #[test]
    fn layout_and_version() {
        let mut g = Uuid7Generator::new(SeededEntropy::new(1));
        let id = g.next(1_700_000_000_000);
        assert!(is_v7(id));
        assert_eq!(timestamp_ms(id), 1_700_000_000_000);
    }

    #[test]
    fn monotonic_when_clock_goes_backwards() {
        let mut g = Uuid7Generator::new(SeededEntropy::new(2));
        let a = g.next(5_000);
        let b = g.next(4_000);
        let c = g.next(4_000);
        assert!(a < b && b < c);
        assert_eq!(timestamp_ms(c), 5_000);
    }

    #[test]
    fn counter_overflow_carries_into_timestamp() {
        let mut g = Uuid7Generator::new(SeededEntropy::new(3));
        let a = g.next(10);
        g.set_state(10, COUNTER_MAX);
        let b = g.next(10);
        assert!(b > a);
        assert_eq!(timestamp_ms(b), 11);
        let c = g.next(10);
        assert!(c > b);
    }

    #[test]
    fn many_ids_in_one_millisecond_increase() {
        let mut g = Uuid7Generator::new(SeededEntropy::new(4));
        let mut last = 0;
        for _ in 0..100_000 {
            let id = g.next(42);
            assert!(id > last);
            last = id;
        }
    }
}
