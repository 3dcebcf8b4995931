//! Is this token valid for this provider? Parsing, key selection, signature and claim checks.
//!
//! Only JWS compact serialization with three segments is accepted; JWE (five segments or an
//! `enc` header) and nested JWTs (`cty: JWT` or `application/jwt`, any case) are refused, as is any `crit` header (meshguard
//! implements no JWS extension). The key always comes from the provider's [`KeySet`], selected
//! by `kid`: `jwk`, `jku`, `x5u`, `x5c` headers are ignored. The token's `alg` must be in the
//! provider's allow-list and be an algorithm the selected key is pinned to, so `none`, HMAC with
//! a public key, and other algorithm confusions fail before any cryptography.
//!
//! The signature is checked before the payload is parsed. Registered claims must have their
//! RFC 7519 types (`iss`, `sub`, `jti` strings; `exp`, `nbf`, `iat` numbers; `aud` a string or
//! an array of strings), else the token is malformed (401). Duplicate header parameters and
//! duplicate claims are refused (RFC 7515 §5.2, RFC 7519 §4), at any depth and in any case (the
//! strict reader of request bodies), so the claims meshguard checks are the claims the upstream
//! sees, whichever duplicate its JSON parser would keep. Time is given by the caller; nothing here reads a
//! clock, caches, or fetches keys.

use super::alg::Alg;
use super::config::Provider;
use super::jwks::{Key, KeyFingerprint, KeySet};
use crate::error::{Denial, Reason};
use crate::validate::json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;

/// How long a verified token without `exp` may stay in the verified-token cache.
pub const NO_EXP_CACHE_SECONDS: u64 = 300;
/// Most keys tried for a token that names no `kid` (among the keys pinned to its `alg` whose
/// signature length fits): a forged token costs at most this many signature checks. Three
/// covers an issuer rotating keys (old, current, next) without `kid`s.
pub const MAX_KEYS_TRIED: usize = 3;

/// Why a token is refused. Each variant is one [`Reason`]; the text is operator detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// [`Reason::JwtMalformed`]: segments, base64url, JSON, size.
    Malformed(&'static str),
    /// [`Reason::JwtAlgNotAllowed`]: `none`, not in the allow-list, or not the key's algorithm.
    AlgNotAllowed(&'static str),
    /// [`Reason::JwtUnknownKid`]: no key in the set can be selected for this token.
    UnknownKid,
    /// [`Reason::JwtBadSignature`].
    BadSignature,
    /// [`Reason::JwtCritUnsupported`].
    CritUnsupported,
    /// [`Reason::JwtUnsupportedType`]: JWE or nested JWT.
    UnsupportedType(&'static str),
    /// [`Reason::JwtExpired`].
    Expired,
    /// [`Reason::JwtNotYetValid`]: `nbf` or `iat` in the future.
    NotYetValid(&'static str),
    /// [`Reason::JwtLifetimeTooLong`]: over `max_lifetime_seconds`, or no `exp` when required.
    LifetimeTooLong(&'static str),
    /// [`Reason::JwtIssuerMismatch`].
    IssuerMismatch,
    /// [`Reason::JwtAudienceMismatch`].
    AudienceMismatch,
}

impl JwtError {
    /// The reason code.
    pub fn reason(self) -> Reason {
        match self {
            JwtError::Malformed(_) => Reason::JwtMalformed,
            JwtError::AlgNotAllowed(_) => Reason::JwtAlgNotAllowed,
            JwtError::UnknownKid => Reason::JwtUnknownKid,
            JwtError::BadSignature => Reason::JwtBadSignature,
            JwtError::CritUnsupported => Reason::JwtCritUnsupported,
            JwtError::UnsupportedType(_) => Reason::JwtUnsupportedType,
            JwtError::Expired => Reason::JwtExpired,
            JwtError::NotYetValid(_) => Reason::JwtNotYetValid,
            JwtError::LifetimeTooLong(_) => Reason::JwtLifetimeTooLong,
            JwtError::IssuerMismatch => Reason::JwtIssuerMismatch,
            JwtError::AudienceMismatch => Reason::JwtAudienceMismatch,
        }
    }

    /// Operator detail (never token content).
    pub fn detail(self) -> &'static str {
        match self {
            JwtError::Malformed(d)
            | JwtError::AlgNotAllowed(d)
            | JwtError::UnsupportedType(d)
            | JwtError::NotYetValid(d)
            | JwtError::LifetimeTooLong(d) => d,
            JwtError::UnknownKid => "no key in the key set matches the token's kid",
            JwtError::BadSignature => "signature does not verify",
            JwtError::CritUnsupported => "crit header present",
            JwtError::Expired => "exp is past (beyond clock skew)",
            JwtError::IssuerMismatch => "iss is not the provider's issuer",
            JwtError::AudienceMismatch => "aud has none of the provider's audiences",
        }
    }

    /// The denial for this error, with the detail in the audit-only field.
    pub fn to_denial(self) -> Denial {
        Denial::new(self.reason()).with_log_detail(self.detail())
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason().code(), self.detail())
    }
}

/// A token that passed every check of its provider.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// All claims.
    pub claims: Map<String, Value>,
    /// `iss`, when it is a string.
    pub iss: Option<String>,
    /// `sub`, when it is a string.
    pub sub: Option<String>,
    /// The `kid` of the key that verified it.
    pub kid: Option<String>,
    /// The algorithm it was signed with.
    pub alg: Alg,
    /// `exp`, in Unix seconds.
    pub exp: Option<u64>,
    /// The payload segment as received (base64url), for `forward_payload_header`.
    pub payload_b64: String,
    /// The key that verified it (the cache drops the entry when this key leaves the set).
    pub key: KeyFingerprint,
    /// Until when (Unix seconds, exclusive) a cached copy may stand in for verification.
    pub valid_until: u64,
}

impl VerifiedToken {
    /// A claim by name, or by dotted path into nested objects when no top-level claim has
    /// that exact name (`realm_access.roles`).
    pub fn claim(&self, name: &str) -> Option<&Value> {
        if let Some(v) = self.claims.get(name) {
            return Some(v);
        }
        let mut parts = name.split('.');
        let first = parts.next()?;
        let mut cur = self.claims.get(first)?;
        for part in parts {
            cur = cur.as_object()?.get(part)?;
        }
        Some(cur)
    }
}

/// `bytes` as one JSON object, by the strict reader: a name repeated in one object, in any case,
/// makes the token malformed (its size is already bounded by `max_token_bytes`).
fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match json::parse(bytes, &json::DOCUMENT_LIMITS) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Verifies `token` for `provider` with `keys` at `now_secs` (Unix seconds).
pub fn verify(
    token: &str,
    provider: &Provider,
    keys: &KeySet,
    now_secs: u64,
) -> Result<VerifiedToken, JwtError> {
    if token.is_empty() {
        return Err(JwtError::Malformed("empty token"));
    }
    if token.len() > provider.max_token_bytes {
        return Err(JwtError::Malformed("token exceeds max_token_bytes"));
    }
    match token.bytes().filter(|b| *b == b'.').count() {
        2 => {}
        4 => return Err(JwtError::UnsupportedType("JWE (five segments)")),
        _ => return Err(JwtError::Malformed("not three dot-separated segments")),
    }
    let (signing_input, sig_b64) = token
        .rsplit_once('.')
        .ok_or(JwtError::Malformed("not three dot-separated segments"))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(JwtError::Malformed("not three dot-separated segments"))?;

    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    if header_bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JwtError::Malformed("header is not a JSON object"));
    }
    let header = json_object(&header_bytes).ok_or(JwtError::Malformed(
        "header is not a JSON object without duplicates",
    ))?;
    // A parameter set to `null` is absent, as it was when serde read the header into `Option`s
    // (some libraries write `"kid": null`).
    let param = |name: &str| header.get(name).filter(|v| !v.is_null());
    if param("enc").is_some() {
        return Err(JwtError::UnsupportedType("JWE (enc header)"));
    }
    match param("cty") {
        // RFC 7515 §4.1.10: `JWT` and `application/JWT` name the same type, in any case.
        Some(Value::String(c))
            if c.eq_ignore_ascii_case("JWT") || c.eq_ignore_ascii_case("application/jwt") =>
        {
            return Err(JwtError::UnsupportedType("nested JWT (cty: JWT)"));
        }
        Some(Value::String(_)) | None => {}
        Some(_) => return Err(JwtError::Malformed("cty header is not a string")),
    }
    if param("crit").is_some() {
        return Err(JwtError::CritUnsupported);
    }
    let alg_name = match param("alg") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(JwtError::Malformed("alg header missing or not a string")),
    };
    let alg = match Alg::parse(alg_name) {
        Some(a) => a,
        None if alg_name.eq_ignore_ascii_case("none") => {
            return Err(JwtError::AlgNotAllowed("alg none (unsigned token)"))
        }
        None => return Err(JwtError::AlgNotAllowed("unknown alg")),
    };
    if !provider.algorithms.contains(alg) {
        return Err(JwtError::AlgNotAllowed(
            "alg not in the provider's algorithms",
        ));
    }
    let kid = match param("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(JwtError::Malformed("kid header is not a string")),
    };
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| JwtError::Malformed("signature is not base64url"))?;

    let candidates = select_keys(keys, kid, alg, sig.len())?;
    let key = candidates
        .into_iter()
        .find(|k| k.verify(alg, signing_input.as_bytes(), &sig))
        .ok_or(JwtError::BadSignature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    let claims = json_object(&payload).ok_or(JwtError::Malformed(
        "payload is not a JSON object without duplicates",
    ))?;

    check_claim_types(&claims)?;
    let exp = check_times(&claims, provider, now_secs)?;
    if let Some(issuer) = &provider.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(JwtError::IssuerMismatch);
        }
    }
    if !provider.audiences.is_empty() && !audience_matches(claims.get("aud"), &provider.audiences) {
        return Err(JwtError::AudienceMismatch);
    }
    let skew = provider.clock_skew_seconds;
    let valid_until = match exp {
        Some(exp) => exp.saturating_add(skew),
        None => now_secs.saturating_add(NO_EXP_CACHE_SECONDS),
    };
    Ok(VerifiedToken::assemble(
        claims,
        key.kid().map(str::to_string),
        alg,
        exp,
        payload_b64.to_string(),
        key.fingerprint(),
        valid_until,
    ))
}

impl VerifiedToken {
    fn assemble(
        claims: Map<String, Value>,
        kid: Option<String>,
        alg: Alg,
        exp: Option<u64>,
        payload_b64: String,
        key: KeyFingerprint,
        valid_until: u64,
    ) -> VerifiedToken {
        let string_claim =
            |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        VerifiedToken {
            iss: string_claim("iss"),
            sub: string_claim("sub"),
            kid,
            alg,
            exp,
            payload_b64,
            key,
            valid_until,
            claims,
        }
    }

    /// A token another worker verified, rebuilt from what it published: the claims are decoded
    /// again from the payload segment, by the same reader as in [`verify`].
    pub(crate) fn from_verified_parts(
        payload_b64: &str,
        kid: Option<String>,
        alg: Alg,
        exp: Option<u64>,
        key: KeyFingerprint,
        valid_until: u64,
    ) -> Option<VerifiedToken> {
        let claims = json_object(&URL_SAFE_NO_PAD.decode(payload_b64).ok()?)?;
        Some(VerifiedToken::assemble(
            claims,
            kid,
            alg,
            exp,
            payload_b64.to_string(),
            key,
            valid_until,
        ))
    }
}

/// The `iss` of a token *without verifying anything*: only to route a token to the provider
/// whose issuer it claims (as Envoy does), never to trust it.
pub fn peek_issuer(token: &str, max_token_bytes: usize) -> Option<String> {
    if token.len() > max_token_bytes {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match json_object(&bytes)?.remove("iss")? {
        Value::String(iss) => Some(iss),
        _ => None,
    }
}

/// The keys that may verify a token with this `kid` and `alg`. A named `kid` selects that key
/// (or, as in Envoy, keys that have no `kid`); no `kid` selects the keys pinned to `alg`, at
/// most [`MAX_KEYS_TRIED`]. Keys whose signature length cannot fit are skipped (the token's
/// signature is then bad, not its key unknown).
fn select_keys<'k>(
    keys: &'k KeySet,
    kid: Option<&str>,
    alg: Alg,
    sig_len: usize,
) -> Result<Vec<&'k Key>, JwtError> {
    if let Some(kid) = kid {
        if let Some(key) = keys.by_kid(kid) {
            return if !key.admits(alg) {
                Err(JwtError::AlgNotAllowed(
                    "the key with this kid is pinned to another algorithm",
                ))
            } else if key.signature_len_fits(alg, sig_len) {
                Ok(vec![key])
            } else {
                Err(JwtError::BadSignature)
            };
        }
    }
    let admitted = keys
        .keys()
        .iter()
        .filter(|k| (kid.is_none() || k.kid().is_none()) && k.admits(alg));
    let mut any = false;
    let found: Vec<&Key> = admitted
        .inspect(|_| any = true)
        .filter(|k| k.signature_len_fits(alg, sig_len))
        .take(MAX_KEYS_TRIED)
        .collect();
    match (found.is_empty(), any) {
        (false, _) => Ok(found),
        (true, true) => Err(JwtError::BadSignature),
        (true, false) => Err(JwtError::UnknownKid),
    }
}

/// RFC 7519 §4.1: the registered claims have fixed JSON types. A token where one has another
/// type is malformed, whichever claim the provider checks: the upstream may read the claim
/// (an `aud` object, a `sub` number) differently from meshguard.
fn check_claim_types(claims: &Map<String, Value>) -> Result<(), JwtError> {
    for name in ["iss", "sub", "jti"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(JwtError::Malformed("iss, sub or jti is not a string"));
        }
    }
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !v.is_number()) {
            return Err(JwtError::Malformed("a time claim is not a number"));
        }
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(JwtError::Malformed(
            "aud is not a string or an array of strings",
        )),
    }
}

/// A NumericDate: a non-negative number of seconds (fractions dropped, negatives as 0).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // `as` saturates: negatives become 0, huge values u64::MAX.
                Ok(Some(f.max(0.0) as u64))
            } else {
                Ok(Some(0))
            }
        }
        Some(_) => Err(JwtError::Malformed("a time claim is not a number")),
    }
}

fn check_times(
    claims: &Map<String, Value>,
    provider: &Provider,
    now: u64,
) -> Result<Option<u64>, JwtError> {
    let skew = provider.clock_skew_seconds;
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    match exp {
        Some(exp) if now >= exp.saturating_add(skew) => return Err(JwtError::Expired),
        Some(_) => {}
        None if provider.require_expiration || provider.max_lifetime_seconds.is_some() => {
            return Err(JwtError::LifetimeTooLong(
                "no exp claim (expiration is required)",
            ))
        }
        None => {}
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(JwtError::NotYetValid("nbf is in the future"));
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(JwtError::NotYetValid("iat is in the future"));
    }
    if let (Some(max), Some(exp)) = (provider.max_lifetime_seconds, exp) {
        let lifetime = exp.saturating_sub(iat.unwrap_or(now));
        if lifetime > max {
            return Err(JwtError::LifetimeTooLong(
                "lifetime exceeds max_lifetime_seconds",
            ));
        }
    }
    Ok(exp)
}

fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    let ok = |v: &Value| v.as_str().is_some_and(|s| accepted.iter().any(|a| a == s));
    match aud {
        Some(Value::Array(list)) => list.iter().any(ok),
        Some(v) => ok(v),
        None => false,
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
