//! What a policy asks of responses, compiled: a route's rules ([`ResponseRules`]), its
//! effective settings ([`RouteResponse`]) and the policy-wide ones ([`EdgePolicy`]). Types only:
//! [`super::config`] builds them, the steps in [`super`] apply them.

use super::cors::CorsPolicy;
use super::headers::SecurityHeaders;
use super::strip;
use crate::validate::schema::CompiledSchema;
use std::sync::Arc;

/// What a `body_schema` mismatch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    /// Refuse the response (502 problem).
    Deny,
    /// Remove the members the schema does not allow; refuse other mismatches.
    Strip,
    /// Log and count; the response goes on unchanged.
    Report,
}

/// Compiled `routes[].response`.
#[derive(Debug)]
pub struct ResponseRules {
    /// `strip_fields`.
    pub strip: Vec<strip::StripField>,
    /// `body_schema` (checked on 2xx responses).
    pub schema: Option<CompiledSchema>,
    /// `on_schema_mismatch`.
    pub on_mismatch: OnMismatch,
    /// `max_body_bytes`.
    pub max_body_bytes: u64,
    /// `max_array_len`.
    pub max_array_len: Option<u32>,
}

impl ResponseRules {
    /// Whether a checked body may come out different (its length is then unknown upfront).
    pub fn may_rewrite(&self) -> bool {
        !self.strip.is_empty() || (self.schema.is_some() && self.on_mismatch == OnMismatch::Strip)
    }
}

/// Policy-wide response settings.
#[derive(Debug, Default)]
pub struct EdgePolicy {
    /// `security_headers`.
    pub security_headers: Option<SecurityHeaders>,
    /// Top-level `cors`.
    pub cors: Option<Arc<CorsPolicy>>,
    /// Top-level `mask_upstream_errors`.
    pub mask_upstream_errors: bool,
    /// `allow_on_headers_stop_iteration`: Envoy holds response headers while meshguard reads
    /// the body, so a refused body becomes a 502 and a rewritten one gets its exact length.
    pub hold_headers: bool,
}

/// A route's effective response settings.
#[derive(Debug, Default)]
pub struct RouteResponse {
    /// `routes[].response`.
    pub rules: Option<ResponseRules>,
    /// `routes[].cors`, else the top-level one.
    pub cors: Option<Arc<CorsPolicy>>,
    /// `routes[].mask_upstream_errors`, else the top-level one.
    pub mask: bool,
}
