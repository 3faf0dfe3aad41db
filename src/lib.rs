//! # socket-lease
//!
//! Per-user connection quotas for WebSocket hosts, built on leases rather than counters,
//! compiled to WebAssembly for JavaScript.
//!
//! The core (ids, the lease registry) is its own crate, `socket-lease-core` (`core/`),
//! with no JavaScript in it; this crate re-exports it and adds `wasm` (private): the one
//! wasm-bindgen boundary that exposes it to JavaScript.
//!
//! ```
//! use socket_lease::id::SeededEntropy;
//! use socket_lease::registry::{options::Options, Acquired, Registry};
//!
//! let mut reg = Registry::new(Options::default(), SeededEntropy::new(7));
//! let Acquired::Granted { handle, .. } = reg.acquire("alice", None, 1_000).unwrap() else { panic!() };
//! assert!(reg.release_handle(handle, 1_001));
//! ```

pub use socket_lease_core::{error, id, registry, LeaseError};

mod wasm;
