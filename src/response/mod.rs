//! The response side: what meshguard does to the upstream's answer before the client sees it.
//!
//! One file per concern: [`strip`] (fields removed, per caller), [`cors`] (origins, preflights),
//! [`headers`] (security headers), [`mask`] (upstream 5xx bodies), [`config`] (raw types and
//! compilation), [`body`] (the body step). This module ties them into two pure steps the adapter
//! calls: [`on_head`] with the response status and headers, then (only when it asked for the
//! body) [`body::on_body`] with the complete body. Plus [`preflight`], which the adapter calls before any request check.
//!
//! It never touches a response on a route that asks for nothing: [`wanted`] is a few field
//! reads, and the adapter skips every host call when it is false. It never passes a body it
//! was asked to check without checking it: a body it cannot read (compressed, not JSON, too
//! large) is refused, or reported in report mode.

pub mod body;
pub mod config;
pub mod cors;
pub mod headers;
pub mod mask;
pub mod pointer;
pub mod rules;
pub mod strip;

use crate::error::{Denial, Reason, Reply};
use crate::host::HeaderPairs;
use crate::pipeline::facts::RequestFacts;
use crate::policy::{Lookup, Mode, Policy, Route};
use cors::{CorsPolicy, Preflight};
pub use headers::HeaderEdit;
pub use rules::{EdgePolicy, OnMismatch, ResponseRules, RouteResponse};
use serde_json::{Map, Value};

/// A change meshguard made (or, in report mode, would have made) to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `strip_fields` removed fields.
    FieldsStripped,
    /// `on_schema_mismatch: strip` removed members the schema does not allow.
    SchemaStripped,
    /// A preflight was answered by meshguard.
    PreflightAnswered,
    /// A request from an origin not allowed got no CORS headers.
    CorsHeadersWithheld,
}

impl Change {
    /// Every change, for counters.
    pub const ALL: [Change; 4] = [
        Change::FieldsStripped,
        Change::SchemaStripped,
        Change::PreflightAnswered,
        Change::CorsHeadersWithheld,
    ];

    /// Stable snake_case code (audit `reason`, metric names).
    pub fn code(self) -> &'static str {
        match self {
            Change::FieldsStripped => "fields_stripped",
            Change::SchemaStripped => "schema_stripped",
            Change::PreflightAnswered => "cors_preflight_answered",
            Change::CorsHeadersWithheld => "cors_headers_withheld",
        }
    }
}

/// What a response event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A refusal (or masking) with this reason.
    Denied(Reason),
    /// A change.
    Changed(Change),
}

/// One audit-worthy outcome of the response side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseEvent {
    /// What happened.
    pub finding: Finding,
    /// Report mode: nothing was changed or refused.
    pub report: bool,
    /// The status the client gets (the upstream's when nothing was refused).
    pub status: u16,
    /// Operator detail (never a body value).
    pub detail: Option<String>,
}

impl ResponseEvent {
    /// `deny`, `modify` or `report`, as in audit lines.
    pub fn decision(&self) -> &'static str {
        match (self.report, self.finding) {
            (true, _) => "report",
            (false, Finding::Denied(_)) => "deny",
            (false, Finding::Changed(_)) => "modify",
        }
    }

    /// The reason or change code.
    pub fn code(&self) -> &'static str {
        match self.finding {
            Finding::Denied(r) => r.code(),
            Finding::Changed(c) => c.code(),
        }
    }
}

/// What the response side knows about the exchange.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// The matched route.
    pub route: Option<&'a Route>,
    /// Effective mode (route, else global).
    pub mode: Mode,
    /// The response is meshguard's own reply to the request (a denial or a preflight answer).
    pub own_reply: bool,
    /// The request was a preflight meshguard answered.
    pub preflight: bool,
    /// The request's `Origin`.
    pub origin: Option<&'a str>,
    /// Verified token claims.
    pub claims: Option<&'a Map<String, Value>>,
    /// `x-request-id`, echoed in problem bodies.
    pub request_id: Option<&'a str>,
    /// Request method (no body is read for HEAD).
    pub method: &'a str,
}

impl Site<'_> {
    fn cors(&self) -> Option<&CorsPolicy> {
        match self.route {
            Some(r) => r.response.cors.as_deref(),
            None => self.policy.edge.cors.as_deref(),
        }
    }
    fn mask(&self) -> bool {
        match self.route {
            Some(r) => r.response.mask,
            None => self.policy.edge.mask_upstream_errors,
        }
    }
    fn rules(&self) -> Option<&ResponseRules> {
        self.route.and_then(|r| r.response.rules.as_ref())
    }
    fn report(&self) -> bool {
        self.mode == Mode::Report
    }
}

/// Whether the response of this exchange needs any work (else the adapter skips it entirely).
pub fn wanted(policy: &Policy, route: Option<&Route>) -> bool {
    let edge = &policy.edge;
    let (cors, mask, rules) = match route {
        Some(r) => (
            r.response.cors.is_some(),
            r.response.mask,
            r.response.rules.is_some(),
        ),
        None => (edge.cors.is_some(), edge.mask_upstream_errors, false),
    };
    edge.security_headers.is_some() || cors || mask || rules
}

/// Request-header changes for a route with response body checks: the upstream is asked for an
/// uncompressed answer (`accept-encoding: identity`), so the body can be read. An Envoy
/// compressor placed before meshguard still sees the client's preference and compresses the
/// checked answer on the way out.
pub fn request_header_ops(route: &Route) -> Vec<crate::pipeline::verdict::HeaderOp> {
    use crate::pipeline::verdict::HeaderOp;
    if route.response.rules.is_some() {
        // Whole, uncompressed answers only: a range or a compressed body cannot be checked.
        vec![
            HeaderOp::Set("accept-encoding".into(), "identity".into()),
            HeaderOp::Remove("range".into()),
            HeaderOp::Remove("if-range".into()),
        ]
    } else {
        Vec::new()
    }
}

/// The body read [`on_head`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRead {
    /// Refuse (or report) a body above this many bytes.
    pub limit: u64,
    /// The response headers are held until the body is decided.
    pub hold: bool,
    /// Strip fields for this caller (indices into the route's `strip_fields`).
    pub strip: Vec<usize>,
    /// Check `body_schema` (2xx responses).
    pub schema: bool,
    /// The upstream's status.
    pub status: u16,
}

/// What to do with the response after its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadPlan {
    /// Apply the edits and let it go on.
    Pass,
    /// Apply the edits, read the whole body, then call [`body::on_body`].
    ReadBody(BodyRead),
    /// Answer with this reply instead (masked error, unreadable body).
    Replace(Reply),
}

/// [`on_head`]'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadOutcome {
    /// Plan.
    pub plan: HeadPlan,
    /// Header edits (for `Pass` and `ReadBody`).
    pub edits: Vec<HeaderEdit>,
    /// What to log and count.
    pub events: Vec<ResponseEvent>,
}

fn header<'h>(headers: &'h HeaderPairs, name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.as_slice() == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn media_type(content_type: Option<&[u8]>) -> Option<String> {
    let raw = content_type?;
    let s = std::str::from_utf8(raw).ok()?;
    Some(
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether a response body on a route with response rules is read as JSON. Everything is,
/// except a single, well-formed content type of another kind (`text/html`, `text/plain`,
/// `image/png`, ...): an absent, empty, repeated (Envoy joins two headers with a comma) or
/// non-UTF-8 content type is read, and so are the JSON types and their streaming and legacy
/// spellings (`+json`, `text/json`, `application/x-json`, `application/x-ndjson`,
/// `application/json-seq`, `application/jsonl`, `application/jsonp`), so that a body cannot dodge
/// the checks by its label. A body that is then not one JSON document is refused.
fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(raw) = content_type else {
        return true;
    };
    let Some(m) = media_type(Some(raw)) else {
        return true;
    };
    if m.is_empty() || m.contains(',') || !m.contains('/') {
        return true;
    }
    m.contains("json") || m.starts_with("multipart/")
}

/// The headers every reply built here carries: security headers and CORS for the origin.
fn decorate(site: &Site<'_>, mut reply: Reply) -> Reply {
    if let Some(sh) = &site.policy.edge.security_headers {
        for (k, v) in sh.reply_headers() {
            reply.headers.retain(|(h, _)| h != k);
            reply.headers.push((k.to_string(), v.to_string()));
        }
    }
    if let (Some(cors), Some(origin)) = (site.cors(), site.origin) {
        reply.headers.push(("vary".into(), "origin".into()));
        if cors.allows_origin(origin) {
            reply.headers.extend(cors.reply_headers(origin));
        }
    }
    reply
}

fn refused(site: &Site<'_>, denial: Denial) -> Reply {
    decorate(site, crate::error::reply(&denial, site.request_id))
}

/// Decides what happens to a response from its status and headers.
pub fn on_head(
    site: &Site<'_>,
    status: u16,
    headers: &HeaderPairs,
    end_of_stream: bool,
) -> HeadOutcome {
    let mut out = HeadOutcome {
        plan: HeadPlan::Pass,
        edits: Vec::new(),
        events: Vec::new(),
    };
    let content_type = header(headers, "content-type");
    if let Some(sh) = &site.policy.edge.security_headers {
        let problem = media_type(content_type).as_deref() == Some("application/problem+json");
        out.edits.extend(sh.edits(headers, problem));
    }
    if let Some(cors) = site.cors() {
        if !site.preflight {
            let (edits, allowed) = cors.actual(site.origin, headers);
            out.edits.extend(edits);
            if site.origin.is_some() && !allowed {
                out.events.push(ResponseEvent {
                    finding: Finding::Changed(Change::CorsHeadersWithheld),
                    report: false,
                    status,
                    detail: None,
                });
            }
        }
    }
    if site.own_reply {
        return out;
    }
    if site.mask() && mask::masks(status, content_type) {
        out.events.push(ResponseEvent {
            finding: Finding::Denied(Reason::UpstreamError),
            report: site.report(),
            status,
            detail: Some(format!("upstream {status} body masked")),
        });
        if !site.report() {
            out.plan =
                HeadPlan::Replace(decorate(site, mask::masked_reply(status, site.request_id)));
            return out;
        }
    }
    let Some(rules) = site.rules() else {
        return out;
    };
    let no_body = end_of_stream
        || site.method == "HEAD"
        || status == 204
        || status == 304
        || (100..200).contains(&status);
    if no_body || !is_json(content_type) {
        return out;
    }
    if status == 206 {
        // meshguard removes the client's `range` on these routes: a part of a document
        // cannot be checked, and a slice may hold what the whole would have stripped.
        let denial = Denial::new(Reason::ResponseUnreadable)
            .with_log_detail("a partial answer (206) is not read");
        return deny_at_head(site, out, denial, status);
    }
    let strip = strip::fields_for(&rules.strip, site.claims);
    let schema = rules.schema.is_some() && (200..300).contains(&status);
    if strip.is_empty() && !schema && rules.max_array_len.is_none() {
        return out;
    }
    let encoding = header(headers, "content-encoding")
        .map(|e| String::from_utf8_lossy(e).trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e != "identity");
    if let Some(enc) = encoding {
        let denial = Denial::new(Reason::ResponseUnreadable)
            .with_log_detail(format!("content-encoding {} is not read", short(&enc)));
        return deny_at_head(site, out, denial, status);
    }
    let length = header(headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > rules.max_body_bytes) {
        let denial = Denial::new(Reason::ResponseTooLarge).with_log_detail(format!(
            "content-length above max_body_bytes {}",
            rules.max_body_bytes
        ));
        return deny_at_head(site, out, denial, status);
    }
    let hold = site.policy.edge.hold_headers && !site.report();
    if !hold && rules.may_rewrite() && !site.report() {
        // The headers leave before the body is rewritten: its length is no longer known.
        out.edits.push(HeaderEdit::Remove("content-length".into()));
    }
    out.plan = HeadPlan::ReadBody(BodyRead {
        limit: rules.max_body_bytes,
        hold,
        strip,
        schema,
        status,
    });
    out
}

fn short(s: &str) -> String {
    s.chars()
        .take(32)
        .filter(|c| c.is_ascii_graphic())
        .collect()
}

fn deny_at_head(site: &Site<'_>, mut out: HeadOutcome, denial: Denial, status: u16) -> HeadOutcome {
    let report = site.report();
    out.events.push(ResponseEvent {
        finding: Finding::Denied(denial.reason),
        report,
        status: if report {
            status
        } else {
            denial.reason.status()
        },
        detail: denial.log_detail.clone(),
    });
    if !report {
        out.plan = HeadPlan::Replace(refused(site, denial));
    }
    out
}

/// A preflight meshguard answers: the reply (none in report mode when it would be refused: the
/// request then goes through the normal checks) and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightOutcome {
    /// The matched route (by the requested method), if any.
    pub route: Option<usize>,
    /// The 204 or 403 to send; `None`: go on with the normal pipeline.
    pub reply: Option<Reply>,
    /// What to log and count.
    pub event: ResponseEvent,
}

/// Answers a CORS preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) when a
/// `cors` policy applies to the route the actual request would take; `None` otherwise.
pub fn preflight(policy: &Policy, facts: &RequestFacts) -> Option<PreflightOutcome> {
    if facts.method != "OPTIONS" {
        return None;
    }
    let origin = facts.header("origin")?;
    let method = facts.header("access-control-request-method")?;
    if policy.edge.cors.is_none() && !policy.routes.iter().any(|r| r.response.cors.is_some()) {
        return None;
    }
    let (route, cors, mode) = match crate::routing::normalize(&facts.path)
        .ok()
        .map(|n| policy.lookup(method, &facts.authority, &n))
    {
        Some(Lookup::Matched(i, _)) => {
            let r = policy.route(i)?;
            (Some(i), r.response.cors.clone(), r.mode)
        }
        _ => (None, policy.edge.cors.clone(), policy.mode),
    };
    let cors = cors?;
    let request_id = facts.request_id();
    let (reply, finding, status, detail) = match cors.preflight(
        origin,
        method,
        facts.header("access-control-request-headers"),
    ) {
        Preflight::Allowed(headers) => (
            Some(Reply {
                status: 204,
                headers,
                body: Vec::new(),
                grpc_status: None,
            }),
            Finding::Changed(Change::PreflightAnswered),
            204,
            None,
        ),
        Preflight::Refused(denial) => {
            let status = denial.reason.status();
            let reply = (mode == Mode::Enforce).then(|| crate::error::reply(&denial, request_id));
            (
                reply,
                Finding::Denied(denial.reason),
                status,
                denial.log_detail,
            )
        }
    };
    let report = reply.is_none();
    Some(PreflightOutcome {
        route,
        reply,
        event: ResponseEvent {
            finding,
            report,
            status: if report { 0 } else { status },
            detail,
        },
    })
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
