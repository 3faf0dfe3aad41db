//! The lane's byte layout: where each lane call finds its input and leaves its output.
//! The one table both halves of the boundary read: the Rust half writes at these
//! offsets, and the JS half (js/runtime.mjs) reads them by name from
//! js/layout.generated.mjs (and its CommonJS twin), which a test generates from this file
//! and compares with the committed copy (see `tests` below). Nothing else in either half
//! spells an offset.
//!
//! A record is what one call writes. Records of different calls share bytes (each is
//! read before the next call); the fields of one record never overlap (checked at
//! compile time below), and no record reaches the suffixes `newId` makes ahead
//! (`IDS_AT` on), which the JS half hands out over several calls.

use crate::error::MAX_USER_ID_BYTES;
use crate::id::base32::SUFFIX_LEN;

/// How a field is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// One byte: a flag (0 or 1) or a small number.
    U8,
    /// An `f64`, little-endian (read with `DataView.getFloat64(at, true)`).
    F64,
    /// A 128-bit number, little-endian as wasm stores it (no byte swapping to write it):
    /// read as four `getUint32(at + 4 * i, true)`, the low 32 bits first.
    U128,
}

impl Type {
    pub const fn size(self) -> usize {
        match self {
            Type::U8 => 1,
            Type::F64 => 8,
            Type::U128 => 16,
        }
    }
}

/// A field of a record: its offset in the lane and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub at: usize,
    pub ty: Type,
}

impl Field {
    const fn new(at: usize, ty: Type) -> Self {
        Self { at, ty }
    }

    /// The byte after the field.
    pub const fn end(self) -> usize {
        self.at + self.ty.size()
    }
}

/// Bytes the lane carries.
pub const CAPACITY: usize = 1024;
/// Input (the strings of one call: a user id and a connection key of at most
/// `MAX_USER_ID_BYTES` each, or an id) is written from offset 0 and takes at most this
/// many bytes; longer input takes the checked binding instead. Scratch records (a call's
/// results, read at once) lie here too.
pub const INPUT: usize = 2 * MAX_USER_ID_BYTES;
/// Where `newId`'s suffixes go (`SUFFIX_LEN` bytes each, as many as fit), after the
/// input and the kept records, so that no call overwrites suffixes not yet handed out.
pub const IDS_AT: usize = INPUT + 16;
/// How many suffixes fit from `IDS_AT` on.
pub const IDS_ROOM: usize = (CAPACITY - IDS_AT) / SUFFIX_LEN;

/// Where a record lies, which says how long it stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// In `..INPUT`: written by a call after it read its input, read by the JS half
    /// before its next call into wasm.
    Scratch,
    /// In `INPUT..IDS_AT`: left for later, until the next call that writes it.
    Kept,
}

impl Region {
    const fn bounds(self) -> (usize, usize) {
        match self {
            Region::Scratch => (0, INPUT),
            Region::Kept => (INPUT, IDS_AT),
        }
    }
}

/// Declares the records: a module of `Field` constants per record, and (for the
/// generator) the same fields as a table, so that a field cannot be in one without the
/// other.
macro_rules! records {
    ($(
        $(#[doc = $rdoc:literal])*
        $region:ident $record:ident {
            $( $(#[doc = $doc:literal])* $name:ident: $ty:expr => $at:expr, )*
        }
    )*) => {
        $(
            $(#[doc = $rdoc])*
            pub mod $record {
                #[allow(unused_imports)]
                use super::{Field, Region, Type::*};
                /// Where the record lies.
                pub const REGION: Region = Region::$region;
                $(
                    $(#[doc = $doc])*
                    pub const $name: Field = Field::new($at, $ty);
                )*
                /// Every field, in the order declared.
                pub const ALL: &[(&str, Field)] = &[$((stringify!($name), $name)),*];
            }
        )*
        /// Every record: name, region, description, fields with their descriptions.
        #[cfg(all(test, not(target_arch = "wasm32")))]
        pub const RECORDS: &[(&str, Region, &str, &[(&str, &str, Field)])] = &[$(
            (
                stringify!($record),
                $record::REGION,
                concat!($($rdoc, "\n"),*),
                &[$((stringify!($name), concat!($($doc, "\n"),*), $record::$name)),*],
            ),
        )*];
        const _: () = assert!($(within($record::REGION, $record::ALL))&&*);
    };
}

records! {
    /// What `__acquireLeaseLane` writes for a granted acquire.
    Scratch granted {
        /// The lease's id (its `conn_`, `run_` and `thread_` ids spell it).
        UUID: U128 => 0,
        /// 1: the connection key matched a lease the user holds, which is returned.
        REUSED: U8 => 16,
        /// 1: leases were evicted to admit it (read them with `lastEvicted`).
        EVICTED: U8 => 17,
        /// 0: the lease is these fields; 1: extra kinds are configured (read the lease
        /// with `getLease`); 2: no lease (`lease: null`).
        SHAPE: U8 => 18,
        /// 1: events wait for `__dispatch`.
        EVENTS: U8 => 19,
        /// 1: expired leases were reclaimed (read them with `lastReclaimed`).
        RECLAIMED: U8 => 20,
        /// `acquiredAt`, ms.
        ACQUIRED_AT: F64 => 24,
        /// `touchedAt`, ms.
        TOUCHED_AT: F64 => 32,
        /// `expiresAt`, ms.
        EXPIRES_AT: F64 => 40,
    }
    /// What `__acquireLeaseLane` writes for a refused acquire.
    Scratch refused {
        /// 1: events wait for `__dispatch`.
        EVENTS: U8 => 19,
        /// 1: expired leases were reclaimed (read them with `lastReclaimed`).
        RECLAIMED: U8 => 20,
        /// The refusal's `limit`.
        LIMIT: F64 => 24,
        /// The refusal's `active`.
        ACTIVE: F64 => 32,
        /// The refusal's `retryAfterMs`.
        RETRY_AFTER_MS: F64 => 40,
    }
    /// What `__parseIdLane` writes for a valid id.
    Scratch parsed {
        /// The UUID.
        UUID: U128 => 0,
        /// Length of the kind in bytes (0: a bare suffix).
        KIND_LEN: U8 => 16,
        /// The UUID's version.
        VERSION: U8 => 17,
    }
    /// What `__handleLeaseIdLane` writes for a live handle.
    Scratch lease_id {
        /// The lease's id.
        UUID: U128 => 0,
    }
    /// What the last `acquireHandle` on the lane granted (`__acquireLane` writes it once
    /// its events went out, `__lastLeaseIdLane` on demand): kept for `lastLeaseId()`,
    /// until the next of either call, of any registry.
    Kept last {
        /// The lease's id.
        UUID: U128 => super::INPUT,
    }
}

/// Whether the fields of one record lie in its region and apart.
const fn within(region: Region, fields: &[(&str, Field)]) -> bool {
    let (start, end) = region.bounds();
    let mut i = 0;
    while i < fields.len() {
        let a = fields[i].1;
        if a.at < start || a.end() > end {
            return false;
        }
        let mut j = i + 1;
        while j < fields.len() {
            let b = fields[j].1;
            if a.at < b.end() && b.at < a.end() {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const _: () = assert!(IDS_AT + SUFFIX_LEN <= CAPACITY && IDS_ROOM >= 1);

/// Writes `value` as the `F64` field `field`.
pub fn put_f64(bytes: &mut [u8], field: Field, value: f64) {
    debug_assert_eq!(field.ty, Type::F64);
    put(bytes, field.at, value.to_le_bytes());
}

/// Writes `value` as the `U128` field `field`.
pub fn put_u128(bytes: &mut [u8], field: Field, value: u128) {
    debug_assert_eq!(field.ty, Type::U128);
    put(bytes, field.at, value.to_le_bytes());
}

/// `bytes[at..at + N] = value` as an array assignment: a slice's `copy_from_slice` is a
/// `memory.copy` in the .wasm, which V8 runs as a call out of wasm, whatever the length.
#[inline(always)]
fn put<const N: usize>(bytes: &mut [u8], at: usize, value: [u8; N]) {
    if let Some(dst) = bytes
        .get_mut(at..at + N)
        .and_then(|d| <&mut [u8; N]>::try_from(d).ok())
    {
        *dst = value;
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    //! The generated JS modules are committed; this test makes them from the table and
    //! fails if the committed ones differ, so the two halves cannot drift apart. After
    //! changing the layout: `UPDATE_LAYOUT=1 cargo test --lib layout` rewrites them.
    use super::*;
    use std::fmt::Write;

    const HEADER: &str = "GENERATED from src/wasm/layout.rs by its test (`UPDATE_LAYOUT=1 cargo test --lib layout` rewrites it); do not edit.";

    fn comment(text: &str, indent: &str) -> String {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        match lines.as_slice() {
            [] => String::new(),
            [one] => format!("{indent}/** {one} */\n"),
            many => {
                let mut out = format!("{indent}/**\n");
                for l in many {
                    let _ = writeln!(out, "{indent} * {l}");
                }
                let _ = writeln!(out, "{indent} */");
                out
            }
        }
    }

    fn type_name(ty: Type) -> &'static str {
        match ty {
            Type::U8 => "u8",
            Type::F64 => "f64",
            Type::U128 => "u128",
        }
    }

    /// The declarations both module formats share: `(name, doc, value)`.
    fn constants() -> Vec<(String, String, String)> {
        let mut out = vec![
            (
                "CAPACITY".into(),
                "Bytes the lane carries.".into(),
                CAPACITY.to_string(),
            ),
            (
                "INPUT".into(),
                "Input is written from offset 0 and takes at most this many bytes.".into(),
                INPUT.to_string(),
            ),
            (
                "IDS_AT".into(),
                "Where `newId`'s suffixes go, `SUFFIX_LEN` bytes each.".into(),
                IDS_AT.to_string(),
            ),
            (
                "IDS_ROOM".into(),
                "How many suffixes fit from `IDS_AT` on.".into(),
                IDS_ROOM.to_string(),
            ),
            (
                "SUFFIX_LEN".into(),
                "Characters of an id's suffix.".into(),
                SUFFIX_LEN.to_string(),
            ),
            (
                "MAX_ID_LEN".into(),
                "The longest TypeID, in characters (a 63-character kind, `_`, the suffix).".into(),
                crate::id::typeid::MAX_ID_LEN.to_string(),
            ),
            (
                "ALPHABET".into(),
                "The suffix's alphabet, in value order (5 bits a character, the first holding the top 3 of the 128).".into(),
                format!("'{}'", std::str::from_utf8(crate::id::base32::ALPHABET).unwrap()),
            ),
            (
                "CONN".into(),
                "The kind of a lease's own id, `id` (`connectionId`).".into(),
                format!("'{}'", crate::id::CONN),
            ),
            ("RUN".into(), "The kind of `runId`.".into(), format!("'{}'", crate::id::RUN)),
            (
                "THREAD".into(),
                "The kind of `threadId`.".into(),
                format!("'{}'", crate::id::THREAD),
            ),
        ];
        for (record, _, _, fields) in RECORDS {
            for (name, doc, field) in *fields {
                out.push((
                    format!("{}_{name}", record.to_uppercase()),
                    doc.to_string(),
                    field.at.to_string(),
                ));
            }
        }
        let mut table = String::from("{\n");
        for (record, region, doc, fields) in RECORDS {
            table += &comment(doc, "  ");
            let region = match region {
                Region::Scratch => "scratch",
                Region::Kept => "kept",
            };
            let _ = writeln!(
                table,
                "  {record}: {{\n    region: '{region}',\n    fields: {{"
            );
            for (name, _, field) in *fields {
                let _ = writeln!(
                    table,
                    "      {name}: {{ at: {}, size: {}, type: '{}' }},",
                    field.at,
                    field.ty.size(),
                    type_name(field.ty)
                );
            }
            table += "    },\n  },\n";
        }
        table += "}";
        out.push((
            "RECORDS".into(),
            "Every record: its region (`scratch`: in `..INPUT`, read at once; `kept`: in `INPUT..IDS_AT`, kept until written again) and its fields with their sizes and types (for tests and tools).".into(),
            table,
        ));
        out
    }

    fn module(cjs: bool) -> String {
        let mut out = String::new();
        if cjs {
            out += "'use strict';\n";
        }
        let _ = writeln!(out, "// {HEADER}");
        out += "// The lane's byte layout (src/wasm/lane.rs): where each lane call leaves what the JS\n// half reads. Names are `<RECORD>_<FIELD>` offsets into the lane.\n";
        let constants = constants();
        for (name, doc, value) in &constants {
            out += &comment(doc, "");
            let _ = writeln!(
                out,
                "{}const {name} = {value};",
                if cjs { "" } else { "export " }
            );
        }
        if cjs {
            let names: Vec<&str> = constants.iter().map(|(n, _, _)| n.as_str()).collect();
            let _ = writeln!(out, "module.exports = {{ {} }};", names.join(", "));
        }
        out
    }

    #[test]
    fn the_generated_js_layout_is_this_table() {
        let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
        let mut stale = Vec::new();
        for (file, text) in [
            ("layout.generated.mjs", module(false)),
            ("layout.generated.cjs", module(true)),
        ] {
            let path = js.join(file);
            if std::env::var_os("UPDATE_LAYOUT").is_some() {
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(file);
            }
        }
        assert!(
            stale.is_empty(),
            "js/{} differ from src/wasm/layout.rs; run `UPDATE_LAYOUT=1 cargo test --lib layout` and commit them",
            stale.join(" and js/")
        );
    }
}
