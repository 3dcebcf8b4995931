//! Metric names. All are counters under the `meshguard.` prefix (Envoy shows wasm metrics as
//! `wasmcustom.meshguard.*`, and `wasmcustom_meshguard_*` in Prometheus format). Every name is
//! known at configure time, so the adapter defines them all once and request handling only
//! increments by id.

use crate::error::Reason;
use crate::pipeline::verdict::Decision;
use crate::ratelimit::Outcome;

/// Configurations accepted by this VM.
pub const CONFIG_ACCEPTED: &str = "meshguard.config.accepted";
/// Configurations refused by this VM.
pub const CONFIG_REJECTED: &str = "meshguard.config.rejected";

/// The three request decisions, in the order metric ids are kept.
pub const DECISIONS: [Decision; 3] = [Decision::Allow, Decision::Deny, Decision::Report];

/// Requests on a route by final decision: `meshguard.route.<route>.<allow|deny|report>`.
pub fn route(route: &str, decision: Decision) -> String {
    format!("meshguard.route.{route}.{}", decision.as_str())
}

/// Denials (and report-mode would-be denials) by reason: `meshguard.reason.<code>.<deny|report>`.
pub fn reason(reason: Reason, decision: Decision) -> String {
    format!("meshguard.reason.{}.{}", reason.code(), decision.as_str())
}

/// Response changes: `meshguard.response.<change>.<applied|report>` (fields stripped, schema
/// stripped, preflights answered, CORS headers withheld). Refusals of responses are counted by
/// reason like request denials.
pub fn response_change(change: crate::response::Change, report: bool) -> String {
    format!(
        "meshguard.response.{}.{}",
        change.code(),
        if report { "report" } else { "applied" }
    )
}

/// Rate-limit outcomes: `meshguard.ratelimit.<route>.<limit>.<outcome>`. Characters of the limit
/// name outside `[A-Za-z0-9_-]` become `_`.
pub fn rate_limit(route: &str, limit: &str, outcome: Outcome) -> String {
    format!(
        "meshguard.ratelimit.{route}.{}.{}",
        sanitize(limit),
        outcome.code()
    )
}

/// A configured name made safe for a metric name: characters outside `[A-Za-z0-9_-]` become `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// JWT outcomes per provider: `meshguard.jwt.<provider>.<verified|cache_hit|reason>`; JWKS
/// fetches: `meshguard.jwks.<provider>.<fetch_ok|fetch_failed>`.
pub const JWT_PREFIX: &str = "meshguard.jwt";
