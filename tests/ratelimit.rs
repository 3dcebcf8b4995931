//! Native tests of rate limiting and lockout through the public API: bucket arithmetic with a
//! fake clock, exactness with several workers sharing one store (interleaved, with injected
//! compare-and-swap conflicts, and on real threads), refill, isolation, Retry-After, lockout,
//! and key floods.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use meshguard::error::Reason;
use meshguard::host::fake::{FakeClock, MemStore};
use meshguard::host::{SharedStore, StoreError};
use meshguard::ratelimit::config::{
    compile_lockout, compile_rate_limits, RawLockout, RawRateLimit,
};
use meshguard::ratelimit::{KeyFacts, LockoutPolicy, Mode, Outcome, RateDecision, RouteLimits};
use serde_json::json;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;

const T0: u64 = 1_700_000_000;

/// Compiles `rate_limits` as one worker's VM would (each worker compiles its own copy).
fn limits(v: serde_json::Value) -> RouteLimits {
    let raw: Vec<RawRateLimit> = serde_json::from_value(v).unwrap();
    compile_rate_limits(&raw, "routes[0].rate_limits", "api", Mode::Enforce).unwrap()
}

fn lockout(v: serde_json::Value) -> LockoutPolicy {
    let raw: RawLockout = serde_json::from_value(v).unwrap();
    compile_lockout(&raw, "routes[0].lockout", "login", Mode::Enforce).unwrap()
}

fn ip(addr: &str) -> KeyFacts<'_> {
    KeyFacts::new("api", Some(addr))
}

fn header<'a>(d: &'a RateDecision, name: &str) -> Option<&'a str> {
    d.denial
        .as_ref()
        .and_then(|den| den.headers.iter().find(|(k, _)| k == name))
        .map(|(_, v)| v.as_str())
}

fn allowed(d: &RateDecision) -> bool {
    d.denial.is_none()
}

/// How many of `n` back-to-back requests with `facts` are admitted.
fn admitted<S: SharedStore + ?Sized>(
    l: &RouteLimits,
    n: usize,
    facts: &KeyFacts,
    clock: &FakeClock,
    store: &S,
) -> usize {
    (0..n)
        .filter(|_| allowed(&l.check(facts, clock, store)))
        .count()
}

/// A competing request run between another request's read and write.
type Interferer<'a> = Box<dyn Fn(&MemStore) + 'a>;

/// A store that forces conflicts: before some conditional writes, another write lands on the
/// same key (either a plain rewrite, or a whole competing request run by `interferer`).
struct ConflictStore<'a> {
    inner: &'a MemStore,
    /// Deterministic pseudo-random state (an LCG with a fixed seed).
    rng: Cell<u64>,
    /// Probability in percent that a conditional write meets a conflict.
    percent: u64,
    /// Conflicts injected.
    injected: Cell<u32>,
    /// Runs a competing request directly on the inner store; `None` rewrites the value instead.
    interferer: Option<Interferer<'a>>,
}

impl<'a> ConflictStore<'a> {
    fn new(inner: &'a MemStore, percent: u64) -> Self {
        Self {
            inner,
            rng: Cell::new(0x2545_f491_4f6c_dd1d),
            percent,
            injected: Cell::new(0),
            interferer: None,
        }
    }

    fn roll(&self) -> bool {
        let next = self
            .rng
            .get()
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.rng.set(next);
        (next >> 33) % 100 < self.percent
    }
}

impl SharedStore for ConflictStore<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if cas.is_some() && self.roll() {
            self.injected.set(self.injected.get() + 1);
            match &self.interferer {
                Some(run) => run(self.inner),
                None => {
                    // Someone rewrote the slot: same bytes, new CAS token.
                    if let Some((bytes, _)) = self.inner.get(key)? {
                        self.inner.set(key, &bytes, None)?;
                    }
                }
            }
        }
        self.inner.set(key, value, cas)
    }
}

/// A store every conditional write of which fails.
struct AlwaysConflict<'a>(&'a MemStore);

impl SharedStore for AlwaysConflict<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if cas.is_some() {
            return Err(StoreError::CasMismatch);
        }
        self.0.set(key, value, cas)
    }
}

/// A store the host refuses.
struct Broken;

impl SharedStore for Broken {
    fn get(&self, _: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Err(StoreError::Unavailable)
    }
    fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable)
    }
}

/// A thread-safe store with Envoy's CAS semantics, for real concurrency.
#[derive(Default)]
struct SyncStore {
    map: Mutex<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: Mutex<u32>,
}

impl SharedStore for SyncStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let got = self.map.lock().unwrap().get(key).cloned();
        // Widen the window between read and write so that workers really interleave.
        std::thread::yield_now();
        Ok(got)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut map = self.map.lock().unwrap();
        if let (Some(want), Some((_, have))) = (cas, map.get(key)) {
            if want != *have {
                return Err(StoreError::CasMismatch);
            }
        }
        let mut next = self.next_cas.lock().unwrap();
        *next = next.wrapping_add(1).max(1);
        map.insert(key.to_string(), (value.to_vec(), *next));
        Ok(())
    }
}

// ---------------------------------------------------------------- bucket arithmetic

#[test]
fn burst_is_admitted_exactly_then_429_with_headers() {
    let l = limits(
        json!([{ "key": "client_ip", "requests": 10, "per_seconds": 1, "burst": 20, "name": "per-ip" }]),
    );
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    let admitted = admitted(&l, 50, &ip("1.2.3.4"), &clock, &store);
    assert_eq!(admitted, 20);
    let d = l.check(&ip("1.2.3.4"), &clock, &store);
    let denial = d.denial.as_ref().unwrap();
    assert_eq!(denial.reason, Reason::RateLimited);
    assert_eq!(denial.reason.status(), 429);
    assert_eq!(header(&d, "retry-after"), Some("1"));
    assert_eq!(header(&d, "ratelimit-policy"), Some("\"per-ip\";q=20;w=2"));
    assert_eq!(header(&d, "ratelimit"), Some("\"per-ip\";r=0;t=2"));
    assert!(
        !denial.log_detail.as_ref().unwrap().contains("1.2.3.4"),
        "never log the key"
    );
    assert_eq!(d.outcomes[0].outcome, Outcome::Limited);
}

#[test]
fn bucket_refills_at_the_configured_rate() {
    let l = limits(json!([{ "key": "client_ip", "requests": 5, "per_seconds": 10 }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    assert_eq!(admitted(&l, 10, &ip("a"), &clock, &store), 5);
    // One unit back every 2 s.
    clock.advance_ms(1_999);
    assert!(!allowed(&l.check(&ip("a"), &clock, &store)));
    clock.advance_ms(1);
    assert!(allowed(&l.check(&ip("a"), &clock, &store)));
    assert!(!allowed(&l.check(&ip("a"), &clock, &store)));
    // After a full period, a full burst again (and no more).
    clock.advance_ms(10_000);
    assert_eq!(admitted(&l, 10, &ip("a"), &clock, &store), 5);
}

#[test]
fn retry_after_is_the_wait_until_the_request_fits_rounded_up() {
    let l = limits(json!([{ "key": "route", "requests": 1, "per_seconds": 7 }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    assert!(allowed(&l.check(&ip("a"), &clock, &store)));
    clock.advance_ms(2_500);
    let d = l.check(&ip("a"), &clock, &store);
    // 4.5 s left: Retry-After 5, and waiting exactly that long succeeds.
    assert_eq!(header(&d, "retry-after"), Some("5"));
    clock.advance_ms(4_499);
    assert!(!allowed(&l.check(&ip("a"), &clock, &store)));
    clock.advance_ms(1);
    assert!(allowed(&l.check(&ip("a"), &clock, &store)));
}

#[test]
fn cost_spends_several_units_per_request() {
    let l = limits(json!([{ "key": "route", "requests": 10, "per_seconds": 1, "cost": 3 }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    assert_eq!(admitted(&l, 10, &ip("a"), &clock, &store), 3);
}

#[test]
fn keys_are_isolated() {
    let l = limits(json!([{ "key": "jwt:sub", "requests": 2, "per_seconds": 60 }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    let alice = json!({"sub": "alice"}).as_object().cloned().unwrap();
    let bob = json!({"sub": "bob"}).as_object().cloned().unwrap();
    let as_user = |c| KeyFacts {
        claims: Some(c),
        ..ip("1.1.1.1")
    };
    assert_eq!(admitted(&l, 5, &as_user(&alice), &clock, &store), 2);
    assert_eq!(admitted(&l, 5, &as_user(&bob), &clock, &store), 2);
    // Anonymous callers fall back to their address: limited, and not in alice's bucket.
    assert_eq!(admitted(&l, 5, &ip("1.1.1.1"), &clock, &store), 2);
    assert_eq!(admitted(&l, 5, &ip("2.2.2.2"), &clock, &store), 2);
}

#[test]
fn allowed_responses_carry_headers_when_asked() {
    let l = limits(json!([
        { "key": "client_ip", "requests": 10, "per_seconds": 1, "name": "ip", "response_headers": true },
        { "key": "route", "requests": 100, "per_seconds": 1, "name": "all" }
    ]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    let d = l.check(&ip("a"), &clock, &store);
    assert!(allowed(&d));
    assert_eq!(
        d.response_headers,
        vec![
            (
                "ratelimit-policy".to_string(),
                "\"ip\";q=10;w=1".to_string()
            ),
            ("ratelimit".to_string(), "\"ip\";r=9;t=1".to_string()),
        ]
    );
}

// ---------------------------------------------------------------- several limits, report mode

#[test]
fn a_denied_request_costs_nothing_on_the_other_limits() {
    let l = limits(json!([
        { "key": "route", "requests": 5, "per_seconds": 60, "name": "global" },
        { "key": "client_ip", "requests": 2, "per_seconds": 60, "name": "per-ip" }
    ]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    // The abuser gets 2 and is then refused by per-ip; the refused requests are refunded to
    // "global", which is therefore still open for 3 others.
    for _ in 0..20 {
        l.check(&ip("abuser"), &clock, &store);
    }
    let last = l.check(&ip("abuser"), &clock, &store);
    assert_eq!(last.outcomes[0].outcome, Outcome::Refunded);
    assert_eq!(last.outcomes[1].outcome, Outcome::Limited);
    let others = ["b", "c", "d", "e"]
        .iter()
        .filter(|a| allowed(&l.check(&ip(a), &clock, &store)))
        .count();
    assert_eq!(others, 3);
}

#[test]
fn evaluation_stops_at_the_first_enforcing_denial() {
    let l = limits(json!([
        { "key": "route", "requests": 1, "per_seconds": 60, "name": "first" },
        { "key": "client_ip", "requests": 1, "per_seconds": 60, "name": "second" }
    ]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    assert!(allowed(&l.check(&ip("a"), &clock, &store)));
    let d = l.check(&ip("b"), &clock, &store);
    assert_eq!(d.outcomes[0].outcome, Outcome::Limited);
    assert_eq!(d.outcomes[1].outcome, Outcome::Skipped);
}

#[test]
fn report_mode_counts_but_never_denies() {
    let l =
        limits(json!([{ "key": "client_ip", "requests": 3, "per_seconds": 60, "mode": "report" }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    let decisions: Vec<_> = (0..10).map(|_| l.check(&ip("a"), &clock, &store)).collect();
    assert!(decisions.iter().all(allowed));
    let hits: usize = decisions.iter().map(|d| d.report_hits().count()).sum();
    assert_eq!(
        hits, 7,
        "exactly the requests enforcement would have refused"
    );
}

// ---------------------------------------------------------------- exactness across workers

#[test]
fn workers_sharing_one_store_admit_exactly_the_burst() {
    // Four workers, each with its own compiled copy of the same config, take turns.
    let config = json!([{ "key": "client_ip", "requests": 10, "per_seconds": 1, "burst": 25 }]);
    let workers: Vec<RouteLimits> = (0..4).map(|_| limits(config.clone())).collect();
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    workers[0].prepare(&store).unwrap();
    let mut admitted = 0;
    for round in 0..40 {
        for w in &workers {
            if allowed(&w.check(&ip("1.2.3.4"), &clock, &store)) {
                admitted += 1;
            }
        }
        if round == 19 {
            // Half a second later: 5 more units.
            clock.advance_ms(500);
        }
    }
    assert_eq!(admitted, 25 + 5);
}

#[test]
fn injected_cas_conflicts_are_retried_without_losing_or_double_spending() {
    let l = limits(json!([{ "key": "client_ip", "requests": 100, "per_seconds": 60 }]));
    let clock = FakeClock::at_secs(T0);
    let inner = MemStore::default();
    let store = ConflictStore::new(&inner, 60);
    let admitted = admitted(&l, 300, &ip("1.2.3.4"), &clock, &store);
    assert!(
        store.injected.get() > 50,
        "conflicts were injected: {}",
        store.injected.get()
    );
    assert_eq!(admitted, 100);
}

#[test]
fn competing_requests_between_read_and_write_are_never_double_counted() {
    // Between a worker's read and its write, another worker's whole request commits.
    let config = json!([{ "key": "client_ip", "requests": 50, "per_seconds": 60 }]);
    let me = limits(config.clone());
    let other = limits(config);
    let clock = FakeClock::at_secs(T0);
    let inner = MemStore::default();
    let other_admitted = Cell::new(0u32);
    let mut store = ConflictStore::new(&inner, 40);
    store.interferer = Some(Box::new(|s: &MemStore| {
        if allowed(&other.check(&ip("1.2.3.4"), &clock, s)) {
            other_admitted.set(other_admitted.get() + 1);
        }
    }));
    let mine = admitted(&me, 200, &ip("1.2.3.4"), &clock, &store);
    assert!(other_admitted.get() > 0 && mine > 0);
    assert_eq!(mine as u32 + other_admitted.get(), 50);
}

#[test]
fn exhausted_cas_retries_fail_closed_and_say_so() {
    let l = limits(json!([{ "key": "client_ip", "requests": 10, "per_seconds": 1 }]));
    let clock = FakeClock::at_secs(T0);
    let inner = MemStore::default();
    l.prepare(&inner).unwrap();
    let d = l.check(&ip("a"), &clock, &AlwaysConflict(&inner));
    assert_eq!(d.denial.as_ref().unwrap().reason, Reason::RateLimited);
    assert_eq!(header(&d, "retry-after"), Some("1"));
    assert_eq!(d.outcomes[0].outcome, Outcome::Contended);
    assert!(d.denial.unwrap().log_detail.unwrap().contains("contended"));
}

#[test]
fn store_failure_is_503_in_enforce_and_only_counted_in_report() {
    let clock = FakeClock::at_secs(T0);
    let l = limits(json!([{ "key": "client_ip", "requests": 10, "per_seconds": 1 }]));
    let d = l.check(&ip("a"), &clock, &Broken);
    assert_eq!(d.denial.unwrap().reason, Reason::Internal);
    let l =
        limits(json!([{ "key": "client_ip", "requests": 10, "per_seconds": 1, "mode": "report" }]));
    let d = l.check(&ip("a"), &clock, &Broken);
    assert!(allowed(&d));
    assert_eq!(d.outcomes[0].outcome, Outcome::StoreError);
}

#[test]
fn threads_hammering_one_key_admit_exactly_the_burst() {
    let config = json!([{ "key": "route", "requests": 1, "per_seconds": 3600, "burst": 500 }]);
    let store = SyncStore::default();
    limits(config.clone()).prepare(&store).unwrap();
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (store, config) = (&store, config.clone());
                s.spawn(move || {
                    let l = limits(config);
                    let clock = FakeClock::at_secs(T0);
                    admitted(&l, 200, &ip("x"), &clock, store)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    // 1600 attempts on a burst of 500: exactly 500 admitted whatever the interleaving. A
    // contended check is denied, never admitted, and the attempts left still fill the bucket.
    assert_eq!(total, 500);
}

// ---------------------------------------------------------------- bounded memory, key floods

#[test]
fn a_flood_of_fresh_keys_never_resets_an_active_abuser() {
    // A tiny table: 2 slots of 4 ways.
    let l =
        limits(json!([{ "key": "client_ip", "requests": 5, "per_seconds": 60, "max_keys": 8 }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    assert_eq!(admitted(&l, 10, &ip("abuser"), &clock, &store), 5);
    for i in 0..10_000 {
        l.check(&ip(&format!("fresh-{i}")), &clock, &store);
        if i % 1000 == 0 {
            clock.advance_ms(1);
        }
    }
    assert!(!allowed(&l.check(&ip("abuser"), &clock, &store)));
    // Memory stayed bounded: 2 slots, whatever the number of keys.
    assert_eq!(store.len(), 2);
}

#[test]
fn untracked_keys_in_a_full_slot_share_one_limited_bucket() {
    // One slot: four tracked keys, everything else shares the overflow bucket.
    let l =
        limits(json!([{ "key": "client_ip", "requests": 3, "per_seconds": 60, "max_keys": 4 }]));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    for a in ["a", "b", "c", "d"] {
        let d = l.check(&ip(a), &clock, &store);
        assert!(allowed(&d) && !d.outcomes[0].overflow);
    }
    let flood: Vec<_> = (0..100)
        .map(|i| l.check(&ip(&format!("n{i}")), &clock, &store))
        .collect();
    assert!(flood.iter().all(|d| d.outcomes[0].overflow));
    assert_eq!(
        flood.iter().filter(|d| allowed(d)).count(),
        3,
        "limited, not unlimited"
    );
    // Tracked keys keep their own buckets.
    assert_eq!(admitted(&l, 5, &ip("a"), &clock, &store), 2);
    // Once a tracked key's bucket is full again, its way can go to a newcomer.
    clock.advance_ms(60_000);
    let d = l.check(&ip("newcomer"), &clock, &store);
    assert!(allowed(&d) && !d.outcomes[0].overflow);
}

// ---------------------------------------------------------------- lockout

#[test]
fn lockout_locks_after_failures_and_expires() {
    let p = lockout(json!({ "failures": 3, "window_seconds": 60, "block_seconds": 120 }));
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    p.prepare(&store).unwrap();
    let me = KeyFacts::new("login", Some("1.2.3.4"));
    for _ in 0..2 {
        assert!(p.record_failure(&me, &clock, &store)[0]
            .locked_until_ms
            .is_none());
        assert!(p.check(&me, &clock, &store).denial.is_none());
    }
    let r = p.record_failure(&me, &clock, &store);
    assert_eq!(r[0].locked_until_ms, Some((T0 + 120) * 1000));
    clock.advance_ms(60_000);
    let d = p.check(&me, &clock, &store).denial.unwrap();
    assert_eq!(d.reason, Reason::LockedOut);
    assert_eq!(d.reason.status(), 429);
    assert_eq!(
        d.headers,
        vec![("retry-after".to_string(), "60".to_string())]
    );
    clock.advance_ms(60_000);
    assert!(p.check(&me, &clock, &store).denial.is_none());
}

#[test]
fn lockout_counts_exactly_across_conflicting_workers() {
    let p = lockout(json!({ "failures": 10, "window_seconds": 60, "block_seconds": 60 }));
    let clock = FakeClock::at_secs(T0);
    let inner = MemStore::default();
    let store = ConflictStore::new(&inner, 50);
    let me = KeyFacts::new("login", Some("1.2.3.4"));
    let mut locked_at = None;
    for n in 1..=10 {
        let r = p.record_failure(&me, &clock, &store);
        assert!(r[0].error.is_none());
        if r[0].locked_until_ms.is_some() {
            locked_at = Some(n);
        }
    }
    assert!(store.injected.get() > 0);
    assert_eq!(locked_at, Some(10));
}

#[test]
fn lockout_flood_of_usernames_cannot_unlock_an_attacked_account() {
    let p = lockout(
        json!({ "keys": ["body:username"], "failures": 2, "window_seconds": 60,
                            "block_seconds": 600, "max_keys": 4 }),
    );
    let clock = FakeClock::at_secs(T0);
    let store = MemStore::default();
    let victim = json!({"username": "victim"}).as_object().cloned().unwrap();
    let facts = KeyFacts {
        body: Some(&victim),
        ..KeyFacts::new("login", Some("6.6.6.6"))
    };
    p.record_failure(&facts, &clock, &store);
    p.record_failure(&facts, &clock, &store);
    for i in 0..1000 {
        let other = json!({"username": format!("u{i}")})
            .as_object()
            .cloned()
            .unwrap();
        let f = KeyFacts {
            body: Some(&other),
            ..KeyFacts::new("login", Some("6.6.6.6"))
        };
        p.record_failure(&f, &clock, &store);
    }
    assert_eq!(
        p.check(&facts, &clock, &store).denial.unwrap().reason,
        Reason::LockedOut
    );
}
