//! `routes[].jwt`: a valid token with the required scopes and claims. The glue between the
//! engine and [`crate::authn`]: the worker's keys and token cache, waiting for keys, and the
//! header edits a verified token asks for.

use crate::authn::authenticate::{authenticate, AuthnContext, AuthnOutcome, RequestView};
use crate::authn::config::JwtRequirement;
use crate::authn::extract::{strip_cookies, strip_query_params};
use crate::authn::keys::LEASE_GRACE_MS;
use crate::error::{Denial, Reason};
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::{AuthnMetric, HeaderOp, Step};
use crate::policy::Route;

/// Longest a request waits for keys when its provider has no remote JWKS timeout to go by.
const DEFAULT_KEY_WAIT_MS: u64 = 1500;

/// The JWT check.
pub struct Jwt;

impl Stage for Jwt {
    fn key(&self) -> &'static str {
        "jwt"
    }
    fn what(&self) -> &'static str {
        "a valid token with the scopes and claims (401 jwt_*, 403 jwt_insufficient_scope / jwt_claim_mismatch)"
    }
    fn runs_on(&self, route: &Route) -> bool {
        route.jwt.is_some()
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        match &cx.route.jwt {
            Some(req) => check(req, cx),
            None => Step::Next,
        }
    }
}

fn check(req: &JwtRequirement, cx: &mut Cx<'_>) -> Step {
    let Ok(mut rt) = cx.env.runtime.try_borrow_mut() else {
        return Step::Deny(Denial::new(Reason::Internal).with_log_detail("runtime busy"));
    };
    let rt = &mut *rt;
    let now_ms = cx.env.clock.now_ms();
    let mut actx = AuthnContext {
        providers: &cx.policy.providers,
        keys: &mut rt.keys,
        cache: &mut rt.cache,
        store: cx.env.store,
        now_ms,
    };
    let view = RequestView {
        headers: &cx.facts.headers,
        query: &cx.state.query,
    };
    let outcome = authenticate(req, view, &mut actx);
    let state = &mut *cx.state;
    match outcome {
        AuthnOutcome::Authenticated(a) => {
            let metric = if a.cached {
                AuthnMetric::CacheHit
            } else {
                AuthnMetric::Verified
            };
            state.out.authn = Some((Some(a.provider), metric));
            let ops = &mut state.out.header_ops;
            for h in &a.edits.remove_headers {
                ops.push(HeaderOp::Remove(h.clone()));
            }
            if !a.edits.strip_params.is_empty() {
                let names: Vec<&str> = a.edits.strip_params.iter().map(String::as_str).collect();
                let path = strip_query_params(&cx.facts.path, &names);
                ops.push(HeaderOp::Set(":path".to_string(), path));
            }
            if !a.edits.strip_cookies.is_empty() {
                let names: Vec<&str> = a.edits.strip_cookies.iter().map(String::as_str).collect();
                let cookies: Vec<&str> = cx
                    .facts
                    .headers
                    .iter()
                    .filter(|(k, _)| k == "cookie")
                    .map(|(_, v)| v.as_str())
                    .collect();
                ops.push(HeaderOp::Remove("cookie".to_string()));
                if let Some(kept) = strip_cookies(&cookies.join("; "), &names) {
                    ops.push(HeaderOp::Set("cookie".to_string(), kept));
                }
            }
            for (k, v) in &a.edits.set_headers {
                ops.push(HeaderOp::Set(k.clone(), v.clone()));
            }
            state.principal.issuer.clone_from(&a.token.iss);
            state.principal.subject.clone_from(&a.token.sub);
            state.principal.token = Some(a.token);
            Step::Next
        }
        AuthnOutcome::Anonymous => Step::Next,
        AuthnOutcome::Pause(p) => {
            if let Some(fetch) = p.fetch {
                rt.fetches.push(fetch);
            }
            let limit = cx
                .policy
                .providers
                .get(p.provider)
                .and_then(|pr| pr.remote())
                .map_or(DEFAULT_KEY_WAIT_MS, |r| {
                    r.timeout_ms.saturating_add(LEASE_GRACE_MS)
                });
            let started = *state.wait_started_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(started) >= limit {
                state.out.authn = Some((Some(p.provider), AuthnMetric::Denied(p.deny_on_timeout)));
                return Step::Deny(
                    Denial::new(p.deny_on_timeout)
                        .with_log_detail("no usable key before the fetch timeout"),
                );
            }
            Step::Wait
        }
        AuthnOutcome::Denied(r) => {
            // A missing token names no provider; on a one-provider route it is that provider's,
            // so `meshguard.jwt.<provider>.jwt_missing` counts it.
            let provider = r.provider.or(match req.providers.as_slice() {
                [only] => Some(*only),
                _ => None,
            });
            state.out.authn = Some((provider, AuthnMetric::Denied(r.denial.reason)));
            // A valid token refused for its scopes or claims: the audit line names its iss and
            // sub. Only those: its claims are not given to later stages (report mode goes on).
            if let Some(token) = &r.verified {
                state.principal.issuer.clone_from(&token.iss);
                state.principal.subject.clone_from(&token.sub);
            }
            Step::Deny(r.denial)
        }
    }
}
