//! Where do a provider's keys come from? Exactly one of `local_jwks` (decoded here, once),
//! `hmac_secret` (long enough for every HMAC algorithm allowed) or `remote_jwks` (cluster, path,
//! timeouts and limits range-checked; one shared store entry per JWKS source).

use super::{
    KeySource, RawJwtProvider, RemoteJwks, DEFAULT_CACHE_DURATION_SECONDS,
    DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_MIN_REFETCH_INTERVAL_SECONDS,
};
use crate::authn::alg::{Alg, AlgSet};
use crate::authn::jwks::{self, KeySet};
use crate::error::config::{join, ConfigError};
use base64::Engine as _;
use std::sync::Arc;

#[inline(never)] // config time: keeps compile_providers small for V8 (docs/cost.md)
pub(super) fn compile_key_source(
    raw: &RawJwtProvider,
    algorithms: AlgSet,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<KeySource, ConfigError> {
    let given = [
        raw.local_jwks.is_some(),
        raw.remote_jwks.is_some(),
        raw.hmac_secret.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(ConfigError::new(
            path,
            "set exactly one of local_jwks, remote_jwks, hmac_secret",
        ));
    }
    if let Some(local) = &raw.local_jwks {
        let lpath = join(&join(path, "local_jwks"), "inline_string");
        let decoded = jwks::decode_jwks(local.inline_string.as_bytes(), usize::MAX)
            .map_err(|e| ConfigError::new(&lpath, e.to_string()))?;
        for w in &decoded.warnings {
            warnings.push(format!("{lpath}: {w}"));
        }
        if !decoded
            .keys
            .keys()
            .iter()
            .any(|k| k.algs().iter().any(|a| algorithms.contains(a)))
        {
            return Err(ConfigError::new(
                lpath,
                "no key in this JWKS can verify any of the provider's algorithms",
            ));
        }
        return Ok(KeySource::Static(Arc::new(decoded.keys)));
    }
    if let Some(secret) = &raw.hmac_secret {
        let spath = join(path, "hmac_secret");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret.inline_base64url.trim_end_matches('='))
            .map_err(|_| {
                ConfigError::new(join(&spath, "inline_base64url"), "is not valid base64url")
            })?;
        for alg in algorithms.iter() {
            let need = match alg {
                Alg::HS256 => 32,
                Alg::HS384 => 48,
                _ => 64,
            };
            if bytes.len() < need {
                return Err(ConfigError::new(
                    join(&spath, "inline_base64url"),
                    format!(
                        "{alg} needs a secret of at least {need} bytes; this one has {}",
                        bytes.len()
                    ),
                ));
            }
        }
        if let Some(kid) = &secret.kid {
            if kid.is_empty() || kid.len() > jwks::MAX_KID_BYTES {
                return Err(ConfigError::new(join(&spath, "kid"), "must be 1-256 bytes"));
            }
        }
        return Ok(KeySource::Static(Arc::new(KeySet::hmac(
            &bytes,
            secret.kid.clone(),
            algorithms,
        ))));
    }
    let Some(remote) = &raw.remote_jwks else {
        return Err(ConfigError::new(path, "no key source"));
    };
    let rpath = join(path, "remote_jwks");
    if remote.cluster.is_empty() {
        return Err(ConfigError::new(
            join(&rpath, "cluster"),
            "must not be empty",
        ));
    }
    if !remote.path.starts_with('/') || remote.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ConfigError::new(
            join(&rpath, "path"),
            "must start with '/' and contain no spaces or control characters",
        ));
    }
    let authority = remote
        .authority
        .clone()
        .unwrap_or_else(|| remote.cluster.clone());
    if authority.is_empty() || authority.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ConfigError::new(
            join(&rpath, "authority"),
            "must be a host name without spaces or control characters",
        ));
    }
    let timeout_ms = in_range(
        remote.timeout_ms,
        DEFAULT_FETCH_TIMEOUT_MS,
        1,
        60_000,
        &join(&rpath, "timeout_ms"),
    )?;
    let cache_duration_seconds = in_range(
        remote.cache_duration_seconds,
        DEFAULT_CACHE_DURATION_SECONDS,
        1,
        7 * 24 * 3600,
        &join(&rpath, "cache_duration_seconds"),
    )?;
    let min_refetch_interval_seconds = in_range(
        remote.min_refetch_interval_seconds,
        DEFAULT_MIN_REFETCH_INTERVAL_SECONDS,
        1,
        24 * 3600,
        &join(&rpath, "min_refetch_interval_seconds"),
    )?;
    let max_body_bytes = in_range(
        remote.max_body_bytes.map(|v| v as u64),
        jwks::DEFAULT_MAX_JWKS_BYTES as u64,
        256,
        1 << 20,
        &join(&rpath, "max_body_bytes"),
    )? as usize;
    let store_key = store_key_for(&remote.cluster, &authority, &remote.path);
    Ok(KeySource::Remote(RemoteJwks {
        cluster: remote.cluster.clone(),
        path: remote.path.clone(),
        authority,
        timeout_ms,
        cache_duration_seconds,
        min_refetch_interval_seconds,
        max_body_bytes,
        store_key,
    }))
}

/// `meshguard.jwks.<hex>`: one shared entry per JWKS source, whatever the provider is called.
fn store_key_for(cluster: &str, authority: &str, path: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [cluster, authority, path] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let digest = ctx.finish();
    let hex: String = digest
        .as_ref()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("meshguard.jwks.{hex}")
}

fn in_range(
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
    path: &str,
) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(_) => Err(ConfigError::new(
            path,
            format!("must be between {min} and {max}"),
        )),
    }
}
