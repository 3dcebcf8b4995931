//! Identity forwarding: which request headers carry the peer and token identities upstream.
//!
//! Decides the header edits for one request: always remove every configured header (a client
//! could send its own copy), then set the ones whose value is known and safe. It never touches
//! headers itself; the adapter applies the plan.

use serde_json::{Map, Value};

use super::spiffe::SpiffeId;

/// Longest token subject forwarded; longer ones are dropped rather than truncated.
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// The compiled top-level `forward_identity` section (header names are lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardIdentity {
    peer_header: Option<String>,
    subject_header: Option<String>,
}

/// Header edits for one request: remove all of `remove` first, then add `set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderPlan<'a> {
    /// Headers to remove from the request, whatever their value.
    pub remove: Vec<&'a str>,
    /// Headers to set after removal.
    pub set: Vec<(&'a str, String)>,
}

impl ForwardIdentity {
    pub(super) fn new(peer_header: Option<String>, subject_header: Option<String>) -> Self {
        Self {
            peer_header,
            subject_header,
        }
    }

    /// Header carrying the peer SPIFFE ID.
    pub fn peer_header(&self) -> Option<&str> {
        self.peer_header.as_deref()
    }

    /// Header carrying the token subject.
    pub fn subject_header(&self) -> Option<&str> {
        self.subject_header.as_deref()
    }

    /// The edits for a request whose peer proved `peer` (if any) and whose *verified* token has
    /// `claims` (pass `None` when no token verified, so an unverified `sub` is never forwarded).
    /// The subject is the string claim `sub`, forwarded only if it has no control bytes (that
    /// could split headers) and no leading or trailing space (which the upstream's parser would
    /// trim, making ` admin` read as `admin`), and is at most [`MAX_SUBJECT_BYTES`]. Non-ASCII
    /// text is forwarded as its UTF-8 bytes (RFC 9110 obs-text; Envoy passes them).
    pub fn plan(
        &self,
        peer: Option<&SpiffeId>,
        claims: Option<&Map<String, Value>>,
    ) -> HeaderPlan<'_> {
        let mut plan = HeaderPlan::default();
        if let Some(h) = self.peer_header.as_deref() {
            plan.remove.push(h);
            if let Some(id) = peer {
                plan.set.push((h, id.as_str().to_string()));
            }
        }
        if let Some(h) = self.subject_header.as_deref() {
            plan.remove.push(h);
            let sub = claims
                .and_then(|c| c.get("sub"))
                .and_then(Value::as_str)
                .filter(|s| is_safe_header_value(s));
            if let Some(sub) = sub {
                plan.set.push((h, sub.to_string()));
            }
        }
        plan
    }
}

fn is_safe_header_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SUBJECT_BYTES
        && s.bytes().all(|b| b >= 0x20 && b != 0x7f)
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both() -> ForwardIdentity {
        ForwardIdentity::new(Some("x-peer".into()), Some("x-sub".into()))
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn always_removes_configured_headers() {
        let f = both();
        let plan = f.plan(None, None);
        assert_eq!(plan.remove, vec!["x-peer", "x-sub"]);
        assert!(plan.set.is_empty());
    }

    #[test]
    fn sets_peer_and_subject_when_known() {
        let id = SpiffeId::parse("spiffe://td/ns/a/sa/b").unwrap();
        let c = claims(json!({"sub": "user-42"}));
        let f = both();
        let plan = f.plan(Some(&id), Some(&c));
        assert_eq!(plan.remove, vec!["x-peer", "x-sub"]);
        assert_eq!(
            plan.set,
            vec![
                ("x-peer", "spiffe://td/ns/a/sa/b".to_string()),
                ("x-sub", "user-42".to_string())
            ]
        );
    }

    #[test]
    fn unsafe_or_non_string_subject_is_not_forwarded() {
        for sub in [
            json!("a\r\nx-admin: 1"),
            json!("tab\there"),
            json!(""),
            json!(" padded"),
            json!("x".repeat(MAX_SUBJECT_BYTES + 1)),
            json!(42),
            json!(["a"]),
        ] {
            let c = claims(json!({ "sub": sub }));
            let f = both();
            let plan = f.plan(None, Some(&c));
            assert!(plan.set.is_empty(), "{sub}");
            assert_eq!(plan.remove.len(), 2);
        }
    }

    #[test]
    fn non_ascii_subject_is_forwarded_as_utf8() {
        let c = claims(json!({ "sub": "caf\u{e9}-\u{4e2d}" }));
        let f = both();
        let plan = f.plan(None, Some(&c));
        assert_eq!(plan.set, vec![("x-sub", "caf\u{e9}-\u{4e2d}".to_string())]);
    }

    #[test]
    fn only_configured_headers_are_touched() {
        let f = ForwardIdentity::new(Some("x-peer".into()), None);
        let c = claims(json!({"sub": "u"}));
        let plan = f.plan(None, Some(&c));
        assert_eq!(plan.remove, vec!["x-peer"]);
        assert!(plan.set.is_empty());
    }
}
