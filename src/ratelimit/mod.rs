//! Local rate limiting and abuse controls that hold across Envoy worker threads.
//!
//! What it decides: whether a request fits its route's rate limits (GCRA buckets per key, kept
//! in proxy-wasm shared data and updated by compare-and-swap so the limit is exact for the whole
//! process), and whether its keys are locked out after repeated authentication failures. It
//! builds the 429 denials with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit`
//! headers. What it never does: talk to proxy-wasm (time and the store come in through
//! [`crate::host`]), parse config on the request path, log or send a key's value.
//!
//! - [`config`]: raw serde types and the compiler.
//! - [`gcra`]: the bucket arithmetic. [`table`]: the fixed, bounded shared table.
//! - [`store`]: one limit over the table. [`lockout`]: failure counting and blocking.
//! - [`key`], [`client_ip`]: what a key is made of. [`headers`]: reply header values.
//!
//! Several limits on one route are evaluated in order. Each admitted limit is charged; at the
//! first enforcing limit that denies, evaluation stops and the earlier charges are refunded, so a
//! refused request costs the caller nothing. Report-mode limits are charged like enforcing ones
//! (so they count exactly what enforcement would refuse) but never deny.
//!
//! When the store cannot decide: CAS retries exhausted on a contended slot deny with 429 and
//! `Retry-After: 1` (fail closed: another request on that slot was admitted meanwhile, so the
//! limit stays exact); a store the host refuses to read or write denies with 503 `internal`.
//! In report mode both are only counted.

pub mod client_ip;
pub mod config;
pub mod gcra;
pub mod headers;
pub mod key;
pub mod lockout;
pub mod lookup;
pub mod store;
pub mod table;

pub use crate::mode::Mode;
pub use client_ip::ClientIpPolicy;
pub use key::KeyFacts;
pub use lockout::LockoutPolicy;
pub use lookup::ClientAddress;
pub use store::RateLimit;

use crate::error::{Denial, Reason};
use crate::host::{Clock, SharedStore, StoreError};
use table::{Place, TableError};

/// What happened to one limit for one request (the metric's `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Admitted and charged.
    Allowed,
    /// Admitted, then refunded because a later limit denied the request.
    Refunded,
    /// Denied (enforce).
    Limited,
    /// Would have been denied (report mode); the request went on.
    ReportLimited,
    /// CAS retries ran out (denied in enforce mode, counted only in report mode).
    Contended,
    /// The host store failed (503 in enforce mode, counted only in report mode).
    StoreError,
    /// Not evaluated: an earlier limit already denied the request.
    Skipped,
}

impl Outcome {
    /// Every outcome, for pre-defining metrics.
    pub const ALL: [Outcome; 7] = [
        Outcome::Allowed,
        Outcome::Refunded,
        Outcome::Limited,
        Outcome::ReportLimited,
        Outcome::Contended,
        Outcome::StoreError,
        Outcome::Skipped,
    ];

    /// Stable snake_case name for metrics.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refunded => "refunded",
            Outcome::Limited => "limited",
            Outcome::ReportLimited => "report_limited",
            Outcome::Contended => "contended",
            Outcome::StoreError => "store_error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One limit's outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOutcome {
    /// Index into [`RouteLimits::limits`].
    pub limit: usize,
    /// What happened.
    pub outcome: Outcome,
    /// The key shared its slot's overflow bucket (the table is saturated there).
    pub overflow: bool,
    /// CAS attempts used.
    pub attempts: u32,
}

/// The verdict of [`RouteLimits::check`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateDecision {
    /// `Some` when the request is refused: send this denial (429 `rate_limited`, or 503).
    pub denial: Option<Denial>,
    /// Headers to add to the response when the request goes on (limits with
    /// `response_headers`).
    pub response_headers: Vec<(String, String)>,
    /// One entry per limit of the route, in order.
    pub outcomes: Vec<LimitOutcome>,
}

impl RateDecision {
    /// Indexes of report-mode limits that would have refused the request.
    pub fn report_hits(&self) -> impl Iterator<Item = usize> + '_ {
        self.outcomes
            .iter()
            .filter(|o| o.outcome == Outcome::ReportLimited)
            .map(|o| o.limit)
    }
}

/// A route's compiled rate limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteLimits {
    route: String,
    limits: Vec<RateLimit>,
    /// Per limit, the audit detail of its denial (built once, not per request).
    log_details: Vec<String>,
}

impl RouteLimits {
    /// Limits for the route named `route`, evaluated in the given order.
    pub fn new(route: &str, limits: Vec<RateLimit>) -> Self {
        let log_details = limits
            .iter()
            .map(|l| format!("rate limit {} on route {route}", l.name()))
            .collect();
        Self {
            route: route.to_string(),
            limits,
            log_details,
        }
    }

    /// The limits, in evaluation order.
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// True when the route has no limit (the adapter can skip the check).
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Creates every limit's slots in the shared store; call from `on_configure`.
    pub fn prepare<S: SharedStore + ?Sized>(&self, store: &S) -> Result<u32, StoreError> {
        table::sum_created(self.limits.iter().map(|l| l.prepare(store)))
    }

    /// Charges the request to each limit and decides.
    pub fn check<C: Clock + ?Sized, S: SharedStore + ?Sized>(
        &self,
        facts: &KeyFacts<'_>,
        clock: &C,
        store: &S,
    ) -> RateDecision {
        self.check_some(facts, clock, store, |_| true)
    }

    /// True when some limit counts before authentication ([`key::KeySpec::counts_before_authn`]).
    pub fn has_early(&self) -> bool {
        self.limits.iter().any(|l| l.key().counts_before_authn())
    }

    /// [`Self::check`] for the limits `which` selects only (outcomes, refunds and headers of
    /// those only). Lets the limits keyed by the caller's address or peer count before the
    /// token's signature is checked, and the others after.
    pub fn check_some<C: Clock + ?Sized, S: SharedStore + ?Sized>(
        &self,
        facts: &KeyFacts<'_>,
        clock: &C,
        store: &S,
        which: impl Fn(&RateLimit) -> bool,
    ) -> RateDecision {
        let now_ms = clock.now_ms();
        let mut decision = RateDecision {
            outcomes: Vec::with_capacity(self.limits.len()),
            ..RateDecision::default()
        };
        let mut charged: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut policies: Vec<&str> = Vec::new();
        let mut rates: Vec<String> = Vec::new();

        for (i, limit) in self.limits.iter().enumerate() {
            if !which(limit) {
                continue;
            }
            if decision.denial.is_some() {
                decision.outcomes.push(LimitOutcome {
                    limit: i,
                    outcome: Outcome::Skipped,
                    overflow: false,
                    attempts: 0,
                });
                continue;
            }
            let enforce = limit.mode() == Mode::Enforce;
            let key = limit.key().build(facts);
            let (outcome, overflow, attempts) = match limit.charge_key(&key, now_ms, store) {
                Ok(c) => {
                    let d = c.decision;
                    let outcome = if d.allowed {
                        charged.push((i, key));
                        Outcome::Allowed
                    } else if enforce {
                        decision.denial =
                            Some(self.limited(i, limit, d.remaining, d.reset_us, d.retry_after_us));
                        Outcome::Limited
                    } else {
                        Outcome::ReportLimited
                    };
                    if limit.response_headers() && outcome != Outcome::Limited {
                        policies.push(limit.policy_member());
                        rates.push(headers::rate_member(
                            limit.quoted_name(),
                            d.remaining,
                            d.reset_us,
                        ));
                    }
                    (outcome, c.place == Place::Overflow, c.attempts)
                }
                Err(TableError::Contended) => {
                    if enforce {
                        decision.denial = Some(self.contended(limit));
                    }
                    (Outcome::Contended, false, table::MAX_ATTEMPTS)
                }
                Err(TableError::Unavailable) => {
                    if enforce {
                        decision.denial =
                            Some(Denial::new(Reason::Internal).with_log_detail(format!(
                                "rate limit {} on route {}: shared store unavailable",
                                limit.name(),
                                self.route
                            )));
                    }
                    (Outcome::StoreError, false, 0)
                }
            };
            decision.outcomes.push(LimitOutcome {
                limit: i,
                outcome,
                overflow,
                attempts,
            });
        }

        if decision.denial.is_some() {
            for (i, key) in &charged {
                let refunded = self
                    .limits
                    .get(*i)
                    .is_some_and(|l| l.refund_key(key, now_ms, store).is_ok());
                if let (true, Some(o)) = (refunded, decision.outcomes.get_mut(*i)) {
                    o.outcome = Outcome::Refunded;
                }
            }
        } else if !policies.is_empty() {
            decision
                .response_headers
                .push((headers::RATELIMIT_POLICY.to_string(), policies.join(", ")));
            decision
                .response_headers
                .push((headers::RATELIMIT.to_string(), rates.join(", ")));
        }
        decision
    }

    fn limited(
        &self,
        i: usize,
        limit: &RateLimit,
        remaining: u64,
        reset_us: u64,
        retry_us: u64,
    ) -> Denial {
        Denial::new(Reason::RateLimited)
            .with_header(
                headers::RETRY_AFTER,
                headers::retry_after_secs(retry_us).to_string(),
            )
            .with_header(headers::RATELIMIT_POLICY, limit.policy_member())
            .with_header(
                headers::RATELIMIT,
                headers::rate_member(limit.quoted_name(), remaining, reset_us),
            )
            .with_log_detail(self.log_details.get(i).cloned().unwrap_or_default())
    }

    fn contended(&self, limit: &RateLimit) -> Denial {
        Denial::new(Reason::RateLimited)
            .with_header(headers::RETRY_AFTER, "1")
            .with_header(headers::RATELIMIT_POLICY, limit.policy_member())
            .with_log_detail(format!(
                "rate limit {} on route {}: shared store contended, {} CAS attempts failed",
                limit.name(),
                self.route,
                table::MAX_ATTEMPTS
            ))
    }
}
