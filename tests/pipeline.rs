//! The decision pipeline end to end in the core: routing, unmatched policy, report mode, events.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod common;

use meshguard::config::compile;
use meshguard::error::Reason;

use meshguard::host::Properties;
use meshguard::pipeline::{Decision, Exchange, RequestFacts, Verdict};
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
        end_of_stream: true,
        ..Default::default()
    }
}

fn decide(p: &Policy, r: &RequestFacts) -> (Verdict, Exchange) {
    common::headers_phase(p, r, &NoProps)
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
                .contains(&("allow".to_string(), "GET, HEAD".to_string())));
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

mod peers {
    use super::*;
    use std::collections::HashMap;

    struct Props(HashMap<String, Vec<u8>>);
    impl Properties for Props {
        fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.0.get(&path.join(".")).cloned()
        }
    }

    fn peer(id: Option<&str>) -> Props {
        let mut m = HashMap::new();
        m.insert("connection.mtls".to_string(), vec![u8::from(id.is_some())]);
        if let Some(id) = id {
            m.insert(
                "connection.uri_san_peer_certificate".to_string(),
                id.as_bytes().to_vec(),
            );
        }
        Props(m)
    }

    fn run(p: &Policy, r: &RequestFacts, props: &Props) -> (Verdict, Exchange) {
        crate::common::headers_phase(p, r, props)
    }

    const CFG: &str = r#"{"forward_identity":{"peer_header":"x-peer-id"},"routes":[
      {"name":"orders","match":{"prefix":"/orders"},
       "peers":{"require_mtls":true,"allow":["spiffe://cluster.local/ns/shop/*"],"deny":["spiffe://cluster.local/ns/shop/sa/legacy"]}},
      {"name":"open","match":{"prefix":"/open"}}]}"#;

    #[test]
    fn allowed_workload_passes_and_is_forwarded() {
        let p = policy(CFG);
        let (v, mut ex) = run(
            &p,
            &req("GET", "/orders/1"),
            &peer(Some("spiffe://cluster.local/ns/shop/sa/frontend")),
        );
        assert_eq!(v, Verdict::Allow);
        let ops = ex.take_header_ops();
        assert!(ops.contains(&meshguard::pipeline::HeaderOp::Remove("x-peer-id".into())));
        assert!(ops.contains(&meshguard::pipeline::HeaderOp::Set(
            "x-peer-id".into(),
            "spiffe://cluster.local/ns/shop/sa/frontend".into()
        )));
        assert_eq!(
            ex.principal().peer.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/frontend")
        );
    }

    #[test]
    fn plaintext_peer_is_refused_where_mtls_is_required() {
        let p = policy(CFG);
        let (v, _) = run(&p, &req("GET", "/orders/1"), &peer(None));
        assert_eq!(reason_of(&v), Some(Reason::PeerNotMtls));
    }

    #[test]
    fn denied_and_foreign_workloads_are_403() {
        let p = policy(CFG);
        let (v, _) = run(
            &p,
            &req("GET", "/orders/1"),
            &peer(Some("spiffe://cluster.local/ns/shop/sa/legacy")),
        );
        assert_eq!(reason_of(&v), Some(Reason::PeerNotAllowed));
        let (v, _) = run(
            &p,
            &req("GET", "/orders/1"),
            &peer(Some("spiffe://evil.example/ns/shop/sa/frontend")),
        );
        assert_eq!(reason_of(&v), Some(Reason::PeerNotAllowed));
        let (v, _) = run(&p, &req("GET", "/orders/1"), &peer(Some("https://x")));
        assert_eq!(reason_of(&v), Some(Reason::PeerIdentityMissing));
    }

    #[test]
    fn istio_source_reads_the_filter_state_attribute_map() {
        let p = policy(
            r#"{"routes":[{"name":"wp","match":{"prefix":"/"},
              "peers":{"source":"istio_peer_principal","allow":["spiffe://cluster.local/ns/shop/sa/frontend"]}}]}"#,
        );
        let state = |key: &str| {
            let mut m = HashMap::new();
            m.insert(
                key.to_string(),
                b"spiffe://cluster.local/ns/shop/sa/frontend".to_vec(),
            );
            Props(m)
        };
        let (v, _) = run(
            &p,
            &req("GET", "/x"),
            &state("filter_state.io.istio.peer_principal"),
        );
        assert_eq!(v, Verdict::Allow);
        // The bare key is not where Envoy exposes another filter's state: no identity there.
        let (v, _) = run(&p, &req("GET", "/x"), &state("io.istio.peer_principal"));
        assert_eq!(reason_of(&v), Some(Reason::PeerNotMtls));
    }

    #[test]
    fn forwarded_header_is_stripped_even_without_a_peer() {
        let p = policy(CFG);
        let (v, mut ex) = run(&p, &req("GET", "/open/x"), &peer(None));
        assert_eq!(v, Verdict::Allow);
        assert_eq!(
            ex.take_header_ops(),
            vec![meshguard::pipeline::HeaderOp::Remove("x-peer-id".into())]
        );
    }
}

mod jwt {
    //! The JWT stage as the adapter drives it: what it records for counters and audit lines.
    use super::*;
    use crate::common::alice_token;
    use meshguard::authn::config::ProviderId;
    use meshguard::pipeline::AuthnMetric;

    fn config() -> String {
        let jwks = include_str!("fixtures/jwt/jwks.json");
        serde_json::json!({
            "jwt_providers": {
                "main": { "issuer": "https://issuer.example",
                          "local_jwks": { "inline_string": jwks } },
                "other": { "issuer": "https://other.example",
                           "local_jwks": { "inline_string": jwks } }
            },
            "routes": [
                { "name": "one", "match": { "prefix": "/one/" },
                  "jwt": { "providers": ["main"], "scopes": ["users:read"] } },
                { "name": "two", "match": { "prefix": "/two/" },
                  "jwt": { "providers": ["main", "other"] } }
            ]
        })
        .to_string()
    }

    #[test]
    fn missing_token_on_a_one_provider_route_is_counted_for_that_provider() {
        let p = policy(&config());
        let (v, mut ex) = decide(&p, &req("GET", "/one/x"));
        assert_eq!(reason_of(&v), Some(Reason::JwtMissing));
        assert_eq!(
            ex.take_authn(),
            Some((Some(ProviderId(0)), AuthnMetric::Denied(Reason::JwtMissing)))
        );
        // With several providers no single one is to blame.
        let (v, mut ex) = decide(&p, &req("GET", "/two/x"));
        assert_eq!(reason_of(&v), Some(Reason::JwtMissing));
        assert_eq!(
            ex.take_authn(),
            Some((None, AuthnMetric::Denied(Reason::JwtMissing)))
        );
    }

    #[test]
    fn scope_denial_audits_the_verified_issuer_and_subject_only() {
        let p = policy(&config());
        let mut r = req("GET", "/one/x");
        r.headers
            .push(("authorization".into(), format!("Bearer {}", alice_token())));
        let (v, ex) = decide(&p, &r);
        assert_eq!(reason_of(&v), Some(Reason::JwtInsufficientScope));
        let who = ex.principal();
        assert_eq!(who.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(who.subject.as_deref(), Some("alice"));
        assert!(
            who.token.is_none(),
            "claims of a refused token reach no later stage"
        );
    }
}
