//! Verifier tests: one per acceptance and one per rejection, with the named fixtures of
//! [`crate::authn::testkit`] (payloads documented there).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;
use crate::authn::config::KeySource;
use crate::authn::testkit::*;
use serde_json::json;
use std::sync::Arc;

fn keys_of(p: &Provider) -> Arc<KeySet> {
    match &p.keys {
        KeySource::Static(k) => k.clone(),
        KeySource::Remote(_) => panic!("fixture providers have static keys"),
    }
}

fn check(token: &str) -> Result<VerifiedToken, JwtError> {
    let p = provider();
    verify(token, &p, &keys_of(&p), NOW)
}

fn check_with(token: &str, edit: impl FnOnce(&mut Value)) -> Result<VerifiedToken, JwtError> {
    let p = provider_with(edit);
    verify(token, &p, &keys_of(&p), NOW)
}

fn reason(r: Result<VerifiedToken, JwtError>) -> Reason {
    r.unwrap_err().reason()
}

fn claims_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = good_claims();
    edit(&mut c);
    c
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWKS whose rsa-a key has no `alg` (pinned to the RSA family).
fn jwks_rsa_without_alg() -> String {
    let mut doc: Value = serde_json::from_str(JWKS).unwrap();
    doc["keys"][0].as_object_mut().unwrap().remove("alg");
    doc.to_string()
}

#[test]
fn accepts_good_tokens_of_every_asymmetric_algorithm() {
    for t in [
        good_rs256_token(),
        good_es256_token(),
        good_es384_token(),
        good_eddsa_token(),
    ] {
        let v = check(&t).unwrap();
        assert_eq!(v.iss.as_deref(), Some(ISSUER));
        assert_eq!(v.sub.as_deref(), Some("alice"));
        assert_eq!(v.exp, Some(NOW + 3600));
    }
}

#[test]
fn verified_token_carries_kid_alg_payload_and_claims() {
    let t = good_es256_token();
    let v = check(&t).unwrap();
    assert_eq!(v.kid.as_deref(), Some("ec-p256"));
    assert_eq!(v.alg, Alg::ES256);
    assert_eq!(v.payload_b64, t.split('.').nth(1).unwrap());
    assert_eq!(v.claim("tenant"), Some(&json!("a")));
    assert_eq!(v.valid_until, NOW + 3600 + 60);
}

#[test]
fn rsa_key_without_alg_verifies_rs_and_ps_algorithms_in_the_allow_list() {
    let jwks = jwks_rsa_without_alg();
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let t = token("rsa-a", alg, good_claims());
        let r = check_with(&t, |p| p["local_jwks"]["inline_string"] = json!(jwks));
        assert!(r.is_ok(), "{alg}: {r:?}");
    }
    // The allow-list narrows the family: RS256 only.
    let t = token("rsa-a", "PS256", good_claims());
    let r = check_with(&t, |p| {
        p["local_jwks"]["inline_string"] = json!(jwks);
        p["algorithms"] = json!(["RS256"]);
    });
    assert_eq!(reason(r), Reason::JwtAlgNotAllowed);
}

#[test]
fn accepts_hs256_with_configured_secret() {
    let p = providers(json!({ "h": {
        "issuer": ISSUER, "algorithms": ["HS256"],
        "hmac_secret": { "inline_base64url": b64(&HMAC_SECRET) } } }));
    let p = p.get(crate::authn::config::ProviderId(0)).unwrap();
    let t = token_with(json!({ "alg": "HS256" }), good_claims(), None);
    assert!(verify(&t, p, &keys_of(p), NOW).is_ok());
    // A wrong secret is a bad signature.
    let forged = format!("{}.{}", t.rsplit_once('.').unwrap().0, b64(&[0u8; 32]));
    assert_eq!(
        reason(verify(&forged, p, &keys_of(p), NOW)),
        Reason::JwtBadSignature
    );
    // An RS256 token never reaches an HMAC provider's secret.
    assert_eq!(
        reason(verify(&good_rs256_token(), p, &keys_of(p), NOW)),
        Reason::JwtAlgNotAllowed
    );
}

#[test]
fn rejects_expired_token() {
    assert_eq!(reason(check(&expired_token())), Reason::JwtExpired);
}

#[test]
fn clock_skew_applies_to_exp() {
    let c = claims_with(|c| c["exp"] = json!(NOW - 30));
    assert!(check(&token("ed25519", "EdDSA", c.clone())).is_ok());
    let c2 = claims_with(|c| c["exp"] = json!(NOW - 60));
    assert_eq!(
        reason(check(&token("ed25519", "EdDSA", c2))),
        Reason::JwtExpired
    );
    let r = check_with(&token("ed25519", "EdDSA", c), |p| {
        p["clock_skew_seconds"] = json!(0)
    });
    assert_eq!(reason(r), Reason::JwtExpired);
}

#[test]
fn rejects_not_yet_valid_token() {
    assert_eq!(
        reason(check(&not_yet_valid_token())),
        Reason::JwtNotYetValid
    );
    let within_skew = claims_with(|c| c["nbf"] = json!(NOW + 30));
    assert!(check(&token("ed25519", "EdDSA", within_skew)).is_ok());
}

#[test]
fn rejects_iat_in_the_future() {
    let c = claims_with(|c| c["iat"] = json!(NOW + 600));
    let e = check(&token("ed25519", "EdDSA", c)).unwrap_err();
    assert_eq!(e, JwtError::NotYetValid("iat is in the future"));
}

#[test]
fn rejects_token_without_exp_by_default() {
    let c = claims_with(|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    let t = token("ed25519", "EdDSA", c);
    assert_eq!(reason(check(&t)), Reason::JwtLifetimeTooLong);
    let v = check_with(&t, |p| p["require_expiration"] = json!(false)).unwrap();
    assert_eq!(v.exp, None);
    assert_eq!(v.valid_until, NOW + NO_EXP_CACHE_SECONDS);
}

#[test]
fn rejects_lifetime_over_maximum() {
    let t = good_eddsa_token(); // exp - iat = 3600
    assert!(check_with(&t, |p| p["max_lifetime_seconds"] = json!(3600)).is_ok());
    let r = check_with(&t, |p| p["max_lifetime_seconds"] = json!(3599));
    assert_eq!(reason(r), Reason::JwtLifetimeTooLong);
    // Without iat the remaining lifetime counts.
    let c = claims_with(|c| {
        c.as_object_mut().unwrap().remove("iat");
        c["exp"] = json!(NOW + 100);
    });
    let t = token("ed25519", "EdDSA", c);
    assert!(check_with(&t, |p| p["max_lifetime_seconds"] = json!(100)).is_ok());
    assert!(check_with(&t, |p| p["max_lifetime_seconds"] = json!(99)).is_err());
}

#[test]
fn rejects_issuer_mismatch() {
    assert_eq!(
        reason(check(&wrong_issuer_token())),
        Reason::JwtIssuerMismatch
    );
    let missing = claims_with(|c| {
        c.as_object_mut().unwrap().remove("iss");
    });
    assert_eq!(
        reason(check(&token("ed25519", "EdDSA", missing))),
        Reason::JwtIssuerMismatch
    );
}

#[test]
fn rejects_audience_mismatch_and_accepts_any_listed_audience() {
    assert_eq!(
        reason(check(&wrong_audience_token())),
        Reason::JwtAudienceMismatch
    );
    let many = claims_with(|c| c["aud"] = json!(["x", AUDIENCE]));
    assert!(check(&token("ed25519", "EdDSA", many)).is_ok());
    let missing = claims_with(|c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    let t = token("ed25519", "EdDSA", missing);
    assert_eq!(reason(check(&t)), Reason::JwtAudienceMismatch);
    // Without configured audiences aud is not checked.
    assert!(check_with(&t, |p| {
        p.as_object_mut().unwrap().remove("audiences");
    })
    .is_ok());
}

#[test]
fn rejects_alg_none_in_any_case() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let e = check(&alg_none_token(alg)).unwrap_err();
        assert_eq!(e.reason(), Reason::JwtAlgNotAllowed, "{alg}");
    }
}

#[test]
fn rejects_alg_outside_allow_list() {
    let r = check_with(&good_es256_token(), |p| p["algorithms"] = json!(["RS256"]));
    assert_eq!(reason(r), Reason::JwtAlgNotAllowed);
    let unknown = token_with(
        json!({ "alg": "ES512", "kid": "ec-p256" }),
        good_claims(),
        None,
    );
    assert_eq!(reason(check(&unknown)), Reason::JwtAlgNotAllowed);
}

#[test]
fn rejects_alg_that_is_not_the_keys_algorithm() {
    // rsa-a is pinned to RS256; a PS256 or RS384 token naming it fails before the signature.
    for alg in ["PS256", "RS384"] {
        let t = token("rsa-a", alg, good_claims());
        let e = check(&t).unwrap_err();
        assert_eq!(e.reason(), Reason::JwtAlgNotAllowed, "{alg}");
    }
    // An ES384 token naming the P-256 key.
    let t = token_with(
        json!({ "alg": "ES384", "kid": "ec-p256" }),
        good_claims(),
        Some("ec-p384"),
    );
    assert_eq!(reason(check(&t)), Reason::JwtAlgNotAllowed);
}

#[test]
fn rejects_hs256_signed_with_the_rsa_public_key() {
    // The classic confusion: HMAC keyed with the public key's bytes.
    let jwk = serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0].clone();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for secret in [n, jwk.to_string().into_bytes()] {
        let h = b64(json!({ "alg": "HS256", "kid": "rsa-a" })
            .to_string()
            .as_bytes());
        let p = b64(good_claims().to_string().as_bytes());
        let input = format!("{h}.{p}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let sig = ring::hmac::sign(&key, input.as_bytes());
        let t = format!("{input}.{}", b64(sig.as_ref()));
        assert_eq!(reason(check(&t)), Reason::JwtAlgNotAllowed);
        // Even a provider that allows RS256 only, or every default algorithm.
        let r = check_with(&t, |p| p["algorithms"] = json!(["RS256"]));
        assert_eq!(reason(r), Reason::JwtAlgNotAllowed);
    }
}

#[test]
fn rejects_unknown_kid() {
    assert_eq!(
        check(&unknown_kid_token()).unwrap_err(),
        JwtError::UnknownKid
    );
}

#[test]
fn token_without_kid_is_tried_against_keys_of_its_algorithm() {
    let t = token_with(json!({ "alg": "EdDSA" }), good_claims(), Some("ed25519"));
    assert_eq!(check(&t).unwrap().kid.as_deref(), Some("ed25519"));
    let t = token_with(json!({ "alg": "RS256" }), good_claims(), Some("rsa-b"));
    assert_eq!(check(&t).unwrap().kid.as_deref(), Some("rsa-b"));
    // No key for PS256 at all: unknown key.
    let t = token_with(json!({ "alg": "PS256" }), good_claims(), Some("rsa-a"));
    assert_eq!(check(&t).unwrap_err(), JwtError::UnknownKid);
}

#[test]
fn key_without_kid_is_tried_for_any_kid() {
    let mut doc: Value = serde_json::from_str(JWKS).unwrap();
    doc["keys"][4].as_object_mut().unwrap().remove("kid");
    let t = token_with(
        json!({ "alg": "EdDSA", "kid": "whatever" }),
        good_claims(),
        Some("ed25519"),
    );
    let v = check_with(&t, |p| {
        p["local_jwks"]["inline_string"] = json!(doc.to_string())
    })
    .unwrap();
    assert_eq!(v.kid, None);
}

#[test]
fn rejects_bad_signature() {
    assert_eq!(
        check(&bad_signature_token()).unwrap_err(),
        JwtError::BadSignature
    );
}

#[test]
fn rejects_tampered_payload() {
    let t = good_rs256_token();
    let parts: Vec<&str> = t.split('.').collect();
    let evil = b64(claims_with(|c| c["sub"] = json!("admin"))
        .to_string()
        .as_bytes());
    let forged = format!("{}.{}.{}", parts[0], evil, parts[2]);
    assert_eq!(check(&forged).unwrap_err(), JwtError::BadSignature);
}

#[test]
fn ignores_keys_embedded_in_the_token() {
    // Signed by rsa-b, which the header offers as jwk / jku / x5u / x5c; kid points at rsa-a.
    let rsa_b = serde_json::from_str::<Value>(JWKS).unwrap()["keys"][1].clone();
    let header = json!({ "alg": "RS256", "kid": "rsa-a", "jwk": rsa_b,
                         "jku": "https://evil.example/jwks", "x5u": "https://evil.example/c",
                         "x5c": ["MIIB"] });
    let t = token_with(header, good_claims(), Some("rsa-b"));
    assert_eq!(check(&t).unwrap_err(), JwtError::BadSignature);
    let header = json!({ "alg": "RS256", "kid": "attacker", "jwk": rsa_b });
    let t = token_with(header, good_claims(), Some("rsa-b"));
    assert_eq!(check(&t).unwrap_err(), JwtError::UnknownKid);
}

#[test]
fn rejects_crit_header() {
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("x")] {
        let t = token_with(
            json!({ "alg": "EdDSA", "kid": "ed25519", "crit": crit }),
            good_claims(),
            None,
        );
        assert_eq!(check(&t).unwrap_err(), JwtError::CritUnsupported);
    }
}

#[test]
fn rejects_jwe_and_nested_jwt() {
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d";
    assert_eq!(reason(check(jwe)), Reason::JwtUnsupportedType);
    let nested = token_with(
        json!({ "alg": "EdDSA", "kid": "ed25519", "cty": "JWT" }),
        good_claims(),
        None,
    );
    assert_eq!(reason(check(&nested)), Reason::JwtUnsupportedType);
    let lower = token_with(
        json!({ "alg": "EdDSA", "kid": "ed25519", "cty": "jwt" }),
        good_claims(),
        None,
    );
    assert_eq!(reason(check(&lower)), Reason::JwtUnsupportedType);
    for cty in ["application/jwt", "Application/JWT"] {
        let t = token_with(
            json!({ "alg": "EdDSA", "kid": "ed25519", "cty": cty }),
            good_claims(),
            None,
        );
        assert_eq!(reason(check(&t)), Reason::JwtUnsupportedType, "{cty}");
    }
    let odd = token_with(
        json!({ "alg": "EdDSA", "kid": "ed25519", "cty": 1 }),
        good_claims(),
        None,
    );
    assert_eq!(reason(check(&odd)), Reason::JwtMalformed);
    let plain = token_with(
        json!({ "alg": "EdDSA", "kid": "ed25519", "cty": "application/json" }),
        good_claims(),
        None,
    );
    assert!(check(&plain).is_ok());
    let enc = token_with(
        json!({ "alg": "EdDSA", "kid": "ed25519", "enc": "A128GCM" }),
        good_claims(),
        None,
    );
    assert_eq!(reason(check(&enc)), Reason::JwtUnsupportedType);
}

#[test]
fn rejects_malformed_tokens() {
    let good = good_eddsa_token();
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let header_of = |v: &str| b64(v.as_bytes());
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("abc".into(), "one segment"),
        (format!("{h}.{p}"), "two segments"),
        (format!("{h}.{p}.{s}.x"), "four segments"),
        (format!("{h}=.{p}.{s}"), "padded header"),
        (format!("{h}.{p}.{s}="), "padded signature"),
        (format!("{h}.{p}.{s}*"), "signature not base64url"),
        (
            format!("{}.{p}.{s}", header_of("not json")),
            "header not JSON",
        ),
        (
            format!("{}.{p}.{s}", header_of("[\"EdDSA\"]")),
            "header an array",
        ),
        (
            format!("{}.{p}.{s}", header_of("{\"kid\":\"ed25519\"}")),
            "no alg",
        ),
        (
            format!("{}.{p}.{s}", header_of("{\"alg\":7}")),
            "alg not a string",
        ),
        (
            format!(
                "{}.{p}.{s}",
                header_of("{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\"}")
            ),
            "duplicate header parameter",
        ),
        (
            format!(
                "{}.{p}.{s}",
                header_of("{\"alg\":\"EdDSA\",\"ALG\":\"none\"}")
            ),
            "a header parameter repeated in another case",
        ),
        (
            format!("{}.{p}.{s}", header_of("{\"alg\":\"EdDSA\",\"kid\":1}")),
            "kid not a string",
        ),
        (format!("é{good}"), "non-ASCII"),
    ];
    for (t, what) in cases {
        assert_eq!(reason(check(&t)), Reason::JwtMalformed, "{what}");
    }
}

#[test]
fn rejects_malformed_payloads_after_the_signature() {
    let sign_raw = |payload: &[u8]| {
        let h = b64(json!({ "alg": "EdDSA", "kid": "ed25519" })
            .to_string()
            .as_bytes());
        let input = format!("{h}.{}", b64(payload));
        let sig = sign_with("ed25519", "EdDSA", input.as_bytes());
        format!("{input}.{}", b64(&sig))
    };
    let dup = format!(
        "{{\"iss\":\"{ISSUER}\",\"sub\":\"alice\",\"sub\":\"admin\",\"exp\":{}}}",
        NOW + 60
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"foo".to_vec(), "not JSON"),
        (b"[1,2]".to_vec(), "array"),
        (b"\"s\"".to_vec(), "string"),
        (dup.into_bytes(), "duplicate claim"),
        (
            format!("{{\"iss\":\"{ISSUER}\",\"sub\":\"alice\",\"SUB\":\"admin\"}}").into_bytes(),
            "a claim repeated in another case",
        ),
        (
            format!("{{\"iss\":\"{ISSUER}\",\"ctx\":{{\"role\":\"u\",\"role\":\"admin\"}}}}")
                .into_bytes(),
            "a nested claim repeated",
        ),
        (
            format!("{{\"iss\":\"{ISSUER}\",\"exp\":\"tomorrow\"}}").into_bytes(),
            "exp not a number",
        ),
    ];
    for (payload, what) in cases {
        let e = check(&sign_raw(&payload)).unwrap_err();
        assert_eq!(e.reason(), Reason::JwtMalformed, "{what}: {e}");
    }
}

#[test]
fn registered_claims_of_the_wrong_type_make_the_token_malformed() {
    let bad: Vec<(&str, Value)> = vec![
        ("aud", json!({ "x": AUDIENCE })),
        ("aud", json!([AUDIENCE, 1])),
        ("aud", json!(7)),
        ("aud", json!(null)),
        ("iss", json!([ISSUER])),
        ("sub", json!(42)),
        ("sub", json!({ "id": "alice" })),
        ("jti", json!(1)),
        ("exp", json!("9999999999")),
        ("nbf", json!(true)),
        ("iat", json!([NOW])),
    ];
    for (name, value) in bad {
        let c = claims_with(|c| c[name] = value.clone());
        let t = token("ed25519", "EdDSA", c);
        assert_eq!(reason(check(&t)), Reason::JwtMalformed, "{name}: {value}");
    }
    // The right types pass, `aud` as a string or a list.
    let c = claims_with(|c| {
        c["aud"] = json!(["other", AUDIENCE]);
        c["jti"] = json!("j-1");
    });
    assert!(check(&token("ed25519", "EdDSA", c)).is_ok());
}

#[test]
fn rejects_token_over_max_token_bytes() {
    let big = claims_with(|c| c["pad"] = json!("x".repeat(9000)));
    let t = token("ed25519", "EdDSA", big);
    assert_eq!(
        check(&t).unwrap_err(),
        JwtError::Malformed("token exceeds max_token_bytes")
    );
    assert!(check_with(&t, |p| p["max_token_bytes"] = json!(65536)).is_ok());
}

#[test]
fn fractional_and_negative_times_are_read_safely() {
    let c = claims_with(|c| {
        c["exp"] = json!((NOW + 10) as f64 + 0.9);
        c["nbf"] = json!(-5);
        c["iat"] = json!(1e300);
    });
    // iat far in the future.
    assert_eq!(
        reason(check(&token("ed25519", "EdDSA", c))),
        Reason::JwtNotYetValid
    );
    let c = claims_with(|c| {
        c["exp"] = json!((NOW + 10) as f64 + 0.9);
        c["nbf"] = json!(-5);
    });
    assert_eq!(
        check(&token("ed25519", "EdDSA", c)).unwrap().exp,
        Some(NOW + 10)
    );
}

#[test]
fn every_error_maps_to_its_reason_without_client_detail() {
    let all = [
        (JwtError::Malformed("x"), Reason::JwtMalformed),
        (JwtError::AlgNotAllowed("x"), Reason::JwtAlgNotAllowed),
        (JwtError::UnknownKid, Reason::JwtUnknownKid),
        (JwtError::BadSignature, Reason::JwtBadSignature),
        (JwtError::CritUnsupported, Reason::JwtCritUnsupported),
        (JwtError::UnsupportedType("x"), Reason::JwtUnsupportedType),
        (JwtError::Expired, Reason::JwtExpired),
        (JwtError::NotYetValid("x"), Reason::JwtNotYetValid),
        (JwtError::LifetimeTooLong("x"), Reason::JwtLifetimeTooLong),
        (JwtError::IssuerMismatch, Reason::JwtIssuerMismatch),
        (JwtError::AudienceMismatch, Reason::JwtAudienceMismatch),
    ];
    for (e, r) in all {
        let d = e.to_denial();
        assert_eq!(d.reason, r);
        assert_eq!(d.detail, None);
        assert!(d.log_detail.is_some());
        assert_eq!(r.status(), 401);
    }
}

#[test]
fn token_without_kid_tries_at_most_max_keys_tried_keys() {
    // Four copies of rsa-b, then rsa-a, none with a kid.
    let doc: Value = serde_json::from_str(JWKS).unwrap();
    let strip = |i: usize| {
        let mut k = doc["keys"][i].clone();
        k.as_object_mut().unwrap().remove("kid");
        k
    };
    let keys: Vec<Value> = vec![strip(1), strip(1), strip(1), strip(1), strip(0)];
    let jwks = json!({ "keys": keys }).to_string();
    let p = provider_with(|p| p["local_jwks"] = json!({ "inline_string": jwks }));
    let ks = keys_of(&p);
    let by_b = token_with(json!({ "alg": "RS256" }), good_claims(), Some("rsa-b"));
    assert!(verify(&by_b, &p, &ks, NOW).is_ok());
    // rsa-a is the fifth candidate: never tried, so its own token fails.
    let by_a = token_with(json!({ "alg": "RS256" }), good_claims(), Some("rsa-a"));
    assert_eq!(
        verify(&by_a, &p, &ks, NOW).unwrap_err(),
        JwtError::BadSignature
    );
    assert_eq!(
        select_keys(&ks, None, Alg::RS256, 256).unwrap().len(),
        MAX_KEYS_TRIED
    );
    // A signature of the wrong length selects no key at all.
    assert_eq!(
        select_keys(&ks, None, Alg::RS256, 255).unwrap_err(),
        JwtError::BadSignature
    );
    assert_eq!(
        select_keys(&ks, Some("x"), Alg::ES256, 64).unwrap_err(),
        JwtError::UnknownKid
    );
}

#[test]
fn a_header_parameter_set_to_null_is_absent() {
    // As when serde read the header: `"kid": null` (some libraries write it) selects like no
    // `kid`; a null `cty`, `enc` or `crit` asks for nothing.
    for h in [
        json!({ "alg": "EdDSA", "kid": null }),
        json!({ "alg": "EdDSA", "kid": "ed25519", "cty": null }),
        json!({ "alg": "EdDSA", "kid": "ed25519", "enc": null }),
        json!({ "alg": "EdDSA", "kid": "ed25519", "crit": null }),
    ] {
        let t = token_with(h.clone(), good_claims(), Some("ed25519"));
        assert!(check(&t).is_ok(), "{h}: {:?}", check(&t).err());
    }
    let t = token_with(
        json!({ "alg": null, "kid": "ed25519" }),
        good_claims(),
        Some("ed25519"),
    );
    assert_eq!(reason(check(&t)), Reason::JwtMalformed);
}
