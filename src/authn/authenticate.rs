//! Is this request authenticated for this route? Ties the other questions together for one
//! `routes[].jwt` requirement: find a token for one of its providers (any-of), get that
//! provider's keys, answer from the verified-token cache or verify, then check scopes and claims.
//!
//! A token is routed to the providers whose `issuer` its (unverified) `iss` names, as Envoy
//! does, so a token is not checked against every provider's keys and the error reported is the
//! one of the provider it claims to come from. Keys not fetched yet, or an unknown `kid` that a
//! refetch may resolve, pause the request ([`AuthnOutcome::Pause`]); the adapter resumes it by
//! calling [`authenticate`] again when the key generation changes, or denies with
//! [`Pause::deny_on_timeout`] after the fetch timeout. Report mode, metrics and the HTTP reply
//! belong to the caller; nothing here touches the request.

use super::cache::TokenCache;
use super::config::TokenSource;
use super::config::{JwtRequirement, Provider, ProviderId, Providers};
use super::extract::{extract, Extracted};
use super::forward::{upstream_edits, UpstreamEdits};
use super::keys::{FetchRequest, KeyManager, KeyStatus, UnknownKidAction};
use super::require;
use super::shared_tokens;
use super::verify::{peek_issuer, verify, JwtError, VerifiedToken};
use crate::error::{Denial, Reason};
use crate::host::SharedStore;
use crate::http::percent::decode_lenient;
use std::sync::Arc;

/// The request facts authentication needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request headers, lowercase names, repeats as separate entries.
    pub headers: &'a [(String, String)],
    /// Raw query string without `?` (empty when none).
    pub query: &'a str,
}

/// The worker state authentication reads and updates.
pub struct AuthnContext<'a> {
    /// Compiled providers.
    pub providers: &'a Providers,
    /// This worker's key manager.
    pub keys: &'a mut KeyManager,
    /// This worker's verified-token cache.
    pub cache: &'a mut TokenCache,
    /// The process-wide shared store.
    pub store: &'a dyn SharedStore,
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
}

/// A request that passed.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The provider whose token passed.
    pub provider: ProviderId,
    /// The verified token (claims for audit, owner checks, rate-limit keys).
    pub token: Arc<VerifiedToken>,
    /// What to change before the request goes upstream.
    pub edits: UpstreamEdits,
    /// True when the verified-token cache answered (no signature check).
    pub cached: bool,
}

/// A request that must wait for keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The provider whose keys are awaited.
    pub provider: ProviderId,
    /// A fetch this worker must dispatch now, if any.
    pub fetch: Option<FetchRequest>,
    /// The reason to deny with if no new keys arrive within the fetch timeout.
    pub deny_on_timeout: Reason,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The provider whose check failed, when one is known (for per-provider counters).
    pub provider: Option<ProviderId>,
    /// The denial.
    pub denial: Denial,
    /// The token, when it was valid and only the route's scopes or claims refused it (so the
    /// audit line can say who was refused). `None` for every invalid token.
    pub verified: Option<Arc<VerifiedToken>>,
}

/// The result of [`authenticate`].
#[derive(Debug, Clone)]
pub enum AuthnOutcome {
    /// A token of one of the providers passed every check.
    Authenticated(Authenticated),
    /// No token, and the route allows that.
    Anonymous,
    /// Wait for keys, then call [`authenticate`] again.
    Pause(Pause),
    /// Refused.
    Denied(Refused),
}

enum Failure {
    Jwt(JwtError),
    KeysUnavailable,
}

/// Schemes whose credentials are never bearer tokens (RFC 7617, 7616, 4559 and NTLM).
const OTHER_SCHEMES: [&str; 4] = ["basic", "digest", "negotiate", "ntlm"];

/// True when an `authorization` value holds something shaped like a JWT (three or five
/// base64url segments), whatever scheme word or white space comes before it, unless the scheme
/// is one of [`OTHER_SCHEMES`].
fn unread_token(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .flat_map(|(_, v)| v.split(','))
        .any(|v| {
            let v = v.trim();
            let rest = v.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            let scheme = v.get(..v.len().saturating_sub(rest.len())).unwrap_or("");
            if rest.starts_with(char::is_whitespace)
                && OTHER_SCHEMES.iter().any(|o| scheme.eq_ignore_ascii_case(o))
            {
                return false;
            }
            [v, rest.trim_start()].iter().any(|c| jwt_shaped(c))
        })
}

/// Three or five base64url segments, the first two not empty.
fn jwt_shaped(candidate: &str) -> bool {
    let segments: Vec<&str> = candidate.split('.').collect();
    matches!(segments.len(), 3 | 5)
        && segments.iter().take(2).all(|s| !s.is_empty())
        && segments.iter().all(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// True when the query holds a JWT-shaped `access_token` (the parameter Envoy's jwt_authn and
/// many frameworks read by default) that none of the route's providers reads.
fn unread_access_token(req: &JwtRequirement, providers: &Providers, query: &str) -> bool {
    let read = req
        .providers
        .iter()
        .filter_map(|id| providers.get(*id))
        .any(|p| {
            p.sources
                .iter()
                .any(|s| matches!(s, TokenSource::Param(n) if n == "access_token"))
        });
    !read
        && crate::http::query::raw_pairs(query).any(|(k, v)| {
            crate::http::query::fold_name(&decode_lenient(k)) == "access_token"
                && jwt_shaped(&decode_lenient(v))
        })
}

/// Authenticates a request against one route requirement.
pub fn authenticate(
    req: &JwtRequirement,
    request: RequestView<'_>,
    ctx: &mut AuthnContext<'_>,
) -> AuthnOutcome {
    if unread_access_token(req, ctx.providers, request.query) {
        // Next to a verified header token it would reach a service that reads the parameter
        // (as Envoy's jwt_authn does by default) unverified.
        return denied(
            None,
            Denial::new(Reason::JwtMalformed)
                .with_log_detail("an access_token parameter that no token source reads"),
        );
    }
    let mut candidates: Vec<(ProviderId, &Arc<Provider>, Extracted)> = Vec::new();
    for &pid in &req.providers {
        let Some(provider) = ctx.providers.get(pid) else {
            continue;
        };
        match extract(&provider.sources, request.headers, request.query) {
            Ok(Some(found)) => candidates.push((pid, provider, found)),
            Ok(None) => {}
            Err(_) => {
                return denied(
                    Some(pid),
                    Denial::new(Reason::JwtMalformed)
                        .with_log_detail("two different tokens in one request"),
                )
            }
        }
    }
    if candidates.is_empty() {
        if unread_token(request.headers) {
            // `Bearer<TAB>t`, `Bearertok`, `JWT t`, a bare token: no source of the route reads
            // it, and a service that parses it leniently must not get it as if it were checked.
            return denied(
                None,
                Denial::new(Reason::JwtMalformed)
                    .with_log_detail("a token in authorization that no token source reads"),
            );
        }
        if req.allow_missing {
            return AuthnOutcome::Anonymous;
        }
        return denied(None, Denial::new(Reason::JwtMissing));
    }

    let now_secs = ctx.now_ms / 1000;
    // The first failure of a provider the token claims to come from wins; a mismatch by the
    // unverified issuer is reported only when no provider was tried.
    let mut failure: Option<(ProviderId, Failure)> = None;
    let mut skipped: Option<ProviderId> = None;
    for (pid, provider, found) in candidates {
        // A cache hit is a token this provider already verified in full (issuer included), so
        // the issuer peek (a payload decode) is only paid on a miss.
        if let KeyStatus::Ready(keys) = ctx.keys.keys(pid, ctx.store) {
            let key = ctx.cache.key_for(&provider.name, &found.token);
            if let Some(token) = ctx.cache.get(&key, &keys, now_secs) {
                return finish(req, pid, provider, &found, token, true);
            }
        }
        if let Some(issuer) = &provider.issuer {
            let claimed = peek_issuer(&found.token, provider.max_token_bytes);
            if claimed.as_ref().is_some_and(|iss| iss != issuer) {
                skipped.get_or_insert(pid);
                continue;
            }
        }
        match check_provider(req, pid, provider, &found, ctx, now_secs) {
            Ok(outcome) => return outcome,
            Err(f) => {
                if failure.is_none() {
                    failure = Some((pid, f));
                }
            }
        }
    }
    match (failure, skipped) {
        (Some((pid, Failure::Jwt(e))), _) => denied(Some(pid), e.to_denial()),
        (Some((pid, Failure::KeysUnavailable)), _) => denied(
            Some(pid),
            Denial::new(Reason::JwksUnavailable).with_log_detail("no key set (JWKS fetch failing)"),
        ),
        (None, pid) => denied(pid, JwtError::IssuerMismatch.to_denial()),
    }
}

/// Verifies the token for one provider: `Ok` ends authentication (pass, pause, or a 403 from
/// the requirement), `Err` lets the next provider try.
fn check_provider(
    req: &JwtRequirement,
    pid: ProviderId,
    provider: &Provider,
    found: &Extracted,
    ctx: &mut AuthnContext<'_>,
    now_secs: u64,
) -> Result<AuthnOutcome, Failure> {
    let key = ctx.cache.key_for(&provider.name, &found.token);
    // Two rounds at most: the second after adopting keys another worker just published.
    for _ in 0..2 {
        let keys = match ctx.keys.keys(pid, ctx.store) {
            KeyStatus::Ready(k) => k,
            KeyStatus::Pending => {
                return Ok(AuthnOutcome::Pause(Pause {
                    provider: pid,
                    fetch: None,
                    deny_on_timeout: Reason::JwksUnavailable,
                }))
            }
            KeyStatus::Unavailable => return Err(Failure::KeysUnavailable),
        };
        if let Some(token) = ctx.cache.get(&key, &keys, now_secs) {
            return Ok(finish(req, pid, provider, found, token, true));
        }
        let slots = ctx.cache.shared_slots();
        if slots > 0 {
            // Another worker of this Envoy may have verified it already.
            if let Some(token) = shared_tokens::get(
                ctx.store,
                slots,
                &key,
                &found.token,
                provider,
                &keys,
                now_secs,
            ) {
                let token = Arc::new(token);
                ctx.cache.insert(key, token.clone(), &keys);
                return Ok(finish(req, pid, provider, found, token, true));
            }
        }
        match verify(&found.token, provider, &keys, now_secs) {
            Ok(token) => {
                if slots > 0 {
                    shared_tokens::put(ctx.store, slots, &key, provider, &token);
                }
                let token = Arc::new(token);
                ctx.cache.insert(key, token.clone(), &keys);
                return Ok(finish(req, pid, provider, found, token, false));
            }
            Err(JwtError::UnknownKid) => {
                match ctx.keys.on_unknown_kid(pid, ctx.now_ms, ctx.store) {
                    UnknownKidAction::Retry => continue,
                    UnknownKidAction::Fetch(fetch) => {
                        return Ok(AuthnOutcome::Pause(Pause {
                            provider: pid,
                            fetch: Some(fetch),
                            deny_on_timeout: Reason::JwtUnknownKid,
                        }))
                    }
                    UnknownKidAction::Wait => {
                        return Ok(AuthnOutcome::Pause(Pause {
                            provider: pid,
                            fetch: None,
                            deny_on_timeout: Reason::JwtUnknownKid,
                        }))
                    }
                    UnknownKidAction::Reject => return Err(Failure::Jwt(JwtError::UnknownKid)),
                }
            }
            Err(e) => return Err(Failure::Jwt(e)),
        }
    }
    Err(Failure::Jwt(JwtError::UnknownKid))
}

fn finish(
    req: &JwtRequirement,
    pid: ProviderId,
    provider: &Provider,
    found: &Extracted,
    token: Arc<VerifiedToken>,
    cached: bool,
) -> AuthnOutcome {
    if let Err(e) = require::check(req, &token) {
        return AuthnOutcome::Denied(Refused {
            provider: Some(pid),
            denial: e.to_denial(req),
            verified: Some(token),
        });
    }
    AuthnOutcome::Authenticated(Authenticated {
        provider: pid,
        edits: upstream_edits(provider, found, &token),
        token,
        cached,
    })
}

fn denied(provider: Option<ProviderId>, denial: Denial) -> AuthnOutcome {
    AuthnOutcome::Denied(Refused {
        provider,
        denial,
        verified: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::cache::TokenCache;
    use crate::authn::config::{compile_requirement, RawJwtRequirement};
    use crate::authn::keys::{register_worker, FetchOutcome};
    use crate::authn::testkit::*;
    use crate::host::fake::MemStore;
    use serde_json::{json, Value};

    const T0: u64 = NOW * 1000;

    struct World {
        providers: Providers,
        keys: KeyManager,
        cache: TokenCache,
        store: MemStore,
    }

    impl World {
        fn new(providers: Providers) -> World {
            let store = MemStore::default();
            let keys = KeyManager::new(&providers, register_worker(&store));
            World {
                providers,
                keys,
                cache: TokenCache::new(16),
                store,
            }
        }

        fn requirement(&self, v: Value) -> JwtRequirement {
            let raw: RawJwtRequirement = crate::config::read::from_value(v).unwrap();
            compile_requirement(&raw, &self.providers, "routes[0].jwt").unwrap()
        }

        fn run(
            &mut self,
            req: &JwtRequirement,
            headers: &[(String, String)],
            now_ms: u64,
        ) -> AuthnOutcome {
            let mut ctx = AuthnContext {
                providers: &self.providers,
                keys: &mut self.keys,
                cache: &mut self.cache,
                store: &self.store,
                now_ms,
            };
            authenticate(req, RequestView { headers, query: "" }, &mut ctx)
        }
    }

    fn bearer(token: &str) -> Vec<(String, String)> {
        vec![("authorization".to_string(), format!("Bearer {token}"))]
    }

    fn local_world() -> World {
        World::new(providers(json!({ "main": provider_json() })))
    }

    fn reason_of(o: AuthnOutcome) -> Reason {
        match o {
            AuthnOutcome::Denied(r) => r.denial.reason,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn remote_world(jwks_kids: &[&str]) -> (World, Vec<u8>) {
        let w = World::new(providers(json!({ "main": {
            "issuer": ISSUER, "audiences": [AUDIENCE],
            "remote_jwks": { "cluster": "idp", "path": "/jwks" } } })));
        let mut doc: Value = serde_json::from_str(JWKS).unwrap();
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|k| jwks_kids.contains(&k["kid"].as_str().unwrap()));
        (w, doc.to_string().into_bytes())
    }

    #[test]
    fn valid_token_passes_then_comes_from_the_cache() {
        let mut w = local_world();
        let req = w.requirement(json!({ "providers": ["main"], "scopes": ["users:read"] }));
        let h = bearer(&good_rs256_token());
        let AuthnOutcome::Authenticated(a) = w.run(&req, &h, T0) else {
            panic!("expected a pass");
        };
        assert!(!a.cached);
        assert_eq!(a.token.sub.as_deref(), Some("alice"));
        assert_eq!(a.edits.remove_headers, vec!["authorization".to_string()]);
        let AuthnOutcome::Authenticated(b) = w.run(&req, &h, T0 + 1000) else {
            panic!("expected a pass");
        };
        assert!(b.cached);
        assert_eq!(w.cache.stats().hits, 1);
    }

    #[test]
    fn a_token_one_worker_verified_passes_on_another_without_verifying() {
        let mut w = local_world();
        w.cache = TokenCache::new(16).with_shared(64);
        let req = w.requirement(json!({ "providers": ["main"], "scopes": ["users:read"] }));
        let h = bearer(&good_rs256_token());
        let AuthnOutcome::Authenticated(a) = w.run(&req, &h, T0) else {
            panic!("expected a pass");
        };
        assert!(!a.cached);
        // Another worker: its own empty cache, the same store.
        w.cache = TokenCache::new(16).with_shared(64);
        let AuthnOutcome::Authenticated(b) = w.run(&req, &h, T0 + 1000) else {
            panic!("expected a pass");
        };
        assert!(b.cached, "taken from the shared store, not verified again");
        assert_eq!(b.token.claims, a.token.claims);
        assert_eq!(w.cache.len(), 1, "and now in that worker's cache too");
        // The requirement is still checked on a shared hit.
        w.cache = TokenCache::new(16).with_shared(64);
        let admin = w.requirement(json!({ "providers": ["main"], "scopes": ["admin"] }));
        assert_eq!(
            reason_of(w.run(&admin, &h, T0)),
            Reason::JwtInsufficientScope
        );
        // Sharing off: the other worker verifies.
        w.cache = TokenCache::new(16);
        let AuthnOutcome::Authenticated(c) = w.run(&req, &h, T0) else {
            panic!("expected a pass");
        };
        assert!(!c.cached);
    }

    #[test]
    fn missing_token_is_401_unless_allowed() {
        let mut w = local_world();
        let req = w.requirement(json!({ "providers": ["main"] }));
        assert_eq!(reason_of(w.run(&req, &[], T0)), Reason::JwtMissing);
        let open = w.requirement(json!({ "providers": ["main"], "allow_missing": true }));
        assert!(matches!(w.run(&open, &[], T0), AuthnOutcome::Anonymous));
        // allow_missing never lets an invalid token through.
        assert_eq!(
            reason_of(w.run(&open, &bearer(&expired_token()), T0)),
            Reason::JwtExpired
        );
    }

    #[test]
    fn invalid_tokens_and_requirements_are_denied_with_their_reason() {
        let mut w = local_world();
        let req = w.requirement(json!({ "providers": ["main"], "claims": { "tenant": ["b"] } }));
        assert_eq!(
            reason_of(w.run(&req, &bearer(&bad_signature_token()), T0)),
            Reason::JwtBadSignature
        );
        assert_eq!(
            reason_of(w.run(&req, &bearer(&good_eddsa_token()), T0)),
            Reason::JwtClaimMismatch
        );
        let two = vec![
            (
                "authorization".to_string(),
                format!("Bearer {}", good_rs256_token()),
            ),
            (
                "authorization".to_string(),
                format!("Bearer {}", good_eddsa_token()),
            ),
        ];
        assert_eq!(reason_of(w.run(&req, &two, T0)), Reason::JwtMalformed);
    }

    #[test]
    fn requirement_denial_carries_the_valid_token_and_invalid_tokens_none() {
        let mut w = local_world();
        let req = w.requirement(json!({ "providers": ["main"], "scopes": ["admin"] }));
        let AuthnOutcome::Denied(r) = w.run(&req, &bearer(&good_rs256_token()), T0) else {
            panic!("expected a denial");
        };
        assert_eq!(r.denial.reason, Reason::JwtInsufficientScope);
        assert_eq!(r.verified.unwrap().sub.as_deref(), Some("alice"));
        let AuthnOutcome::Denied(r) = w.run(&req, &bearer(&bad_signature_token()), T0) else {
            panic!("expected a denial");
        };
        assert!(r.verified.is_none());
    }

    #[test]
    fn token_is_routed_to_the_provider_of_its_issuer() {
        let mut other = provider_json();
        other["issuer"] = json!("https://other.example");
        let mut w = World::new(providers(
            json!({ "a_other": other, "main": provider_json() }),
        ));
        let req = w.requirement(json!({ "providers": ["a_other", "main"] }));
        let AuthnOutcome::Authenticated(a) = w.run(&req, &bearer(&good_es256_token()), T0) else {
            panic!("expected a pass");
        };
        assert_eq!(a.provider, w.providers.find("main").unwrap());
        // A token of an issuer nobody accepts.
        let only_other = w.requirement(json!({ "providers": ["a_other"] }));
        let out = w.run(&only_other, &bearer(&good_es256_token()), T0);
        assert_eq!(reason_of(out), Reason::JwtIssuerMismatch);
        // The error of the matching provider is the one reported.
        let out = w.run(&req, &bearer(&expired_token()), T0);
        assert_eq!(reason_of(out), Reason::JwtExpired);
    }

    #[test]
    fn pauses_until_the_first_key_set_arrives() {
        let (mut w, body) = remote_world(&["rsa-a"]);
        let req = w.requirement(json!({ "providers": ["main"] }));
        let h = bearer(&good_rs256_token());
        let AuthnOutcome::Pause(p) = w.run(&req, &h, T0) else {
            panic!("expected a pause");
        };
        assert_eq!(p.deny_on_timeout, Reason::JwksUnavailable);
        let fetch = w.keys.poll(T0, &w.store);
        assert_eq!(fetch.len(), 1);
        w.keys.on_fetch_response(
            fetch[0].provider,
            FetchOutcome::Response {
                status: 200,
                body: &body,
            },
            T0 + 100,
            &w.store,
        );
        assert!(matches!(
            w.run(&req, &h, T0 + 100),
            AuthnOutcome::Authenticated(_)
        ));
    }

    #[test]
    fn failing_jwks_is_503_not_allow() {
        let (mut w, _) = remote_world(&["rsa-a"]);
        let req = w.requirement(json!({ "providers": ["main"] }));
        let fetch = w.keys.poll(T0, &w.store);
        w.keys
            .on_fetch_response(fetch[0].provider, FetchOutcome::Failed, T0 + 1500, &w.store);
        let out = w.run(&req, &bearer(&good_rs256_token()), T0 + 1600);
        let AuthnOutcome::Denied(r) = out else {
            panic!("expected a denial");
        };
        assert_eq!(r.denial.reason, Reason::JwksUnavailable);
        assert_eq!(r.denial.reason.status(), 503);
    }

    #[test]
    fn unknown_kid_pauses_for_one_refetch_then_passes_or_fails() {
        let (mut w, old) = remote_world(&["rsa-a"]);
        let req = w.requirement(json!({ "providers": ["main"] }));
        let fetch = w.keys.poll(T0, &w.store);
        let pid = fetch[0].provider;
        w.keys.on_fetch_response(
            pid,
            FetchOutcome::Response {
                status: 200,
                body: &old,
            },
            T0,
            &w.store,
        );

        let rotated = bearer(&token("rsa-b", "RS256", good_claims()));
        let t = T0 + 60_000;
        let AuthnOutcome::Pause(p) = w.run(&req, &rotated, t) else {
            panic!("expected a pause");
        };
        assert_eq!(p.deny_on_timeout, Reason::JwtUnknownKid);
        assert!(p.fetch.is_some());
        let (_, new) = remote_world(&["rsa-a", "rsa-b"]);
        w.keys.on_fetch_response(
            pid,
            FetchOutcome::Response {
                status: 200,
                body: &new,
            },
            t + 50,
            &w.store,
        );
        assert!(matches!(
            w.run(&req, &rotated, t + 60),
            AuthnOutcome::Authenticated(_)
        ));
        // A kid that the refreshed set lacks too: refused, no second refetch.
        let bogus = bearer(&unknown_kid_token());
        assert_eq!(
            reason_of(w.run(&req, &bogus, t + 70)),
            Reason::JwtUnknownKid
        );
    }
}
