//! JSON numbers and values compared as JSON Schema compares them: integers exactly, `1` equal
//! to `1.0`, `multipleOf` exact in decimal where the numbers allow it.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// An integer in JSON Schema's sense: `1.0` is one.
pub(super) fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Numeric order: exact for integers, as `f64` otherwise.
pub(super) fn cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality: numbers by value (`1` equals `1.0`), objects regardless of member order.
pub(super) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// A number as an exact decimal: (mantissa, power of ten), from its shortest representation.
fn decimal(n: &Number) -> Option<(u128, i32)> {
    let s = n.to_string();
    let s = s.strip_prefix('-').unwrap_or(&s);
    let (digits, exp) = match s.find(['e', 'E']) {
        Some(i) => (s.get(..i)?, s.get(i + 1..)?.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut m: u128 = 0;
    for c in int.chars().chain(frac.chars()) {
        m = m
            .checked_mul(10)?
            .checked_add(u128::from(c.to_digit(10)?))?;
    }
    let frac_len = i32::try_from(frac.len()).ok()?;
    Some((m, exp.checked_sub(frac_len)?))
}

/// `x` is an integer multiple of `m`: exactly in decimal when both fit, else in `f64`.
pub(super) fn multiple_of(x: &Number, m: &Number) -> bool {
    if let (Some(a), Some(b)) = (as_i128(x), as_i128(m)) {
        return b != 0 && a % b == 0;
    }
    if let (Some((a, ea)), Some((b, eb))) = (decimal(x), decimal(m)) {
        let e = ea.min(eb);
        let scale = |v: u128, from: i32| -> Option<u128> {
            let k = u32::try_from(from.checked_sub(e)?).ok()?;
            v.checked_mul(10u128.checked_pow(k)?)
        };
        if let (Some(a), Some(b)) = (scale(a, ea), scale(b, eb)) {
            return b != 0 && a % b == 0;
        }
    }
    match (x.as_f64(), m.as_f64()) {
        (Some(a), Some(b)) if b != 0.0 => {
            let q = a / b;
            q.is_finite() && q.fract() == 0.0
        }
        _ => false,
    }
}
