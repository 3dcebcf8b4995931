//! Test-only helpers: the committed fixture keys (tests/fixtures/jwt/), a signer, providers, and
//! named token fixtures. Every fixture is issued at [`NOW`] unless its name says otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::config::{compile_providers, Provider, ProviderId, Providers, RawJwtProvider};
use super::jwks::{decode_jwks, KeySet, DEFAULT_MAX_JWKS_BYTES};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{hmac, rand, signature};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The test clock: 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;
/// The fixture issuer.
pub const ISSUER: &str = "https://issuer.example";
/// The fixture audience.
pub const AUDIENCE: &str = "api.example";
/// The fixture JWKS (kids rsa-a, rsa-b: RS256; ec-p256: ES256; ec-p384: ES384; ed25519: EdDSA).
pub const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");
/// A 32-byte HMAC secret used by the `hmac` provider fixture.
pub const HMAC_SECRET: [u8; 32] = [0x5a; 32];

const RSA_A: &[u8] = include_bytes!("../../tests/fixtures/jwt/rsa-a.pk8.der");
const RSA_B: &[u8] = include_bytes!("../../tests/fixtures/jwt/rsa-b.pk8.der");
const EC_P256: &[u8] = include_bytes!("../../tests/fixtures/jwt/ec-p256.pk8.der");
const EC_P384: &[u8] = include_bytes!("../../tests/fixtures/jwt/ec-p384.pk8.der");
const ED25519: &[u8] = include_bytes!("../../tests/fixtures/jwt/ed25519.pk8.der");

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `message` with the fixture key `kid` for `alg` (any JOSE name, fixtures permitting).
pub fn sign_with(kid: &str, alg: &str, message: &[u8]) -> Vec<u8> {
    let rng = rand::SystemRandom::new();
    let rsa = |der: &[u8], pad: &'static dyn signature::RsaEncoding| {
        let kp = signature::RsaKeyPair::from_pkcs8(der).unwrap();
        let mut sig = vec![0u8; kp.public().modulus_len()];
        kp.sign(pad, &rng, message, &mut sig).unwrap();
        sig
    };
    let rsa_der = if kid == "rsa-b" { RSA_B } else { RSA_A };
    match (kid, alg) {
        (_, "RS256") => rsa(rsa_der, &signature::RSA_PKCS1_SHA256),
        (_, "RS384") => rsa(rsa_der, &signature::RSA_PKCS1_SHA384),
        (_, "RS512") => rsa(rsa_der, &signature::RSA_PKCS1_SHA512),
        (_, "PS256") => rsa(rsa_der, &signature::RSA_PSS_SHA256),
        (_, "PS384") => rsa(rsa_der, &signature::RSA_PSS_SHA384),
        (_, "PS512") => rsa(rsa_der, &signature::RSA_PSS_SHA512),
        (_, "ES256") => {
            let kp = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                EC_P256,
                &rng,
            )
            .unwrap();
            kp.sign(&rng, message).unwrap().as_ref().to_vec()
        }
        (_, "ES384") => {
            let kp = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                EC_P384,
                &rng,
            )
            .unwrap();
            kp.sign(&rng, message).unwrap().as_ref().to_vec()
        }
        (_, "EdDSA") => {
            let kp = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(ED25519).unwrap();
            kp.sign(message).as_ref().to_vec()
        }
        (_, "HS256") => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &HMAC_SECRET);
            hmac::sign(&key, message).as_ref().to_vec()
        }
        _ => Vec::new(),
    }
}

/// A compact JWS with this header and claims, signed by the fixture key named by the header's
/// `kid` (or `signer` when given) with the header's `alg`.
pub fn token_with(header: Value, claims: Value, signer: Option<&str>) -> String {
    let h = b64(header.to_string().as_bytes());
    let p = b64(claims.to_string().as_bytes());
    let input = format!("{h}.{p}");
    let kid = signer
        .or_else(|| header["kid"].as_str())
        .unwrap_or("rsa-a")
        .to_string();
    let alg = header["alg"].as_str().unwrap_or("RS256").to_string();
    let sig = sign_with(&kid, &alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A token signed by fixture key `kid` with `alg`, with the standard header.
pub fn token(kid: &str, alg: &str, claims: Value) -> String {
    token_with(
        json!({ "alg": alg, "kid": kid, "typ": "JWT" }),
        claims,
        None,
    )
}

/// The standard valid claims, issued at NOW for one hour.
pub fn good_claims() -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": NOW, "exp": NOW + 3600,
            "scope": "users:read users:write", "tenant": "a" })
}

/// `{"iss":ISSUER,"aud":AUDIENCE,"sub":"alice","iat":NOW,"exp":NOW+3600,
///   "scope":"users:read users:write","tenant":"a"}` signed RS256 by `rsa-a`.
pub fn good_rs256_token() -> String {
    token("rsa-a", "RS256", good_claims())
}

/// The good claims signed ES256 by `ec-p256`.
pub fn good_es256_token() -> String {
    token("ec-p256", "ES256", good_claims())
}

/// The good claims signed ES384 by `ec-p384`.
pub fn good_es384_token() -> String {
    token("ec-p384", "ES384", good_claims())
}

/// The good claims signed EdDSA by `ed25519`.
pub fn good_eddsa_token() -> String {
    token("ed25519", "EdDSA", good_claims())
}

/// `{... "iat": NOW-7200, "exp": NOW-3600}`: expired an hour ago.
pub fn expired_token() -> String {
    let mut c = good_claims();
    c["iat"] = json!(NOW - 7200);
    c["exp"] = json!(NOW - 3600);
    token("rsa-a", "RS256", c)
}

/// `{... "nbf": NOW+600}`: valid only in ten minutes.
pub fn not_yet_valid_token() -> String {
    let mut c = good_claims();
    c["nbf"] = json!(NOW + 600);
    token("rsa-a", "RS256", c)
}

/// `{... "iss": "https://evil.example"}`.
pub fn wrong_issuer_token() -> String {
    let mut c = good_claims();
    c["iss"] = json!("https://evil.example");
    token("rsa-a", "RS256", c)
}

/// `{... "aud": ["other.example"]}`.
pub fn wrong_audience_token() -> String {
    let mut c = good_claims();
    c["aud"] = json!(["other.example"]);
    token("rsa-a", "RS256", c)
}

/// The good claims, header kid `rsa-z` (not in the set), signed by rsa-a.
pub fn unknown_kid_token() -> String {
    token_with(
        json!({ "alg": "RS256", "kid": "rsa-z" }),
        good_claims(),
        Some("rsa-a"),
    )
}

/// The good claims signed by `rsa-b` but naming kid `rsa-a`.
pub fn bad_signature_token() -> String {
    token_with(
        json!({ "alg": "RS256", "kid": "rsa-a" }),
        good_claims(),
        Some("rsa-b"),
    )
}

/// The good claims with header `{"alg":"none"}` and an empty signature.
pub fn alg_none_token(alg: &str) -> String {
    let h = b64(json!({ "alg": alg, "kid": "rsa-a" }).to_string().as_bytes());
    let p = b64(good_claims().to_string().as_bytes());
    format!("{h}.{p}.")
}

/// Provider JSON for the fixtures: local JWKS, issuer and audience set.
pub fn provider_json() -> Value {
    json!({ "issuer": ISSUER, "audiences": [AUDIENCE],
            "local_jwks": { "inline_string": JWKS },
            "forward_payload_header": "x-jwt-payload",
            "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }] })
}

/// Compiles `{name: json}` providers.
pub fn providers(v: Value) -> Providers {
    let raw: BTreeMap<String, RawJwtProvider> = crate::config::read::from_value(v).unwrap();
    compile_providers(&raw, "jwt_providers").unwrap()
}

/// The fixture provider, optionally changed by `edit`.
pub fn provider_with(edit: impl FnOnce(&mut Value)) -> Arc<Provider> {
    let mut p = provider_json();
    edit(&mut p);
    providers(json!({ "main": p }))
        .get(ProviderId(0))
        .unwrap()
        .clone()
}

/// The fixture provider.
pub fn provider() -> Arc<Provider> {
    provider_with(|_| {})
}

/// The fixture key set (`JWKS`) after `edit` on its JSON, and without the key `drop_kid`.
pub fn fixture_keys(drop_kid: Option<&str>, edit: impl FnOnce(&mut Value)) -> KeySet {
    let mut doc: Value = serde_json::from_str(JWKS).unwrap();
    if let Some(kid) = drop_kid {
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k["kid"] != kid);
    }
    edit(&mut doc);
    decode_jwks(doc.to_string().as_bytes(), DEFAULT_MAX_JWKS_BYTES)
        .unwrap()
        .keys
}

/// Gives the fixture's two RSA keys each other's `kid`: the same material, under other names
/// (a key set that `verify` judges differently for a token naming either kid).
pub fn swap_rsa_kids(doc: &mut Value) {
    let keys = doc["keys"].as_array_mut().unwrap();
    let rsa: Vec<usize> = (0..keys.len())
        .filter(|&i| keys[i]["kty"] == "RSA")
        .collect();
    assert!(rsa.len() >= 2, "the fixture has two RSA keys");
    let (a, b) = (rsa[0], rsa[1]);
    let ka = keys[a]["kid"].clone();
    keys[a]["kid"] = keys[b]["kid"].clone();
    keys[b]["kid"] = ka;
}
