//! Shared by the stream-flow tests: a token for `alice` and header pairs as the host gives them.
#![allow(dead_code, clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshguard::host::HeaderPairs;
use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};

/// The tests' time, in Unix seconds.
pub const NOW: u64 = 1_700_000_000;
/// The fixture JWKS (RSA, EC and Ed25519 keys).
pub const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");
const ED25519: &[u8] = include_bytes!("../fixtures/jwt/ed25519.pk8.der");

/// An EdDSA token (`kid` ed25519) of `https://issuer.example` for `alice`, valid at NOW.
pub fn alice_token() -> String {
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(json!({ "alg": "EdDSA", "kid": "ed25519" })),
        b64(json!({ "iss": "https://issuer.example", "sub": "alice",
                    "iat": NOW, "exp": NOW + 600 }))
    );
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(ED25519).unwrap();
    let sig = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref());
    format!("{input}.{sig}")
}

/// Header pairs as the host gives them (bytes).
pub fn pairs(list: &[(&str, &str)]) -> HeaderPairs {
    list.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}
