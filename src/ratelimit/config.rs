//! Raw config for rate limits, lockout and client addresses (serde, unknown fields rejected) and
//! the compiler that turns them into immutable limits, with JSON paths in every error.
//!
//! The integrator embeds [`RawRateLimit`] as `routes[].rate_limits[]`, [`RawLockout`] as
//! `routes[].lockout` and [`RawClientIp`] as the top-level `client_ip`, and calls the
//! `compile_*` functions once at configure time. Nothing here runs on the request path.

use super::client_ip::{ClientIpPolicy, ClientIpSource, DEFAULT_IPV6_PREFIX, MAX_TRUSTED_HOPS};
use super::gcra::Quota;
use super::key::{KeyError, KeySpec};
use super::lockout::LockoutPolicy;
use super::store::RateLimit;
use super::RouteLimits;
use crate::config::read::{from_json_enum, from_json_struct};
use crate::error::config::{index, join, ConfigError};
use serde::Deserialize;

/// Default `max_keys` of a limit or lockout.
pub const DEFAULT_MAX_KEYS: u64 = 10_000;
/// Largest `max_keys`.
pub const MAX_MAX_KEYS: u64 = 1 << 20;
/// Most rate limits on one route (each costs a shared-store read and write per request).
pub const MAX_LIMITS_PER_ROUTE: usize = 16;
/// Longest limit name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest lockout `window_seconds` (30 days).
pub const MAX_WINDOW_SECONDS: u64 = 30 * 86_400;
/// Longest lockout `block_seconds` (366 days).
pub const MAX_BLOCK_SECONDS: u64 = 366 * 86_400;
/// Most failures a lockout may wait for.
pub const MAX_FAILURES: u64 = 1_000_000;

pub use crate::mode::Mode;

/// `routes[].rate_limits[]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Key expression: `client_ip`, `route`, `peer`, `header:<name>`, `jwt:<claim>`, joined by `+`.
    pub key: String,
    /// Units earned back per `per_seconds`.
    pub requests: u64,
    /// The period of `requests`.
    pub per_seconds: u64,
    /// Bucket capacity; default `requests`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// Units one request takes; default 1.
    #[serde(default)]
    pub cost: Option<u64>,
    /// Overrides the route's mode.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Policy name in headers, logs and metrics; default the key expression.
    #[serde(default)]
    pub name: Option<String>,
    /// Keys tracked individually; default 10000.
    #[serde(default)]
    pub max_keys: Option<u64>,
    /// Also send `RateLimit-Policy` / `RateLimit` on allowed responses; default false.
    #[serde(default)]
    pub response_headers: Option<bool>,
}

/// `routes[].lockout` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    /// Key expressions counted separately; default `["client_ip"]`. `body:<field>` allowed.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// Failures within the window that lock a key.
    pub failures: u64,
    /// Counting window, from the first failure.
    pub window_seconds: u64,
    /// How long a locked key is refused.
    pub block_seconds: u64,
    /// Upstream response statuses that also count as failures (e.g. `[401, 403]`); default none.
    #[serde(default)]
    pub upstream_statuses: Vec<u16>,
    /// Overrides the route's mode.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Keys tracked individually per key expression; default 10000.
    #[serde(default)]
    pub max_keys: Option<u64>,
    /// Normalise header and body key values (NFKD, trim, case fold); default true.
    #[serde(default)]
    pub normalize_keys: Option<bool>,
}

/// Top-level `client_ip` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawClientIp {
    /// `connection` (default) or `x_forwarded_for`.
    #[serde(default)]
    pub source: RawIpSource,
    /// With `x_forwarded_for`: proxies in front that append to the header (1..=16).
    #[serde(default)]
    pub trusted_hops: Option<u64>,
    /// IPv6 clients are keyed on this prefix length; default 64.
    #[serde(default)]
    pub ipv6_prefix: Option<u64>,
}

/// `client_ip.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RawIpSource {
    /// The connection's peer address.
    #[default]
    Connection,
    /// `x-forwarded-for`, as far as the trusted hops vouch for it.
    XForwardedFor,
}

fn key_error(path: String, e: &KeyError) -> ConfigError {
    ConfigError::new(path, e.to_string())
}

fn max_keys(raw: Option<u64>, path: &str) -> Result<u32, ConfigError> {
    let n = raw.unwrap_or(DEFAULT_MAX_KEYS);
    if n == 0 || n > MAX_MAX_KEYS {
        return Err(ConfigError::new(
            join(path, "max_keys"),
            format!("must be between 1 and {MAX_MAX_KEYS}"),
        ));
    }
    u32::try_from(n).map_err(|_| ConfigError::new(join(path, "max_keys"), "too large"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// Compiles a route's `rate_limits`. `path` is the list's JSON path
/// (`routes[2].rate_limits`), `route` the route's name (it names the shared tables, so two
/// routes must not share a name), `inherited` the route's effective mode.
pub fn compile_rate_limits(
    raw: &[RawRateLimit],
    path: &str,
    route: &str,
    inherited: Mode,
) -> Result<RouteLimits, ConfigError> {
    if raw.len() > MAX_LIMITS_PER_ROUTE {
        return Err(ConfigError::new(
            path,
            format!("at most {MAX_LIMITS_PER_ROUTE} rate limits per route"),
        ));
    }
    let mut limits: Vec<RateLimit> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = index(path, i);
        let key = KeySpec::parse(&r.key).map_err(|e| key_error(join(&at, "key"), &e))?;
        if key.needs_body() {
            return Err(ConfigError::new(
                join(&at, "key"),
                "body fields are only for lockout keys: rate limits are decided before the body arrives",
            ));
        }
        let burst = r.burst.unwrap_or(r.requests);
        let quota = Quota::new(r.requests, r.per_seconds, burst).map_err(|e| {
            let field = match e {
                super::gcra::QuotaError::ZeroRequests | super::gcra::QuotaError::TooFast => {
                    "requests"
                }
                super::gcra::QuotaError::ZeroPeriod | super::gcra::QuotaError::PeriodTooLong => {
                    "per_seconds"
                }
                super::gcra::QuotaError::TooManyUnits if r.requests > super::gcra::MAX_UNITS => {
                    "requests"
                }
                _ => "burst",
            };
            ConfigError::new(join(&at, field), e.to_string())
        })?;
        let cost = r.cost.unwrap_or(1);
        if cost == 0 || cost > burst {
            return Err(ConfigError::new(
                join(&at, "cost"),
                format!("must be between 1 and the burst ({burst})"),
            ));
        }
        let name = r.name.clone().unwrap_or_else(|| r.key.clone());
        if !valid_name(&name) {
            let field = if r.name.is_some() { "name" } else { "key" };
            return Err(ConfigError::new(
                join(&at, field),
                format!(
                    "a limit name is 1 to {MAX_NAME_LEN} printable ASCII characters without quotes or backslashes (set `name` when the key is not one)"
                ),
            ));
        }
        if limits.iter().any(|l| l.name() == name) {
            return Err(ConfigError::new(
                join(&at, if r.name.is_some() { "name" } else { "key" }),
                format!(
                    "two limits of this route are named \"{name}\": give them distinct `name`s"
                ),
            ));
        }
        let max_keys = max_keys(r.max_keys, &at)?;
        let identity = format!("{route}\u{0}{name}");
        limits.push(
            RateLimit::new(name, key, quota, &identity, max_keys)
                .with_cost(cost)
                .with_mode(r.mode.unwrap_or(inherited))
                .with_response_headers(r.response_headers.unwrap_or(false)),
        );
    }
    Ok(RouteLimits::new(route, limits))
}

/// Compiles a route's `lockout` section (`path` is `routes[2].lockout`).
pub fn compile_lockout(
    raw: &RawLockout,
    path: &str,
    route: &str,
    inherited: Mode,
) -> Result<LockoutPolicy, ConfigError> {
    let texts = raw
        .keys
        .clone()
        .unwrap_or_else(|| vec!["client_ip".to_string()]);
    if texts.is_empty() {
        return Err(ConfigError::new(
            join(path, "keys"),
            "needs at least one key",
        ));
    }
    if texts.len() > 4 {
        return Err(ConfigError::new(join(path, "keys"), "at most 4 keys"));
    }
    let mut keys: Vec<KeySpec> = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        let at = index(&join(path, "keys"), i);
        let key = KeySpec::parse(t).map_err(|e| key_error(at.clone(), &e))?;
        if keys.iter().any(|k| k.text() == key.text()) {
            return Err(ConfigError::new(at, "this key is listed twice"));
        }
        keys.push(key);
    }
    if raw.failures == 0 || raw.failures > MAX_FAILURES {
        return Err(ConfigError::new(
            join(path, "failures"),
            format!("must be between 1 and {MAX_FAILURES}"),
        ));
    }
    if raw.window_seconds == 0 || raw.window_seconds > MAX_WINDOW_SECONDS {
        return Err(ConfigError::new(
            join(path, "window_seconds"),
            format!("must be between 1 and {MAX_WINDOW_SECONDS}"),
        ));
    }
    if raw.block_seconds == 0 || raw.block_seconds > MAX_BLOCK_SECONDS {
        return Err(ConfigError::new(
            join(path, "block_seconds"),
            format!("must be between 1 and {MAX_BLOCK_SECONDS}"),
        ));
    }
    for (i, status) in raw.upstream_statuses.iter().enumerate() {
        if !(400..=599).contains(status) {
            return Err(ConfigError::new(
                index(&join(path, "upstream_statuses"), i),
                "must be an HTTP error status (400 to 599)",
            ));
        }
    }
    let max_keys = max_keys(raw.max_keys, path)?;
    Ok(LockoutPolicy::new(
        route,
        keys,
        raw.failures,
        raw.window_seconds.saturating_mul(1000),
        raw.block_seconds.saturating_mul(1000),
        max_keys,
    )
    .with_upstream_statuses(raw.upstream_statuses.clone())
    .with_mode(raw.mode.unwrap_or(inherited))
    .with_normalize(raw.normalize_keys.unwrap_or(true)))
}

/// Compiles the top-level `client_ip` section (`path` is `client_ip`); absent means the
/// connection address with IPv6 keyed on /64.
pub fn compile_client_ip(
    raw: Option<&RawClientIp>,
    path: &str,
) -> Result<ClientIpPolicy, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ClientIpPolicy::default());
    };
    let prefix = raw.ipv6_prefix.unwrap_or(u64::from(DEFAULT_IPV6_PREFIX));
    let prefix = u8::try_from(prefix)
        .ok()
        .filter(|p| (1..=128).contains(p))
        .ok_or_else(|| ConfigError::new(join(path, "ipv6_prefix"), "must be between 1 and 128"))?;
    let source = match (raw.source, raw.trusted_hops) {
        (RawIpSource::Connection, None) => ClientIpSource::Connection,
        (RawIpSource::Connection, Some(_)) => {
            return Err(ConfigError::new(
                join(path, "trusted_hops"),
                "only meaningful with \"source\": \"x_forwarded_for\"",
            ))
        }
        (RawIpSource::XForwardedFor, None) => {
            return Err(ConfigError::new(
                join(path, "trusted_hops"),
                "required with x_forwarded_for: how many proxies in front append to the header (the header is never trusted blindly)",
            ))
        }
        (RawIpSource::XForwardedFor, Some(hops)) => {
            let hops = u8::try_from(hops)
                .ok()
                .filter(|h| (1..=MAX_TRUSTED_HOPS).contains(h))
                .ok_or_else(|| {
                    ConfigError::new(
                        join(path, "trusted_hops"),
                        format!("must be between 1 and {MAX_TRUSTED_HOPS}"),
                    )
                })?;
            ClientIpSource::XForwardedFor { trusted_hops: hops }
        }
    };
    Ok(ClientIpPolicy::new(source, prefix))
}

from_json_struct!(RawRateLimit {
    key: req,
    requests: req,
    per_seconds: req,
    burst: get,
    cost: get,
    mode: get,
    name: get,
    max_keys: get,
    response_headers: get,
});

from_json_struct!(RawLockout {
    keys: get,
    failures: req,
    window_seconds: req,
    block_seconds: req,
    upstream_statuses: get,
    mode: get,
    max_keys: get,
    normalize_keys: get,
});

from_json_struct!(RawClientIp {
    source: get,
    trusted_hops: get,
    ipv6_prefix: get,
});

from_json_enum!(RawIpSource {
    Connection = "connection",
    XForwardedFor = "x_forwarded_for",
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(v: serde_json::Value) -> Result<RouteLimits, ConfigError> {
        let raw: Vec<RawRateLimit> = crate::config::read::from_value(v).unwrap();
        compile_rate_limits(&raw, "routes[0].rate_limits", "r", Mode::Enforce)
    }

    fn err_path(r: Result<RouteLimits, ConfigError>) -> String {
        r.unwrap_err().path
    }

    #[test]
    fn compiles_the_contract_example() {
        let l =
            limits(json!([{ "key": "jwt:sub", "requests": 10, "per_seconds": 1, "burst": 20 }]))
                .unwrap();
        let limit = &l.limits()[0];
        assert_eq!(limit.name(), "jwt:sub");
        assert_eq!(limit.quota().burst(), 20);
        assert_eq!(limit.cost(), 1);
        assert_eq!(limit.mode(), Mode::Enforce);
        assert_eq!(limit.policy_member(), "\"jwt:sub\";q=20;w=2");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<Vec<RawRateLimit>, _> = crate::config::read::from_value(
            json!([{ "key": "route", "requests": 1, "per_seconds": 1, "burts": 2 }]),
        );
        assert!(r.is_err());
        let r: Result<RawLockout, _> = crate::config::read::from_value(
            json!({ "failures": 1, "window_seconds": 1, "block_seconds": 1, "extra": 1 }),
        );
        assert!(r.is_err());
    }

    #[test]
    fn errors_point_at_the_field() {
        let base = |extra: serde_json::Value| {
            let mut v = json!({ "key": "route", "requests": 10, "per_seconds": 1 });
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            json!([v])
        };
        assert_eq!(
            err_path(limits(base(json!({"requests": 0})))),
            "routes[0].rate_limits[0].requests"
        );
        assert_eq!(
            err_path(limits(base(json!({"per_seconds": 0})))),
            "routes[0].rate_limits[0].per_seconds"
        );
        assert_eq!(
            err_path(limits(base(json!({"burst": 0})))),
            "routes[0].rate_limits[0].burst"
        );
        assert_eq!(
            err_path(limits(base(json!({"cost": 11})))),
            "routes[0].rate_limits[0].cost"
        );
        assert_eq!(
            err_path(limits(base(json!({"cost": 0})))),
            "routes[0].rate_limits[0].cost"
        );
        assert_eq!(
            err_path(limits(base(json!({"key": "ip"})))),
            "routes[0].rate_limits[0].key"
        );
        assert_eq!(
            err_path(limits(base(json!({"key": "body:user"})))),
            "routes[0].rate_limits[0].key"
        );
        assert_eq!(
            err_path(limits(base(json!({"max_keys": 0})))),
            "routes[0].rate_limits[0].max_keys"
        );
        assert_eq!(
            err_path(limits(base(json!({"name": "a\"b"})))),
            "routes[0].rate_limits[0].name"
        );
        assert_eq!(
            err_path(limits(base(
                json!({"burst": 4_000_000_000_u64, "per_seconds": 86400})
            ))),
            "routes[0].rate_limits[0].burst"
        );
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let r = limits(json!([
            { "key": "client_ip", "requests": 10, "per_seconds": 1 },
            { "key": "client_ip", "requests": 100, "per_seconds": 60 }
        ]));
        assert_eq!(err_path(r), "routes[0].rate_limits[1].key");
        let r = limits(json!([
            { "key": "client_ip", "requests": 10, "per_seconds": 1, "name": "short" },
            { "key": "client_ip", "requests": 100, "per_seconds": 60, "name": "long" }
        ]));
        assert!(r.is_ok());
    }

    #[test]
    fn limit_mode_overrides_the_route_mode() {
        let raw: Vec<RawRateLimit> = crate::config::read::from_value(json!([
            { "key": "route", "requests": 1, "per_seconds": 1 },
            { "key": "client_ip", "requests": 1, "per_seconds": 1, "mode": "enforce" }
        ]))
        .unwrap();
        let l = compile_rate_limits(&raw, "p", "r", Mode::Report).unwrap();
        assert_eq!(l.limits()[0].mode(), Mode::Report);
        assert_eq!(l.limits()[1].mode(), Mode::Enforce);
    }

    #[test]
    fn lockout_defaults_and_errors() {
        let raw: RawLockout = crate::config::read::from_value(
            json!({ "failures": 5, "window_seconds": 300, "block_seconds": 900 }),
        )
        .unwrap();
        let p = compile_lockout(&raw, "routes[1].lockout", "login", Mode::Enforce).unwrap();
        assert_eq!(p.keys()[0].key().text(), "client_ip");
        assert!(!p.counts_upstream_status(401));

        let bad = |v: serde_json::Value| {
            let raw: RawLockout = crate::config::read::from_value(v).unwrap();
            compile_lockout(&raw, "routes[1].lockout", "login", Mode::Enforce)
                .unwrap_err()
                .path
        };
        assert_eq!(
            bad(json!({ "failures": 0, "window_seconds": 1, "block_seconds": 1 })),
            "routes[1].lockout.failures"
        );
        assert_eq!(
            bad(json!({ "failures": 1, "window_seconds": 1, "block_seconds": 0 })),
            "routes[1].lockout.block_seconds"
        );
        assert_eq!(
            bad(
                json!({ "keys": ["client_ip", "nope"], "failures": 1, "window_seconds": 1, "block_seconds": 1 })
            ),
            "routes[1].lockout.keys[1]"
        );
        assert_eq!(
            bad(
                json!({ "failures": 1, "window_seconds": 1, "block_seconds": 1, "upstream_statuses": [401, 200] })
            ),
            "routes[1].lockout.upstream_statuses[1]"
        );
    }

    #[test]
    fn client_ip_header_needs_explicit_trusted_hops() {
        let c = |v: serde_json::Value| {
            let raw: RawClientIp = crate::config::read::from_value(v).unwrap();
            compile_client_ip(Some(&raw), "client_ip")
        };
        assert_eq!(
            c(json!({"source": "x_forwarded_for"})).unwrap_err().path,
            "client_ip.trusted_hops"
        );
        assert_eq!(
            c(json!({"source": "x_forwarded_for", "trusted_hops": 0}))
                .unwrap_err()
                .path,
            "client_ip.trusted_hops"
        );
        assert_eq!(
            c(json!({"trusted_hops": 1})).unwrap_err().path,
            "client_ip.trusted_hops"
        );
        assert_eq!(
            c(json!({"ipv6_prefix": 129})).unwrap_err().path,
            "client_ip.ipv6_prefix"
        );
        let p = c(json!({"source": "x_forwarded_for", "trusted_hops": 2})).unwrap();
        assert_eq!(
            p.source(),
            ClientIpSource::XForwardedFor { trusted_hops: 2 }
        );
        assert_eq!(
            compile_client_ip(None, "client_ip").unwrap(),
            ClientIpPolicy::default()
        );
    }
}
