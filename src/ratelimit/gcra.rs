//! The Generic Cell Rate Algorithm over one `u64` per key: the theoretical arrival time (TAT).
//!
//! Pure arithmetic: it decides whether `cost` units fit a bucket given the stored TAT and the
//! caller's `now`, and what to store next. It never reads a clock or a store.
//!
//! Times are microseconds since the Unix epoch. A bucket of capacity `burst` refills one unit
//! every `interval` (`per_seconds / requests`, rounded *up* to a whole microsecond so the
//! admitted rate never exceeds the configured one; the error is below one part per million for
//! any rate up to 1 per microsecond). `tau = burst * interval` is the time an empty bucket takes
//! to refill. The stored TAT is never more than `now + tau`; a TAT at or before `now` is exactly a
//! full bucket, which is why such an entry can be forgotten without losing anything.

use std::fmt;

/// Longest refill time (`burst * interval`) a quota may have: ten years, so that `now + tau`
/// can never overflow a `u64` of microseconds.
pub const MAX_TAU_US: u64 = 10 * 366 * 86_400 * 1_000_000;
/// Longest `per_seconds`: 366 days.
pub const MAX_PER_SECONDS: u64 = 366 * 86_400;
/// Largest `requests` and `burst`.
pub const MAX_UNITS: u64 = 1_000_000_000;

/// Why a quota cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaError {
    /// `requests` is zero.
    ZeroRequests,
    /// `per_seconds` is zero.
    ZeroPeriod,
    /// `burst` is zero.
    ZeroBurst,
    /// `requests` or `burst` exceeds [`MAX_UNITS`].
    TooManyUnits,
    /// `per_seconds` exceeds [`MAX_PER_SECONDS`].
    PeriodTooLong,
    /// More than one unit per microsecond.
    TooFast,
    /// `burst * interval` exceeds [`MAX_TAU_US`].
    RefillTooLong,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            QuotaError::ZeroRequests => "requests must be at least 1",
            QuotaError::ZeroPeriod => "per_seconds must be at least 1",
            QuotaError::ZeroBurst => "burst must be at least 1",
            QuotaError::TooManyUnits => "requests and burst must be at most 1000000000",
            QuotaError::PeriodTooLong => "per_seconds must be at most 31622400 (366 days)",
            QuotaError::TooFast => "more than one request per microsecond cannot be limited",
            QuotaError::RefillTooLong => "burst * per_seconds / requests must be at most ten years",
        };
        f.write_str(text)
    }
}

/// A validated bucket: `requests` per `per_seconds`, holding at most `burst` units.
///
/// Built only by [`Quota::new`]; a zero or overflowing quota cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    requests: u64,
    per_seconds: u64,
    burst: u64,
    interval_us: u64,
    tau_us: u64,
}

impl Quota {
    /// Validates and builds a quota.
    pub fn new(requests: u64, per_seconds: u64, burst: u64) -> Result<Self, QuotaError> {
        if requests == 0 {
            return Err(QuotaError::ZeroRequests);
        }
        if per_seconds == 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        if requests > MAX_UNITS || burst > MAX_UNITS {
            return Err(QuotaError::TooManyUnits);
        }
        if per_seconds > MAX_PER_SECONDS {
            return Err(QuotaError::PeriodTooLong);
        }
        // per_seconds <= 3.2e7 so this product is < 3.2e13: no overflow.
        let period_us = per_seconds.saturating_mul(1_000_000);
        if requests > period_us {
            return Err(QuotaError::TooFast);
        }
        let interval_us = period_us.div_ceil(requests);
        let tau_us = burst
            .checked_mul(interval_us)
            .filter(|t| *t <= MAX_TAU_US)
            .ok_or(QuotaError::RefillTooLong)?;
        Ok(Self {
            requests,
            per_seconds,
            burst,
            interval_us,
            tau_us,
        })
    }

    /// Configured `requests`.
    pub fn requests(&self) -> u64 {
        self.requests
    }
    /// Configured `per_seconds`.
    pub fn per_seconds(&self) -> u64 {
        self.per_seconds
    }
    /// Bucket capacity in units.
    pub fn burst(&self) -> u64 {
        self.burst
    }
    /// Microseconds to earn one unit back.
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }
    /// Microseconds for an empty bucket to become full.
    pub fn tau_us(&self) -> u64 {
        self.tau_us
    }

    /// Decides whether `cost` units fit now, given the stored TAT (`0` for a new key).
    ///
    /// A cost above the burst never fits; the config compiler rejects such costs.
    pub fn check(&self, stored_tat_us: u64, now_us: u64, cost: u64) -> GcraDecision {
        let limit = now_us.saturating_add(self.tau_us);
        // A TAT in the past is a full bucket. A TAT beyond `now + tau` can only come from a
        // clock that stepped back or a quota that shrank: cap the debt at one empty bucket.
        let tat = stored_tat_us.clamp(now_us, limit);
        let increment = cost.saturating_mul(self.interval_us);
        let next = tat.saturating_add(increment);
        // interval_us >= 1 by construction; max(1) keeps the division obviously safe.
        let interval = self.interval_us.max(1);
        if cost <= self.burst && next <= limit {
            GcraDecision {
                allowed: true,
                tat_us: next,
                remaining: limit.saturating_sub(next) / interval,
                reset_us: next.saturating_sub(now_us),
                retry_after_us: 0,
            }
        } else {
            let retry_after_us = if cost > self.burst {
                self.tau_us
            } else {
                next.saturating_sub(limit)
            };
            GcraDecision {
                allowed: false,
                // Only the upper cap is worth storing: it bounds the wait after a clock step.
                tat_us: stored_tat_us.min(limit),
                remaining: limit.saturating_sub(tat) / interval,
                reset_us: tat.saturating_sub(now_us),
                retry_after_us,
            }
        }
    }

    /// The TAT after giving `cost` units back (a charge undone because another limit denied
    /// the request). Subtraction commutes with other workers' additions, so a refund through
    /// compare-and-swap is exact while the entry is active.
    pub fn refund(&self, stored_tat_us: u64, cost: u64) -> u64 {
        stored_tat_us.saturating_sub(cost.saturating_mul(self.interval_us))
    }
}

/// What [`Quota::check`] decided, with what the reply headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    /// The units fit: store `tat_us`.
    pub allowed: bool,
    /// The TAT to store. When denied it is the stored value, lowered to `now + tau` if it was
    /// beyond; the caller writes only when it differs from what it read.
    pub tat_us: u64,
    /// Whole units still available after this decision.
    pub remaining: u64,
    /// Microseconds until the bucket is full again.
    pub reset_us: u64,
    /// When denied, microseconds until the same cost would fit; 0 when allowed.
    pub retry_after_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000 * S;

    fn quota(requests: u64, per_seconds: u64, burst: u64) -> Quota {
        Quota::new(requests, per_seconds, burst).unwrap()
    }

    #[test]
    fn zero_and_overflowing_quotas_cannot_be_built() {
        assert_eq!(Quota::new(0, 1, 1), Err(QuotaError::ZeroRequests));
        assert_eq!(Quota::new(1, 0, 1), Err(QuotaError::ZeroPeriod));
        assert_eq!(Quota::new(1, 1, 0), Err(QuotaError::ZeroBurst));
        assert_eq!(Quota::new(2_000_000, 1, 1), Err(QuotaError::TooFast));
        assert_eq!(
            Quota::new(1, MAX_PER_SECONDS + 1, 1),
            Err(QuotaError::PeriodTooLong)
        );
        assert_eq!(
            Quota::new(1, MAX_PER_SECONDS, 11),
            Err(QuotaError::RefillTooLong)
        );
        assert_eq!(
            Quota::new(MAX_UNITS + 1, 1, 1),
            Err(QuotaError::TooManyUnits)
        );
        assert!(Quota::new(1, MAX_PER_SECONDS, 10).is_ok());
        assert!(Quota::new(1_000_000, 1, MAX_UNITS).is_ok());
    }

    #[test]
    fn interval_rounds_up_so_rate_is_never_exceeded() {
        let q = quota(3, 1, 3);
        assert_eq!(q.interval_us(), 333_334);
        assert!(q.interval_us() * 3 >= S);
    }

    #[test]
    fn full_bucket_admits_exactly_burst_then_denies() {
        let q = quota(10, 1, 20);
        let mut tat = 0;
        for i in 0..20 {
            let d = q.check(tat, T0, 1);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 19 - i);
            tat = d.tat_us;
        }
        let d = q.check(tat, T0, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after_us, 100_000);
        assert_eq!(d.reset_us, 2 * S);
        assert_eq!(d.tat_us, tat, "a denial changes nothing");
    }

    #[test]
    fn bucket_refills_one_unit_per_interval() {
        let q = quota(10, 1, 10);
        let mut tat = 0;
        for _ in 0..10 {
            tat = q.check(tat, T0, 1).tat_us;
        }
        assert!(!q.check(tat, T0 + 99_999, 1).allowed);
        let d = q.check(tat, T0 + 100_000, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // After a full period the bucket is full again.
        let d = q.check(d.tat_us, T0 + 100_000 + S, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 9);
    }

    #[test]
    fn cost_takes_several_units_and_retry_after_waits_for_all_of_them() {
        let q = quota(10, 1, 10);
        let d = q.check(0, T0, 7);
        assert!(d.allowed);
        assert_eq!(d.remaining, 3);
        let d = q.check(d.tat_us, T0, 5);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 3);
        assert_eq!(d.retry_after_us, 200_000);
        assert!(q.check(d.tat_us, T0 + 200_000, 5).allowed);
    }

    #[test]
    fn cost_above_burst_never_fits() {
        let q = quota(10, 1, 10);
        let d = q.check(0, T0, 11);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, q.tau_us());
    }

    #[test]
    fn stale_tat_is_a_full_bucket() {
        let q = quota(1, 60, 5);
        let d = q.check(T0 - 3600 * S, T0, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn debt_is_capped_when_clock_steps_back() {
        let q = quota(1, 1, 2);
        // A TAT an hour ahead (clock stepped back): the wait is at most one full refill.
        let d = q.check(T0 + 3600 * S, T0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, S);
        assert_eq!(d.tat_us, T0 + 2 * S, "the capped TAT is to be stored");
        assert!(q.check(d.tat_us, T0 + S, 1).allowed);
    }

    #[test]
    fn refund_gives_units_back() {
        let q = quota(10, 1, 2);
        let a = q.check(0, T0, 1).tat_us;
        let b = q.check(a, T0, 1).tat_us;
        assert!(!q.check(b, T0, 1).allowed);
        assert!(q.check(q.refund(b, 1), T0, 1).allowed);
    }
}
