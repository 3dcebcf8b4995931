//! What does the upstream see after a token passed? The token is stripped unless `forward` is
//! set; `forward_payload_header` and `claim_to_headers` are set from the verified token.
//!
//! The adapter must first remove incoming copies of every header meshguard sets
//! ([`super::config::Providers::injected_headers`]) from every request, verified or not, so a
//! client can never supply them. A claim value that is not a header-safe scalar (or list of
//! scalars) is not copied: no header injection through claims.

use super::config::Provider;
use super::extract::{Extracted, TokenLocation};
use super::verify::VerifiedToken;
use serde_json::Value;

/// Longest header value copied from a claim.
pub const MAX_CLAIM_HEADER_BYTES: usize = 4096;

/// Edits to the request before it goes upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamEdits {
    /// Headers to remove (token carriers when `forward` is false).
    pub remove_headers: Vec<String>,
    /// Query parameters to strip from `:path` (see [`super::extract::strip_query_params`]).
    pub strip_params: Vec<String>,
    /// Cookies to strip from `cookie` (see [`super::extract::strip_cookies`]).
    pub strip_cookies: Vec<String>,
    /// Headers to set (replace), after the removals.
    pub set_headers: Vec<(String, String)>,
    /// Claims named in `claim_to_headers` that were present but could not be copied.
    pub skipped_claims: Vec<String>,
}

/// The edits for a request whose token (found at `found`) verified as `token`.
pub fn upstream_edits(
    provider: &Provider,
    found: &Extracted,
    token: &VerifiedToken,
) -> UpstreamEdits {
    let mut edits = UpstreamEdits::default();
    if !provider.forward {
        for loc in &found.locations {
            match loc {
                TokenLocation::Header(h) => edits.remove_headers.push(h.clone()),
                TokenLocation::Param(p) => edits.strip_params.push(p.clone()),
                TokenLocation::Cookie(c) => edits.strip_cookies.push(c.clone()),
            }
        }
    }
    if let Some(h) = &provider.forward_payload_header {
        edits
            .set_headers
            .push((h.clone(), token.payload_b64.clone()));
    }
    for c in &provider.claim_to_headers {
        let Some(value) = token.claim(&c.claim) else {
            continue;
        };
        match header_value(value) {
            Some(v) => edits.set_headers.push((c.header.clone(), v)),
            None => edits.skipped_claims.push(c.claim.clone()),
        }
    }
    edits
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON, arrays of
/// those joined with `,`. `None` for objects, nulls, control characters (header splitting),
/// leading or trailing whitespace (the upstream's parser trims it: ` admin` would read as
/// `admin`) or oversize values. Non-ASCII text is copied as its UTF-8 bytes (RFC 9110 obs-text,
/// which Envoy forwards as they are; Envoy's jwt_authn copies such claims too).
pub fn header_value(value: &Value) -> Option<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let out = match value {
        Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        v => scalar(v)?,
    };
    let safe = out.len() <= MAX_CLAIM_HEADER_BYTES
        && out.bytes().all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
        && !out.starts_with([' ', '\t'])
        && !out.ends_with([' ', '\t']);
    safe.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::config::KeySource;
    use crate::authn::testkit::*;
    use crate::authn::verify::verify;
    use serde_json::json;

    fn verified(p: &Provider, claims: Value) -> VerifiedToken {
        let KeySource::Static(keys) = &p.keys else {
            panic!("static keys expected")
        };
        verify(&token("ed25519", "EdDSA", claims), p, keys, NOW).unwrap()
    }

    fn found() -> Extracted {
        Extracted {
            token: "t".into(),
            locations: vec![
                TokenLocation::Header("authorization".into()),
                TokenLocation::Param("access_token".into()),
            ],
        }
    }

    #[test]
    fn strips_token_and_sets_payload_and_claim_headers() {
        let p = provider();
        let t = verified(&p, good_claims());
        let e = upstream_edits(&p, &found(), &t);
        assert_eq!(e.remove_headers, vec!["authorization".to_string()]);
        assert_eq!(e.strip_params, vec!["access_token".to_string()]);
        assert_eq!(
            e.set_headers,
            vec![
                ("x-jwt-payload".to_string(), t.payload_b64.clone()),
                ("x-user".to_string(), "alice".to_string())
            ]
        );
    }

    #[test]
    fn forward_keeps_the_token() {
        let p = provider_with(|v| v["forward"] = json!(true));
        let e = upstream_edits(&p, &found(), &verified(&p, good_claims()));
        assert!(e.remove_headers.is_empty() && e.strip_params.is_empty());
    }

    #[test]
    fn claim_with_newline_is_not_copied() {
        let p = provider();
        let mut c = good_claims();
        c["sub"] = json!("alice\r\nx-admin: true");
        let e = upstream_edits(&p, &found(), &verified(&p, c));
        assert_eq!(e.set_headers.len(), 1);
        assert_eq!(e.skipped_claims, vec!["sub".to_string()]);
    }

    #[test]
    fn header_values_from_claim_types() {
        assert_eq!(header_value(&json!("a")), Some("a".into()));
        assert_eq!(header_value(&json!(42)), Some("42".into()));
        assert_eq!(header_value(&json!(true)), Some("true".into()));
        assert_eq!(header_value(&json!(["a", 1])), Some("a,1".into()));
        assert_eq!(header_value(&json!({"a": 1})), None);
        assert_eq!(header_value(&json!([{"a": 1}])), None);
        assert_eq!(header_value(&json!(null)), None);
        // Non-ASCII text is copied as UTF-8; whitespace the upstream would trim is refused.
        assert_eq!(header_value(&json!("José")), Some("José".into()));
        assert_eq!(header_value(&json!("中文")), Some("中文".into()));
        assert_eq!(header_value(&json!(" admin")), None);
        assert_eq!(header_value(&json!("admin\t")), None);
        assert_eq!(header_value(&json!("a\u{7f}")), None);
        assert_eq!(header_value(&json!("a\u{0}b")), None);
    }
}
