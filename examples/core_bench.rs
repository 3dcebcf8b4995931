//! Where a request's CPU goes inside the module, natively and under V8 (a report, not a test).
//!
//! Natively: `cargo run --release --example core_bench`. Under V8 (node's, the same engine family
//! as Envoy's): `make v8-bench` builds this for wasm32-wasip1 and runs it with `bench/v8.mjs`.
//! It times, per algorithm, the signature primitive alone (ring, key already parsed as far as
//! ring allows), meshguard's whole `verify` of a fresh token, and the cache key of a reused
//! one; then whole requests through the stream flow against a fake host (routing only, a reused
//! token, a reused token and a rate limit). In Envoy each request also pays its host calls
//! (docs/cost.md): this shows the module's own share.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/host.rs"]
mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::{best_of_5_us as measure, NOW};
use meshguard::authn::cache::CacheKey;
use meshguard::authn::config::{compile_providers, KeySource, ProviderId};
use meshguard::authn::verify::verify;
use meshguard::host::fake::FakeHost;
use meshguard::host::Counted;
use meshguard::pipeline::{Action, Flow, Shared};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use serde_json::json;
use std::hint::black_box;
use std::rc::Rc;
use support::{pairs, JWKS};

const RSA: &[u8] = include_bytes!("../tests/fixtures/jwt/rsa-a.pk8.der");
const P256: &[u8] = include_bytes!("../tests/fixtures/jwt/ec-p256.pk8.der");
const ED25519: &[u8] = include_bytes!("../tests/fixtures/jwt/ed25519.pk8.der");

/// A signed token of the fixture issuer with the usual claims; the signature and the public key
/// (in the form ring verifies with).
fn token(alg: &str, kid: &str, jti: u32) -> Option<(String, Vec<u8>)> {
    let h = B64.encode(json!({ "alg": alg, "kid": kid, "typ": "JWT" }).to_string());
    let p = B64.encode(
        json!({ "iss": "https://issuer.example", "aud": "api.example", "sub": "alice",
                "iat": NOW, "exp": NOW + 3600, "scope": "items:read items:write", "jti": jti.to_string() })
        .to_string(),
    );
    let input = format!("{h}.{p}");
    let rng = SystemRandom::new();
    let (signature, public) = match alg {
        "RS256" => {
            let kp = sig::RsaKeyPair::from_pkcs8(RSA).ok()?;
            let mut s = vec![0; kp.public().modulus_len()];
            kp.sign(&sig::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut s)
                .ok()?;
            (s, kp.public().as_ref().to_vec())
        }
        "ES256" => {
            let kp =
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, P256, &rng)
                    .ok()?;
            let s = kp.sign(&rng, input.as_bytes()).ok()?.as_ref().to_vec();
            (s, kp.public_key().as_ref().to_vec())
        }
        _ => {
            let kp = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(ED25519).ok()?;
            let s = kp.sign(input.as_bytes()).as_ref().to_vec();
            (s, kp.public_key().as_ref().to_vec())
        }
    };
    Some((format!("{input}.{}", B64.encode(signature)), public))
}

fn main() {
    let raw = serde_json::from_value(json!({ "main": {
        "issuer": "https://issuer.example", "audiences": ["api.example"],
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "local_jwks": { "inline_string": JWKS } } }));
    let Some(provider) = raw
        .ok()
        .and_then(|r| compile_providers(&r, "jwt_providers").ok())
        .and_then(|p| p.get(ProviderId(0)).cloned())
    else {
        eprintln!("fixture provider refused");
        return;
    };
    let KeySource::Static(keys) = &provider.keys else {
        return;
    };
    println!("| algorithm | primitive us | verify (fresh) us | beyond the primitive us | cache key of a new token (SHA-256) us |");
    println!("|---|---:|---:|---:|---:|");
    let mut primitives = Vec::new();
    for (alg, kid, ring_alg, n) in [
        (
            "RS256",
            "rsa-a",
            &sig::RSA_PKCS1_2048_8192_SHA256 as &dyn sig::VerificationAlgorithm,
            200,
        ),
        ("ES256", "ec-p256", &sig::ECDSA_P256_SHA256_FIXED, 200),
        ("EdDSA", "ed25519", &sig::ED25519, 500),
    ] {
        let Some((t, public)) = token(alg, kid, 0) else {
            eprintln!("{alg}: could not sign");
            continue;
        };
        if verify(&t, &provider, keys, NOW).is_err() {
            eprintln!("{alg}: fixture token refused");
            continue;
        }
        let (input, s) = t.rsplit_once('.').unwrap_or_default();
        let signature = B64.decode(s).unwrap_or_default();
        let key = sig::UnparsedPublicKey::new(ring_alg, public);
        let primitive = measure(n, || {
            let _ = black_box(key.verify(input.as_bytes(), &signature));
        });
        let full = measure(n, || {
            let _ = black_box(verify(&t, &provider, keys, NOW));
        });
        let cache_key = measure(20 * n, || {
            black_box(CacheKey::new("main", black_box(&t)));
        });
        println!(
            "| {alg} | {primitive:.1} | {full:.1} | {:.1} | {cache_key:.2} |",
            full - primitive
        );
        primitives.push((alg, kid, primitive));
    }
    flows();
    fresh_flows(&primitives);
}

/// Issue 11's fresh-token figure for the module alone: a request with a token never seen before
/// (a pool larger than the cache) against the same request with a reused token, through the
/// whole flow, minus the primitive: what a fresh token costs beyond its signature check.
fn fresh_flows(primitives: &[(&str, &str, f64)]) {
    const POOL: u32 = 48;
    let policy = json!({
        "jwt_cache": { "max_entries": 16 },
        "jwt_providers": { "main": { "issuer": "https://issuer.example",
            "audiences": ["api.example"], "algorithms": ["RS256", "ES256", "EdDSA"],
            "local_jwks": { "inline_string": JWKS } } },
        "routes": [{ "name": "jwt", "match": { "methods": ["GET"], "prefix": "/jwt" },
                     "jwt": { "providers": ["main"], "scopes": ["items:read"] },
                     "rate_limits": [{ "key": "jwt:sub", "requests": 1000000, "per_seconds": 1 }] }]
    });
    let Ok(compiled) = meshguard::config::compile(policy.to_string().as_bytes()) else {
        eprintln!("fresh-token policy refused");
        return;
    };
    println!();
    println!("| algorithm (through the flow, JWT + scope + rate limit) | reused us | fresh us | fresh - reused - primitive us |");
    println!("|---|---:|---:|---:|");
    let shared_host = FakeHost::with_request_headers(Vec::new());
    let shared = Rc::new(Shared::new(&shared_host, compiled));
    for (alg, kid, primitive) in primitives {
        let hosts: Vec<FakeHost> = (0..POOL)
            .filter_map(|jti| token(alg, kid, jti + 1))
            .map(|(t, _)| {
                let bearer = format!("Bearer {t}");
                let h = FakeHost::with_request_headers(pairs(&[
                    (":method", "GET"),
                    (":path", "/jwt/items"),
                    (":authority", "127.0.0.1:10000"),
                    ("authorization", &bearer),
                ]));
                h.clock.set_ms(NOW * 1000);
                h
            })
            .collect();
        let run = |pick: &dyn Fn(usize) -> usize, n: u32| {
            let mut i = 0usize;
            let mut allowed = true;
            let us = measure(n, || {
                let Some(h) = hosts.get(pick(i)) else { return };
                i += 1;
                let mut flow = Flow::new(Rc::clone(&shared));
                allowed &= black_box(flow.on_request_headers(h, true)) == Action::Continue;
                h.done.borrow_mut().clear();
            });
            (us, allowed)
        };
        let (reused, ok_r) = run(&|_| 0, 2000);
        let (fresh, ok_f) = run(&|i| i % hosts.len().max(1), 100);
        let note = if ok_r && ok_f {
            ""
        } else {
            " (NOT all allowed)"
        };
        println!(
            "| {alg}{note} | {reused:.2} | {fresh:.1} | {:.1} |",
            fresh - reused - primitive
        );
    }
}

/// Whole requests through the stream flow against a fake host.
fn flows() {
    let policy = json!({
        "jwt_providers": { "main": { "issuer": "https://issuer.example",
            "local_jwks": { "inline_string": JWKS },
            "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }] } },
        "routes": [
            { "name": "open", "match": { "methods": ["GET"], "prefix": "/open" } },
            { "name": "jwt", "match": { "methods": ["GET"], "prefix": "/jwt" },
              "jwt": { "providers": ["main"], "scopes": ["items:read"] } },
            { "name": "limited", "match": { "methods": ["GET"], "prefix": "/limited" },
              "jwt": { "providers": ["main"], "scopes": ["items:read"] },
              "rate_limits": [{ "key": "jwt:sub", "requests": 1000000, "per_seconds": 1 }] }
        ]
    });
    let Some((token, _)) = token("RS256", "rsa-a", 0) else {
        return;
    };
    let bearer = format!("Bearer {token}");
    println!();
    println!("| request (through the flow, fake host) | us | host calls: data, act, counters |");
    println!("|---|---:|---|");
    for (label, path, with_token) in [
        ("open route", "/open/items", false),
        ("JWT route, reused RS256 token, scope", "/jwt/items", true),
        ("the same and a rate limit", "/limited/items", true),
    ] {
        let mut list = vec![
            (":method", "GET"),
            (":path", path),
            (":authority", "127.0.0.1:10000"),
            (":scheme", "http"),
            ("user-agent", "wrk"),
            ("accept", "*/*"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "7e9a3c1e-4c7b-4f0e-9a55-0f1d2c3b4a59"),
        ];
        if with_token {
            list.push(("authorization", &bearer));
        }
        let host = Counted::new(FakeHost::with_request_headers(pairs(&list)));
        host.inner().clock.set_ms(NOW * 1000);
        let compiled = match meshguard::config::compile(policy.to_string().as_bytes()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("policy refused: {e}");
                return;
            }
        };
        let shared = Rc::new(Shared::new(&host, compiled));
        let mut allowed = true;
        let us = measure(20_000, || {
            let mut flow = Flow::new(Rc::clone(&shared));
            allowed &= black_box(flow.on_request_headers(&host, true)) == Action::Continue;
            host.inner().done.borrow_mut().clear();
        });
        let _ = host.take_calls();
        let _ = Flow::new(Rc::clone(&shared)).on_request_headers(&host, true);
        let c = host.take_calls();
        let note = if allowed { "" } else { " (NOT all allowed)" };
        println!(
            "| {label}{note} | {us:.2} | {}, {}, {} |",
            c.total(),
            c.writes(),
            c.metric
        );
    }
}
