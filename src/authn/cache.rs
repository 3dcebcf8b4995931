//! Was this exact token verified already? A bounded per-worker cache of verified tokens, so a
//! token reused by a client costs a SHA-256 and a lookup instead of a signature check.
//!
//! Entries are keyed by SHA-256 of (provider name, token) and compared on all 32 bytes, so a hash
//! collision cannot return another token's claims. An entry is valid until the token's own
//! horizon ([`VerifiedToken::valid_until`]: `exp` plus skew) and only while the key that
//! verified it is still in the provider's key set: when the key set's generation changes, the
//! entry survives only if its key's fingerprint is still present. Eviction is CLOCK (second
//! chance), O(1) amortised. Failures are never cached. This module never verifies anything.

use super::jwks::KeySet;
use super::verify::VerifiedToken;
use ring::digest;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

/// Default number of cached tokens per worker.
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;

/// SHA-256 of the provider name and the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key for `token` verified by provider `provider`.
    pub fn new(provider: &str, token: &str) -> CacheKey {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&(provider.len() as u64).to_be_bytes());
        ctx.update(provider.as_bytes());
        ctx.update(token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        CacheKey(out)
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Hash for CacheKey {
    // The key is already a uniform digest: its first 8 bytes are a good hash.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut head = [0u8; 8];
        head.copy_from_slice(self.0.get(..8).unwrap_or(&[0u8; 8]));
        state.write_u64(u64::from_le_bytes(head));
    }
}

/// Passes a digest prefix through (no SipHash, no random seed needed).
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

struct Slot {
    key: CacheKey,
    token: Arc<VerifiedToken>,
    generation: u64,
    referenced: bool,
}

/// Hit, miss and eviction counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
}

/// Tokens whose cache key is remembered, by exact comparison (a few per worker).
const MEMO_ENTRIES: usize = 8;
/// Longest token the memo keeps (typical JWTs are well under 2 KiB).
const MEMO_MAX_TOKEN_BYTES: usize = 4096;

/// The verified-token cache of one worker.
pub struct TokenCache {
    slots: Vec<Slot>,
    index: HashMap<CacheKey, usize, BuildHasherDefault<PrefixHasher>>,
    hand: usize,
    capacity: usize,
    stats: CacheStats,
    /// The cache keys of the last tokens seen: (provider, token, key). A client that reuses its
    /// token finds the key by an exact comparison instead of a SHA-256 of the whole token
    /// (measured under V8: 2.4 us for an RS256 token, about as much as the rest of the hit).
    memo: Vec<(String, String, CacheKey)>,
    memo_next: usize,
    /// Slots of the store shared by the workers ([`super::shared_tokens`]); 0: not shared.
    shared_slots: u32,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            slots: Vec::new(),
            index: HashMap::default(),
            hand: 0,
            capacity,
            stats: CacheStats::default(),
            memo: Vec::new(),
            memo_next: 0,
            shared_slots: 0,
        }
    }

    /// Also shares verified tokens with the other workers in `slots` entries (0: not shared).
    pub fn with_shared(mut self, slots: u32) -> TokenCache {
        self.shared_slots = slots;
        self
    }

    /// Slots of the shared store (0: not shared).
    pub fn shared_slots(&self) -> u32 {
        self.shared_slots
    }

    /// [`CacheKey::new`] for this provider and token, remembered for the last few tokens (exact
    /// comparison of provider and token, so the memo can never return another token's key).
    pub fn key_for(&mut self, provider: &str, token: &str) -> CacheKey {
        if let Some((_, _, key)) = self
            .memo
            .iter()
            .find(|(p, t, _)| t.len() == token.len() && t == token && p == provider)
        {
            return *key;
        }
        let key = CacheKey::new(provider, token);
        if self.capacity > 0 && token.len() <= MEMO_MAX_TOKEN_BYTES {
            let entry = (provider.to_string(), token.to_string(), key);
            match self.memo.get_mut(self.memo_next) {
                Some(slot) => *slot = entry,
                None => self.memo.push(entry),
            }
            self.memo_next = (self.memo_next + 1) % MEMO_ENTRIES;
        }
        key
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The cached verification of this token, if it is still valid at `now_secs` and its key is
    /// still in `keys` (the provider's current key set).
    pub fn get(
        &mut self,
        key: &CacheKey,
        keys: &KeySet,
        now_secs: u64,
    ) -> Option<Arc<VerifiedToken>> {
        let found = self.lookup(key, keys, now_secs);
        if found.is_some() {
            self.stats.hits = self.stats.hits.saturating_add(1);
        } else {
            self.stats.misses = self.stats.misses.saturating_add(1);
        }
        found
    }

    fn lookup(
        &mut self,
        key: &CacheKey,
        keys: &KeySet,
        now_secs: u64,
    ) -> Option<Arc<VerifiedToken>> {
        let i = *self.index.get(key)?;
        let slot = self.slots.get_mut(i)?;
        let expired = now_secs >= slot.token.valid_until;
        let key_gone = slot.generation != keys.generation()
            && !keys.still_holds(&slot.token.key, slot.token.kid.as_deref());
        if expired || key_gone {
            self.remove(i);
            return None;
        }
        slot.generation = keys.generation();
        slot.referenced = true;
        Some(slot.token.clone())
    }

    /// Caches a token just verified with `keys`.
    pub fn insert(&mut self, key: CacheKey, token: Arc<VerifiedToken>, keys: &KeySet) {
        if self.capacity == 0 {
            return;
        }
        let slot = Slot {
            key,
            token,
            generation: keys.generation(),
            referenced: false,
        };
        if let Some(&i) = self.index.get(&key) {
            if let Some(s) = self.slots.get_mut(i) {
                *s = slot;
            }
            return;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(key, self.slots.len());
            self.slots.push(slot);
            return;
        }
        let victim = self.pick_victim();
        if let Some(s) = self.slots.get_mut(victim) {
            self.index.remove(&s.key);
            *s = slot;
            self.index.insert(key, victim);
            self.stats.evictions = self.stats.evictions.saturating_add(1);
        }
    }

    /// CLOCK: the first slot from the hand whose reference bit is clear, clearing bits on the
    /// way. Two sweeps always suffice.
    fn pick_victim(&mut self) -> usize {
        let n = self.slots.len();
        for _ in 0..n.saturating_mul(2) {
            let i = self.hand % n.max(1);
            self.hand = (i + 1) % n.max(1);
            match self.slots.get_mut(i) {
                Some(s) if s.referenced => s.referenced = false,
                _ => return i,
            }
        }
        self.hand
    }

    fn remove(&mut self, i: usize) {
        if i >= self.slots.len() {
            return;
        }
        let removed = self.slots.swap_remove(i);
        self.index.remove(&removed.key);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.key, i);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::testkit::*;
    use crate::authn::verify::verify;
    use serde_json::json;

    #[test]
    fn remembered_keys_are_exact_and_bounded() {
        let mut cache = TokenCache::new(16);
        let t = "a".repeat(300);
        assert_eq!(cache.key_for("p", &t), CacheKey::new("p", &t));
        // Remembered: the same answer, still equal to a fresh digest.
        assert_eq!(cache.key_for("p", &t), CacheKey::new("p", &t));
        // Same length, one byte different; same token, other provider: other keys.
        let mut u = t.clone();
        u.replace_range(299.., "b");
        assert_ne!(cache.key_for("p", &u), cache.key_for("p", &t));
        assert_ne!(cache.key_for("q", &t), cache.key_for("p", &t));
        for i in 0..100 {
            let _ = cache.key_for("p", &format!("{t}{i}"));
        }
        assert_eq!(cache.memo.len(), MEMO_ENTRIES);
        // Too long to remember, and nothing remembered when caching is off.
        let long = "x".repeat(MEMO_MAX_TOKEN_BYTES + 1);
        let _ = cache.key_for("p", &long);
        assert!(cache.memo.iter().all(|(_, m, _)| m != &long));
        let mut off = TokenCache::new(0);
        let _ = off.key_for("p", &t);
        assert!(off.memo.is_empty());
    }

    fn keyset(generation: u64, drop_kid: Option<&str>) -> KeySet {
        fixture_keys(drop_kid, |_| {}).with_generation(generation)
    }

    fn verified(token: &str, keys: &KeySet) -> Arc<VerifiedToken> {
        Arc::new(verify(token, &provider(), keys, NOW).unwrap())
    }

    fn eddsa_token(sub: &str) -> String {
        let mut c = good_claims();
        c["sub"] = json!(sub);
        token("ed25519", "EdDSA", c)
    }

    #[test]
    fn reused_token_is_a_hit() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(4);
        let t = good_eddsa_token();
        let k = CacheKey::new("main", &t);
        assert!(cache.get(&k, &keys, NOW).is_none());
        cache.insert(k, verified(&t, &keys), &keys);
        assert_eq!(
            cache.get(&k, &keys, NOW).unwrap().sub.as_deref(),
            Some("alice")
        );
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                evictions: 0
            }
        );
    }

    #[test]
    fn key_depends_on_provider_and_whole_token() {
        let t = good_eddsa_token();
        assert_ne!(CacheKey::new("main", &t), CacheKey::new("other", &t));
        assert_ne!(
            CacheKey::new("main", &t),
            CacheKey::new("main", &format!("{t}x"))
        );
        // Length-prefixed: moving bytes between provider and token changes the key.
        assert_ne!(CacheKey::new("ab", "c"), CacheKey::new("a", "bc"));
    }

    #[test]
    fn entry_expires_with_the_token() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(4);
        let t = good_eddsa_token();
        let k = CacheKey::new("main", &t);
        let v = verified(&t, &keys);
        let until = v.valid_until;
        assert_eq!(until, NOW + 3600 + 60);
        cache.insert(k, v, &keys);
        assert!(cache.get(&k, &keys, until - 1).is_some());
        assert!(cache.get(&k, &keys, until).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn entry_dropped_when_its_key_leaves_the_set() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(4);
        let t = good_eddsa_token();
        let k = CacheKey::new("main", &t);
        cache.insert(k, verified(&t, &keys), &keys);
        // Next generation still has the key: the entry survives.
        assert!(cache.get(&k, &keyset(2, Some("rsa-b")), NOW).is_some());
        // Generation 3 dropped the Ed25519 key: the entry goes.
        assert!(cache.get(&k, &keyset(3, Some("ed25519")), NOW).is_none());
        assert!(cache.get(&k, &keyset(3, None), NOW).is_none());
    }

    #[test]
    fn entry_dropped_when_its_kid_moves_to_other_material() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(4);
        let t = good_rs256_token();
        let k = CacheKey::new("main", &t);
        cache.insert(k, verified(&t, &keys), &keys);
        // Generation 2 swaps the kids of the two RSA keys: the key is still in the set, under
        // another kid, so verify() would refuse the token; the cache must not answer for it.
        let swapped = fixture_keys(None, swap_rsa_kids).with_generation(2);
        assert!(cache.get(&k, &swapped, NOW).is_none());
    }

    #[test]
    fn evicts_unreferenced_entries_first_when_full() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(3);
        let tokens: Vec<String> = (0..4).map(|i| eddsa_token(&format!("u{i}"))).collect();
        let key = |i: usize| CacheKey::new("main", &tokens[i]);
        for (i, t) in tokens.iter().take(3).enumerate() {
            cache.insert(key(i), verified(t, &keys), &keys);
        }
        // Touch 0 and 2: 1 is the only entry without a second chance.
        assert!(cache.get(&key(0), &keys, NOW).is_some());
        assert!(cache.get(&key(2), &keys, NOW).is_some());
        cache.insert(key(3), verified(&tokens[3], &keys), &keys);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key(1), &keys, NOW).is_none());
        for i in [0, 2, 3] {
            assert!(cache.get(&key(i), &keys, NOW).is_some(), "{i}");
        }
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn stays_bounded_under_churn() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(8);
        let v = verified(&good_eddsa_token(), &keys);
        for i in 0..100 {
            let k = CacheKey::new("main", &format!("token-{i}"));
            cache.insert(k, v.clone(), &keys);
            if i % 3 == 0 {
                let _ = cache.get(&k, &keys, NOW);
            }
            assert!(cache.len() <= 8);
        }
        assert_eq!(cache.stats().evictions, 92);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let keys = keyset(1, None);
        let mut cache = TokenCache::new(0);
        let t = good_eddsa_token();
        let k = CacheKey::new("main", &t);
        cache.insert(k, verified(&t, &keys), &keys);
        assert!(cache.get(&k, &keys, NOW).is_none());
    }
}
