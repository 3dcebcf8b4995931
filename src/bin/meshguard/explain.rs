//! `meshguard explain CONFIG METHOD PATH [HEADER...]`: which route a request takes and which
//! checks run on it, in the order the pipeline runs them.
//!
//! It compiles the config as `on_configure` does, normalises the path and looks the route up
//! with the policy's own lookup, then walks the pipeline's stage lists
//! ([`meshguard::stages::STANDARD`]) and names each stage the compiled route runs, with what the
//! stage says it checks and the route's config for it. Where the given headers
//! decide something without keys, clock or shared state (a token present or not, the
//! header-phase request checks) it says so. It never verifies a token or counts a limit.

use meshguard::authn::extract::{extract, TokenLocation};
use meshguard::error::{Denial, Reason};
use meshguard::pipeline::Stage;
use meshguard::policy::{Lookup, Mode, Policy, Route, Unmatched};
use meshguard::routing::normalize;
use meshguard::stages::STANDARD;
use meshguard::validate::{BodyNeed, RequestHead};
use serde_json::Value;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Longest config excerpt printed for a check.
const EXCERPT_CHARS: usize = 160;

/// The request as given on the command line.
struct Request {
    method: String,
    path: String,
    /// Lower-case names, in order.
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn authority(&self) -> &str {
        self.header(":authority")
            .or_else(|| self.header("host"))
            .unwrap_or("")
    }
    /// Whether a body follows the headers, as Envoy would know it.
    fn has_body(&self) -> bool {
        self.header("transfer-encoding").is_some()
            || self
                .header("content-length")
                .is_some_and(|v| v.trim() != "0")
    }
}

/// `Name: value` (curl's `-H` form); the name is lower-cased.
fn parse_header(arg: &str) -> Option<(String, String)> {
    let (name, value) = arg.split_once(':').and_then(|(n, v)| {
        // `:authority: x` is a pseudo-header: the name keeps its leading colon.
        if n.is_empty() {
            v.split_once(':').map(|(n2, v2)| (format!(":{n2}"), v2))
        } else {
            Some((n.to_string(), v))
        }
    })?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty() && name != ":").then(|| (name, value.trim().to_string()))
}

pub fn run(args: &[String]) -> ExitCode {
    let [config, method, path, headers @ ..] = args else {
        return crate::usage_of("explain");
    };
    let mut parsed = Vec::new();
    for h in headers {
        match parse_header(h) {
            Some(pair) => parsed.push(pair),
            None => {
                eprintln!("meshguard explain: header {h:?} is not `Name: value`");
                return crate::usage_of("explain");
            }
        }
    }
    let bytes = match crate::read_input(config) {
        Ok(b) => b,
        Err(e) => {
            println!("{config}: cannot read: {e}");
            return ExitCode::from(1);
        }
    };
    let policy = match meshguard::config::compile(&bytes) {
        Ok(p) => p,
        Err(e) => {
            println!("{config}: {e}");
            return ExitCode::from(1);
        }
    };
    // The raw config, for the excerpts: it compiled, so it is JSON with these routes.
    let raw: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let request = Request {
        method: method.clone(),
        path: path.clone(),
        headers: parsed,
    };
    print!("{}", explain(&policy, &raw, &request));
    ExitCode::SUCCESS
}

fn refusal(reason: Reason) -> String {
    format!("{} {}", reason.status(), reason.code())
}

fn denial_text(d: &Denial) -> String {
    match &d.detail {
        Some(detail) => format!("{} ({detail})", refusal(d.reason)),
        None => refusal(d.reason),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::Report => "report",
    }
}

/// The whole explanation, as printed.
fn explain(policy: &Policy, raw: &Value, req: &Request) -> String {
    let mut out = String::new();
    let authority = req.authority();
    let _ = writeln!(
        out,
        "request: {} {}{}",
        req.method,
        req.path,
        if authority.is_empty() {
            String::new()
        } else {
            format!(" (host {authority})")
        }
    );
    let normal = match normalize(&req.path) {
        Ok(n) => n,
        Err(e) => {
            let _ = writeln!(
                out,
                "path refused before routing: {} ({}); global mode {}",
                refusal(Reason::PathInvalid),
                e.describe(),
                mode_name(policy.mode)
            );
            return out;
        }
    };
    let segments: Vec<&str> = normal.segments().collect();
    let _ = writeln!(out, "normalised path: /{}", segments.join("/"));
    match policy.lookup(&req.method, authority, &normal) {
        Lookup::Matched(i, params) => match policy.route(i) {
            Some(route) => {
                explain_route(&mut out, policy, raw, req, i, route, &params, &normal.query)
            }
            None => {
                let _ = writeln!(out, "route index {i} out of range (a bug)");
            }
        },
        Lookup::MethodNotAllowed(allow) => {
            let _ = writeln!(
                out,
                "no route for method {}: a route matches the path for {}",
                req.method,
                allow.join(", ")
            );
            unmatched(&mut out, policy, Reason::MethodNotAllowed, Some(&allow));
        }
        Lookup::NotFound => {
            let _ = writeln!(out, "no route matches");
            unmatched(&mut out, policy, Reason::RouteNotFound, None);
        }
    }
    out
}

fn unmatched(out: &mut String, policy: &Policy, reason: Reason, allow: Option<&[String]>) {
    let _ = match (policy.unmatched, policy.mode) {
        (Unmatched::Allow, _) => writeln!(out, "unmatched: allow: the request goes on unchecked"),
        (Unmatched::Deny, mode) => writeln!(
            out,
            "unmatched: deny: {}{}{}",
            refusal(reason),
            allow.map_or(String::new(), |a| format!(", Allow: {}", a.join(", "))),
            if mode == Mode::Report {
                " (global mode report: logged, the request goes on)"
            } else {
                ""
            }
        ),
    };
}

#[allow(clippy::too_many_arguments)]
fn explain_route(
    out: &mut String,
    policy: &Policy,
    raw: &Value,
    req: &Request,
    index: usize,
    route: &Route,
    params: &[(String, String)],
    query: &str,
) {
    let raw_route = raw.get("routes").and_then(|r| r.get(index));
    let _ = writeln!(
        out,
        "route: {} (routes[{index}]: {} {}{}{})",
        route.name.as_str(),
        if route.path.params().is_empty() && !is_prefix(raw_route) {
            "path"
        } else if is_prefix(raw_route) {
            "prefix"
        } else {
            "template"
        },
        route.path.template(),
        route
            .methods
            .as_ref()
            .map_or(String::new(), |m| format!(", methods {}", m.join(" "))),
        raw_route
            .and_then(|r| r.pointer("/match/hosts"))
            .map_or(String::new(), |h| format!(", hosts {h}")),
    );
    let _ = writeln!(
        out,
        "mode: {}{}",
        mode_name(route.mode),
        if route.mode == Mode::Report {
            " (denials are logged and counted; the request goes on)"
        } else {
            " (the first refusal answers the request)"
        }
    );
    if !params.is_empty() {
        let list: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "params: {}", list.join(" "));
    }
    let ctx = Ctx {
        policy,
        raw_route,
        req,
        route,
        params,
        query,
    };
    let head: Vec<Line> = STANDARD
        .headers
        .iter()
        .filter_map(|s| ctx.stage(*s))
        .collect();
    let body: Vec<Line> = STANDARD.body.iter().filter_map(|s| ctx.stage(*s)).collect();
    let head_lines: Vec<&str> = head.iter().map(|l| l.text.as_str()).collect();
    let body_lines: Vec<&str> = body.iter().map(|l| l.text.as_str()).collect();
    if head_lines.is_empty() && body_lines.is_empty() {
        let _ = writeln!(out, "checks: none: the request goes on");
    } else {
        let _ = writeln!(out, "checks, in order:");
        let mut n = 0;
        for line in &head_lines {
            n += 1;
            let _ = writeln!(out, "  {n}. {line}");
        }
        if !body_lines.is_empty() {
            let _ = writeln!(out, "then, on the buffered body:");
            for line in &body_lines {
                n += 1;
                let _ = writeln!(out, "  {n}. {line}");
            }
        }
    }
    match head
        .iter()
        .find_map(|l| l.refusal.as_ref().map(|r| (l.label.as_str(), r)))
    {
        Some((label, refusal)) if route.mode == Mode::Report => {
            let _ = writeln!(out, "verdict: {label} would refuse it ({refusal}); report mode: logged, the request goes on");
        }
        Some((label, refusal)) => {
            let _ = writeln!(out, "verdict: refused by {label}: {refusal}");
        }
        None if !head.is_empty() || !body.is_empty() => {
            let _ = writeln!(
                out,
                "verdict: nothing in the given headers refuses it; tokens, peers, limits and the body are checked when it arrives"
            );
        }
        None => {}
    }
    if !policy.injected_headers.is_empty() {
        let _ = writeln!(
            out,
            "headers meshguard sets upstream (incoming copies removed): {}",
            policy.injected_headers.join(", ")
        );
    }
    for line in response_lines(policy, route) {
        let _ = writeln!(out, "{line}");
    }
}

/// What meshguard does to this route's answers (docs/response.md).
fn response_lines(policy: &Policy, route: &Route) -> Vec<String> {
    use meshguard::response::OnMismatch;
    let mut out = Vec::new();
    let r = &route.response;
    if let Some(c) = &r.cors {
        out.push(format!(
            "cors: preflights answered before any check; {} origin pattern(s){}{}",
            c.origins.len(),
            if c.any_origin { " and *" } else { "" },
            if c.credentials {
                ", credentials allowed"
            } else {
                ""
            }
        ));
    }
    if let Some(rules) = &r.rules {
        let mut parts = Vec::new();
        if !rules.strip.is_empty() {
            let fields: Vec<String> = rules
                .strip
                .iter()
                .map(|f| {
                    let who = if f.visible_to.is_some() {
                        " (kept for visible_to)"
                    } else {
                        ""
                    };
                    format!("{}{who}", f.pointer.as_str())
                })
                .collect();
            parts.push(format!("strips {}", fields.join(", ")));
        }
        if rules.schema.is_some() {
            let on = match rules.on_mismatch {
                OnMismatch::Deny => "502 response_schema_violation",
                OnMismatch::Strip => "strip what it does not allow",
                OnMismatch::Report => "report",
            };
            parts.push(format!("2xx checked against body_schema (mismatch: {on})"));
        }
        if let Some(n) = rules.max_array_len {
            parts.push(format!("arrays of at most {n}"));
        }
        parts.push(format!("answers up to {} bytes", rules.max_body_bytes));
        out.push(format!("response (JSON answers): {}", parts.join("; ")));
    }
    if r.mask {
        out.push(
            "upstream 5xx: replaced by a problem with the same status (upstream_error)".into(),
        );
    }
    if let Some(h) = &policy.edge.security_headers {
        let set: Vec<&str> = h.set.iter().map(|(k, _)| k.as_str()).collect();
        out.push(format!(
            "security headers: set {}; remove {}",
            if set.is_empty() {
                "none".to_string()
            } else {
                set.join(", ")
            },
            if h.remove.is_empty() {
                "none".to_string()
            } else {
                h.remove.join(", ")
            }
        ));
    }
    out
}

fn is_prefix(raw_route: Option<&Value>) -> bool {
    raw_route.and_then(|r| r.pointer("/match/prefix")).is_some()
}

/// One listed check: its printed text, and the refusal the given headers already earn.
struct Line {
    label: String,
    text: String,
    refusal: Option<String>,
}

struct Ctx<'a> {
    policy: &'a Policy,
    raw_route: Option<&'a Value>,
    req: &'a Request,
    route: &'a Route,
    params: &'a [(String, String)],
    query: &'a str,
}

impl Ctx<'_> {
    /// Whether the compiled route runs this stage: the request-body checks only when the
    /// given headers make the body buffered.
    fn enabled(&self, stage: &dyn Stage) -> bool {
        if !stage.runs_on(self.route) {
            return false;
        }
        if stage.label() == "request (body)" {
            return matches!(self.body_need(), Some(BodyNeed::Buffer { .. }));
        }
        true
    }

    /// One line for a stage the route runs, or `None` when it does not run.
    fn stage(&self, stage: &dyn Stage) -> Option<Line> {
        if !self.enabled(stage) {
            return None;
        }
        let label = stage.label().to_string();
        let mut text = format!("{label}: {}", stage.what());
        if let Some(section) = self.raw_route.and_then(|r| r.get(stage.key())) {
            let _ = write!(text, "\n     config: {}", excerpt(section));
        }
        let note = self.note(stage);
        if let Some(note) = &note {
            let _ = write!(text, "\n     this request: {}", note.text);
        }
        Some(Line {
            label,
            text,
            refusal: note.and_then(|n| n.refusal),
        })
    }

    /// What the given headers already decide for a stage, where that needs no keys or state.
    fn note(&self, stage: &dyn Stage) -> Option<Note> {
        match stage.label() {
            "jwt" => self.jwt_note(),
            "request" => Some(match self.check_head()? {
                Ok(BodyNeed::Buffer { limit }) => Note::pass(format!(
                    "passes the header checks; the body is buffered (at most {limit} bytes) and checked"
                )),
                Ok(BodyNeed::Count { limit }) => Note::pass(format!(
                    "passes the header checks; the body streams, refused above {limit} bytes"
                )),
                Ok(BodyNeed::Stream) => Note::pass("passes the header checks".to_string()),
                Err(d) => Note::refused(denial_text(&d)),
            }),
            _ => None,
        }
    }

    fn jwt_note(&self) -> Option<Note> {
        let req = self.route.jwt.as_ref()?;
        let mut found = Vec::new();
        for id in &req.providers {
            let provider = self.policy.providers.get(*id)?;
            match extract(&provider.sources, &self.req.headers, self.query) {
                Ok(Some(x)) => {
                    let places: Vec<String> = x.locations.iter().map(location).collect();
                    found.push(format!(
                        "a token for {} in {}",
                        provider.name,
                        places.join(", ")
                    ));
                }
                Ok(None) => {}
                Err(_) => {
                    return Some(Note::refused(format!(
                        "{} (two different tokens for {})",
                        refusal(Reason::JwtMalformed),
                        provider.name
                    )))
                }
            }
        }
        Some(if !found.is_empty() {
            Note::pass(format!(
                "{} (verified when the request arrives)",
                found.join("; ")
            ))
        } else if req.allow_missing {
            Note::pass("no token: allowed (allow_missing)".to_string())
        } else {
            Note::refused(refusal(Reason::JwtMissing))
        })
    }

    fn check_head(&self) -> Option<Result<BodyNeed, Denial>> {
        let rules = self.route.request.as_ref()?;
        let head = RequestHead {
            headers: &self.req.headers[..],
            query: (!self.query.is_empty()).then_some(self.query),
            path_params: self.params,
            end_of_stream: !self.req.has_body(),
        };
        Some(rules.check_head(&head))
    }

    fn body_need(&self) -> Option<BodyNeed> {
        self.check_head()?.ok()
    }
}

/// What the given headers say about one check.
struct Note {
    text: String,
    refusal: Option<String>,
}

impl Note {
    fn pass(text: String) -> Self {
        Note {
            text,
            refusal: None,
        }
    }
    fn refused(refusal: String) -> Self {
        Note {
            text: format!("refused: {refusal}"),
            refusal: Some(refusal),
        }
    }
}

fn location(loc: &TokenLocation) -> String {
    match loc {
        TokenLocation::Header(h) => format!("header {h}"),
        TokenLocation::Param(p) => format!("query parameter {p}"),
        TokenLocation::Cookie(c) => format!("cookie {c}"),
    }
}

fn excerpt(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= EXCERPT_CHARS {
        text
    } else {
        let cut: String = text.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::parse_header;

    #[test]
    fn headers_parse_in_curl_form() {
        assert_eq!(
            parse_header("Authorization: Bearer x"),
            Some(("authorization".into(), "Bearer x".into()))
        );
        assert_eq!(
            parse_header(":authority: api.example"),
            Some((":authority".into(), "api.example".into()))
        );
        assert_eq!(parse_header("no-colon"), None);
        assert_eq!(parse_header(": x"), None);
    }
}
