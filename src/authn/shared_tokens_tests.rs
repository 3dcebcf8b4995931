use super::*;
use crate::authn::testkit::*;
use crate::authn::verify::verify;
use crate::host::fake::MemStore;
use serde_json::json;

const SLOTS: u32 = 64;

fn keyset(drop_kid: Option<&str>) -> KeySet {
    fixture_keys(drop_kid, |_| {})
}

/// A token verified by one worker and published.
fn published(store: &MemStore, token: &str) -> (CacheKey, VerifiedToken) {
    let p = provider();
    let keys = keyset(None);
    let v = verify(token, &p, &keys, NOW).unwrap();
    let key = CacheKey::new(&p.name, token);
    put(store, SLOTS, &key, &p, &v);
    (key, v)
}

#[test]
fn another_worker_reads_the_same_verified_token() {
    let store = MemStore::default();
    for token in [good_rs256_token(), good_es256_token(), good_eddsa_token()] {
        let (key, v) = published(&store, &token);
        let got = get(&store, SLOTS, &key, &token, &provider(), &keyset(None), NOW).unwrap();
        assert_eq!(got.claims, v.claims);
        assert_eq!((got.iss, got.sub, got.kid), (v.iss, v.sub, v.kid));
        assert_eq!((got.alg, got.exp, got.key), (v.alg, v.exp, v.key));
        assert_eq!(
            (got.payload_b64, got.valid_until),
            (v.payload_b64, v.valid_until)
        );
    }
}

#[test]
fn an_entry_stands_in_only_for_its_token_settings_key_and_time() {
    let store = MemStore::default();
    let token = good_eddsa_token();
    let (key, v) = published(&store, &token);
    let p = provider();
    let keys = keyset(None);
    // Another token (same slot or not), another provider name: other keys, misses.
    let other = CacheKey::new(&p.name, &good_rs256_token());
    assert!(get(&store, SLOTS, &other, &good_rs256_token(), &p, &keys, NOW).is_none());
    let renamed = CacheKey::new("other", &token);
    assert!(get(&store, SLOTS, &renamed, &token, &p, &keys, NOW).is_none());
    // The same provider name with other settings (a reconfiguration): a miss.
    let stricter = provider_with(|j| j["audiences"] = json!(["elsewhere"]));
    assert!(get(&store, SLOTS, &key, &token, &stricter, &keys, NOW).is_none());
    // The key that verified it left the set (rotation): a miss.
    let kid = v.kid.clone().unwrap();
    assert!(get(&store, SLOTS, &key, &token, &p, &keyset(Some(&kid)), NOW).is_none());
    // At and after the token's horizon: a miss.
    assert!(get(&store, SLOTS, &key, &token, &p, &keys, v.valid_until).is_none());
    assert!(get(&store, SLOTS, &key, &token, &p, &keys, v.valid_until - 1).is_some());
}

#[test]
fn a_newer_token_in_the_slot_turns_the_older_into_a_miss() {
    let store = MemStore::default();
    let (a, _) = published(&store, &good_eddsa_token());
    let p = provider();
    let keys = keyset(None);
    // One slot: every token lands in it.
    let v = verify(&good_rs256_token(), &p, &keys, NOW).unwrap();
    let b = CacheKey::new(&p.name, &good_rs256_token());
    put(
        &store,
        1,
        &a,
        &p,
        &verify(&good_eddsa_token(), &p, &keys, NOW).unwrap(),
    );
    put(&store, 1, &b, &p, &v);
    assert!(get(&store, 1, &a, &good_eddsa_token(), &p, &keys, NOW).is_none());
    assert!(get(&store, 1, &b, &good_rs256_token(), &p, &keys, NOW).is_some());
}

#[test]
fn damaged_or_foreign_entries_are_misses_without_panic() {
    let store = MemStore::default();
    let token = good_eddsa_token();
    let (key, _) = published(&store, &token);
    let name = slot_name(&key, SLOTS).unwrap();
    let (good, _) = store.get(&name).unwrap().unwrap();
    let p = provider();
    let keys = keyset(None);
    let payload = token.split('.').nth(1).unwrap();
    // Every truncation, and every single-byte change, is a miss or the same token.
    for n in 0..good.len() {
        assert!(decode(&good[..n], &key, payload, &p, &keys, NOW).is_none_or(|t| t.sub.is_some()));
    }
    for i in 0..good.len() {
        for x in [0x00, 0x01, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= x;
            let _ = decode(&bad, &key, payload, &p, &keys, NOW);
        }
    }
    // Another version's entry is a miss.
    let mut old = good.clone();
    old[0] = VERSION.wrapping_add(1);
    assert!(decode(&old, &key, payload, &p, &keys, NOW).is_none());
    // The claims come from the presented token, never from the store: a payload that is not
    // JSON is a miss (and with the wrong token the key would not have matched at all).
    assert!(decode(&good, &key, "bm90IGpzb24", &p, &keys, NOW).is_none());
    // Not a compact JWS: no store read at all.
    assert!(get(&store, SLOTS, &key, "a.b", &p, &keys, NOW).is_none());
}

#[test]
fn a_kid_moved_to_other_material_or_other_settings_are_misses() {
    let store = MemStore::default();
    let token = good_rs256_token();
    let (key, v) = published(&store, &token);
    let p = provider();
    // Swap the kids of the two RSA keys: the token's key is still in the set, under another
    // kid; verify() would refuse it, so must the store.
    let kid = v.kid.clone().unwrap();
    let swapped = fixture_keys(None, swap_rsa_kids);
    assert!(swapped.contains(&v.key));
    assert!(verify(&token, &p, &swapped, NOW).is_err());
    assert!(get(&store, SLOTS, &key, &token, &p, &swapped, NOW).is_none());
    assert!(kid.starts_with("rsa"));
    // `max_lifetime_seconds` unset and set to u64::MAX differ.
    let unset = provider_with(|j| j["require_expiration"] = json!(false));
    let huge = provider_with(|j| {
        j["require_expiration"] = json!(false);
        j["max_lifetime_seconds"] = json!(u64::MAX);
    });
    assert_ne!(unset.verify_digest, huge.verify_digest);
}

#[test]
fn zero_slots_share_nothing() {
    let store = MemStore::default();
    let p = provider();
    let keys = keyset(None);
    let token = good_eddsa_token();
    let v = verify(&token, &p, &keys, NOW).unwrap();
    let key = CacheKey::new(&p.name, &token);
    put(&store, 0, &key, &p, &v);
    assert_eq!(store.len(), 0);
    assert!(get(&store, 0, &key, &token, &p, &keys, NOW).is_none());
}
