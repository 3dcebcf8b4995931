//! Where may a provider's token be found, and which request headers may it set? Header and
//! cookie names follow [`crate::http::name`]; a header set from a token is never one that
//! frames, routes or authenticates the request, nor one of the provider's own token sources.

use super::{RawJwtProvider, TokenSource};
use crate::error::config::{index, join, ConfigError};
use crate::http;

/// The provider's token sources. Without `from_headers`, `Authorization: Bearer` is always one
/// of them, also next to `from_params` / `from_cookies`. Envoy's jwt_authn drops the default
/// header once any location is configured; meshguard keeps it so that a bearer token in the
/// request is either the verified token (and stripped) or a second, different token (refused as
/// ambiguous), and never an unverified token passed upstream next to the verified identity.
#[inline(never)] // config time: keeps compile_providers small for V8 (docs/cost.md)
pub(super) fn compile_sources(
    raw: &RawJwtProvider,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<TokenSource>, ConfigError> {
    let mut sources = Vec::new();
    if raw.from_headers.is_none() {
        sources.push(TokenSource::Header {
            name: "authorization".to_string(),
            prefix: "Bearer ".to_string(),
        });
    }
    if let Some(headers) = &raw.from_headers {
        if !headers.iter().any(|h| h.name == "authorization") {
            warnings.push(format!(
                "{}: no entry reads the authorization header: a bearer token there reaches the upstream unverified",
                join(path, "from_headers")
            ));
        }
        let hpath = join(path, "from_headers");
        if headers.is_empty() {
            return Err(ConfigError::new(hpath, "must not be empty"));
        }
        for (i, h) in headers.iter().enumerate() {
            let ipath = index(&hpath, i);
            check_header_name(&h.name, &join(&ipath, "name"))?;
            let prefix = h.value_prefix.clone().unwrap_or_default();
            if prefix.bytes().any(|b| b < b' ' || b == 0x7f) {
                return Err(ConfigError::new(
                    join(&ipath, "value_prefix"),
                    "must not contain control characters",
                ));
            }
            sources.push(TokenSource::Header {
                name: h.name.clone(),
                prefix,
            });
        }
    }
    if let Some(params) = &raw.from_params {
        let ppath = join(path, "from_params");
        if params.is_empty() {
            return Err(ConfigError::new(ppath, "must not be empty"));
        }
        for (i, p) in params.iter().enumerate() {
            if p.is_empty()
                || p.bytes()
                    .any(|b| matches!(b, b'&' | b'=' | b'#') || b <= b' ')
            {
                return Err(ConfigError::new(
                    index(&ppath, i),
                    "must be a non-empty parameter name without '&', '=', '#' or spaces",
                ));
            }
            sources.push(TokenSource::Param(p.clone()));
        }
    }
    if let Some(cookies) = &raw.from_cookies {
        let cpath = join(path, "from_cookies");
        if cookies.is_empty() {
            return Err(ConfigError::new(cpath, "must not be empty"));
        }
        for (i, c) in cookies.iter().enumerate() {
            if !http::name::is_token(c) {
                return Err(ConfigError::new(
                    index(&cpath, i),
                    "must be a cookie name (RFC 6265 token characters)",
                ));
            }
            sources.push(TokenSource::Cookie(c.clone()));
        }
    }
    Ok(sources)
}

/// A header name a provider reads or sets: a lower-case token ([`http::name::check_lower`]).
fn check_header_name(name: &str, path: &str) -> Result<(), ConfigError> {
    http::name::check_lower(name).map_err(|e| ConfigError::new(path, e.describe()))
}

pub(super) fn check_injected_header(
    name: &str,
    path: &str,
    sources: &[TokenSource],
    already: &[(String, String)],
) -> Result<(), ConfigError> {
    check_header_name(name, path)?;
    if http::name::is_reserved(name) {
        return Err(ConfigError::new(
            path,
            format!("{name} is reserved and cannot be set from a token"),
        ));
    }
    if sources
        .iter()
        .any(|s| matches!(s, TokenSource::Header { name: n, .. } if n == name))
    {
        return Err(ConfigError::new(
            path,
            "is also a token source of this provider",
        ));
    }
    if let Some((_, first)) = already.iter().find(|(n, _)| n == name) {
        return Err(ConfigError::new(path, format!("is already set by {first}")));
    }
    Ok(())
}
