//! Which key set is current for each provider, and when must a remote JWKS be fetched?
//!
//! A pure state machine driven by the adapter: `poll` on every tick (and at start), the fetch
//! result through `on_fetch_response`, `keys` on the request path, `on_unknown_kid` when a token
//! names a key the set lacks. Time is given in Unix milliseconds.
//!
//! **All workers share one key set** through the host's process-wide [`SharedStore`]:
//! - `<store_key>.meta` holds the schedule and a fetch lease: generation, last success, last
//!   attempt, consecutive failures, lease owner and lease expiry (fixed little-endian u64s).
//!   A worker fetches only after winning the lease by compare-and-swap; the lease expires
//!   `timeout_ms` + [`LEASE_GRACE_MS`] after it was taken, so a worker that never answers cannot
//!   block the others. Because the schedule lives in the store, the refresh period, the
//!   failure backoff and the unknown-`kid` rate limit hold per Envoy process, not per worker.
//! - `<store_key>.body` holds the last good JWKS bytes with their generation and fetch time.
//!   Other workers notice a new generation in `.meta` on their next poll and decode the body
//!   once per generation.
//!
//! A fetch that fails (transport error, non-200, oversize, no usable key) never replaces the
//! last good set: it is counted, the backoff grows (1 s doubling to 60 s), and the old keys stay.
//! Without any good set a provider is `Pending` until the first fetch fails, then `Unavailable`
//! (the caller answers 503, never allows). Envoy's shared data cannot create a key atomically,
//! so at the very first start two workers may both take the lease: the worst case is a
//! duplicate fetch, never a wrong key set.

use super::config::{KeySource, ProviderId, Providers, RemoteJwks};
use super::jwks::{decode_jwks, KeySet, KeyWarning};
use crate::host::{SharedStore, StoreError};
use std::sync::Arc;

/// Extra lease time beyond the fetch timeout, for callback scheduling delays.
pub const LEASE_GRACE_MS: u64 = 1000;
/// First retry delay after a failed fetch; doubles per consecutive failure.
pub const FIRST_RETRY_MS: u64 = 1000;
/// Longest retry delay after failed fetches.
pub const MAX_RETRY_MS: u64 = 60_000;
/// Poll period while some provider waits for keys.
pub const FAST_POLL_MS: u64 = 100;
/// Poll period otherwise.
pub const SLOW_POLL_MS: u64 = 1000;
/// Shared-store key of the worker-id counter.
pub const WORKER_COUNTER_KEY: &str = "meshguard.jwks.workers";

const CAS_RETRIES: usize = 4;
const META_VERSION: u64 = 1;

/// A JWKS fetch the adapter must dispatch (`GET path` to `cluster` with `:authority`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The provider it is for; pass it back to [`KeyManager::on_fetch_response`].
    pub provider: ProviderId,
    /// Envoy cluster.
    pub cluster: String,
    /// Request path.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Timeout for `dispatch_http_call`.
    pub timeout_ms: u64,
}

/// How a fetch ended.
#[derive(Debug, Clone, Copy)]
pub enum FetchOutcome<'a> {
    /// An HTTP response arrived.
    Response {
        /// Its status.
        status: u16,
        /// Its body.
        body: &'a [u8],
    },
    /// No response: dispatch failed, connection failed, or timeout.
    Failed,
}

/// What a finished fetch did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchReport {
    /// A new key set is in use and published to the other workers.
    Updated {
        /// Its generation.
        generation: u64,
        /// Usable keys.
        keys: usize,
        /// Keys that were skipped.
        warnings: Vec<KeyWarning>,
    },
    /// The fetch failed; the previous key set (if any) stays.
    Failed {
        /// Why.
        reason: String,
        /// True when a previous good key set is still in use.
        kept_previous: bool,
    },
    /// The provider has no remote JWKS.
    NotRemote,
}

/// The keys a provider can use right now.
#[derive(Debug, Clone)]
pub enum KeyStatus {
    /// A key set is available.
    Ready(Arc<KeySet>),
    /// No key set yet and no fetch has failed: wait (bounded by the fetch timeout).
    Pending,
    /// No key set and the last fetch failed: answer 503 (`jwks_unavailable`).
    Unavailable,
}

/// What to do with a token whose `kid` is not in the key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownKidAction {
    /// Another worker already published newer keys: verify again now.
    Retry,
    /// Dispatch this refetch, then verify again when it completes.
    Fetch(FetchRequest),
    /// A fetch is in flight (here or in another worker): verify again when the generation
    /// changes, or refuse after the fetch timeout.
    Wait,
    /// No refetch now (static keys, or one happened less than `min_refetch_interval` ago):
    /// refuse the token (`jwt_unknown_kid`).
    Reject,
}

/// Per-provider fetch counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Fetches by this worker that produced a key set.
    pub fetch_ok: u64,
    /// Fetches by this worker that failed.
    pub fetch_failed: u64,
    /// Key sets taken from other workers.
    pub adopted: u64,
    /// Why the last failure happened.
    pub last_error: Option<String>,
}

/// The schedule and lease of one JWKS source, as stored in `<store_key>.meta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta {
    generation: u64,
    last_success_ms: u64,
    last_attempt_ms: u64,
    failures: u64,
    lease_owner: u64,
    lease_expires_ms: u64,
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        [
            META_VERSION,
            self.generation,
            self.last_success_ms,
            self.last_attempt_ms,
            self.failures,
            self.lease_owner,
            self.lease_expires_ms,
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
    }

    fn decode(bytes: &[u8]) -> Option<Meta> {
        let f = |i: usize| read_u64(bytes, i);
        if bytes.len() != 56 || f(0)? != META_VERSION {
            return None;
        }
        Some(Meta {
            generation: f(1)?,
            last_success_ms: f(2)?,
            last_attempt_ms: f(3)?,
            failures: f(4)?,
            lease_owner: f(5)?,
            lease_expires_ms: f(6)?,
        })
    }

    fn leased(&self, now_ms: u64) -> bool {
        self.lease_owner != 0 && now_ms < self.lease_expires_ms
    }

    fn retry_delay_ms(&self) -> u64 {
        match self.failures {
            0 => 0,
            // Past 2^16 the cap is long reached; shifting further would drop bits.
            n if n > 16 => MAX_RETRY_MS,
            n => (FIRST_RETRY_MS << n.saturating_sub(1)).min(MAX_RETRY_MS),
        }
    }
}

fn read_u64(bytes: &[u8], i: usize) -> Option<u64> {
    let start = i.checked_mul(8)?;
    let chunk = bytes.get(start..start.checked_add(8)?)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(chunk);
    Some(u64::from_le_bytes(b))
}

struct Slot {
    remote: Option<RemoteJwks>,
    keys: Option<Arc<KeySet>>,
    /// Generation of the body last decoded (0: none).
    generation: u64,
    /// Failures recorded in the store at the last sync.
    shared_failures: u64,
    /// This worker holds the lease and awaits a response.
    fetching: bool,
    /// The schedule as last seen or written; used alone when the store fails, so a broken
    /// store degrades to per-worker fetching instead of no keys.
    local: Meta,
    stats: FetchStats,
}

/// Key sets of all providers for one worker, coordinated with the other workers through the
/// shared store.
pub struct KeyManager {
    worker: u64,
    slots: Vec<Slot>,
}

/// A worker id unique within the process (a shared counter), or 1 if the store fails.
pub fn register_worker(store: &dyn SharedStore) -> u64 {
    for _ in 0..CAS_RETRIES {
        let (current, cas) = match store.get(WORKER_COUNTER_KEY) {
            Ok(Some((v, cas))) => (read_u64(&v, 0).unwrap_or(0), Some(cas)),
            Ok(None) => (0, None),
            Err(_) => break,
        };
        let next = current.wrapping_add(1).max(1);
        match store.set(WORKER_COUNTER_KEY, &next.to_le_bytes(), cas) {
            Ok(()) => return next,
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => break,
        }
    }
    1
}

impl KeyManager {
    /// A manager for `providers`, acting as worker `worker` (see [`register_worker`]).
    pub fn new(providers: &Providers, worker: u64) -> KeyManager {
        let slots = providers
            .iter()
            .map(|(_, p)| match &p.keys {
                KeySource::Static(keys) => Slot {
                    remote: None,
                    keys: Some(keys.clone()),
                    generation: 0,
                    shared_failures: 0,
                    fetching: false,
                    local: Meta::default(),
                    stats: FetchStats::default(),
                },
                KeySource::Remote(r) => Slot {
                    remote: Some(r.clone()),
                    keys: None,
                    generation: 0,
                    shared_failures: 0,
                    fetching: false,
                    local: Meta::default(),
                    stats: FetchStats::default(),
                },
            })
            .collect();
        KeyManager {
            worker: worker.max(1),
            slots,
        }
    }

    /// This worker's id.
    pub fn worker(&self) -> u64 {
        self.worker
    }

    /// Picks up key sets published by other workers and returns the fetches this worker must
    /// dispatch now. Call at start and on every tick.
    pub fn poll(&mut self, now_ms: u64, store: &dyn SharedStore) -> Vec<FetchRequest> {
        let worker = self.worker;
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(remote) = slot.remote.clone() else {
                continue;
            };
            let (meta, cas, shared) = match sync(slot, &remote, store) {
                Some((meta, cas)) => (meta, cas, true),
                None => (slot.local, None, false),
            };
            if slot.fetching && !meta.leased(now_ms) {
                // Our lease ran out without an answer: the attempt is over.
                slot.fetching = false;
            }
            if meta.leased(now_ms) || !fetch_due(&meta, &remote, now_ms) {
                continue;
            }
            if take_lease(slot, &meta, cas, shared, worker, &remote, now_ms, store) {
                out.push(request(ProviderId(i), &remote));
            }
        }
        out
    }

    /// The keys of `provider` for the request path: local unless this worker has none yet, in
    /// which case the store is consulted.
    pub fn keys(&mut self, provider: ProviderId, store: &dyn SharedStore) -> KeyStatus {
        let Some(slot) = self.slots.get_mut(provider.0) else {
            return KeyStatus::Unavailable;
        };
        if slot.keys.is_none() {
            if let Some(remote) = slot.remote.clone() {
                let _ = sync(slot, &remote, store);
            }
        }
        match &slot.keys {
            Some(k) => KeyStatus::Ready(k.clone()),
            None if slot.shared_failures > 0 => KeyStatus::Unavailable,
            None => KeyStatus::Pending,
        }
    }

    /// The generation of the key set in use (0 before the first one); a waiting request
    /// verifies again when this changes.
    pub fn generation(&self, provider: ProviderId) -> u64 {
        self.slots.get(provider.0).map_or(0, |s| s.generation)
    }

    /// Decides what a token with an unknown `kid` leads to: at most one refetch per
    /// `min_refetch_interval_seconds` per process.
    pub fn on_unknown_kid(
        &mut self,
        provider: ProviderId,
        now_ms: u64,
        store: &dyn SharedStore,
    ) -> UnknownKidAction {
        let worker = self.worker;
        let Some(slot) = self.slots.get_mut(provider.0) else {
            return UnknownKidAction::Reject;
        };
        let Some(remote) = slot.remote.clone() else {
            return UnknownKidAction::Reject;
        };
        let before = slot.generation;
        let (meta, cas, shared) = match sync(slot, &remote, store) {
            Some((meta, cas)) => (meta, cas, true),
            None => (slot.local, None, false),
        };
        if slot.generation != before {
            return UnknownKidAction::Retry;
        }
        if meta.leased(now_ms) {
            return UnknownKidAction::Wait;
        }
        let min_gap = remote.min_refetch_interval_seconds.saturating_mul(1000);
        if meta.last_attempt_ms != 0 && now_ms < meta.last_attempt_ms.saturating_add(min_gap) {
            return UnknownKidAction::Reject;
        }
        if take_lease(slot, &meta, cas, shared, worker, &remote, now_ms, store) {
            UnknownKidAction::Fetch(request(provider, &remote))
        } else {
            UnknownKidAction::Wait
        }
    }

    /// Takes the result of a fetch this worker dispatched: a good key set replaces the old one
    /// here and in the store; anything else keeps the old one and is counted.
    pub fn on_fetch_response(
        &mut self,
        provider: ProviderId,
        outcome: FetchOutcome<'_>,
        now_ms: u64,
        store: &dyn SharedStore,
    ) -> FetchReport {
        let worker = self.worker;
        let Some(slot) = self.slots.get_mut(provider.0) else {
            return FetchReport::NotRemote;
        };
        let Some(remote) = slot.remote.clone() else {
            return FetchReport::NotRemote;
        };
        slot.fetching = false;
        let decoded = match outcome {
            FetchOutcome::Failed => Err("no response (connection failure or timeout)".to_string()),
            FetchOutcome::Response { status, .. } if status != 200 => {
                Err(format!("HTTP status {status}"))
            }
            FetchOutcome::Response { body, .. } => decode_jwks(body, remote.max_body_bytes)
                .map(|d| (d, body))
                .map_err(|e| e.to_string()),
        };
        match decoded {
            Ok((decoded, body)) => {
                let generation = publish(slot.generation, worker, &remote, body, now_ms, store);
                let keys = decoded.keys.len();
                slot.local = Meta {
                    generation,
                    last_success_ms: now_ms,
                    failures: 0,
                    lease_owner: 0,
                    lease_expires_ms: 0,
                    ..slot.local
                };
                slot.keys = Some(Arc::new(decoded.keys.with_generation(generation)));
                slot.generation = generation;
                slot.shared_failures = 0;
                slot.stats.fetch_ok = slot.stats.fetch_ok.saturating_add(1);
                FetchReport::Updated {
                    generation,
                    keys,
                    warnings: decoded.warnings,
                }
            }
            Err(reason) => {
                slot.local = Meta {
                    failures: slot.local.failures.saturating_add(1),
                    last_attempt_ms: now_ms,
                    lease_owner: 0,
                    lease_expires_ms: 0,
                    ..slot.local
                };
                slot.shared_failures =
                    record_failure(worker, &remote, now_ms, store).unwrap_or(slot.local.failures);
                slot.stats.fetch_failed = slot.stats.fetch_failed.saturating_add(1);
                slot.stats.last_error = Some(reason.clone());
                FetchReport::Failed {
                    reason,
                    kept_previous: slot.keys.is_some(),
                }
            }
        }
    }

    /// How long until the next poll: short while a provider waits for keys or a fetch is in
    /// flight, long otherwise.
    pub fn poll_interval_ms(&self) -> u64 {
        let busy = self
            .slots
            .iter()
            .any(|s| s.remote.is_some() && (s.keys.is_none() || s.fetching));
        if busy {
            FAST_POLL_MS
        } else {
            SLOW_POLL_MS
        }
    }

    /// Fetch counters of `provider`.
    pub fn stats(&self, provider: ProviderId) -> Option<&FetchStats> {
        self.slots.get(provider.0).map(|s| &s.stats)
    }
}

fn request(provider: ProviderId, remote: &RemoteJwks) -> FetchRequest {
    FetchRequest {
        provider,
        cluster: remote.cluster.clone(),
        path: remote.path.clone(),
        authority: remote.authority.clone(),
        timeout_ms: remote.timeout_ms,
    }
}

fn meta_key(remote: &RemoteJwks) -> String {
    format!("{}.meta", remote.store_key)
}

fn body_key(remote: &RemoteJwks) -> String {
    format!("{}.body", remote.store_key)
}

/// Reads the shared schedule and adopts a newer published key set. `None` when the store fails.
fn sync(
    slot: &mut Slot,
    remote: &RemoteJwks,
    store: &dyn SharedStore,
) -> Option<(Meta, Option<u32>)> {
    let (meta, cas) = match store.get(&meta_key(remote)) {
        Ok(Some((bytes, cas))) => (Meta::decode(&bytes).unwrap_or_default(), Some(cas)),
        Ok(None) => (Meta::default(), None),
        Err(_) => return None,
    };
    slot.shared_failures = meta.failures;
    slot.local = meta;
    if meta.generation != 0 && meta.generation != slot.generation {
        adopt_body(slot, remote, store);
    }
    Some((meta, cas))
}

/// Decodes the published body once per generation.
fn adopt_body(slot: &mut Slot, remote: &RemoteJwks, store: &dyn SharedStore) {
    let Ok(Some((bytes, _))) = store.get(&body_key(remote)) else {
        return;
    };
    let (Some(generation), Some(_fetched_at)) = (read_u64(&bytes, 0), read_u64(&bytes, 1)) else {
        return;
    };
    if generation == slot.generation {
        return;
    }
    slot.generation = generation;
    match decode_jwks(bytes.get(16..).unwrap_or_default(), remote.max_body_bytes) {
        Ok(d) => {
            slot.keys = Some(Arc::new(d.keys.with_generation(generation)));
            slot.stats.adopted = slot.stats.adopted.saturating_add(1);
        }
        Err(e) => slot.stats.last_error = Some(format!("published JWKS unusable here: {e}")),
    }
}

fn fetch_due(meta: &Meta, remote: &RemoteJwks, now_ms: u64) -> bool {
    let backoff_over = now_ms >= meta.last_attempt_ms.saturating_add(meta.retry_delay_ms());
    if meta.generation == 0 {
        return backoff_over;
    }
    let refresh_at = meta
        .last_success_ms
        .saturating_add(remote.cache_duration_seconds.saturating_mul(1000));
    now_ms >= refresh_at && backoff_over
}

/// Takes the fetch lease: by compare-and-swap in the store, then read back (Envoy cannot
/// CAS-create a key, so two first writers are told apart by the read-back); or locally when
/// the store is failing.
#[allow(clippy::too_many_arguments)]
fn take_lease(
    slot: &mut Slot,
    meta: &Meta,
    cas: Option<u32>,
    shared: bool,
    worker: u64,
    remote: &RemoteJwks,
    now_ms: u64,
    store: &dyn SharedStore,
) -> bool {
    let lease = Meta {
        last_attempt_ms: now_ms,
        lease_owner: worker,
        lease_expires_ms: now_ms
            .saturating_add(remote.timeout_ms)
            .saturating_add(LEASE_GRACE_MS),
        ..*meta
    };
    if shared {
        let key = meta_key(remote);
        if store.set(&key, &lease.encode(), cas).is_err() {
            return false;
        }
        let ours =
            matches!(store.get(&key), Ok(Some((bytes, _))) if Meta::decode(&bytes) == Some(lease));
        if !ours {
            return false;
        }
    }
    slot.local = lease;
    slot.fetching = true;
    true
}

/// Publishes a good JWKS: body first (with its generation), then the schedule. Returns the
/// generation used locally; if the store fails the keys are still used by this worker.
fn publish(
    local_generation: u64,
    worker: u64,
    remote: &RemoteJwks,
    body: &[u8],
    now_ms: u64,
    store: &dyn SharedStore,
) -> u64 {
    let mut fallback = local_generation.saturating_add(1);
    for _ in 0..CAS_RETRIES {
        let (meta, mcas) = match store.get(&meta_key(remote)) {
            Ok(Some((bytes, cas))) => (Meta::decode(&bytes).unwrap_or_default(), Some(cas)),
            Ok(None) => (Meta::default(), None),
            Err(_) => return fallback,
        };
        let (published, bcas) = match store.get(&body_key(remote)) {
            Ok(Some((bytes, cas))) => (read_u64(&bytes, 0).unwrap_or(0), Some(cas)),
            Ok(None) => (0, None),
            Err(_) => return fallback,
        };
        // Above everything seen, so every worker adopts this body exactly once.
        let generation = meta
            .generation
            .max(published)
            .max(local_generation)
            .saturating_add(1);
        fallback = generation;
        let mut record = Vec::with_capacity(body.len().saturating_add(16));
        record.extend_from_slice(&generation.to_le_bytes());
        record.extend_from_slice(&now_ms.to_le_bytes());
        record.extend_from_slice(body);
        match store.set(&body_key(remote), &record, bcas) {
            Ok(()) => {}
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return generation,
        }
        let mine = meta.lease_owner == worker;
        let updated = Meta {
            generation,
            last_success_ms: now_ms,
            // The attempt started when the lease was taken; keep that time.
            last_attempt_ms: if meta.last_attempt_ms == 0 {
                now_ms
            } else {
                meta.last_attempt_ms
            },
            failures: 0,
            lease_owner: if mine { 0 } else { meta.lease_owner },
            lease_expires_ms: if mine { 0 } else { meta.lease_expires_ms },
        };
        match store.set(&meta_key(remote), &updated.encode(), mcas) {
            Ok(()) => return generation,
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return generation,
        }
    }
    fallback
}

/// Records a failed fetch in the schedule and releases the lease if it is ours. Returns the
/// failure count now stored.
fn record_failure(
    worker: u64,
    remote: &RemoteJwks,
    now_ms: u64,
    store: &dyn SharedStore,
) -> Option<u64> {
    for _ in 0..CAS_RETRIES {
        let (meta, cas) = match store.get(&meta_key(remote)) {
            Ok(Some((bytes, cas))) => (Meta::decode(&bytes).unwrap_or_default(), Some(cas)),
            Ok(None) => (Meta::default(), None),
            Err(_) => return None,
        };
        let mine = meta.lease_owner == worker;
        let updated = Meta {
            failures: meta.failures.saturating_add(1),
            // Backoff counts from the failure, not from the start of the attempt.
            last_attempt_ms: now_ms,
            lease_owner: if mine { 0 } else { meta.lease_owner },
            lease_expires_ms: if mine { 0 } else { meta.lease_expires_ms },
            ..meta
        };
        match store.set(&meta_key(remote), &updated.encode(), cas) {
            Ok(()) => return Some(updated.failures),
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return None,
        }
    }
    None
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
