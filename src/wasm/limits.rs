//! The core's fixed bounds, for JavaScript that must agree with them (the Redis store
//! checks user ids before any script runs, and sizes its lists like the core's) instead
//! of keeping copies of the numbers. A static method of `LeaseRegistry`, so every loader
//! that exports the class exports it too; one small object, built when asked.

use super::convert::{num, object};
use super::registry::JsLeaseRegistry;
use crate::error::MAX_USER_ID_BYTES;
use crate::registry::options::MAX_LIMIT;
use crate::registry::PENDING_EXPIRED_CAP;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** The core's fixed bounds, as `LeaseRegistry.coreLimits()` returns them. */
export interface CoreLimits {
  /** Longest user id (and connection key) accepted, in bytes of UTF-8. */
  maxUserIdBytes: number;
  /** Expired lease ids an acquire reclaimed that are kept for the next `sweep()`. */
  pendingExpiredCap: number;
  /** Largest limit accepted (`perUserLimit`, `globalLimit`, `userLimits` values). */
  maxLimit: number;
}
"#;

#[wasm_bindgen(js_class = LeaseRegistry)]
impl JsLeaseRegistry {
    /// The core's fixed bounds: the longest user id, how many lazily reclaimed ids wait
    /// for `sweep()`, the largest limit. The same on every registry.
    #[wasm_bindgen(js_name = coreLimits, unchecked_return_type = "CoreLimits")]
    pub fn core_limits() -> JsValue {
        object(&[
            ("maxUserIdBytes", num(MAX_USER_ID_BYTES as u64)),
            ("pendingExpiredCap", num(PENDING_EXPIRED_CAP as u64)),
            ("maxLimit", num(u64::from(MAX_LIMIT))),
        ])
    }
}
