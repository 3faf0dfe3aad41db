//! Prometheus text exposition of a registry's figures. No user id ever becomes a label:
//! user ids are unbounded and personal, and a label per user would explode the series.

use super::events::{Counters, RefusalReason};
use std::fmt::Write;

/// Renders the registry's series in the Prometheus text format (version 0.0.4).
pub fn render(active: u32, users: u32, c: &Counters) -> String {
    let mut out = String::with_capacity(2048);
    let mut series = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    series(
        "socket_lease_active_leases",
        "gauge",
        "Leases currently held.",
        u64::from(active),
    );
    series(
        "socket_lease_users",
        "gauge",
        "Users holding at least one lease.",
        u64::from(users),
    );
    series(
        "socket_lease_high_water",
        "gauge",
        "Most leases held at once since start.",
        c.high_water,
    );
    series(
        "socket_lease_acquired_total",
        "counter",
        "Leases granted.",
        c.acquired,
    );
    series(
        "socket_lease_released_total",
        "counter",
        "Leases released by the host (including reconcile).",
        c.released,
    );
    series(
        "socket_lease_expired_total",
        "counter",
        "Leases reclaimed because they were not touched within the TTL.",
        c.expired,
    );
    series(
        "socket_lease_evicted_total",
        "counter",
        "Leases removed by the evict-oldest or evict-idle policy.",
        c.evicted,
    );
    series(
        "socket_lease_unknown_release_total",
        "counter",
        "Releases of ids that named no live lease (the leak detector).",
        c.unknown_releases,
    );
    series(
        "socket_lease_near_limit_total",
        "counter",
        "Times a user crossed the warn ratio of its limit.",
        c.near_limit_events,
    );
    series(
        "socket_lease_reconciled_total",
        "counter",
        "Leases released by reconcile because their socket was gone.",
        c.reconciled,
    );
    let _ = writeln!(out, "# HELP socket_lease_rejected_total Acquires refused (or, in dry-run, reported), by reason.");
    let _ = writeln!(out, "# TYPE socket_lease_rejected_total counter");
    for reason in RefusalReason::ALL {
        let _ = writeln!(
            out,
            "socket_lease_rejected_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            c.rejected_for(reason)
        );
    }
    out
}
