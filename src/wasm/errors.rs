//! Turning `LeaseError` into a JS `LeaseError` (a real `Error` subclass).
//!
//! The class is defined in plain JS (`js/runtime.*`), because a Rust struct cannot
//! extend `Error`. Each loader registers it once right after instantiation; until then
//! (or if someone loads the raw bindings) errors are plain `Error`s with the same `name`
//! and `code`, so `err.code` works either way.

use crate::error::LeaseError;
use js_sys::{Array, Function, Reflect};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local! {
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Called by the package loaders with the `LeaseError` class. Not part of the public API.
#[wasm_bindgen(js_name = "__registerErrorClass", skip_typescript)]
pub fn register_error_class(class: Function) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(class));
}

/// Builds the JS error for `e`.
pub fn to_js(e: LeaseError) -> JsValue {
    let text = e.to_string();
    let message = JsValue::from_str(&text);
    let code = JsValue::from_str(e.code());
    let constructed = ERROR_CLASS.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|class| Reflect::construct(class, &Array::of2(&message, &code)).ok())
    });
    if let Some(err) = constructed {
        return err;
    }
    let err = js_sys::Error::new(&text);
    err.set_name("LeaseError");
    let _ = Reflect::set(&err, &JsValue::from_str("code"), &code);
    err.into()
}

/// `Result` alias for boundary functions.
pub type JsResult<T> = Result<T, JsValue>;

/// Shorthand: map a core error into a JS error.
pub fn js<T>(r: Result<T, LeaseError>) -> JsResult<T> {
    r.map_err(to_js)
}
