//! A proxy-wasm HTTP filter that only verifies the bearer token's signature: the signature
//! primitive as Envoy's V8 runs it (bench/run.py, setup `wasm-verify`).
//!
//! Plugin configuration: a JWKS (`{"keys":[...]}`; RSA `n`/`e`, EC P-256 `x`/`y`, OKP Ed25519
//! `x`, each with a `kid`). Every key is decoded at configure time into what ring verifies with,
//! so a request pays only for reading the header, splitting the token, decoding its header JSON
//! and signature, and ring's verify: the same ring calls as meshguard (src/authn/jwks.rs). No
//! cache of any kind, no claim checks. A valid signature continues the request; anything else is
//! answered 401. Bench code: it never panics on input, but it is not meshguard's hardened code.
// The SDK's host-call wrappers panic on an unexpected host status; meshguard wraps them
// (src/adapter/host.rs), a bench filter need not.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use ring::signature;
use serde_json::Value;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { keys: Rc::new(HashMap::new()) })
    });
}}

/// A public key as ring takes it.
enum Key {
    /// Big-endian modulus and exponent (`RsaPublicKeyComponents`).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed P-256 point: 0x04 || x || y.
    Ec(Vec<u8>),
    /// The 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
}

type Keys = Rc<HashMap<String, Key>>;

fn b64_field(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    B64.decode(jwk.get(name)?.as_str()?).ok()
}

fn parse_key(jwk: &Value) -> Option<(String, Key)> {
    let kid = jwk.get("kid")?.as_str()?.to_string();
    let key = match jwk.get("kty")?.as_str()? {
        "RSA" => Key::Rsa { n: b64_field(jwk, "n")?, e: b64_field(jwk, "e")? },
        "EC" if jwk.get("crv")?.as_str()? == "P-256" => {
            let (x, y) = (b64_field(jwk, "x")?, b64_field(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Key::Ec(point)
        }
        "OKP" if jwk.get("crv")?.as_str()? == "Ed25519" => Key::Ed25519(b64_field(jwk, "x")?),
        _ => return None,
    };
    Some((kid, key))
}

/// The JWKS's usable keys by kid; None if the document is not a JWKS at all.
fn parse_jwks(doc: &[u8]) -> Option<HashMap<String, Key>> {
    let doc: Value = serde_json::from_slice(doc).ok()?;
    Some(doc.get("keys")?.as_array()?.iter().filter_map(parse_key).collect())
}

/// True when `authorization` is `Bearer <jwt>` whose signature verifies with the key its header
/// names, under the algorithm its header names.
fn verify(keys: &HashMap<String, Key>, authorization: &str) -> bool {
    let Some(token) = authorization.strip_prefix("Bearer ") else {
        return false;
    };
    let Some((input, sig_b64)) = token.rsplit_once('.') else {
        return false;
    };
    let Some((header_b64, _payload)) = input.split_once('.') else {
        return false;
    };
    let Ok(header) = B64.decode(header_b64) else {
        return false;
    };
    let Ok(header) = serde_json::from_slice::<Value>(&header) else {
        return false;
    };
    let (Some(alg), Some(kid)) = (
        header.get("alg").and_then(Value::as_str),
        header.get("kid").and_then(Value::as_str),
    ) else {
        return false;
    };
    let Ok(sig) = B64.decode(sig_b64) else {
        return false;
    };
    let msg = input.as_bytes();
    match (alg, keys.get(kid)) {
        ("RS256", Some(Key::Rsa { n, e })) => signature::RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, &sig)
            .is_ok(),
        ("ES256", Some(Key::Ec(point))) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, &sig)
                .is_ok()
        }
        ("EdDSA", Some(Key::Ed25519(x))) => {
            signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, &sig)
                .is_ok()
        }
        _ => false,
    }
}

fn warn(msg: &str) {
    let _ = proxy_wasm::hostcalls::log(LogLevel::Warn, msg);
}

struct Root {
    keys: Keys,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(doc) = self.get_plugin_configuration() else {
            warn("bench-verify: no plugin configuration (want a JWKS)");
            return false;
        };
        match parse_jwks(&doc) {
            Some(keys) if !keys.is_empty() => {
                self.keys = Rc::new(keys);
                true
            }
            _ => {
                warn("bench-verify: the plugin configuration holds no usable JWKS key");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Verify { keys: Rc::clone(&self.keys) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Verify {
    keys: Keys,
}

impl Context for Verify {}

impl HttpContext for Verify {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let ok = self
            .get_http_request_header("authorization")
            .is_some_and(|h| verify(&self.keys, &h));
        if ok {
            Action::Continue
        } else {
            self.send_http_response(401, vec![], None);
            Action::Pause
        }
    }
}
