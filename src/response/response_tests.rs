//! Table tests of the response flow: config in, head and body decisions out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::body::{on_body, over_limit, BodyPlan};
use super::*;
use serde_json::json;

fn compile(v: Value) -> Policy {
    crate::config::compile(v.to_string().as_bytes()).unwrap()
}

fn err(v: Value) -> String {
    match crate::config::compile(v.to_string().as_bytes()) {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

fn users(response: Value) -> Policy {
    compile(json!({
        "routes": [{"name": "users", "match": {"prefix": "/users"}, "response": response}]
    }))
}

fn site<'a>(p: &'a Policy, claims: Option<&'a Map<String, Value>>) -> Site<'a> {
    let route = p.route(0);
    Site {
        policy: p,
        route,
        mode: route.map_or(p.mode, |r| r.mode),
        own_reply: false,
        preflight: false,
        origin: None,
        claims,
        request_id: Some("req-1"),
        method: "GET",
    }
}

fn hdrs(list: &[(&str, &str)]) -> crate::host::HeaderPairs {
    list.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

const JSON: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("content-length", "64"),
];

fn read(out: &HeadOutcome) -> BodyRead {
    match &out.plan {
        HeadPlan::ReadBody(r) => r.clone(),
        other => panic!("expected a body read, got {other:?}"),
    }
}

#[test]
fn route_without_response_rules_wants_nothing() {
    let p = compile(json!({"routes": [{"name": "a", "match": {"prefix": "/"}}]}));
    assert!(!wanted(&p, p.route(0)));
    assert!(!wanted(&p, None));
}

#[test]
fn strip_route_reads_json_bodies_and_drops_content_length() {
    let p = users(json!({"strip_fields": ["/password", "/items/*/card"]}));
    assert!(wanted(&p, p.route(0)));
    let s = site(&p, None);
    let out = on_head(&s, 200, &hdrs(JSON), false);
    let r = read(&out);
    assert_eq!(r.strip, vec![0, 1]);
    assert!(!r.hold);
    assert!(out
        .edits
        .contains(&HeaderEdit::Remove("content-length".into())));
    let body = br#"{"id":1,"password":"hunter2","items":[{"card":"4111","n":1}]}"#;
    let b = on_body(&s, &r, body);
    assert_eq!(
        b.plan,
        BodyPlan::Rewrite(br#"{"id":1,"items":[{"n":1}]}"#.to_vec())
    );
    assert_eq!(b.events[0].code(), "fields_stripped");
    assert_eq!(b.events[0].decision(), "modify");
    // Other content types, HEAD and bodiless answers are left alone.
    let html = hdrs(&[("content-type", "text/html")]);
    assert_eq!(on_head(&s, 200, &html, false).plan, HeadPlan::Pass);
    assert_eq!(on_head(&s, 200, &hdrs(JSON), true).plan, HeadPlan::Pass);
    // +json types, legacy JSON types and a missing content type are checked.
    for legacy in [
        "text/json",
        "Application/JSON; charset=UTF-8",
        "application/x-json",
    ] {
        let h = hdrs(&[("content-type", legacy)]);
        assert!(
            matches!(on_head(&s, 200, &h, false).plan, HeadPlan::ReadBody(_)),
            "{legacy}"
        );
    }
    let vnd = hdrs(&[("content-type", "application/vnd.api+json; charset=utf-8")]);
    assert!(matches!(
        on_head(&s, 200, &vnd, false).plan,
        HeadPlan::ReadBody(_)
    ));
    assert!(matches!(
        on_head(&s, 500, &Vec::new(), false).plan,
        HeadPlan::ReadBody(_)
    ));
}

#[test]
fn malformed_json_on_a_strip_route_is_refused_not_passed() {
    let p = users(json!({"strip_fields": ["/password"]}));
    let s = site(&p, None);
    let r = read(&on_head(&s, 200, &hdrs(JSON), false));
    let b = on_body(&s, &r, b"{\"password\": \"x\"");
    match b.plan {
        BodyPlan::Replace(reply) => assert_eq!(reply.status, 502),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.events[0].code(), "response_unreadable");
}

#[test]
fn compressed_body_is_refused_at_the_headers() {
    let p = users(json!({"strip_fields": ["/password"]}));
    let s = site(&p, None);
    let gz = hdrs(&[
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ]);
    let out = on_head(&s, 200, &gz, false);
    match &out.plan {
        HeadPlan::Replace(r) => {
            assert_eq!(r.status, 502);
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["reason"], "response_unreadable");
        }
        other => panic!("{other:?}"),
    }
    // Report mode: the body passes, reported.
    let p = compile(
        json!({"mode": "report", "routes": [{"name": "users", "match": {"prefix": "/users"},
        "response": {"strip_fields": ["/password"]}}]}),
    );
    let s = site(&p, None);
    let out = on_head(&s, 200, &gz, false);
    assert_eq!(out.plan, HeadPlan::Pass);
    assert_eq!(out.events[0].decision(), "report");
}

#[test]
fn identity_visible_fields_are_kept_for_the_right_tokens() {
    let p = users(json!({"strip_fields": [
        "/password",
        {"pointer": "/ssn", "visible_to": {"scopes": ["pii:read"]}}
    ]}));
    let claims = json!({"sub": "u1", "scope": "users:read pii:read"});
    let claims = claims.as_object().unwrap();
    let body = br#"{"ssn":"123","password":"p","name":"n"}"#;
    let s = site(&p, Some(claims));
    let r = read(&on_head(&s, 200, &hdrs(JSON), false));
    assert_eq!(
        on_body(&s, &r, body).plan,
        BodyPlan::Rewrite(br#"{"ssn":"123","name":"n"}"#.to_vec())
    );
    let s = site(&p, None);
    let r = read(&on_head(&s, 200, &hdrs(JSON), false));
    assert_eq!(
        on_body(&s, &r, body).plan,
        BodyPlan::Rewrite(br#"{"name":"n"}"#.to_vec())
    );
}

#[test]
fn schema_mismatch_denies_strips_or_reports() {
    let schema = json!({"type": "object", "properties": {"id": {"type": "integer"}},
        "required": ["id"], "additionalProperties": false});
    let extra = br#"{"id":1,"internal_notes":"x"}"#;
    let wrong = br#"{"id":"one"}"#;
    for (mode, body, plan) in [
        ("deny", &extra[..], "replace"),
        ("strip", &extra[..], "rewrite"),
        ("strip", &wrong[..], "replace"),
        ("report", &wrong[..], "unchanged"),
    ] {
        let p = users(json!({"body_schema": schema, "on_schema_mismatch": mode}));
        let s = site(&p, None);
        let r = read(&on_head(&s, 200, &hdrs(JSON), false));
        let b = on_body(&s, &r, body);
        let got = match &b.plan {
            BodyPlan::Replace(reply) => {
                assert_eq!(reply.status, 502);
                "replace"
            }
            BodyPlan::Rewrite(new) => {
                assert_eq!(new, br#"{"id":1}"#);
                "rewrite"
            }
            BodyPlan::Unchanged => "unchanged",
        };
        assert_eq!(got, plan, "{mode}");
    }
    // Schemas apply to 2xx answers only.
    let p = users(json!({"body_schema": schema}));
    let s = site(&p, None);
    assert_eq!(on_head(&s, 404, &hdrs(JSON), false).plan, HeadPlan::Pass);
}

#[test]
fn long_arrays_and_large_bodies_are_refused() {
    let p = users(json!({"max_array_len": 3, "max_body_bytes": 100}));
    let s = site(&p, None);
    let r = read(&on_head(
        &s,
        200,
        &hdrs(&[("content-type", "application/json")]),
        false,
    ));
    let b = on_body(&s, &r, br#"{"items":[1,2,3,4]}"#);
    assert_eq!(b.events[0].code(), "response_array_too_long");
    assert!(matches!(b.plan, BodyPlan::Replace(_)));
    assert_eq!(
        on_body(&s, &r, br#"{"items":[1,2,3]}"#).plan,
        BodyPlan::Unchanged
    );
    let big = hdrs(&[
        ("content-type", "application/json"),
        ("content-length", "101"),
    ]);
    let out = on_head(&s, 200, &big, false);
    assert!(matches!(out.plan, HeadPlan::Replace(_)));
    assert_eq!(out.events[0].code(), "response_too_large");
    let (reply, event) = over_limit(&s, &r);
    assert_eq!(reply.map(|r| r.status), Some(502));
    assert_eq!(event.code(), "response_too_large");
}

#[test]
fn upstream_5xx_is_masked_with_its_status_route_override_wins() {
    let p = compile(json!({"mask_upstream_errors": true, "routes": [
        {"name": "a", "match": {"prefix": "/a"}},
        {"name": "b", "match": {"prefix": "/b"}, "mask_upstream_errors": false}
    ]}));
    let s = site(&p, None);
    let trace = hdrs(&[("content-type", "text/plain")]);
    match on_head(&s, 503, &trace, false).plan {
        HeadPlan::Replace(r) => {
            assert_eq!(r.status, 503);
            assert!(r
                .headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/problem+json"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(on_head(&s, 404, &trace, false).plan, HeadPlan::Pass);
    let mut own = s;
    own.own_reply = true;
    assert_eq!(on_head(&own, 503, &trace, false).plan, HeadPlan::Pass);
    let mut b = s;
    b.route = p.route(1);
    assert_eq!(on_head(&b, 500, &trace, false).plan, HeadPlan::Pass);
}

#[test]
fn security_headers_defaults_and_lists() {
    let p = compile(json!({"security_headers": {
        "set": {"referrer-policy": "no-referrer"}, "remove": ["x-debug"],
        "strict_transport_security": {"max_age_seconds": 63072000, "include_subdomains": true}},
        "routes": []}));
    let s = site(&p, None);
    let up = hdrs(&[
        ("x-powered-by", "Express"),
        ("x-debug", "1"),
        ("content-type", "application/problem+json"),
    ]);
    let out = on_head(&s, 200, &up, false);
    for e in [
        HeaderEdit::Remove("x-powered-by".into()),
        HeaderEdit::Remove("x-debug".into()),
        HeaderEdit::Set("x-content-type-options".into(), "nosniff".into()),
        HeaderEdit::Set("referrer-policy".into(), "no-referrer".into()),
        HeaderEdit::Set(
            "strict-transport-security".into(),
            "max-age=63072000; includeSubDomains".into(),
        ),
        HeaderEdit::Set("cache-control".into(), "no-store".into()),
    ] {
        assert!(out.edits.contains(&e), "{e:?} in {:?}", out.edits);
    }
}

fn preflight_facts(origin: &str, method: &str, headers: Option<&str>) -> RequestFacts {
    let mut h = vec![
        ("origin".to_string(), origin.to_string()),
        (
            "access-control-request-method".to_string(),
            method.to_string(),
        ),
    ];
    if let Some(x) = headers {
        h.push(("access-control-request-headers".into(), x.into()));
    }
    RequestFacts {
        method: "OPTIONS".into(),
        path: "/api/orders".into(),
        authority: "api.example".into(),
        headers: h,
        opaque: Vec::new(),
        end_of_stream: true,
    }
}

#[test]
fn preflights_are_answered_from_the_route_the_actual_request_takes() {
    let p = compile(json!({
    "cors": {"allow_origins": ["https://app.example.com"], "allow_methods": ["GET", "POST"],
             "allow_headers": ["authorization", "content-type"], "allow_credentials": true},
    "routes": [
        {"name": "orders", "match": {"path": "/api/orders", "methods": ["POST"]}},
        {"name": "ro", "match": {"path": "/api/orders", "methods": ["GET"]}, "mode": "report",
         "cors": {"allow_origins": ["*.example.org"]}}
    ]}));
    let ok = preflight(
        &p,
        &preflight_facts("https://app.example.com", "POST", Some("authorization")),
    )
    .unwrap();
    assert_eq!(ok.route, Some(0));
    assert_eq!(ok.reply.as_ref().map(|r| r.status), Some(204));
    let bad = preflight(&p, &preflight_facts("https://evil.test", "POST", None)).unwrap();
    let reply = bad.reply.unwrap();
    assert_eq!(reply.status, 403);
    assert!(!reply
        .headers
        .iter()
        .any(|(k, _)| k.starts_with("access-control-")));
    // Report-mode route: a refused preflight goes on to the normal checks.
    let rep = preflight(&p, &preflight_facts("https://evil.test", "GET", None)).unwrap();
    assert!(rep.reply.is_none());
    assert_eq!(rep.event.decision(), "report");
    // Not a preflight: plain OPTIONS, or no Origin.
    let mut plain = preflight_facts("https://app.example.com", "POST", None);
    plain.headers.truncate(1);
    assert!(preflight(&p, &plain).is_none());
}

#[test]
fn bad_config_is_refused_with_its_path() {
    let cases = [
        (
            json!({"strip_fields": ["password"]}),
            "routes[0].response.strip_fields[0]: a field pointer starts with '/'",
        ),
        (
            json!({"strip_fields": ["/a", {"pointer": "/b~2"}]}),
            "routes[0].response.strip_fields[1].pointer: '~'",
        ),
        (
            json!({"strip_fields": [{"pointer": "/b", "visible_to": {}}]}),
            "routes[0].response.strip_fields[0].visible_to: name at least one",
        ),
        (
            json!({"body_schema": {"type": "strin"}}),
            "routes[0].response.body_schema.type: invalid schema",
        ),
        (
            json!({"on_schema_mismatch": "strip"}),
            "routes[0].response.on_schema_mismatch: needs a body_schema",
        ),
        (
            json!({"max_body_bytes": 0}),
            "routes[0].response.max_body_bytes",
        ),
        (
            json!({"max_array_len": 0}),
            "routes[0].response.max_array_len",
        ),
    ];
    for (response, want) in cases {
        let e = err(
            json!({"routes": [{"name": "u", "match": {"prefix": "/u"}, "response": response}]}),
        );
        assert!(e.starts_with(want), "{e}\nwanted {want}");
    }
    let e =
        err(json!({"cors": {"allow_origins": ["https://a.test", "*"], "allow_credentials": true}}));
    assert!(
        e.starts_with("cors.allow_origins[1]: \"*\" cannot be combined"),
        "{e}"
    );
    let e = err(json!({"routes": [{"name": "u", "match": {"prefix": "/u"},
        "cors": {"allow_origins": ["app.example.com"]}}]}));
    assert!(e.starts_with("routes[0].cors.allow_origins[0]"), "{e}");
    let e = err(json!({"security_headers": {"set": {"content-length": "1"}}}));
    assert!(e.starts_with("security_headers.set.content-length"), "{e}");
    let e = err(json!({"security_headers": {"strict_transport_security": {"max_age_seconds": 0}}}));
    assert!(
        e.starts_with("security_headers.strict_transport_security.max_age_seconds"),
        "{e}"
    );
    let e = err(json!({"cors": {"allow_origins": ["*"], "max_age_seconds": 100000}}));
    assert!(e.starts_with("cors.max_age_seconds"), "{e}");
}
