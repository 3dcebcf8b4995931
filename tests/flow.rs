//! A stream's flow as the adapter drives it, callback by callback, against a fake host: waiting
//! for keys and resuming, a body that arrives while waiting, buffer caps, unreadable host values,
//! the response side, preflights. What the adapter did before the flow moved into the core.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod common;
#[path = "support/host.rs"]
mod support;

use common::{alice_token, NOW};
use meshguard::authn::config::ProviderId;
use meshguard::authn::keys::FetchOutcome;
use meshguard::host::fake::{Done, FakeHost};
use meshguard::host::{BufferKind, HeaderPairs, MapKind, Via};
use meshguard::pipeline::{Action, Flow, Retry, Shared};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::rc::Rc;
use support::{pairs, JWKS};

/// A host at NOW whose request headers are `list` (pseudo-headers included).
fn host(list: &[(&str, &str)]) -> FakeHost {
    let h = FakeHost::with_request_headers(pairs(list));
    h.clock.set_ms(NOW * 1000);
    h
}

fn shared(host: &FakeHost, config: Value) -> Rc<Shared> {
    let policy = meshguard::config::compile(config.to_string().as_bytes()).unwrap();
    Rc::new(Shared::new(host, policy))
}

/// A route behind a provider whose keys come from a remote JWKS (none fetched yet).
fn remote_jwt(request: Option<Value>) -> Value {
    let mut route = json!({ "name": "orders", "match": { "prefix": "/orders" },
                            "jwt": { "providers": ["main"] } });
    if let Some(r) = request {
        route["request"] = r;
    }
    json!({
        "jwt_providers": { "main": { "issuer": "https://issuer.example",
            "remote_jwks": { "cluster": "idp", "path": "/jwks", "timeout_ms": 1000 },
            "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }] } },
        "routes": [route]
    })
}

/// The keys arrive: the JWKS answer the root context would hand the key manager.
fn keys_arrive(s: &Shared, host: &FakeHost) {
    let mut rt = s.runtime.borrow_mut();
    // What the root's tick does: dispatch the fetches the key manager (or a stage) asks for.
    rt.fetches.clear();
    let _ = rt.keys.poll(NOW * 1000, &Via(host));
    let outcome = FetchOutcome::Response {
        status: 200,
        body: JWKS.as_bytes(),
    };
    rt.keys
        .on_fetch_response(ProviderId(0), outcome, NOW * 1000, &Via(host));
}

fn token_request(path: &str, method: &str) -> FakeHost {
    let bearer = format!("Bearer {}", alice_token());
    host(&[
        (":method", method),
        (":path", path),
        (":authority", "api.example"),
        ("authorization", &bearer),
        ("content-type", "application/json"),
    ])
}

fn set_user(done: &[Done]) -> bool {
    done.iter().any(
        |d| matches!(d, Done::Set(MapKind::RequestHeaders, k, v) if k == "x-user" && v == b"alice"),
    )
}

/// A GET with a valid token, held while the provider's keys are fetched.
fn waiting_get() -> (FakeHost, Rc<Shared>, Flow) {
    let h = token_request("/orders/1", "GET");
    let s = shared(&h, remote_jwt(None));
    let mut flow = Flow::new(Rc::clone(&s));
    assert_eq!(flow.on_request_headers(&h, true), Action::Pause);
    assert!(flow.is_waiting());
    (h, s, flow)
}

#[test]
fn request_waits_for_keys_and_resumes_with_its_headers_set() {
    let (h, s, mut flow) = waiting_get();
    assert_eq!(flow.retry(&h), Retry::Waiting, "no keys yet");
    keys_arrive(&s, &h);
    assert_eq!(flow.retry(&h), Retry::Resume);
    assert!(!flow.is_waiting());
    let done = h.take_done();
    assert!(
        set_user(&done),
        "identity header applied on resume: {done:?}"
    );
    assert!(h.replies().is_empty());
}

#[test]
fn key_wait_ends_with_a_denial_after_the_fetch_timeout() {
    let (h, _, mut flow) = waiting_get();
    h.clock.advance_ms(60_000);
    assert_eq!(flow.retry(&h), Retry::Answered);
    assert_eq!(h.replies().len(), 1);
    assert!(h.replies()[0] >= 401, "{:?}", h.replies());
}

fn body_route() -> Value {
    remote_jwt(Some(
        json!({ "body_schema": { "type": "object", "required": ["qty"] } }),
    ))
}

/// A POST of `body` with a valid token, held while the provider's keys are fetched; its body
/// has not arrived yet.
fn waiting_post(body: &[u8]) -> (FakeHost, Rc<Shared>, Flow) {
    let mut h = token_request("/orders", "POST");
    h.buffers.insert(BufferKind::RequestBody, body.to_vec());
    let s = shared(&h, body_route());
    let mut flow = Flow::new(Rc::clone(&s));
    assert_eq!(flow.on_request_headers(&h, false), Action::Pause);
    (h, s, flow)
}

#[test]
fn body_that_arrived_while_waiting_is_checked_before_resuming() {
    // Invalid body: refused once keys arrive, never resumed unchecked.
    let (h, s, mut flow) = waiting_post(br#"{"item":"x"}"#);
    assert_eq!(flow.on_request_body(&h, 12, true), Action::Pause);
    keys_arrive(&s, &h);
    assert_eq!(flow.retry(&h), Retry::Answered);
    assert_eq!(h.replies(), vec![400]);

    // Valid body, ended by trailers: checked, then resumed.
    let (h, s, mut flow) = waiting_post(br#"{"qty":1}"#);
    assert_eq!(flow.on_request_trailers(&h), Action::Pause);
    keys_arrive(&s, &h);
    assert_eq!(flow.retry(&h), Retry::Resume);
    assert!(h.replies().is_empty());
}

#[test]
fn resumed_request_whose_body_is_still_coming_buffers_it() {
    let (h, s, mut flow) = waiting_post(br#"{"qty":1}"#);
    keys_arrive(&s, &h);
    // Resumed so that the body callbacks arrive; the body is held until it is complete.
    assert_eq!(flow.retry(&h), Retry::Resume);
    assert_eq!(flow.on_request_body(&h, 4, false), Action::Pause);
    assert_eq!(flow.on_request_body(&h, 9, true), Action::Continue);
    assert!(h.replies().is_empty());
}

/// A JSON POST to `/up`, its body still to come.
fn json_post_up() -> FakeHost {
    host(&[
        (":method", "POST"),
        (":path", "/up"),
        (":authority", "api.example"),
        ("content-type", "application/json"),
    ])
}

#[test]
fn buffered_body_over_the_cap_is_413_before_its_end() {
    let config = json!({ "routes": [{ "name": "up", "match": { "path": "/up" },
        "request": { "max_body_bytes": 10, "body_schema": { "type": "object" } } }] });
    let h = json_post_up();
    let mut flow = Flow::new(shared(&h, config));
    assert_eq!(flow.on_request_headers(&h, false), Action::Continue);
    assert_eq!(flow.on_request_body(&h, 8, false), Action::Pause, "held");
    assert_eq!(flow.on_request_body(&h, 11, false), Action::Pause);
    assert_eq!(h.replies(), vec![413]);
}

#[test]
fn streamed_body_over_the_cap_is_413_and_within_it_is_decided_at_its_end() {
    let config = json!({ "routes": [{ "name": "up", "match": { "path": "/up" },
        "request": { "max_body_bytes": 10 } }] });
    let req = [
        (":method", "POST"),
        (":path", "/up"),
        (":authority", "api.example"),
        ("content-type", "text/plain"),
        ("transfer-encoding", "chunked"),
    ];
    let h = host(&req);
    let mut flow = Flow::new(shared(&h, config.clone()));
    assert_eq!(flow.on_request_headers(&h, false), Action::Continue);
    assert_eq!(flow.on_request_body(&h, 6, false), Action::Continue);
    assert_eq!(flow.on_request_body(&h, 6, false), Action::Pause);
    assert_eq!(h.replies(), vec![413]);

    let h = host(&req);
    let mut flow = Flow::new(shared(&h, config));
    assert_eq!(flow.on_request_headers(&h, false), Action::Continue);
    assert_eq!(flow.on_request_body(&h, 6, true), Action::Continue);
    assert!(h.replies().is_empty());
}

#[test]
fn unreadable_request_headers_are_503_and_a_missing_body_is_empty() {
    let config = json!({ "routes": [{ "name": "up", "match": { "path": "/up" },
        "request": { "body_schema": { "type": "object" } } }] });
    let h = FakeHost::default();
    let mut flow = Flow::new(shared(&h, config.clone()));
    assert_eq!(flow.on_request_headers(&h, true), Action::Pause);
    assert_eq!(h.replies(), vec![503]);

    // Headers readable, no body buffer: an empty body, refused by the schema.
    let h = json_post_up();
    let mut flow = Flow::new(shared(&h, config));
    assert_eq!(flow.on_request_headers(&h, false), Action::Continue);
    assert_eq!(flow.on_request_body(&h, 0, true), Action::Pause);
    assert_eq!(h.replies(), vec![400]);
}

#[test]
fn injected_header_names_in_trailers_are_removed() {
    let config = json!({ "forward_identity": { "peer_header": "x-peer-id" },
        "routes": [{ "name": "a", "match": { "prefix": "/" } }] });
    let mut h = host(&[(":method", "POST"), (":path", "/a"), (":authority", "x")]);
    h.maps
        .insert(MapKind::RequestTrailers, pairs(&[("X_Peer_Id", "forged")]));
    let mut flow = Flow::new(shared(&h, config));
    assert_eq!(flow.on_request_headers(&h, false), Action::Continue);
    assert_eq!(flow.on_request_trailers(&h), Action::Continue);
    let done = h.take_done();
    assert!(
        done.contains(&Done::Remove(
            MapKind::RequestTrailers,
            b"X_Peer_Id".to_vec()
        )),
        "{done:?}"
    );
}

fn strip_route() -> Value {
    json!({ "routes": [{ "name": "users", "match": { "prefix": "/users" },
        "response": { "strip_fields": ["/password"] } }] })
}

#[test]
fn response_body_is_held_checked_and_rewritten() {
    let mut h = host(&[
        (":method", "GET"),
        (":path", "/users/1"),
        (":authority", "x"),
    ]);
    let mut flow = Flow::new(shared(&h, strip_route()));
    assert_eq!(flow.on_request_headers(&h, true), Action::Continue);
    h.maps.insert(
        MapKind::ResponseHeaders,
        pairs(&[(":status", "200"), ("content-type", "application/json")]),
    );
    let body = br#"{"id":1,"password":"x"}"#.to_vec();
    let size = body.len();
    h.buffers.insert(BufferKind::ResponseBody, body);
    let _ = flow.on_response_headers(&h, false);
    assert_eq!(flow.on_response_body(&h, 5, false), Action::Pause, "held");
    assert_eq!(flow.on_response_body(&h, size, true), Action::Continue);
    let done = h.take_done();
    assert!(
        done.contains(&Done::Buffer(
            BufferKind::ResponseBody,
            br#"{"id":1}"#.to_vec()
        )),
        "{done:?}"
    );
}

#[test]
fn unreadable_response_headers_reset_the_answer() {
    let h = host(&[
        (":method", "GET"),
        (":path", "/users/1"),
        (":authority", "x"),
    ]);
    let mut flow = Flow::new(shared(&h, strip_route()));
    assert_eq!(flow.on_request_headers(&h, true), Action::Continue);
    assert_eq!(flow.on_response_headers(&h, false), Action::Pause);
    assert!(h.take_done().contains(&Done::Reset));
}

#[test]
fn cors_preflight_is_answered_before_any_request_check() {
    let config = json!({ "cors": { "allow_origins": ["https://app.example"] },
        "jwt_providers": { "main": { "issuer": "https://issuer.example",
            "local_jwks": { "inline_string": JWKS } } },
        "routes": [{ "name": "a", "match": { "prefix": "/a" },
                     "jwt": { "providers": ["main"] } }] });
    let h = host(&[
        (":method", "OPTIONS"),
        (":path", "/a"),
        (":authority", "x"),
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ]);
    let mut flow = Flow::new(shared(&h, config));
    assert_eq!(flow.on_request_headers(&h, true), Action::Pause);
    assert_eq!(h.replies(), vec![204], "no token asked of a preflight");
}

/// A route with every response rule: strip, schema (strip on mismatch), caps, masking, security
/// headers and CORS.
fn every_response_rule() -> Value {
    json!({
        "mask_upstream_errors": true,
        "security_headers": { "remove": ["x-powered-by"] },
        "cors": { "allow_origins": ["https://app.example"] },
        "routes": [{ "name": "users", "match": { "prefix": "/users" },
            "response": { "strip_fields": ["/password", "/items/*/card"],
                          "body_schema": { "type": "object",
                                           "properties": { "id": { "type": "integer" } } },
                          "on_schema_mismatch": "strip",
                          "max_body_bytes": 4096, "max_array_len": 8 } }] })
}

/// Drives one answer through the flow: headers, then the body in `cuts` pieces. Returns whether
/// the stream went on (neither reset nor answered locally) and what was done to the host.
fn answer(config: &Value, headers: HeaderPairs, body: &[u8], cuts: &[usize]) -> (bool, Vec<Done>) {
    let mut h = host(&[
        (":method", "GET"),
        (":path", "/users/1"),
        (":authority", "x"),
        ("origin", "https://app.example"),
    ]);
    let mut flow = Flow::new(shared(&h, config.clone()));
    let _ = flow.on_request_headers(&h, true);
    h.maps.insert(MapKind::ResponseHeaders, headers);
    let _ = flow.on_response_headers(&h, body.is_empty());
    let mut seen = 0;
    let mut ends = cuts.to_vec();
    ends.push(body.len());
    for end in ends {
        let end = end.clamp(seen, body.len());
        h.buffers
            .insert(BufferKind::ResponseBody, body[..end].to_vec());
        let last = end == body.len();
        let _ = flow.on_response_body(&h, end - seen, last);
        seen = end;
        if last {
            break;
        }
    }
    let done = h.take_done();
    let went_on = !done
        .iter()
        .any(|d| matches!(d, Done::Reset | Done::Reply(_)));
    (went_on, done)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Upstream answers are host values too: any header bytes and any body, cut anywhere,
    /// never panic the response side.
    #[test]
    fn arbitrary_answers_never_panic(
        status in prop_oneof![Just(b"200".to_vec()), Just(b"500".to_vec()), bytes(5)],
        content_type in prop_oneof![Just(b"application/json".to_vec()), bytes(24)],
        extra in prop::collection::vec((bytes(12), bytes(24)), 0..4),
        body in prop_oneof![bytes(300), "\\PC{0,200}".prop_map(String::into_bytes)],
        cuts in prop::collection::vec(0usize..300, 0..3),
    ) {
        let mut headers = vec![(b":status".to_vec(), status), (b"content-type".to_vec(), content_type)];
        headers.extend(extra);
        let _ = answer(&every_response_rule(), headers, &body, &cuts);
    }

    /// A configured-away member never reaches the client: whatever the JSON spelling around it
    /// (whitespace, duplicates, nesting, content-type parameters), the answer is rewritten
    /// without it, refused, or reset; it never goes on unchanged.
    #[test]
    fn stripped_member_never_passes_unchanged(
        others in prop::collection::vec(("[a-z]{1,6}", 0i64..1000), 0..5),
        duplicate in any::<bool>(),
        spaced in any::<bool>(),
        content_type in prop_oneof![
            Just("application/json"), Just("application/json; charset=utf-8"),
            Just("Application/JSON"), Just("application/vnd.api+json"),
        ],
        cuts in prop::collection::vec(0usize..200, 0..3),
    ) {
        let sep = if spaced { " : " } else { ":" };
        let mut members: Vec<String> = others
            .iter()
            .filter(|(k, _)| k != "password")
            .map(|(k, v)| format!("\"{k}\"{sep}{v}"))
            .collect();
        members.push(format!("\"password\"{sep}\"hunter2\""));
        if duplicate {
            members.push(format!("\"password\"{sep}\"again\""));
        }
        let body = format!("{{{}}}", members.join(if spaced { " , " } else { "," }));
        let headers = pairs(&[(":status", "200"), ("content-type", content_type)]);
        let (went_on, done) = answer(&strip_route(), headers, body.as_bytes(), &cuts);
        let rewritten: Vec<&Vec<u8>> = done
            .iter()
            .filter_map(|d| match d {
                Done::Buffer(BufferKind::ResponseBody, b) => Some(b),
                _ => None,
            })
            .collect();
        for b in &rewritten {
            prop_assert!(!String::from_utf8_lossy(b).contains("hunter2"), "{body} -> {b:?}");
        }
        prop_assert!(!went_on || !rewritten.is_empty(), "{} passed unchanged", body);
    }
}
