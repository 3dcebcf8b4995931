//! Audit lines: one JSON object per denial, per report-mode would-be denial and (optionally)
//! per allowed request. They carry the route's path template, never the raw path or query, and
//! never a token, key, cookie or body.

use crate::pipeline::engine::Exchange;
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::verdict::Event;
use crate::policy::Policy;
use serde::Serialize;

/// Value of the `kind` field, to find meshguard's lines in the proxy log.
pub const KIND: &str = "meshguard.audit";

#[derive(Serialize)]
struct Line<'a> {
    kind: &'static str,
    ts_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

/// Whether an event is logged under this policy.
pub fn wanted(policy: &Policy, event: &Event) -> bool {
    event.reason.is_some() || policy.log_allows
}

/// Renders one audit line. `status` is what the client gets (the reason's status for denials,
/// 0 when the request went on and the upstream decides).
pub fn line(
    policy: &Policy,
    ex: &Exchange,
    facts: &RequestFacts,
    event: &Event,
    ts_ms: u64,
) -> String {
    let principal = ex.principal();
    let status = match (event.decision, event.reason) {
        (crate::pipeline::verdict::Decision::Deny, Some(r)) => r.status(),
        _ => 0,
    };
    let method = if is_token(&facts.method) {
        facts.method.as_str()
    } else {
        "INVALID"
    };
    let l = Line {
        kind: KIND,
        ts_ms,
        request_id: facts.request_id().filter(|id| id.len() <= 128),
        route: ex.route_name(policy),
        method,
        path: ex.template(),
        decision: event.decision.as_str(),
        reason: event.reason.map(|r| r.code()),
        status,
        detail: event.log_detail.as_deref(),
        peer: principal.peer.as_deref(),
        iss: principal.issuer.as_deref(),
        sub: principal.subject.as_deref(),
    };
    serde_json::to_string(&l).unwrap_or_default()
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
}

#[derive(Serialize)]
struct ResponseLine<'a> {
    kind: &'static str,
    ts_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    phase: &'static str,
    decision: &'static str,
    reason: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

/// Whether a response-side event is logged: refusals and report-mode hits always, changes
/// (fields stripped, preflights answered) only with `audit.log_allows`.
pub fn response_wanted(policy: &Policy, event: &crate::response::ResponseEvent) -> bool {
    event.decision() != "modify" || policy.log_allows
}

/// Renders the audit line of a response-side event (`phase` is `response` or `preflight`).
/// `status` is what the client gets; the line never holds a body or a header value.
pub fn response_line(
    route: &str,
    template: &str,
    facts: &RequestFacts,
    principal: &crate::pipeline::state::Principal,
    event: &crate::response::ResponseEvent,
    phase: &'static str,
    ts_ms: u64,
) -> String {
    let method = if is_token(&facts.method) {
        facts.method.as_str()
    } else {
        "INVALID"
    };
    let l = ResponseLine {
        kind: KIND,
        ts_ms,
        request_id: facts.request_id().filter(|id| id.len() <= 128),
        route,
        method,
        path: template,
        phase,
        decision: event.decision(),
        reason: event.code(),
        status: event.status,
        detail: event.detail.as_deref(),
        peer: principal.peer.as_deref(),
        iss: principal.issuer.as_deref(),
        sub: principal.subject.as_deref(),
    };
    serde_json::to_string(&l).unwrap_or_default()
}
