//! Key expressions (`client_ip`, `route`, `peer`, `header:<name>`, `jwt:<claim>`,
//! `body:<field>` and `+`-combinations such as `route+jwt:sub`) and the opaque key bytes they
//! produce for one request.
//!
//! Missing components: when a request lacks a component (no token, no peer certificate, no such
//! header or field), that component is replaced by the client address, tagged so that it can
//! never equal a real value. Anonymous callers are thus limited per address with the same quota
//! instead of escaping the limit or sharing one bucket with everybody. When even the client
//! address is unknown, the component is the shared "unknown" value: such requests share one
//! bucket. The key bytes are hashed and never logged or sent to the client.

use serde_json::{Map, Value};
use std::fmt;

/// Most components in one key expression.
pub const MAX_COMPONENTS: usize = 4;
/// Longest header, claim or field name accepted in a key expression.
pub const MAX_NAME_LEN: usize = 128;

/// The request facts a key can be built from, snapshotted by the adapter.
#[derive(Debug, Clone, Copy)]
pub struct KeyFacts<'a> {
    /// The client address from [`super::client_ip::ClientIpPolicy::resolve`].
    pub client_ip: Option<&'a str>,
    /// The matched route's name.
    pub route: &'a str,
    /// The mTLS peer's SPIFFE ID, when verified.
    pub peer: Option<&'a str>,
    /// Request headers; names are compared case-insensitively, the first match is used.
    pub headers: &'a [(String, String)],
    /// Claims of the verified token, when there is one.
    pub claims: Option<&'a Map<String, Value>>,
    /// Top-level fields of the parsed JSON body, when it has been parsed.
    pub body: Option<&'a Map<String, Value>>,
}

impl<'a> KeyFacts<'a> {
    /// Facts with only a route and a client address; the rest absent.
    pub fn new(route: &'a str, client_ip: Option<&'a str>) -> Self {
        Self {
            client_ip,
            route,
            peer: None,
            headers: &[],
            claims: None,
            body: None,
        }
    }
}

/// One part of a key expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// The resolved client address.
    ClientIp,
    /// The route name: one bucket shared by every caller of the route.
    Route,
    /// The peer's SPIFFE ID.
    Peer,
    /// A request header (name stored lower case).
    Header(String),
    /// A top-level claim of the verified token.
    Claim(String),
    /// A top-level field of the JSON body (lockout keys only).
    Body(String),
}

impl Component {
    fn tag(&self) -> u8 {
        match self {
            Component::ClientIp => b'i',
            Component::Route => b'r',
            Component::Peer => b'p',
            Component::Header(_) => b'h',
            Component::Claim(_) => b'j',
            Component::Body(_) => b'b',
        }
    }
}

/// Why a key expression is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The expression or one of its `+` parts is empty.
    Empty,
    /// A part is not one of the known forms.
    Unknown(String),
    /// `header:`, `jwt:` or `body:` without a name, or a name too long.
    BadName(String),
    /// A header name that is not an HTTP token.
    BadHeaderName(String),
    /// The same part appears twice.
    Duplicate(String),
    /// More than [`MAX_COMPONENTS`] parts.
    TooManyParts,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("key is empty or has an empty part"),
            KeyError::Unknown(p) => write!(
                f,
                "unknown key part \"{p}\": expected client_ip, route, peer, header:<name>, jwt:<claim> or body:<field>"
            ),
            KeyError::BadName(p) => write!(f, "key part \"{p}\" needs a name of 1 to {MAX_NAME_LEN} characters"),
            KeyError::BadHeaderName(p) => write!(f, "key part \"{p}\" is not a valid header name"),
            KeyError::Duplicate(p) => write!(f, "key part \"{p}\" appears twice"),
            KeyError::TooManyParts => write!(f, "a key has at most {MAX_COMPONENTS} parts"),
        }
    }
}

/// A parsed key expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    components: Vec<Component>,
    text: String,
}

impl KeySpec {
    /// Parses `client_ip`, `route+jwt:sub`, `header:x-api-key`...
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut components = Vec::new();
        for part in text.split('+') {
            let component = parse_component(part)?;
            if components.contains(&component) {
                return Err(KeyError::Duplicate(part.to_string()));
            }
            components.push(component);
            if components.len() > MAX_COMPONENTS {
                return Err(KeyError::TooManyParts);
            }
        }
        Ok(Self {
            components,
            text: text.to_string(),
        })
    }

    /// The expression as written in config (for names, logs and metrics; never a value).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parts, in order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// True when a limit with this key may count a request before its token is verified: the
    /// key names the caller by its address or mTLS peer (which no request can forge) and reads
    /// no claim. A `jwt:` key needs the verified claims; a key of only `route` or `header:`
    /// parts would let unauthenticated (or header-forging) callers spend a bucket others share.
    pub fn counts_before_authn(&self) -> bool {
        let bound = self
            .components
            .iter()
            .any(|c| matches!(c, Component::ClientIp | Component::Peer));
        let claims = self
            .components
            .iter()
            .any(|c| matches!(c, Component::Claim(_)));
        bound && !claims
    }

    /// True when a part reads the request body.
    pub fn needs_body(&self) -> bool {
        self.components
            .iter()
            .any(|c| matches!(c, Component::Body(_)))
    }

    /// True when [`Self::build`] would read the client address for this request: the key has a
    /// `client_ip` part, or a part the request lacks (which falls back to the address). Lets the
    /// caller skip the host lookup of the address when every part is present.
    pub fn needs_client_ip(&self, facts: &KeyFacts<'_>) -> bool {
        self.components
            .iter()
            .any(|c| *c == Component::ClientIp || value_of(c, facts).is_none())
    }

    /// The key bytes for a request: each part as a tag, its name and its length-prefixed value,
    /// so that no choice of values can make two different keys equal.
    pub fn build(&self, facts: &KeyFacts<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for component in &self.components {
            out.push(component.tag());
            match component {
                Component::Header(name) | Component::Claim(name) | Component::Body(name) => {
                    push_field(&mut out, name.as_bytes());
                }
                Component::ClientIp | Component::Route | Component::Peer => {}
            }
            match value_of(component, facts) {
                Some(Val::Text(s)) => {
                    out.push(b's');
                    push_field(&mut out, s.as_bytes());
                }
                Some(Val::Json(other)) => {
                    // Numbers, booleans, arrays: their JSON text (serde_json's output is stable).
                    out.push(b'v');
                    push_field(&mut out, other.to_string().as_bytes());
                }
                None => push_missing(&mut out, facts.client_ip),
            }
        }
        out
    }
}

/// Most keys one lockout key expression stands for in one request (a body value that is an
/// array or object is counted under each string inside it).
pub const MAX_KEY_VARIANTS: usize = 8;

/// The keys a lockout counts one request under: [`KeySpec::lockout_keys`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockoutKeys {
    /// Key bytes, one per variant, without repeats.
    pub keys: Vec<Vec<u8>>,
    /// A `body:` value was not a string (array, object, number, boolean): no client form sends
    /// that for a login name, so the request counts as a failure at once.
    pub non_string: bool,
}

/// NFKD, trim and case fold: the spellings of one name that login code treats as that name
/// (`" Victim"`, `VICTIM`, fullwidth `ｖｉｃｔｉｍ`, `ⅴictim`).
///
/// Django normalises user names with NFKC; two texts have the same NFKC exactly when they have
/// the same NFKD, and NFKD needs no composition tables ([`crate::text::nfkd`]). The key merges
/// every pair that "trim, NFKC, case fold" merges (the tests check `key(x) == key(that of x)`
/// for every code point and for random strings): trimming commutes with the decomposition (white
/// space neither composes nor decomposes to marks), and case folding keeps each character's
/// combining class except U+0345 COMBINING GREEK YPOGEGRAMMENI (class 240, the highest, sorted
/// last, so in the place the `ι` it folds to would take). It merges a few more: `İ` with `i̇`,
/// `ᾳ̖` with `α̖ι` (the folds of their decompositions), which only makes a lockout stricter.
pub fn normalize_key_text(s: &str) -> String {
    let nfkd = crate::text::nfkd::nfkd(s);
    crate::text::fold_case(nfkd.trim()).into_owned()
}

/// The scalars inside a JSON value, in document order, at most `max` (`["victim"]` and
/// `{"$eq": "victim"}` both give `victim`). Depth is bounded by the strict reader.
fn scalar_leaves(v: &Value, max: usize, out: &mut Vec<String>) {
    if out.len() >= max {
        return;
    }
    match v {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => items.iter().for_each(|i| scalar_leaves(i, max, out)),
        Value::Object(m) => m.values().for_each(|i| scalar_leaves(i, max, out)),
        Value::String(_) | Value::Null => {}
    }
}

impl KeySpec {
    /// The keys one request stands for under a lockout. Like [`Self::build`], but header and
    /// body text is normalised when `normalize` is set ([`normalize_key_text`]), a `body:` field
    /// is found whatever the letter case of its name (the strict reader refuses bodies where
    /// that is ambiguous), and a `body:` value that is not a string is keyed by each scalar
    /// inside it (its JSON text when it has none), up to [`MAX_KEY_VARIANTS`] keys.
    pub fn lockout_keys(&self, facts: &KeyFacts<'_>, normalize: bool) -> LockoutKeys {
        let norm = |s: &str| {
            if normalize {
                normalize_key_text(s)
            } else {
                s.to_string()
            }
        };
        let mut non_string = false;
        // Per component: its candidate values (None = missing).
        let mut parts: Vec<Vec<Option<String>>> = Vec::with_capacity(self.components.len());
        for component in &self.components {
            let values = match component {
                Component::Body(name) => {
                    let v = facts.body.and_then(|b| {
                        b.get(name.as_str()).or_else(|| {
                            b.iter()
                                .find(|(k, _)| crate::text::eq_fold(k, name))
                                .map(|(_, v)| v)
                        })
                    });
                    match v {
                        None | Some(Value::Null) => vec![None],
                        Some(Value::String(s)) => {
                            let n = norm(s);
                            vec![(!n.is_empty()).then_some(n)]
                        }
                        Some(other) => {
                            non_string = true;
                            let mut leaves = Vec::new();
                            scalar_leaves(other, MAX_KEY_VARIANTS, &mut leaves);
                            let mut vals: Vec<Option<String>> = leaves
                                .iter()
                                .map(|l| norm(l))
                                .filter(|l| !l.is_empty())
                                .map(Some)
                                .collect();
                            if vals.is_empty() {
                                vals.push(Some(other.to_string()));
                            }
                            vals.dedup();
                            vals
                        }
                    }
                }
                Component::Header(_) => match value_of(component, facts) {
                    Some(Val::Text(s)) => {
                        let n = norm(s);
                        vec![(!n.is_empty()).then_some(n)]
                    }
                    _ => vec![None],
                },
                other => match value_of(other, facts) {
                    Some(Val::Text(s)) => vec![Some(s.to_string())],
                    Some(Val::Json(v)) => vec![Some(format!("\u{0}json\u{0}{v}"))],
                    None => vec![None],
                },
            };
            parts.push(values);
        }
        let mut keys: Vec<Vec<u8>> = vec![Vec::with_capacity(64)];
        for (component, values) in self.components.iter().zip(&parts) {
            let mut next = Vec::new();
            for prefix in &keys {
                for value in values {
                    if next.len() >= MAX_KEY_VARIANTS {
                        break;
                    }
                    let mut out = prefix.clone();
                    out.push(component.tag());
                    match component {
                        Component::Header(name)
                        | Component::Claim(name)
                        | Component::Body(name) => push_field(&mut out, name.as_bytes()),
                        Component::ClientIp | Component::Route | Component::Peer => {}
                    }
                    match value {
                        Some(v) => {
                            out.push(b's');
                            push_field(&mut out, v.as_bytes());
                        }
                        None => push_missing(&mut out, facts.client_ip),
                    }
                    next.push(out);
                }
            }
            keys = next;
        }
        keys.sort();
        keys.dedup();
        LockoutKeys { keys, non_string }
    }
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn push_missing(out: &mut Vec<u8>, client_ip: Option<&str>) {
    match client_ip {
        Some(ip) => {
            out.push(b'F');
            push_field(out, ip.as_bytes());
        }
        None => out.push(b'U'),
    }
}

/// A borrowed part value.
enum Val<'a> {
    Text(&'a str),
    Json(&'a Value),
}

/// The value of one part; `None` when the request lacks it (empty counts as missing).
fn value_of<'a>(component: &Component, facts: &KeyFacts<'a>) -> Option<Val<'a>> {
    let text = |s: &'a str| (!s.is_empty()).then_some(Val::Text(s));
    match component {
        Component::ClientIp => facts.client_ip.and_then(text),
        Component::Route => text(facts.route),
        Component::Peer => facts.peer.and_then(text),
        Component::Header(name) => facts
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| text(v.as_str())),
        Component::Claim(name) => facts.claims.and_then(|c| c.get(name)).and_then(present),
        Component::Body(name) => facts.body.and_then(|b| b.get(name)).and_then(present),
    }
}

/// Null and empty strings count as missing.
fn present(value: &Value) -> Option<Val<'_>> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(Val::Text(s)),
        v => Some(Val::Json(v)),
    }
}

fn parse_component(part: &str) -> Result<Component, KeyError> {
    match part {
        "" => return Err(KeyError::Empty),
        "client_ip" => return Ok(Component::ClientIp),
        "route" => return Ok(Component::Route),
        "peer" => return Ok(Component::Peer),
        _ => {}
    }
    let (kind, name) = part
        .split_once(':')
        .ok_or_else(|| KeyError::Unknown(part.to_string()))?;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(KeyError::BadName(part.to_string()));
    }
    match kind {
        "header" => {
            if !crate::http::name::is_token(name) {
                return Err(KeyError::BadHeaderName(part.to_string()));
            }
            Ok(Component::Header(name.to_ascii_lowercase()))
        }
        "jwt" => Ok(Component::Claim(name.to_string())),
        "body" => Ok(Component::Body(name.to_string())),
        _ => Err(KeyError::Unknown(part.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request facts of route `r` with these headers and no client address.
    fn with_headers(headers: &[(String, String)]) -> KeyFacts<'_> {
        KeyFacts {
            headers,
            ..KeyFacts::new("r", None)
        }
    }

    /// Owned header pairs.
    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parses_every_form_and_combinations() {
        let k = KeySpec::parse("route+jwt:sub").unwrap();
        assert_eq!(
            k.components(),
            &[Component::Route, Component::Claim("sub".into())]
        );
        let k = KeySpec::parse("header:X-Api-Key").unwrap();
        assert_eq!(k.components(), &[Component::Header("x-api-key".into())]);
        assert!(KeySpec::parse("client_ip+peer+body:username")
            .unwrap()
            .needs_body());
    }

    #[test]
    fn rejects_bad_expressions() {
        assert_eq!(KeySpec::parse(""), Err(KeyError::Empty));
        assert_eq!(KeySpec::parse("route+"), Err(KeyError::Empty));
        assert!(matches!(KeySpec::parse("ip"), Err(KeyError::Unknown(_))));
        assert!(matches!(
            KeySpec::parse("cookie:x"),
            Err(KeyError::Unknown(_))
        ));
        assert!(matches!(KeySpec::parse("jwt:"), Err(KeyError::BadName(_))));
        assert!(matches!(
            KeySpec::parse("header:a b"),
            Err(KeyError::BadHeaderName(_))
        ));
        assert!(matches!(
            KeySpec::parse("route+route"),
            Err(KeyError::Duplicate(_))
        ));
        assert_eq!(
            KeySpec::parse("route+peer+client_ip+jwt:a+jwt:b"),
            Err(KeyError::TooManyParts)
        );
    }

    #[test]
    fn different_values_give_different_keys() {
        let spec = KeySpec::parse("jwt:sub").unwrap();
        let a = claims(json!({"sub": "alice"}));
        let b = claims(json!({"sub": "bob"}));
        let facts_a = KeyFacts {
            claims: Some(&a),
            ..KeyFacts::new("r", Some("1.2.3.4"))
        };
        let facts_b = KeyFacts {
            claims: Some(&b),
            ..KeyFacts::new("r", Some("1.2.3.4"))
        };
        assert_ne!(spec.build(&facts_a), spec.build(&facts_b));
        // Same subject from another address: same key.
        let facts_c = KeyFacts {
            claims: Some(&a),
            ..KeyFacts::new("r", Some("9.9.9.9"))
        };
        assert_eq!(spec.build(&facts_a), spec.build(&facts_c));
    }

    #[test]
    fn missing_component_falls_back_to_client_ip_without_colliding() {
        let spec = KeySpec::parse("jwt:sub").unwrap();
        let anon_1 = KeyFacts::new("r", Some("1.2.3.4"));
        let anon_2 = KeyFacts::new("r", Some("5.6.7.8"));
        assert_ne!(spec.build(&anon_1), spec.build(&anon_2));
        // A token whose sub *is* the address string is not the anonymous caller.
        let c = claims(json!({"sub": "1.2.3.4"}));
        let spoof = KeyFacts {
            claims: Some(&c),
            ..anon_1
        };
        assert_ne!(spec.build(&anon_1), spec.build(&spoof));
        // Unknown address: one shared bucket.
        assert_eq!(
            spec.build(&KeyFacts::new("r", None)),
            spec.build(&KeyFacts::new("r", None))
        );
    }

    #[test]
    fn values_cannot_be_crafted_to_shift_parts() {
        let spec = KeySpec::parse("header:a+header:b").unwrap();
        let h1 = pairs(&[("a", "x"), ("b", "yz")]);
        let h2 = pairs(&[("a", "xy"), ("b", "z")]);
        let f1 = with_headers(&h1);
        let f2 = with_headers(&h2);
        assert_ne!(spec.build(&f1), spec.build(&f2));
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_uses_the_first_value() {
        let spec = KeySpec::parse("header:x-api-key").unwrap();
        let h1 = pairs(&[("X-API-KEY", "k1"), ("x-api-key", "k2")]);
        let h2 = pairs(&[("x-api-key", "k1")]);
        let f1 = with_headers(&h1);
        let f2 = with_headers(&h2);
        assert_eq!(spec.build(&f1), spec.build(&f2));
    }

    #[test]
    fn client_ip_is_needed_only_for_an_address_part_or_a_missing_part() {
        let headers = pairs(&[("x-api-key", "k1"), ("x-empty", "")]);
        let facts = with_headers(&headers);
        let needs = |text: &str| KeySpec::parse(text).unwrap().needs_client_ip(&facts);
        assert!(!needs("route"));
        assert!(!needs("header:x-api-key"));
        assert!(!needs("route+header:X-Api-Key"));
        assert!(needs("client_ip"));
        assert!(needs("header:x-api-key+client_ip"));
        assert!(needs("header:x-missing"));
        assert!(needs("header:x-empty"));
        assert!(needs("jwt:sub"));
        assert!(needs("peer"));
        // Whenever it says "not needed", the key is the same with or without an address.
        for text in ["route", "header:x-api-key", "route+header:x-api-key"] {
            let spec = KeySpec::parse(text).unwrap();
            let with_ip = KeyFacts {
                client_ip: Some("192.0.2.1"),
                ..facts
            };
            assert_eq!(spec.build(&facts), spec.build(&with_ip), "{text}");
        }
    }

    /// The lockout key text before meshguard had its own NFKD: trim, NFKC, case fold.
    fn nfkc_key(s: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let nfkc: String = s.nfkc().collect();
        crate::text::fold_case(nfkc.trim()).into_owned()
    }

    /// `normalize_key_text(x) == normalize_key_text(nfkc_key(x))` for every `x` means that two
    /// texts with one NFKC key always have one key now; NFKC and NFKD forms share the key too.
    fn assert_merges_what_nfkc_merged(s: &str) {
        use unicode_normalization::UnicodeNormalization;
        let key = normalize_key_text(s);
        assert_eq!(key, normalize_key_text(&nfkc_key(s)), "{s:?}");
        assert_eq!(
            key,
            normalize_key_text(&s.nfkc().collect::<String>()),
            "{s:?}"
        );
        assert_eq!(
            key,
            normalize_key_text(&s.nfkd().collect::<String>()),
            "{s:?}"
        );
    }

    #[test]
    fn every_code_point_keeps_its_nfkc_key_group() {
        let mut buf = [0; 4];
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            assert_merges_what_nfkc_merged(c.encode_utf8(&mut buf));
        }
    }

    #[test]
    fn names_keep_their_nfkc_key_group() {
        for s in [
            " Victim ",
            "\u{FF56}\u{FF49}\u{FF43}\u{FF54}\u{FF49}\u{FF4D}",
            "\u{2174}ICTIM\u{3000}",
            "\u{D55C}\u{AE00}\u{1100}\u{1161}",
            "Z\u{FC}rich",
            "Zu\u{308}RICH",
            "\u{212B}ngstr\u{F6}m",
            "\u{1FBC}\u{301}\u{316}",
            "q\u{345}\u{301}\u{316}\u{399}",
            "\u{130}stanbul",
            "\u{FB01}le\u{2460}",
            "\u{A0}\u{2003}name\u{2028}",
        ] {
            assert_merges_what_nfkc_merged(s);
        }
        assert_eq!(normalize_key_text(" \u{FF36}ICTIM"), "victim");
        assert_eq!(normalize_key_text("\u{2174}ictim"), "victim");
    }

    #[test]
    fn folds_a_few_names_nfkc_kept_apart() {
        // The fold of a decomposition: stricter, never looser.
        assert_ne!(nfkc_key("\u{130}"), nfkc_key("i\u{307}"));
        assert_eq!(
            normalize_key_text("\u{130}"),
            normalize_key_text("i\u{307}")
        );
        assert_ne!(
            nfkc_key("\u{1FB3}\u{316}"),
            nfkc_key("\u{3B1}\u{316}\u{3B9}")
        );
        assert_eq!(
            normalize_key_text("\u{1FB3}\u{316}"),
            normalize_key_text("\u{3B1}\u{316}\u{3B9}")
        );
    }

    #[test]
    fn case_folding_keeps_combining_classes_but_for_ypogegrammeni() {
        // Why folding after NFKD groups no less than folding after NFKC (normalize_key_text).
        use crate::text::{fold_char, nfkd::combining_class};
        let changed: Vec<u32> = (0..=0x10_FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| combining_class(fold_char(c)) != combining_class(c))
            .map(u32::from)
            .collect();
        assert_eq!(changed, [0x345]);
        assert_eq!(combining_class('\u{345}'), 240);
        let highest = (0..=0x10_FFFF)
            .filter_map(char::from_u32)
            .map(combining_class)
            .max();
        assert_eq!(highest, Some(240));
    }

    /// Letters, marks and characters that decompose or fold specially.
    fn name_char() -> impl proptest::strategy::Strategy<Value = char> {
        use proptest::prelude::*;
        prop_oneof![
            prop::sample::select(vec![
                'a', 'I', 'i', 'k', 's', ' ', '\u{3000}', '\u{A0}', '\u{3B1}', '\u{3B9}',
                '\u{399}', '\u{345}', '\u{1FB3}', '\u{1FBC}', '\u{1FBE}', '\u{130}', '\u{131}',
                '\u{DF}', '\u{1E9E}', '\u{212A}', '\u{17F}', '\u{212B}', '\u{C5}', '\u{E5}',
                '\u{1C4}', '\u{1C5}', '\u{1C6}', '\u{FB01}', '\u{FF21}', '\u{FF41}', '\u{2160}',
                '\u{24B6}', '\u{D55C}', '\u{1100}', '\u{1161}', '\u{11A8}', '\u{3C2}', '\u{3A3}',
                '\u{390}', '\u{1F88}', '\u{1F80}', '\u{F73}', '\u{FF9E}', '\u{344}',
            ]),
            (0x300u32..0x370).prop_filter_map("scalar", char::from_u32),
            (0x1F00u32..0x2000).prop_filter_map("scalar", char::from_u32),
            any::<char>(),
        ]
    }

    proptest::proptest! {
        #[test]
        fn random_names_keep_their_nfkc_key_group(
            chars in proptest::collection::vec(name_char(), 0..10)
        ) {
            assert_merges_what_nfkc_merged(&chars.into_iter().collect::<String>());
        }
    }

    #[test]
    fn non_string_claims_are_keyed_by_their_json_text() {
        let spec = KeySpec::parse("jwt:tenant").unwrap();
        let a = claims(json!({"tenant": 7}));
        let b = claims(json!({"tenant": "7"}));
        let fa = KeyFacts {
            claims: Some(&a),
            ..KeyFacts::new("r", None)
        };
        let fb = KeyFacts {
            claims: Some(&b),
            ..KeyFacts::new("r", None)
        };
        assert_ne!(spec.build(&fa), spec.build(&fb));
    }
}
