//! The lane: one fixed buffer in linear memory through which the hot calls pass their
//! strings, so that they cross the boundary as plain numbers.
//!
//! wasm-bindgen's glue pays, per string argument, a `malloc`, an encoding loop and a
//! `free`, and per returned string a `malloc`, a `TextDecoder` call and a `free`; for
//! `acquireHandle`, `newId` and `parseId` that is most of their cost. On the lane, the
//! JS half (`js/runtime.*`) writes input straight into this buffer (UTF-8, with
//! `TextEncoder.encodeInto`) and reads ASCII output back with `String.fromCharCode`; the
//! Rust half only reads and writes bytes. Anything the lane does not carry (over-long
//! input, an unusual argument) takes the ordinary, fully checked binding, which is also
//! how every error is reported: a lane call that fails returns a sentinel and the JS
//! half repeats the call on the ordinary binding, which throws the `LeaseError` (an
//! error never changes state, so repeating is safe).
//!
//! Not public API: these exports are hidden from the TypeScript types.

use super::layout::CAPACITY;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local! {
    // A static, so its address is stable for the JS half; const-initialised, so an
    // access checks no lazy-initialisation state.
    static LANE: RefCell<[u8; CAPACITY]> = const { RefCell::new([0; CAPACITY]) };
}

/// `[memory, address]` for the JS half, which finds everything else in the lane by the
/// offsets of `layout`. Called once per instance by the loader.
#[wasm_bindgen(js_name = "__lane", skip_typescript)]
pub fn lane() -> js_sys::Array {
    let address = LANE.with(|l| l.borrow().as_ptr() as usize);
    js_sys::Array::of2(&wasm_bindgen::memory(), &JsValue::from(address as u32))
}

/// Runs `f` on the lane's bytes.
pub fn with<R>(f: impl FnOnce(&mut [u8; CAPACITY]) -> R) -> R {
    LANE.with(|l| f(&mut l.borrow_mut()))
}

/// The `len` bytes the JS half wrote at `start`, as text. `None` if the range is out
/// of the lane or not UTF-8 (the JS half writes UTF-8 only; this is the guard against
/// a caller of the raw export).
pub fn text(bytes: &[u8; CAPACITY], start: usize, len: usize) -> Option<&str> {
    let end = start.checked_add(len)?;
    std::str::from_utf8(bytes.get(start..end)?).ok()
}

/// The user id in the first `user_len` bytes and the connection key in the `key_len`
/// after it (negative: none), as the JS half writes them for an acquire.
pub fn user_and_key(
    bytes: &[u8; CAPACITY],
    user_len: u32,
    key_len: i32,
) -> Option<(&str, Option<&str>)> {
    let user_len = user_len as usize;
    let user = text(bytes, 0, user_len)?;
    let key = match usize::try_from(key_len) {
        Ok(len) => Some(text(bytes, user_len, len)?),
        Err(_) => None,
    };
    Some((user, key))
}
