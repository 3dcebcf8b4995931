//! Reply headers for rate limits: IETF `RateLimit-Policy` / `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers-10, structured-field lists) and `Retry-After`.
//!
//! A GCRA bucket is advertised as the policy "`q` = burst units per `w` = seconds an empty bucket
//! takes to refill", so `q / w` is the configured rate and `r` never exceeds `q`. `r` is the whole
//! units left after this request and `t` the seconds until the bucket is full again. This module
//! formats values; it never decides anything and never includes a key or request value.

use super::gcra::Quota;

/// Header names, lower case as HTTP/2 requires.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// See [`RATELIMIT_POLICY`].
pub const RATELIMIT: &str = "ratelimit";
/// See [`RATELIMIT_POLICY`].
pub const RETRY_AFTER: &str = "retry-after";

/// Whole seconds for a duration in microseconds, rounded up.
pub fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// `Retry-After` seconds for a wait in microseconds: rounded up, at least 1 (a client told 0
/// would retry at once and be refused again).
pub fn retry_after_secs(us: u64) -> u64 {
    ceil_secs(us).max(1)
}

/// A structured-field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped. Callers pass
/// names already restricted to printable ASCII; anything else is dropped rather than sent.
pub fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    out
}

/// One `RateLimit-Policy` list member: `"name";q=<burst>;w=<refill seconds>`.
pub fn policy_member(name: &str, quota: &Quota) -> String {
    format!(
        "{};q={};w={}",
        sf_string(name),
        quota.burst(),
        ceil_secs(quota.tau_us()).max(1)
    )
}

/// One `RateLimit` list member, `"name";r=<remaining>;t=<seconds until full>`, for a name
/// already quoted by [`sf_string`] (done once at configure time: this runs per request).
pub fn rate_member(quoted_name: &str, remaining: u64, reset_us: u64) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(quoted_name.len().saturating_add(32));
    out.push_str(quoted_name);
    // Writing to a String cannot fail.
    let _ = write!(out, ";r={remaining};t={}", ceil_secs(reset_us));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1_000_000), 1);
        assert_eq!(retry_after_secs(1_000_001), 2);
        assert_eq!(retry_after_secs(0), 1);
    }

    #[test]
    fn policy_advertises_burst_over_refill_time() {
        let q = Quota::new(10, 1, 20).unwrap();
        assert_eq!(policy_member("per-user", &q), "\"per-user\";q=20;w=2");
        let q = Quota::new(10, 1, 10).unwrap();
        assert_eq!(policy_member("default", &q), "\"default\";q=10;w=1");
    }

    #[test]
    fn rate_member_reports_remaining_and_reset() {
        assert_eq!(
            rate_member("\"default\"", 3, 400_000),
            "\"default\";r=3;t=1"
        );
        assert_eq!(rate_member("\"default\"", 10, 0), "\"default\";r=10;t=0");
    }

    #[test]
    fn sf_string_escapes_quotes_and_drops_non_ascii() {
        assert_eq!(sf_string("a\"b\\c\u{e9}\n"), "\"a\\\"b\\\\c\"");
    }
}
