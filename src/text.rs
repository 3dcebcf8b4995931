//! Text comparisons that match what upstream frameworks treat as equal: letter case of route
//! literals, JSON member names and lockout keys.
//!
//! [`fold_case`] approximates Unicode simple case folding with the standard library's case
//! tables: each character becomes the lower case of its upper case when both mappings are one
//! character (so `K` KELVIN SIGN and `k`, `ſ` LONG S and `s`, `ς` and `σ` fold together), else
//! its own single-character lower case, else itself (`ß` stays `ß`, as in simple folding). Two
//! strings equal after folding are the same name to ASP.NET Core (`OrdinalIgnoreCase`), Go's
//! `encoding/json` and Express's case-insensitive router. It never allocates for strings that
//! are already folded ASCII.

pub mod nfkd;

use std::borrow::Cow;

/// One character, case-folded (see the module docs).
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut upper = c.to_uppercase();
    if let (Some(u), None) = (upper.next(), upper.next()) {
        let mut lower = u.to_lowercase();
        if let (Some(l), None) = (lower.next(), lower.next()) {
            return l;
        }
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// True when [`fold_case`] would change `s`.
pub fn needs_fold(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        && s.chars().any(|c| fold_char(c) != c)
}

/// `s` case-folded; borrowed when nothing changes.
pub fn fold_case(s: &str) -> Cow<'_, str> {
    if needs_fold(s) {
        Cow::Owned(s.chars().map(fold_char).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// True when `a` and `b` are equal after case folding.
pub fn eq_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().map(fold_char).eq(b.chars().map(fold_char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_simple_case_folding() {
        assert_eq!(fold_case("ADMIN"), "admin");
        assert_eq!(fold_case("\u{212A}elvin"), "kelvin");
        assert_eq!(fold_case("\u{17F}ecret"), "secret");
        assert_eq!(fold_case("\u{3A3}\u{3C2}"), "\u{3C3}\u{3C3}");
        assert_eq!(fold_case("STRA\u{DF}E"), "stra\u{DF}e");
        assert_eq!(fold_case("\u{130}"), "\u{130}");
        assert!(matches!(fold_case("already"), Cow::Borrowed(_)));
        assert!(eq_fold("Role", "rOLE"));
        assert!(eq_fold("\u{212A}", "k"));
        assert!(!eq_fold("role", "roles"));
    }
}
