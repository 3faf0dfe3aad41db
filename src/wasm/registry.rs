//! `LeaseRegistry` for JS: a thin newtype over the core registry.

use super::convert::{
    self, get, id_arg, id_or_lease_arg, is_bag, keys, now, now_opt, num, object, strings, user_id,
};
use super::errors::{js, to_js, JsResult};
use super::lane;
use super::layout::{granted, last, lease_id, put_f64, put_u128, refused};
use crate::error::{time_ms, LeaseError};
use crate::id::base32::SUFFIX_LEN;
use crate::id::{self, OsEntropy};
use crate::registry::events::{Event, Refusal, RefusalReason};
use crate::registry::options::OptionsPatch;
use crate::registry::{metrics, Acquired, LeaseView, Registry};
use js_sys::{Function, Reflect, Uint8Array};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;

/// Per-user connection leases with TTL, heartbeat (`touch`), sweep, eviction policies,
/// events, Prometheus metrics and snapshots.
///
/// Releasing never waits for garbage collection: call `release` on every disconnect
/// path. `free()` (or `using`, via `Symbol.dispose`) only returns the wasm memory.
#[wasm_bindgen(js_name = LeaseRegistry)]
pub struct JsLeaseRegistry {
    // `&self` methods plus a RefCell: the core is borrowed only while it runs, so an
    // `onEvent` callback may call back into the registry.
    core: RefCell<Registry<OsEntropy>>,
    on_event: Option<Function>,
    callback_errors: Cell<u64>,
    /// What the last `acquireHandle` refused or evicted, read on demand so the fast
    /// path returns a plain number.
    last_refusal: RefCell<Option<Refusal>>,
    last_evicted: RefCell<Vec<u128>>,
    /// Whether the last acquire returned the connection key's existing lease.
    last_reused: Cell<bool>,
    /// The id of the lease the last `acquireHandle` granted (`None`: it refused), for
    /// `lastLeaseId`.
    last_granted: Cell<Option<u128>>,
    /// Events being delivered (nested when a callback calls back in): the only time
    /// user code runs inside a call of this registry, so the only time `free()` could be
    /// called while the registry is in use (see `busy`).
    delivering: Cell<u32>,
}

impl JsLeaseRegistry {
    fn wrap(core: Registry<OsEntropy>, on_event: Option<Function>) -> Self {
        let mut core = core;
        core.set_collect_events(on_event.is_some());
        Self {
            core: RefCell::new(core),
            on_event,
            callback_errors: Cell::new(0),
            last_refusal: RefCell::new(None),
            last_evicted: RefCell::new(Vec::new()),
            last_reused: Cell::new(false),
            last_granted: Cell::new(None),
            delivering: Cell::new(0),
        }
    }

    /// Delivers queued events. Called after the core borrow is released. Inlined, so a
    /// registry without `onEvent` (the hot calls' usual case) pays a test, not a call.
    #[inline]
    fn dispatch(&self) {
        if let Some(callback) = &self.on_event {
            self.deliver(callback);
        }
    }

    /// `touchHandle` and `renewHandle`: a touch that counts as activity, or a renewal.
    fn extend_handle(&self, handle: f64, now: Option<f64>, activity: bool) -> JsResult<bool> {
        let t = fast_now(now)?;
        let mut core = self.core.borrow_mut();
        Ok(
            match token_arg(handle).and_then(|tok| core.resolve_token(tok)) {
                Some(h) if activity => core.touch_handle(h, t),
                Some(h) => core.renew_handle(h, t),
                None => false,
            },
        )
    }

    #[inline(never)]
    fn deliver(&self, callback: &Function) {
        let events = self.core.borrow_mut().take_events();
        self.delivering.set(self.delivering.get() + 1);
        for event in events {
            let value = event_value(&event, &self.core.borrow());
            // A throwing callback must not corrupt anything: the change is already
            // complete; we count the failure and carry on.
            if callback.call1(&JsValue::UNDEFINED, &value).is_err() {
                self.callback_errors.set(self.callback_errors.get() + 1);
            }
        }
        self.delivering.set(self.delivering.get() - 1);
    }

    fn lease_value(reg: &Registry<OsEntropy>, lease: &LeaseView<'_>) -> JsValue {
        // One JS string serves both names: `id` is the connection id.
        let conn = JsValue::from_str(&id::format(id::CONN, lease.uuid));
        let obj = object(&[
            ("id", conn.clone()),
            ("connectionId", conn),
            ("runId", JsValue::from_str(&id::format(id::RUN, lease.uuid))),
            (
                "threadId",
                JsValue::from_str(&id::format(id::THREAD, lease.uuid)),
            ),
            ("userId", JsValue::from_str(lease.user)),
            ("acquiredAt", num(lease.acquired_at)),
            ("touchedAt", num(lease.touched_at)),
            ("expiresAt", num(lease.expires_at)),
        ]);
        if let Some(key) = lease.connection_key {
            convert::set(&obj, "connectionKey", &key.into());
        }
        let kinds = &reg.options().kinds;
        if !kinds.is_empty() {
            // Configured kinds are not literals, so their names go through Reflect as is.
            let ids = js_sys::Object::new();
            for k in kinds {
                let _ = Reflect::set(&ids, &k.into(), &id::format(k, lease.uuid).into());
            }
            convert::set(&obj, "ids", &ids);
        }
        obj
    }
}

/// A JS array of lease ids (`conn_…`) from their 128-bit values.
///
/// Ids are joined into one string and split on the JS side: crossing the boundary once
/// with 10,000 ids is far cheaper than decoding 10,000 small strings one by one (a large
/// sweep spent most of its time there). Ids never contain the separator.
fn lease_ids<I: IntoIterator<Item = u128>>(uuids: I) -> JsValue {
    const CONN: &[u8] = b"conn_";
    let uuids = uuids.into_iter();
    // Written in place, no string per id: a sweep of 10,000 spent a tenth of its time
    // allocating and copying them.
    let mut joined = Vec::with_capacity(uuids.size_hint().0 * (CONN.len() + SUFFIX_LEN + 1));
    for u in uuids {
        if !joined.is_empty() {
            joined.push(b' ');
        }
        joined.extend_from_slice(CONN);
        joined.extend_from_slice(&id::base32::encode(u));
    }
    // ASCII throughout, so this never fails.
    match std::str::from_utf8(&joined) {
        Ok(text) if !text.is_empty() => js_sys::JsString::from(text).split(" ").into(),
        _ => js_sys::Array::new().into(),
    }
}

fn refusal_value(r: &Refusal) -> JsValue {
    let obj = object(&[
        ("ok", JsValue::FALSE),
        ("reason", JsValue::from_str(r.reason.as_str())),
        ("limit", num(u64::from(r.limit))),
        ("active", num(u64::from(r.active))),
        ("retryAfterMs", num(r.retry_after_ms)),
    ]);
    // Only there when true: every other refusal keeps the shape it always had.
    if r.evictable {
        convert::set(&obj, "evictable", &JsValue::TRUE);
    }
    obj
}

fn event_value(e: &Event, _reg: &Registry<OsEntropy>) -> JsValue {
    let obj = object(&[
        ("type", JsValue::from_str(e.kind.as_str())),
        ("userId", JsValue::from_str(&e.user)),
        ("active", num(u64::from(e.active))),
        ("limit", num(u64::from(e.limit))),
        ("dryRun", JsValue::from_bool(e.dry_run)),
        ("at", num(e.at)),
    ]);
    if let Some(lease) = e.lease {
        convert::set(&obj, "leaseId", &id::format(id::CONN, lease).into());
    }
    if let Some(reason) = e.reason {
        convert::set(&obj, "reason", &reason.as_str().into());
    }
    obj
}

fn on_event_option(options: &JsValue) -> JsResult<Option<Function>> {
    if !is_bag(options) {
        return Ok(None);
    }
    let cb = get(options, "onEvent")?;
    if cb.is_undefined() || cb.is_null() {
        return Ok(None);
    }
    cb.dyn_into::<Function>().map(Some).map_err(|v| {
        to_js(LeaseError::InvalidOption(format!(
            "onEvent must be a function, got {}",
            convert::type_name(&v)
        )))
    })
}

use wasm_bindgen::JsCast;

#[wasm_bindgen(js_class = LeaseRegistry)]
impl JsLeaseRegistry {
    /// Creates a registry. Every option is optional and validated; unknown option names
    /// throw `INVALID_OPTION`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_optional_param_type = "LeaseRegistryOptions")] options: Option<
            JsValue,
        >,
    ) -> JsResult<JsLeaseRegistry> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let patch = convert::options_patch(&options, true)?;
        let on_event = on_event_option(&options)?;
        let core = js(Registry::with_patch(&patch, OsEntropy::default()))?;
        Ok(Self::wrap(core, on_event))
    }

    /// Grants `userId` a lease, or refuses with `{ ok: false, reason, limit, active,
    /// retryAfterMs }`. With `connectionKey`, the same user and key return the same lease
    /// (one lease per connection, never per message). Expired leases are reclaimed first
    /// (the user's, and anyone's when room must be made at the global limit), so
    /// correctness never waits for a sweep; their ids are in `reclaimed` (on a refusal,
    /// only when there are any): close those sockets now. `evicted` and `reclaimed` are
    /// empty in the common case, so `evicted.length + reclaimed.length` (or
    /// `lastRemovedCount()`) tells whether there is anything to close.
    ///
    /// With `evict: false` it never evicts: where the policy would evict to admit, it
    /// refuses with `evictable: true` and changes nothing, for the host to ask again with
    /// eviction allowed once its own checks passed (see `AcquireOptions.evict`).
    #[wasm_bindgen(unchecked_return_type = "AcquireResult")]
    pub fn acquire(
        &self,
        #[wasm_bindgen(js_name = userId, unchecked_param_type = "string")] user: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "AcquireOptions")] options: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let user = user_id(&user)?;
        let (key, t, evict) = acquire_options(&options.unwrap_or(JsValue::UNDEFINED))?;
        // The same decision (and the same `lastRefusal`/`lastEvicted`) as every path.
        let (r, _) = js(self.acquire_decided(&user, key.as_deref(), t, evict))?;
        let core = self.core.borrow();
        let reclaimed = core.last_reclaimed();
        let result = if r >= 0.0 {
            let lease = core
                .resolve_token(r as u64)
                .and_then(|h| core.lease(h))
                .map(|l| Self::lease_value(&core, &l));
            object(&[
                ("ok", JsValue::TRUE),
                ("lease", lease.unwrap_or(JsValue::NULL)),
                (
                    "evicted",
                    lease_ids(self.last_evicted.borrow().iter().copied()),
                ),
                ("reclaimed", lease_ids(reclaimed.iter().copied())),
                ("reused", JsValue::from_bool(self.last_reused.get())),
            ])
        } else {
            let refusal = self
                .last_refusal
                .borrow()
                .as_ref()
                .map_or(JsValue::NULL, refusal_value);
            if !reclaimed.is_empty() {
                convert::set(&refusal, "reclaimed", &lease_ids(reclaimed.iter().copied()));
            }
            refusal
        };
        drop(core);
        self.dispatch();
        Ok(result)
    }

    /// The fast path of `acquire` for hot loops: returns a handle (a non-negative integer)
    /// on success, or a negative refusal code: -1 `user-limit`, -2 `global-limit`,
    /// -3 `user-table-full`, and, only with `evict` false, -4: `user-limit` where the
    /// policy would evict to admit (`lastRefusal()` has `evictable: true`; ask again with
    /// `evict` allowed to commit the eviction). Details from `lastRefusal()`.
    ///
    /// Leases this acquire removed are read with `lastEvicted()` (by the eviction policy)
    /// and `lastReclaimed()` (expired): close those sockets. Both are empty in the common
    /// case; `lastRemovedCount()` says so without building an array. No object is built;
    /// ids are materialised only when asked for with `handleLeaseId`.
    #[wasm_bindgen(js_name = acquireHandle)]
    pub fn acquire_handle(
        &self,
        #[wasm_bindgen(js_name = userId, unchecked_param_type = "string")] user: JsValue,
        #[wasm_bindgen(js_name = connectionKey, unchecked_optional_param_type = "string")]
        connection_key: Option<JsValue>,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<f64>,
        #[wasm_bindgen(unchecked_optional_param_type = "boolean")] evict: Option<bool>,
    ) -> JsResult<f64> {
        // Strings arrive as JS values, checked here as `acquire` checks them (a lone
        // surrogate would otherwise be folded into U+FFFD by the glue). The loader sends
        // most calls through the lane instead (`__acquireLane`); this is its fallback.
        let user = user_id(&user)?;
        let key = match connection_key.filter(|k| !k.is_null() && !k.is_undefined()) {
            Some(k) => Some(convert::string("connectionKey", &k)?),
            None => None,
        };
        let t = fast_now(now)?;
        let (result, granted) =
            js(self.acquire_decided(&user, key.as_deref(), t, evict.unwrap_or(true)))?;
        self.dispatch();
        // After the events: a callback's own acquire is over by now, this one is the last.
        self.last_granted.set(granted);
        Ok(result)
    }

    /// `acquireHandle` on the lane (see `lane`): the user id is the first `user_len`
    /// bytes of the lane, the connection key the next `key_len` (negative: none); the JS
    /// half always passes `now` (its clock if none was given); `keep` not 0: `evict`
    /// false. Returns what `acquireHandle` returns, or NaN where it would throw (the JS
    /// half then calls it to throw). A granted lease's id is left in `layout::last`, for
    /// `lastLeaseId`.
    #[wasm_bindgen(js_name = "__acquireLane", skip_typescript)]
    pub fn acquire_lane(&self, user_len: u32, key_len: i32, now: f64, keep: u32) -> f64 {
        let Some(t) = time_ms(now) else {
            return f64::NAN;
        };
        let decided = lane::with(|bytes| {
            let (user, key) = lane::user_and_key(bytes, user_len, key_len)?;
            let decided = self.acquire_decided(user, key, t, keep == 0).ok()?;
            if let Some(uuid) = decided.1 {
                put_u128(bytes, last::UUID, uuid);
            }
            Some(decided)
        });
        // Events go out after the lane is released: a callback may call `newId`.
        self.dispatch();
        let Some((result, granted)) = decided else {
            return f64::NAN;
        };
        // After the events: this acquire returns last, whatever a callback acquired.
        self.last_granted.set(granted);
        if let (Some(uuid), Some(_)) = (granted, &self.on_event) {
            lane::with(|bytes| put_u128(bytes, last::UUID, uuid));
        }
        result
    }

    /// The decision of `acquireHandle`, without dispatching events (no JS is called):
    /// its answer and, when granted, the lease's id. Not inlined: four exports share it,
    /// and the core's `acquire` is large.
    #[inline(never)]
    fn acquire_decided(
        &self,
        user: &str,
        key: Option<&str>,
        t: u64,
        evict: bool,
    ) -> Result<(f64, Option<u128>), LeaseError> {
        let mut core = self.core.borrow_mut();
        Ok(match core.acquire_with(user, key, t, evict)? {
            Acquired::Granted {
                handle,
                evicted,
                reused,
            } => {
                if !evicted.is_empty() || !self.last_evicted.borrow().is_empty() {
                    *self.last_evicted.borrow_mut() = evicted;
                }
                self.last_reused.set(reused);
                let uuid = core.lease_times(handle).map(|(uuid, _)| uuid);
                (core.token(handle) as f64, uuid)
            }
            Acquired::Refused(r) => {
                let code = if r.evictable {
                    -4.0
                } else {
                    refusal_code(r.reason)
                };
                *self.last_refusal.borrow_mut() = Some(r);
                self.last_evicted.borrow_mut().clear();
                (code, None)
            }
        })
    }

    /// `acquire` on the lane: takes what `__acquireLane` takes and returns what it
    /// returns, and writes what the JS half needs to build the result the checked
    /// `acquire` returns: the record `layout::granted` or `layout::refused`.
    ///
    /// Events are not dispatched here: a callback may use the lane, so the JS half reads
    /// it first and then calls `__dispatch`.
    #[wasm_bindgen(js_name = "__acquireLeaseLane", skip_typescript)]
    pub fn acquire_lease_lane(&self, user_len: u32, key_len: i32, now: f64, keep: u32) -> f64 {
        let Some(t) = time_ms(now) else {
            return f64::NAN;
        };
        lane::with(|bytes| {
            let (user, key) = lane::user_and_key(bytes, user_len, key_len)?;
            let (r, _) = self.acquire_decided(user, key, t, keep == 0).ok()?;
            // From here on the acquire has happened: nothing may return NaN, which
            // would make the JS half repeat it on the checked binding.
            let core = self.core.borrow();
            let (events, reclaimed) = if r >= 0.0 {
                (granted::EVENTS, granted::RECLAIMED)
            } else {
                (refused::EVENTS, refused::RECLAIMED)
            };
            bytes[events.at] = u8::from(self.on_event.is_some());
            bytes[reclaimed.at] = u8::from(!core.last_reclaimed().is_empty());
            if r >= 0.0 {
                match core
                    .resolve_token(r as u64)
                    .and_then(|h| core.lease_times(h))
                {
                    Some((uuid, [acquired, touched, expires])) => {
                        // The id as a number: the JS half spells its ids (conn_, run_,
                        // thread_) from it, which costs less than encoding them here
                        // and copying the text out.
                        put_u128(bytes, granted::UUID, uuid);
                        bytes[granted::REUSED.at] = u8::from(self.last_reused.get());
                        bytes[granted::EVICTED.at] =
                            u8::from(!self.last_evicted.borrow().is_empty());
                        bytes[granted::SHAPE.at] = u8::from(!core.options().kinds.is_empty());
                        put_f64(bytes, granted::ACQUIRED_AT, acquired as f64);
                        put_f64(bytes, granted::TOUCHED_AT, touched as f64);
                        put_f64(bytes, granted::EXPIRES_AT, expires as f64);
                    }
                    // Not reachable (a granted handle names a live lease); `acquire`
                    // answers `lease: null` then, and so does the JS half on 2.
                    None => bytes[granted::SHAPE.at] = 2,
                }
            } else {
                let [limit, active, retry] =
                    self.last_refusal.borrow().as_ref().map_or([0; 3], |r| {
                        [r.limit.into(), r.active.into(), r.retry_after_ms]
                    });
                put_f64(bytes, refused::LIMIT, limit as f64);
                put_f64(bytes, refused::ACTIVE, active as f64);
                put_f64(bytes, refused::RETRY_AFTER_MS, retry as f64);
            }
            Some(r)
        })
        .unwrap_or(f64::NAN)
    }

    /// Delivers the events of the last lane call that left them (see `__acquireLeaseLane`).
    #[wasm_bindgen(js_name = "__dispatch", skip_typescript)]
    pub fn dispatch_lane(&self) {
        self.dispatch();
    }

    /// `release` on the lane, of the id in the first `len` bytes: 1 released, 0 not
    /// (unknown ids counted), NaN where `release` would throw.
    #[wasm_bindgen(js_name = "__releaseIdLane", skip_typescript)]
    pub fn release_id_lane(&self, len: u32, now: f64) -> f64 {
        let Some(t) = time_ms(now) else {
            return f64::NAN;
        };
        let released = lane::with(|bytes| {
            let text = lane::text(bytes, 0, len as usize)?;
            self.core.borrow_mut().release(text, t).ok()
        });
        self.dispatch();
        released.map_or(f64::NAN, |r| f64::from(u8::from(r)))
    }

    /// `touch` on the lane, of the id in the first `len` bytes: 1 touched, 0 not, NaN
    /// where `touch` would throw.
    #[wasm_bindgen(js_name = "__touchIdLane", skip_typescript)]
    pub fn touch_id_lane(&self, len: u32, now: f64) -> f64 {
        let Some(t) = time_ms(now) else {
            return f64::NAN;
        };
        lane::with(|bytes| {
            let text = lane::text(bytes, 0, len as usize)?;
            self.core.borrow_mut().touch(text, t).ok()
        })
        .map_or(f64::NAN, |r| f64::from(u8::from(r)))
    }

    /// `releaseHandle` on the lane: 1 released, 0 not, NaN for a bad `now` (the JS
    /// half then calls `releaseHandle` to throw). Skips the `Result` the glue unpacks.
    #[wasm_bindgen(js_name = "__releaseLane", skip_typescript)]
    pub fn release_lane(&self, handle: f64, now: f64) -> f64 {
        let Some(t) = time_ms(now) else {
            return f64::NAN;
        };
        let released = self.release_decided(handle, t);
        self.dispatch();
        f64::from(u8::from(released))
    }

    fn release_decided(&self, handle: f64, t: u64) -> bool {
        let mut core = self.core.borrow_mut();
        match token_arg(handle).and_then(|tok| core.resolve_token(tok)) {
            Some(h) => core.release_handle(h, t),
            None => {
                core.count_unknown_release();
                false
            }
        }
    }

    /// Releases by handle (fast path). `false` for a stale or unknown handle (counted).
    #[wasm_bindgen(js_name = releaseHandle)]
    pub fn release_handle(
        &self,
        handle: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<f64>,
    ) -> JsResult<bool> {
        let t = fast_now(now)?;
        let released = self.release_decided(handle, t);
        self.dispatch();
        Ok(released)
    }

    /// Touches by handle (fast path). `false` for a stale handle or an expired lease.
    #[wasm_bindgen(js_name = touchHandle)]
    pub fn touch_handle(
        &self,
        handle: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<f64>,
    ) -> JsResult<bool> {
        self.extend_handle(handle, now, true)
    }

    /// `touchHandle` for keep-alives: extends the lease without counting as activity, so
    /// `evict-idle` still sees a socket that only answers pings as idle. `false` when the
    /// handle is stale or the lease already expired.
    #[wasm_bindgen(js_name = renewHandle)]
    pub fn renew_handle(
        &self,
        handle: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<f64>,
    ) -> JsResult<bool> {
        self.extend_handle(handle, now, false)
    }

    /// Whether an `onEvent` callback of this registry is running (the registry is in use
    /// further up the stack). `free()` then waits until the call returns (js/runtime.mjs):
    /// the generated `free` drops its pointer before the wasm side can refuse.
    #[wasm_bindgen(js_name = __busy)]
    pub fn busy(&self) -> bool {
        self.delivering.get() > 0
    }

    /// The lease id (`conn_…`) of a live handle, or `null`.
    #[wasm_bindgen(js_name = handleLeaseId, unchecked_return_type = "string | null")]
    pub fn handle_lease_id(&self, handle: f64) -> JsValue {
        self.handle_uuid(handle)
            .map_or(JsValue::NULL, |uuid| id::format(id::CONN, uuid).into())
    }

    fn handle_uuid(&self, handle: f64) -> Option<u128> {
        let core = self.core.borrow();
        let h = token_arg(handle).and_then(|tok| core.resolve_token(tok))?;
        core.lease_times(h).map(|(uuid, _)| uuid)
    }

    /// `handleLeaseId` on the lane: writes the live handle's lease id as the record
    /// `layout::lease_id` and returns 1, or returns 0 (the JS half spells `conn_…`).
    #[wasm_bindgen(js_name = "__handleLeaseIdLane", skip_typescript)]
    pub fn handle_lease_id_lane(&self, handle: f64) -> u32 {
        match self.handle_uuid(handle) {
            Some(uuid) => {
                lane::with(|bytes| put_u128(bytes, lease_id::UUID, uuid));
                1
            }
            None => 0,
        }
    }

    /// The lease id (`conn_…`) of the lease the last `acquireHandle` of this registry
    /// granted, or `null` if it refused (or none was made): what `handleLeaseId` gave for
    /// that handle right then, released since or not. The id of what a host just
    /// admitted without a second lookup: the JS half spells it from the bytes that
    /// acquire left in the lane, so an acquire whose id is never asked for pays nothing.
    #[wasm_bindgen(js_name = lastLeaseId, unchecked_return_type = "string | null")]
    pub fn last_lease_id(&self) -> JsValue {
        self.last_granted
            .get()
            .map_or(JsValue::NULL, |uuid| id::format(id::CONN, uuid).into())
    }

    /// `lastLeaseId` on the lane, when the lane no longer holds this registry's: writes
    /// it as the record `layout::last` and returns 1, or returns 0 (`null`).
    #[wasm_bindgen(js_name = "__lastLeaseIdLane", skip_typescript)]
    pub fn last_lease_id_lane(&self) -> u32 {
        match self.last_granted.get() {
            Some(uuid) => {
                lane::with(|bytes| put_u128(bytes, last::UUID, uuid));
                1
            }
            None => 0,
        }
    }

    /// The refusal behind the last refused `acquire` or `acquireHandle`, or `null`.
    #[wasm_bindgen(js_name = lastRefusal, unchecked_return_type = "Refusal | null")]
    pub fn last_refusal(&self) -> JsValue {
        match self.last_refusal.borrow().as_ref() {
            Some(r) => refusal_value(r),
            None => JsValue::NULL,
        }
    }

    /// Lease ids evicted by the last `acquire` or `acquireHandle` (close those sockets);
    /// empty after a refusal or an acquire that evicted nothing. Check
    /// `lastRemovedCount()` first: in the common case it is 0 and no array need be built.
    #[wasm_bindgen(js_name = lastEvicted, unchecked_return_type = "string[]")]
    pub fn last_evicted(&self) -> JsValue {
        lease_ids(self.last_evicted.borrow().iter().copied())
    }

    /// Ids of the expired leases (of any user) the last `acquire` or `acquireHandle`
    /// reclaimed, granted or refused: close those sockets now rather than at the next
    /// `sweep` (which still lists them too). Check `lastRemovedCount()` first: in the
    /// common case it is 0 and no array need be built.
    #[wasm_bindgen(js_name = lastReclaimed, unchecked_return_type = "string[]")]
    pub fn last_reclaimed(&self) -> JsValue {
        lease_ids(self.core.borrow().last_reclaimed().iter().copied())
    }

    /// How many leases the last `acquire` or `acquireHandle` removed: evicted plus
    /// reclaimed. The cheap check after every acquire: only when it is not 0 are
    /// `lastEvicted()` and `lastReclaimed()` worth calling.
    #[wasm_bindgen(js_name = lastRemovedCount)]
    pub fn last_removed_count(&self) -> u32 {
        let reclaimed = self.core.borrow().last_reclaimed().len();
        (self.last_evicted.borrow().len() + reclaimed) as u32
    }

    /// Releases the lease named by any of its ids (`conn_`, `run_`, `thread_`, extra
    /// kinds), or the lease `acquire` returned (itself, or any copy: by its `id`).
    /// Returns `false` for an unknown or already released lease, and counts it
    /// (`unknownReleases`): never throws for a well-formed id, so it is safe on every
    /// disconnect path. A malformed id throws `INVALID_ID`.
    pub fn release(
        &self,
        #[wasm_bindgen(js_name = anyId, unchecked_param_type = "string | Lease")] any_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<JsValue>,
    ) -> JsResult<bool> {
        let text = id_or_lease_arg(&any_id)?;
        let t = now_opt(now)?;
        let released = js(self.core.borrow_mut().release(&text, t))?;
        self.dispatch();
        Ok(released)
    }

    /// Heartbeat: extends the lease's expiry to `now + ttlMs`. `false` if the lease is
    /// unknown or already expired (the host should close that socket). Takes any id, or
    /// the lease `acquire` returned, as `release` does.
    pub fn touch(
        &self,
        #[wasm_bindgen(js_name = anyId, unchecked_param_type = "string | Lease")] any_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<JsValue>,
    ) -> JsResult<bool> {
        let text = id_or_lease_arg(&any_id)?;
        let t = now_opt(now)?;
        js(self.core.borrow_mut().touch(&text, t))
    }

    /// Reclaims every lease expired at `now` and returns their ids (plus those reclaimed
    /// lazily by `acquire` since the last sweep): close those sockets. Costs what expired.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn sweep(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let t = now_opt(now)?;
        let expired = self.core.borrow_mut().sweep(t);
        self.dispatch();
        Ok(lease_ids(expired))
    }

    /// Releases every lease whose id is not in `liveIds` (any derived ids of the sockets
    /// the host really holds) and returns the released lease ids. All ids are checked
    /// first: one malformed id throws `INVALID_ID` and nothing is released.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn reconcile(
        &self,
        #[wasm_bindgen(js_name = liveIds, unchecked_param_type = "Iterable<string>")]
        live_ids: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let t = now_opt(now)?;
        let iter = js_sys::try_iter(&live_ids).ok().flatten().ok_or_else(|| {
            to_js(LeaseError::InvalidId(format!(
                "liveIds must be an iterable of ids, got {}",
                convert::type_name(&live_ids)
            )))
        })?;
        let mut live = Vec::new();
        for item in iter {
            let item = item?;
            live.push(id_arg(&item, "every live id")?);
        }
        let released = js(self.core.borrow_mut().reconcile(&live, t))?;
        self.dispatch();
        Ok(lease_ids(released))
    }

    /// Changes options at run time (all but `onEvent` and `kinds`). Lowering a limit
    /// never drops existing leases; new ones are refused until the user is under it.
    #[wasm_bindgen(js_name = setLimits)]
    pub fn set_limits(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Omit<LeaseRegistryOptions, \"onEvent\">")]
        options: JsValue,
    ) -> JsResult<()> {
        if options.is_undefined() || options.is_null() {
            return js(Err(LeaseError::InvalidOption(
                "setLimits needs an options object".into(),
            )));
        }
        let patch = convert::options_patch(&options, false)?;
        js(self.core.borrow_mut().set_limits(&patch))
    }

    /// Sets one user's limit, or removes the override with `null`.
    #[wasm_bindgen(js_name = setUserLimit)]
    pub fn set_user_limit(
        &self,
        #[wasm_bindgen(js_name = userId, unchecked_param_type = "string")] user: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number | null")] limit: JsValue,
    ) -> JsResult<()> {
        let user = user_id(&user)?;
        let limit = if limit.is_null() || limit.is_undefined() {
            None
        } else {
            Some(convert::int(
                "limit",
                &limit,
                0,
                u64::from(crate::registry::options::MAX_LIMIT),
            )? as u32)
        };
        js(self.core.borrow_mut().set_user_limit(&user, limit))
    }

    /// Totals since creation (or since the snapshot they were restored from).
    #[wasm_bindgen(unchecked_return_type = "LeaseStats")]
    pub fn stats(&self) -> JsValue {
        let s = self.core.borrow().stats();
        let c = &s.counters;
        object(&[
            ("active", num(u64::from(s.active))),
            ("users", num(u64::from(s.users))),
            ("highWater", num(c.high_water)),
            ("acquired", num(c.acquired)),
            ("released", num(c.released)),
            ("expired", num(c.expired)),
            ("evicted", num(c.evicted)),
            ("rejected", num(c.rejected())),
            ("unknownReleases", num(c.unknown_releases)),
            ("nearLimitEvents", num(c.near_limit_events)),
            ("reconciled", num(c.reconciled)),
            ("callbackErrors", num(self.callback_errors.get())),
        ])
    }

    /// One user's unexpired leases (oldest first) and the limit that applies to it.
    #[wasm_bindgen(js_name = userStats, unchecked_return_type = "UserStats")]
    pub fn user_stats(
        &self,
        #[wasm_bindgen(js_name = userId, unchecked_param_type = "string")] user: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "number")] now: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let user = user_id(&user)?;
        js(crate::error::check_user_id(&user))?;
        let t = now_opt(now)?;
        let core = self.core.borrow();
        let (limit, leases) = core.user_leases(&user, t);
        let list = js_sys::Array::new();
        for l in &leases {
            list.push(&Self::lease_value(&core, l));
        }
        Ok(object(&[
            ("active", num(leases.len() as u64)),
            ("limit", num(u64::from(limit))),
            ("leases", list.into()),
        ]))
    }

    /// The lease named by any of its ids, or `null`.
    #[wasm_bindgen(js_name = getLease, unchecked_return_type = "Lease | null")]
    pub fn get_lease(
        &self,
        #[wasm_bindgen(js_name = anyId, unchecked_param_type = "string")] any_id: JsValue,
    ) -> JsResult<JsValue> {
        let text = id_arg(&any_id, "id")?;
        let core = self.core.borrow();
        let handle = js(core.resolve(&text))?;
        Ok(handle
            .and_then(|h| core.lease(h))
            .map_or(JsValue::NULL, |l| Self::lease_value(&core, &l)))
    }

    /// The options in force (without `onEvent`).
    #[wasm_bindgen(js_name = getOptions, unchecked_return_type = "Required<Omit<LeaseRegistryOptions, \"onEvent\">>")]
    pub fn get_options(&self) -> JsValue {
        let core = self.core.borrow();
        let o = core.options();
        let user_limits = js_sys::Object::new();
        for (user, limit) in &o.user_limits {
            let value = num(u64::from(*limit));
            if user == "__proto__" {
                // Assigned, this name would set the object's prototype, not a property.
                let desc = object(&[
                    ("value", value),
                    ("enumerable", JsValue::TRUE),
                    ("writable", JsValue::TRUE),
                    ("configurable", JsValue::TRUE),
                ]);
                let _ = Reflect::define_property(&user_limits, &user.into(), desc.unchecked_ref());
            } else {
                let _ = Reflect::set(&user_limits, &user.into(), &value);
            }
        }
        object(&[
            ("perUserLimit", num(u64::from(o.per_user_limit))),
            (
                "globalLimit",
                o.global_limit.map_or(JsValue::NULL, |g| num(u64::from(g))),
            ),
            ("userLimits", user_limits.into()),
            ("ttlMs", num(o.ttl_ms)),
            ("onLimit", o.on_limit.as_str().into()),
            ("warnRatio", JsValue::from_f64(o.warn_ratio)),
            ("maxUsers", num(u64::from(o.max_users))),
            ("mode", o.mode.as_str().into()),
            ("kinds", strings(o.kinds.iter().cloned())),
        ])
    }

    /// Prometheus text exposition of the `socket_lease_*` series. No user id in labels.
    pub fn metrics(&self) -> String {
        let core = self.core.borrow();
        let s = core.stats();
        metrics::render(s.active, s.users, &s.counters)
    }

    /// Versioned, checksummed bytes of every lease (absolute expiry times), the counters
    /// and per-user overrides. Restore with `LeaseRegistry.restore`.
    pub fn snapshot(&self) -> Uint8Array {
        Uint8Array::from(&self.core.borrow().snapshot()[..])
    }

    /// Rebuilds a registry from `snapshot()` bytes; `options` apply on top. A truncated,
    /// corrupt or newer snapshot throws `INVALID_SNAPSHOT` and nothing is restored.
    pub fn restore(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "LeaseRegistryOptions")] options: Option<
            JsValue,
        >,
    ) -> JsResult<JsLeaseRegistry> {
        let Some(array) = bytes.dyn_ref::<Uint8Array>() else {
            return js(Err(LeaseError::InvalidSnapshot(format!(
                "snapshot must be a Uint8Array, got {}",
                convert::type_name(&bytes)
            ))));
        };
        let data = array.to_vec();
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let patch: OptionsPatch = convert::options_patch(&options, true)?;
        let on_event = on_event_option(&options)?;
        let core = js(Registry::restore(&data, &patch, OsEntropy::default()))?;
        Ok(Self::wrap(core, on_event))
    }
}

/// Fast-path refusal codes returned by `acquireHandle` (negative, so any handle is >= 0).
fn refusal_code(reason: RefusalReason) -> f64 {
    match reason {
        RefusalReason::UserLimit => -1.0,
        RefusalReason::GlobalLimit => -2.0,
        RefusalReason::UserTableFull => -3.0,
    }
}

/// `now` on the fast path arrives as a plain number (no JsValue round trip); the JS
/// engine has already converted it, so only the range is checked here.
fn fast_now(now: Option<f64>) -> JsResult<u64> {
    js(crate::error::check_time(
        now.unwrap_or_else(js_sys::Date::now),
    ))
}

fn token_arg(v: f64) -> Option<u64> {
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9_007_199_254_740_992.0)
        .then_some(v as u64)
}

/// `acquire`'s options: connection key, time, and whether it may evict.
fn acquire_options(v: &JsValue) -> JsResult<(Option<String>, u64, bool)> {
    if v.is_undefined() || v.is_null() {
        return Ok((None, now(&JsValue::UNDEFINED)?, true));
    }
    if !is_bag(v) {
        return js(Err(LeaseError::InvalidOption(format!(
            "acquire options must be an object, got {}",
            convert::type_name(v)
        ))));
    }
    let mut key = None;
    let mut t = JsValue::UNDEFINED;
    let mut evict = true;
    for k in keys(v)? {
        let value = get(v, &k)?;
        match k.as_str() {
            "connectionKey" => {
                if !(value.is_undefined() || value.is_null()) {
                    key = Some(convert::string("connectionKey", &value)?);
                }
            }
            "now" => t = value,
            "evict" => {
                if let Some(b) = value.as_bool() {
                    evict = b;
                } else if !(value.is_undefined() || value.is_null()) {
                    return js(Err(LeaseError::InvalidOption(format!(
                        "evict must be a boolean, got {}",
                        convert::type_name(&value)
                    ))));
                }
            }
            other => {
                return js(Err(LeaseError::InvalidOption(format!(
                    "unknown acquire option \"{other}\"; known: connectionKey, now, evict"
                ))))
            }
        }
    }
    Ok((key, now(&t)?, evict))
}
