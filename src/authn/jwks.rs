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

mod jwk;
mod modp;

use super::alg::{Alg, AlgSet};
use crate::validate::json;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use jwk::{decode_key, fingerprint_of};
use ring::{hmac, signature};
use serde_json::Value;
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

impl KeyFingerprint {
    /// The digest (for the shared verified-token store).
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// A fingerprint read back from the shared store; it matches a key only through
    /// [`KeySet::contains`].
    pub fn from_bytes(bytes: [u8; 32]) -> KeyFingerprint {
        KeyFingerprint(bytes)
    }
}

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

    /// True when the key that verified a token (its fingerprint and `kid`) is still in the set
    /// under that `kid`: a set that moved the `kid` to other material would make `verify`
    /// refuse the token, so a cached verification must not stand in for it either.
    pub fn still_holds(&self, fingerprint: &KeyFingerprint, kid: Option<&str>) -> bool {
        match kid {
            Some(k) => self
                .by_kid(k)
                .is_some_and(|key| &key.fingerprint == fingerprint),
            None => self.contains(fingerprint),
        }
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
    // The strict reader: a member repeated in one object makes the document unusable rather
    // than leaving the choice of duplicate to a parser. Names stay case-sensitive, as JWK's are.
    let doc: Value = json::parse_keys(bytes, &json::DOCUMENT_LIMITS, json::Keys::ExactUnique)
        .map_err(|_| JwksError::NotJson)?;
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

#[cfg(test)]
mod tests {
    use super::jwk::has_roca_fingerprint;
    use super::*;
    use base64::Engine as _;
    use num_bigint::BigUint;
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
        // A member written twice leaves no parser to pick one: unusable.
        let dup = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"a","x":"b"}]}"#;
        assert_eq!(decode_jwks(dup, 100).err(), Some(JwksError::NotJson));
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
