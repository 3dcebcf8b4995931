//! JWT configuration: the raw `jwt_providers.<name>` and `routes[].jwt` shapes (unknown fields
//! rejected) and their compilation into immutable [`Providers`] and [`JwtRequirement`]s.
//!
//! Everything that can be checked before traffic is checked here, with the JSON path of the
//! offending field: algorithm names, the key source (exactly one of `local_jwks`, `remote_jwks`,
//! `hmac_secret`), inline JWKS keys (decoded once, here), header names, provider references.
//! Two questions have their own files: `config/key_source.rs` (where a provider's keys come
//! from) and `config/token_sources.rs` (where its token is found, which headers it sets).
//! Nothing here runs on the request path.

mod key_source;
mod token_sources;

use super::alg::{Alg, AlgSet, Family};
use super::jwks::KeySet;
use crate::config::read::from_json_struct;
use crate::error::config::{index, join, ConfigError};
use key_source::compile_key_source;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use token_sources::{check_injected_header, compile_sources};

/// Default `clock_skew_seconds`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Default `max_token_bytes`.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default `remote_jwks.timeout_ms`.
pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 1500;
/// Default `remote_jwks.cache_duration_seconds`.
pub const DEFAULT_CACHE_DURATION_SECONDS: u64 = 600;
/// Default `remote_jwks.min_refetch_interval_seconds`.
pub const DEFAULT_MIN_REFETCH_INTERVAL_SECONDS: u64 = 30;

/// Raw `jwt_providers.<name>`: a token issuer and how to find and check its tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJwtProvider {
    /// Required `iss` (exact match); not checked when absent (as in Envoy).
    pub issuer: Option<String>,
    /// Accepted audiences (any-of); not checked when absent.
    pub audiences: Option<Vec<String>>,
    /// Allowed `alg` values; default every asymmetric algorithm.
    pub algorithms: Option<Vec<String>>,
    /// An inline JWKS.
    pub local_jwks: Option<RawLocalJwks>,
    /// A JWKS fetched through an Envoy cluster.
    pub remote_jwks: Option<RawRemoteJwks>,
    /// A shared secret for HS256/384/512 (meshguard extension; never from a JWKS).
    pub hmac_secret: Option<RawHmacSecret>,
    /// Headers that may carry the token.
    pub from_headers: Option<Vec<RawHeaderSource>>,
    /// Query parameters that may carry the token.
    pub from_params: Option<Vec<String>>,
    /// Cookies that may carry the token.
    pub from_cookies: Option<Vec<String>>,
    /// Allowed clock skew for `exp`, `nbf`, `iat` (default 60).
    pub clock_skew_seconds: Option<u64>,
    /// Longest accepted token lifetime (`exp - iat`).
    pub max_lifetime_seconds: Option<u64>,
    /// Tokens without `exp` are refused (default true). Envoy's name.
    pub require_expiration: Option<bool>,
    /// Keep the token in the request sent upstream (default false).
    pub forward: Option<bool>,
    /// Header that receives the verified payload (base64url).
    pub forward_payload_header: Option<String>,
    /// Claims copied into request headers.
    pub claim_to_headers: Option<Vec<RawClaimToHeader>>,
    /// Longest accepted token (default 8 KiB).
    pub max_token_bytes: Option<usize>,
}

/// Raw `local_jwks`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawLocalJwks {
    /// The JWKS document as a JSON string (Envoy's name).
    pub inline_string: String,
}

/// Raw `remote_jwks`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRemoteJwks {
    /// Envoy cluster the fetch goes through.
    pub cluster: String,
    /// Request path, e.g. `/.well-known/jwks.json`.
    pub path: String,
    /// `:authority` of the fetch (default: the cluster name).
    pub authority: Option<String>,
    /// Fetch timeout (default 1500).
    pub timeout_ms: Option<u64>,
    /// Refresh period (default 600).
    pub cache_duration_seconds: Option<u64>,
    /// Least time between two refetches triggered by unknown `kid`s (default 30).
    pub min_refetch_interval_seconds: Option<u64>,
    /// Largest accepted JWKS body (default 64 KiB).
    pub max_body_bytes: Option<usize>,
}

/// Raw `hmac_secret`: the only way to verify HS256/384/512 tokens.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHmacSecret {
    /// The secret, base64url (padding optional); at least as long as the hash (32/48/64 bytes).
    pub inline_base64url: String,
    /// When set, tokens must carry this `kid`.
    pub kid: Option<String>,
}

/// Raw `from_headers[]` entry.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHeaderSource {
    /// Lowercase header name.
    pub name: String,
    /// Prefix before the token, e.g. `Bearer ` (matched case-insensitively).
    pub value_prefix: Option<String>,
}

/// Raw `claim_to_headers[]` entry.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawClaimToHeader {
    /// Claim name (a top-level claim, or a dotted path into nested objects).
    pub claim_name: String,
    /// Lowercase header name that receives it.
    pub header_name: String,
}

/// Raw `routes[].jwt`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJwtRequirement {
    /// Providers whose tokens are accepted (any-of).
    pub providers: Vec<String>,
    /// Requests without any token pass (a present but invalid token still fails).
    #[serde(default)]
    pub allow_missing: bool,
    /// Scopes that must all be granted (`scope` or `scp`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Claim name -> accepted values.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<Value>>,
}

/// Index of a provider in [`Providers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId(pub usize);

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Keys known at configure time (`local_jwks` or `hmac_secret`).
    Static(Arc<KeySet>),
    /// Keys fetched at run time.
    Remote(RemoteJwks),
}

/// A compiled `remote_jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// Envoy cluster.
    pub cluster: String,
    /// Request path.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Fetch timeout.
    pub timeout_ms: u64,
    /// Refresh period.
    pub cache_duration_seconds: u64,
    /// Least time between unknown-`kid` refetches.
    pub min_refetch_interval_seconds: u64,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Shared-store key prefix for this JWKS source (same source, same entry, across configs).
    pub store_key: String,
}

/// One place a token may be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header, with the prefix before the token (possibly empty).
    Header {
        /// Lowercase header name.
        name: String,
        /// Prefix, matched case-insensitively.
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// A compiled `claim_to_headers` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// Claim name or dotted path.
    pub claim: String,
    /// Lowercase header name.
    pub header: String,
}

/// A compiled provider. Built only by [`compile_providers`]; immutable afterwards.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The provider's name (its key under `jwt_providers`).
    pub name: String,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Accepted audiences; empty means not checked.
    pub audiences: Vec<String>,
    /// Allowed algorithms.
    pub algorithms: AlgSet,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Where tokens are looked for, in order.
    pub sources: Vec<TokenSource>,
    /// Clock skew allowance.
    pub clock_skew_seconds: u64,
    /// Longest accepted lifetime.
    pub max_lifetime_seconds: Option<u64>,
    /// Tokens without `exp` are refused.
    pub require_expiration: bool,
    /// Keep the token upstream.
    pub forward: bool,
    /// Header receiving the verified payload.
    pub forward_payload_header: Option<String>,
    /// Claims copied into headers.
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Longest accepted token.
    pub max_token_bytes: usize,
    /// SHA-256 of the build and of the settings [`super::verify::verify`] checks a token against
    /// (name, issuer, audiences, algorithms, skew, lifetime rules, size): a token another worker
    /// verified under other settings, or with another build, is not taken from the shared store.
    pub verify_digest: [u8; 32],
}

impl Provider {
    /// The provider's remote JWKS settings, if its keys are fetched.
    pub fn remote(&self) -> Option<&RemoteJwks> {
        match &self.keys {
            KeySource::Remote(r) => Some(r),
            KeySource::Static(_) => None,
        }
    }
}

/// All compiled providers, addressable by [`ProviderId`] or name.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
    warnings: Vec<String>,
}

impl Providers {
    /// The provider with this id.
    pub fn get(&self, id: ProviderId) -> Option<&Arc<Provider>> {
        self.list.get(id.0)
    }

    /// The id of the provider with this name.
    pub fn find(&self, name: &str) -> Option<ProviderId> {
        self.list
            .iter()
            .position(|p| p.name == name)
            .map(ProviderId)
    }

    /// Every provider with its id, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (ProviderId, &Arc<Provider>)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, p)| (ProviderId(i), p))
    }

    /// Number of providers.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no provider is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Non-fatal findings (skipped inline JWKS keys), for the log at configure time.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every header meshguard may set from a token, over all providers: incoming copies must be
    /// removed from every request before anything is added (anti-spoofing).
    pub fn injected_headers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.list {
            let names = p
                .forward_payload_header
                .iter()
                .map(String::as_str)
                .chain(p.claim_to_headers.iter().map(|c| c.header.as_str()));
            for n in names {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }
}

/// A compiled `routes[].jwt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRequirement {
    /// Accepted providers (any-of), in config order.
    pub providers: Vec<ProviderId>,
    /// A request without any token passes.
    pub allow_missing: bool,
    /// Scopes that must all be granted.
    pub scopes: Vec<String>,
    /// Claims whose value must be one of the listed values.
    pub claims: Vec<ClaimRule>,
}

/// One `claims` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    /// Claim name or dotted path.
    pub claim: String,
    /// Accepted values (JSON scalars).
    pub allowed: Vec<Value>,
}

/// Compiles `jwt_providers` (at `path`, normally `jwt_providers`).
pub fn compile_providers(
    raw: &BTreeMap<String, RawJwtProvider>,
    path: &str,
) -> Result<Providers, ConfigError> {
    let mut out = Providers::default();
    for (name, p) in raw {
        let ppath = join(path, name);
        if !valid_provider_name(name) {
            return Err(ConfigError::new(
                ppath,
                "provider names use 1-64 characters from A-Z a-z 0-9 _ . -",
            ));
        }
        let provider = compile_provider(name, p, &ppath, &mut out.warnings)?;
        out.list.push(Arc::new(provider));
    }
    Ok(out)
}

#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn compile_provider(
    name: &str,
    raw: &RawJwtProvider,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Provider, ConfigError> {
    let issuer = match &raw.issuer {
        Some(i) if i.is_empty() => {
            return Err(ConfigError::new(
                join(path, "issuer"),
                "must not be empty (omit it to skip the issuer check)",
            ))
        }
        other => other.clone(),
    };
    let audiences = match &raw.audiences {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                join(path, "audiences"),
                "must not be empty (omit it to skip the audience check)",
            ))
        }
        Some(list) => {
            for (i, a) in list.iter().enumerate() {
                if a.is_empty() {
                    return Err(ConfigError::new(
                        index(&join(path, "audiences"), i),
                        "must not be empty",
                    ));
                }
            }
            list.clone()
        }
    };
    let algorithms = compile_algorithms(raw, path)?;
    let keys = compile_key_source(raw, algorithms, path, warnings)?;
    let sources = compile_sources(raw, path, warnings)?;
    let clock_skew_seconds = raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    let max_lifetime_seconds = match raw.max_lifetime_seconds {
        Some(0) => {
            return Err(ConfigError::new(
                join(path, "max_lifetime_seconds"),
                "must be at least 1",
            ))
        }
        other => other,
    };
    let max_token_bytes = match raw.max_token_bytes {
        None => DEFAULT_MAX_TOKEN_BYTES,
        Some(n) if (64..=65_536).contains(&n) => n,
        Some(_) => {
            return Err(ConfigError::new(
                join(path, "max_token_bytes"),
                "must be between 64 and 65536",
            ))
        }
    };

    // Headers meshguard sets: valid, not reserved, not a token source, not set twice.
    let mut set_headers: Vec<(String, String)> = Vec::new();
    let forward_payload_header = match &raw.forward_payload_header {
        None => None,
        Some(h) => {
            let hpath = join(path, "forward_payload_header");
            check_injected_header(h, &hpath, &sources, &set_headers)?;
            set_headers.push((h.clone(), hpath));
            Some(h.clone())
        }
    };
    let mut claim_to_headers = Vec::new();
    for (i, c) in raw.claim_to_headers.iter().flatten().enumerate() {
        let cpath = index(&join(path, "claim_to_headers"), i);
        if c.claim_name.is_empty() {
            return Err(ConfigError::new(
                join(&cpath, "claim_name"),
                "must not be empty",
            ));
        }
        let hpath = join(&cpath, "header_name");
        check_injected_header(&c.header_name, &hpath, &sources, &set_headers)?;
        set_headers.push((c.header_name.clone(), hpath));
        claim_to_headers.push(ClaimToHeader {
            claim: c.claim_name.clone(),
            header: c.header_name.clone(),
        });
    }

    let require_expiration = raw.require_expiration.unwrap_or(true);
    let verify_digest = verify_digest(
        name,
        issuer.as_deref(),
        &audiences,
        algorithms,
        [
            clock_skew_seconds,
            u64::from(max_lifetime_seconds.is_some()),
            max_lifetime_seconds.unwrap_or(0),
            u64::from(require_expiration),
            u64::try_from(max_token_bytes).unwrap_or(u64::MAX),
        ],
    );
    Ok(Provider {
        name: name.to_string(),
        issuer,
        audiences,
        algorithms,
        keys,
        sources,
        clock_skew_seconds,
        max_lifetime_seconds,
        require_expiration,
        forward: raw.forward.unwrap_or(false),
        forward_payload_header,
        claim_to_headers,
        max_token_bytes,
        verify_digest,
    })
}

/// [`Provider::verify_digest`]: the build, then every field length-prefixed or tagged, so no
/// two settings collide.
fn verify_digest(
    name: &str,
    issuer: Option<&str>,
    audiences: &[String],
    algorithms: AlgSet,
    numbers: [u64; 5],
) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut text = |s: &str| {
        ctx.update(&(s.len() as u64).to_le_bytes());
        ctx.update(s.as_bytes());
    };
    // The build: a new module may verify differently (shared data outlives a reload).
    text(env!("CARGO_PKG_VERSION"));
    text(option_env!("MESHGUARD_GIT_HASH").unwrap_or("unknown"));
    text(name);
    match issuer {
        Some(i) => {
            text("iss");
            text(i);
        }
        None => text("no-iss"),
    }
    text(&audiences.len().to_string());
    for a in audiences {
        text(a);
    }
    ctx.update(&algorithms.bits().to_le_bytes());
    for n in numbers {
        ctx.update(&n.to_le_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn compile_algorithms(raw: &RawJwtProvider, path: &str) -> Result<AlgSet, ConfigError> {
    let apath = join(path, "algorithms");
    let Some(names) = &raw.algorithms else {
        if raw.hmac_secret.is_some() {
            return Err(ConfigError::new(
                apath,
                "required with hmac_secret: list the HMAC algorithms to accept (HS256, HS384, HS512)",
            ));
        }
        return Ok(AlgSet::default_asymmetric());
    };
    if names.is_empty() {
        return Err(ConfigError::new(apath, "must not be empty"));
    }
    let mut set = AlgSet::EMPTY;
    for (i, n) in names.iter().enumerate() {
        let ipath = index(&apath, i);
        let Some(alg) = Alg::parse(n) else {
            let problem = if n.eq_ignore_ascii_case("none") {
                "\"none\" (unsigned tokens) is never accepted".to_string()
            } else {
                let supported: Vec<&str> = Alg::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown algorithm {:?}; supported: {}",
                    n.chars().take(20).collect::<String>(),
                    supported.join(", ")
                )
            };
            return Err(ConfigError::new(ipath, problem));
        };
        if set.contains(alg) {
            return Err(ConfigError::new(ipath, format!("{alg} is listed twice")));
        }
        let hmac = alg.family() == Family::Hmac;
        if hmac && raw.hmac_secret.is_none() {
            return Err(ConfigError::new(
                ipath,
                format!("{alg} needs hmac_secret: HMAC keys are never taken from a JWKS"),
            ));
        }
        if !hmac && raw.hmac_secret.is_some() {
            return Err(ConfigError::new(
                ipath,
                format!("{alg} needs a JWKS; a provider with hmac_secret accepts HMAC only"),
            ));
        }
        set = set.with(alg);
    }
    Ok(set)
}

fn valid_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Compiles a `routes[].jwt` (at `path`, e.g. `routes[2].jwt`) against the compiled providers.
#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
pub fn compile_requirement(
    raw: &RawJwtRequirement,
    providers: &Providers,
    path: &str,
) -> Result<JwtRequirement, ConfigError> {
    let ppath = join(path, "providers");
    if raw.providers.is_empty() {
        return Err(ConfigError::new(ppath, "must name at least one provider"));
    }
    let mut ids = Vec::new();
    for (i, name) in raw.providers.iter().enumerate() {
        let ipath = index(&ppath, i);
        let Some(id) = providers.find(name) else {
            return Err(ConfigError::new(
                ipath,
                format!(
                    "unknown provider {:?} (not under jwt_providers)",
                    name.chars().take(64).collect::<String>()
                ),
            ));
        };
        if ids.contains(&id) {
            return Err(ConfigError::new(ipath, "provider listed twice"));
        }
        ids.push(id);
    }
    let spath = join(path, "scopes");
    for (i, s) in raw.scopes.iter().enumerate() {
        if s.is_empty()
            || s.bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'\\' || b == 0x7f)
        {
            return Err(ConfigError::new(
                index(&spath, i),
                "a scope is a non-empty string without spaces, quotes or backslashes",
            ));
        }
    }
    let cpath = join(path, "claims");
    let mut claims = Vec::new();
    for (name, allowed) in &raw.claims {
        let npath = join(&cpath, name);
        if name.is_empty() {
            return Err(ConfigError::new(npath, "claim name must not be empty"));
        }
        if allowed.is_empty() {
            return Err(ConfigError::new(npath, "list at least one accepted value"));
        }
        for (i, v) in allowed.iter().enumerate() {
            if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err(ConfigError::new(
                    index(&npath, i),
                    "accepted values are strings, numbers or booleans",
                ));
            }
        }
        claims.push(ClaimRule {
            claim: name.clone(),
            allowed: allowed.clone(),
        });
    }
    Ok(JwtRequirement {
        providers: ids,
        allow_missing: raw.allow_missing,
        scopes: raw.scopes.clone(),
        claims,
    })
}

from_json_struct!(RawJwtProvider {
    issuer: get,
    audiences: get,
    algorithms: get,
    local_jwks: get,
    remote_jwks: get,
    hmac_secret: get,
    from_headers: get,
    from_params: get,
    from_cookies: get,
    clock_skew_seconds: get,
    max_lifetime_seconds: get,
    require_expiration: get,
    forward: get,
    forward_payload_header: get,
    claim_to_headers: get,
    max_token_bytes: get,
});

from_json_struct!(RawLocalJwks { inline_string: req });

from_json_struct!(RawRemoteJwks {
    cluster: req,
    path: req,
    authority: get,
    timeout_ms: get,
    cache_duration_seconds: get,
    min_refetch_interval_seconds: get,
    max_body_bytes: get,
});

from_json_struct!(RawHmacSecret {
    inline_base64url: req,
    kid: get,
});

from_json_struct!(RawHeaderSource {
    name: req,
    value_prefix: get,
});

from_json_struct!(RawClaimToHeader {
    claim_name: req,
    header_name: req,
});

from_json_struct!(RawJwtRequirement {
    providers: req,
    allow_missing: get,
    scopes: get,
    claims: get,
});

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");

    fn raw(v: Value) -> BTreeMap<String, RawJwtProvider> {
        crate::config::read::from_value(v).unwrap()
    }

    fn compile(v: Value) -> Result<Providers, ConfigError> {
        compile_providers(&raw(v), "jwt_providers")
    }

    fn err(v: Value) -> ConfigError {
        compile(v).unwrap_err()
    }

    fn remote() -> Value {
        json!({ "cluster": "idp", "path": "/.well-known/jwks.json" })
    }

    #[test]
    fn compiles_the_contract_example() {
        let p = compile(json!({ "main": {
            "issuer": "https://issuer.example",
            "audiences": ["api.example"],
            "algorithms": ["RS256", "ES256", "EdDSA"],
            "remote_jwks": { "cluster": "idp", "path": "/.well-known/jwks.json",
                             "authority": "idp.example", "timeout_ms": 1500,
                             "cache_duration_seconds": 600 },
            "from_headers": [{ "name": "authorization", "value_prefix": "Bearer " }],
            "from_params": ["access_token"],
            "from_cookies": ["session"],
            "clock_skew_seconds": 60,
            "max_lifetime_seconds": 86400,
            "forward": false,
            "forward_payload_header": "x-jwt-payload",
            "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }]
        }}))
        .unwrap();
        let (id, main) = p.iter().next().unwrap();
        assert_eq!(p.find("main"), Some(id));
        assert_eq!(main.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(main.algorithms.iter().count(), 3);
        assert!(main.require_expiration);
        assert_eq!(main.sources.len(), 3);
        let r = main.remote().unwrap();
        assert_eq!(r.authority, "idp.example");
        assert_eq!(r.min_refetch_interval_seconds, 30);
        assert_eq!(r.max_body_bytes, 65536);
        assert!(r.store_key.starts_with("meshguard.jwks."));
        assert_eq!(p.injected_headers(), vec!["x-jwt-payload", "x-user"]);
    }

    #[test]
    fn defaults_are_safe() {
        let p = compile(json!({ "a": { "remote_jwks": remote() } })).unwrap();
        let a = p.get(ProviderId(0)).unwrap();
        assert_eq!(a.algorithms, AlgSet::default_asymmetric());
        assert_eq!(
            a.sources,
            vec![TokenSource::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            }]
        );
        assert_eq!(a.clock_skew_seconds, 60);
        assert!(a.require_expiration && !a.forward);
        assert_eq!(a.max_token_bytes, 8192);
        let r = a.remote().unwrap();
        assert_eq!((r.timeout_ms, r.cache_duration_seconds), (1500, 600));
        assert_eq!(r.authority, "idp");
    }

    #[test]
    fn params_and_cookies_keep_the_authorization_header_as_a_source() {
        let p = compile(
            json!({ "a": { "remote_jwks": remote(), "from_params": ["access_token"],
                                      "from_cookies": ["session"] } }),
        )
        .unwrap();
        let a = p.get(ProviderId(0)).unwrap();
        assert_eq!(
            a.sources,
            vec![
                TokenSource::Header {
                    name: "authorization".into(),
                    prefix: "Bearer ".into()
                },
                TokenSource::Param("access_token".into()),
                TokenSource::Cookie("session".into()),
            ]
        );
        assert!(p.warnings().is_empty());
        // An explicit header list is the operator's choice, with a warning when it leaves the
        // authorization header unread.
        let p = compile(json!({ "a": { "remote_jwks": remote(),
                                      "from_headers": [{ "name": "x-token" }] } }))
        .unwrap();
        assert_eq!(p.get(ProviderId(0)).unwrap().sources.len(), 1);
        assert!(p.warnings().iter().any(|w| w.contains("authorization")));
    }

    #[test]
    fn rejects_unknown_fields() {
        let e = crate::config::read::from_value::<BTreeMap<String, RawJwtProvider>>(
            json!({ "a": { "remote_jwks": remote(), "issuers": "x" } }),
        );
        assert!(e.is_err());
        let e = crate::config::read::from_value::<RawJwtRequirement>(
            json!({ "providers": ["a"], "scope": [] }),
        );
        assert!(e.is_err());
    }

    #[test]
    fn requires_exactly_one_key_source() {
        let e = err(json!({ "a": {} }));
        assert_eq!(e.path, "jwt_providers.a");
        let e = err(json!({ "a": { "remote_jwks": remote(),
                                   "local_jwks": { "inline_string": JWKS } } }));
        assert!(e.problem.contains("exactly one"));
    }

    #[test]
    fn rejects_bad_algorithm_names_with_their_path() {
        let e = err(json!({ "a": { "remote_jwks": remote(), "algorithms": ["RS256", "none"] } }));
        assert_eq!(e.path, "jwt_providers.a.algorithms[1]");
        assert!(e.problem.contains("never"));
        let e = err(json!({ "a": { "remote_jwks": remote(), "algorithms": ["RS257"] } }));
        assert_eq!(e.path, "jwt_providers.a.algorithms[0]");
        let e = err(json!({ "a": { "remote_jwks": remote(), "algorithms": [] } }));
        assert_eq!(e.path, "jwt_providers.a.algorithms");
        let e = err(json!({ "a": { "remote_jwks": remote(), "algorithms": ["HS256"] } }));
        assert!(e.problem.contains("hmac_secret"), "{e}");
    }

    #[test]
    fn hmac_needs_an_explicit_long_enough_secret() {
        let secret32 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let ok = compile(
            json!({ "h": { "hmac_secret": { "inline_base64url": secret32 },
                                        "algorithms": ["HS256"] } }),
        )
        .unwrap();
        let h = ok.get(ProviderId(0)).unwrap();
        assert!(matches!(&h.keys, KeySource::Static(k) if k.len() == 1));

        let e = err(json!({ "h": { "hmac_secret": { "inline_base64url": secret32 } } }));
        assert_eq!(e.path, "jwt_providers.h.algorithms");
        let e = err(
            json!({ "h": { "hmac_secret": { "inline_base64url": secret32 },
                                   "algorithms": ["HS512"] } }),
        );
        assert_eq!(e.path, "jwt_providers.h.hmac_secret.inline_base64url");
        let e = err(
            json!({ "h": { "hmac_secret": { "inline_base64url": secret32 },
                                   "algorithms": ["HS256", "RS256"] } }),
        );
        assert_eq!(e.path, "jwt_providers.h.algorithms[1]");
    }

    #[test]
    fn inline_jwks_is_decoded_at_configure_time() {
        let p = compile(json!({ "l": { "local_jwks": { "inline_string": JWKS } } })).unwrap();
        assert!(
            matches!(&p.get(ProviderId(0)).unwrap().keys, KeySource::Static(k) if k.len() == 5)
        );
        let e = err(json!({ "l": { "local_jwks": { "inline_string": "{\"keys\": 3}" } } }));
        assert_eq!(e.path, "jwt_providers.l.local_jwks.inline_string");
        let e = err(json!({ "l": { "local_jwks": { "inline_string":
            "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}" } } }));
        assert!(e.problem.contains("oct"), "{e}");
        // Keys exist but none fits the allow-list.
        let e = err(json!({ "l": { "local_jwks": { "inline_string": JWKS },
                                   "algorithms": ["PS256"] } }));
        assert!(e.problem.contains("no key"), "{e}");
    }

    #[test]
    fn skipped_inline_keys_become_warnings() {
        let mut doc: Value = serde_json::from_str(JWKS).unwrap();
        doc["keys"][0]["use"] = json!("enc");
        let p = compile(json!({ "l": { "local_jwks": { "inline_string": doc.to_string() } } }))
            .unwrap();
        assert_eq!(p.warnings().len(), 1);
        assert!(p.warnings()[0].contains("rsa-a"));
    }

    #[test]
    fn header_names_must_be_valid_lowercase_and_not_reserved() {
        let e = err(json!({ "a": { "remote_jwks": remote(),
                                   "from_headers": [{ "name": "X-Token" }] } }));
        assert_eq!(e.path, "jwt_providers.a.from_headers[0].name");
        assert!(e.problem.contains("lowercase"));
        let e = err(json!({ "a": { "remote_jwks": remote(),
                                   "claim_to_headers": [{ "claim_name": "sub", "header_name": "x y" }] } }));
        assert_eq!(e.path, "jwt_providers.a.claim_to_headers[0].header_name");
        let e = err(json!({ "a": { "remote_jwks": remote(), "forward_payload_header": "host" } }));
        assert_eq!(e.path, "jwt_providers.a.forward_payload_header");
        let e = err(
            json!({ "a": { "remote_jwks": remote(), "forward_payload_header": "x-p",
                                   "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-p" }] } }),
        );
        assert!(e.problem.contains("already set"), "{e}");
        let e = err(json!({ "a": { "remote_jwks": remote(),
                                   "from_headers": [{ "name": "x-tok" }],
                                   "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-tok" }] } }));
        assert!(e.problem.contains("token source"), "{e}");
    }

    #[test]
    fn remote_jwks_values_are_range_checked() {
        let e = err(json!({ "a": { "remote_jwks": { "cluster": "idp", "path": "jwks" } } }));
        assert_eq!(e.path, "jwt_providers.a.remote_jwks.path");
        let e = err(json!({ "a": { "remote_jwks": { "cluster": "", "path": "/j" } } }));
        assert_eq!(e.path, "jwt_providers.a.remote_jwks.cluster");
        let e = err(
            json!({ "a": { "remote_jwks": { "cluster": "c", "path": "/j", "timeout_ms": 0 } } }),
        );
        assert_eq!(e.path, "jwt_providers.a.remote_jwks.timeout_ms");
    }

    #[test]
    fn same_jwks_source_shares_a_store_key() {
        let p = compile(json!({ "a": { "remote_jwks": remote() },
                                "b": { "remote_jwks": remote(), "issuer": "other" },
                                "c": { "remote_jwks": { "cluster": "idp", "path": "/other" } } }))
        .unwrap();
        let key = |i| {
            p.get(ProviderId(i))
                .unwrap()
                .remote()
                .unwrap()
                .store_key
                .clone()
        };
        assert_eq!(key(0), key(1));
        assert_ne!(key(0), key(2));
    }

    #[test]
    fn rejects_bad_provider_names_and_empty_lists() {
        let e = err(json!({ "bad name": { "remote_jwks": remote() } }));
        assert_eq!(e.path, "jwt_providers.bad name");
        let e = err(json!({ "a": { "remote_jwks": remote(), "audiences": [] } }));
        assert_eq!(e.path, "jwt_providers.a.audiences");
        let e = err(json!({ "a": { "remote_jwks": remote(), "from_params": [] } }));
        assert_eq!(e.path, "jwt_providers.a.from_params");
    }

    #[test]
    fn compiles_requirements_against_providers() {
        let p = compile(json!({ "a": { "remote_jwks": remote() },
                                "b": { "remote_jwks": remote() } }))
        .unwrap();
        let req: RawJwtRequirement = crate::config::read::from_value(json!({
            "providers": ["b", "a"], "scopes": ["users:read"],
            "claims": { "tenant": ["a", "b"] } }))
        .unwrap();
        let r = compile_requirement(&req, &p, "routes[0].jwt").unwrap();
        assert_eq!(r.providers, vec![ProviderId(1), ProviderId(0)]);
        assert!(!r.allow_missing);
        assert_eq!(r.claims[0].claim, "tenant");

        let bad = |v: Value| {
            let req: RawJwtRequirement = crate::config::read::from_value(v).unwrap();
            compile_requirement(&req, &p, "routes[3].jwt").unwrap_err()
        };
        assert_eq!(
            bad(json!({ "providers": ["a", "zz"] })).path,
            "routes[3].jwt.providers[1]"
        );
        assert_eq!(
            bad(json!({ "providers": [] })).path,
            "routes[3].jwt.providers"
        );
        assert_eq!(
            bad(json!({ "providers": ["a", "a"] })).path,
            "routes[3].jwt.providers[1]"
        );
        assert_eq!(
            bad(json!({ "providers": ["a"], "scopes": ["a b"] })).path,
            "routes[3].jwt.scopes[0]"
        );
        assert_eq!(
            bad(json!({ "providers": ["a"], "claims": { "t": [] } })).path,
            "routes[3].jwt.claims.t"
        );
        assert_eq!(
            bad(json!({ "providers": ["a"], "claims": { "t": [{"x": 1}] } })).path,
            "routes[3].jwt.claims.t[0]"
        );
    }
}
