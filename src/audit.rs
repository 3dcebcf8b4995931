//! Audit lines: one JSON object per denial, per report-mode would-be denial and (optionally)
//! per allowed request. They carry the route's path template, never the raw path or query, and
//! never a token, key, cookie or body.

use crate::pipeline::engine::Exchange;
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::state::Principal;
use crate::pipeline::verdict::Event;
use crate::policy::Policy;
use serde::Serialize;

/// Value of the `kind` field, to find meshguard's lines in the proxy log.
pub const KIND: &str = "meshguard.audit";

/// One audit line. `phase` is absent on request lines; `reason` on request lines that allowed.
#[derive(Serialize)]
struct Line<'a> {
    kind: &'static str,
    ts_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'static str>,
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

impl<'a> Line<'a> {
    /// The fields every line has: who asked what, on which route; the decision is filled in
    /// by the caller.
    fn of(
        facts: &'a RequestFacts,
        principal: &'a Principal,
        route: &'a str,
        path: &'a str,
        ts_ms: u64,
    ) -> Self {
        let method = if is_loggable_method(&facts.method) {
            facts.method.as_str()
        } else {
            "INVALID"
        };
        Line {
            kind: KIND,
            ts_ms,
            request_id: facts.request_id().filter(|id| id.len() <= 128),
            route,
            method,
            path,
            phase: None,
            decision: "",
            reason: None,
            status: 0,
            detail: None,
            peer: principal.peer.as_deref(),
            iss: principal.issuer.as_deref(),
            sub: principal.subject.as_deref(),
        }
    }
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
    let status = match (event.decision, event.reason) {
        (crate::pipeline::verdict::Decision::Deny, Some(r)) => r.status(),
        _ => 0,
    };
    let l = Line {
        decision: event.decision.as_str(),
        reason: event.reason.map(|r| r.code()),
        status,
        detail: event.log_detail.as_deref(),
        ..Line::of(
            facts,
            ex.principal(),
            ex.route_name(policy),
            ex.template(),
            ts_ms,
        )
    };
    serde_json::to_string(&l).unwrap_or_default()
}

fn is_loggable_method(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
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
    principal: &Principal,
    event: &crate::response::ResponseEvent,
    phase: &'static str,
    ts_ms: u64,
) -> String {
    let l = Line {
        phase: Some(phase),
        decision: event.decision(),
        reason: Some(event.code()),
        status: event.status,
        detail: event.detail.as_deref(),
        ..Line::of(facts, principal, route, template, ts_ms)
    };
    serde_json::to_string(&l).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::response::{Finding, ResponseEvent};

    #[test]
    fn response_lines_keep_their_fields_in_order() {
        let facts = RequestFacts {
            method: "get".into(),
            headers: vec![("x-request-id".into(), "r1".into())],
            ..RequestFacts::default()
        };
        let principal = Principal {
            subject: Some("alice".into()),
            ..Principal::default()
        };
        let event = ResponseEvent {
            finding: Finding::Denied(Reason::ResponseTooLarge),
            report: false,
            status: 502,
            detail: None,
        };
        let line = response_line("r", "/a/{id}", &facts, &principal, &event, "response", 7);
        assert_eq!(
            line,
            r#"{"kind":"meshguard.audit","ts_ms":7,"request_id":"r1","route":"r","method":"get","path":"/a/{id}","phase":"response","decision":"deny","reason":"response_too_large","status":502,"sub":"alice"}"#
        );
    }
}
