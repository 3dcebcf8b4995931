//! Is this one JWK a usable public key? Decodes an RSA, EC or OKP key, checks its material
//! (RSA modulus size, exponent and the ROCA fingerprint; EC points on their curve; Ed25519
//! points that decompress), refuses private and symmetric members, and pins the key to the
//! algorithms it may verify. The set-level rules (size, count, warnings) are in [`super`].

use super::modp::{self, Curve};
use super::{Key, KeyFingerprint, KeyProblem, Material, B64_KEY, MAX_KID_BYTES};
use crate::authn::alg::{Alg, AlgSet, Family};
use base64::Engine as _;
use ring::digest;
use serde_json::{Map, Value};

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Decodes and validates one JWK.
pub(super) fn decode_key(entry: &Value) -> Result<Key, KeyProblem> {
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

pub(super) fn fingerprint_of(tag: &[u8], parts: &[&[u8]], algs: AlgSet) -> KeyFingerprint {
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
pub(super) fn has_roca_fingerprint(n: &[u8]) -> bool {
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
    let (curve_alg, curve, size) = match crv {
        "P-256" => (Alg::ES256, Curve::P256, 32),
        "P-384" => (Alg::ES384, Curve::P384, 48),
        other => return Err(KeyProblem::UnsupportedCurve(other.to_string())),
    };
    match alg {
        None => {}
        Some(a) if a == curve_alg => {}
        Some(_) => return Err(KeyProblem::AlgDoesNotFitKey("alg does not match the curve")),
    }
    let x = coordinate(member(obj, "x")?, size).ok_or(KeyProblem::BadMember("x"))?;
    let y = coordinate(member(obj, "y")?, size).ok_or(KeyProblem::BadMember("y"))?;
    if !modp::on_weierstrass_curve(curve, &x, &y) {
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
    if !modp::ed25519_point_decompresses(&x) {
        return Err(KeyProblem::PointNotOnCurve);
    }
    Ok((Material::Ed25519 { x }, AlgSet::EMPTY.with(Alg::EdDSA)))
}
