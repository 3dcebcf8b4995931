//! `cors`: which browser origins may call a route, the answer to a preflight, and the CORS
//! headers of an actual response.
//!
//! It decides from the request's `Origin`, `Access-Control-Request-Method` and
//! `Access-Control-Request-Headers` alone; it never looks at credentials (a preflight carries
//! none, so it is answered before any authentication check).

use super::headers::HeaderEdit;
use crate::error::{Denial, Reason};
use crate::host::HeaderPairs;

/// Methods allowed when `allow_methods` is not set.
pub const DEFAULT_METHODS: &[&str] = &["GET", "HEAD", "POST"];

/// Request headers a browser may send without them being listed (CORS-safelisted names).
const SAFELISTED: &[&str] = &["accept", "accept-language", "content-language"];

/// An allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// Exactly this origin (`https://app.example.com`, lower-case).
    Exact(String),
    /// Any subdomain: scheme, the host suffix with its leading dot, and the port part (`""` or
    /// `":8443"`).
    Subdomains {
        /// `https` or `http`.
        scheme: String,
        /// `.example.com`.
        suffix: String,
        /// `""` or `:port`.
        port: String,
    },
}

/// Splits an origin (`scheme://host[:port]`) into lower-case scheme, host and port part.
fn split_origin(origin: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5 => {
            (h, format!(":{p}"))
        }
        Some(_) => return None,
        None => (rest, String::new()),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
    host_ok.then(|| (scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), port))
}

impl OriginPattern {
    /// Parses a configured origin: `https://app.example.com`, `https://*.example.com`, or
    /// `*.example.com` (scheme `https`). `None` when malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let full = if s.contains("://") {
            s.to_string()
        } else {
            format!("https://{s}")
        };
        let (scheme, host, port) = split_origin(&full)?;
        if let Some(suffix) = host.strip_prefix('*') {
            let ok = suffix.starts_with('.') && suffix.len() > 1 && !suffix.contains('*');
            return ok.then(|| OriginPattern::Subdomains {
                scheme,
                suffix: suffix.to_string(),
                port,
            });
        }
        if host.contains('*') || !s.contains("://") {
            // A bare host is only accepted with a wildcard; an exact origin names its scheme.
            return None;
        }
        Some(OriginPattern::Exact(format!("{scheme}://{host}{port}")))
    }

    fn matches(&self, origin: &str) -> bool {
        let Some((scheme, host, port)) = split_origin(origin) else {
            return false;
        };
        if host.contains('*') {
            return false;
        }
        match self {
            OriginPattern::Exact(o) => *o == format!("{scheme}://{host}{port}"),
            OriginPattern::Subdomains {
                scheme: s,
                suffix,
                port: p,
            } => {
                *s == scheme
                    && *p == port
                    && host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// A compiled `cors` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// `allow_origins` contained `*`.
    pub any_origin: bool,
    /// The other entries.
    pub origins: Vec<OriginPattern>,
    /// Upper-case methods.
    pub methods: Vec<String>,
    /// Lower-case request header names.
    pub allow_headers: Vec<String>,
    /// Lower-case response header names the browser may read.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age`.
    pub max_age_seconds: Option<u32>,
}

/// The answer to a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// 204 with these headers.
    Allowed(Vec<(String, String)>),
    /// 403 problem, without any allow header.
    Refused(Denial),
}

impl CorsPolicy {
    /// Whether a browser origin may call.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if origin == "null" {
            return false;
        }
        self.any_origin || self.origins.iter().any(|o| o.matches(origin))
    }

    fn allow_origin_value(&self, origin: &str) -> String {
        if self.any_origin && !self.credentials {
            "*".to_string()
        } else {
            origin.to_string()
        }
    }

    /// Answers a preflight for `origin` asking for `method` and `request_headers` (the raw
    /// comma-separated `Access-Control-Request-Headers`).
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> Preflight {
        if !self.allows_origin(origin) {
            return Preflight::Refused(
                Denial::new(Reason::CorsOriginNotAllowed).with_log_detail("origin not allowed"),
            );
        }
        if !self.methods.iter().any(|m| m == method) {
            return Preflight::Refused(
                Denial::new(Reason::CorsPreflightNotAllowed)
                    .with_detail("method not allowed")
                    .with_log_detail("requested method not allowed"),
            );
        }
        for h in request_headers
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
        {
            if !SAFELISTED.contains(&h.as_str()) && !self.allow_headers.contains(&h) {
                return Preflight::Refused(
                    Denial::new(Reason::CorsPreflightNotAllowed)
                        .with_detail("request header not allowed")
                        .with_log_detail("requested header not allowed"),
                );
            }
        }
        let mut headers = vec![
            (
                "access-control-allow-origin".to_string(),
                self.allow_origin_value(origin),
            ),
            (
                "access-control-allow-methods".to_string(),
                self.methods.join(", "),
            ),
        ];
        if !self.allow_headers.is_empty() {
            headers.push((
                "access-control-allow-headers".to_string(),
                self.allow_headers.join(", "),
            ));
        }
        if self.credentials {
            headers.push((
                "access-control-allow-credentials".to_string(),
                "true".to_string(),
            ));
        }
        if let Some(age) = self.max_age_seconds {
            headers.push(("access-control-max-age".to_string(), age.to_string()));
        }
        headers.push((
            "vary".to_string(),
            "origin, access-control-request-method, access-control-request-headers".to_string(),
        ));
        Preflight::Allowed(headers)
    }

    /// Edits for an actual response: CORS headers the upstream set are removed (meshguard
    /// answers for the route), then set for an allowed origin. `None` origin: a same-origin or
    /// non-browser request. Also returns whether the origin was allowed.
    pub fn actual(&self, origin: Option<&str>, present: &HeaderPairs) -> (Vec<HeaderEdit>, bool) {
        let mut edits: Vec<HeaderEdit> = present
            .iter()
            .filter(|(k, _)| k.starts_with(b"access-control-"))
            .map(|(k, _)| HeaderEdit::Remove(String::from_utf8_lossy(k).into_owned()))
            .collect();
        edits.dedup();
        edits.push(HeaderEdit::Append("vary".into(), "origin".into()));
        let Some(origin) = origin else {
            return (edits, false);
        };
        if !self.allows_origin(origin) {
            return (edits, false);
        }
        edits.extend(
            self.reply_headers(origin)
                .into_iter()
                .map(|(k, v)| HeaderEdit::Set(k, v)),
        );
        (edits, true)
    }

    /// The CORS headers of an actual response to an allowed origin (without `vary`).
    pub fn reply_headers(&self, origin: &str) -> Vec<(String, String)> {
        let mut out = vec![(
            "access-control-allow-origin".to_string(),
            self.allow_origin_value(origin),
        )];
        if self.credentials {
            out.push((
                "access-control-allow-credentials".to_string(),
                "true".to_string(),
            ));
        }
        if !self.expose_headers.is_empty() {
            out.push((
                "access-control-expose-headers".to_string(),
                self.expose_headers.join(", "),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy {
            any_origin: origins.contains(&"*"),
            origins: origins
                .iter()
                .filter(|o| **o != "*")
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
            methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["authorization".into(), "content-type".into()],
            expose_headers: vec!["x-request-id".into()],
            credentials,
            max_age_seconds: Some(600),
        }
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain_suffix() {
        let p = policy(
            &[
                "https://app.example.com",
                "*.example.org",
                "http://*.local.test:8080",
            ],
            false,
        );
        assert!(p.allows_origin("https://app.example.com"));
        assert!(p.allows_origin("https://APP.example.com"));
        assert!(!p.allows_origin("http://app.example.com"));
        assert!(!p.allows_origin("https://app.example.com:444"));
        assert!(!p.allows_origin("https://app.example.com.evil.test"));
        assert!(p.allows_origin("https://a.example.org"));
        assert!(p.allows_origin("https://a.b.example.org"));
        assert!(!p.allows_origin("https://example.org"));
        assert!(!p.allows_origin("https://evilexample.org"));
        assert!(!p.allows_origin("http://a.example.org"));
        assert!(p.allows_origin("http://x.local.test:8080"));
        assert!(!p.allows_origin("http://x.local.test"));
        assert!(!p.allows_origin("null"));
        assert!(!p.allows_origin("https://*.example.org"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "app.example.com",
            "https://a.*.com",
            "*example.com",
            "https://",
            "ftp//x",
            "*.",
        ] {
            assert!(OriginPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn preflight_from_an_allowed_origin_lists_what_is_allowed() {
        let p = policy(&["https://app.example.com"], true);
        let Preflight::Allowed(h) = p.preflight(
            "https://app.example.com",
            "POST",
            Some("Authorization, Content-Type"),
        ) else {
            panic!("refused")
        };
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        assert_eq!(get("access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(get("access-control-max-age"), Some("600"));
    }

    #[test]
    fn preflight_refusals_name_the_part() {
        let p = policy(&["https://app.example.com"], false);
        let reason = |pf: Preflight| match pf {
            Preflight::Refused(d) => Some(d.reason),
            Preflight::Allowed(_) => None,
        };
        assert_eq!(
            reason(p.preflight("https://evil.test", "GET", None)),
            Some(Reason::CorsOriginNotAllowed)
        );
        assert_eq!(
            reason(p.preflight("https://app.example.com", "DELETE", None)),
            Some(Reason::CorsPreflightNotAllowed)
        );
        assert_eq!(
            reason(p.preflight("https://app.example.com", "GET", Some("x-admin"))),
            Some(Reason::CorsPreflightNotAllowed)
        );
        assert_eq!(
            reason(p.preflight("https://app.example.com", "GET", Some("accept"))),
            None
        );
    }

    #[test]
    fn actual_response_carries_cors_headers_only_for_allowed_origins() {
        let p = policy(&["*"], false);
        let upstream = vec![(b"access-control-allow-origin".to_vec(), b"*".to_vec())];
        let (e, ok) = p.actual(Some("https://x.test"), &upstream);
        assert!(ok);
        assert!(e.contains(&HeaderEdit::Set(
            "access-control-allow-origin".into(),
            "*".into()
        )));
        let p = policy(&["https://app.example.com"], true);
        let (e, ok) = p.actual(Some("https://evil.test"), &upstream);
        assert!(!ok);
        assert_eq!(
            e,
            vec![
                HeaderEdit::Remove("access-control-allow-origin".into()),
                HeaderEdit::Append("vary".into(), "origin".into())
            ]
        );
    }
}
