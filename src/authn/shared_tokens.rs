//! Verified tokens shared by every worker of one Envoy, so that a token is verified once per
//! Envoy rather than once per worker (each worker's own cache is [`super::cache`]).
//!
//! The store is proxy-wasm shared data, which cannot delete an entry: the tokens live in a fixed
//! number of slots (`jwt_cache.shared_entries`), a token's slot chosen by its cache key, a newer
//! token overwriting an older one. An entry stands in for verification only when all of these
//! hold, else it is a miss and the worker verifies:
//! - its whole 32-byte cache key (SHA-256 of provider name and token) is this token's;
//! - it was written by the same build under the same provider settings
//!   ([`Provider::verify_digest`]: build, issuer, audiences, algorithms, skew, lifetime rules),
//!   so neither a reconfiguration nor an upgrade inherits it;
//! - the key that verified it is still in the provider's current key set under the same `kid`;
//! - it is within the token's own horizon (`valid_until`), read from the entry.
//!
//! The entry holds no claims: a hit decodes the payload segment of the token the request
//! presented (the one whose SHA-256 matched), with the same strict reader verification used.
//! Only VMs of meshguard's `vm_id` can write this store. A format change bumps [`VERSION`].

use super::alg::Alg;
use super::cache::CacheKey;
use super::config::Provider;
use super::jwks::{KeyFingerprint, KeySet};
use super::verify::VerifiedToken;
use crate::host::SharedStore;

/// Default number of shared slots (0 turns sharing off).
pub const DEFAULT_SHARED_ENTRIES: u32 = 256;
/// Most slots `jwt_cache.shared_entries` may ask for (an entry is about 150 bytes plus its
/// `kid`).
pub const MAX_SHARED_ENTRIES: u32 = 16_384;
/// Entry format; entries of another version are misses.
pub const VERSION: u8 = 2;
/// Longest `kid` shared (a token verified by a key with a longer one is not shared).
const MAX_KID: usize = 256;

/// The shared-data key of the slot `key` falls in, among `slots`.
fn slot_name(key: &CacheKey, slots: u32) -> Option<String> {
    let b = key.as_bytes();
    let head = u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]);
    let slot = head.checked_rem(slots)?;
    Some(format!("meshguard.vt.{slot}"))
}

/// `token` (whose cache key is `key`) as verified, when its slot holds its entry and the entry
/// may stand in for verifying it with `provider` and `keys` at `now_secs`.
pub fn get(
    store: &dyn SharedStore,
    slots: u32,
    key: &CacheKey,
    token: &str,
    provider: &Provider,
    keys: &KeySet,
    now_secs: u64,
) -> Option<VerifiedToken> {
    // Only a compact JWS can have been verified: anything else costs no store read.
    if token.len() > provider.max_token_bytes || token.bytes().filter(|b| *b == b'.').count() != 2 {
        return None;
    }
    let name = slot_name(key, slots)?;
    let (bytes, _) = store.get(&name).ok()??;
    let payload_b64 = token.split('.').nth(1)?;
    decode(&bytes, key, payload_b64, provider, keys, now_secs)
}

/// Publishes a token this worker just verified (best effort: a refused write only means the
/// other workers verify it themselves).
pub fn put(
    store: &dyn SharedStore,
    slots: u32,
    key: &CacheKey,
    provider: &Provider,
    token: &VerifiedToken,
) {
    if token.kid.as_ref().is_some_and(|k| k.len() > MAX_KID) {
        return;
    }
    let Some(name) = slot_name(key, slots) else {
        return;
    };
    let _ = store.set(&name, &encode(key, provider, token), None);
}

/// `[VERSION][cache key 32][provider digest 32][key fingerprint 32][valid_until u64][exp flag
/// u8][exp u64][alg name len u8][alg name][kid flag u8][kid]`, integers little-endian.
fn encode(key: &CacheKey, provider: &Provider, token: &VerifiedToken) -> Vec<u8> {
    let alg = token.alg.name().as_bytes();
    let kid = token.kid.as_deref().unwrap_or("").as_bytes();
    let mut out = Vec::with_capacity(
        125_usize
            .saturating_add(alg.len())
            .saturating_add(kid.len()),
    );
    out.push(VERSION);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&provider.verify_digest);
    out.extend_from_slice(&token.key.to_bytes());
    out.extend_from_slice(&token.valid_until.to_le_bytes());
    out.push(u8::from(token.exp.is_some()));
    out.extend_from_slice(&token.exp.unwrap_or(0).to_le_bytes());
    out.push(u8::try_from(alg.len()).unwrap_or(0));
    out.extend_from_slice(alg);
    out.push(u8::from(token.kid.is_some()));
    out.extend_from_slice(kid);
    out
}

/// Reads fields off the front of an entry; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_le_bytes)
    }
}

fn decode(
    bytes: &[u8],
    key: &CacheKey,
    payload_b64: &str,
    provider: &Provider,
    keys: &KeySet,
    now_secs: u64,
) -> Option<VerifiedToken> {
    let mut c = Cursor(bytes);
    if c.array::<1>()? != [VERSION]
        || &c.array::<32>()? != key.as_bytes()
        || c.array::<32>()? != provider.verify_digest
    {
        return None;
    }
    let fingerprint = KeyFingerprint::from_bytes(c.array::<32>()?);
    let valid_until = c.u64()?;
    if now_secs >= valid_until {
        return None;
    }
    let exp = match (c.array::<1>()?, c.u64()?) {
        ([0], _) => None,
        ([1], e) => Some(e),
        _ => return None,
    };
    let alg_len = usize::from(*c.array::<1>()?.first()?);
    let alg = Alg::parse(std::str::from_utf8(c.take(alg_len)?).ok()?)?;
    let kid = match c.array::<1>()? {
        [0] if c.0.is_empty() => None,
        [1] => Some(std::str::from_utf8(c.0).ok()?.to_string()),
        _ => return None,
    };
    if !keys.still_holds(&fingerprint, kid.as_deref()) {
        return None;
    }
    VerifiedToken::from_verified_parts(payload_b64, kid, alg, exp, fingerprint, valid_until)
}

#[cfg(test)]
#[path = "shared_tokens_tests.rs"]
mod tests;
