//! Which keys can verify a provider's tokens: a JWKS document decoded once into a [`KeySet`].
//!
//! Every key is checked here, at load time, so the request path only selects a key and runs the
//! signature check: RSA moduli of 2048..=8192 bits with a sane exponent (and no ROCA fingerprint),
//! EC points on P-256 / P-384, Ed25519 points that decompress. Each key is pinned to the
//! algorithms it may verify: its `alg`, or the only one its type allows (EC, OKP). An RSA key
//! without `alg` admits the RSA algorithms (RS*/PS*); the provider's `algorithms` allow-list then
//! narrows it, so a provider with `algorithms: ["RS256"]` pins such keys to RS256 exactly.
//!
//! A key that cannot be used is skipped with a [`KeyWarning`]; one bad key never fails the set.
//! Symmetric (`oct`) keys are never taken from a JWKS (HMAC needs an explicit `hmac_secret`), and
//! a key that publishes private material is skipped as compromised. This module never fetches
//! anything and never looks at a token.

use super::alg::{Alg, AlgSet, Family};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use num_bigint::BigUint;
use ring::{digest, hmac, signature};
use serde_json::{Map, Value};
use std::fmt;

/// Default cap on a JWKS document's size (64 KiB).
pub const DEFAULT_MAX_JWKS_BYTES: usize = 64 * 1024;
/// At most this many usable keys are kept from one document; the rest are skipped.
pub const MAX_KEYS: usize = 64;
/// Longest accepted `kid`.
pub const MAX_KID_BYTES: usize = 256;

/// base64url for key members: padding tolerated (some issuers pad), trailing bits not.
const B64_KEY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A stable identity for a key's material and pinned algorithms (SHA-256), used by the
/// verified-token cache to notice that a key left the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyFingerprint([u8; 32]);

/// One verification key, decoded and validated.
pub struct Key {
    kid: Option<String>,
    algs: AlgSet,
    material: Material,
    fingerprint: KeyFingerprint,
}

enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { point: Vec<u8> },
    Ed25519 { x: Vec<u8> },
    Hmac(Vec<(Alg, hmac::Key)>),
}

impl fmt::Debug for Key {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key is pinned to.
    pub fn algs(&self) -> AlgSet {
        self.algs
    }

    /// True when this key may verify a token signed with `alg`.
    pub fn admits(&self, alg: Alg) -> bool {
        self.algs.contains(alg)
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// True when a signature of `len` bytes could be this key's for `alg` (RSA: the modulus
    /// length; ECDSA: twice the field size; Ed25519: 64). A free test that spares a forged
    /// token of the wrong length the key setup and the arithmetic.
    pub fn signature_len_fits(&self, alg: Alg, len: usize) -> bool {
        match &self.material {
            Material::Rsa { n, .. } => n.iter().skip_while(|b| **b == 0).count() == len,
            Material::Ec { .. } => match alg {
                Alg::ES256 => len == 64,
                Alg::ES384 => len == 96,
                _ => false,
            },
            Material::Ed25519 { .. } => len == 64,
            // HMAC tags are checked in constant time whatever their length.
            Material::Hmac(_) => true,
        }
    }

    /// Checks `signature` over `message` with `alg`; false for any failure, including an
    /// algorithm this key is not pinned to.
    pub fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        if !self.admits(alg) {
            return false;
        }
        match &self.material {
            Material::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            Material::Ec { point } => {
                let params: &signature::EcdsaVerificationAlgorithm = match alg {
                    Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Alg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Ed25519 { x } => {
                alg == Alg::EdDSA
                    && signature::UnparsedPublicKey::new(&signature::ED25519, x)
                        .verify(message, sig)
                        .is_ok()
            }
            Material::Hmac(keys) => keys
                .iter()
                .find(|(a, _)| *a == alg)
                .is_some_and(|(_, k)| hmac::verify(k, message, sig).is_ok()),
        }
    }
}

/// The usable keys of one provider, with the generation they were published under.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    generation: u64,
}

impl KeySet {
    /// The keys, in document order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The publication generation (0 for static key sets).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The same keys under another generation.
    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// The key with this `kid`, if any (kids are unique within a set).
    pub fn by_kid(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// True when a key with this fingerprint is still in the set.
    pub fn contains(&self, fingerprint: &KeyFingerprint) -> bool {
        self.keys.iter().any(|k| &k.fingerprint == fingerprint)
    }

    /// A set holding one HMAC secret for the given HS algorithms. Only the config compiler builds
    /// this, from an explicit `hmac_secret`; the caller has checked the secret's length.
    pub(crate) fn hmac(secret: &[u8], kid: Option<String>, algs: AlgSet) -> KeySet {
        let keys = algs
            .iter()
            .filter_map(|a| {
                let ring_alg = match a {
                    Alg::HS256 => hmac::HMAC_SHA256,
                    Alg::HS384 => hmac::HMAC_SHA384,
                    Alg::HS512 => hmac::HMAC_SHA512,
                    _ => return None,
                };
                Some((a, hmac::Key::new(ring_alg, secret)))
            })
            .collect::<Vec<_>>();
        let algs: AlgSet = keys.iter().map(|(a, _)| *a).collect();
        let fingerprint = fingerprint_of(b"oct", &[secret], algs);
        KeySet {
            keys: vec![Key {
                kid,
                algs,
                material: Material::Hmac(keys),
                fingerprint,
            }],
            generation: 0,
        }
    }
}

/// A decoded JWKS: the usable keys, and a warning for each key that was skipped.
#[derive(Debug)]
pub struct DecodedJwks {
    /// The usable keys (never empty).
    pub keys: KeySet,
    /// One entry per skipped key.
    pub warnings: Vec<KeyWarning>,
}

/// Why a whole JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// The document exceeds the size cap.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The document is not JSON.
    NotJson,
    /// The document is not an object with a `keys` array.
    NoKeysArray,
    /// No key in the document is usable; the warnings say why.
    NoUsableKeys(Vec<KeyWarning>),
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::TooLarge { size, max } => {
                write!(f, "JWKS is {size} bytes, over the {max}-byte cap")
            }
            JwksError::NotJson => f.write_str("JWKS is not valid JSON"),
            JwksError::NoKeysArray => f.write_str("JWKS is not an object with a \"keys\" array"),
            JwksError::NoUsableKeys(w) => {
                f.write_str("JWKS has no usable key")?;
                for (i, warning) in w.iter().enumerate() {
                    f.write_str(if i == 0 { " (" } else { "; " })?;
                    write!(f, "{warning}")?;
                }
                if !w.is_empty() {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

/// A key skipped from a JWKS, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWarning {
    /// Position of the key in the `keys` array.
    pub index: usize,
    /// Its `kid`, if it had a usable one.
    pub kid: Option<String>,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

impl fmt::Display for KeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        write!(f, " skipped: {}", self.problem)
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// The entry is not a JSON object.
    NotAnObject,
    /// `kid` is not a string, or is too long.
    BadKid,
    /// `kty` is missing or not RSA / EC / OKP.
    UnsupportedKty(String),
    /// An `oct` key: HMAC secrets are never taken from a JWKS.
    SymmetricKey,
    /// The key publishes private members (`d`, `p`, ...): it is compromised.
    PrivateKeyMaterial,
    /// `use` is present and not `sig`.
    NotForSignatures,
    /// `key_ops` is present and lacks `verify`.
    KeyOpsWithoutVerify,
    /// `alg` is not a supported signature algorithm.
    UnsupportedAlg(String),
    /// `alg` does not fit the key type or curve.
    AlgDoesNotFitKey(&'static str),
    /// The curve is not P-256, P-384 or Ed25519.
    UnsupportedCurve(String),
    /// A member is missing or not canonical base64url of the right length.
    BadMember(&'static str),
    /// The RSA modulus is shorter than 2048 bits.
    RsaTooShort(u64),
    /// The RSA modulus is longer than 8192 bits.
    RsaTooLong(u64),
    /// The RSA public exponent is even, under 3, or too large.
    RsaBadExponent,
    /// The RSA modulus has the ROCA fingerprint (CVE-2017-15361): its factors are recoverable.
    RsaRocaFingerprint,
    /// The EC or Ed25519 point is not on its curve.
    PointNotOnCurve,
    /// Another usable key earlier in the set has the same `kid`.
    DuplicateKid,
    /// The set already holds [`MAX_KEYS`] usable keys.
    TooManyKeys,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::NotAnObject => f.write_str("not a JSON object"),
            KeyProblem::BadKid => f.write_str("kid is not a string of at most 256 bytes"),
            KeyProblem::UnsupportedKty(k) => write!(f, "unsupported kty {:?}", clip(k)),
            KeyProblem::SymmetricKey => {
                f.write_str("symmetric (oct) keys are never taken from a JWKS; use hmac_secret")
            }
            KeyProblem::PrivateKeyMaterial => {
                f.write_str("the key publishes private material and must be considered compromised")
            }
            KeyProblem::NotForSignatures => f.write_str("use is not \"sig\""),
            KeyProblem::KeyOpsWithoutVerify => f.write_str("key_ops does not include \"verify\""),
            KeyProblem::UnsupportedAlg(a) => write!(f, "unsupported alg {:?}", clip(a)),
            KeyProblem::AlgDoesNotFitKey(why) => write!(f, "alg does not fit the key: {why}"),
            KeyProblem::UnsupportedCurve(c) => write!(f, "unsupported crv {:?}", clip(c)),
            KeyProblem::BadMember(m) => write!(f, "member {m} is missing or malformed"),
            KeyProblem::RsaTooShort(bits) => {
                write!(f, "RSA modulus has {bits} bits; at least 2048 required")
            }
            KeyProblem::RsaTooLong(bits) => {
                write!(f, "RSA modulus has {bits} bits; at most 8192 supported")
            }
            KeyProblem::RsaBadExponent => f.write_str("RSA exponent is not an odd value >= 3"),
            KeyProblem::RsaRocaFingerprint => {
                f.write_str("RSA modulus has the ROCA weakness (CVE-2017-15361)")
            }
            KeyProblem::PointNotOnCurve => f.write_str("public point is not on its curve"),
            KeyProblem::DuplicateKid => f.write_str("an earlier key has the same kid"),
            KeyProblem::TooManyKeys => write!(f, "more than {MAX_KEYS} usable keys"),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Decodes a JWKS document (at most `max_bytes`) into the usable keys. Fails only when the
/// document itself is unusable or has no usable key at all.
pub fn decode_jwks(bytes: &[u8], max_bytes: usize) -> Result<DecodedJwks, JwksError> {
    if bytes.len() > max_bytes {
        return Err(JwksError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotJson)?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeysArray)?;
    let mut keys: Vec<Key> = Vec::new();
    let mut warnings = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let kid = entry
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| k.len() <= MAX_KID_BYTES)
            .map(str::to_string);
        let problem = match decode_key(entry) {
            Err(problem) => problem,
            Ok(key) => {
                if key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid) {
                    KeyProblem::DuplicateKid
                } else if keys.len() >= MAX_KEYS {
                    KeyProblem::TooManyKeys
                } else {
                    keys.push(key);
                    continue;
                }
            }
        };
        warnings.push(KeyWarning {
            index,
            kid,
            problem,
        });
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys(warnings));
    }
    Ok(DecodedJwks {
        keys: KeySet {
            keys,
            generation: 0,
        },
        warnings,
    })
}

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Decodes and validates one JWK.
fn decode_key(entry: &Value) -> Result<Key, KeyProblem> {
    let obj = entry.as_object().ok_or(KeyProblem::NotAnObject)?;
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_KID_BYTES => Some(s.clone()),
        Some(_) => return Err(KeyProblem::BadKid),
    };
    let kty = obj.get("kty").and_then(Value::as_str).unwrap_or_default();
    if kty == "oct" {
        return Err(KeyProblem::SymmetricKey);
    }
    if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
        return Err(KeyProblem::PrivateKeyMaterial);
    }
    match obj.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err(KeyProblem::NotForSignatures),
    }
    if let Some(ops) = obj.get("key_ops") {
        let has_verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !has_verify {
            return Err(KeyProblem::KeyOpsWithoutVerify);
        }
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => match Alg::parse(name) {
            Some(a) => Some(a),
            None => return Err(KeyProblem::UnsupportedAlg(name.clone())),
        },
        Some(_) => return Err(KeyProblem::UnsupportedAlg("(not a string)".to_string())),
    };
    let (material, algs) = match kty {
        "RSA" => decode_rsa(obj, alg)?,
        "EC" => decode_ec(obj, alg)?,
        "OKP" => decode_okp(obj, alg)?,
        other => return Err(KeyProblem::UnsupportedKty(other.to_string())),
    };
    let fingerprint = match &material {
        Material::Rsa { n, e } => fingerprint_of(b"RSA", &[n, e], algs),
        Material::Ec { point } => fingerprint_of(b"EC", &[point], algs),
        Material::Ed25519 { x } => fingerprint_of(b"OKP", &[x], algs),
        Material::Hmac(_) => return Err(KeyProblem::SymmetricKey),
    };
    Ok(Key {
        kid,
        algs,
        material,
        fingerprint,
    })
}

fn fingerprint_of(tag: &[u8], parts: &[&[u8]], algs: AlgSet) -> KeyFingerprint {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(tag);
    for part in parts {
        // Length-prefixed so that (n, e) boundaries cannot shift.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    for a in algs.iter() {
        ctx.update(a.name().as_bytes());
        ctx.update(b",");
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    KeyFingerprint(out)
}

fn member(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyProblem> {
    obj.get(name)
        .and_then(Value::as_str)
        .and_then(|s| B64_KEY.decode(s).ok())
        .filter(|b| !b.is_empty())
        .ok_or(KeyProblem::BadMember(name))
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn decode_rsa(
    obj: &Map<String, Value>,
    alg: Option<Alg>,
) -> Result<(Material, AlgSet), KeyProblem> {
    let algs = match alg {
        Some(a) if a.family() == Family::Rsa => AlgSet::EMPTY.with(a),
        Some(_) => return Err(KeyProblem::AlgDoesNotFitKey("RSA key with a non-RSA alg")),
        None => Alg::ALL
            .iter()
            .copied()
            .filter(|a| a.family() == Family::Rsa)
            .collect(),
    };
    let n = strip_leading_zeros(member(obj, "n")?);
    let e = strip_leading_zeros(member(obj, "e")?);
    let bits = n.first().map_or(0, |top| {
        (n.len() as u64).saturating_sub(1).saturating_mul(8) + u64::from(8 - top.leading_zeros())
    });
    if bits < 2048 {
        return Err(KeyProblem::RsaTooShort(bits));
    }
    if bits > 8192 {
        return Err(KeyProblem::RsaTooLong(bits));
    }
    if n.last().is_none_or(|b| b & 1 == 0) {
        return Err(KeyProblem::BadMember("n"));
    }
    let e_value = e.iter().try_fold(0u64, |acc, b| {
        acc.checked_mul(256).map(|v| v | u64::from(*b))
    });
    // ring accepts odd exponents in 3..2^33.
    match e_value {
        Some(v) if v >= 3 && v & 1 == 1 && v < (1u64 << 33) => {}
        _ => return Err(KeyProblem::RsaBadExponent),
    }
    if has_roca_fingerprint(&n) {
        return Err(KeyProblem::RsaRocaFingerprint);
    }
    Ok((Material::Rsa { n, e }, algs))
}

/// The ROCA test (Nemec et al., CCS 2017): moduli generated by the vulnerable Infineon library
/// are, modulo each small prime below, in the subgroup generated by 65537. A random modulus
/// passes all 38 tests with negligible probability.
fn has_roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let r = n
            .iter()
            .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
        let g = 65537 % p;
        // Walk the subgroup generated by g (its order divides p - 1 < 168).
        let mut x = 1u32;
        for _ in 0..p {
            if x == r {
                return true;
            }
            x = x * g % p;
            if x == 1 {
                break;
            }
        }
        false
    })
}

fn decode_ec(obj: &Map<String, Value>, alg: Option<Alg>) -> Result<(Material, AlgSet), KeyProblem> {
    let crv = obj.get("crv").and_then(Value::as_str).unwrap_or_default();
    let (curve_alg, size) = match crv {
        "P-256" => (Alg::ES256, 32),
        "P-384" => (Alg::ES384, 48),
        other => return Err(KeyProblem::UnsupportedCurve(other.to_string())),
    };
    match alg {
        None => {}
        Some(a) if a == curve_alg => {}
        Some(_) => return Err(KeyProblem::AlgDoesNotFitKey("alg does not match the curve")),
    }
    let x = coordinate(member(obj, "x")?, size).ok_or(KeyProblem::BadMember("x"))?;
    let y = coordinate(member(obj, "y")?, size).ok_or(KeyProblem::BadMember("y"))?;
    if !on_weierstrass_curve(curve_alg, &x, &y) {
        return Err(KeyProblem::PointNotOnCurve);
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((Material::Ec { point }, AlgSet::EMPTY.with(curve_alg)))
}

/// A coordinate left-padded to the field size (some issuers drop leading zeros); longer is wrong.
fn coordinate(bytes: Vec<u8>, size: usize) -> Option<Vec<u8>> {
    let pad = size.checked_sub(bytes.len())?;
    let mut out = vec![0u8; pad];
    out.extend_from_slice(&bytes);
    Some(out)
}

/// y^2 = x^3 - 3x + b (mod p), with x, y < p, for P-256 and P-384.
fn on_weierstrass_curve(curve: Alg, x: &[u8], y: &[u8]) -> bool {
    let (p_hex, b_hex): (&[u8], &[u8]) = match curve {
        Alg::ES256 => (
            b"ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
            b"5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
        ),
        Alg::ES384 => (
            b"fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
            b"b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
        ),
        _ => return false,
    };
    let (Some(p), Some(b)) = (
        BigUint::parse_bytes(p_hex, 16),
        BigUint::parse_bytes(b_hex, 16),
    ) else {
        return false;
    };
    let x = BigUint::from_bytes_be(x);
    let y = BigUint::from_bytes_be(y);
    if x >= p || y >= p {
        return false;
    }
    let lhs = &y * &y % &p;
    // x^3 + b + 3(p - x): the subtraction stays non-negative because x < p.
    let rhs = (&x * &x % &p * &x + &b + (&p - &x) * 3u32) % &p;
    lhs == rhs
}

fn decode_okp(
    obj: &Map<String, Value>,
    alg: Option<Alg>,
) -> Result<(Material, AlgSet), KeyProblem> {
    let crv = obj.get("crv").and_then(Value::as_str).unwrap_or_default();
    if crv != "Ed25519" {
        return Err(KeyProblem::UnsupportedCurve(crv.to_string()));
    }
    match alg {
        None | Some(Alg::EdDSA) => {}
        Some(_) => {
            return Err(KeyProblem::AlgDoesNotFitKey(
                "Ed25519 keys verify EdDSA only",
            ))
        }
    }
    let x = member(obj, "x")?;
    if x.len() != 32 {
        return Err(KeyProblem::BadMember("x"));
    }
    if !ed25519_point_decompresses(&x) {
        return Err(KeyProblem::PointNotOnCurve);
    }
    Ok((Material::Ed25519 { x }, AlgSet::EMPTY.with(Alg::EdDSA)))
}

/// RFC 8032 §5.1.3: y < p, and (y^2 - 1) / (d y^2 + 1) is a square mod p (x = 0 only with a
/// clear sign bit).
fn ed25519_point_decompresses(encoded: &[u8]) -> bool {
    let mut le = encoded.to_vec();
    let sign = le.last().is_some_and(|b| b & 0x80 != 0);
    if let Some(last) = le.last_mut() {
        *last &= 0x7f;
    }
    let y = BigUint::from_bytes_le(&le);
    let one = BigUint::from(1u32);
    let p = (&one << 255u32) - 19u32;
    if y >= p {
        return false;
    }
    let p_minus_2 = &p - 2u32;
    // d = -121665 / 121666 mod p.
    let inv_121666 = BigUint::from(121_666u32).modpow(&p_minus_2, &p);
    let d = (&p - 121_665u32) * inv_121666 % &p;
    let yy = &y * &y % &p;
    let u = (&yy + &p - &one) % &p;
    let v = (&d * &yy + &one) % &p;
    let w = &u * v.modpow(&p_minus_2, &p) % &p;
    if w == BigUint::from(0u32) {
        return !sign;
    }
    let euler = w.modpow(&((&p - &one) >> 1u32), &p);
    euler == one
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURE_JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");
    const RSA_1024_JWK: &str = include_str!("../../tests/fixtures/jwt/rsa-1024.jwk.json");

    fn fixture_key(kid: &str) -> Value {
        let doc: Value = serde_json::from_str(FIXTURE_JWKS).unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()
            .clone()
    }

    fn decode_one(key: Value) -> Result<DecodedJwks, JwksError> {
        decode_jwks(
            json!({ "keys": [key] }).to_string().as_bytes(),
            DEFAULT_MAX_JWKS_BYTES,
        )
    }

    fn problem_of(key: Value) -> KeyProblem {
        match decode_one(key) {
            Err(JwksError::NoUsableKeys(w)) => w[0].problem.clone(),
            other => panic!("expected a skipped key, got {other:?}"),
        }
    }

    #[test]
    fn decodes_fixture_keys_pinned_to_their_algorithms() {
        let set = decode_jwks(FIXTURE_JWKS.as_bytes(), DEFAULT_MAX_JWKS_BYTES).unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        assert_eq!(set.keys.len(), 5);
        let pins: Vec<_> = set
            .keys
            .keys()
            .iter()
            .map(|k| {
                (
                    k.kid().unwrap().to_string(),
                    k.algs().iter().collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            pins,
            vec![
                ("rsa-a".to_string(), vec![Alg::RS256]),
                ("rsa-b".to_string(), vec![Alg::RS256]),
                ("ec-p256".to_string(), vec![Alg::ES256]),
                ("ec-p384".to_string(), vec![Alg::ES384]),
                ("ed25519".to_string(), vec![Alg::EdDSA]),
            ]
        );
    }

    #[test]
    fn key_without_alg_is_pinned_by_type() {
        let mut ec = fixture_key("ec-p384");
        ec.as_object_mut().unwrap().remove("alg");
        let set = decode_one(ec).unwrap();
        assert_eq!(
            set.keys.keys()[0].algs().iter().collect::<Vec<_>>(),
            vec![Alg::ES384]
        );

        let mut rsa = fixture_key("rsa-a");
        rsa.as_object_mut().unwrap().remove("alg");
        let set = decode_one(rsa).unwrap();
        let algs = set.keys.keys()[0].algs();
        assert!(algs.contains(Alg::RS256) && algs.contains(Alg::PS512));
        assert!(!algs.contains(Alg::ES256) && !algs.contains(Alg::HS256));
    }

    #[test]
    fn skips_short_rsa_key() {
        let key: Value = serde_json::from_str(RSA_1024_JWK).unwrap();
        assert_eq!(problem_of(key), KeyProblem::RsaTooShort(1024));
    }

    #[test]
    fn skips_unusable_keys_with_reasons() {
        let mut enc = fixture_key("rsa-a");
        enc["use"] = json!("enc");
        assert_eq!(problem_of(enc), KeyProblem::NotForSignatures);

        let mut ops = fixture_key("ec-p256");
        ops["key_ops"] = json!(["sign"]);
        assert_eq!(problem_of(ops), KeyProblem::KeyOpsWithoutVerify);

        let mut ops_ok = fixture_key("ec-p256");
        ops_ok["key_ops"] = json!(["verify"]);
        assert!(decode_one(ops_ok).is_ok());

        assert_eq!(
            problem_of(json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"})),
            KeyProblem::SymmetricKey
        );
        assert_eq!(
            problem_of(json!({"kty": "foo"})),
            KeyProblem::UnsupportedKty("foo".to_string())
        );
        let mut private = fixture_key("ec-p256");
        private["d"] = json!("AAAA");
        assert_eq!(problem_of(private), KeyProblem::PrivateKeyMaterial);

        let mut wrong_alg = fixture_key("ec-p256");
        wrong_alg["alg"] = json!("ES384");
        assert!(matches!(
            problem_of(wrong_alg),
            KeyProblem::AlgDoesNotFitKey(_)
        ));

        let mut rsa_as_ec = fixture_key("rsa-a");
        rsa_as_ec["alg"] = json!("ES256");
        assert!(matches!(
            problem_of(rsa_as_ec),
            KeyProblem::AlgDoesNotFitKey(_)
        ));

        let mut p521 = fixture_key("ec-p256");
        p521["crv"] = json!("P-521");
        p521["alg"] = json!("ES512");
        assert_eq!(
            problem_of(p521),
            KeyProblem::UnsupportedAlg("ES512".to_string())
        );

        let mut bad_e = fixture_key("rsa-a");
        bad_e["e"] = json!("AQ"); // e = 1
        assert_eq!(problem_of(bad_e), KeyProblem::RsaBadExponent);

        let mut bad_kid = fixture_key("rsa-a");
        bad_kid["kid"] = json!(7);
        assert_eq!(problem_of(bad_kid), KeyProblem::BadKid);
    }

    #[test]
    fn skips_points_off_their_curve() {
        let mut ec = fixture_key("ec-p256");
        let y = ec["y"].as_str().unwrap().to_string();
        // Change the last character: still valid base64url, a different y.
        let tweaked = format!(
            "{}{}",
            &y[..y.len() - 1],
            if y.ends_with('A') { "Q" } else { "A" }
        );
        ec["y"] = json!(tweaked);
        assert_eq!(problem_of(ec), KeyProblem::PointNotOnCurve);

        let mut p384_as_p256 = fixture_key("ec-p384");
        p384_as_p256["crv"] = json!("P-256");
        p384_as_p256.as_object_mut().unwrap().remove("alg");
        assert_eq!(problem_of(p384_as_p256), KeyProblem::BadMember("x"));
    }

    #[test]
    fn ed25519_point_check_accepts_real_keys_and_rejects_non_points() {
        let ed = fixture_key("ed25519");
        assert!(decode_one(ed.clone()).is_ok());
        // y = 2 is not the y of any Ed25519 point (known non-square).
        let mut bogus = [0u8; 32];
        bogus[0] = 2;
        let mut not_a_point = ed;
        not_a_point["x"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bogus));
        assert_eq!(problem_of(not_a_point), KeyProblem::PointNotOnCurve);
    }

    #[test]
    fn duplicate_kid_keeps_the_first_usable_key() {
        let a = fixture_key("rsa-a");
        let mut b = fixture_key("rsa-b");
        b["kid"] = json!("rsa-a");
        let doc = json!({ "keys": [a.clone(), b] }).to_string();
        let set = decode_jwks(doc.as_bytes(), DEFAULT_MAX_JWKS_BYTES).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.warnings[0].problem, KeyProblem::DuplicateKid);
        assert_eq!(set.warnings[0].index, 1);
        let first = decode_one(a).unwrap();
        assert_eq!(
            set.keys.keys()[0].fingerprint(),
            first.keys.keys()[0].fingerprint()
        );
    }

    #[test]
    fn caps_document_size_and_key_count() {
        let big = vec![b' '; DEFAULT_MAX_JWKS_BYTES + 1];
        assert!(matches!(
            decode_jwks(&big, DEFAULT_MAX_JWKS_BYTES),
            Err(JwksError::TooLarge { .. })
        ));
        let keys: Vec<Value> = (0..MAX_KEYS + 2)
            .map(|i| {
                let mut k = fixture_key("ed25519");
                k["kid"] = json!(format!("k{i}"));
                k
            })
            .collect();
        let doc = json!({ "keys": keys }).to_string();
        let set = decode_jwks(doc.as_bytes(), 1 << 20).unwrap();
        assert_eq!(set.keys.len(), MAX_KEYS);
        assert_eq!(set.warnings.len(), 2);
        assert!(set
            .warnings
            .iter()
            .all(|w| w.problem == KeyProblem::TooManyKeys));
    }

    #[test]
    fn refuses_documents_without_keys() {
        assert_eq!(decode_jwks(b"nope", 100).err(), Some(JwksError::NotJson));
        assert_eq!(decode_jwks(b"{}", 100).err(), Some(JwksError::NoKeysArray));
        assert_eq!(
            decode_jwks(b"{\"keys\":[]}", 100).err(),
            Some(JwksError::NoUsableKeys(vec![]))
        );
    }

    #[test]
    fn roca_check_flags_nothing_in_fixtures_but_flags_a_constructed_modulus() {
        let set = decode_jwks(FIXTURE_JWKS.as_bytes(), DEFAULT_MAX_JWKS_BYTES).unwrap();
        assert_eq!(set.keys.len(), 5);
        // 65537^k is in the subgroup generated by 65537 modulo every prime.
        let m = BigUint::from(65537u32).pow(200);
        assert!(has_roca_fingerprint(&m.to_bytes_be()));
    }
}
