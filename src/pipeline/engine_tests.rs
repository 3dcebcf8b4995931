//! The engine with fake stages (order, report mode, waiting, denials seen by every stage,
//! finalize once), and with the real stages where the engine's bookkeeping matters (streamed
//! bodies, failure counts before the lockout stage).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;
use crate::host::fake::{FakeClock, MemStore};
use crate::host::Properties;
use crate::pipeline::runtime::Runtime;
use std::cell::{Cell, RefCell};

/// A connection from 192.0.2.7.
struct FromAddress;
impl Properties for FromAddress {
    fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
        (path == ["source", "address"]).then(|| b"192.0.2.7:40000".to_vec())
    }
}

fn compile(json: &str) -> Policy {
    crate::config::compile(json.as_bytes()).unwrap()
}

fn request(path: &str) -> RequestFacts {
    RequestFacts {
        method: "GET".into(),
        path: path.into(),
        authority: "api.example".into(),
        headers: vec![("x-device".into(), "phone-1".into())],
        end_of_stream: true,
        ..Default::default()
    }
}

struct World {
    clock: FakeClock,
    store: MemStore,
    runtime: RefCell<Runtime>,
}

impl World {
    fn new(p: &Policy) -> Self {
        let store = MemStore::default();
        let runtime = RefCell::new(Runtime::new(p, &store));
        World {
            clock: FakeClock::at_secs(1_700_000_000),
            store,
            runtime,
        }
    }
    fn env(&self) -> Env<'_> {
        let World {
            clock,
            store,
            runtime,
        } = self;
        Env {
            clock,
            store,
            props: &FromAddress,
            runtime,
        }
    }
}

// Fake stages: each records its name when it runs, in a thread-local log.
thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static WAITS: Cell<u32> = const { Cell::new(0) };
}

fn log(s: &str) {
    LOG.with(|l| l.borrow_mut().push(s.to_string()));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Passes, or refuses with `deny`; waits `WAITS` times first when `waits`.
struct Fake {
    name: &'static str,
    deny: Option<Reason>,
    waits: bool,
    body: bool,
}

impl Stage for Fake {
    fn key(&self) -> &'static str {
        self.name
    }
    fn what(&self) -> &'static str {
        "a fake check"
    }
    fn runs_on(&self, _route: &Route) -> bool {
        true
    }
    fn needs_body(&self, _route: &Route) -> bool {
        self.body
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        log(self.name);
        if self.waits && WAITS.with(Cell::get) > 0 {
            WAITS.with(|w| w.set(w.get() - 1));
            return Step::Wait;
        }
        if self.body {
            assert!(cx.body.is_some(), "a body stage sees the body");
        }
        match self.deny {
            Some(r) => Step::Deny(Denial::new(r)),
            None => Step::Next,
        }
    }
    fn after_denial(&self, _cx: &mut Cx<'_>, denial: &Denial) {
        log(&format!("{} saw {}", self.name, denial.reason.code()));
    }
    fn finalize(&self, _p: &Policy, _r: Option<&Route>, state: &mut State, _e: &Env<'_>) {
        log(&format!("{} final", self.name));
        state
            .out
            .header_ops
            .push(HeaderOp::Set(format!("x-{}", self.name), "1".into()));
    }
}

const fn fake(name: &'static str, deny: Option<Reason>) -> Fake {
    Fake {
        name,
        deny,
        waits: false,
        body: false,
    }
}

static PASS_A: Fake = fake("a", None);
static PASS_B: Fake = fake("b", None);
static DENY_401: Fake = fake("deny", Some(Reason::JwtMissing));
static WAITER: Fake = Fake {
    name: "waiter",
    deny: None,
    waits: true,
    body: false,
};
static BODY: Fake = Fake {
    name: "body",
    deny: None,
    waits: false,
    body: true,
};

static PASSING: Pipeline = Pipeline {
    headers: &[&PASS_A, &PASS_B],
    body: &[],
};
static DENYING: Pipeline = Pipeline {
    headers: &[&PASS_A, &DENY_401, &PASS_B],
    body: &[],
};
static WAITING: Pipeline = Pipeline {
    headers: &[&PASS_A, &WAITER, &PASS_B],
    body: &[],
};
static WITH_BODY: Pipeline = Pipeline {
    headers: &[&PASS_A],
    body: &[&BODY],
};

fn open(mode: &str) -> Policy {
    compile(&format!(
        r#"{{"routes":[{{"name":"r","match":{{"prefix":"/"}},"mode":"{mode}"}}]}}"#
    ))
}

#[test]
fn stages_run_in_order_then_finalize_once() {
    let p = open("enforce");
    let w = World::new(&p);
    let mut ex = Exchange::with_pipeline(&PASSING);
    assert_eq!(ex.on_headers(&p, &request("/x"), &w.env()), Verdict::Allow);
    assert_eq!(take_log(), ["a", "b", "a final", "b final"]);
    let ops = ex.take_header_ops();
    assert!(ops.contains(&HeaderOp::Set("x-a".into(), "1".into())));
    assert_eq!(ex.final_decision(), Some(Decision::Allow));
}

#[test]
fn a_denial_stops_the_pipeline_and_every_stage_sees_it() {
    let p = open("enforce");
    let w = World::new(&p);
    let mut ex = Exchange::with_pipeline(&DENYING);
    let v = ex.on_headers(&p, &request("/x"), &w.env());
    assert!(matches!(v, Verdict::Deny(d) if d.reason == Reason::JwtMissing));
    assert_eq!(
        take_log(),
        [
            "a",
            "deny",
            "a saw jwt_missing",
            "deny saw jwt_missing",
            "b saw jwt_missing"
        ]
    );
    let events = ex.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].decision, Decision::Deny);
}

#[test]
fn report_mode_records_the_denial_and_goes_on() {
    let p = open("report");
    let w = World::new(&p);
    let mut ex = Exchange::with_pipeline(&DENYING);
    assert_eq!(ex.on_headers(&p, &request("/x"), &w.env()), Verdict::Allow);
    let log = take_log();
    assert!(log.contains(&"b".to_string()), "{log:?}");
    assert_eq!(ex.final_decision(), Some(Decision::Report));
    let events = ex.take_events();
    assert_eq!(events[0].decision, Decision::Report);
}

#[test]
fn a_waiting_stage_runs_again_on_resume_and_earlier_ones_do_not() {
    let p = open("enforce");
    let w = World::new(&p);
    WAITS.with(|c| c.set(1));
    let mut ex = Exchange::with_pipeline(&WAITING);
    let r = request("/x");
    assert_eq!(ex.on_headers(&p, &r, &w.env()), Verdict::Wait);
    assert_eq!(take_log(), ["a", "waiter"]);
    assert_eq!(ex.resume(&p, &r, None, &w.env()), Verdict::Allow);
    assert_eq!(
        take_log(),
        ["waiter", "b", "a final", "waiter final", "b final"]
    );
}

#[test]
fn a_body_stage_asks_for_the_body_and_runs_on_it() {
    let p = open("enforce");
    let w = World::new(&p);
    let mut ex = Exchange::with_pipeline(&WITH_BODY);
    let mut r = request("/x");
    r.end_of_stream = false;
    assert_eq!(ex.on_headers(&p, &r, &w.env()), Verdict::NeedBody);
    assert_eq!(
        take_log(),
        ["a", "a final", "body final"],
        "headers decided first"
    );
    assert_eq!(ex.on_body(&p, &r, b"{}", &w.env()), Verdict::Allow);
    assert_eq!(take_log(), ["body"]);
}

#[test]
fn unmatched_requests_run_no_stage() {
    let p = compile(r#"{"routes":[{"name":"r","match":{"prefix":"/api"}}]}"#);
    let w = World::new(&p);
    let mut ex = Exchange::with_pipeline(&PASSING);
    let v = ex.on_headers(&p, &request("/other"), &w.env());
    assert!(matches!(v, Verdict::Deny(d) if d.reason == Reason::RouteNotFound));
    assert!(take_log().is_empty());
}

// The engine with the real stages.

fn capped(mode: &str) -> Policy {
    compile(&format!(
        r#"{{"routes":[{{"name":"up","match":{{"path":"/upload"}},"mode":"{mode}",
            "request":{{"max_body_bytes":100}}}}]}}"#
    ))
}

/// A chunked upload (no content-length) to a route with only `max_body_bytes`.
fn chunked_upload() -> RequestFacts {
    RequestFacts {
        method: "POST".into(),
        path: "/upload".into(),
        authority: "api.example".into(),
        headers: vec![
            ("content-type".into(), "text/plain".into()),
            ("transfer-encoding".into(), "chunked".into()),
        ],
        end_of_stream: false,
        ..Default::default()
    }
}

/// A chunked upload whose headers went on (its size is counted as it streams).
fn upload_started(p: &Policy) -> (World, Exchange) {
    let w = World::new(p);
    let mut ex = Exchange::new();
    assert_eq!(
        ex.on_headers(p, &chunked_upload(), &w.env()),
        Verdict::Allow
    );
    (w, ex)
}

#[test]
fn streamed_body_over_the_limit_is_refused_after_the_headers_went_on() {
    let p = capped("enforce");
    let (w, mut ex) = upload_started(&p);
    assert_eq!(ex.body_limit(), Some(100));
    assert_eq!(ex.final_decision(), None, "undecided until the body ends");
    assert_eq!(ex.on_body_progress(&p, 100), None);
    match ex.on_body_progress(&p, 101) {
        Some(Verdict::Deny(d)) => assert_eq!(d.reason, Reason::BodyTooLarge),
        other => panic!("expected 413, got {other:?}"),
    }
    assert_eq!(ex.final_decision(), Some(Decision::Deny));
    assert!(!ex.on_body_end(&p, &w.env()));
}

#[test]
fn streamed_body_within_the_limit_is_allowed_at_its_end() {
    let p = capped("enforce");
    let (w, mut ex) = upload_started(&p);
    assert_eq!(ex.on_body_progress(&p, 60), None);
    assert!(ex.on_body_end(&p, &w.env()));
    assert_eq!(ex.final_decision(), Some(Decision::Allow));
    assert!(!ex.on_body_end(&p, &w.env()), "decided once");
}

#[test]
fn streamed_body_over_the_limit_in_report_mode_is_reported_at_its_end() {
    let p = capped("report");
    let (w, mut ex) = upload_started(&p);
    assert_eq!(ex.on_body_progress(&p, 500), None);
    assert_eq!(ex.body_limit(), None, "no longer counted");
    assert!(ex.on_body_end(&p, &w.env()));
    assert_eq!(ex.final_decision(), Some(Decision::Report));
    let reasons: Vec<_> = ex.take_events().iter().map(|e| e.reason).collect();
    assert_eq!(reasons, vec![Some(Reason::BodyTooLarge)]);
}

fn lockout(keys: &str) -> Policy {
    compile(&format!(
        r#"{{"routes":[{{"name":"login","match":{{"prefix":"/login"}},
            "lockout":{{"keys":{keys},"failures":2,"window_seconds":60,"block_seconds":60}}}}]}}"#
    ))
}

/// One of meshguard's own 401s, refused by a stage that runs before the lockout stage.
static OWN_401: Pipeline = Pipeline {
    headers: &[&DENY_401, &crate::stages::lockout::Lockout { body: false }],
    body: &[],
};

fn own_401(p: &Policy, r: &RequestFacts, w: &World) {
    let mut ex = Exchange::with_pipeline(&OWN_401);
    assert!(matches!(ex.on_headers(p, r, &w.env()), Verdict::Deny(_)));
    let _ = take_log();
}

fn verdict(p: &Policy, r: &RequestFacts, w: &World) -> Option<Reason> {
    match Exchange::new().on_headers(p, r, &w.env()) {
        Verdict::Deny(d) => Some(d.reason),
        _ => None,
    }
}

fn device(d: &str) -> RequestFacts {
    let mut r = request("/login");
    r.headers = vec![("x-device".into(), d.into())];
    r
}

#[test]
fn own_401s_lock_the_header_key_the_check_reads() {
    let p = lockout(r#"["header:x-device"]"#);
    let w = World::new(&p);
    own_401(&p, &device("phone-1"), &w);
    own_401(&p, &device("phone-1"), &w);
    assert_eq!(verdict(&p, &device("phone-1"), &w), Some(Reason::LockedOut));
    assert_eq!(verdict(&p, &device("phone-2"), &w), None);
}

#[test]
fn own_401s_before_the_lockout_stage_lock_the_client_address() {
    let p = lockout(r#"["client_ip"]"#);
    let w = World::new(&p);
    own_401(&p, &device("a"), &w);
    own_401(&p, &device("b"), &w);
    assert_eq!(verdict(&p, &device("c"), &w), Some(Reason::LockedOut));
}
