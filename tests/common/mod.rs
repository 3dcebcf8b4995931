//! Fixtures shared by the integration tests (each test crate takes what it needs).
#![allow(dead_code, clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshguard::host::fake::{FakeClock, MemStore};
use meshguard::host::Properties;
use meshguard::pipeline::{Env, Exchange, RequestFacts, Runtime, Verdict};
use meshguard::policy::Policy;
use ring::signature::Ed25519KeyPair;
use std::cell::RefCell;

/// The test clock: 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;

/// The fixture Ed25519 key (kid `ed25519` in tests/fixtures/jwt/jwks.json).
pub const ED25519: &[u8] = include_bytes!("../fixtures/jwt/ed25519.pk8.der");

/// An EdDSA token of `https://issuer.example` for `alice`, valid at NOW, without scopes.
/// Payload: `{"iss": "https://issuer.example", "sub": "alice", "iat": NOW, "exp": NOW + 600}`.
pub fn alice_token() -> String {
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(serde_json::json!({ "alg": "EdDSA", "kid": "ed25519" })),
        b64(
            serde_json::json!({ "iss": "https://issuer.example", "sub": "alice",
                                "iat": NOW, "exp": NOW + 600 })
        )
    );
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(ED25519).unwrap();
    let sig = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref());
    format!("{input}.{sig}")
}

/// The headers phase of one request at NOW, with a fresh worker runtime and store: its verdict
/// and the exchange (events, header operations) it leaves.
pub fn headers_phase(p: &Policy, r: &RequestFacts, props: &dyn Properties) -> (Verdict, Exchange) {
    let clock = FakeClock::at_secs(NOW);
    let store = MemStore::default();
    let runtime = RefCell::new(Runtime::new(p, &store));
    let env = Env {
        clock: &clock,
        store: &store,
        props,
        runtime: &runtime,
    };
    let mut ex = Exchange::new();
    let v = ex.on_headers(p, r, &env);
    (v, ex)
}

/// Mean microseconds per call of `f`, best of 5 rounds of `n` calls after a warm-up (shared
/// machines are noisy). For measurements (benches, ignored tests), never for assertions.
pub fn best_of_5_us(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..(n / 10).max(1) {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    best
}
