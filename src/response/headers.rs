//! `security_headers`: response headers meshguard sets and removes on every response (the
//! upstream's and its own), decided once at configure time.
//!
//! It decides which header edits a response gets; it never reads a body.

use crate::host::HeaderPairs;

/// A change to the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Replace (or add) a header.
    Set(String, String),
    /// Remove every copy.
    Remove(String),
    /// Add a value, keeping existing ones (`vary`).
    Append(String, String),
}

/// Set on every response when `defaults` is on.
pub const DEFAULT_SET: &[(&str, &str)] = &[("x-content-type-options", "nosniff")];

/// Removed from every response when `defaults` is on: framework and server banners.
pub const DEFAULT_REMOVE: &[&str] = &[
    "x-powered-by",
    "server",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-runtime",
    "x-generator",
];

/// Headers a configuration may not set or remove: framing and meshguard's own replies need them.
pub const RESERVED: &[&str] = &[
    "content-length",
    "content-type",
    "transfer-encoding",
    "content-encoding",
    "connection",
    "vary",
];

/// The compiled `security_headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityHeaders {
    /// Set (replacing any upstream value), in order.
    pub set: Vec<(String, String)>,
    /// Removed when present.
    pub remove: Vec<String>,
}

impl SecurityHeaders {
    /// The edits for a response with these header names; `problem` when its content type is
    /// `application/problem+json` (it then gets `cache-control: no-store`).
    pub fn edits(&self, present: &HeaderPairs, problem: bool) -> Vec<HeaderEdit> {
        let mut out: Vec<HeaderEdit> = self
            .remove
            .iter()
            .filter(|name| present.iter().any(|(k, _)| k.as_slice() == name.as_bytes()))
            .map(|name| HeaderEdit::Remove(name.clone()))
            .collect();
        out.extend(
            self.set
                .iter()
                .map(|(k, v)| HeaderEdit::Set(k.clone(), v.clone())),
        );
        if problem && !self.set.iter().any(|(k, _)| k == "cache-control") {
            out.push(HeaderEdit::Set("cache-control".into(), "no-store".into()));
        }
        out
    }

    /// The headers to put on a reply meshguard builds in the response phase (such a reply
    /// bypasses the filter chain, so the edits above never see it).
    pub fn reply_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.set.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A header name as Envoy keeps it: a lower-case token ([`crate::http::name::check_lower`]).
pub fn valid_name(name: &str) -> bool {
    crate::http::name::check_lower(name).is_ok()
}

/// A header value meshguard may send: visible ASCII and spaces, no leading or trailing space.
pub fn valid_value(value: &str) -> bool {
    value.len() <= 4096
        && value
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b))
        && value.trim() == value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_present_banners_and_sets_no_store_on_problems() {
        let h = SecurityHeaders {
            set: vec![("x-content-type-options".into(), "nosniff".into())],
            remove: vec!["x-powered-by".into(), "server".into()],
        };
        let present = vec![(b"x-powered-by".to_vec(), b"Express".to_vec())];
        let e = h.edits(&present, false);
        assert_eq!(
            e,
            vec![
                HeaderEdit::Remove("x-powered-by".into()),
                HeaderEdit::Set("x-content-type-options".into(), "nosniff".into()),
            ]
        );
        let e = h.edits(&Vec::new(), true);
        assert!(e.contains(&HeaderEdit::Set("cache-control".into(), "no-store".into())));
    }

    #[test]
    fn names_and_values_are_checked() {
        assert!(valid_name("x-frame-options"));
        assert!(!valid_name("X-Frame"));
        assert!(!valid_name(":status"));
        assert!(valid_value("max-age=31536000; includeSubDomains"));
        assert!(!valid_value("a\r\nb"));
        assert!(!valid_value(" a"));
    }
}
