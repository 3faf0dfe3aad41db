//! Id functions exported to JS.

use super::convert::{id_arg, now_opt, num, object};
use super::errors::{js, JsResult};
use crate::error::LeaseError;
use crate::id::{self, OsEntropy, Uuid7Generator};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local! {
    /// One generator per instance, so every `newId` of this module is strictly increasing.
    static IDS: RefCell<Uuid7Generator<OsEntropy>> =
        RefCell::new(Uuid7Generator::new(OsEntropy::default()));
}

fn kind_arg(kind: &JsValue) -> JsResult<String> {
    let kind = id_arg(kind, "kind")?;
    js(id::validate_prefix(&kind).map_err(LeaseError::from))?;
    Ok(kind)
}

/// Makes a new TypeID of `kind` (a TypeID prefix such as `"conn"`; `""` for a bare
/// suffix) over a fresh UUIDv7. Ids from one instance are strictly increasing.
///
/// Throws `LeaseError` `INVALID_ID` if `kind` breaks the prefix rules, `INVALID_TIME`
/// for a bad `now`.
#[wasm_bindgen(js_name = newId, unchecked_return_type = "string")]
pub fn new_id(
    #[wasm_bindgen(unchecked_param_type = "string")] kind: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<JsValue>,
) -> JsResult<String> {
    let kind = kind_arg(&kind)?;
    let t = now_opt(now)?;
    let uuid = IDS.with(|g| g.borrow_mut().next(t));
    Ok(id::format(&kind, uuid))
}

/// Parses a TypeID strictly and returns its parts. Throws `INVALID_ID` naming the reason.
#[wasm_bindgen(js_name = parseId, unchecked_return_type = "ParsedId")]
pub fn parse_id(#[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> JsResult<JsValue> {
    let text = id_arg(&id, "id")?;
    let parts = js(id::parse_parts(&text).map_err(LeaseError::from))?;
    Ok(object(&[
        ("kind", JsValue::from_str(&parts.kind)),
        ("suffix", JsValue::from_str(&parts.suffix)),
        (
            "uuid",
            JsValue::from_str(&id::typeid::uuid_string(parts.uuid)),
        ),
        ("timestampMs", num(parts.timestamp_ms)),
        ("version", num(((parts.uuid >> 76) & 0xf) as u64)),
    ]))
}

/// The same lease spelled with another kind: `deriveId("conn_01h...", "run")` is
/// `"run_01h..."`. The suffix never changes.
#[wasm_bindgen(js_name = deriveId, unchecked_return_type = "string")]
pub fn derive_id(
    #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] kind: JsValue,
) -> JsResult<String> {
    let text = id_arg(&id, "id")?;
    let kind = kind_arg(&kind)?;
    js(id::derive(&text, &kind).map_err(LeaseError::from))
}

/// Whether two well-formed ids share one suffix (name one lease), whatever their kinds.
#[wasm_bindgen(js_name = sameLease)]
pub fn same_lease(
    #[wasm_bindgen(unchecked_param_type = "string")] a: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] b: JsValue,
) -> JsResult<bool> {
    let a = id_arg(&a, "first id")?;
    let b = id_arg(&b, "second id")?;
    js(id::same_lease(&a, &b).map_err(LeaseError::from))
}

/// Encodes a UUID (hyphenated hex) as a TypeID of `kind`; the inverse of `parseId`.
#[wasm_bindgen(js_name = idFromUuid, unchecked_return_type = "string")]
pub fn id_from_uuid(
    #[wasm_bindgen(unchecked_param_type = "string")] kind: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] uuid: JsValue,
) -> JsResult<String> {
    let kind = kind_arg(&kind)?;
    let text = id_arg(&uuid, "uuid")?;
    let value = id::typeid::parse_uuid(&text.to_ascii_lowercase()).ok_or_else(|| {
        super::errors::to_js(LeaseError::InvalidId(format!(
            "\"{text}\" is not a hyphenated UUID (8-4-4-4-12 hex digits)"
        )))
    })?;
    Ok(id::format(&kind, value))
}
