//! Percent-decoding (RFC 3986 §2.1) with the project's policy: a strict decoder for everything a
//! check compares (a malformed escape or bytes that are not UTF-8 make the text unreadable, and
//! the caller refuses it or fails closed), and a lenient one for token parameters, whose
//! signature check refuses whatever was left undecoded.

use std::borrow::Cow;

/// How a `+` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// `+` is a `+` (paths, RFC 3986).
    Literal,
    /// `+` is a space (`application/x-www-form-urlencoded` query strings and forms).
    Space,
}

/// The value of one hex digit, either case.
pub const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The upper-case hex digit of a nibble (RFC 3986 §2.1 recommends upper case).
pub fn upper_hex(nibble: u8) -> char {
    char::from_digit(u32::from(nibble & 0x0f), 16).map_or('0', |c| c.to_ascii_uppercase())
}

/// Appends `b` as an escape with upper-case hex (`%2F`).
pub fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(upper_hex(b >> 4));
    out.push(upper_hex(b & 0x0f));
}

/// The byte `%XY` at `bytes[at..]` spells, if it is an escape.
pub fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    let hi = bytes.get(at.checked_add(1)?).copied().and_then(hex_value)?;
    let lo = bytes.get(at.checked_add(2)?).copied().and_then(hex_value)?;
    Some((hi << 4) | lo)
}

/// Decodes every escape of `s` (and `+` as `plus` says). `None` when an escape is malformed or
/// the result is not UTF-8. Borrowed when there is nothing to decode.
pub fn decode(s: &str, plus: Plus) -> Option<Cow<'_, str>> {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (b == b'+' && plus == Plus::Space))
    {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                out.push(escape_at(bytes, i)?);
                i += 3;
            }
            b'+' if plus == Plus::Space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Decodes the well-formed escapes of `s` and keeps malformed ones as they are; when the result
/// is not UTF-8, `s` itself. `+` stays `+`. For token parameters: a token never holds a space,
/// and whatever stays undecoded fails the token check later.
pub fn decode_lenient(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match escape_at(bytes, i) {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_or(Cow::Borrowed(s), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(s: &str, plus: Plus) -> Option<String> {
        decode(s, plus).map(Cow::into_owned)
    }

    #[test]
    fn strict_decoding_refuses_what_it_cannot_read() {
        assert_eq!(strict("a%20b", Plus::Literal).as_deref(), Some("a b"));
        assert_eq!(strict("a+b", Plus::Literal).as_deref(), Some("a+b"));
        assert_eq!(strict("a+b%2B", Plus::Space).as_deref(), Some("a b+"));
        assert_eq!(
            strict("%C3%A9t%c3%a9", Plus::Space).as_deref(),
            Some("\u{e9}t\u{e9}")
        );
        for bad in ["%", "%2", "%zz", "a%2x", "%FF", "%C3"] {
            assert_eq!(strict(bad, Plus::Space), None, "{bad}");
        }
        assert!(matches!(
            decode("plain", Plus::Space),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn lenient_decoding_keeps_what_it_cannot_read() {
        assert_eq!(decode_lenient("a%2Eb"), "a.b");
        assert_eq!(decode_lenient("a+b"), "a+b");
        assert_eq!(decode_lenient("%e9"), "%e9");
        assert_eq!(decode_lenient("a%2"), "a%2");
        assert_eq!(decode_lenient("%zz%41"), "%zzA");
        assert_eq!(decode_lenient("%"), "%");
    }

    #[test]
    fn hex_digits_either_case() {
        assert_eq!(hex_value(b'a'), Some(10));
        assert_eq!(hex_value(b'F'), Some(15));
        assert_eq!(hex_value(b'g'), None);
        assert_eq!(upper_hex(0x0a), 'A');
        let mut out = String::new();
        push_escaped(&mut out, 0xe9);
        assert_eq!(out, "%E9");
        assert_eq!(escape_at(b"x%2f", 1), Some(b'/'));
        assert_eq!(escape_at(b"x%2", 1), None);
        assert_eq!(escape_at(b"x%2f", 0), None);
    }
}
