//! Raw plugin configuration, exactly as users write it (see README and docs).
//! Unknown fields are errors. Only [`super::compile`] turns these into a policy.
//!
//! The module reads every raw type with its [`super::read::FromJson`] impl, written beside the
//! type (`from_json_struct!`). The serde derive stays for the attributes the config's JSON Schema
//! is derived from; the module never calls it (it would cost ~180 KB of module), and
//! `tests/config_schema.rs` checks that both readers agree.
//!
//! Every raw config type (here and in the feature modules) also derives `schemars::JsonSchema`
//! under the `schema` feature (`#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]`):
//! that is what `meshguard schema` prints. After adding or changing a field, run `make schema`
//! and commit `schema/meshguard-config.schema.json` (`tests/config_schema.rs` checks it).

use super::read::{from_json_enum, from_json_struct};
use crate::authn::config::{RawJwtProvider, RawJwtRequirement};
use crate::identity::config::{RawBinding, RawForwardIdentity, RawOwner, RawPeers};
use crate::mode::Mode;
use crate::ratelimit::config::{RawClientIp, RawLockout, RawRateLimit};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What happens to a request no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RawUnmatched {
    /// 404 problem (default).
    #[default]
    Deny,
    /// The request goes on unchecked.
    Allow,
}

/// The whole plugin configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Global mode; a route's `mode` overrides it.
    #[serde(default)]
    pub mode: Mode,
    /// Unmatched-request policy.
    #[serde(default)]
    pub unmatched: RawUnmatched,
    /// Audit-log options.
    #[serde(default)]
    pub audit: RawAudit,
    /// Ordered routes; the first match applies.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Headers that carry the peer SPIFFE ID and token subject upstream.
    #[serde(default)]
    pub forward_identity: Option<RawForwardIdentity>,
    /// Where the client address comes from (connection or trusted `x-forwarded-for` hops).
    #[serde(default)]
    pub client_ip: Option<RawClientIp>,
    /// Token issuers by name.
    #[serde(default)]
    pub jwt_providers: BTreeMap<String, RawJwtProvider>,
    /// Verified-token cache options.
    #[serde(default)]
    pub jwt_cache: Option<RawJwtCache>,
    /// Replace upstream 5xx bodies with meshguard's problem (routes may override).
    #[serde(default)]
    pub mask_upstream_errors: bool,
    /// Response headers set and removed on every response.
    #[serde(default)]
    pub security_headers: Option<crate::response::config::RawSecurityHeaders>,
    /// Browser cross-origin policy (routes may override).
    #[serde(default)]
    pub cors: Option<crate::response::config::RawCors>,
    /// Envoy's wasm `allow_on_headers_stop_iteration` is on: response headers may be held.
    #[serde(default)]
    pub allow_on_headers_stop_iteration: bool,
    /// How request paths are compared with routes.
    #[serde(default)]
    pub paths: RawPaths,
}

/// Top-level `paths`: defaults for every route's path comparison.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    /// Compare route paths with letter case as written (default false: `/ADMIN` is `/admin`).
    #[serde(default)]
    pub case_sensitive: bool,
    /// Accept `;` path parameters (`/a;x=1`); default false: 400 `path_invalid`.
    #[serde(default)]
    pub allow_semicolon_params: bool,
    /// Accept requests that name another method (`X-HTTP-Method-Override`, `X-HTTP-Method`,
    /// `X-Method-Override`, a `_method` query parameter); default false: 400 `method_invalid`.
    #[serde(default)]
    pub allow_method_override: bool,
}

/// Verified-token cache options.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJwtCache {
    /// Entries per worker (default 1024; 0 turns the cache off).
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// Entries shared by all workers of one Envoy, so a token is verified once per Envoy rather
    /// than once per worker (default 256, at most 16384; 0 turns sharing off).
    #[serde(default)]
    pub shared_entries: Option<u32>,
}

/// Audit-log options.
#[derive(Debug, Clone, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Also log one line per allowed request (default false: denials and report-mode hits only).
    #[serde(default)]
    pub log_allows: bool,
}

/// One route.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name, `[A-Za-z0-9_-]`, used in audit lines and metric names.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))
    )]
    pub name: String,
    /// Which requests the route applies to.
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    /// Overrides the global mode for this route.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Token requirement.
    #[serde(default)]
    pub jwt: Option<RawJwtRequirement>,
    /// mTLS peer identity requirements.
    #[serde(default)]
    pub peers: Option<RawPeers>,
    /// Object-level authorization.
    #[serde(default)]
    pub owner: Option<RawOwner>,
    /// Token bound to the mTLS peer.
    #[serde(default)]
    pub binding: Option<RawBinding>,
    /// Request shape checks: size, content type, headers, parameters, JSON Schema.
    #[serde(default)]
    pub request: Option<crate::validate::config::RawRequest>,
    /// Token-bucket limits, checked in order.
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    /// Brute-force lockout after repeated authentication failures.
    #[serde(default)]
    pub lockout: Option<RawLockout>,
    /// Response checks: fields stripped, schema, size.
    #[serde(default)]
    pub response: Option<crate::response::config::RawResponse>,
    /// Overrides the top-level `mask_upstream_errors`.
    #[serde(default)]
    pub mask_upstream_errors: Option<bool>,
    /// Replaces the top-level `cors` on this route.
    #[serde(default)]
    pub cors: Option<crate::response::config::RawCors>,
}

/// A route's match: exactly one of `path` / `prefix`; `methods` and `hosts` optional.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("oneOf" = [{"required": ["path"]}, {"required": ["prefix"]}]))
)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Upper-case methods; any when absent.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Exact path or template with `{param}` segments.
    #[serde(default)]
    pub path: Option<String>,
    /// Segment-boundary path prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Host names or `*.` wildcards; any when absent.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// Overrides `paths.case_sensitive` for this route.
    #[serde(default)]
    pub case_sensitive: Option<bool>,
    /// Overrides `paths.allow_semicolon_params` for this route.
    #[serde(default)]
    pub allow_semicolon_params: Option<bool>,
}

from_json_enum!(RawUnmatched { Deny = "deny", Allow = "allow" });

from_json_struct!(RawConfig {
    mode: get,
    unmatched: get,
    audit: get,
    routes: get,
    forward_identity: get,
    client_ip: get,
    jwt_providers: get,
    jwt_cache: get,
    mask_upstream_errors: get,
    security_headers: get,
    cors: get,
    allow_on_headers_stop_iteration: get,
    paths: get,
});

from_json_struct!(RawPaths {
    case_sensitive: get,
    allow_semicolon_params: get,
    allow_method_override: get,
});

from_json_struct!(RawJwtCache {
    max_entries: get,
    shared_entries: get,
});

from_json_struct!(RawAudit { log_allows: get });

from_json_struct!(RawRoute {
    name: req,
    matcher = "match": req,
    mode: get,
    jwt: get,
    peers: get,
    owner: get,
    binding: get,
    request: get,
    rate_limits: get,
    lockout: get,
    response: get,
    mask_upstream_errors: get,
    cors: get,
});

from_json_struct!(RawMatch {
    methods: get,
    path: get,
    prefix: get,
    hosts: get,
    case_sensitive: get,
    allow_semicolon_params: get,
});
