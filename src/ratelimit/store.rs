//! One compiled rate limit over the shared store: GCRA state in a fixed [`Table`], updated with
//! bounded compare-and-swap.
//!
//! Exactness: a request is admitted only by a CAS write that moved the key's TAT from the value
//! it was decided on, so concurrent workers can never both spend the same unit: the limit holds
//! for the whole Envoy process whatever `--concurrency` is. The one exception is a slot written
//! for the first time by two workers at once (Envoy accepts any write to a missing key); calling
//! [`RateLimit::prepare`] at configure time removes it.
//!
//! Contention: after [`super::table::MAX_ATTEMPTS`] CAS attempts that each met another worker's
//! write, the check gives [`TableError::Contended`]; the caller denies (fail closed). A CAS miss
//! means another request on the same slot was decided in between, so only a slot under heavy
//! concurrent load can reach this, and denying keeps the limit exact.
//!
//! Memory: `ceil(max_keys / 4)` shared-data keys of 72 bytes each per limit (4 tracked keys and
//! one overflow bucket per slot), about 180 bytes per slot with Envoy's own overhead: roughly
//! 450 KiB for the default 10 000 keys, 45 MiB at the 1 048 576 cap.

use super::gcra::{GcraDecision, Quota};
use super::headers;
use super::key::{KeyFacts, KeySpec};
use super::table::{read_u64, Entry, Place, Table, TableError};
use crate::host::{SharedStore, StoreError};
use crate::mode::Mode;

/// Shared-data key prefix of rate-limit tables (the digit is the value format version).
pub const PREFIX: &str = "mg:rl1";

/// GCRA state: the theoretical arrival time in Unix microseconds (0 for a new key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tat(pub u64);

impl Entry for Tat {
    const SIZE: usize = 8;
    fn decode(bytes: &[u8]) -> Self {
        Tat(read_u64(bytes, 0))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    /// A TAT at or before now is a full bucket: forgetting it changes nothing.
    fn is_idle(&self, now_ms: u64) -> bool {
        self.0 <= now_ms.saturating_mul(1000)
    }
}

/// A compiled `routes[].rate_limits[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    name: String,
    key: KeySpec,
    quota: Quota,
    cost: u64,
    mode: Mode,
    response_headers: bool,
    table: Table,
    policy_member: String,
    quoted_name: String,
}

/// The result of charging one request to one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// The GCRA decision taken on the value that was committed (or read, when denied).
    pub decision: GcraDecision,
    /// Whether the key had its own entry or shared the slot's overflow bucket.
    pub place: Place,
    /// CAS attempts used.
    pub attempts: u32,
}

impl RateLimit {
    /// An enforcing limit of cost 1 without response headers. `table_identity` names its
    /// shared table (route and limit name); `max_keys` sizes it. The config compiler validates
    /// the name (printable ASCII) first.
    pub fn new(
        name: String,
        key: KeySpec,
        quota: Quota,
        table_identity: &str,
        max_keys: u32,
    ) -> Self {
        let policy_member = headers::policy_member(&name, &quota);
        let quoted_name = headers::sf_string(&name);
        Self {
            name,
            key,
            quota,
            cost: 1,
            mode: Mode::Enforce,
            response_headers: false,
            table: Table::new(PREFIX, table_identity, max_keys),
            policy_member,
            quoted_name,
        }
    }

    /// Sets the units one request takes (the compiler checks `1 <= cost <= burst`).
    pub fn with_cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }
    /// Sets enforce or report.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Sends this limit's headers on allowed responses too.
    pub fn with_response_headers(mut self, on: bool) -> Self {
        self.response_headers = on;
        self
    }

    /// The limit's name (RateLimit header policy id, logs, metrics).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The key expression.
    pub fn key(&self) -> &KeySpec {
        &self.key
    }
    /// The bucket.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }
    /// Units one request takes.
    pub fn cost(&self) -> u64 {
        self.cost
    }
    /// Enforce or report.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Whether allowed responses carry this limit's headers.
    pub fn response_headers(&self) -> bool {
        self.response_headers
    }
    /// The precomputed `RateLimit-Policy` member.
    pub fn policy_member(&self) -> &str {
        &self.policy_member
    }
    /// The name as a structured-field string, for `RateLimit` members.
    pub fn quoted_name(&self) -> &str {
        &self.quoted_name
    }
    /// The shared table (slot count, key names).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Creates the limit's slots in the shared store (configure time). Returns slots created.
    pub fn prepare<S: SharedStore + ?Sized>(&self, store: &S) -> Result<u32, StoreError> {
        self.table.prepare::<Tat, S>(store)
    }

    /// Charges one request: admits and records it if its cost fits the key's bucket.
    pub fn charge<S: SharedStore + ?Sized>(
        &self,
        facts: &KeyFacts<'_>,
        now_ms: u64,
        store: &S,
    ) -> Result<Charge, TableError> {
        self.charge_key(&self.key.build(facts), now_ms, store)
    }

    /// [`Self::charge`] for prebuilt key bytes.
    pub fn charge_key<S: SharedStore + ?Sized>(
        &self,
        key: &[u8],
        now_ms: u64,
        store: &S,
    ) -> Result<Charge, TableError> {
        let now_us = now_ms.saturating_mul(1000);
        let out = self.table.update(store, key, now_ms, |tat: &mut Tat| {
            let d = self.quota.check(tat.0, now_us, self.cost);
            let write = d.tat_us != tat.0;
            tat.0 = d.tat_us;
            (d, write)
        })?;
        Ok(Charge {
            decision: out.value,
            place: out.place,
            attempts: out.attempts,
        })
    }

    /// Gives back a charge made for a request that another limit then denied.
    pub fn refund_key<S: SharedStore + ?Sized>(
        &self,
        key: &[u8],
        now_ms: u64,
        store: &S,
    ) -> Result<(), TableError> {
        self.table
            .update(store, key, now_ms, |tat: &mut Tat| {
                let next = self.quota.refund(tat.0, self.cost);
                let write = next != tat.0;
                tat.0 = next;
                ((), write)
            })
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::MemStore;

    const T0: u64 = 1_700_000_000_000;

    fn limit(requests: u64, per_seconds: u64, burst: u64, max_keys: u32) -> RateLimit {
        RateLimit::new(
            "l".into(),
            KeySpec::parse("client_ip").unwrap(),
            Quota::new(requests, per_seconds, burst).unwrap(),
            "route/l",
            max_keys,
        )
    }

    fn admitted(l: &RateLimit, store: &MemStore, ip: &str, now: u64, n: usize) -> usize {
        let facts = KeyFacts::new("route", Some(ip));
        (0..n)
            .filter(|_| l.charge(&facts, now, store).unwrap().decision.allowed)
            .count()
    }

    #[test]
    fn keys_are_isolated() {
        let l = limit(5, 1, 5, 100);
        let store = MemStore::default();
        assert_eq!(admitted(&l, &store, "1.1.1.1", T0, 10), 5);
        assert_eq!(admitted(&l, &store, "2.2.2.2", T0, 10), 5);
    }

    #[test]
    fn denial_writes_nothing() {
        let l = limit(1, 1, 1, 4);
        let store = MemStore::default();
        let facts = KeyFacts::new("route", Some("1.1.1.1"));
        assert!(l.charge(&facts, T0, &store).unwrap().decision.allowed);
        let before = store.get(&l.table().slot_key(0)).unwrap();
        assert!(!l.charge(&facts, T0, &store).unwrap().decision.allowed);
        assert_eq!(store.get(&l.table().slot_key(0)).unwrap(), before);
    }

    #[test]
    fn refund_restores_a_unit() {
        let l = limit(2, 1, 2, 4);
        let store = MemStore::default();
        let facts = KeyFacts::new("route", Some("1.1.1.1"));
        let key = l.key().build(&facts);
        assert_eq!(admitted(&l, &store, "1.1.1.1", T0, 2), 2);
        l.refund_key(&key, T0, &store).unwrap();
        assert_eq!(admitted(&l, &store, "1.1.1.1", T0, 2), 1);
    }
}
