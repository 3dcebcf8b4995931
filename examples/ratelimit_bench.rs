//! Native micro-benchmark of one rate-limit check against the in-memory store (a report, not a
//! test): `cargo run --release --example ratelimit_bench`.
//!
//! It measures the core's own work (key building, hashing, slot decode/encode, GCRA) plus the
//! in-memory store; in Envoy the two shared-data host calls replace the store's cost.

use meshguard::host::fake::{FakeClock, MemStore};
use meshguard::ratelimit::config::{compile_rate_limits, RawRateLimit};
use meshguard::ratelimit::{KeyFacts, Mode, RouteLimits};
use std::hint::black_box;
use std::time::Instant;

fn limits(v: serde_json::Value) -> Option<RouteLimits> {
    let raw: Vec<RawRateLimit> = serde_json::from_value(v).ok()?;
    compile_rate_limits(&raw, "bench", "bench", Mode::Enforce).ok()
}

fn run(label: &str, l: &RouteLimits, keys: &[String], iterations: usize, advance_ms: u64) {
    let clock = FakeClock::at_secs(1_700_000_000);
    let store = MemStore::default();
    if l.prepare(&store).is_err() {
        return;
    }
    let headers = vec![("x-api-key".to_string(), "k".to_string())];
    let mut allowed = 0usize;
    let start = Instant::now();
    for i in 0..iterations {
        let key = keys.get(i % keys.len().max(1)).map(String::as_str);
        let facts = KeyFacts {
            headers: &headers,
            ..KeyFacts::new("bench", key)
        };
        if black_box(l.check(&facts, &clock, &store)).denial.is_none() {
            allowed += 1;
        }
        clock.advance_ms(advance_ms);
    }
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    println!("{label:<48} {ns:>8.0} ns/check  ({allowed}/{iterations} allowed)");
}

fn main() {
    let n = 1_000_000;
    let one_key = vec!["10.0.0.1".to_string()];
    let many_keys: Vec<String> = (0..10_000)
        .map(|i| format!("10.{}.{}.1", i / 256, i % 256))
        .collect();
    let Some(roomy) = limits(serde_json::json!([
        { "key": "client_ip", "requests": 1_000_000, "per_seconds": 1, "burst": 1_000_000 }
    ])) else {
        return;
    };
    let Some(tight) =
        limits(serde_json::json!([{ "key": "client_ip", "requests": 1, "per_seconds": 60 }]))
    else {
        return;
    };
    let Some(two) = limits(serde_json::json!([
        { "key": "client_ip", "requests": 1_000_000, "per_seconds": 1, "burst": 1_000_000 },
        { "key": "route+header:x-api-key", "requests": 1_000_000, "per_seconds": 1, "burst": 1_000_000, "name": "k" }
    ])) else {
        return;
    };
    run(
        "1 limit, 1 key, allowed (read + CAS write)",
        &roomy,
        &one_key,
        n,
        0,
    );
    run("1 limit, 1 key, denied (read only)", &tight, &one_key, n, 0);
    run("1 limit, 10k keys, allowed", &roomy, &many_keys, n, 0);
    run("2 limits, 10k keys, allowed", &two, &many_keys, n, 0);
}
