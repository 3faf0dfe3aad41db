//! Boundary tests, run by wasm-bindgen-test in Node and in headless Chromium
//! (`wasm-pack test --node`, `wasm-pack test --headless --chrome`). They check what only
//! the boundary can get wrong: conversions, error shapes, and that no JS input traps.

use super::ids::{derive_id, id_from_uuid, new_id, parse_id, same_lease};
use super::registry::JsLeaseRegistry;
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;
use yaml_rust2::YamlLoader;

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn code_of(err: JsValue) -> String {
    assert!(
        err.is_instance_of::<js_sys::Error>(),
        "errors are real JS Errors"
    );
    assert_eq!(get(&err, "name").as_string().as_deref(), Some("LeaseError"));
    get(&err, "code").as_string().expect("a string code")
}

fn opts(pairs: &[(&'static str, JsValue)]) -> JsValue {
    super::convert::object(pairs)
}

fn s(x: &str) -> JsValue {
    JsValue::from_str(x)
}

fn n(x: f64) -> JsValue {
    JsValue::from_f64(x)
}

#[wasm_bindgen_test]
fn spec_vectors_through_the_boundary() {
    let valid =
        YamlLoader::load_from_str(include_str!("../../tests/fixtures/typeid/valid.yml")).unwrap();
    for case in valid[0].as_vec().unwrap() {
        let text = case["typeid"].as_str().unwrap();
        let parsed = parse_id(s(text)).unwrap();
        assert_eq!(
            get(&parsed, "kind").as_string().unwrap(),
            case["prefix"].as_str().unwrap()
        );
        assert_eq!(
            get(&parsed, "uuid").as_string().unwrap(),
            case["uuid"].as_str().unwrap()
        );
        let encoded = id_from_uuid(
            s(case["prefix"].as_str().unwrap()),
            s(case["uuid"].as_str().unwrap()),
        )
        .unwrap();
        assert_eq!(encoded, text);
    }
    let invalid =
        YamlLoader::load_from_str(include_str!("../../tests/fixtures/typeid/invalid.yml")).unwrap();
    for case in invalid[0].as_vec().unwrap() {
        let err = parse_id(s(case["typeid"].as_str().unwrap())).unwrap_err();
        assert_eq!(code_of(err), "INVALID_ID");
    }
}

#[wasm_bindgen_test]
fn ids_share_one_suffix_and_increase() {
    let a = new_id(s("conn"), None).unwrap();
    let b = new_id(s("conn"), None).unwrap();
    assert!(b > a);
    let run = derive_id(s(&a), s("run")).unwrap();
    assert!(same_lease(s(&a), s(&run)).unwrap());
    assert!(!same_lease(s(&a), s(&b)).unwrap());
    assert_eq!(
        get(&parse_id(s(&run)).unwrap(), "version").as_f64(),
        Some(7.0)
    );
}

#[wasm_bindgen_test]
fn wrong_types_are_lease_errors_not_traps() {
    let bad_values = [
        JsValue::UNDEFINED,
        JsValue::NULL,
        n(42.0),
        JsValue::TRUE,
        Object::new().into(),
        Array::new().into(),
    ];
    for v in &bad_values {
        assert_eq!(code_of(new_id(v.clone(), None).unwrap_err()), "INVALID_ID");
        assert_eq!(code_of(parse_id(v.clone()).unwrap_err()), "INVALID_ID");
    }
    let reg = JsLeaseRegistry::new(None).unwrap();
    for v in &bad_values {
        assert_eq!(
            code_of(reg.acquire(v.clone(), None).unwrap_err()),
            "INVALID_USER_ID"
        );
        assert_eq!(
            code_of(reg.release(v.clone(), None).unwrap_err()),
            "INVALID_ID"
        );
    }
    for t in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
        assert_eq!(
            code_of(
                reg.acquire(s("alice"), Some(opts(&[("now", n(t))])))
                    .unwrap_err()
            ),
            "INVALID_TIME"
        );
        assert_eq!(code_of(reg.sweep(Some(n(t))).unwrap_err()), "INVALID_TIME");
    }
    assert_eq!(
        code_of(reg.sweep(Some(s("soon"))).unwrap_err()),
        "INVALID_TIME"
    );
    assert_eq!(
        code_of(reg.acquire(s(""), None).unwrap_err()),
        "INVALID_USER_ID"
    );
    assert_eq!(
        code_of(reg.acquire(s(&"x".repeat(10_000)), None).unwrap_err()),
        "INVALID_USER_ID"
    );
    assert_eq!(
        code_of(
            reg.acquire(s("a"), Some(opts(&[("connectionKey", n(1.0))])))
                .unwrap_err()
        ),
        "INVALID_OPTION"
    );
    assert_eq!(
        code_of(
            reg.acquire(s("a"), Some(opts(&[("nope", n(1.0))])))
                .unwrap_err()
        ),
        "INVALID_OPTION"
    );
    assert_eq!(
        get(&reg.stats(), "acquired").as_f64(),
        Some(0.0),
        "nothing half-applied"
    );
    // The instance still works after all of that (a trap would have poisoned it).
    let r = reg.acquire(s("alice"), None).unwrap();
    assert_eq!(get(&r, "ok"), JsValue::TRUE);
}

#[wasm_bindgen_test]
fn options_are_validated_and_unknown_keys_rejected() {
    let cases: Vec<JsValue> = vec![
        opts(&[("perUserLimit", n(-1.0))]),
        opts(&[("perUserLimit", n(1.5))]),
        opts(&[("perUserLimit", s("5"))]),
        opts(&[("ttlMs", n(0.0))]),
        opts(&[("onLimit", s("panic"))]),
        opts(&[("mode", s("maybe"))]),
        opts(&[("warnRatio", n(2.0))]),
        opts(&[("userLimits", n(3.0))]),
        opts(&[("kinds", s("run"))]),
        opts(&[("onEvent", n(1.0))]),
        opts(&[("perUserLimt", n(5.0))]),
        n(5.0),
    ];
    for c in cases {
        assert_eq!(
            code_of(JsLeaseRegistry::new(Some(c)).err().unwrap()),
            "INVALID_OPTION"
        );
    }
    let reg = JsLeaseRegistry::new(Some(opts(&[("perUserLimit", n(1.0))]))).unwrap();
    assert_eq!(
        code_of(reg.set_limits(opts(&[("onEvent", n(1.0))])).unwrap_err()),
        "INVALID_OPTION"
    );
    assert_eq!(
        get(&reg.get_options(), "perUserLimit").as_f64(),
        Some(1.0),
        "a failed update changes nothing"
    );
}

#[wasm_bindgen_test]
fn acquire_results_have_the_documented_shape() {
    let reg = JsLeaseRegistry::new(Some(opts(&[
        ("perUserLimit", n(1.0)),
        ("ttlMs", n(1000.0)),
    ])))
    .unwrap();
    let ok = reg
        .acquire(
            s("alice"),
            Some(opts(&[("now", n(5000.0)), ("connectionKey", s("k"))])),
        )
        .unwrap();
    let lease = get(&ok, "lease");
    let id = get(&lease, "id").as_string().unwrap();
    assert!(id.starts_with("conn_"));
    assert_eq!(get(&lease, "connectionId").as_string().unwrap(), id);
    assert_eq!(
        get(&lease, "runId").as_string().unwrap(),
        id.replacen("conn_", "run_", 1)
    );
    assert_eq!(
        get(&lease, "threadId").as_string().unwrap(),
        id.replacen("conn_", "thread_", 1)
    );
    assert_eq!(get(&lease, "expiresAt").as_f64(), Some(6000.0));
    assert_eq!(Array::from(&get(&ok, "evicted")).length(), 0);
    let no = reg
        .acquire(s("alice"), Some(opts(&[("now", n(5500.0))])))
        .unwrap();
    assert_eq!(get(&no, "ok"), JsValue::FALSE);
    assert_eq!(get(&no, "reason").as_string().unwrap(), "user-limit");
    assert_eq!(get(&no, "retryAfterMs").as_f64(), Some(500.0));
    assert!(reg
        .release(s(&id.replacen("conn_", "thread_", 1)), None)
        .unwrap());
    assert!(!reg.release(s(&id), None).unwrap());
}

#[wasm_bindgen_test]
fn release_and_touch_take_a_lease_by_its_id() {
    let reg = JsLeaseRegistry::new(None).unwrap();
    let ok = reg
        .acquire(s("alice"), Some(opts(&[("now", n(5000.0))])))
        .unwrap();
    let lease = get(&ok, "lease");
    assert!(reg.touch(lease.clone(), Some(n(5001.0))).unwrap());
    let copy = opts(&[("id", get(&lease, "runId"))]);
    assert!(reg.release(copy.clone(), Some(n(5002.0))).unwrap());
    assert!(!reg.release(lease, Some(n(5003.0))).unwrap());
    for bad in [
        Object::new().into(),
        opts(&[("id", n(5.0))]),
        opts(&[("id", JsValue::NULL)]),
        Array::new().into(),
    ] {
        assert_eq!(
            code_of(reg.release(bad.clone(), None).unwrap_err()),
            "INVALID_ID"
        );
        assert_eq!(code_of(reg.touch(bad, None).unwrap_err()), "INVALID_ID");
    }
    let throwing = Object::new();
    let getter = Function::new_no_args("throw new Error('boom')");
    Object::define_property(
        &throwing,
        &s("id"),
        opts(&[("get", getter.into())]).unchecked_ref(),
    );
    let throwing: JsValue = throwing.into();
    assert_eq!(
        code_of(reg.release(throwing, None).unwrap_err()),
        "INVALID_ID"
    );
}

#[wasm_bindgen_test]
fn last_lease_id_names_what_acquire_handle_granted() {
    let reg = JsLeaseRegistry::new(Some(opts(&[("perUserLimit", n(1.0))]))).unwrap();
    assert!(reg.last_lease_id().is_null());
    let h = reg
        .acquire_handle(s("alice"), None, Some(5000.0), None)
        .unwrap();
    assert_eq!(reg.last_lease_id(), reg.handle_lease_id(h));
    assert!(reg
        .last_lease_id()
        .as_string()
        .unwrap()
        .starts_with("conn_"));
    assert!(reg.release_handle(h, Some(5001.0)).unwrap());
    assert!(reg.handle_lease_id(h).is_null());
    assert!(
        reg.last_lease_id().is_string(),
        "released since: still named"
    );
    reg.acquire_handle(s("alice"), None, Some(5002.0), None)
        .unwrap();
    assert!(
        reg.acquire_handle(s("alice"), None, Some(5002.0), None)
            .unwrap()
            < 0.0
    );
    assert!(reg.last_lease_id().is_null(), "refused");
}

#[wasm_bindgen_test]
fn event_callbacks_may_throw_or_reenter() {
    let seen = Array::new();
    let seen_for_cb = seen.clone();
    let holder: std::rc::Rc<std::cell::RefCell<Option<JsLeaseRegistry>>> = Default::default();
    let reg_for_cb = holder.clone();
    let cb = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        seen_for_cb.push(&get(&event, "type"));
        // Re-enter the registry from inside the callback...
        if let Some(reg) = reg_for_cb.borrow().as_ref() {
            let _ = reg.stats();
        }
        // ...and then throw.
        wasm_bindgen::throw_str("callback failure");
    });
    let f: &Function = cb.as_ref().unchecked_ref();
    let reg = JsLeaseRegistry::new(Some(opts(&[
        ("perUserLimit", n(1.0)),
        ("onEvent", f.clone().into()),
    ])))
    .unwrap();
    *holder.borrow_mut() = Some(reg);
    let borrowed = holder.borrow();
    let reg = borrowed.as_ref().unwrap();
    assert_eq!(
        get(&reg.acquire(s("a"), None).unwrap(), "ok"),
        JsValue::TRUE
    );
    assert_eq!(
        get(&reg.acquire(s("a"), None).unwrap(), "ok"),
        JsValue::FALSE
    );
    let types: Vec<String> = seen.iter().filter_map(|v| v.as_string()).collect();
    assert_eq!(types, vec!["near-limit", "limit-reached", "rejected"]);
    let stats = reg.stats();
    assert_eq!(get(&stats, "callbackErrors").as_f64(), Some(3.0));
    assert_eq!(get(&stats, "active").as_f64(), Some(1.0), "registry intact");
    drop(borrowed);
    drop(cb);
}

#[wasm_bindgen_test]
fn snapshots_cross_the_boundary_and_bad_ones_are_refused() {
    let reg = JsLeaseRegistry::new(None).unwrap();
    reg.acquire(s("alice"), None).unwrap();
    let bytes = reg.snapshot();
    let restored = JsLeaseRegistry::restore(bytes.clone().into(), None).unwrap();
    assert_eq!(get(&restored.stats(), "active").as_f64(), Some(1.0));
    let truncated = bytes.subarray(0, bytes.length() - 1);
    assert_eq!(
        code_of(
            JsLeaseRegistry::restore(truncated.into(), None)
                .err()
                .unwrap()
        ),
        "INVALID_SNAPSHOT"
    );
    assert_eq!(
        code_of(JsLeaseRegistry::restore(s("bytes"), None).err().unwrap()),
        "INVALID_SNAPSHOT"
    );
    let empty = Uint8Array::new_with_length(0);
    assert_eq!(
        code_of(JsLeaseRegistry::restore(empty.into(), None).err().unwrap()),
        "INVALID_SNAPSHOT"
    );
}

/// A JS string of these UTF-16 units, well-formed or not (a Rust `&str` cannot hold a
/// lone surrogate).
fn units(u: &[u16]) -> JsValue {
    u.iter()
        .fold(js_sys::JsString::from(""), |acc, &c| {
            acc.concat(&js_sys::JsString::from_char_code1(c.into()))
        })
        .into()
}

#[wasm_bindgen_test]
fn lone_surrogates_are_refused_not_folded_into_u_fffd() {
    let reg = JsLeaseRegistry::new(Some(opts(&[("perUserLimit", n(1.0))]))).unwrap();
    let ill_formed = [
        units(&[0xd800]),
        units(&[0xdbff]),
        units(&[0xdc00]),
        units(&[0x61, 0xd800, 0x62]),
        units(&[0xde00, 0xd83d]),
    ];
    for bad in &ill_formed {
        assert_eq!(
            code_of(reg.acquire(bad.clone(), None).unwrap_err()),
            "INVALID_USER_ID"
        );
        assert_eq!(
            code_of(
                reg.acquire_handle(bad.clone(), None, Some(1.0), None)
                    .unwrap_err()
            ),
            "INVALID_USER_ID"
        );
        assert_eq!(
            code_of(reg.user_stats(bad.clone(), None).unwrap_err()),
            "INVALID_USER_ID"
        );
        assert_eq!(
            code_of(reg.set_user_limit(bad.clone(), n(2.0)).unwrap_err()),
            "INVALID_USER_ID"
        );
        assert_eq!(
            code_of(
                reg.acquire(s("u"), Some(opts(&[("connectionKey", bad.clone())])))
                    .unwrap_err()
            ),
            "INVALID_OPTION"
        );
        assert_eq!(
            code_of(
                reg.acquire_handle(s("u"), Some(bad.clone()), Some(1.0), None)
                    .unwrap_err()
            ),
            "INVALID_OPTION"
        );
        let limits = Object::new();
        Reflect::set(&limits, bad, &n(2.0)).unwrap();
        assert_eq!(
            code_of(
                JsLeaseRegistry::new(Some(opts(&[("userLimits", limits.into())])))
                    .err()
                    .unwrap()
            ),
            "INVALID_OPTION"
        );
    }
    assert_eq!(get(&reg.stats(), "active").as_f64(), Some(0.0));
    // U+FFFD itself and a surrogate pair (an emoji) are users of their own.
    for good in [units(&[0xfffd]), units(&[0xd83d, 0xde00])] {
        let r = reg.acquire(good.clone(), None).unwrap();
        assert_eq!(get(&r, "ok"), JsValue::TRUE);
        assert_eq!(get(&get(&r, "lease"), "userId"), good);
    }
    assert_eq!(get(&reg.stats(), "users").as_f64(), Some(2.0));
}

#[wasm_bindgen_test]
fn acquire_reports_reclaimed_leases_and_evictable_refusals() {
    let reg = JsLeaseRegistry::new(Some(opts(&[
        ("perUserLimit", n(1.0)),
        ("ttlMs", n(1000.0)),
        ("onLimit", s("evict-oldest")),
    ])))
    .unwrap();
    let first = reg.acquire(s("u"), Some(opts(&[("now", n(0.0))]))).unwrap();
    assert_eq!(Array::from(&get(&first, "reclaimed")).length(), 0);
    assert_eq!(reg.last_removed_count(), 0);
    let no = reg
        .acquire(
            s("u"),
            Some(opts(&[("now", n(10.0)), ("evict", JsValue::FALSE)])),
        )
        .unwrap();
    assert_eq!(get(&no, "evictable"), JsValue::TRUE);
    assert_eq!(get(&reg.stats(), "rejected").as_f64(), Some(0.0));
    assert_eq!(
        reg.acquire_handle(s("u"), None, Some(10.0), Some(false))
            .unwrap(),
        -4.0
    );
    // Expired by 2000: reclaimed, not evicted.
    let next = reg
        .acquire(s("u"), Some(opts(&[("now", n(2000.0))])))
        .unwrap();
    let reclaimed = Array::from(&get(&next, "reclaimed"));
    assert_eq!(reclaimed.length(), 1);
    assert_eq!(reclaimed.get(0), get(&get(&first, "lease"), "id"));
    assert_eq!(Array::from(&get(&next, "evicted")).length(), 0);
    assert_eq!(reg.last_removed_count(), 1);
    assert_eq!(Array::from(&reg.last_reclaimed()).get(0), reclaimed.get(0));
}
