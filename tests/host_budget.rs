//! The host-call budget per request kind (docs/cost.md), asserted on the core's stream flow
//! through a counting fake host. A host call that returns data costs about 0.8 us under V8, one
//! that returns nothing about 0.07 us (FACTS.md): a change that adds a read to a common request
//! kind shows up here first.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "support/host.rs"]
mod support;

use common::{alice_token, NOW};
use meshguard::host::fake::FakeHost;
use meshguard::host::{BufferKind, Counted, HostCalls, MapKind};
use meshguard::pipeline::{Action, Flow, Shared};
use serde_json::{json, Value};
use std::rc::Rc;
use support::{pairs, JWKS};

/// One policy with a route per request kind.
fn policy() -> Value {
    json!({
        "jwt_providers": { "main": { "issuer": "https://issuer.example",
            "local_jwks": { "inline_string": JWKS },
            "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }] } },
        "routes": [
            { "name": "open", "match": { "prefix": "/open" } },
            { "name": "jwt", "match": { "prefix": "/jwt" },
              "jwt": { "providers": ["main"] } },
            { "name": "body", "match": { "prefix": "/body" },
              "request": { "body_schema": { "type": "object", "required": ["qty"] } } },
            { "name": "resp", "match": { "prefix": "/resp" },
              "response": { "strip_fields": ["/password"] } },
            { "name": "login", "match": { "prefix": "/login" },
              "lockout": { "keys": ["header:x-device"], "failures": 5, "window_seconds": 60,
                           "block_seconds": 60 } },
            { "name": "limited", "match": { "prefix": "/limited" },
              "jwt": { "providers": ["main"] },
              "rate_limits": [{ "name": "per-user", "key": "jwt:sub", "requests": 100,
                                "per_seconds": 60 }],
              "lockout": { "keys": ["jwt:sub"], "failures": 5, "window_seconds": 60,
                           "block_seconds": 60 } }
        ]
    })
}

/// Runs one request (and its answer) through a fresh stream; returns the host calls it made.
fn run(method: &str, path: &str, extra: &[(&str, &str)], body: Option<&[u8]>) -> HostCalls {
    let mut list = vec![
        (":method", method),
        (":path", path),
        (":authority", "api.example"),
    ];
    list.extend_from_slice(extra);
    let mut fake = FakeHost::with_request_headers(pairs(&list));
    fake.clock.set_ms(NOW * 1000);
    fake.maps.insert(
        MapKind::ResponseHeaders,
        pairs(&[(":status", "200"), ("content-type", "application/json")]),
    );
    fake.buffers.insert(
        BufferKind::ResponseBody,
        br#"{"id":1,"password":"x"}"#.to_vec(),
    );
    if let Some(b) = body {
        fake.buffers.insert(BufferKind::RequestBody, b.to_vec());
    }
    let host = Counted::new(fake);
    let policy = meshguard::config::compile(policy().to_string().as_bytes()).unwrap();
    let shared = Rc::new(Shared::new(&host, policy));
    // A reused token: the first request verifies it and fills this worker's cache.
    let mut warm = Flow::new(Rc::clone(&shared));
    if path.starts_with("/jwt") || path.starts_with("/limited") {
        assert_eq!(warm.on_request_headers(&host, true), Action::Continue);
    }
    let _ = host.take_calls();
    let mut flow = Flow::new(shared);
    let mut action = flow.on_request_headers(&host, body.is_none());
    if let (Action::Continue, Some(b)) = (action, body) {
        action = flow.on_request_body(&host, b.len(), true);
    }
    if action == Action::Continue
        && (flow.on_response_headers(&host, false) == Action::Pause || path.starts_with("/resp"))
    {
        let _ = flow.on_response_body(&host, 23, true);
    }
    host.take_calls()
}

/// The budget: (request kind, calls that return data, calls that act, counter increments).
const BUDGET: &[(&str, u32, u32, u32)] = &[
    ("unmatched (404)", 2, 2, 2),
    ("open route", 1, 0, 1),
    ("JWT route, cached token", 2, 2, 2),
    ("body route", 2, 0, 1),
    ("response-rules route", 3, 3, 2),
];

#[test]
fn host_calls_per_request_kind_stay_within_the_budget() {
    let bearer = format!("Bearer {}", alice_token());
    let measured = [
        run("GET", "/nowhere", &[], None),
        run("GET", "/open/x", &[], None),
        run("GET", "/jwt/x", &[("authorization", &bearer)], None),
        run(
            "POST",
            "/body",
            &[("content-type", "application/json")],
            Some(br#"{"qty":1}"#),
        ),
        run("GET", "/resp/1", &[], None),
    ];
    let mut table = String::new();
    for ((kind, _, _, _), calls) in BUDGET.iter().zip(measured.iter()) {
        table.push_str(&format!(
            "| {kind} | {} | {} | {} |  {calls:?}\n",
            calls.total(),
            calls.writes(),
            calls.metric
        ));
    }
    println!("{table}");
    for ((kind, reads, writes, metrics), calls) in BUDGET.iter().zip(measured.iter()) {
        assert_eq!(
            (calls.total(), calls.writes(), calls.metric),
            (*reads, *writes, *metrics),
            "{kind}: {calls:?}\n{table}"
        );
    }
}

#[test]
fn nothing_reads_the_clock_or_a_property_when_no_check_needs_it() {
    let open = run("GET", "/open/x", &[], None);
    assert_eq!((open.clock, open.property, open.shared_data), (0, 0, 0));
    let body = run(
        "POST",
        "/body",
        &[("content-type", "application/json")],
        Some(br#"{"qty":1}"#),
    );
    assert_eq!((body.clock, body.property, body.map_value), (0, 0, 0));
}

#[test]
fn one_callback_reads_the_clock_once_whatever_its_checks() {
    // A token, a rate limit and a lockout, all keyed on `jwt:sub`: one clock read (three before
    // the clock was read once per callback). The lockout check runs before the token check, so
    // its `jwt:sub` key is missing there and falls back to the client address: one property.
    let bearer = format!("Bearer {}", alice_token());
    let calls = run("GET", "/limited/x", &[("authorization", &bearer)], None);
    assert_eq!((calls.clock, calls.property), (1, 1), "{calls:?}");
}

#[test]
fn lockout_keyed_on_a_header_never_reads_the_connection_address() {
    // The address is a host lookup (10-15 us under V8); a key whose parts are all present does
    // not need it (it used to be read on every request of a lockout route).
    let calls = run("GET", "/login", &[("x-device", "phone-1")], None);
    assert_eq!(calls.property, 0, "{calls:?}");
}
