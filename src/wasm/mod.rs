//! The one wasm-bindgen boundary. Everything `#[wasm_bindgen]` lives under this module;
//! the core (`id`, `registry`) knows nothing about JavaScript.
//!
//! Rules kept here: every input is taken as `JsValue` and checked, so a wrong type is a
//! `LeaseError` with a code, never a wasm trap; refusals are values; errors are real JS
//! `Error`s; nothing calls back into JS while the core is borrowed.

mod convert;
mod errors;
mod ids;
mod lane;
mod layout;
mod limits;
mod registry;
mod types;

#[cfg(all(test, target_arch = "wasm32"))]
mod tests;
