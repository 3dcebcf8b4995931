//! Hardening of the core against requests that upstream frameworks treat as the same request
//! (issue 10): `;` path parameters and letter case in paths, HEAD and method case, letter case
//! and duplicates of JSON member names, lockout key spellings, and forged tokens. Table tests
//! first, then property tests: no input panics, and a denial never turns into an allow under a
//! variant an upstream treats as equal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use meshguard::config::compile;
use meshguard::error::Reason;
use meshguard::host::fake::{FakeClock, MemStore};
use meshguard::host::Properties;
use meshguard::pipeline::{Env, Exchange, RequestFacts, Runtime, Verdict};
use meshguard::policy::Policy;
use meshguard::validate::config::RawRequest;
use meshguard::validate::RequestRules;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::cell::RefCell;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://issuer.example";

/// A connection from 192.0.2.7.
struct Conn;
impl Properties for Conn {
    fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
        (path == ["source", "address"]).then(|| b"192.0.2.7:40000".to_vec())
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 token for `sub`, valid for an hour from NOW.
fn token(sub: &str) -> String {
    let h = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = b64(json!({"iss": ISSUER, "sub": sub, "exp": NOW + 3600})
        .to_string()
        .as_bytes());
    let input = format!("{h}.{p}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

fn policy_json() -> Value {
    json!({
        "jwt_providers": {"main": {"issuer": ISSUER, "algorithms": ["HS256"],
                                   "hmac_secret": {"inline_base64url": b64(SECRET)}}},
        "routes": [
            {"name": "admin", "match": {"prefix": "/admin"}, "jwt": {"providers": ["main"]}},
            {"name": "user", "match": {"methods": ["GET", "PUT"], "path": "/users/{id}"},
             "jwt": {"providers": ["main"]}, "owner": {"param": "id", "claim": "sub"}},
            {"name": "reports", "match": {"methods": ["GET"], "path": "/reports"},
             "jwt": {"providers": ["main"]}},
            {"name": "profile", "match": {"methods": ["POST"], "path": "/profile"},
             "request": {"body_schema": {"type": "object",
                                         "properties": {"name": {"type": "string", "maxLength": 10}}},
                         "read_only_fields": ["/role", "/profile/isAdmin"]}},
            {"name": "transfer", "match": {"methods": ["POST"], "path": "/transfer"},
             "jwt": {"providers": ["main"]}, "owner": {"body_field": "from", "claim": "sub"}},
            {"name": "login", "match": {"methods": ["POST"], "path": "/login"},
             "lockout": {"keys": ["body:username"], "failures": 2, "window_seconds": 60,
                         "block_seconds": 60, "upstream_statuses": [401]}},
            {"name": "limited", "match": {"prefix": "/limited"}, "jwt": {"providers": ["main"]},
             "rate_limits": [{"key": "client_ip", "requests": 2, "per_seconds": 60, "burst": 2}]},
            {"name": "matrix", "match": {"prefix": "/matrix", "allow_semicolon_params": true}},
            {"name": "orders", "match": {"methods": ["GET"], "path": "/orders"},
             "jwt": {"providers": ["main"]}, "owner": {"query": "user_id", "claim": "sub"}},
            {"name": "open", "match": {"prefix": "/"}}
        ]
    })
}

fn policy() -> Policy {
    compile(policy_json().to_string().as_bytes()).unwrap()
}

struct World {
    policy: Policy,
    clock: FakeClock,
    store: MemStore,
    runtime: RefCell<Runtime>,
}

impl World {
    fn new(policy: Policy) -> World {
        let store = MemStore::default();
        let runtime = RefCell::new(Runtime::new(&policy, &store));
        World {
            policy,
            clock: FakeClock::at_secs(NOW),
            store,
            runtime,
        }
    }

    fn env(&self) -> Env<'_> {
        Env {
            clock: &self.clock,
            store: &self.store,
            props: &Conn,
            runtime: &self.runtime,
        }
    }

    /// The verdict of a request; with a body, the body phase too. `None` is an allow.
    fn run(&self, r: &RequestFacts, body: Option<&[u8]>) -> (Option<Reason>, Exchange) {
        let env = self.env();
        let mut ex = Exchange::new();
        let mut v = ex.on_headers(&self.policy, r, &env);
        if let (Verdict::NeedBody, Some(b)) = (&v, body) {
            v = ex.on_body(&self.policy, r, b, &env);
        } else if let (Verdict::Allow, Some(b)) = (&v, body) {
            // A route that checks nothing in the body still sees it through the body phase.
            v = ex.on_body(&self.policy, r, b, &env);
        }
        let reason = match v {
            Verdict::Deny(d) => Some(d.reason),
            Verdict::Allow | Verdict::NeedBody => None,
            Verdict::Wait => panic!("no key fetch in these tests"),
        };
        (reason, ex)
    }

    fn reason(&self, method: &str, path: &str, bearer: Option<&str>) -> Option<Reason> {
        self.run(&req(method, path, bearer), None).0
    }
}

fn req(method: &str, path: &str, bearer: Option<&str>) -> RequestFacts {
    let mut headers = vec![("x-request-id".to_string(), "rid".to_string())];
    if let Some(t) = bearer {
        headers.push(("authorization".to_string(), format!("Bearer {t}")));
    }
    RequestFacts {
        method: method.into(),
        path: path.into(),
        authority: "api.example.com".into(),
        headers,
        opaque: Vec::new(),
        end_of_stream: true,
    }
}

fn post(path: &str, content_type: &str, body: &[u8], bearer: Option<&str>) -> RequestFacts {
    let mut r = req("POST", path, bearer);
    r.headers
        .push(("content-type".to_string(), content_type.to_string()));
    r.headers
        .push(("content-length".to_string(), body.len().to_string()));
    r.end_of_stream = false;
    r
}

// ---- Paths and methods ------------------------------------------------------------------------

#[test]
fn semicolon_and_case_variants_of_a_protected_path_never_reach_the_catch_all() {
    let w = World::new(policy());
    assert_eq!(w.reason("GET", "/admin", None), Some(Reason::JwtMissing));
    for path in [
        "/admin;x",
        "/admin;/x",
        "/public/..;/admin",
        "/admin%3Bx",
        "/ADMIN",
        "/Admin/users",
        "/%41dmin",
        "/adm\u{131}n",
        "/adm%C4%B1n",
        "/public/%2e%2e;/ADMIN",
    ] {
        let r = w.reason("GET", path, None);
        assert!(
            matches!(r, Some(Reason::JwtMissing | Reason::PathInvalid)),
            "{path}: {r:?}"
        );
    }
    // With a token, `;` is still refused on a route that does not accept it.
    let t = token("alice");
    assert_eq!(
        w.reason("GET", "/admin;jsessionid=1", Some(&t)),
        Some(Reason::PathInvalid)
    );
    assert_eq!(w.reason("GET", "/ADMIN/x", Some(&t)), None);
    // The catch-all refuses `;` too (top level), and a route may accept them.
    assert_eq!(
        w.reason("GET", "/public;x", None),
        Some(Reason::PathInvalid)
    );
    assert_eq!(w.reason("GET", "/matrix;v=1/x;y=2", None), None);
    assert_eq!(w.reason("GET", "/public?a=1;2", None), None);
}

#[test]
fn head_follows_get_and_methods_must_be_upper_case_tokens() {
    let w = World::new(policy());
    assert_eq!(w.reason("HEAD", "/reports", None), Some(Reason::JwtMissing));
    assert_eq!(w.reason("GET", "/reports", None), Some(Reason::JwtMissing));
    for m in ["get", "Get", "gEt", "HEAD ", "G\u{c9}T", ""] {
        assert_eq!(
            w.reason(m, "/reports", None),
            Some(Reason::MethodInvalid),
            "{m:?}"
        );
    }
    let t = token("alice");
    assert_eq!(w.reason("HEAD", "/reports", Some(&t)), None);
    // POST on a GET-only route falls through to the catch-all, as before.
    assert_eq!(w.reason("POST", "/reports", None), None);
}

#[test]
fn owner_check_applies_to_case_variants_and_compares_the_value_exactly() {
    let w = World::new(policy());
    let bob = token("bob");
    assert_eq!(w.reason("GET", "/users/bob", Some(&bob)), None);
    assert_eq!(w.reason("GET", "/USERS/bob", Some(&bob)), None);
    assert_eq!(w.reason("HEAD", "/Users/bob", Some(&bob)), None);
    assert_eq!(
        w.reason("GET", "/USERS/alice", Some(&bob)),
        Some(Reason::OwnerMismatch)
    );
    // The value keeps its case: `BOB` may be another account to a case-sensitive store.
    assert_eq!(
        w.reason("GET", "/users/BOB", Some(&bob)),
        Some(Reason::OwnerMismatch)
    );
    assert_eq!(
        w.reason("GET", "/users/alice;x", Some(&bob)),
        Some(Reason::PathInvalid)
    );
    assert_eq!(
        w.reason("GET", "/users/alice;/../bob", Some(&bob)),
        Some(Reason::PathInvalid)
    );
}

#[test]
fn case_sensitive_route_before_a_catch_all_is_warned_about() {
    let mut cfg = policy_json();
    cfg["routes"][0]["match"]["case_sensitive"] = json!(true);
    let p = compile(cfg.to_string().as_bytes()).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("routes[0]") && w.contains("routes[9]")),
        "{:?}",
        p.warnings
    );
    let w = World::new(p);
    assert_eq!(w.reason("GET", "/ADMIN", None), None, "as configured");
    assert!(policy().warnings.is_empty());
    let p = compile(
        br#"{"paths":{"case_sensitive":true,"allow_semicolon_params":true},
        "routes":[{"name":"a","match":{"path":"/a","case_sensitive":false}}]}"#,
    )
    .unwrap();
    let w = World::new(p);
    assert_eq!(w.reason("GET", "/A;x", None), None);
}

// ---- JSON bodies ------------------------------------------------------------------------------

#[test]
fn protected_members_in_any_case_and_case_duplicates_are_refused() {
    let w = World::new(policy());
    let send = |body: &str| {
        let r = post("/profile", "application/json", body.as_bytes(), None);
        w.run(&r, Some(body.as_bytes())).0
    };
    assert_eq!(send(r#"{"name":"ann"}"#), None);
    for body in [
        r#"{"role":"admin"}"#,
        r#"{"ROLE":"admin"}"#,
        r#"{"Role":"admin"}"#,
        r#"{"profile":{"ISADMIN":true}}"#,
        r#"{"PROFILE":{"isadmin":true}}"#,
    ] {
        assert_eq!(send(body), Some(Reason::MassAssignment), "{body}");
    }
    for body in [
        r#"{"name":"ann","name":"x"}"#,
        r#"{"name":"ann","NAME":"a-very-long-name"}"#,
        r#"{"role":"user","ROLE":"admin"}"#,
    ] {
        assert_eq!(send(body), Some(Reason::JsonMalformed), "{body}");
    }
}

#[test]
fn owner_body_field_is_read_by_the_strict_reader() {
    let w = World::new(policy());
    let bob = token("bob");
    let send = |body: &str| {
        let r = post("/transfer", "application/json", body.as_bytes(), Some(&bob));
        w.run(&r, Some(body.as_bytes())).0
    };
    assert_eq!(send(r#"{"from":"bob","amount":1}"#), None);
    assert_eq!(send(r#"{"FROM":"bob"}"#), None);
    assert_eq!(send(r#"{"From":"alice"}"#), Some(Reason::OwnerMismatch));
    // serde_json keeps the last copy, Jackson/Go may read either: refused.
    assert_eq!(
        send(r#"{"from":"bob","from":"alice"}"#),
        Some(Reason::JsonMalformed)
    );
    assert_eq!(
        send(r#"{"from":"bob","From":"alice"}"#),
        Some(Reason::JsonMalformed)
    );
    assert_eq!(send("{\"from\":\"b\u{0}"), Some(Reason::JsonMalformed));
}

#[test]
fn owner_parameters_in_every_spelling_a_framework_binds_are_one_parameter() {
    let w = World::new(policy());
    let bob = token("bob");
    assert_eq!(w.reason("GET", "/orders?user_id=bob", Some(&bob)), None);
    assert_eq!(
        w.reason("GET", "/orders?USER_ID=alice", Some(&bob)),
        Some(Reason::OwnerMismatch)
    );
    // ASP.NET Core binds any case, PHP reads `.`, ` ` and `[` as `_`: two spellings are two
    // values of one parameter, and the service may read either.
    for q in [
        "user_id=bob&USER_ID=alice",
        "user_id=bob&user.id=alice",
        "user_id=bob&user+id=alice",
        "user_id=bob&user%5Bid=alice",
        "user_id=bob&+user_id=alice",
    ] {
        let path = format!("/orders?{q}");
        assert_eq!(
            w.reason("GET", &path, Some(&bob)),
            Some(Reason::OwnerMismatch),
            "{q}"
        );
    }
    // A body field also sent as a query parameter (Rails, Laravel, Flask merge them).
    let body = r#"{"from":"bob"}"#;
    let r = post(
        "/transfer?from=alice",
        "application/json",
        body.as_bytes(),
        Some(&bob),
    );
    assert_eq!(
        w.run(&r, Some(body.as_bytes())).0,
        Some(Reason::OwnerMismatch)
    );
    // Form fields in two spellings are one repeated field.
    for body in ["from=bob&FROM=alice", "from=bob&From=bob"] {
        let form = "application/x-www-form-urlencoded";
        let r = post("/transfer", form, body.as_bytes(), Some(&bob));
        assert_eq!(
            w.run(&r, Some(body.as_bytes())).0,
            Some(Reason::OwnerMismatch),
            "{body}"
        );
    }
}

#[test]
fn read_only_fields_set_through_the_query_are_refused() {
    let w = World::new(policy());
    let body = r#"{"name":"x"}"#;
    let send = |path: &str| {
        let r = post(path, "application/json", body.as_bytes(), None);
        w.run(&r, Some(body.as_bytes())).0
    };
    assert_eq!(send("/profile"), None);
    assert_eq!(send("/profile?page=2"), None);
    for q in [
        "role=admin",
        "ROLE=admin",
        "profile[isAdmin]=1",
        "Profile[ISADMIN]=true",
        "a=1&role",
        "x=%ZZ&role=admin",
    ] {
        assert_eq!(
            send(&format!("/profile?{q}")),
            Some(Reason::MassAssignment),
            "{q}"
        );
    }
}

#[test]
fn a_token_no_source_reads_is_refused_not_passed_as_anonymous() {
    let mut cfg = policy_json();
    cfg["routes"][0]["jwt"]["allow_missing"] = json!(true);
    let w = World::new(compile(cfg.to_string().as_bytes()).unwrap());
    let t = token("alice");
    let with = |value: String| {
        let mut r = req("GET", "/admin", None);
        r.headers.push(("authorization".to_string(), value));
        w.run(&r, None).0
    };
    assert_eq!(w.reason("GET", "/admin", None), None, "anonymous allowed");
    assert_eq!(with(format!("Bearer {t}")), None);
    for v in [
        format!("Bearer\t{t}"),
        format!("Bearer{t}"),
        format!("JWT {t}"),
        format!("Token {t}"),
        t.clone(),
        format!("Basic x, Bearer\t{t}"),
    ] {
        assert_eq!(with(v.clone()), Some(Reason::JwtMalformed), "{v}");
    }
    // An access_token parameter no provider of the route reads (Envoy's jwt_authn reads it by
    // default) is refused next to a verified header token, and alone.
    let bearer = format!("Bearer {t}");
    let mut r = req("GET", &format!("/admin?access_token={t}"), None);
    r.headers.push(("authorization".to_string(), bearer));
    assert_eq!(w.run(&r, None).0, Some(Reason::JwtMalformed));
    assert_eq!(
        w.reason("GET", &format!("/admin?ACCESS_TOKEN={t}"), None),
        Some(Reason::JwtMalformed)
    );
    assert_eq!(w.reason("GET", "/admin?access_token=abc", None), None);
    // Other schemes are not tokens.
    assert_eq!(with("Basic dXNlcjpwYXNz".to_string()), None);
    assert_eq!(with(format!("Basic {t}")), None);
    assert_eq!(
        with(r#"Digest username="a.b.c", realm="x""#.to_string()),
        None
    );
}

#[test]
fn method_overrides_are_refused_unless_allowed() {
    let w = World::new(policy());
    let bob = token("bob");
    let overridden = |name: &str| {
        let mut r = req("POST", "/users/bob", Some(&bob));
        r.headers.push((name.to_string(), "DELETE".to_string()));
        w.run(&r, None).0
    };
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x_http_method_override",
        "X-HTTP-Method-Override",
    ] {
        assert_eq!(overridden(name), Some(Reason::MethodInvalid), "{name}");
    }
    for q in [
        "_method=DELETE",
        "_METHOD=delete",
        "%5Fmethod=put",
        "a=1&_method",
    ] {
        let path = format!("/public?{q}");
        assert_eq!(
            w.reason("POST", &path, None),
            Some(Reason::MethodInvalid),
            "{q}"
        );
    }
    assert_eq!(w.reason("POST", "/public?method=x&x_method=y", None), None);
    let mut allowed = policy_json();
    allowed["paths"] = json!({ "allow_method_override": true });
    let w = World::new(compile(allowed.to_string().as_bytes()).unwrap());
    assert_eq!(w.reason("POST", "/public?_method=DELETE", None), None);
}

// ---- Lockout keys -----------------------------------------------------------------------------

/// One login attempt; the upstream answers 401 when it got that far. The reason of a refusal.
fn login(w: &World, content_type: &str, body: &str) -> Option<Reason> {
    let r = post("/login", content_type, body.as_bytes(), None);
    let (reason, mut ex) = w.run(&r, Some(body.as_bytes()));
    if reason.is_none() {
        ex.on_response(&w.policy, &r, 401, &w.env());
    }
    reason
}

#[test]
fn lockout_key_variants_count_for_the_same_name() {
    let json_ct = "application/json";
    for (first, second) in [
        (r#"{"username":"victim"}"#, r#"{"username":"Victim"}"#),
        (r#"{"username":" victim "}"#, r#"{"USERNAME":"VICTIM"}"#),
        (
            r#"{"username":"\uff56\uff49\uff43\uff54\uff49\uff4d"}"#,
            r#"{"username":"victim"}"#,
        ),
        (r#"{"username":["victim"]}"#, r#"{"username":"victim"}"#),
        (
            r#"{"username":{"$eq":"victim"}}"#,
            r#"{"username":"victim"}"#,
        ),
    ] {
        let w = World::new(policy());
        assert_eq!(login(&w, json_ct, first), None, "{first}");
        assert_eq!(login(&w, json_ct, second), None, "{second}");
        assert_eq!(
            login(&w, json_ct, r#"{"username":"victim"}"#),
            Some(Reason::LockedOut),
            "{first} then {second}"
        );
        assert_eq!(login(&w, json_ct, r#"{"username":"other"}"#), None);
    }
    // Form logins are keyed by the same field.
    let w = World::new(policy());
    let form = "application/x-www-form-urlencoded";
    assert_eq!(login(&w, form, "username=Victim&password=x"), None);
    assert_eq!(login(&w, form, "username=+victim&password=y"), None);
    assert_eq!(
        login(&w, json_ct, r#"{"username":"victim"}"#),
        Some(Reason::LockedOut)
    );
    // Duplicate keys never pick a key for the attacker.
    let w = World::new(policy());
    assert_eq!(
        login(&w, json_ct, r#"{"username":"x","username":"victim"}"#),
        Some(Reason::JsonMalformed)
    );
}

#[test]
fn a_non_string_name_counts_as_a_failure_by_itself() {
    let w = World::new(policy());
    // The upstream is never asked (no on_response): the attempt alone counts.
    let body = r#"{"username":{"$ne":null}}"#;
    let r = post("/login", "application/json", body.as_bytes(), None);
    assert_eq!(w.run(&r, Some(body.as_bytes())).0, None);
    assert_eq!(w.run(&r, Some(body.as_bytes())).0, Some(Reason::LockedOut));
}

// ---- Forged tokens ----------------------------------------------------------------------------

#[test]
fn address_keyed_limits_count_before_the_signature_check() {
    let w = World::new(policy());
    let forged = format!(
        "{}.{}",
        &token("a")[..token("a").rfind('.').unwrap()],
        b64(&[0; 32])
    );
    assert_eq!(
        w.reason("GET", "/limited", Some(&forged)),
        Some(Reason::JwtBadSignature)
    );
    assert_eq!(
        w.reason("GET", "/limited", Some(&forged)),
        Some(Reason::JwtBadSignature)
    );
    // The third request from this address is refused before any verification.
    assert_eq!(
        w.reason("GET", "/limited", Some(&forged)),
        Some(Reason::RateLimited)
    );
    assert_eq!(
        w.reason("GET", "/limited", Some(&token("a"))),
        Some(Reason::RateLimited)
    );
}

#[test]
fn claim_keyed_limits_still_count_after_verification() {
    let mut cfg = policy_json();
    cfg["routes"][6]["rate_limits"] =
        json!([{"key": "jwt:sub", "requests": 1, "per_seconds": 60, "burst": 1}]);
    let w = World::new(compile(cfg.to_string().as_bytes()).unwrap());
    for _ in 0..3 {
        assert_eq!(w.reason("GET", "/limited", None), Some(Reason::JwtMissing));
    }
    assert_eq!(w.reason("GET", "/limited", Some(&token("a"))), None);
    assert_eq!(
        w.reason("GET", "/limited", Some(&token("a"))),
        Some(Reason::RateLimited)
    );
    assert_eq!(w.reason("GET", "/limited", Some(&token("b"))), None);
}

#[test]
fn a_bearer_next_to_a_parameter_token_is_verified_or_refused() {
    let mut cfg = policy_json();
    cfg["jwt_providers"]["main"]["from_params"] = json!(["access_token"]);
    let w = World::new(compile(cfg.to_string().as_bytes()).unwrap());
    let good = token("alice");
    let path = format!("/admin?access_token={good}");
    assert_eq!(w.reason("GET", &path, None), None);
    assert_eq!(w.reason("GET", "/admin", Some(&good)), None);
    // A second, different token in the header is ambiguous.
    assert_eq!(
        w.reason("GET", &path, Some(&token("mallory"))),
        Some(Reason::JwtMalformed)
    );
    // The same token twice is fine, and both copies are removed before the request goes on.
    let (r, mut ex) = w.run(&req("GET", &path, Some(&good)), None);
    assert_eq!(r, None);
    let ops = format!("{:?}", ex.take_header_ops());
    assert!(ops.contains("Remove(\"authorization\")"), "{ops}");
}

// ---- Properties -------------------------------------------------------------------------------

/// Paths that the policy protects (a token is required), as a client would write them.
fn protected_path() -> impl Strategy<Value = (String, &'static str)> {
    prop_oneof![
        Just(("/admin".to_string(), "GET")),
        "[a-z0-9]{1,8}".prop_map(|s| (format!("/admin/{s}"), "POST")),
        Just(("/reports".to_string(), "GET")),
        "[a-z0-9]{1,8}".prop_map(|s| (format!("/users/{s}"), "GET")),
        "[a-z0-9]{1,8}".prop_map(|s| (format!("/limited/{s}"), "DELETE")),
    ]
}

/// One rewrite that upstream frameworks treat as the same path.
#[derive(Debug, Clone)]
enum Variant {
    /// Flip the letter case of the characters at these positions (Express, ASP.NET Core).
    Case(Vec<usize>),
    /// Add `;param` to a segment (Tomcat, Jetty, Spring drop it).
    Semicolon(usize, String),
    /// Insert `x/..;/` or `.;/` before a segment (Tomcat resolves it).
    DotParam(usize),
    /// Percent-encode an unreserved character.
    Encode(usize),
    /// Add `./` or `//`.
    Dot(usize),
    /// A trailing `/` (Express, Spring before 6, ASP.NET Core, Rails route it the same).
    TrailingSlash,
    /// A format suffix on the last segment (Rails: `/admin.json` is `/admin`).
    Suffix(String),
}

fn variant() -> impl Strategy<Value = Variant> {
    prop_oneof![
        prop::collection::vec(0usize..32, 1..6).prop_map(Variant::Case),
        (0usize..8, "[a-zA-Z0-9=]{0,6}").prop_map(|(i, p)| Variant::Semicolon(i, p)),
        (0usize..8).prop_map(Variant::DotParam),
        (0usize..32).prop_map(Variant::Encode),
        (0usize..8).prop_map(Variant::Dot),
        Just(Variant::TrailingSlash),
        "(json|xml|csv|html|JSON|x1)".prop_map(Variant::Suffix),
    ]
}

fn apply(path: &str, v: &Variant) -> String {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let pick = |i: usize| i % segs.len().max(1);
    match v {
        Variant::Case(positions) => path
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if positions.contains(&(i % path.len().max(1))) {
                    if c.is_ascii_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                } else {
                    c
                }
            })
            .collect(),
        Variant::Semicolon(i, p) => {
            let k = pick(*i);
            let out: Vec<String> = segs
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    if j == k {
                        format!("{s};{p}")
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            format!("/{}", out.join("/"))
        }
        Variant::DotParam(i) => {
            let k = pick(*i);
            let mut out: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            out.insert(k, if k % 2 == 0 { "x/..;" } else { ".;" }.to_string());
            format!("/{}", out.join("/"))
        }
        Variant::Encode(i) => {
            let chars: Vec<char> = path.chars().collect();
            let k = i % chars.len();
            if !chars[k].is_ascii_alphanumeric() {
                return path.to_string();
            }
            chars
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    if j == k {
                        format!("%{:02X}", *c as u32)
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
        Variant::Dot(i) => {
            let k = pick(*i);
            let mut out: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            out.insert(k, if k % 2 == 0 { "." } else { "" }.to_string());
            format!("/{}", out.join("/"))
        }
        Variant::TrailingSlash => format!("{path}/"),
        // After a trailing `/` the suffix would be a segment of its own (`/.json`), and a
        // second suffix (`/a.json.json`) is no format either: no framework reads them as one.
        Variant::Suffix(ext)
            if !path.ends_with('/') && !path.rsplit('/').next().unwrap_or("").contains('.') =>
        {
            format!("{path}.{ext}")
        }
        Variant::Suffix(_) => path.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// A request without a token to a protected path is refused, whatever mix of variants an
    /// upstream would route to the same handler (and HEAD for GET).
    #[test]
    fn denial_survives_variants_upstreams_treat_as_equal(
        (path, method) in protected_path(),
        variants in prop::collection::vec(variant(), 1..4),
        head in any::<bool>(),
    ) {
        let w = World::new(policy());
        let mut p = path.clone();
        for v in &variants {
            p = apply(&p, v);
        }
        let method = if head && method == "GET" { "HEAD" } else { method };
        let r = w.reason(method, &p, None);
        prop_assert!(r.is_some(), "{} {} (from {}) was allowed", method, p, path);
    }

    /// Owner checks: bob's token never reaches alice's object through a variant.
    #[test]
    fn owner_denial_survives_variants(variants in prop::collection::vec(variant(), 1..4)) {
        let w = World::new(policy());
        let mut p = "/users/alice".to_string();
        for v in &variants {
            p = apply(&p, v);
        }
        let r = w.reason("GET", &p, Some(&token("bob")));
        prop_assert!(r.is_some(), "GET {} was allowed for bob", p);
    }

    /// Arbitrary methods, paths and headers never panic; the method rule holds.
    #[test]
    fn arbitrary_requests_never_panic(
        method in "\\PC{0,12}",
        path in "\\PC{0,64}",
        raw_path in prop::collection::vec(any::<u8>(), 0..64),
        headers in prop::collection::vec(("[a-z-]{1,12}", "\\PC{0,40}"), 0..6),
    ) {
        let w = World::new(policy());
        for p in [path.clone(), String::from_utf8_lossy(&raw_path).into_owned(), format!("/{path}")] {
            let mut r = req(&method, &p, None);
            r.headers.extend(headers.iter().cloned());
            let reason = w.reason(&method, &p, None);
            let _ = w.run(&r, None);
            let upper_token = !method.is_empty() && method.len() <= 32
                && method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
            if !upper_token {
                prop_assert_eq!(reason, Some(Reason::MethodInvalid));
            }
        }
    }

    /// Arbitrary bytes as a body on every body-reading route never panic.
    #[test]
    fn arbitrary_bodies_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..256),
        form in any::<bool>(),
    ) {
        let w = World::new(policy());
        let ct = if form { "application/x-www-form-urlencoded" } else { "application/json" };
        for path in ["/profile", "/transfer", "/login"] {
            let r = post(path, ct, &body, Some(&token("bob")));
            let _ = w.run(&r, Some(&body));
        }
    }

    /// A JSON body that sets a read-only member under any letter case, next to any other
    /// members, is never accepted; nor is one whose member names collide after folding.
    #[test]
    fn read_only_member_in_any_case_is_never_accepted(
        flips in prop::collection::vec(any::<bool>(), 4),
        others in prop::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..6),
        nested in any::<bool>(),
        dup in any::<bool>(),
    ) {
        let raw: RawRequest = serde_json::from_value(json!({
            "read_only_fields": ["/role", "/profile/role"]
        })).unwrap();
        let rules = RequestRules::compile(&raw, "r", None).unwrap();
        let name: String = "role".chars().zip(&flips)
            .map(|(c, f)| if *f { c.to_ascii_uppercase() } else { c })
            .collect();
        let mut members: Vec<String> = others.iter()
            .filter(|(k, _)| k.as_str() != "role" && k.as_str() != "profile")
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let protected = format!("\"{name}\":\"admin\"");
        members.push(if nested { format!("\"Profile\":{{{protected}}}") } else { protected });
        if dup {
            members.push("\"ROLE\":\"user\"".to_string());
        }
        let body = format!("{{{}}}", members.join(","));
        prop_assert!(rules.check_body(body.as_bytes(), &[]).is_err(), "{} accepted", body);
    }

    /// The strict reader never panics on arbitrary bytes, and never accepts an object with two
    /// keys that fold together.
    #[test]
    fn strict_reader_refuses_folded_duplicates(
        bytes in prop::collection::vec(any::<u8>(), 0..128),
        key in "[a-zA-Z]{1,8}",
        flips in prop::collection::vec(any::<bool>(), 8),
    ) {
        let limits = meshguard::validate::json::JsonLimits::default();
        let _ = meshguard::validate::json::parse(&bytes, &limits);
        let other: String = key.chars().zip(&flips)
            .map(|(c, f)| if *f { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        let doc = format!("{{\"{key}\":1,\"x\":[],\"{other}\":2}}");
        prop_assert!(meshguard::validate::json::parse(doc.as_bytes(), &limits).is_err());
    }
}
