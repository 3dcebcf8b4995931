//! Key manager tests: a fake clock (plain milliseconds) and `host::fake::MemStore` shared by
//! several "workers" (one `KeyManager` each), as Envoy's worker VMs share shared data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;
use crate::authn::config::Provider;
use crate::authn::testkit::*;
use crate::authn::verify::{verify, JwtError};
use crate::host::fake::MemStore;
use serde_json::{json, Value};

const T0: u64 = NOW * 1000;
const MAIN: ProviderId = ProviderId(0);

fn remote_providers() -> Providers {
    providers(json!({ "main": {
        "issuer": ISSUER, "audiences": [AUDIENCE],
        "remote_jwks": { "cluster": "idp", "path": "/jwks", "timeout_ms": 1500 } } }))
}

fn jwks_with(kids: &[&str]) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(JWKS).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| kids.contains(&k["kid"].as_str().unwrap()));
    doc.to_string().into_bytes()
}

fn ok(body: &[u8]) -> FetchOutcome<'_> {
    FetchOutcome::Response { status: 200, body }
}

fn ready(m: &mut KeyManager, store: &MemStore) -> Arc<KeySet> {
    match m.keys(MAIN, store) {
        KeyStatus::Ready(k) => k,
        other => panic!("expected keys, got {other:?}"),
    }
}

fn provider_of(ps: &Providers) -> Arc<Provider> {
    ps.get(MAIN).unwrap().clone()
}

#[test]
fn fetches_at_start_and_is_pending_until_the_response() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut m = KeyManager::new(&ps, register_worker(&store));
    assert!(matches!(m.keys(MAIN, &store), KeyStatus::Pending));
    let reqs = m.poll(T0, &store);
    assert_eq!(
        reqs,
        vec![FetchRequest {
            provider: MAIN,
            cluster: "idp".into(),
            path: "/jwks".into(),
            authority: "idp".into(),
            timeout_ms: 1500
        }]
    );
    assert_eq!(m.poll_interval_ms(), FAST_POLL_MS);
    assert!(m.poll(T0 + 100, &store).is_empty(), "one fetch at a time");
    let body = jwks_with(&["rsa-a", "ed25519"]);
    let report = m.on_fetch_response(MAIN, ok(&body), T0 + 200, &store);
    assert_eq!(
        report,
        FetchReport::Updated {
            generation: 1,
            keys: 2,
            warnings: vec![]
        }
    );
    assert_eq!(ready(&mut m, &store).len(), 2);
    assert_eq!(m.poll_interval_ms(), SLOW_POLL_MS);
    assert_eq!(m.stats(MAIN).unwrap().fetch_ok, 1);
}

#[test]
fn workers_share_one_fetch_through_the_lease() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut a = KeyManager::new(&ps, register_worker(&store));
    let mut b = KeyManager::new(&ps, register_worker(&store));
    assert_ne!(a.worker(), b.worker());
    assert_eq!(a.poll(T0, &store).len(), 1);
    assert!(
        b.poll(T0 + 1, &store).is_empty(),
        "b must not fetch while a holds the lease"
    );
    assert!(matches!(b.keys(MAIN, &store), KeyStatus::Pending));
    let body = jwks_with(&["rsa-a"]);
    a.on_fetch_response(MAIN, ok(&body), T0 + 300, &store);
    // b adopts a's key set without fetching.
    assert!(b.poll(T0 + 400, &store).is_empty());
    let kb = ready(&mut b, &store);
    assert_eq!(kb.generation(), 1);
    assert!(kb.by_kid("rsa-a").is_some());
    assert_eq!(b.stats(MAIN).unwrap().adopted, 1);
    assert_eq!(b.stats(MAIN).unwrap().fetch_ok, 0);
    // Nobody refetches before cache_duration (600 s).
    assert!(a.poll(T0 + 599_000, &store).is_empty());
    assert!(b.poll(T0 + 599_000, &store).is_empty());
    // Then exactly one worker does.
    let n = a.poll(T0 + 600_300, &store).len() + b.poll(T0 + 600_301, &store).len();
    assert_eq!(n, 1);
}

#[test]
fn many_workers_polling_make_one_request_per_refresh() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut workers: Vec<KeyManager> = (0..8)
        .map(|_| KeyManager::new(&ps, register_worker(&store)))
        .collect();
    let body = jwks_with(&["rsa-a"]);
    let mut fetches = 0;
    // An hour of 1-second ticks on eight workers.
    for tick in 0..3600u64 {
        let now = T0 + tick * 1000;
        for (i, w) in workers.iter_mut().enumerate() {
            for req in w.poll(now + i as u64, &store) {
                fetches += 1;
                w.on_fetch_response(req.provider, ok(&body), now + i as u64 + 50, &store);
            }
        }
    }
    // At start, then every 600 s: 0, 600, ..., 3000 (the 3600 s refresh is past the loop).
    assert_eq!(fetches, 6);
    for w in &mut workers {
        assert!(matches!(w.keys(MAIN, &store), KeyStatus::Ready(_)));
    }
}

#[test]
fn lease_expires_after_the_fetch_timeout() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut a = KeyManager::new(&ps, register_worker(&store));
    let mut b = KeyManager::new(&ps, register_worker(&store));
    assert_eq!(a.poll(T0, &store).len(), 1);
    // a never answers (its VM went away). b waits for the lease: timeout 1500 + grace 1000.
    assert!(b.poll(T0 + 2_499, &store).is_empty());
    assert_eq!(b.poll(T0 + 2_500, &store).len(), 1);
    // a's late answer still helps: keys published, b's lease untouched until it answers.
    let body = jwks_with(&["rsa-a"]);
    a.on_fetch_response(MAIN, ok(&body), T0 + 2_600, &store);
    assert!(matches!(b.keys(MAIN, &store), KeyStatus::Ready(_)));
    let body2 = jwks_with(&["rsa-a", "rsa-b"]);
    let r = b.on_fetch_response(MAIN, ok(&body2), T0 + 2_700, &store);
    assert!(matches!(
        r,
        FetchReport::Updated {
            generation: 2,
            keys: 2,
            ..
        }
    ));
    assert_eq!(a.poll(T0 + 2_800, &store).len(), 0);
    assert_eq!(ready(&mut a, &store).generation(), 2);
}

#[test]
fn failed_refresh_keeps_the_last_good_keys() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut m = KeyManager::new(&ps, register_worker(&store));
    m.poll(T0, &store);
    let body = jwks_with(&["rsa-a"]);
    m.on_fetch_response(MAIN, ok(&body), T0, &store);
    let mut now = T0 + 600_000;
    for (i, outcome) in [
        FetchOutcome::Failed,
        FetchOutcome::Response {
            status: 503,
            body: b"down",
        },
        ok(b"{\"keys\":[]}"),
        ok(b"<html>"),
        ok(&[b' '; 70_000]),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            m.poll(now - 1, &store).is_empty(),
            "too early for attempt {i}"
        );
        assert_eq!(m.poll(now, &store).len(), 1, "attempt {i}");
        let failed_at = now + 10;
        let report = m.on_fetch_response(MAIN, outcome, failed_at, &store);
        // Backoff from the failure: 1 s, 2 s, 4 s, 8 s, ...
        now = failed_at + (1_000 << i);
        assert!(
            matches!(
                report,
                FetchReport::Failed {
                    kept_previous: true,
                    ..
                }
            ),
            "{i}: {report:?}"
        );
        let keys = ready(&mut m, &store);
        assert_eq!(keys.generation(), 1);
        assert!(keys.by_kid("rsa-a").is_some());
    }
    let stats = m.stats(MAIN).unwrap();
    assert_eq!((stats.fetch_ok, stats.fetch_failed), (1, 5));
    assert!(stats.last_error.as_deref().unwrap().contains("65536"));
}

#[test]
fn backoff_after_failures_is_capped() {
    let meta = |failures| Meta {
        failures,
        ..Meta::default()
    };
    assert_eq!(meta(0).retry_delay_ms(), 0);
    assert_eq!(meta(1).retry_delay_ms(), 1_000);
    assert_eq!(meta(3).retry_delay_ms(), 4_000);
    assert_eq!(meta(7).retry_delay_ms(), 60_000);
    assert_eq!(meta(u64::MAX).retry_delay_ms(), 60_000);
    for n in 1..200 {
        let d = meta(n).retry_delay_ms();
        assert!((FIRST_RETRY_MS..=MAX_RETRY_MS).contains(&d), "{n}: {d}");
    }
}

#[test]
fn failed_first_fetch_makes_keys_unavailable_for_every_worker() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut a = KeyManager::new(&ps, register_worker(&store));
    let mut b = KeyManager::new(&ps, register_worker(&store));
    a.poll(T0, &store);
    let r = a.on_fetch_response(MAIN, FetchOutcome::Failed, T0 + 1500, &store);
    assert!(matches!(
        r,
        FetchReport::Failed {
            kept_previous: false,
            ..
        }
    ));
    assert!(matches!(a.keys(MAIN, &store), KeyStatus::Unavailable));
    assert!(matches!(b.keys(MAIN, &store), KeyStatus::Unavailable));
    // Retry after 1 s, by whichever worker polls first.
    assert!(b.poll(T0 + 2_000, &store).is_empty());
    assert_eq!(b.poll(T0 + 2_500, &store).len(), 1);
    let body = jwks_with(&["ec-p256"]);
    b.on_fetch_response(MAIN, ok(&body), T0 + 2_600, &store);
    assert!(matches!(a.keys(MAIN, &store), KeyStatus::Ready(_)));
}

#[test]
fn unknown_kid_triggers_one_rate_limited_refetch() {
    let ps = remote_providers();
    let p = provider_of(&ps);
    let store = MemStore::default();
    let mut m = KeyManager::new(&ps, register_worker(&store));
    m.poll(T0, &store);
    let old = jwks_with(&["rsa-a"]);
    m.on_fetch_response(MAIN, ok(&old), T0, &store);

    // The issuer rotates to rsa-b; a token signed with it arrives 40 s later.
    let rotated = token("rsa-b", "RS256", good_claims());
    let keys = ready(&mut m, &store);
    assert_eq!(
        verify(&rotated, &p, &keys, NOW + 40).unwrap_err(),
        JwtError::UnknownKid
    );
    let t = T0 + 40_000;
    let UnknownKidAction::Fetch(req) = m.on_unknown_kid(MAIN, t, &store) else {
        panic!("expected a refetch");
    };
    assert_eq!(req.path, "/jwks");
    // While it is in flight, more unknown kids wait for it.
    assert_eq!(
        m.on_unknown_kid(MAIN, t + 10, &store),
        UnknownKidAction::Wait
    );
    let new = jwks_with(&["rsa-a", "rsa-b"]);
    m.on_fetch_response(MAIN, ok(&new), t + 100, &store);
    let keys = ready(&mut m, &store);
    assert!(verify(&rotated, &p, &keys, NOW + 40).is_ok());

    // A token with a kid nobody has: no second refetch within 30 s of the last attempt.
    assert_eq!(
        m.on_unknown_kid(MAIN, t + 29_999, &store),
        UnknownKidAction::Reject
    );
    assert!(matches!(
        m.on_unknown_kid(MAIN, t + 30_000, &store),
        UnknownKidAction::Fetch(_)
    ));
}

#[test]
fn removed_key_fails_once_the_set_is_refreshed() {
    let ps = remote_providers();
    let p = provider_of(&ps);
    let store = MemStore::default();
    let mut m = KeyManager::new(&ps, register_worker(&store));
    m.poll(T0, &store);
    let both = jwks_with(&["rsa-a", "rsa-b"]);
    m.on_fetch_response(MAIN, ok(&both), T0, &store);
    let old_token = good_rs256_token(); // rsa-a
    assert!(verify(&old_token, &p, &ready(&mut m, &store), NOW).is_ok());
    assert_eq!(m.poll(T0 + 600_000, &store).len(), 1);
    let only_b = jwks_with(&["rsa-b"]);
    m.on_fetch_response(MAIN, ok(&only_b), T0 + 600_100, &store);
    let keys = ready(&mut m, &store);
    assert_eq!(
        verify(&old_token, &p, &keys, NOW + 600).unwrap_err(),
        JwtError::UnknownKid
    );
}

#[test]
fn unknown_kid_in_another_worker_uses_the_published_refetch() {
    let ps = remote_providers();
    let store = MemStore::default();
    let mut a = KeyManager::new(&ps, register_worker(&store));
    let mut b = KeyManager::new(&ps, register_worker(&store));
    a.poll(T0, &store);
    let old = jwks_with(&["rsa-a"]);
    a.on_fetch_response(MAIN, ok(&old), T0, &store);
    b.poll(T0 + 1, &store);
    let t = T0 + 60_000;
    assert!(matches!(
        a.on_unknown_kid(MAIN, t, &store),
        UnknownKidAction::Fetch(_)
    ));
    assert_eq!(
        b.on_unknown_kid(MAIN, t + 5, &store),
        UnknownKidAction::Wait
    );
    let new = jwks_with(&["rsa-a", "rsa-b"]);
    a.on_fetch_response(MAIN, ok(&new), t + 50, &store);
    let before = b.generation(MAIN);
    assert_eq!(
        b.on_unknown_kid(MAIN, t + 60, &store),
        UnknownKidAction::Retry
    );
    assert_eq!(b.generation(MAIN), before + 1);
    assert!(ready(&mut b, &store).by_kid("rsa-b").is_some());
}

#[test]
fn static_providers_never_fetch() {
    let ps = providers(json!({ "main": provider_json() }));
    let store = MemStore::default();
    let mut m = KeyManager::new(&ps, 1);
    assert!(m.poll(T0, &store).is_empty());
    assert_eq!(ready(&mut m, &store).len(), 5);
    assert_eq!(m.on_unknown_kid(MAIN, T0, &store), UnknownKidAction::Reject);
    assert_eq!(
        m.on_fetch_response(MAIN, FetchOutcome::Failed, T0, &store),
        FetchReport::NotRemote
    );
    assert!(store.is_empty());
    assert_eq!(m.poll_interval_ms(), SLOW_POLL_MS);
}

/// A store whose every call fails.
struct BrokenStore;

impl SharedStore for BrokenStore {
    fn get(&self, _: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Err(StoreError::Unavailable)
    }
    fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable)
    }
}

#[test]
fn broken_store_degrades_to_per_worker_fetching() {
    let ps = remote_providers();
    assert_eq!(register_worker(&BrokenStore), 1);
    let mut m = KeyManager::new(&ps, 1);
    assert_eq!(m.poll(T0, &BrokenStore).len(), 1);
    assert!(m.poll(T0 + 10, &BrokenStore).is_empty());
    let body = jwks_with(&["rsa-a"]);
    assert!(matches!(
        m.on_fetch_response(MAIN, ok(&body), T0 + 20, &BrokenStore),
        FetchReport::Updated { .. }
    ));
    assert!(matches!(m.keys(MAIN, &BrokenStore), KeyStatus::Ready(_)));
    assert!(m.poll(T0 + 599_000, &BrokenStore).is_empty());
    assert_eq!(m.poll(T0 + 600_020, &BrokenStore).len(), 1);
}

#[test]
fn corrupt_shared_records_are_ignored() {
    let ps = remote_providers();
    let store = MemStore::default();
    let key = provider_of(&ps).remote().unwrap().store_key.clone();
    store.set(&format!("{key}.meta"), b"garbage", None).unwrap();
    store.set(&format!("{key}.body"), b"x", None).unwrap();
    let mut m = KeyManager::new(&ps, register_worker(&store));
    assert_eq!(m.poll(T0, &store).len(), 1);
    let body = jwks_with(&["rsa-a"]);
    m.on_fetch_response(MAIN, ok(&body), T0 + 1, &store);
    let mut other = KeyManager::new(&ps, register_worker(&store));
    assert!(matches!(other.keys(MAIN, &store), KeyStatus::Ready(_)));
}

#[test]
fn stale_body_with_a_higher_generation_is_superseded() {
    let ps = remote_providers();
    let store = MemStore::default();
    let key = provider_of(&ps).remote().unwrap().store_key.clone();
    // A body left at generation 9 while the schedule says nothing was ever fetched.
    let mut stale = 9u64.to_le_bytes().to_vec();
    stale.extend_from_slice(&T0.to_le_bytes());
    stale.extend_from_slice(&jwks_with(&["rsa-a"]));
    store.set(&format!("{key}.body"), &stale, None).unwrap();
    let mut a = KeyManager::new(&ps, register_worker(&store));
    let mut b = KeyManager::new(&ps, register_worker(&store));
    assert_eq!(a.poll(T0, &store).len(), 1);
    let fresh = jwks_with(&["rsa-b"]);
    let r = a.on_fetch_response(MAIN, ok(&fresh), T0 + 10, &store);
    assert!(
        matches!(r, FetchReport::Updated { generation: 10, .. }),
        "{r:?}"
    );
    let kb = ready(&mut b, &store);
    assert_eq!(kb.generation(), 10);
    assert!(kb.by_kid("rsa-b").is_some());
}

#[test]
fn meta_round_trips() {
    let m = Meta {
        generation: 3,
        last_success_ms: 4,
        last_attempt_ms: 5,
        failures: 6,
        lease_owner: 7,
        lease_expires_ms: 8,
    };
    assert_eq!(Meta::decode(&m.encode()), Some(m));
    assert_eq!(Meta::decode(&m.encode()[..55]), None);
}
