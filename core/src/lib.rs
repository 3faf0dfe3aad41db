//! # socket-lease-core
//!
//! Per-user connection quotas for WebSocket hosts, built on leases rather than counters,
//! so a forgotten release can never lock a user out for good. The core alone: no
//! JavaScript, no wasm-bindgen; the `socket-lease` crate (the repository's root) wraps it
//! for JavaScript.
//!
//! * [`id`]: one UUIDv7 per lease, spelled as spec-valid TypeIDs (`conn_`, `run_`,
//!   `thread_`) that share one suffix and resolve through an exact index.
//! * [`registry`]: the lease table with limits, TTL, heartbeat (`touch`), sweep, eviction
//!   policies, events, Prometheus metrics and snapshots.
//!
//! The core never reads a clock or the OS: time is a parameter and randomness is an
//! [`id::Entropy`], so tests run natively with a fake clock and a seeded generator.
//! (`id::OsEntropy` asks `getrandom`; on wasm32 the crate that links the core picks its
//! backend.)
//!
//! ```
//! use socket_lease_core::id::SeededEntropy;
//! use socket_lease_core::registry::{options::{Options, OptionsPatch}, Acquired, Registry};
//!
//! let patch = OptionsPatch { per_user_limit: Some(1), ..Default::default() };
//! let mut reg = Registry::new(Options::default().patched(&patch).unwrap(), SeededEntropy::new(7));
//! let Acquired::Granted { handle, .. } = reg.acquire("alice", None, 1_000).unwrap() else { panic!() };
//! assert!(matches!(reg.acquire("alice", None, 1_001).unwrap(), Acquired::Refused(_)));
//! let id = socket_lease_core::id::format("run", reg.lease(handle).unwrap().uuid);
//! assert!(reg.release(&id, 1_002).unwrap()); // any derived id releases the lease
//! assert!(!reg.release(&id, 1_003).unwrap()); // idempotent
//! ```

pub mod error;
pub mod id;
pub mod registry;

pub use error::LeaseError;
