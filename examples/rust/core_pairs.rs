//! Native timing of the core's acquire + release pair, to separate the core's cost from
//! the boundary's when tuning (`cargo run --release --example core_pairs`).
use socket_lease::id::SeededEntropy;
use socket_lease::registry::options::{Options, OptionsPatch};
use socket_lease::registry::{Acquired, Registry};
use std::time::Instant;

fn main() {
    let patch = OptionsPatch {
        per_user_limit: Some(1000),
        ttl_ms: Some(1 << 30),
        ..Default::default()
    };
    let mut reg = Registry::new(
        Options::default().patched(&patch).unwrap(),
        SeededEntropy::new(1),
    );
    let now = 1_700_000_000_000;
    for i in 0..10_000 {
        reg.acquire(&format!("u{}", i % 100_000), None, now)
            .unwrap();
    }
    let users: Vec<String> = (0..1000).map(|i| format!("user{i}")).collect();
    let n = 3_000_000;
    let start = Instant::now();
    for i in 0..n {
        if let Acquired::Granted { handle, .. } = reg.acquire(&users[i % 1000], None, now).unwrap()
        {
            reg.release_handle(handle, now);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "core acquire+release: {:.0} pairs/s ({:.0} ns/pair)",
        n as f64 / secs,
        secs * 1e9 / n as f64
    );

    // Sweep: 10,000 expiring out of 1,000,000 live leases over 100,000 users.
    let patch = OptionsPatch {
        per_user_limit: Some(1000),
        ttl_ms: Some(1000),
        ..Default::default()
    };
    let mut reg = Registry::new(
        Options::default().patched(&patch).unwrap(),
        SeededEntropy::new(2),
    );
    for i in 0..1_000_000u64 {
        let t = if i < 10_000 { now } else { now + 500 };
        reg.acquire(&format!("u{}", i % 100_000), None, t).unwrap();
    }
    let start = Instant::now();
    let expired = reg.sweep(now + 1000);
    println!(
        "core sweep of {} out of 1M: {:.2} ms",
        expired.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
}
