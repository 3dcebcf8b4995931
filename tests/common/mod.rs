//! Fixtures shared by the integration tests (each test crate takes what it needs).
#![allow(dead_code, clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::Ed25519KeyPair;

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
