//! Host values and malformed input, as properties: whatever bytes the host hands over (header
//! names and values, paths, methods, serialised maps), the core neither panics nor lets a
//! request through that it refused before a header name was respelled the way upstream
//! frameworks read it (letter case, `_` for `-`). And every spelling of an injected header is
//! removed from a request that goes on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::alice_token;
use meshguard::config::compile;
use meshguard::error::Reason;
use meshguard::host::fake::FakeHost;
use meshguard::host::Properties;
use meshguard::host::{decode_pairs, encode_pairs, Counted, HeaderPairs, HostReads, MapKind};
use meshguard::http::name::fold;
use meshguard::inbound::facts_from_pairs;
use meshguard::pipeline::{HeaderOp, RequestFacts, Verdict};
use meshguard::policy::Policy;
use proptest::prelude::*;

struct NoProps;
impl Properties for NoProps {
    fn get(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

/// Routes whose checks read headers: a token, header rules, a header-keyed rate limit; and
/// injected headers (`claim_to_headers`, `forward_payload_header`, `forward_identity`).
fn policy() -> Policy {
    let jwks = include_str!("fixtures/jwt/jwks.json");
    let json = serde_json::json!({
        "jwt_providers": {
            "main": { "issuer": "https://issuer.example",
                      "local_jwks": { "inline_string": jwks },
                      "forward_payload_header": "x-jwt-payload",
                      "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }] }
        },
        "forward_identity": { "peer_header": "x-peer-spiffe-id", "subject_header": "x-token-subject" },
        "routes": [
            { "name": "admin", "match": { "prefix": "/admin" }, "jwt": { "providers": ["main"] } },
            { "name": "keyed", "match": { "prefix": "/keyed" },
              "request": { "headers": [
                  { "name": "x-api-key", "required": true, "pattern": "^[a-z0-9]{4,16}$" },
                  { "name": "x-debug", "forbidden": true } ] },
              "rate_limits": [{ "key": "header:x-api-key", "requests": 1000, "per_seconds": 1 }] },
            { "name": "open", "match": { "prefix": "/" } }
        ]
    });
    compile(json.to_string().as_bytes()).unwrap()
}

fn decide(p: &Policy, facts: &RequestFacts) -> (Verdict, Vec<HeaderOp>) {
    let (v, mut ex) = common::headers_phase(p, facts, &NoProps);
    (v, ex.take_header_ops())
}

/// [`decide`] for a complete request given as method, path and header pairs.
fn decide_request(
    p: &Policy,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
) -> (Verdict, Vec<HeaderOp>) {
    decide(p, &facts_from_pairs(request(method, path, headers), true))
}

/// A request to `/keyed` with a valid API key and the header `extra`.
fn keyed_with(p: &Policy, extra: (&str, &[u8])) -> Verdict {
    decide_request(p, "GET", "/keyed", &[("x-api-key", b"abcd"), extra]).0
}

/// `v` refuses the request as `HeaderInvalid` with this detail.
fn assert_header_invalid(v: Verdict, detail: &str) {
    let Verdict::Deny(d) = v else { panic!("{v:?}") };
    assert_eq!(d.reason, Reason::HeaderInvalid);
    assert_eq!(d.detail.as_deref(), Some(detail));
}

fn passes(v: &Verdict) -> bool {
    matches!(v, Verdict::Allow | Verdict::NeedBody)
}

fn request(method: &str, path: &str, headers: &[(&str, &[u8])]) -> HeaderPairs {
    let mut pairs: HeaderPairs = vec![
        (b":method".to_vec(), method.as_bytes().to_vec()),
        (b":path".to_vec(), path.as_bytes().to_vec()),
        (b":authority".to_vec(), b"api.example".to_vec()),
    ];
    pairs.extend(
        headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec())),
    );
    pairs
}

// ------------------------------------------------------------------------------------------
// Named cases

#[test]
fn latin1_value_of_an_unread_header_passes_untouched() {
    let p = policy();
    let (v, ops) = decide_request(&p, "GET", "/files", &[("user-agent", b"caf\xe9")]);
    assert_eq!(v, Verdict::Allow);
    assert!(!ops
        .iter()
        .any(|op| matches!(op, HeaderOp::Remove(n) if n == "user-agent")));
}

#[test]
fn latin1_value_of_a_header_a_check_reads_is_400_not_absent() {
    let p = policy();
    // Absent x-debug passes; a Latin-1 x-debug must not read as absent.
    let v = keyed_with(&p, ("x-debug", b"\xff"));
    assert_header_invalid(v, "header \"x-debug\" is not valid text");
    // A token header that is not text is refused, not treated as missing.
    let (v, _) = decide_request(&p, "GET", "/admin", &[("authorization", b"Bearer \xe9")]);
    assert!(matches!(v, Verdict::Deny(d) if d.reason == Reason::HeaderInvalid));
}

#[test]
fn underscore_spelling_of_a_read_header_is_refused() {
    let p = policy();
    let v = keyed_with(&p, ("x_debug", b"1"));
    assert_header_invalid(v, "header \"x_debug\" is ambiguous with \"x-debug\"");
}

#[test]
fn forged_identity_headers_in_any_spelling_are_removed() {
    let p = policy();
    let token = format!("Bearer {}", alice_token());
    for path in ["/admin/x", "/open"] {
        let (v, ops) = decide_request(
            &p,
            "GET",
            path,
            &[
                ("authorization", token.as_bytes()),
                ("x_user", b"admin"),
                ("X_User", b"admin"),
                ("x_jwt_payload", b"e30"),
                ("x_peer_spiffe_id", b"spiffe://evil/x"),
                ("x-peer_spiffe-id", b"spiffe://evil/y"),
                ("x_token_subject", b"root"),
                ("x_user_agent", b"keep me"),
            ],
        );
        assert_eq!(v, Verdict::Allow, "{path}");
        let removed = |n: &str| {
            ops.iter()
                .any(|op| matches!(op, HeaderOp::Remove(r) if r == n))
        };
        for forged in [
            "x_user",
            "x_jwt_payload",
            "x_peer_spiffe_id",
            "x-peer_spiffe-id",
            "x_token_subject",
        ] {
            assert!(removed(forged), "{path}: {forged} not removed: {ops:?}");
        }
        assert!(!removed("x_user_agent"));
    }
}

#[test]
fn configured_underscore_names_are_matched_from_the_dash_side_too() {
    let jwks = include_str!("fixtures/jwt/jwks.json");
    let json = serde_json::json!({
        "jwt_providers": { "main": { "issuer": "https://issuer.example",
            "local_jwks": { "inline_string": jwks },
            "claim_to_headers": [{ "claim_name": "sub", "header_name": "x_user_id" }] } },
        "routes": [{ "name": "r", "match": { "prefix": "/" },
            "request": { "headers": [{ "name": "x_tenant", "forbidden": true }] } }]
    });
    let p = compile(json.to_string().as_bytes()).unwrap();
    let facts = facts_from_pairs(request("GET", "/a", &[("x-tenant", b"evil")]), true);
    let Verdict::Deny(d) = decide(&p, &facts).0 else {
        panic!()
    };
    assert_eq!(
        d.detail.as_deref(),
        Some("header \"x-tenant\" is ambiguous with \"x_tenant\"")
    );
    let facts = facts_from_pairs(request("GET", "/a", &[("x-user-id", b"admin")]), true);
    let (v, ops) = decide(&p, &facts);
    assert_eq!(v, Verdict::Allow);
    assert!(
        ops.iter()
            .any(|op| matches!(op, HeaderOp::Remove(n) if n == "x-user-id")),
        "{ops:?}"
    );
}

#[test]
fn forged_identity_in_trailers_is_found() {
    let p = policy();
    let trailers: HeaderPairs = vec![
        (b"x-user".to_vec(), b"admin".to_vec()),
        (b"x_peer_spiffe_id".to_vec(), b"spiffe://evil".to_vec()),
        (b"grpc-status".to_vec(), b"0".to_vec()),
    ];
    assert_eq!(
        meshguard::inbound::injected_in(&p, &trailers),
        vec![b"x-user".to_vec(), b"x_peer_spiffe_id".to_vec()]
    );
}

#[test]
fn snapshot_through_a_counted_fake_host_costs_one_call() {
    let host = Counted::new(FakeHost::with_request_headers(request(
        "GET",
        "/files",
        &[("user-agent", b"\x80\xff")],
    )));
    let facts = facts_from_pairs(host.map(MapKind::RequestHeaders).unwrap(), true);
    assert_eq!(facts.opaque.len(), 1);
    assert_eq!(host.calls().total(), 1);
}

// ------------------------------------------------------------------------------------------
// Properties

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Header names the routes read or meshguard injects, canonical (lower case, dashes).
const READ_OR_INJECTED: [&str; 6] = [
    "authorization",
    "x-api-key",
    "x-debug",
    "x-user",
    "x-jwt-payload",
    "x-peer-spiffe-id",
];

/// Header names as a client could send them to a lenient host.
fn any_name() -> impl Strategy<Value = Vec<u8>> {
    let others = [
        "x-token-subject",
        "content-type",
        "cookie",
        ":path",
        ":authority",
        ":method",
        "host",
        "x_user",
        "X-Api-Key",
    ];
    let names = [READ_OR_INJECTED.as_slice(), &others].concat();
    prop_oneof![
        any_bytes(12),
        prop::sample::select(names).prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn any_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(24),
        Just(b"abcd".to_vec()),
        Just(format!("Bearer {}", alice_token()).into_bytes()),
        Just(b"caf\xe9".to_vec()),
    ]
}

/// Values that mostly pass the checks, so that a respelling has something to slip past.
fn plausible_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(b"abcd".to_vec()),
        2 => Just(format!("Bearer {}", alice_token()).into_bytes()),
        1 => any_bytes(8),
        1 => Just(b"caf\xe9".to_vec()),
    ]
}

fn any_path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(40),
        prop::sample::select(vec![
            "/admin",
            "/admin/x",
            "/keyed",
            "/keyed/a?b=c",
            "/open",
            "/"
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        (
            prop::sample::select(vec!["/admin", "/keyed", "/"]),
            any_bytes(12)
        )
            .prop_map(|(p, t)| {
                let mut v = p.as_bytes().to_vec();
                v.extend(t);
                v
            }),
    ]
}

/// Canonical header names: those the routes read or meshguard injects, and two others.
fn canonical() -> Vec<&'static str> {
    [READ_OR_INJECTED.as_slice(), &["content-type", "x-other"]].concat()
}

#[derive(Debug, Clone)]
enum Respell {
    Upper(usize),
    Underscore,
}

/// `name` as an upstream framework would read it the same: case changed or `-` as `_`.
fn respell(name: &str, how: &Respell) -> String {
    match how {
        Respell::Upper(i) => name
            .char_indices()
            .map(|(j, c)| {
                if j % (i + 1) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        Respell::Underscore => name.replace('-', "_"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_serialised_map_decodes_or_is_malformed(bytes in any_bytes(200)) {
        let _ = decode_pairs(&bytes);
    }

    #[test]
    fn maps_round_trip(pairs in prop::collection::vec((any_bytes(16), any_bytes(32)), 0..8)) {
        prop_assert_eq!(decode_pairs(&encode_pairs(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn any_header_bytes_path_and_method_never_panic(
        method in prop_oneof![any_bytes(8), Just(b"GET".to_vec()), Just(b"POST".to_vec())],
        path in any_path(),
        headers in prop::collection::vec((any_name(), any_value()), 0..10),
        eos in any::<bool>(),
    ) {
        let p = policy();
        let mut pairs: HeaderPairs = vec![
            (b":method".to_vec(), method),
            (b":path".to_vec(), path),
            (b":authority".to_vec(), b"api.example".to_vec()),
        ];
        pairs.extend(headers);
        let facts = facts_from_pairs(pairs, eos);
        let (v, ops) = decide(&p, &facts);
        if passes(&v) {
            // Whatever went through, no client copy of an injected header survives.
            let injected = ["x-user", "x-jwt-payload", "x-peer-spiffe-id", "x-token-subject"];
            let names = facts.headers.iter().map(|(n, _)| n.as_bytes())
                .chain(facts.opaque.iter().map(|(n, _)| n.as_slice()));
            for n in names {
                if injected.iter().any(|i| fold(i.as_bytes()) == fold(n)) {
                    let text = String::from_utf8(n.to_vec()).unwrap();
                    prop_assert!(
                        ops.iter().any(|op| matches!(op, HeaderOp::Remove(r) if *r == text)),
                        "client copy {:?} not removed: {:?}", text, ops
                    );
                }
            }
        }
    }

}

proptest! {
    // Enough cases to find a respelled read header (this caught the check being switched off).
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn respelling_a_header_name_never_turns_a_denial_into_an_allow(
        path in prop::sample::select(vec!["/admin/x", "/keyed", "/keyed/y", "/open"]),
        headers in prop::collection::vec(
            (prop::sample::select(canonical()), plausible_value()), 1..5),
        which in any::<prop::sample::Index>(),
        how in prop_oneof![(0usize..3).prop_map(Respell::Upper), Just(Respell::Underscore)],
    ) {
        let p = policy();
        let named: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let before = decide(&p, &facts_from_pairs(request("GET", path, &named), true)).0;
        prop_assume!(!passes(&before));
        if named.is_empty() {
            return Ok(());
        }
        let i = which.index(named.len());
        let new_name = respell(named[i].0, &how);
        let mut mutated: Vec<(&str, &[u8])> = named.clone();
        mutated[i].0 = &new_name;
        let after = decide(&p, &facts_from_pairs(request("GET", path, &mutated), true)).0;
        prop_assert!(!passes(&after), "{:?} -> {:?} turned {:?} into {:?}", named[i].0, new_name, before, after);
    }
}
