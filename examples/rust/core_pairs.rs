//! Native timing of the core, to separate its cost from the boundary's when tuning
//! (`cargo run --release --example core_pairs [pairs|sweep|memory]...`, all by default).
//!
//! The workloads follow bench/core.mjs: 100,000 users named `user-<i>`, lease `i` going
//! to user `i mod 100,000`, pairs walking the users with a cursor, sweeps expiring one
//! group of 10,000 out of 1,000,000 and refilling it. Memory is what the allocator holds
//! (live bytes, and the peak, which is what wasm linear memory cannot give back); native
//! pointers are twice the size of wasm32's, so it reads high against the .wasm figure.
//! Times are this thread's CPU time.
use socket_lease::id::SeededEntropy;
use socket_lease::registry::options::{Options, OptionsPatch};
use socket_lease::registry::{Acquired, Registry};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// This thread's CPU time in seconds (the machine is shared: wall time charges other
/// processes' bursts to whatever runs here). Wall time where that is not available.
fn cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: a valid clock id and a pointer to a live timespec.
        if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.sec as f64 + ts.nsec as f64 * 1e-9;
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

const T0: u64 = 1_700_000_000_000;
const TTL: u64 = 90_000;
const USERS: usize = 100_000;
const BIG: usize = 1_000_000;
const SWEEP_BATCH: usize = 10_000;
const SWEEP_RUNS: usize = 7;
const NOW: u64 = T0 + SWEEP_RUNS as u64;

fn registry(seed: u64) -> Registry<SeededEntropy> {
    let patch = OptionsPatch {
        ttl_ms: Some(TTL),
        ..Default::default()
    };
    Registry::new(
        Options::default().patched(&patch).unwrap(),
        SeededEntropy::new(seed),
    )
}

/// As bench/core.mjs: the first SWEEP_RUNS groups of a 1M fill at T0 + group.
fn fill(reg: &mut Registry<SeededEntropy>, users: &[String], count: usize) {
    for i in 0..count {
        let group = i / SWEEP_BATCH;
        let t = if count == BIG && group < SWEEP_RUNS {
            T0 + group as u64
        } else {
            NOW
        };
        match reg.acquire(&users[i % USERS], None, t).unwrap() {
            Acquired::Granted { .. } => {}
            Acquired::Refused(r) => panic!("fill refused: {r:?}"),
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn pairs(users: &[String]) {
    let lives: &[usize] = if std::env::var_os("PAIRS_10K_ONLY").is_some() {
        &[10_000]
    } else {
        &[10_000, BIG]
    };
    for &live in lives {
        let mut reg = registry(1);
        fill(&mut reg, users, live);
        let n = 2_000_000;
        let mut rates = Vec::new();
        let mut j = 0;
        let allocs = ALLOCS.load(Relaxed);
        for _ in 0..5 {
            let start = cpu_seconds();
            for _ in 0..n {
                if let Acquired::Granted { handle, .. } = reg.acquire(&users[j], None, NOW).unwrap()
                {
                    reg.release_handle(handle, NOW);
                }
                j = if j + 1 == USERS { 0 } else { j + 1 };
            }
            rates.push(n as f64 / (cpu_seconds() - start));
        }
        let allocs = (ALLOCS.load(Relaxed) - allocs) as f64 / (5 * n) as f64;
        let rate = median(rates);
        println!(
            "pairs at {live} live over {USERS} users: {:.2} M pairs/s ({:.0} ns/pair, {allocs:.3} allocations/pair)",
            rate / 1e6,
            1e9 / rate
        );
    }
}

fn sweep(users: &[String]) {
    let mut reg = registry(2);
    fill(&mut reg, users, BIG);
    let mut ms = Vec::new();
    for r in 0..SWEEP_RUNS {
        let now = T0 + r as u64 + TTL;
        let start = cpu_seconds();
        let expired = reg.sweep(now);
        ms.push((cpu_seconds() - start) * 1e3);
        assert_eq!(expired.len(), SWEEP_BATCH);
        for i in 0..SWEEP_BATCH {
            reg.acquire(&users[(r * SWEEP_BATCH + i) % USERS], None, now)
                .unwrap();
        }
    }
    let shown: Vec<String> = ms.iter().map(|m| format!("{m:.2}")).collect();
    println!(
        "sweep {SWEEP_BATCH} of {BIG}: median {:.2} ms (runs {})",
        median(ms.clone()),
        shown.join(" ")
    );
}

/// Many sweeps in a row (for a profiler): 95 groups of 10,000 expiring in turn.
fn sweeps(users: &[String]) {
    const GROUPS: usize = 95;
    let mut reg = registry(4);
    for i in 0..BIG {
        let group = i / SWEEP_BATCH;
        let t = T0 + group.min(GROUPS) as u64;
        reg.acquire(&users[i % USERS], None, t).unwrap();
    }
    let mut ms = Vec::new();
    for r in 0..GROUPS {
        let start = cpu_seconds();
        assert_eq!(reg.sweep(T0 + r as u64 + TTL).len(), SWEEP_BATCH);
        ms.push((cpu_seconds() - start) * 1e3);
    }
    println!(
        "{GROUPS} sweeps of {SWEEP_BATCH}: median {:.2} ms, total {:.0} ms (CPU)",
        median(ms.clone()),
        ms.iter().sum::<f64>()
    );
}

/// Releases in scattered order at 1,000,000 live (each leaves a stale expiry entry, so
/// the index is compacted every ~1M of them): the slowest single release + acquire, and
/// the mean (which includes two reads of the CPU clock, a system call each).
fn stale(users: &[String]) {
    let mut reg = registry(5);
    let mut held: Vec<u32> = Vec::with_capacity(BIG);
    for i in 0..BIG {
        if let Acquired::Granted { handle, .. } = reg.acquire(&users[i % USERS], None, NOW).unwrap()
        {
            held.push(handle);
        }
    }
    let n = 2_500_000;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut worst, start) = (0f64, cpu_seconds());
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % BIG as u64) as usize;
        let t = cpu_seconds();
        reg.release_handle(held[k], NOW);
        if let Acquired::Granted { handle, .. } = reg.acquire(&users[i % USERS], None, NOW).unwrap()
        {
            held[k] = handle;
        }
        worst = worst.max(cpu_seconds() - t);
    }
    println!(
        "scattered release + acquire at {BIG} live: mean {:.0} ns, slowest {:.1} ms",
        (cpu_seconds() - start) * 1e9 / n as f64,
        worst * 1e3
    );
}

fn memory(users: &[String]) {
    let (live0, _) = (LIVE.load(Relaxed), PEAK.swap(LIVE.load(Relaxed), Relaxed));
    let mut reg = registry(3);
    fill(&mut reg, users, BIG);
    let (live1, peak) = (LIVE.load(Relaxed), PEAK.load(Relaxed));
    println!(
        "memory at {BIG} leases over {USERS} users (native): {:.1} B/lease held, {:.1} B/lease peak",
        (live1 - live0) as f64 / BIG as f64,
        (peak - live0) as f64 / BIG as f64
    );
    drop(reg);
}

fn main() {
    let users: Vec<String> = (0..USERS).map(|i| format!("user-{i}")).collect();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = args.is_empty();
    let wants = |what: &str| all || args.iter().any(|a| a == what);
    if wants("memory") {
        memory(&users);
    }
    if wants("sweep") {
        sweep(&users);
    }
    if wants("pairs") {
        pairs(&users);
    }
    if args.iter().any(|a| a == "sweeps") {
        sweeps(&users);
    }
    if args.iter().any(|a| a == "stale") {
        stale(&users);
    }
}
