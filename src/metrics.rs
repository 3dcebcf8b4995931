//! Metric names. All are counters under the `meshguard.` prefix (Envoy shows wasm metrics as
//! `wasmcustom.meshguard.*`, and `wasmcustom_meshguard_*` in Prometheus format). Every name is
//! known at configure time, so the adapter defines them all once and request handling only
//! increments by id.

use crate::decide::Decision;
use crate::error::Reason;

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
