//! The decision pipeline end to end in the core: routing, unmatched policy, report mode, events.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use meshguard::config::compile;
use meshguard::decide::{Decision, Env, Exchange, Properties, RequestFacts, Verdict};
use meshguard::error::Reason;
use meshguard::host::fake::{FakeClock, MemStore};
use meshguard::policy::Policy;

struct NoProps;
impl Properties for NoProps {
    fn get(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

fn policy(json: &str) -> Policy {
    match compile(json.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("config refused: {e}"),
    }
}

fn req(method: &str, path: &str) -> RequestFacts {
    RequestFacts {
        method: method.into(),
        path: path.into(),
        authority: "api.example.com".into(),
        headers: vec![("x-request-id".into(), "rid-1".into())],
    }
}

fn decide(p: &Policy, r: &RequestFacts) -> (Verdict, Exchange) {
    let clock = FakeClock::at_secs(1_700_000_000);
    let store = MemStore::default();
    let env = Env {
        clock: &clock,
        store: &store,
        props: &NoProps,
    };
    let mut ex = Exchange::new();
    let v = ex.on_headers(p, r, &env);
    (v, ex)
}

const ROUTES: &str = r#"{"routes":[
  {"name":"get-user","match":{"methods":["GET"],"path":"/users/{id}"}},
  {"name":"pub","match":{"prefix":"/public/"}},
  {"name":"admin","match":{"prefix":"/admin","hosts":["admin.example.com"]}}]}"#;

fn reason_of(v: &Verdict) -> Option<Reason> {
    match v {
        Verdict::Deny(d) => Some(d.reason),
        _ => None,
    }
}

#[test]
fn matched_route_is_allowed_and_counted() {
    let p = policy(ROUTES);
    let (v, mut ex) = decide(&p, &req("GET", "/users/42?x=1"));
    assert_eq!(v, Verdict::Allow);
    assert_eq!(ex.route_name(&p), "get-user");
    assert_eq!(ex.template(), "/users/{id}");
    assert_eq!(ex.final_decision(), Some(Decision::Allow));
    let events = ex.take_events();
    assert_eq!(events.len(), 1);
}

#[test]
fn unmatched_request_is_404_by_default() {
    let p = policy(ROUTES);
    let (v, ex) = decide(&p, &req("GET", "/nope"));
    assert_eq!(reason_of(&v), Some(Reason::RouteNotFound));
    assert_eq!(ex.route_name(&p), "_unmatched");
    assert_eq!(ex.final_decision(), Some(Decision::Deny));
}

#[test]
fn unmatched_allow_lets_requests_through() {
    let p = policy(r#"{"unmatched":"allow","routes":[]}"#);
    let (v, _) = decide(&p, &req("DELETE", "/anything"));
    assert_eq!(v, Verdict::Allow);
}

#[test]
fn wrong_method_is_405_with_allow_header() {
    let p = policy(ROUTES);
    let (v, _) = decide(&p, &req("DELETE", "/users/1"));
    match v {
        Verdict::Deny(d) => {
            assert_eq!(d.reason, Reason::MethodNotAllowed);
            assert!(d
                .headers
                .contains(&("allow".to_string(), "GET".to_string())));
        }
        other => panic!("expected 405, got {other:?}"),
    }
}

#[test]
fn dot_segments_cannot_reach_a_route_they_do_not_name() {
    let p = policy(ROUTES);
    let (v, ex) = decide(&p, &req("GET", "/public/../users/7"));
    assert_eq!(v, Verdict::Allow);
    assert_eq!(ex.route_name(&p), "get-user");
    let (v, _) = decide(&p, &req("GET", "/public/%2e%2e/secret"));
    assert_eq!(reason_of(&v), Some(Reason::RouteNotFound));
}

#[test]
fn encoded_slash_is_400() {
    let p = policy(ROUTES);
    let (v, _) = decide(&p, &req("GET", "/users/a%2Fb"));
    assert_eq!(reason_of(&v), Some(Reason::PathInvalid));
}

#[test]
fn host_restricted_route_needs_its_host() {
    let p = policy(ROUTES);
    let (v, _) = decide(&p, &req("GET", "/admin/x"));
    assert_eq!(reason_of(&v), Some(Reason::RouteNotFound));
    let mut r = req("GET", "/admin/x");
    r.authority = "Admin.Example.com:443".into();
    let (v, _) = decide(&p, &r);
    assert_eq!(v, Verdict::Allow);
}

#[test]
fn global_report_mode_passes_would_be_denials_and_records_them() {
    let p = policy(r#"{"mode":"report","routes":[]}"#);
    let (v, mut ex) = decide(&p, &req("GET", "/nope"));
    assert_eq!(v, Verdict::Allow);
    assert_eq!(ex.final_decision(), Some(Decision::Report));
    let events = ex.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events.first().map(|e| e.decision), Some(Decision::Report));
    assert_eq!(
        events.first().and_then(|e| e.reason),
        Some(Reason::RouteNotFound)
    );
}

#[test]
fn audit_line_has_template_not_raw_path() {
    let p = policy(ROUTES);
    let r = req("GET", "/users/42?token=secret");
    let (_, mut ex) = decide(&p, &r);
    let events = ex.take_events();
    let e = events.first().cloned();
    let line = e
        .map(|e| meshguard::audit::line(&p, &ex, &r, &e, 5))
        .unwrap_or_default();
    assert!(line.contains("\"path\":\"/users/{id}\""), "{line}");
    assert!(!line.contains("secret"));
    assert!(line.contains("\"kind\":\"meshguard.audit\""));
    assert!(line.contains("\"request_id\":\"rid-1\""));
}
