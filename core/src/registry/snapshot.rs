//! Snapshots: the registry's leases and counters as bytes, to survive a restart.
//!
//! ```text
//! "SLSN" | version u16 | payload length u32 | payload | CRC-32 (ISO-HDLC) of all before it
//! ```
//!
//! All integers are little-endian. Expiry times are absolute milliseconds, so a lease
//! restored after a long pause is simply expired at the next sweep or acquire. Restoring
//! builds a whole new registry and validates everything first: a truncated, corrupt,
//! inconsistent or newer snapshot is refused and nothing is half-restored.

use super::events::Counters;
use super::options::{Options, OptionsPatch, UserLimits};
use super::{Registry, Slot};
use crate::error::{check_user_id, LeaseError, Listed};
use crate::id::{uuid7::MAX_TIMESTAMP_MS, Entropy};
use crc::{Crc, NoTable, CRC_32_ISO_HDLC};

const MAGIC: &[u8; 4] = b"SLSN";
/// Version written by this build; older versions stay readable when they change.
pub const VERSION: u16 = 2;
/// Version 1 had no id kinds: a registry restored from it takes them from the options.
const OLDEST_READABLE: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 4;
const CRC32: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISO_HDLC);

fn bad(msg: impl Into<String>) -> LeaseError {
    LeaseError::InvalidSnapshot(msg.into())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        // Strings are user ids and keys, at most 256 bytes by construction.
        self.0.extend_from_slice(&(s.len() as u16).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], LeaseError> {
        if self.data.len() - self.at < n {
            return Err(bad(format!("truncated while reading {what}")));
        }
        let out = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    fn u8(&mut self, what: &str) -> Result<u8, LeaseError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, LeaseError> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self, what: &str) -> Result<u32, LeaseError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64, LeaseError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().unwrap_or_default(),
        ))
    }
    fn u128(&mut self, what: &str) -> Result<u128, LeaseError> {
        Ok(u128::from_le_bytes(
            self.take(16, what)?.try_into().unwrap_or_default(),
        ))
    }
    fn str(&mut self, what: &str) -> Result<&'a str, LeaseError> {
        let len = self.u16(what)? as usize;
        std::str::from_utf8(self.take(len, what)?).map_err(|_| bad(format!("{what} is not UTF-8")))
    }
    fn time(&mut self, what: &str) -> Result<u64, LeaseError> {
        let t = self.u64(what)?;
        if t > MAX_TIMESTAMP_MS + super::options::MAX_TTL_MS {
            return Err(bad(format!("{what} {t} is out of range")));
        }
        Ok(t)
    }
}

fn write_counters(w: &mut Writer, c: &Counters) {
    for v in [
        c.acquired,
        c.released,
        c.expired,
        c.evicted,
        c.rejected_user_limit,
        c.rejected_global_limit,
        c.rejected_user_table_full,
        c.unknown_releases,
        c.near_limit_events,
        c.reconciled,
        c.high_water,
    ] {
        w.u64(v);
    }
}

fn read_counters(r: &mut Reader<'_>) -> Result<Counters, LeaseError> {
    let mut v = [0u64; 11];
    for slot in &mut v {
        *slot = r.u64("counters")?;
    }
    Ok(Counters {
        acquired: v[0],
        released: v[1],
        expired: v[2],
        evicted: v[3],
        rejected_user_limit: v[4],
        rejected_global_limit: v[5],
        rejected_user_table_full: v[6],
        unknown_releases: v[7],
        near_limit_events: v[8],
        reconciled: v[9],
        high_water: v[10],
    })
}

struct RestoredLease<'a> {
    uuid: u128,
    user: &'a str,
    key: Option<&'a str>,
    acquired_at: u64,
    touched_at: u64,
    expires_at: u64,
}

impl<E: Entropy> Registry<E> {
    /// Serialises leases, counters, per-user overrides and the id generator state.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.active as usize * 80));
        let (last_ms, counter) = self.ids.state();
        w.u64(last_ms);
        w.u32(counter);
        write_counters(&mut w, &self.counters);
        w.u32(self.options.user_limits.len() as u32);
        for (user, &limit) in &self.options.user_limits {
            w.str(user);
            w.u32(limit);
        }
        // The extra id kinds (version 2): without them a restored registry would not know
        // a lease by its `chat_…` id, and releasing by it would silently do nothing.
        w.u32(self.options.kinds.len() as u32);
        for kind in &self.options.kinds {
            w.str(kind);
        }
        w.u32(self.active);
        for l in self.leases() {
            w.u128(l.uuid);
            w.str(l.user);
            match l.connection_key {
                Some(k) => {
                    w.u8(1);
                    w.str(k);
                }
                None => w.u8(0),
            }
            w.u64(l.acquired_at);
            w.u64(l.touched_at);
            w.u64(l.expires_at);
        }
        let payload = w.0;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = CRC32.checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Rebuilds a registry from `snapshot()` bytes. `patch` overrides options (over the
    /// defaults and the snapshot's per-user overrides).
    pub fn restore(bytes: &[u8], patch: &OptionsPatch, entropy: E) -> Result<Self, LeaseError> {
        if bytes.len() < HEADER_LEN + 4 {
            return Err(bad(format!(
                "{} bytes is too short to be a snapshot",
                bytes.len()
            )));
        }
        if &bytes[..4] != MAGIC {
            return Err(bad("not a socket-lease snapshot (bad magic bytes)"));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if !(OLDEST_READABLE..=VERSION).contains(&version) {
            return Err(bad(format!(
                "snapshot version {version} is not supported (this build reads versions {OLDEST_READABLE} to {VERSION})"
            )));
        }
        let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
        if bytes.len() != HEADER_LEN + len + 4 {
            return Err(bad(format!(
                "length mismatch: header says {} payload bytes, found {} (truncated or padded)",
                len,
                bytes.len().saturating_sub(HEADER_LEN + 4)
            )));
        }
        let body = &bytes[..HEADER_LEN + len];
        let stored = u32::from_le_bytes(bytes[HEADER_LEN + len..].try_into().unwrap_or_default());
        if CRC32.checksum(body) != stored {
            return Err(bad("checksum mismatch: the snapshot is corrupt"));
        }

        let mut r = Reader {
            data: &bytes[HEADER_LEN..HEADER_LEN + len],
            at: 0,
        };
        let last_ms = r.time("generator time")?;
        let counter = r.u32("generator counter")?;
        let counters = read_counters(&mut r)?;
        let n_overrides = r.u32("override count")?;
        let mut user_limits = UserLimits::default();
        for _ in 0..n_overrides {
            let user = r.str("override user")?;
            let limit = r.u32("override limit")?;
            user_limits.insert(user.to_owned(), limit);
        }
        let kinds = if version >= 2 {
            let n = r.u32("kind count")? as usize;
            if n > len {
                return Err(bad(format!("kind count {n} does not fit in {len} bytes")));
            }
            let mut kinds = Vec::with_capacity(n);
            for _ in 0..n {
                kinds.push(r.str("id kind")?.to_owned());
            }
            Some(kinds)
        } else {
            None
        };
        let n_leases = r.u32("lease count")? as usize;
        // Each lease takes at least 16 + 2 + 1 + 24 bytes; refuse absurd counts up front.
        if n_leases > (len / 43) + 1 {
            return Err(bad(format!(
                "lease count {n_leases} does not fit in {len} bytes"
            )));
        }
        let mut leases = Vec::with_capacity(n_leases);
        for _ in 0..n_leases {
            let uuid = r.u128("lease id")?;
            let user = r.str("user id")?;
            check_user_id(user).map_err(|e| bad(format!("lease {uuid:032x}: {e}")))?;
            let key = match r.u8("key flag")? {
                0 => None,
                1 => {
                    let k = r.str("connection key")?;
                    check_user_id(k).map_err(|e| bad(format!("lease {uuid:032x} key: {e}")))?;
                    Some(k)
                }
                f => return Err(bad(format!("bad key flag {f}"))),
            };
            let acquired_at = r.time("acquire time")?;
            let touched_at = r.time("touch time")?;
            let expires_at = r.time("expiry time")?;
            if !(acquired_at <= touched_at && touched_at <= expires_at) {
                return Err(bad(format!("lease {uuid:032x} has inconsistent times")));
            }
            leases.push(RestoredLease {
                uuid,
                user,
                key,
                acquired_at,
                touched_at,
                expires_at,
            });
        }
        if r.at != r.data.len() {
            return Err(bad(format!(
                "{} unexpected trailing bytes",
                r.data.len() - r.at
            )));
        }

        // Kinds are part of what the leases are (the ids they answer to): options may
        // repeat the snapshot's, not change them (as `setLimits` may not).
        if let (Some(stored), Some(asked)) = (&kinds, &patch.kinds) {
            if stored != asked {
                return Err(LeaseError::InvalidOption(format!(
                    "kinds: the snapshot's leases have kinds [{}]; restore cannot change them to [{}]",
                    Listed(stored),
                    Listed(asked)
                )));
            }
        }
        let base = Options::default()
            .patched(&OptionsPatch {
                user_limits: Some(user_limits),
                kinds: kinds.filter(|k| !k.is_empty()),
                ..Default::default()
            })
            .map_err(|e| bad(format!("per-user overrides or kinds: {e}")))?;
        let options = base.patched(patch)?;

        let mut reg = Registry::new(options, entropy);
        reg.ids.set_state(last_ms, counter);
        reg.counters = counters;
        // Duplicates and the user bound are checked while inserting into the new registry,
        // which is dropped on error, so nothing half-restored ever escapes.
        for l in leases {
            let hash = reg.name_hash(l.user);
            let u = match reg.find_user(hash, l.user) {
                Some(u) => u,
                None => {
                    if reg.active_users >= reg.options.max_users {
                        return Err(bad(format!(
                            "snapshot holds more users than maxUsers ({})",
                            reg.options.max_users
                        )));
                    }
                    reg.insert_user(hash, l.user)
                }
            };
            if reg.find_uuid(l.uuid).is_some() {
                return Err(bad(format!("lease {:032x} appears twice", l.uuid)));
            }
            let handle = reg.slots.len() as u32;
            reg.slots.push(Slot {
                uuid: super::Id128::new(l.uuid),
                acquired_at: l.acquired_at,
                touched_at: l.touched_at,
                expires_at: l.expires_at,
                user: u,
                prev: super::NONE,
                next: super::NONE,
                meta: super::LIVE | if l.key.is_some() { super::KEYED } else { 0 },
            });
            reg.link(u, handle);
            if let Some(k) = l.key {
                let hasher = reg.hasher.clone();
                let keys = reg.users[u as usize]
                    .keys
                    .get_or_insert_with(|| Box::new(super::hash::Map::with_hasher(hasher)));
                if keys.insert(k.into(), handle).is_some() {
                    return Err(bad(format!(
                        "connection key \"{k}\" of \"{}\" appears twice",
                        l.user
                    )));
                }
            }
            reg.index_uuid(handle);
            reg.active += 1;
            reg.push_expiry(handle);
        }
        // Restoring frees no entry, so every entry is a user holding leases.
        for user in reg.users.iter_mut() {
            let limit = reg.options.limit_for(user.name.as_str());
            user.near = limit > 0 && user.count >= reg.options.warn_threshold(limit);
        }
        Ok(reg)
    }
}
