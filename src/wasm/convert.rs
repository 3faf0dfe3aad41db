//! Checked conversions between `JsValue` and core types, and small object builders.

use super::errors::{js, JsResult};
use crate::error::{check_time, LeaseError, Listed};
use crate::registry::options::{Mode, OptionsPatch, Policy, UserLimits, MAX_LIMIT};
use js_sys::{Array, JsString, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

// Every JS operation on a value the caller handed in goes through an import that catches.
// A Proxy, a throwing getter or a subclass can make `Array.isArray`, `Object.keys`, an
// index read or a method throw, and a JS exception that unwinds through wasm frames skips
// Rust's cleanup: the registry stays borrowed (every later call fails) and the shadow
// stack is never popped (after a few hundred such throws the whole instance traps).
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = Array, js_name = isArray)]
    fn js_is_array(v: &JsValue) -> Result<bool, JsValue>;
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    fn js_object_keys(v: &JsValue) -> Result<Array, JsValue>;
}

/// `Array.isArray`, false when it throws (a revoked Proxy).
fn is_array(v: &JsValue) -> bool {
    js_is_array(v).unwrap_or(false)
}

/// A string argument is copied into wasm memory to be read, so one far longer than any
/// valid value is refused by its length first: a 200 MB string must not grow the
/// instance's memory (which never shrinks) by as much. 4096 UTF-16 units is far above
/// every limit (user ids 256 bytes, TypeIDs 90 characters), so no valid value is near it.
const MAX_STRING_UNITS: u32 = 4096;

/// The string's length in UTF-16 units when it is a string, without copying it.
fn string_units(v: &JsValue) -> Option<u32> {
    v.dyn_ref::<JsString>().map(JsString::length)
}

/// Whether the JS string `v`, read into Rust as `text`, is well-formed UTF-16.
///
/// The check lives here, at the boundary, because only here is the JS string still in
/// hand: reading it into Rust (the glue's `TextEncoder`) turns every lone surrogate into
/// U+FFFD, so "\ud800", "\udbff" and "\ufffd" would be one user sharing one quota, and the
/// core, which takes `&str`, cannot tell them apart. Only a text holding a U+FFFD can
/// hide one, so only then are the units read back (a call into JS each: such ids are
/// rare). Not `String.prototype.isWellFormed`: engines before 2023 lack it, and a missing
/// import would throw through wasm frames. (The lane in js/runtime.mjs sends ill-formed
/// strings here rather than encoding them; see `put` there.)
#[inline(never)]
fn well_formed(v: &JsValue, text: &str) -> bool {
    if !text.as_bytes().windows(3).any(|w| w == [0xef, 0xbf, 0xbd]) {
        return true;
    }
    let s: &JsString = v.unchecked_ref();
    let mut high = false;
    for i in 0..s.length() {
        let unit = s.char_code_at(i) as u32;
        let low = (0xdc00..0xe000).contains(&unit);
        if high != low {
            return false;
        }
        high = (0xd800..0xdc00).contains(&unit);
    }
    !high
}

/// The message for a string with a lone surrogate (js/redis/store.cjs says the same).
fn lone_surrogate(what: &str) -> String {
    format!("{what} is not well-formed UTF-16 (it has a lone surrogate)")
}

/// A short description of a JS value's type for error messages.
pub fn type_name(v: &JsValue) -> String {
    if v.is_null() {
        "null".into()
    } else if is_array(v) {
        "array".into()
    } else {
        v.js_typeof()
            .as_string()
            .unwrap_or_else(|| "unknown".into())
    }
}

/// A user id: must be a well-formed string (the core checks length).
pub fn user_id(v: &JsValue) -> JsResult<String> {
    if let Some(units) = string_units(v).filter(|&n| n > MAX_STRING_UNITS) {
        return js(Err(LeaseError::InvalidUserId(format!(
            "user id is {units} UTF-16 units long; at most {} bytes of UTF-8 allowed",
            crate::error::MAX_USER_ID_BYTES
        ))));
    }
    let Some(text) = v.as_string() else {
        return js(Err(LeaseError::InvalidUserId(format!(
            "user id must be a string, got {}",
            type_name(v)
        ))));
    };
    if !well_formed(v, &text) {
        return js(Err(LeaseError::InvalidUserId(lone_surrogate("user id"))));
    }
    Ok(text)
}

/// A lease id or other TypeID argument: must be a string.
pub fn id_arg(v: &JsValue, what: &str) -> JsResult<String> {
    if let Some(units) = string_units(v).filter(|&n| n > MAX_STRING_UNITS) {
        return js(Err(LeaseError::InvalidId(format!(
            "{what} is {units} characters long; a TypeID is at most 90"
        ))));
    }
    v.as_string().ok_or_else(|| {
        super::errors::to_js(LeaseError::InvalidId(format!(
            "{what} must be a string, got {}",
            type_name(v)
        )))
    })
}

/// The id argument of `release` and `touch`: any id, or a lease (what `acquire` returned,
/// or a copy of it), which names the lease by its `id`.
pub fn id_or_lease_arg(v: &JsValue) -> JsResult<String> {
    if !v.is_object() {
        return id_arg(v, "id");
    }
    let id = Reflect::get(v, &JsValue::from_str("id")).map_err(|_| {
        super::errors::to_js(LeaseError::InvalidId("reading the lease's id threw".into()))
    })?;
    if id.is_string() {
        id_arg(&id, "the lease's id")
    } else {
        js(Err(LeaseError::InvalidId(format!(
            "a lease given for an id must have a string id, got {}",
            type_name(&id)
        ))))
    }
}

/// `now` in ms: `undefined`/`null` means `Date.now()`.
pub fn now(v: &JsValue) -> JsResult<u64> {
    if v.is_undefined() || v.is_null() {
        return js(check_time(js_sys::Date::now()));
    }
    match v.as_f64() {
        Some(t) => js(check_time(t)),
        None => js(Err(LeaseError::InvalidTime(format!(
            "now must be a number of milliseconds, got {}",
            type_name(v)
        )))),
    }
}

/// `now` from an optional trailing argument.
pub fn now_opt(v: Option<JsValue>) -> JsResult<u64> {
    now(&v.unwrap_or(JsValue::UNDEFINED))
}

/// Whether `v` is a plain options bag (an object that is not an array or function).
pub fn is_bag(v: &JsValue) -> bool {
    v.is_object() && !is_array(v) && !v.is_function()
}

/// Own enumerable keys of an object; `INVALID_OPTION` when listing them throws (a Proxy).
pub fn keys(v: &JsValue) -> JsResult<Vec<String>> {
    let list = js_object_keys(v).map_err(|_| {
        option_err("the options' keys could not be read (listing them threw)".into())
    })?;
    Ok(list.iter().filter_map(|k| k.as_string()).collect())
}

/// One option, read once; `INVALID_OPTION` when reading it throws. (Read as `undefined`
/// instead, a throwing `connectionKey` would grant an unkeyed lease on every call: the
/// leak this library exists to prevent.)
pub fn get(obj: &JsValue, key: &str) -> JsResult<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .map_err(|_| option_err(format!("reading \"{key}\" threw")))
}

/// `Map.prototype.entries` run on `v` itself (never through `v.entries`, which a subclass
/// may replace): `None` when `v` is not a Map (the built-in throws for any other value, a
/// Proxy of a Map included), else its entries in order, read without running user code.
fn map_entries(v: &JsValue) -> JsResult<Option<Vec<(JsValue, JsValue)>>> {
    if !v.is_object() {
        return Ok(None);
    }
    let entries = Reflect::get(&js_sys::Map::new(), &JsValue::from_str("entries"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let Some(iter) = entries.and_then(|f| f.call0(v).ok()) else {
        return Ok(None);
    };
    let iter: js_sys::Iterator = iter.unchecked_into();
    let unreadable = || option_err("userLimits could not be read (iterating it threw)".into());
    let mut out = Vec::new();
    loop {
        let step = iter.next().map_err(|_| unreadable())?;
        if step.done() {
            return Ok(Some(out));
        }
        let pair = step.value();
        let key = Reflect::get_u32(&pair, 0).map_err(|_| unreadable())?;
        let value = Reflect::get_u32(&pair, 1).map_err(|_| unreadable())?;
        out.push((key, value));
    }
}

fn option_err(msg: String) -> JsValue {
    super::errors::to_js(LeaseError::InvalidOption(msg))
}

/// A non-negative integer option no larger than `max`.
pub fn int(name: &str, v: &JsValue, min: u64, max: u64) -> JsResult<u64> {
    match v.as_f64() {
        Some(n) if n.is_finite() && n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => {
            Ok(n as u64)
        }
        Some(n) => Err(option_err(format!(
            "{name} must be an integer from {min} to {max}, got {}",
            crate::error::describe_number(n)
        ))),
        None => Err(option_err(format!(
            "{name} must be a number, got {}",
            type_name(v)
        ))),
    }
}

/// A well-formed string option (refused by its length first when far too long, see
/// `string_units`).
pub fn string(name: &str, v: &JsValue) -> JsResult<String> {
    if let Some(units) = string_units(v).filter(|&n| n > MAX_STRING_UNITS) {
        return Err(option_err(format!(
            "{name} is {units} characters long; far too long"
        )));
    }
    let text = v
        .as_string()
        .ok_or_else(|| option_err(format!("{name} must be a string, got {}", type_name(v))))?;
    if !well_formed(v, &text) {
        return Err(option_err(lone_surrogate(name)));
    }
    Ok(text)
}

fn limit(name: &str, v: &JsValue) -> JsResult<u32> {
    Ok(int(name, v, 0, u64::from(MAX_LIMIT))? as u32)
}

/// Reads a `userLimits` object (or `Map`) of user id -> limit.
fn user_limits(v: &JsValue) -> JsResult<UserLimits> {
    let mut out = UserLimits::default();
    let entries: Vec<(JsValue, JsValue)> = if let Some(pairs) = map_entries(v)? {
        pairs
    } else if is_bag(v) {
        // The keys as JS strings, not read into Rust and back: a lone surrogate in one
        // must reach the check below, not read another (missing) property.
        let list = js_object_keys(v).map_err(|_| {
            option_err("the options' keys could not be read (listing them threw)".into())
        })?;
        let mut pairs = Vec::new();
        for k in list.iter() {
            let value = Reflect::get(v, &k).map_err(|_| {
                option_err(format!(
                    "reading \"{}\" threw",
                    k.as_string().unwrap_or_default()
                ))
            })?;
            pairs.push((k, value));
        }
        pairs
    } else {
        return Err(option_err(format!(
            "userLimits must be an object or Map of user id to limit, got {}",
            type_name(v)
        )));
    };
    for (k, value) in entries {
        let user = k.as_string().ok_or_else(|| {
            option_err(format!(
                "userLimits keys must be strings, got {}",
                type_name(&k)
            ))
        })?;
        if !well_formed(&k, &user) {
            // As the core words a bad key (`Options::patched`).
            return Err(option_err(format!(
                "userLimits has a bad key: {}",
                LeaseError::InvalidUserId(lone_surrogate("user id"))
            )));
        }
        let n = limit(&format!("userLimits[\"{user}\"]"), &value)?;
        out.insert(user, n);
    }
    Ok(out)
}

/// Names accepted in `new LeaseRegistry(options)`, besides `onEvent`.
pub const OPTION_NAMES: [&str; 9] = [
    "perUserLimit",
    "globalLimit",
    "userLimits",
    "ttlMs",
    "onLimit",
    "warnRatio",
    "maxUsers",
    "mode",
    "kinds",
];

/// Parses an options bag into a patch. `allow` lists the keys permitted in this call
/// (unknown keys are an error, so a typo never silently leaves a default in force).
pub fn options_patch(v: &JsValue, allow_on_event: bool) -> JsResult<OptionsPatch> {
    let mut patch = OptionsPatch::default();
    if v.is_undefined() || v.is_null() {
        return Ok(patch);
    }
    if !is_bag(v) {
        return Err(option_err(format!(
            "options must be an object, got {}",
            type_name(v)
        )));
    }
    for key in keys(v)? {
        let value = get(v, &key)?;
        if value.is_undefined() {
            continue;
        }
        match key.as_str() {
            "perUserLimit" => patch.per_user_limit = Some(limit("perUserLimit", &value)?),
            "globalLimit" => {
                patch.global_limit = Some(if value.is_null() {
                    None
                } else {
                    Some(limit("globalLimit", &value)?)
                })
            }
            "userLimits" => patch.user_limits = Some(user_limits(&value)?),
            "ttlMs" => {
                patch.ttl_ms = Some(int(
                    "ttlMs",
                    &value,
                    1,
                    crate::registry::options::MAX_TTL_MS,
                )?)
            }
            "onLimit" => patch.on_limit = Some(js(Policy::parse(&string("onLimit", &value)?))?),
            "warnRatio" => {
                patch.warn_ratio = Some(value.as_f64().ok_or_else(|| {
                    option_err(format!(
                        "warnRatio must be a number, got {}",
                        type_name(&value)
                    ))
                })?)
            }
            "maxUsers" => {
                patch.max_users = Some(int("maxUsers", &value, 1, u64::from(u32::MAX))? as u32)
            }
            "mode" => patch.mode = Some(js(Mode::parse(&string("mode", &value)?))?),
            "kinds" => {
                if !is_array(&value) {
                    return Err(option_err(format!(
                        "kinds must be an array of strings, got {}",
                        type_name(&value)
                    )));
                }
                // Read as any object: its length and items may be getters (a Proxy).
                let unreadable = || option_err("kinds could not be read (reading it threw)".into());
                let len = Reflect::get(&value, &JsValue::from_str("length"))
                    .map_err(|_| unreadable())?
                    .as_f64()
                    .unwrap_or(0.0);
                if !(0.0..=1024.0).contains(&len) {
                    return Err(option_err(format!(
                        "kinds must have at most 1024 items, got {}",
                        crate::error::describe_number(len)
                    )));
                }
                let mut kinds = Vec::new();
                for i in 0..len as u32 {
                    let item = Reflect::get_u32(&value, i).map_err(|_| unreadable())?;
                    kinds.push(string("kinds[]", &item)?);
                }
                patch.kinds = Some(kinds);
            }
            "onEvent" if allow_on_event => {}
            other => {
                return Err(option_err(format!(
                    "unknown option \"{other}\"; known options are {}{}",
                    Listed(&OPTION_NAMES),
                    if allow_on_event { ", onEvent" } else { "" }
                )))
            }
        }
    }
    Ok(patch)
}

thread_local! {
    /// Property names already turned into JS strings. Decoding a key from wasm memory
    /// on every object built cost more than the rest of `acquire`; the names are a small
    /// fixed set of literals, so they are keyed by address and looked up linearly.
    static KEYS: std::cell::RefCell<Vec<((usize, usize), JsValue)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn key(name: &'static str) -> JsValue {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let addr = (name.as_ptr() as usize, name.len());
        if let Some((_, k)) = keys.iter().find(|(a, _)| *a == addr) {
            return k.clone();
        }
        let k = JsValue::from_str(name);
        keys.push((addr, k.clone()));
        k
    })
}

/// Sets one property named by a literal.
pub fn set(obj: &JsValue, name: &'static str, value: &JsValue) {
    let _ = Reflect::set(obj, &key(name), value);
}

/// Builds a plain object from key/value pairs with literal names.
pub fn object(pairs: &[(&'static str, JsValue)]) -> JsValue {
    let obj: JsValue = Object::new().into();
    for (k, v) in pairs {
        set(&obj, k, v);
    }
    obj
}

/// A JS number from a u64 that is known to be below 2^53 (times, counters).
pub fn num(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// A JS array of strings.
pub fn strings<I: IntoIterator<Item = String>>(items: I) -> JsValue {
    let arr = Array::new();
    for s in items {
        arr.push(&JsValue::from_str(&s));
    }
    arr.into()
}
