//! Shared by the stream-flow tests: header pairs as the host gives them, and the fixture JWKS.
#![allow(dead_code)]

use meshguard::host::HeaderPairs;

/// The fixture JWKS (RSA, EC and Ed25519 keys; `kid` ed25519 signs `alice_token`).
pub const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");

/// Header pairs as the host gives them (bytes).
pub fn pairs(list: &[(&str, &str)]) -> HeaderPairs {
    list.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}
