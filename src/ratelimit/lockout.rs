//! Brute-force and credential-stuffing lockout: count authentication failures per key and, after
//! `failures` of them within `window_seconds`, refuse that key for `block_seconds`
//! (429 `locked_out` with `Retry-After`).
//!
//! Counting uses a window anchored at the first failure: it opens with that failure and lasts
//! `window_seconds`; the `failures`-th failure inside it locks the key and clears the count.
//! So a lock always means `failures` failures within the window, and without a lock a key gets at
//! most `failures - 1` failures per window (at most `2 * (failures - 1)` in any sliding window
//! of that length). Failures while a key is locked are not counted and do not extend the lock.
//!
//! State lives in a fixed [`Table`] per key expression (same bounded, never-evict-active rule as
//! rate limits): an entry is idle once its window has passed and it is not locked. Keys beyond
//! the table's capacity share their slot's overflow entry, so a stuffing flood that fills the
//! table locks itself out as a group rather than escaping the count.
//!
//! This module decides and counts; the adapter decides which responses are failures (meshguard's
//! own 401s, and upstream statuses listed in `upstream_statuses`) and writes the audit line.

use super::headers;
use super::key::{KeyFacts, KeySpec};
use super::table::{read_u64, sum_created, Entry, Place, Table, TableError};
use crate::error::{Denial, Reason};
use crate::host::{Clock, SharedStore, StoreError};
use crate::mode::Mode;

/// Shared-data key prefix of lockout tables (the digit is the value format version).
pub const PREFIX: &str = "mg:lo1";

/// Failure-counting state of one key, in Unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockEntry {
    /// End of the current counting window.
    pub window_end_ms: u64,
    /// Failures counted in the current window.
    pub count: u64,
    /// The key is refused until this time.
    pub blocked_until_ms: u64,
}

impl Entry for LockEntry {
    const SIZE: usize = 24;
    fn decode(bytes: &[u8]) -> Self {
        Self {
            window_end_ms: read_u64(bytes, 0),
            count: read_u64(bytes, 8),
            blocked_until_ms: read_u64(bytes, 16),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.window_end_ms.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.blocked_until_ms.to_le_bytes());
    }
    fn is_idle(&self, now_ms: u64) -> bool {
        self.blocked_until_ms <= now_ms && (self.count == 0 || self.window_end_ms <= now_ms)
    }
}

/// One key expression of a lockout and its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutKey {
    key: KeySpec,
    table: Table,
}

impl LockoutKey {
    /// The key expression.
    pub fn key(&self) -> &KeySpec {
        &self.key
    }
    /// Its shared table.
    pub fn table(&self) -> &Table {
        &self.table
    }
}

/// A compiled `routes[].lockout` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    route: String,
    keys: Vec<LockoutKey>,
    failures: u64,
    window_ms: u64,
    block_ms: u64,
    upstream_statuses: Vec<u16>,
    mode: Mode,
    normalize: bool,
}

/// Whether a request may go on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockoutDecision {
    /// `Some` when an enforcing lockout refuses the request (429 `locked_out`).
    pub denial: Option<Denial>,
    /// In report mode: the request would have been refused.
    pub report_locked: bool,
    /// The key expressions found locked (never their values).
    pub locked_keys: Vec<String>,
    /// Lookups the store refused.
    pub store_errors: u32,
}

/// What recording one failure did to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// The key expression (never its value).
    pub key: String,
    /// Failures now counted in the window (0 right after a lock).
    pub count: u64,
    /// This failure locked the key, until this Unix millisecond: audit-log it.
    pub locked_until_ms: Option<u64>,
    /// The key shares its slot's overflow entry.
    pub overflow: bool,
    /// The failure could not be recorded (contention or store error).
    pub error: Option<TableError>,
}

impl LockoutPolicy {
    /// Builds a policy; the config compiler validates every number first.
    pub fn new(
        route: &str,
        keys: Vec<KeySpec>,
        failures: u64,
        window_ms: u64,
        block_ms: u64,
        max_keys: u32,
    ) -> Self {
        let keys = keys
            .into_iter()
            .map(|key| {
                let identity = format!("{route}\u{0}lockout\u{0}{}", key.text());
                LockoutKey {
                    table: Table::new(PREFIX, &identity, max_keys),
                    key,
                }
            })
            .collect();
        Self {
            route: route.to_string(),
            keys,
            failures: failures.max(1),
            window_ms,
            block_ms,
            upstream_statuses: Vec::new(),
            mode: Mode::Enforce,
            normalize: true,
        }
    }

    /// Sets whether header and body key values are normalised (NFKD, trim, case fold).
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// True when some `body:` key of this request has a value that is not a string: the
    /// request counts as a failure by itself (see [`crate::ratelimit::key::LockoutKeys`]).
    pub fn non_string_body_key(&self, facts: &KeyFacts<'_>) -> bool {
        self.keys
            .iter()
            .any(|k| k.key.needs_body() && k.key.lockout_keys(facts, self.normalize).non_string)
    }

    /// Also counts these upstream response statuses as failures.
    pub fn with_upstream_statuses(mut self, statuses: Vec<u16>) -> Self {
        self.upstream_statuses = statuses;
        self
    }
    /// Sets enforce or report.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The key expressions and their tables.
    pub fn keys(&self) -> &[LockoutKey] {
        &self.keys
    }
    /// Enforce or report.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// True when a key reads the body: the check must wait until the body is parsed.
    pub fn needs_body(&self) -> bool {
        self.keys.iter().any(|k| k.key.needs_body())
    }
    /// True when an upstream response with this status counts as a failure.
    pub fn counts_upstream_status(&self, status: u16) -> bool {
        self.upstream_statuses.contains(&status)
    }

    /// True when some upstream status counts (the response phase has work to do).
    pub fn watches_upstream(&self) -> bool {
        !self.upstream_statuses.is_empty()
    }
    /// True when meshguard's own denial counts as a failure (an authentication failure, 401).
    pub fn counts_denial(&self, reason: Reason) -> bool {
        reason.is_authn_failure()
    }

    /// Creates every table's slots (configure time). Returns slots created.
    pub fn prepare<S: SharedStore + ?Sized>(&self, store: &S) -> Result<u32, StoreError> {
        sum_created(
            self.keys
                .iter()
                .map(|k| k.table.prepare::<LockEntry, S>(store)),
        )
    }

    /// Is any of the request's keys locked? Read-only.
    ///
    /// A store that cannot be read fails closed in enforce mode (503 `internal`).
    pub fn check<C: Clock + ?Sized, S: SharedStore + ?Sized>(
        &self,
        facts: &KeyFacts<'_>,
        clock: &C,
        store: &S,
    ) -> LockoutDecision {
        let now = clock.now_ms();
        let mut decision = LockoutDecision::default();
        let mut wait_ms = 0u64;
        for k in &self.keys {
            let mut locked = false;
            for bytes in k.key.lockout_keys(facts, self.normalize).keys {
                match k.table.read::<LockEntry, S>(store, &bytes, now) {
                    Ok(out) if out.value.blocked_until_ms > now => {
                        wait_ms = wait_ms.max(out.value.blocked_until_ms.saturating_sub(now));
                        locked = true;
                    }
                    Ok(_) => {}
                    Err(_) => decision.store_errors = decision.store_errors.saturating_add(1),
                }
            }
            if locked {
                decision.locked_keys.push(k.key.text().to_string());
            }
        }
        let enforce = self.mode == Mode::Enforce;
        if !decision.locked_keys.is_empty() {
            if enforce {
                let retry = headers::retry_after_secs(wait_ms.saturating_mul(1000));
                decision.denial = Some(
                    Denial::new(Reason::LockedOut)
                        .with_header(headers::RETRY_AFTER, retry.to_string())
                        .with_log_detail(format!(
                            "lockout on route {} by key {}",
                            self.route,
                            decision.locked_keys.join(",")
                        )),
                );
            } else {
                decision.report_locked = true;
            }
        } else if decision.store_errors > 0 && enforce {
            decision.denial = Some(
                Denial::new(Reason::Internal)
                    .with_log_detail(format!("lockout store unavailable on route {}", self.route)),
            );
        }
        decision
    }

    /// Counts one authentication failure against each of the request's keys; locks those that
    /// reach `failures` within the window.
    pub fn record_failure<C: Clock + ?Sized, S: SharedStore + ?Sized>(
        &self,
        facts: &KeyFacts<'_>,
        clock: &C,
        store: &S,
    ) -> Vec<FailureRecord> {
        let now = clock.now_ms();
        self.keys
            .iter()
            .flat_map(|k| {
                k.key
                    .lockout_keys(facts, self.normalize)
                    .keys
                    .into_iter()
                    .map(move |bytes| (k, bytes))
            })
            .map(|(k, bytes)| {
                let result = k.table.update(store, &bytes, now, |e: &mut LockEntry| {
                    self.count_failure(e, now)
                });
                match result {
                    Ok(out) => FailureRecord {
                        key: k.key.text().to_string(),
                        count: out.value.0,
                        locked_until_ms: out.value.1,
                        overflow: out.place == Place::Overflow,
                        error: None,
                    },
                    Err(e) => FailureRecord {
                        key: k.key.text().to_string(),
                        count: 0,
                        locked_until_ms: None,
                        overflow: false,
                        error: Some(e),
                    },
                }
            })
            .collect()
    }

    /// Pure transition for one failure: `((count, newly locked until), write?)`.
    fn count_failure(&self, e: &mut LockEntry, now: u64) -> ((u64, Option<u64>), bool) {
        if e.blocked_until_ms > now {
            return ((e.count, None), false);
        }
        if e.count == 0 || e.window_end_ms <= now {
            e.window_end_ms = now.saturating_add(self.window_ms);
            e.count = 1;
        } else {
            e.count = e.count.saturating_add(1);
        }
        if e.count >= self.failures {
            let until = now.saturating_add(self.block_ms);
            *e = LockEntry {
                window_end_ms: now,
                count: 0,
                blocked_until_ms: until,
            };
            return ((0, Some(until)), true);
        }
        ((e.count, None), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeClock, MemStore};

    const T0: u64 = 1_700_000_000;

    fn policy(failures: u64, window_s: u64, block_s: u64) -> LockoutPolicy {
        LockoutPolicy::new(
            "login",
            vec![KeySpec::parse("client_ip").unwrap()],
            failures,
            window_s * 1000,
            block_s * 1000,
            1000,
        )
    }

    fn fail(p: &LockoutPolicy, clock: &FakeClock, store: &MemStore, ip: &str) -> FailureRecord {
        let facts = KeyFacts::new("login", Some(ip));
        p.record_failure(&facts, clock, store).remove(0)
    }

    fn locked(p: &LockoutPolicy, clock: &FakeClock, store: &MemStore, ip: &str) -> Option<Denial> {
        p.check(&KeyFacts::new("login", Some(ip)), clock, store)
            .denial
    }

    #[test]
    fn locks_after_n_failures_in_window_with_retry_after() {
        let p = policy(3, 60, 300);
        let clock = FakeClock::at_secs(T0);
        let store = MemStore::default();
        assert_eq!(fail(&p, &clock, &store, "1.2.3.4").count, 1);
        clock.advance_ms(10_000);
        assert_eq!(fail(&p, &clock, &store, "1.2.3.4").count, 2);
        assert!(locked(&p, &clock, &store, "1.2.3.4").is_none());
        let r = fail(&p, &clock, &store, "1.2.3.4");
        assert_eq!(r.locked_until_ms, Some((T0 + 310) * 1000));
        let d = locked(&p, &clock, &store, "1.2.3.4").unwrap();
        assert_eq!(d.reason, Reason::LockedOut);
        assert_eq!(
            d.headers,
            vec![("retry-after".to_string(), "300".to_string())]
        );
        assert!(d.log_detail.unwrap().contains("client_ip"));
        // Another address is not affected.
        assert!(locked(&p, &clock, &store, "5.6.7.8").is_none());
    }

    #[test]
    fn lock_expires_after_block_seconds_and_count_starts_over() {
        let p = policy(2, 60, 30);
        let clock = FakeClock::at_secs(T0);
        let store = MemStore::default();
        fail(&p, &clock, &store, "1.2.3.4");
        fail(&p, &clock, &store, "1.2.3.4");
        clock.advance_ms(29_500);
        let d = locked(&p, &clock, &store, "1.2.3.4").unwrap();
        assert_eq!(d.headers[0].1, "1", "half a second left rounds up to 1");
        clock.advance_ms(500);
        assert!(locked(&p, &clock, &store, "1.2.3.4").is_none());
        assert_eq!(fail(&p, &clock, &store, "1.2.3.4").count, 1);
    }

    #[test]
    fn failures_outside_the_window_do_not_accumulate() {
        let p = policy(3, 60, 300);
        let clock = FakeClock::at_secs(T0);
        let store = MemStore::default();
        for _ in 0..10 {
            assert!(fail(&p, &clock, &store, "1.2.3.4")
                .locked_until_ms
                .is_none());
            fail(&p, &clock, &store, "1.2.3.4");
            clock.advance_ms(60_000);
        }
        assert!(locked(&p, &clock, &store, "1.2.3.4").is_none());
    }

    #[test]
    fn failures_while_locked_do_not_extend_the_lock() {
        let p = policy(1, 60, 100);
        let clock = FakeClock::at_secs(T0);
        let store = MemStore::default();
        fail(&p, &clock, &store, "1.2.3.4");
        clock.advance_ms(50_000);
        let r = fail(&p, &clock, &store, "1.2.3.4");
        assert_eq!(r.locked_until_ms, None);
        clock.advance_ms(50_000);
        assert!(locked(&p, &clock, &store, "1.2.3.4").is_none());
    }

    #[test]
    fn report_mode_flags_but_never_denies() {
        let p = policy(1, 60, 100).with_mode(Mode::Report);
        let clock = FakeClock::at_secs(T0);
        let store = MemStore::default();
        fail(&p, &clock, &store, "1.2.3.4");
        let d = p.check(&KeyFacts::new("login", Some("1.2.3.4")), &clock, &store);
        assert!(d.denial.is_none());
        assert!(d.report_locked);
    }

    #[test]
    fn each_key_expression_counts_separately() {
        let p = LockoutPolicy::new(
            "login",
            vec![
                KeySpec::parse("client_ip").unwrap(),
                KeySpec::parse("body:username").unwrap(),
            ],
            2,
            60_000,
            60_000,
            100,
        );
        assert!(p.needs_body());
        let clock = FakeClock::at_secs(T0);
        let store = MemStore::default();
        let alice: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"username":"alice"}"#).unwrap();
        // Two different addresses fail for alice: the username key locks, the addresses don't.
        for ip in ["1.1.1.1", "2.2.2.2"] {
            let facts = KeyFacts {
                body: Some(&alice),
                ..KeyFacts::new("login", Some(ip))
            };
            p.record_failure(&facts, &clock, &store);
        }
        let facts = KeyFacts {
            body: Some(&alice),
            ..KeyFacts::new("login", Some("3.3.3.3"))
        };
        let d = p.check(&facts, &clock, &store);
        assert_eq!(d.locked_keys, vec!["body:username".to_string()]);
        let bob: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"username":"bob"}"#).unwrap();
        let facts = KeyFacts {
            body: Some(&bob),
            ..KeyFacts::new("login", Some("1.1.1.1"))
        };
        assert!(p.check(&facts, &clock, &store).denial.is_none());
    }

    #[test]
    fn counts_own_401s_and_listed_upstream_statuses() {
        let p = policy(1, 1, 1).with_upstream_statuses(vec![401, 403]);
        assert!(p.counts_denial(Reason::JwtBadSignature));
        assert!(!p.counts_denial(Reason::RateLimited));
        assert!(p.counts_upstream_status(403));
        assert!(!p.counts_upstream_status(500));
    }
}
