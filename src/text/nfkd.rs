//! Unicode compatibility decomposition (NFKD), exact and small: what lockout keys compare.
//!
//! Two strings have the same NFKC exactly when they have the same NFKD (NFKC is the canonical
//! composition of NFKD, and decomposing it again gives NFKD back), so a key that only needs
//! equality can skip composition and its tables. What is left: each code point's full
//! compatibility decomposition (a table, with Hangul syllables computed), then canonical
//! ordering (a stable sort of each run of combining marks by canonical combining class).
//!
//! The tables (`nfkd_tables.rs`) are generated from the `unicode-normalization`
//! crate, a dev-dependency only, and the tests compare every code point with it. This module
//! never composes, never panics and allocates only when the text is not ASCII.

use std::borrow::Cow;

#[path = "nfkd_tables.rs"]
mod tables;

pub use tables::UNICODE_VERSION;

/// `s` in Normalization Form KD; borrowed when it is ASCII (which NFKD leaves as it is).
pub fn nfkd(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    // The combining marks after the last starter, waiting to be put in canonical order.
    let mut marks: Vec<(u8, char)> = Vec::new();
    for c in s.chars() {
        decompose(c, &mut |d| {
            let class = combining_class(d);
            if class == 0 {
                flush(&mut marks, &mut out);
                out.push(d);
            } else {
                marks.push((class, d));
            }
        });
    }
    flush(&mut marks, &mut out);
    Cow::Owned(out)
}

/// Appends the pending marks in canonical order: by class, keeping text order within a class
/// (`sort_by_key` is stable).
fn flush(marks: &mut Vec<(u8, char)>, out: &mut String) {
    marks.sort_by_key(|&(class, _)| class);
    out.extend(marks.drain(..).map(|(_, c)| c));
}

/// Hangul syllables (Unicode 3.12): `S = 0xAC00 + (L * 21 + V) * 28 + T`.
const S_BASE: u32 = 0xAC00;
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const T_COUNT: u32 = 28;
/// `V_COUNT * T_COUNT`.
const N_COUNT: u32 = 21 * T_COUNT;
/// `L_COUNT * N_COUNT`.
const S_COUNT: u32 = 19 * N_COUNT;

/// Emits the full compatibility decomposition of `c`, already in canonical order.
fn decompose(c: char, emit: &mut impl FnMut(char)) {
    let cp = u32::from(c);
    // Nothing below U+00A0 (NO-BREAK SPACE) decomposes.
    if cp < 0xA0 {
        return emit(c);
    }
    if let Some(s) = cp.checked_sub(S_BASE).filter(|&s| s < S_COUNT) {
        let jamo = [
            L_BASE + s / N_COUNT,
            V_BASE + (s % N_COUNT) / T_COUNT,
            T_BASE + s % T_COUNT,
        ];
        // A trailing consonant of T_BASE itself means "none".
        let len = if s % T_COUNT == 0 { 2 } else { 3 };
        jamo.iter()
            .take(len)
            .filter_map(|&j| char::from_u32(j))
            .for_each(emit);
        return;
    }
    if let Some(d) = run_target(cp) {
        return emit(d);
    }
    match mapping(cp) {
        Some(text) => text.chars().for_each(emit),
        None => emit(c),
    }
}

/// The bits of a table key that hold the code point.
const CP_BITS: u32 = 0x1F_FFFF;

/// The single code point `cp` maps to when it lies in one of the runs of consecutive code points
/// mapped to consecutive code points (fullwidth forms, mathematical alphanumerics ...).
fn run_target(cp: u32) -> Option<char> {
    let i = tables::RUN_KEY
        .partition_point(|&k| k & CP_BITS <= cp)
        .checked_sub(1)?;
    let key = *tables::RUN_KEY.get(i)?;
    let offset = cp.checked_sub(key & CP_BITS)?;
    if offset > key >> 21 {
        return None;
    }
    char::from_u32(tables::RUN_TARGET.get(i)?.checked_add(offset)?)
}

/// The decomposition of `cp` from the pool, when it has one outside the runs.
fn mapping(cp: u32) -> Option<&'static str> {
    let i = tables::MAP_KEY
        .binary_search_by_key(&cp, |&k| k & CP_BITS)
        .ok()?;
    let len = usize::try_from(tables::MAP_KEY.get(i)? >> 21).ok()?;
    let start = usize::from(*tables::MAP_OFFSET.get(i)?);
    tables::POOL.get(start..start.checked_add(len)?)
}

/// The canonical combining class of `c` (0 for starters).
pub fn combining_class(c: char) -> u8 {
    let cp = u32::from(c);
    // U+0300 COMBINING GRAVE ACCENT is the first character with a class.
    if cp < 0x300 {
        return 0;
    }
    let i = tables::CCC.partition_point(|&k| k & 0xFF_FFFF <= cp);
    match i.checked_sub(1).and_then(|i| tables::CCC.get(i)) {
        Some(&k) => (k >> 24) as u8,
        None => 0,
    }
}

#[cfg(test)]
#[path = "nfkd_tests.rs"]
mod tests;
