//! The strict JSON reader for request bodies.
//!
//! It decides whether a body is one well-formed JSON document that stays within the route's
//! threat limits, and builds the `serde_json::Value` the schema checks run on. It is stricter
//! than `serde_json`: a duplicate key at any level is an error (serde_json keeps the last one,
//! the service's parser may keep the first: a parser differential is an attack), and so are
//! invalid UTF-8, a byte-order mark, lone surrogate escapes and numbers out of `f64` range.
//!
//! It never recurses: containers live on an explicit stack bounded by `max_depth`. It never
//! echoes body content in its errors, only byte offsets and limit names.
//!
//! [`remove_members`] (in `json/remove.rs`) rewrites an already-accepted body without some object
//! members, keeping every other byte as the client sent it.

mod remove;

pub use remove::{remove_matching, remove_members, MemberPath, PathPattern, Removal, Step};

use crate::text::{fold_case, needs_fold};
use serde_json::{Map, Number, Value};
use std::collections::BTreeSet;

/// Hard ceiling for `max_depth`: schema validation and `Value`'s drop recurse per level, so the
/// configured depth must stay well inside the wasm stack.
pub const MAX_DEPTH_CEILING: u32 = 128;

/// Threat limits for one route's JSON bodies. Every limit is always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of objects and arrays (a top-level object is depth 1).
    pub max_depth: u32,
    /// Most members in one object.
    pub max_keys: u32,
    /// Most elements in one array.
    pub max_array_len: u32,
    /// Longest string or key, in bytes after unescaping.
    pub max_string_len: u32,
    /// Largest body, in bytes.
    pub max_total_bytes: u64,
}

impl Default for JsonLimits {
    /// Generous for API payloads, tight enough that a hostile body costs little to refuse.
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_keys: 256,
            max_array_len: 4096,
            max_string_len: 65_536,
            max_total_bytes: 1_048_576,
        }
    }
}

/// Limits for a document whose size its reader has already bounded (the plugin configuration,
/// a token's header and claims, a JWKS): only the nesting depth binds.
pub const DOCUMENT_LIMITS: JsonLimits = JsonLimits {
    max_depth: MAX_DEPTH_CEILING,
    max_keys: u32::MAX,
    max_array_len: u32::MAX,
    max_string_len: u32::MAX,
    max_total_bytes: u64::MAX,
};

/// Which limit a body exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_depth`.
    Depth,
    /// `max_keys`.
    Keys,
    /// `max_array_len`.
    ArrayLen,
    /// `max_string_len`.
    StringLen,
    /// `max_total_bytes`.
    TotalBytes,
}

impl Limit {
    /// The config field name of the limit.
    pub fn field(self) -> &'static str {
        match self {
            Limit::Depth => "max_depth",
            Limit::Keys => "max_keys",
            Limit::ArrayLen => "max_array_len",
            Limit::StringLen => "max_string_len",
            Limit::TotalBytes => "max_total_bytes",
        }
    }
}

/// Why a body was refused by the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// Not one well-formed JSON document; `what` is a fixed phrase, `at` a byte offset.
    Malformed {
        /// What is wrong (never body content).
        what: &'static str,
        /// Byte offset where the reader stopped.
        at: usize,
    },
    /// The same key twice in one object, or two keys equal after case folding.
    DuplicateKey {
        /// Byte offset just past the second occurrence's value.
        at: usize,
    },
    /// A threat limit was exceeded.
    Limit(Limit),
}

impl JsonError {
    /// Client-safe one-line description.
    pub fn describe(&self) -> String {
        match self {
            JsonError::Malformed { what, at } => format!("{what} at byte {at}"),
            JsonError::DuplicateKey { at } => format!("duplicate object key before byte {at}"),
            JsonError::Limit(l) => format!("body exceeds {}", l.field()),
        }
    }
}

/// Parses `body` as one strict JSON document within `limits`.
pub fn parse(body: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    parse_keys(body, limits, Keys::FoldedUnique)
}

/// How unique an object's keys must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// No two keys equal after case folding (request bodies, tokens): case-insensitive binders
    /// upstream would otherwise read the one a check did not see.
    FoldedUnique,
    /// No two keys equal byte for byte: documents whose names are case-sensitive data written
    /// by an operator or an issuer (the plugin config, where a schema may define `id` and `ID`;
    /// a JWKS).
    ExactUnique,
}

/// [`parse`] with the given key uniqueness.
pub fn parse_keys(body: &[u8], limits: &JsonLimits, keys: Keys) -> Result<Value, JsonError> {
    if u64::try_from(body.len()).map_or(true, |n| n > limits.max_total_bytes) {
        return Err(JsonError::Limit(Limit::TotalBytes));
    }
    let text = std::str::from_utf8(body).map_err(|e| JsonError::Malformed {
        what: "invalid UTF-8",
        at: e.valid_up_to(),
    })?;
    Reader::new(text).document(limits, keys == Keys::FoldedUnique)
}

/// A container being filled: its partial value and, for objects, the key awaiting its value
/// and, once a key with upper-case or non-ASCII letters was seen, the folded keys so far.
enum Frame {
    Array(Vec<Value>),
    Object(Map<String, Value>, String, Option<BTreeSet<String>>),
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// `true` for bytes that end the fast path of a string: quote, backslash, control characters.
#[inline(always)]
fn string_stop(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn malformed<T>(&self, what: &'static str) -> Result<T, JsonError> {
        Err(JsonError::Malformed { what, at: self.pos })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Moves past one byte already seen with `peek` (so `pos < len` and this cannot overflow).
    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.bump();
            Ok(())
        } else {
            self.malformed(what)
        }
    }

    /// The whole document: one value, surrounded only by whitespace.
    fn document(&mut self, limits: &JsonLimits, fold: bool) -> Result<Value, JsonError> {
        // usize::try_from cannot fail on 32/64-bit targets; saturate rather than trust it.
        let max_depth = usize::try_from(limits.max_depth.min(MAX_DEPTH_CEILING)).unwrap_or(0);
        let max_keys = usize::try_from(limits.max_keys).unwrap_or(usize::MAX);
        let max_items = usize::try_from(limits.max_array_len).unwrap_or(usize::MAX);
        let max_str = usize::try_from(limits.max_string_len).unwrap_or(usize::MAX);
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            self.skip_ws();
            let mut value = match self.peek() {
                Some(b'{') => {
                    if stack.len() >= max_depth {
                        return Err(JsonError::Limit(Limit::Depth));
                    }
                    self.bump();
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.bump();
                        Value::Object(Map::new())
                    } else {
                        let key = self.key(max_str)?;
                        stack.push(Frame::Object(Map::new(), key, None));
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    if stack.len() >= max_depth {
                        return Err(JsonError::Limit(Limit::Depth));
                    }
                    self.bump();
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.bump();
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'"') => Value::String(self.string(max_str)?),
                Some(b't') => self.literal(b"true", Value::Bool(true))?,
                Some(b'f') => self.literal(b"false", Value::Bool(false))?,
                Some(b'n') => self.literal(b"null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
                Some(0xEF) if self.pos == 0 => return self.malformed("byte-order mark"),
                Some(_) => return self.malformed("expected a value"),
                None => return self.malformed("unexpected end of body"),
            };
            // A value is complete: store it in its container, closing containers as they end.
            loop {
                match stack.last_mut() {
                    None => {
                        self.skip_ws();
                        if self.pos < self.bytes.len() {
                            return self.malformed("trailing content after the document");
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        if items.len() >= max_items {
                            return Err(JsonError::Limit(Limit::ArrayLen));
                        }
                        items.push(value);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.bump();
                                continue 'value;
                            }
                            Some(b']') => {
                                self.bump();
                                value = match stack.pop() {
                                    Some(Frame::Array(items)) => Value::Array(items),
                                    _ => return self.malformed("internal state"),
                                };
                            }
                            _ => return self.malformed("expected ',' or ']'"),
                        }
                    }
                    Some(Frame::Object(map, key, folds)) => {
                        if map.len() >= max_keys {
                            return Err(JsonError::Limit(Limit::Keys));
                        }
                        let key = std::mem::take(key);
                        // While every key is already folded, an exact duplicate is the only
                        // kind; from the first key that folds, keep the folded set.
                        if fold && (folds.is_some() || needs_fold(&key)) {
                            let set = folds.get_or_insert_with(|| {
                                map.keys().map(|k| fold_case(k).into_owned()).collect()
                            });
                            if !set.insert(fold_case(&key).into_owned()) {
                                return Err(JsonError::DuplicateKey { at: self.pos });
                            }
                        }
                        if map.insert(key, value).is_some() {
                            return Err(JsonError::DuplicateKey { at: self.pos });
                        }
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.bump();
                                self.skip_ws();
                                let next = self.key(max_str)?;
                                if let Some(Frame::Object(_, slot, _)) = stack.last_mut() {
                                    *slot = next;
                                }
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.bump();
                                value = match stack.pop() {
                                    Some(Frame::Object(map, _, _)) => Value::Object(map),
                                    _ => return self.malformed("internal state"),
                                };
                            }
                            _ => return self.malformed("expected ',' or '}'"),
                        }
                    }
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self, max_str: usize) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return self.malformed("expected a string key");
        }
        let key = self.string(max_str)?;
        self.skip_ws();
        self.expect(b':', "expected ':'")?;
        Ok(key)
    }

    fn literal(&mut self, word: &'static [u8], value: Value) -> Result<Value, JsonError> {
        let end = self.pos.saturating_add(word.len());
        if self.bytes.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(value)
        } else {
            self.malformed("invalid literal")
        }
    }

    /// A string starting at the opening quote, unescaped.
    fn string(&mut self, max_str: usize) -> Result<String, JsonError> {
        self.string_cow(max_str).map(std::borrow::Cow::into_owned)
    }

    /// Moves past string bytes up to the next quote, backslash or control character.
    fn skip_plain(&mut self) {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| string_stop(b))
            .unwrap_or(rest.len());
        self.pos = self.pos.saturating_add(n);
    }

    /// A string, borrowed from the text when it has no escapes (no allocation).
    fn string_cow(&mut self, max_str: usize) -> Result<std::borrow::Cow<'a, str>, JsonError> {
        self.bump(); // opening quote
        let start = self.pos;
        // Fast path: no escapes, borrow the slice once.
        self.skip_plain();
        if self.peek() == Some(b'"') {
            let s = self.slice(start, self.pos)?;
            if s.len() > max_str {
                return Err(JsonError::Limit(Limit::StringLen));
            }
            self.bump();
            return Ok(std::borrow::Cow::Borrowed(s));
        }
        let mut out = String::from(self.slice(start, self.pos)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.bump();
                    return Ok(std::borrow::Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.bump();
                    self.escape(&mut out)?;
                }
                Some(b) if b < 0x20 => return self.malformed("control character in string"),
                Some(_) => {
                    let chunk_start = self.pos;
                    self.skip_plain();
                    out.push_str(self.slice(chunk_start, self.pos)?);
                }
                None => return self.malformed("unterminated string"),
            }
            if out.len() > max_str {
                return Err(JsonError::Limit(Limit::StringLen));
            }
        }
    }

    /// Text between two ASCII delimiters (always char boundaries of the validated UTF-8).
    fn slice(&self, start: usize, end: usize) -> Result<&'a str, JsonError> {
        match self.text.get(start..end) {
            Some(s) => Ok(s),
            None => self.malformed("internal state"),
        }
    }

    /// One escape sequence after the backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.bump();
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if self.bytes.get(self.pos..self.pos.saturating_add(2)) != Some(b"\\u") {
                        return self.malformed("lone surrogate escape");
                    }
                    self.pos = self.pos.saturating_add(2);
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return self.malformed("lone surrogate escape");
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return self.malformed("lone surrogate escape");
                } else {
                    hi
                };
                match char::from_u32(code) {
                    Some(c) => out.push(c),
                    None => return self.malformed("invalid escape"),
                }
                return Ok(());
            }
            _ => return self.malformed("invalid escape"),
        };
        self.bump();
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v: u32 = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return self.malformed("invalid \\u escape"),
            };
            v = (v << 4) | u32::from(d);
            self.bump();
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.bump();
        }
        self.pos.saturating_sub(start)
    }

    /// A number per RFC 8259: integers that fit become `i64`/`u64`, the rest `f64`.
    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => self.bump(),
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.malformed("invalid number"),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.bump();
            integer = false;
            if self.digits() == 0 {
                return self.malformed("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.bump();
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.bump();
            }
            if self.digits() == 0 {
                return self.malformed("invalid number");
            }
        }
        let text = self.slice(start, self.pos)?;
        if integer {
            let parsed = if negative {
                text.parse::<i64>().ok().map(Number::from)
            } else {
                text.parse::<u64>().ok().map(Number::from)
            };
            if let Some(n) = parsed {
                // serde_json reads "-0" as the float -0.0; do the same so both agree.
                if negative && n.as_i64() == Some(0) {
                    return Number::from_f64(-0.0)
                        .map_or_else(|| self.malformed("internal state"), Ok);
                }
                return Ok(n);
            }
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(n),
            None => self.malformed("number out of range"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lim() -> JsonLimits {
        JsonLimits::default()
    }

    fn ok(s: &str) -> Value {
        parse(s.as_bytes(), &lim()).unwrap()
    }

    fn err(s: &[u8]) -> JsonError {
        parse(s, &lim()).unwrap_err()
    }

    #[test]
    fn parses_the_same_values_as_serde_json() {
        let docs = [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-1.5e3,"g":""}"#,
            r#"  [ 1 , 2 ,3 ]  "#,
            r#""\u00e9\ud83d\ude00\n\t\"\\\/""#,
            "0",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "123456789012345678901234567890",
            "1E+2",
            "0.1",
            r#"{"nested":{"a":[{"b":{}}, []]}}"#,
            "\"h\u{e9}llo w\u{f6}rld \u{1F600}\"",
        ];
        for d in docs {
            let ours = ok(d);
            let theirs: Value = serde_json::from_str(d).unwrap();
            assert_eq!(ours, theirs, "{d}");
        }
    }

    #[test]
    fn rejects_duplicate_keys_at_any_level() {
        assert!(matches!(
            err(br#"{"a":1,"a":2}"#),
            JsonError::DuplicateKey { .. }
        ));
        assert!(matches!(
            err(br#"{"x":[{"role":"user","role":"admin"}]}"#),
            JsonError::DuplicateKey { .. }
        ));
        // Same key after unescaping is the same key.
        assert!(matches!(
            err(br#"{"role":1,"r\u006fle":2}"#),
            JsonError::DuplicateKey { .. }
        ));
    }

    #[test]
    fn rejects_keys_that_differ_only_in_letter_case() {
        for doc in [
            &br#"{"role":1,"ROLE":2}"#[..],
            br#"{"Role":1,"role":2}"#,
            br#"{"a":1,"Role":1,"b":2,"rOLE":2}"#,
            br#"{"x":{"Is_Admin":true,"is_admin":false}}"#,
            br#"{"k":1,"\u212a":2}"#,
        ] {
            assert!(
                matches!(err(doc), JsonError::DuplicateKey { .. }),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        assert_eq!(
            ok(r#"{"Name":1,"name2":2,"NAME3":{"name":1}}"#),
            serde_json::json!({"Name":1,"name2":2,"NAME3":{"name":1}})
        );
    }

    #[test]
    fn rejects_invalid_utf8_and_bom() {
        assert!(matches!(
            err(b"{\"a\":\"\xff\"}"),
            JsonError::Malformed {
                what: "invalid UTF-8",
                at: 6
            }
        ));
        assert!(matches!(
            err(b"\xEF\xBB\xBF{}"),
            JsonError::Malformed { .. }
        ));
        // Overlong encoding and surrogate encoded directly in UTF-8.
        assert!(matches!(err(b"\"\xc0\xaf\""), JsonError::Malformed { .. }));
        assert!(matches!(
            err(b"\"\xed\xa0\x80\""),
            JsonError::Malformed { .. }
        ));
    }

    #[test]
    fn rejects_malformed_documents() {
        let bad: [&[u8]; 24] = [
            b"",
            b"   ",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"[1,]",
            b"[1 2]",
            b"{a:1}",
            b"{'a':1}",
            b"01",
            b"1.",
            b".5",
            b"+1",
            b"1e",
            b"-",
            b"tru",
            b"nul",
            b"NaN",
            b"\"abc",
            b"\"a\x01b\"",
            b"\"\\x\"",
            b"{} {}",
            b"1e400",
        ];
        for b in bad {
            assert!(
                matches!(err(b), JsonError::Malformed { .. }),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn rejects_lone_surrogates() {
        for s in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
        ] {
            assert!(
                matches!(err(s.as_bytes()), JsonError::Malformed { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn enforces_depth_limit_without_recursion() {
        let limits = JsonLimits {
            max_depth: 3,
            ..lim()
        };
        assert!(parse(b"[[[1]]]", &limits).is_ok());
        assert_eq!(
            parse(b"[[[[1]]]]", &limits),
            Err(JsonError::Limit(Limit::Depth))
        );
        assert_eq!(
            parse(br#"{"a":{"b":{"c":{}}}}"#, &limits),
            Err(JsonError::Limit(Limit::Depth))
        );
        // A million open brackets is refused cheaply, not by blowing the stack.
        let deep = vec![b'['; 1_000_000];
        let big = JsonLimits {
            max_total_bytes: 2_000_000,
            ..lim()
        };
        assert_eq!(parse(&deep, &big), Err(JsonError::Limit(Limit::Depth)));
    }

    #[test]
    fn depth_is_capped_by_the_ceiling() {
        let limits = JsonLimits {
            max_depth: u32::MAX,
            ..lim()
        };
        let n = usize::try_from(MAX_DEPTH_CEILING).unwrap();
        let ok_doc = format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(ok_doc.as_bytes(), &limits).is_ok());
        let deep = format!("{}{}", "[".repeat(n + 1), "]".repeat(n + 1));
        assert_eq!(
            parse(deep.as_bytes(), &limits),
            Err(JsonError::Limit(Limit::Depth))
        );
    }

    #[test]
    fn enforces_key_array_string_and_size_limits() {
        let limits = JsonLimits {
            max_keys: 2,
            max_array_len: 3,
            max_string_len: 4,
            max_total_bytes: 64,
            ..lim()
        };
        assert!(parse(br#"{"a":1,"b":2}"#, &limits).is_ok());
        assert_eq!(
            parse(br#"{"a":1,"b":2,"c":3}"#, &limits),
            Err(JsonError::Limit(Limit::Keys))
        );
        assert!(parse(b"[1,2,3]", &limits).is_ok());
        assert_eq!(
            parse(b"[1,2,3,4]", &limits),
            Err(JsonError::Limit(Limit::ArrayLen))
        );
        assert!(parse(br#""abcd""#, &limits).is_ok());
        assert_eq!(
            parse(br#""abcde""#, &limits),
            Err(JsonError::Limit(Limit::StringLen))
        );
        assert_eq!(
            parse(br#"{"abcde":1}"#, &limits),
            Err(JsonError::Limit(Limit::StringLen))
        );
        // Escapes count after unescaping, and cannot be used to smuggle a long string.
        assert!(parse(br#""\u0041\u0042\u0043\u0044""#, &limits).is_ok());
        assert_eq!(
            parse(br#""ab\ncde""#, &limits),
            Err(JsonError::Limit(Limit::StringLen))
        );
        let big = format!("[{}1]", " ".repeat(64));
        assert_eq!(
            parse(big.as_bytes(), &limits),
            Err(JsonError::Limit(Limit::TotalBytes))
        );
    }

    #[test]
    fn describe_names_offsets_and_limits_never_content() {
        let e = err(b"{\"secret-value\" 1}");
        assert_eq!(e.describe(), "expected ':' at byte 16");
        assert_eq!(
            JsonError::Limit(Limit::Depth).describe(),
            "body exceeds max_depth"
        );
    }

    fn strip(body: &str, paths: &[&[&str]]) -> String {
        let paths: Vec<MemberPath> = paths
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect();
        String::from_utf8(remove_members(body.as_bytes(), &paths).unwrap()).unwrap()
    }

    #[test]
    fn removes_members_keeping_other_bytes() {
        let body = r#"{"a":1, "b": 2 ,"c":3}"#;
        assert_eq!(strip(body, &[&["a"]]), r#"{ "b": 2 ,"c":3}"#);
        assert_eq!(strip(body, &[&["b"]]), r#"{"a":1 ,"c":3}"#);
        assert_eq!(strip(body, &[&["c"]]), r#"{"a":1, "b": 2 }"#);
        assert_eq!(strip(body, &[&["a"], &["c"]]), r#"{ "b": 2 }"#);
        assert_eq!(strip(body, &[&["a"], &["b"], &["c"]]), "{ }");
        assert_eq!(strip(r#"{"a":1}"#, &[&["a"]]), "{}");
        assert_eq!(strip(body, &[&["zzz"]]), body);
        // Leading members removed together, and every member but one.
        assert_eq!(strip(body, &[&["a"], &["b"]]), r#"{ "c":3}"#);
        assert_eq!(strip(body, &[&["b"], &["c"]]), r#"{"a":1 }"#);
        assert_eq!(
            strip(r#"{"a":1,"b":2,"c":3,"d":4}"#, &[&["a"], &["b"], &["d"]]),
            r#"{"c":3}"#
        );
    }

    #[test]
    fn removes_nested_members_and_members_inside_arrays() {
        let body = r#"{"user":{"name":"n","role":"admin"},"items":[{"id":1,"price":0},{"id":2}]}"#;
        let out = strip(
            body,
            &[
                &["user", "role"],
                &["items", "0", "price"],
                &["items", "1", "id"],
            ],
        );
        assert_eq!(out, r#"{"user":{"name":"n"},"items":[{"id":1},{}]}"#);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"user":{"name":"n"},"items":[{"id":1},{}]}));
    }

    #[test]
    fn removal_matches_escaped_keys_and_whole_values() {
        let body = r#"{"r\u006fle":{"x":[1,{"y":"}"}]},"ok":true}"#;
        assert_eq!(strip(body, &[&["role"]]), r#"{"ok":true}"#);
    }
}
