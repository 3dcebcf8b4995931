//! Denials: every reason a request can be refused, and the one mapping from a denial to the
//! HTTP reply (status, headers, RFC 9457 problem body). Config errors are in [`config`].
//!
//! The reply names the check that failed and nothing else: no token, key, schema or value. The
//! detail meant for operators travels in [`Denial::log_detail`] and goes to the audit log only.

pub mod config;

use serde::Serialize;

/// Why a request was (or, in report mode, would have been) refused. The `code()` is a stable
/// name used in problem bodies, audit lines and metric names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// No route matches the request and `unmatched` is `deny`.
    RouteNotFound,
    /// A route matches the path but not the method.
    MethodNotAllowed,
    /// The request path cannot be normalised safely (encoded slash, bad escape, control byte,
    /// `;` path parameters where no route accepts them).
    PathInvalid,
    /// The method is not an upper-case token.
    MethodInvalid,
    /// No token where a route requires one.
    JwtMissing,
    /// The token is not a well-formed JWS compact JWT (segments, base64url, JSON, size).
    JwtMalformed,
    /// `exp` is in the past beyond the allowed clock skew.
    JwtExpired,
    /// `nbf` (or `iat`) is in the future beyond the allowed clock skew.
    JwtNotYetValid,
    /// `exp - iat` (or `exp - now`) exceeds the provider's `max_lifetime_seconds`.
    JwtLifetimeTooLong,
    /// The signature does not verify with the selected key.
    JwtBadSignature,
    /// No key in the provider's key set has the token's `kid`.
    JwtUnknownKid,
    /// The token's `alg` is `none`, not in the allow-list, or not the key's algorithm.
    JwtAlgNotAllowed,
    /// The token carries a `crit` header parameter meshguard does not understand.
    JwtCritUnsupported,
    /// The token is a JWE or a nested JWT.
    JwtUnsupportedType,
    /// `iss` differs from the provider's issuer.
    JwtIssuerMismatch,
    /// `aud` contains none of the provider's audiences.
    JwtAudienceMismatch,
    /// The token lacks a scope the route requires.
    JwtInsufficientScope,
    /// A claim the route constrains is absent or has a value outside the allowed set.
    JwtClaimMismatch,
    /// The provider's keys are not available (first JWKS fetch pending or failed).
    JwksUnavailable,
    /// The route requires mTLS and the peer presented no client certificate.
    PeerNotMtls,
    /// The peer presented a certificate with no valid SPIFFE ID.
    PeerIdentityMissing,
    /// The peer's SPIFFE ID is denied or not allowed on this route.
    PeerNotAllowed,
    /// Object-level authorization: the addressed object is not the caller's.
    OwnerMismatch,
    /// The token is not bound to the mTLS peer presenting it.
    TokenNotBoundToPeer,
    /// The body or a parameter does not validate against the route's schema.
    SchemaViolation,
    /// The body is not well-formed JSON (or not UTF-8, or has duplicate keys).
    JsonMalformed,
    /// The JSON body exceeds a threat limit (depth, keys, array length, string length).
    JsonLimits,
    /// A query parameter appears more than once where the schema allows one value.
    ParamDuplicate,
    /// A header rule failed (required, forbidden, pattern).
    HeaderInvalid,
    /// The client set a field it may not set (unknown or read-only).
    MassAssignment,
    /// The content type is not in the route's allow-list.
    UnsupportedMediaType,
    /// The body exceeds the route's `max_body_bytes`.
    BodyTooLarge,
    /// A rate limit is exhausted.
    RateLimited,
    /// The key is locked out after repeated authentication failures.
    LockedOut,
    /// meshguard could not decide (a host call failed); fail closed.
    Internal,
    /// A CORS preflight from an origin not in the route's `cors.allow_origins`.
    CorsOriginNotAllowed,
    /// A CORS preflight asking for a method or request header the route's `cors` does not allow.
    CorsPreflightNotAllowed,
    /// An upstream 5xx whose body was replaced (`mask_upstream_errors`); the reply keeps the
    /// upstream's status.
    UpstreamError,
    /// The upstream's JSON response does not match the route's `response.body_schema`.
    ResponseSchemaViolation,
    /// The upstream's response body exceeds the route's `response.max_body_bytes`.
    ResponseTooLarge,
    /// An array in the upstream's response exceeds the route's `response.max_array_len`.
    ResponseArrayTooLong,
    /// The upstream's response cannot be checked: compressed, or not well-formed JSON.
    ResponseUnreadable,
}

impl Reason {
    /// Every reason, for pre-defining metrics and for documentation tests.
    pub const ALL: [Reason; 42] = [
        Reason::RouteNotFound,
        Reason::MethodNotAllowed,
        Reason::PathInvalid,
        Reason::MethodInvalid,
        Reason::JwtMissing,
        Reason::JwtMalformed,
        Reason::JwtExpired,
        Reason::JwtNotYetValid,
        Reason::JwtLifetimeTooLong,
        Reason::JwtBadSignature,
        Reason::JwtUnknownKid,
        Reason::JwtAlgNotAllowed,
        Reason::JwtCritUnsupported,
        Reason::JwtUnsupportedType,
        Reason::JwtIssuerMismatch,
        Reason::JwtAudienceMismatch,
        Reason::JwtInsufficientScope,
        Reason::JwtClaimMismatch,
        Reason::JwksUnavailable,
        Reason::PeerNotMtls,
        Reason::PeerIdentityMissing,
        Reason::PeerNotAllowed,
        Reason::OwnerMismatch,
        Reason::TokenNotBoundToPeer,
        Reason::SchemaViolation,
        Reason::JsonMalformed,
        Reason::JsonLimits,
        Reason::ParamDuplicate,
        Reason::HeaderInvalid,
        Reason::MassAssignment,
        Reason::UnsupportedMediaType,
        Reason::BodyTooLarge,
        Reason::RateLimited,
        Reason::LockedOut,
        Reason::Internal,
        Reason::CorsOriginNotAllowed,
        Reason::CorsPreflightNotAllowed,
        Reason::UpstreamError,
        Reason::ResponseSchemaViolation,
        Reason::ResponseTooLarge,
        Reason::ResponseArrayTooLong,
        Reason::ResponseUnreadable,
    ];

    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::RouteNotFound => "route_not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::PathInvalid => "path_invalid",
            Reason::MethodInvalid => "method_invalid",
            Reason::JwtMissing => "jwt_missing",
            Reason::JwtMalformed => "jwt_malformed",
            Reason::JwtExpired => "jwt_expired",
            Reason::JwtNotYetValid => "jwt_not_yet_valid",
            Reason::JwtLifetimeTooLong => "jwt_lifetime_too_long",
            Reason::JwtBadSignature => "jwt_bad_signature",
            Reason::JwtUnknownKid => "jwt_unknown_kid",
            Reason::JwtAlgNotAllowed => "jwt_alg_not_allowed",
            Reason::JwtCritUnsupported => "jwt_crit_unsupported",
            Reason::JwtUnsupportedType => "jwt_unsupported_type",
            Reason::JwtIssuerMismatch => "jwt_issuer_mismatch",
            Reason::JwtAudienceMismatch => "jwt_audience_mismatch",
            Reason::JwtInsufficientScope => "jwt_insufficient_scope",
            Reason::JwtClaimMismatch => "jwt_claim_mismatch",
            Reason::JwksUnavailable => "jwks_unavailable",
            Reason::PeerNotMtls => "peer_not_mtls",
            Reason::PeerIdentityMissing => "peer_identity_missing",
            Reason::PeerNotAllowed => "peer_not_allowed",
            Reason::OwnerMismatch => "owner_mismatch",
            Reason::TokenNotBoundToPeer => "token_not_bound_to_peer",
            Reason::SchemaViolation => "schema_violation",
            Reason::JsonMalformed => "json_malformed",
            Reason::JsonLimits => "json_limits",
            Reason::ParamDuplicate => "param_duplicate",
            Reason::HeaderInvalid => "header_invalid",
            Reason::MassAssignment => "mass_assignment",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::BodyTooLarge => "body_too_large",
            Reason::RateLimited => "rate_limited",
            Reason::LockedOut => "locked_out",
            Reason::Internal => "internal",
            Reason::CorsOriginNotAllowed => "cors_origin_not_allowed",
            Reason::CorsPreflightNotAllowed => "cors_preflight_not_allowed",
            Reason::UpstreamError => "upstream_error",
            Reason::ResponseSchemaViolation => "response_schema_violation",
            Reason::ResponseTooLarge => "response_too_large",
            Reason::ResponseArrayTooLong => "response_array_too_long",
            Reason::ResponseUnreadable => "response_unreadable",
        }
    }

    /// HTTP status for this reason.
    pub fn status(self) -> u16 {
        match self {
            Reason::RouteNotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::PathInvalid
            | Reason::MethodInvalid
            | Reason::SchemaViolation
            | Reason::JsonMalformed
            | Reason::JsonLimits
            | Reason::ParamDuplicate
            | Reason::HeaderInvalid
            | Reason::MassAssignment => 400,
            Reason::JwtMissing
            | Reason::JwtMalformed
            | Reason::JwtExpired
            | Reason::JwtNotYetValid
            | Reason::JwtLifetimeTooLong
            | Reason::JwtBadSignature
            | Reason::JwtUnknownKid
            | Reason::JwtAlgNotAllowed
            | Reason::JwtCritUnsupported
            | Reason::JwtUnsupportedType
            | Reason::JwtIssuerMismatch
            | Reason::JwtAudienceMismatch
            | Reason::TokenNotBoundToPeer => 401,
            Reason::JwtInsufficientScope
            | Reason::JwtClaimMismatch
            | Reason::PeerNotMtls
            | Reason::PeerIdentityMissing
            | Reason::PeerNotAllowed
            | Reason::OwnerMismatch
            | Reason::CorsOriginNotAllowed
            | Reason::CorsPreflightNotAllowed => 403,
            Reason::UnsupportedMediaType => 415,
            Reason::BodyTooLarge => 413,
            Reason::RateLimited | Reason::LockedOut => 429,
            Reason::JwksUnavailable | Reason::Internal => 503,
            Reason::UpstreamError
            | Reason::ResponseSchemaViolation
            | Reason::ResponseTooLarge
            | Reason::ResponseArrayTooLong
            | Reason::ResponseUnreadable => 502,
        }
    }

    /// Short human title for the problem body.
    pub fn title(self) -> &'static str {
        match self {
            Reason::RouteNotFound => "No route matches this request",
            Reason::MethodNotAllowed => "Method not allowed on this route",
            Reason::PathInvalid => "Request path is not acceptable",
            Reason::MethodInvalid => "Request method is not acceptable",
            Reason::JwtMissing => "Authentication required",
            Reason::JwtMalformed => "Token is malformed",
            Reason::JwtExpired => "Token has expired",
            Reason::JwtNotYetValid => "Token is not yet valid",
            Reason::JwtLifetimeTooLong => "Token lifetime is too long",
            Reason::JwtBadSignature => "Token signature is invalid",
            Reason::JwtUnknownKid => "Token key is unknown",
            Reason::JwtAlgNotAllowed => "Token algorithm is not allowed",
            Reason::JwtCritUnsupported => "Token has unsupported critical headers",
            Reason::JwtUnsupportedType => "Token type is not supported",
            Reason::JwtIssuerMismatch => "Token issuer is not accepted",
            Reason::JwtAudienceMismatch => "Token audience is not accepted",
            Reason::JwtInsufficientScope => "Token lacks a required scope",
            Reason::JwtClaimMismatch => "Token claims do not permit this request",
            Reason::JwksUnavailable => "Token keys are unavailable",
            Reason::PeerNotMtls => "Mutual TLS is required",
            Reason::PeerIdentityMissing => "Peer has no workload identity",
            Reason::PeerNotAllowed => "Peer is not allowed",
            Reason::OwnerMismatch => "Object does not belong to the caller",
            Reason::TokenNotBoundToPeer => "Token is not bound to this peer",
            Reason::SchemaViolation => "Request does not match the schema",
            Reason::JsonMalformed => "Request body is not valid JSON",
            Reason::JsonLimits => "Request body exceeds JSON limits",
            Reason::ParamDuplicate => "Query parameter repeated",
            Reason::HeaderInvalid => "Request header is not acceptable",
            Reason::MassAssignment => "Request sets fields it may not set",
            Reason::UnsupportedMediaType => "Unsupported media type",
            Reason::BodyTooLarge => "Request body is too large",
            Reason::RateLimited => "Too many requests",
            Reason::LockedOut => "Temporarily locked out",
            Reason::Internal => "Request could not be checked",
            Reason::CorsOriginNotAllowed => "Origin is not allowed",
            Reason::CorsPreflightNotAllowed => "Cross-origin request is not allowed",
            Reason::UpstreamError => "Upstream service error",
            Reason::ResponseSchemaViolation => "Upstream response does not match its contract",
            Reason::ResponseTooLarge => "Upstream response is too large",
            Reason::ResponseArrayTooLong => "Upstream response has too many entries",
            Reason::ResponseUnreadable => "Upstream response could not be checked",
        }
    }

    /// True for authentication failures (401 with `error="invalid_token"` unless the token is
    /// simply missing). Lockout counting uses this.
    pub fn is_authn_failure(self) -> bool {
        self.status() == 401
    }
}

/// A refusal produced by a check, before it is turned into a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The failing check.
    pub reason: Reason,
    /// Client-safe detail (a JSON pointer and a keyword, a parameter name): never a value.
    pub detail: Option<String>,
    /// Extra reply headers (`WWW-Authenticate`, `Retry-After`, `Allow`, `RateLimit`...).
    pub headers: Vec<(String, String)>,
    /// Operator detail for the audit log only (never a token, key or body).
    pub log_detail: Option<String>,
}

impl Denial {
    /// A denial with no detail.
    pub fn new(reason: Reason) -> Self {
        Self {
            reason,
            detail: None,
            headers: Vec::new(),
            log_detail: None,
        }
    }
    /// Adds client-safe detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    /// Adds operator-only detail for the audit log.
    pub fn with_log_detail(mut self, detail: impl Into<String>) -> Self {
        self.log_detail = Some(detail.into());
        self
    }
    /// Adds a reply header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The reply for a denial: what the adapter sends as a local response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers, content type first.
    pub headers: Vec<(String, String)>,
    /// `application/problem+json` body; for a gRPC reply the `grpc-message` text.
    pub body: Vec<u8>,
    /// For a gRPC request: the gRPC status Envoy answers with (trailers-only, HTTP 200).
    pub grpc_status: Option<u32>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// The problem type URI for a reason (`urn:meshguard:problem:<code>`).
pub fn problem_type(reason: Reason) -> String {
    format!("urn:meshguard:problem:{}", reason.code())
}

/// Maps a denial to its reply: status, `application/problem+json` body (RFC 9457), and headers,
/// including `WWW-Authenticate` (RFC 6750) for 401s and for scope/claim 403s.
pub fn reply(denial: &Denial, request_id: Option<&str>) -> Reply {
    let reason = denial.reason;
    let status = reason.status();
    let problem = Problem {
        kind: problem_type(reason),
        title: reason.title(),
        status,
        detail: denial.detail.as_deref(),
        reason: reason.code(),
        request_id: request_id.filter(|id| is_safe_request_id(id)),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/problem+json".to_string(),
        ),
        ("cache-control".to_string(), "no-store".to_string()),
        // A problem body is data, never a document to render or a script to run.
        ("x-content-type-options".to_string(), "nosniff".to_string()),
    ];
    if let Some(challenge) = www_authenticate(reason) {
        if !denial
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        {
            headers.push(("www-authenticate".to_string(), challenge));
        }
    }
    headers.extend(denial.headers.iter().cloned());
    Reply {
        status,
        headers,
        body,
        grpc_status: None,
    }
}

/// The reply for a denial of a request, gRPC or not: a gRPC caller (see
/// [`crate::pipeline::facts::RequestFacts::is_grpc`]) gets the gRPC status of [`grpc_status`] with a short
/// `grpc-message` (reason code, title, client-safe detail); anyone else the problem reply.
pub fn reply_to(denial: &Denial, request: &crate::pipeline::facts::RequestFacts) -> Reply {
    let mut r = reply(denial, request.request_id());
    if request.is_grpc() {
        let reason = denial.reason;
        let mut message = format!("{}: {}", reason.code(), reason.title());
        if let Some(detail) = &denial.detail {
            message.push_str(": ");
            message.push_str(detail);
        }
        // Envoy sets the gRPC content type; the JSON one would be wrong.
        r.headers.retain(|(k, _)| k != "content-type");
        r.body = message.into_bytes();
        r.grpc_status = Some(grpc_status(r.status));
    }
    r
}

/// The gRPC status for a meshguard denial's HTTP status, so that gRPC clients see what happened
/// instead of Envoy's generic mapping (which turns 429 into UNAVAILABLE, retried at once, and
/// 400 into INTERNAL): 401 UNAUTHENTICATED (16), 403 PERMISSION_DENIED (7), 429 and 413
/// RESOURCE_EXHAUSTED (8), 400 and 415 INVALID_ARGUMENT (3), 404 and 405 UNIMPLEMENTED (12:
/// no route is what a gRPC server says for a method it does not serve), 503 UNAVAILABLE (14),
/// anything else INTERNAL (13).
pub fn grpc_status(http_status: u16) -> u32 {
    match http_status {
        401 => 16,
        403 => 7,
        413 | 429 => 8,
        400 | 415 => 3,
        404 | 405 => 12,
        503 => 14,
        _ => 13,
    }
}

/// The default RFC 6750 challenge for a reason, if it has one.
pub fn www_authenticate(reason: Reason) -> Option<String> {
    match reason {
        // RFC 6750 §3.1: no error code when the request lacks any authentication information.
        Reason::JwtMissing => Some("Bearer realm=\"meshguard\"".to_string()),
        Reason::JwksUnavailable => None,
        Reason::JwtInsufficientScope | Reason::JwtClaimMismatch => {
            Some("Bearer realm=\"meshguard\", error=\"insufficient_scope\"".to_string())
        }
        r if r.status() == 401 => Some(format!(
            "Bearer realm=\"meshguard\", error=\"invalid_token\", error_description=\"{}\"",
            r.title()
        )),
        _ => None,
    }
}

/// Request ids are echoed only when they look like ids (no injection into the body).
fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_distinct_code() {
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }

    #[test]
    fn expired_token_is_401_with_invalid_token_challenge() {
        let r = reply(&Denial::new(Reason::JwtExpired), Some("abc-1"));
        assert_eq!(r.status, 401);
        let challenge = r
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.as_str());
        assert!(challenge.is_some_and(|c| c.contains("error=\"invalid_token\"")));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert_eq!(body["reason"], "jwt_expired");
        assert_eq!(body["status"], 401);
        assert_eq!(body["request_id"], "abc-1");
    }

    #[test]
    fn every_denial_says_nosniff_and_no_store() {
        for reason in Reason::ALL {
            let r = reply(&Denial::new(reason), None);
            let has = |k: &str, v: &str| r.headers.iter().any(|(a, b)| a == k && b == v);
            assert!(has("x-content-type-options", "nosniff"), "{reason:?}");
            assert!(has("cache-control", "no-store"), "{reason:?}");
        }
    }

    #[test]
    fn grpc_statuses_follow_the_meaning_of_each_denial() {
        let expect = [
            (Reason::JwtMissing, 16),
            (Reason::JwtExpired, 16),
            (Reason::PeerNotAllowed, 7),
            (Reason::JwtInsufficientScope, 7),
            (Reason::RateLimited, 8),
            (Reason::LockedOut, 8),
            (Reason::BodyTooLarge, 8),
            (Reason::SchemaViolation, 3),
            (Reason::HeaderInvalid, 3),
            (Reason::UnsupportedMediaType, 3),
            (Reason::RouteNotFound, 12),
            (Reason::MethodNotAllowed, 12),
            (Reason::JwksUnavailable, 14),
        ];
        for (reason, code) in expect {
            assert_eq!(grpc_status(reason.status()), code, "{reason:?}");
        }
        for reason in Reason::ALL {
            assert_ne!(grpc_status(reason.status()), 0, "a denial is never OK");
        }
    }

    #[test]
    fn grpc_request_gets_a_grpc_status_and_message_http_gets_problem_json() {
        let mut facts = crate::pipeline::facts::RequestFacts::default();
        facts
            .headers
            .push(("content-type".into(), "application/grpc+proto".into()));
        let d = Denial::new(Reason::RateLimited).with_header("retry-after", "1");
        let r = reply_to(&d, &facts);
        assert_eq!(r.grpc_status, Some(8));
        assert_eq!(r.body, b"rate_limited: Too many requests".to_vec());
        assert!(!r.headers.iter().any(|(k, _)| k == "content-type"));
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "retry-after" && v == "1"));
        for ct in [
            "application/grpc-web",
            "application/json",
            "Application/GRPC",
        ] {
            let mut f = crate::pipeline::facts::RequestFacts::default();
            f.headers.push(("content-type".into(), ct.into()));
            assert_eq!(reply_to(&d, &f).grpc_status, None, "{ct}");
        }
    }

    #[test]
    fn request_id_with_markup_is_not_echoed() {
        let r = reply(&Denial::new(Reason::RouteNotFound), Some("<script>"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert!(body.get("request_id").is_none());
    }
}
