//! Id functions exported to JS.

use super::convert::{id_arg, now_opt, num, object};
use super::errors::{js, JsResult};
use super::lane;
use super::layout::{self, parsed, put_u128};
use crate::error::{time_ms, LeaseError};
use crate::id::base32::{self, SUFFIX_LEN};
use crate::id::{self, uuid7, OsEntropy, Uuid7Generator};
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

/// `newId` on the lane (see `lane`): writes the 26-character suffixes of `count` fresh
/// ids (at most `layout::IDS_ROOM`) from `layout::IDS_AT` on and returns how many; 0 for a bad
/// `now`. The JS half checks the kind (once per kind), prepends it, and passes its own
/// clock (cheaper than calling back for it). Without a given time it asks for several
/// ids at once and hands them out while its clock reads the same millisecond: the same
/// ids, in the same order, as one call per id within that millisecond would make (the
/// rest are dropped when the clock moves on or an id is made another way, so handed-out
/// ids stay strictly increasing).
#[wasm_bindgen(js_name = "__newIdLane", skip_typescript)]
pub fn new_id_lane(now: f64, count: u32) -> u32 {
    let Some(t) = time_ms(now) else {
        return 0;
    };
    let count = (count as usize).clamp(1, layout::IDS_ROOM);
    IDS.with(|g| {
        let mut g = g.borrow_mut();
        lane::with(|bytes| {
            for slot in bytes[layout::IDS_AT..]
                .chunks_exact_mut(SUFFIX_LEN)
                .take(count)
            {
                slot.copy_from_slice(&base32::encode(g.next(t)));
            }
        });
    });
    count as u32
}

/// `parseId` on the lane, of the `len` bytes at its start: writes the record
/// `layout::parsed` (the kind's length, the UUID's version and the UUID) and returns the
/// timestamp in ms; -1 if the id is not valid (the JS half then asks
/// `parseId` why). The JS half keeps the bytes as four numbers and spells the
/// hyphenated UUID only when its `uuid` is first read.
#[wasm_bindgen(js_name = "__parseIdLane", skip_typescript)]
pub fn parse_id_lane(len: u32) -> f64 {
    lane::with(|bytes| {
        // `parse_bytes` accepts exactly the valid ids, so `None` is an invalid one.
        let parsed = bytes.get(..len as usize).and_then(id::typeid::parse_bytes);
        let Some((kind_len, value)) = parsed else {
            return -1.0;
        };
        // At most 63: the parse checked it.
        bytes[parsed::KIND_LEN.at] = kind_len as u8;
        bytes[parsed::VERSION.at] = ((value >> 76) & 0xf) as u8;
        put_u128(bytes, parsed::UUID, value);
        uuid7::timestamp_ms(value) as f64
    })
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
