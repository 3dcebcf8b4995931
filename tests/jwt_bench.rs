//! Native cost of JWT verification per algorithm, and of a cache hit. A measurement, not a test:
//! it asserts nothing about time. Run with
//! `cargo test --release --test jwt_bench -- --ignored --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::NOW;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use meshguard::authn::cache::{CacheKey, TokenCache};
use meshguard::authn::config::{compile_providers, KeySource, Provider, ProviderId};
use meshguard::authn::jwks::{decode_jwks, KeySet};
use meshguard::authn::verify::verify;
use ring::{hmac, rand, signature as sig};
use serde_json::{json, Value};
use std::sync::Arc;

const JWKS: &str = include_str!("fixtures/jwt/jwks.json");

fn sign(alg: &str, msg: &[u8]) -> Vec<u8> {
    let rng = rand::SystemRandom::new();
    let rsa = |pad: &'static dyn sig::RsaEncoding| {
        let kp = sig::RsaKeyPair::from_pkcs8(include_bytes!("fixtures/jwt/rsa-a.pk8.der")).unwrap();
        let mut s = vec![0; kp.public().modulus_len()];
        kp.sign(pad, &rng, msg, &mut s).unwrap();
        s
    };
    let ecdsa = |a: &'static sig::EcdsaSigningAlgorithm, der: &[u8]| {
        let kp = sig::EcdsaKeyPair::from_pkcs8(a, der, &rng).unwrap();
        kp.sign(&rng, msg).unwrap().as_ref().to_vec()
    };
    match alg {
        "RS256" => rsa(&sig::RSA_PKCS1_SHA256),
        "PS256" => rsa(&sig::RSA_PSS_SHA256),
        "ES256" => ecdsa(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            include_bytes!("fixtures/jwt/ec-p256.pk8.der"),
        ),
        "ES384" => ecdsa(
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            include_bytes!("fixtures/jwt/ec-p384.pk8.der"),
        ),
        "EdDSA" => sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(include_bytes!(
            "fixtures/jwt/ed25519.pk8.der"
        ))
        .unwrap()
        .sign(msg)
        .as_ref()
        .to_vec(),
        "HS256" => hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x5a; 32]), msg)
            .as_ref()
            .to_vec(),
        other => panic!("no signer for {other}"),
    }
}

fn token(kid: &str, alg: &str) -> String {
    let h = B64.encode(json!({ "alg": alg, "kid": kid, "typ": "JWT" }).to_string());
    let p = B64.encode(
        json!({ "iss": "https://issuer.example", "aud": "api.example", "sub": "alice",
                "iat": NOW, "exp": NOW + 3600, "scope": "users:read users:write" })
        .to_string(),
    );
    let input = format!("{h}.{p}");
    format!("{input}.{}", B64.encode(sign(alg, input.as_bytes())))
}

fn provider(v: Value) -> (Arc<Provider>, Arc<KeySet>) {
    let raw = serde_json::from_value(json!({ "p": v })).unwrap();
    let p = compile_providers(&raw, "jwt_providers")
        .unwrap()
        .get(ProviderId(0))
        .unwrap()
        .clone();
    let KeySource::Static(k) = &p.keys else {
        panic!("static keys expected")
    };
    let k = k.clone();
    (p, k)
}

/// Prints the mean microseconds per call (best of 5 rounds).
fn measure(label: &str, n: u32, f: impl FnMut()) {
    let best = common::best_of_5_us(n, f);
    println!("{label:<32} {best:>9.1} us");
}

#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn verification_cost_per_algorithm() {
    let mut doc: Value = serde_json::from_str(JWKS).unwrap();
    doc["keys"][0].as_object_mut().unwrap().remove("alg"); // rsa-a: RS* and PS*
    let (p, k) = provider(
        json!({ "issuer": "https://issuer.example", "audiences": ["api.example"],
                                  "local_jwks": { "inline_string": doc.to_string() } }),
    );
    for (kid, alg) in [
        ("rsa-a", "RS256"),
        ("rsa-a", "PS256"),
        ("ec-p256", "ES256"),
        ("ec-p384", "ES384"),
        ("ed25519", "EdDSA"),
    ] {
        let t = token(kid, alg);
        assert!(verify(&t, &p, &k, NOW).is_ok(), "{alg}");
        measure(&format!("verify {alg}"), 200, || {
            let _ = verify(&t, &p, &k, NOW);
        });
    }
    let (hp, hk) = provider(json!({ "algorithms": ["HS256"],
        "hmac_secret": { "inline_base64url": B64.encode([0x5a; 32]) } }));
    let t = token("", "HS256");
    assert!(verify(&t, &hp, &hk, NOW).is_ok());
    measure("verify HS256", 2000, || {
        let _ = verify(&t, &hp, &hk, NOW);
    });

    let t = token("ed25519", "EdDSA");
    let mut cache = TokenCache::new(1024);
    cache.insert(
        CacheKey::new("p", &t),
        Arc::new(verify(&t, &p, &k, NOW).unwrap()),
        &k,
    );
    measure("cache hit (SHA-256 + lookup)", 20_000, || {
        assert!(cache.get(&CacheKey::new("p", &t), &k, NOW).is_some());
    });
    measure("decode fixture JWKS (5 keys)", 200, || {
        let _ = decode_jwks(JWKS.as_bytes(), 65_536).unwrap();
    });
}
