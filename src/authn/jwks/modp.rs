//! Is this public point on its curve? The two checks a JWK's EC and OKP material needs at load
//! time (P-256/P-384: y^2 = x^3 - 3x + b; Ed25519: the encoded y decompresses), on fixed-width
//! numbers of 32-bit limbs. A general big-integer crate cost ~45 KB of module (about 1 MiB of
//! Envoy memory under V8) for these few operations. Not constant-time: public keys only.

use std::cmp::Ordering;

/// A number below 2^416: little-endian 32-bit limbs. Coordinates are at most 384 bits; the
/// spare limb keeps `2r` and `a + b` (for r, a, b < p < 2^384) from overflowing.
type Limbs = [u32; 13];

/// Limbs from big-endian bytes; `None` over 384 bits (48 bytes).
fn from_be(bytes: &[u8]) -> Option<Limbs> {
    if bytes.len() > 48 {
        return None;
    }
    let mut out = [0u32; 13];
    for (i, b) in bytes.iter().rev().enumerate() {
        let limb = out.get_mut(i / 4)?;
        *limb |= u32::from(*b) << (8 * (i % 4));
    }
    Some(out)
}

/// Limbs from a big-endian hex constant (compile-time literals of this file only).
fn from_hex(hex: &str) -> Limbs {
    let mut out = [0u32; 13];
    for (i, c) in hex.bytes().rev().enumerate() {
        let digit = char::from(c).to_digit(16).unwrap_or(0);
        if let Some(limb) = out.get_mut(i / 8) {
            *limb |= digit << (4 * (i % 8));
        }
    }
    out
}

fn cmp(a: &Limbs, b: &Limbs) -> Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// `a -= b`, for `a >= b`.
fn sub_in_place(a: &mut Limbs, b: &Limbs) {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(*y))
            .wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
}

/// Subtracts `p` while `a >= p`.
fn reduce_small(mut a: Limbs, p: &Limbs) -> Limbs {
    while cmp(&a, p) != Ordering::Less {
        sub_in_place(&mut a, p);
    }
    a
}

/// `(a + b) mod p`, for `a, b < p < 2^384`.
fn add_mod(a: &Limbs, b: &Limbs, p: &Limbs) -> Limbs {
    let mut out = [0u32; 13];
    let mut carry = 0u64;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let s = u64::from(*x) + u64::from(*y) + carry;
        *o = s as u32;
        carry = s >> 32;
    }
    reduce_small(out, p)
}

/// The full product of two numbers below 2^384 (24 limbs used).
fn mul_wide(a: &Limbs, b: &Limbs) -> [u32; 26] {
    let mut wide = [0u32; 26];
    for (i, x) in a.iter().enumerate().take(12) {
        let mut carry = 0u64;
        for (j, y) in b.iter().enumerate().take(12) {
            if let Some(w) = wide.get_mut(i + j) {
                let t = u64::from(*x) * u64::from(*y) + u64::from(*w) + carry;
                *w = t as u32;
                carry = t >> 32;
            }
        }
        if let Some(w) = wide.get_mut(i + 12) {
            *w = carry as u32;
        }
    }
    wide
}

/// `(a * b) mod p`, for `a, b < p < 2^384`.
fn mul_mod(a: &Limbs, b: &Limbs, p: &Limbs) -> Limbs {
    let wide = mul_wide(a, b);
    if *p == p25519() {
        return fold_25519(&wide);
    }
    // One bit at a time: shift in, subtract p when reached. Slow and simple: the NIST check
    // needs four products per key.
    let mut r = [0u32; 13];
    for limb in wide.iter().rev() {
        for bit in (0..32).rev() {
            let mut carry = (limb >> bit) & 1;
            for x in r.iter_mut() {
                let next = *x >> 31;
                *x = (*x << 1) | carry;
                carry = next;
            }
            if cmp(&r, p) != Ordering::Less {
                sub_in_place(&mut r, p);
            }
        }
    }
    r
}

fn p25519() -> Limbs {
    from_hex("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed")
}

/// A product of two numbers below 2^255 reduced mod 2^255 - 19, using 2^256 = 38 (mod p):
/// the Ed25519 check needs about 500 products per key.
fn fold_25519(wide: &[u32; 26]) -> Limbs {
    // lo + 38 * hi, where lo is limbs 0-7 and hi limbs 8-15: below 39 * 2^256.
    let mut t = [0u32; 13];
    let mut carry = 0u64;
    for (i, o) in t.iter_mut().enumerate().take(8) {
        let lo = u64::from(wide.get(i).copied().unwrap_or(0));
        let hi = u64::from(wide.get(i + 8).copied().unwrap_or(0));
        let s = lo + 38 * hi + carry;
        *o = s as u32;
        carry = s >> 32;
    }
    // Fold the carry (below 39) once more: carry * 2^256 = 38 * carry.
    let mut add = 38 * carry;
    for o in t.iter_mut().take(8) {
        let s = u64::from(*o) + add;
        *o = s as u32;
        add = s >> 32;
    }
    if let Some(top) = t.get_mut(8) {
        *top = add as u32;
    }
    reduce_small(t, &p25519())
}

/// `base^exp mod p`, square and multiply.
fn pow_mod(base: &Limbs, exp: &Limbs, p: &Limbs) -> Limbs {
    let mut acc = [0u32; 13];
    acc[0] = 1;
    for limb in exp.iter().rev() {
        for bit in (0..32).rev() {
            acc = mul_mod(&acc, &acc, p);
            if (limb >> bit) & 1 == 1 {
                acc = mul_mod(&acc, base, p);
            }
        }
    }
    acc
}

/// The NIST curves meshguard verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
}

/// y^2 = x^3 - 3x + b (mod p), with x, y < p (big-endian coordinates).
pub(super) fn on_weierstrass_curve(curve: Curve, x: &[u8], y: &[u8]) -> bool {
    let (p, b) = match curve {
        Curve::P256 => (
            from_hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
            from_hex("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
        ),
        Curve::P384 => (
            from_hex("fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff"),
            from_hex("b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef"),
        ),
    };
    let (Some(x), Some(y)) = (from_be(x), from_be(y)) else {
        return false;
    };
    if cmp(&x, &p) != Ordering::Less || cmp(&y, &p) != Ordering::Less {
        return false;
    }
    let lhs = mul_mod(&y, &y, &p);
    // x^3 + b + 3(p - x): p - x stays non-negative because x < p.
    let mut p_minus_x = p;
    sub_in_place(&mut p_minus_x, &x);
    let x3 = mul_mod(&mul_mod(&x, &x, &p), &x, &p);
    let three_neg_x = add_mod(&add_mod(&p_minus_x, &p_minus_x, &p), &p_minus_x, &p);
    let rhs = add_mod(&add_mod(&x3, &b, &p), &three_neg_x, &p);
    lhs == rhs
}

/// RFC 8032 §5.1.3: the 32-byte little-endian encoding has y < p, and x^2 = (y^2 - 1) / (d y^2 + 1)
/// has a root (x = 0 only with a clear sign bit).
pub(super) fn ed25519_point_decompresses(encoded: &[u8]) -> bool {
    if encoded.len() != 32 {
        return false;
    }
    let mut be: Vec<u8> = encoded.iter().rev().copied().collect();
    let sign = be.first().is_some_and(|b| b & 0x80 != 0);
    if let Some(top) = be.first_mut() {
        *top &= 0x7f;
    }
    let p = p25519();
    // d = -121665 / 121666 mod p.
    let d = from_hex("52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3");
    let Some(y) = from_be(&be) else {
        return false;
    };
    if cmp(&y, &p) != Ordering::Less {
        return false;
    }
    let mut one = [0u32; 13];
    one[0] = 1;
    let yy = mul_mod(&y, &y, &p);
    let mut p_minus_one = p;
    sub_in_place(&mut p_minus_one, &one);
    let u = add_mod(&yy, &p_minus_one, &p);
    let v = add_mod(&mul_mod(&d, &yy, &p), &one, &p);
    // u / v is a square iff u * v is (v != 0: d is not a square, -1 is, so d y^2 != -1).
    let uv = mul_mod(&u, &v, &p);
    if uv == [0u32; 13] {
        return !sign;
    }
    // Euler's criterion: (uv)^((p - 1) / 2) == 1.
    let mut half = p_minus_one;
    let mut carry = 0u32;
    for limb in half.iter_mut().rev() {
        let next = *limb & 1;
        *limb = (*limb >> 1) | (carry << 31);
        carry = next;
    }
    pow_mod(&uv, &half, &p) == one
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use proptest::prelude::*;

    fn to_big(l: &Limbs) -> BigUint {
        BigUint::from_slice(l)
    }

    fn p256() -> Limbs {
        from_hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")
    }

    fn p384() -> Limbs {
        from_hex("fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff")
    }

    #[test]
    fn hex_constants_match_their_definitions() {
        let p = to_big(&from_hex(
            "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed",
        ));
        assert_eq!(p, (BigUint::from(1u32) << 255u32) - 19u32);
        let d = to_big(&from_hex(
            "52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3",
        ));
        let inv = BigUint::from(121_666u32).modpow(&(&p - 2u32), &p);
        assert_eq!(d, (&p - 121_665u32) * inv % &p);
    }

    #[test]
    fn the_generator_points_are_on_their_curves() {
        let gx = hex_bytes("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
        let gy = hex_bytes("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
        assert!(on_weierstrass_curve(Curve::P256, &gx, &gy));
        let mut off = gy.clone();
        off[31] ^= 1;
        assert!(!on_weierstrass_curve(Curve::P256, &gx, &off));
        let gx = hex_bytes("aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7");
        let gy = hex_bytes("3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f");
        assert!(on_weierstrass_curve(Curve::P384, &gx, &gy));
        assert!(!on_weierstrass_curve(Curve::P384, &gy, &gx));
        // Coordinates of p or above are refused, and so is anything over 384 bits.
        assert!(!on_weierstrass_curve(Curve::P256, &[0xff; 32], &gy));
        assert!(!on_weierstrass_curve(Curve::P384, &[1; 49], &gy));
    }

    #[test]
    fn ed25519_base_point_and_non_points() {
        // The base point's encoding (y = 4/5, x positive).
        let b = hex_bytes("5866666666666666666666666666666666666666666666666666666666666666");
        assert!(ed25519_point_decompresses(&b));
        // y = 2 is a known non-point; y = 1 is the identity (x = 0), refused with the sign bit.
        let mut two = [0u8; 32];
        two[0] = 2;
        assert!(!ed25519_point_decompresses(&two));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(ed25519_point_decompresses(&one));
        one[31] = 0x80;
        assert!(!ed25519_point_decompresses(&one));
        // y = p (non-canonical) and wrong lengths.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!ed25519_point_decompresses(&p));
        assert!(!ed25519_point_decompresses(&[0u8; 31]));
    }

    fn hex_bytes(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn ed25519_products_agree_with_a_big_integer_library(
            a in proptest::collection::vec(any::<u8>(), 32),
            b in proptest::collection::vec(any::<u8>(), 32),
        ) {
            let p = p25519();
            let pb = to_big(&p);
            let (ab, bb) = (BigUint::from_bytes_be(&a) % &pb, BigUint::from_bytes_be(&b) % &pb);
            let la = from_be(&ab.to_bytes_be()).unwrap();
            let lb = from_be(&bb.to_bytes_be()).unwrap();
            prop_assert_eq!(to_big(&mul_mod(&la, &lb, &p)), &ab * &bb % &pb);
        }

        #[test]
        fn mul_and_pow_agree_with_a_big_integer_library(
            a in proptest::collection::vec(any::<u8>(), 48),
            b in proptest::collection::vec(any::<u8>(), 48),
            e in proptest::collection::vec(any::<u8>(), 4),
        ) {
            let p = if a[0] & 1 == 0 { p256() } else { p384() };
            let pb = to_big(&p);
            let (ab, bb) = (BigUint::from_bytes_be(&a) % &pb, BigUint::from_bytes_be(&b) % &pb);
            let la = from_be(&ab.to_bytes_be()).unwrap();
            let lb = from_be(&bb.to_bytes_be()).unwrap();
            prop_assert_eq!(to_big(&mul_mod(&la, &lb, &p)), &ab * &bb % &pb);
            prop_assert_eq!(to_big(&add_mod(&la, &lb, &p)), (&ab + &bb) % &pb);
            let eb = BigUint::from_bytes_be(&e);
            let le = from_be(&e).unwrap();
            prop_assert_eq!(to_big(&pow_mod(&la, &le, &p)), ab.modpow(&eb, &pb));
        }
    }
}
