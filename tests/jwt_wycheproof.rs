//! Wycheproof JOSE vectors (C2SP/wycheproof `testvectors_v1`, copied under
//! `tests/data/wycheproof-jose`) against the JWT core.
//!
//! - Every JWS there must be refused by a meshguard provider: their payloads are not JWT claim
//!   sets, and many are attacks (modified padding, `alg: none`, embedded `jwk`, symmetric
//!   confusion).
//! - The signature layer must agree with Wycheproof: a signature meshguard's key accepts must be
//!   one Wycheproof marks valid, and every valid asymmetric signature must verify.
//! - The JWK vectors exercise the key parser: no panic, and each unusable key is skipped for the
//!   right reason.
//!
//! The vectors are vendored under `tests/data/wycheproof-jose` (Apache-2.0).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshguard::authn::alg::Alg;
use meshguard::authn::config::{
    compile_providers, KeySource, Provider, ProviderId, RawJwtProvider,
};
use meshguard::authn::jwks::{decode_jwks, JwksError, KeyProblem, KeySet, DEFAULT_MAX_JWKS_BYTES};
use meshguard::authn::verify::verify;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn load(name: &str) -> Value {
    let path = reference_dir().join("wycheproof-jose").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn provider_for(jwks: &str) -> Option<Arc<Provider>> {
    let raw: BTreeMap<String, RawJwtProvider> = serde_json::from_value(json!({
        "wp": { "local_jwks": { "inline_string": jwks }, "require_expiration": false }
    }))
    .unwrap();
    let providers = compile_providers(&raw, "jwt_providers").ok()?;
    providers.get(ProviderId(0)).cloned()
}

fn fixture_provider() -> Arc<Provider> {
    provider_for(include_str!("fixtures/jwt/jwks.json")).unwrap()
}

fn static_keys(p: &Provider) -> Arc<KeySet> {
    match &p.keys {
        KeySource::Static(k) => k.clone(),
        KeySource::Remote(_) => unreachable!(),
    }
}

/// The signature check alone, for a compact JWS: `Some(accepted)` when a key of `keys` is
/// pinned to the header's algorithm, `None` otherwise.
fn signature_verdict(keys: &KeySet, jws: &str) -> Option<bool> {
    let mut parts = jws.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let alg = Alg::parse(header.get("alg")?.as_str()?)?;
    let key = keys.keys().iter().find(|k| k.admits(alg))?;
    let Ok(sig) = URL_SAFE_NO_PAD.decode(s) else {
        return Some(false);
    };
    Some(key.verify(alg, format!("{h}.{p}").as_bytes(), &sig))
}

fn jws_text(t: &Value) -> String {
    match &t["jws"] {
        Value::String(s) => s.clone(),
        other => other.to_string(), // JSON serialization: must be refused as malformed
    }
}

#[test]
fn every_wycheproof_jws_is_refused() {
    let doc = load("json_web_signature_test.json");
    let fallback = fixture_provider();
    let mut total = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        let provider = group
            .get("public")
            .and_then(|k| provider_for(&json!({ "keys": [k] }).to_string()))
            .unwrap_or_else(|| fallback.clone());
        let keys = static_keys(&provider);
        for t in group["tests"].as_array().unwrap() {
            let jws = jws_text(t);
            let r = verify(&jws, &provider, &keys, NOW);
            assert!(r.is_err(), "tcId {} accepted", t["tcId"]);
            total += 1;
        }
    }
    assert_eq!(total, doc["numberOfTests"].as_u64().unwrap() as usize);
}

#[test]
fn signature_layer_agrees_with_wycheproof() {
    let doc = load("json_web_signature_test.json");
    let mut checked = 0;
    let mut valid_verified = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        let Some(public) = group.get("public") else {
            continue; // symmetric keys: never usable from a JWKS
        };
        let Ok(decoded) = decode_jwks(
            json!({ "keys": [public] }).to_string().as_bytes(),
            DEFAULT_MAX_JWKS_BYTES,
        ) else {
            continue; // e.g. encryption keys, skipped by the parser
        };
        for t in group["tests"].as_array().unwrap() {
            let Some(accepted) = signature_verdict(&decoded.keys, &jws_text(t)) else {
                continue;
            };
            let valid = t["result"] == "valid";
            assert!(
                !accepted || valid,
                "tcId {}: invalid signature accepted",
                t["tcId"]
            );
            assert!(
                accepted || !valid,
                "tcId {}: valid signature refused",
                t["tcId"]
            );
            checked += 1;
            valid_verified += usize::from(accepted);
        }
    }
    // RS/PS/ES groups with hundreds of modified paddings and signatures.
    assert!(checked > 300, "only {checked} signatures checked");
    assert!(
        valid_verified >= 30,
        "only {valid_verified} valid signatures verified"
    );
}

fn problems(keys: &Value) -> Vec<KeyProblem> {
    match decode_jwks(keys.to_string().as_bytes(), DEFAULT_MAX_JWKS_BYTES) {
        Ok(d) => d.warnings.into_iter().map(|w| w.problem).collect(),
        Err(JwksError::NoUsableKeys(w)) => w.into_iter().map(|w| w.problem).collect(),
        Err(e) => panic!("whole set refused: {e}"),
    }
}

/// The public half of a Wycheproof key set (private members removed).
fn public_half(keys: &Value) -> Value {
    let mut keys = keys.clone();
    for k in keys["keys"].as_array_mut().unwrap() {
        for m in ["d", "p", "q", "dp", "dq", "qi"] {
            k.as_object_mut().unwrap().remove(m);
        }
    }
    keys
}

#[test]
fn wycheproof_jwk_sets_are_parsed_without_panic_and_bad_keys_skipped() {
    let doc = load("json_web_key_test.json");
    let mut expected: BTreeMap<u64, KeyProblem> = BTreeMap::new();
    expected.insert(6, KeyProblem::NotForSignatures);
    expected.insert(7, KeyProblem::RsaRocaFingerprint);
    expected.insert(8, KeyProblem::RsaTooShort(1024));
    expected.insert(9, KeyProblem::RsaBadExponent);
    expected.insert(19, KeyProblem::UnsupportedAlg("ES521".into()));
    expected.insert(20, KeyProblem::UnsupportedAlg("ES224".into()));
    expected.insert(21, KeyProblem::NotForSignatures);
    expected.insert(22, KeyProblem::PointNotOnCurve);
    expected.insert(
        23,
        KeyProblem::AlgDoesNotFitKey("alg does not match the curve"),
    );
    expected.insert(
        24,
        KeyProblem::AlgDoesNotFitKey("RSA key with a non-RSA alg"),
    );
    let fallback = fixture_provider();
    for group in doc["testGroups"].as_array().unwrap() {
        let private = &group["private"];
        // Published private material is always refused.
        for p in problems(private) {
            assert!(
                matches!(p, KeyProblem::PrivateKeyMaterial | KeyProblem::SymmetricKey),
                "{}: {p:?}",
                group["comment"]
            );
        }
        let public = group
            .get("public")
            .cloned()
            .unwrap_or_else(|| public_half(private));
        let found = problems(&public);
        let decoded = decode_jwks(public.to_string().as_bytes(), DEFAULT_MAX_JWKS_BYTES).ok();
        for t in group["tests"].as_array().unwrap() {
            let id = t["tcId"].as_u64().unwrap();
            if let Some(want) = expected.get(&id) {
                assert!(found.contains(want), "tcId {id}: {found:?}, want {want:?}");
            }
            if public["keys"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["kty"] == "oct")
            {
                assert!(
                    found.iter().all(|p| *p == KeyProblem::SymmetricKey),
                    "tcId {id}"
                );
            }
            // Whatever was kept must agree with the vector's verdict.
            if let Some(d) = &decoded {
                if let Some(accepted) = signature_verdict(&d.keys, &jws_text(t)) {
                    assert_eq!(accepted, t["result"] == "valid", "tcId {id}");
                }
            }
            // And no JWS here is a JWT meshguard accepts.
            let provider = decoded
                .as_ref()
                .and_then(|_| provider_for(&public.to_string()))
                .unwrap_or_else(|| fallback.clone());
            assert!(verify(&jws_text(t), &provider, &static_keys(&provider), NOW).is_err());
        }
    }
}

#[test]
fn wycheproof_jwe_is_refused_as_unsupported() {
    let doc = load("json_web_encryption_test.json");
    let provider = fixture_provider();
    let keys = static_keys(&provider);
    let mut n = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        for t in group["tests"].as_array().unwrap() {
            let Some(jwe) = t.get("jwe").and_then(Value::as_str) else {
                continue;
            };
            assert!(
                verify(jwe, &provider, &keys, NOW).is_err(),
                "tcId {}",
                t["tcId"]
            );
            n += 1;
        }
    }
    assert!(n > 0);
}
