//! Counter ids, defined once per configuration (every name is known then) so that request
//! handling only increments by id, one cheap host call per counter.

use crate::authn::config::ProviderId;
use crate::error::Reason;
use crate::host::Host;
use crate::metrics as names;
use crate::pipeline::verdict::{AuthnMetric, Decision};
use crate::policy::Policy;
use crate::ratelimit::Outcome;
use crate::response::Change;

fn bump(host: &dyn Host, id: Option<u32>) {
    if let Some(id) = id {
        host.increment_counter(id);
    }
}

fn decision_index(d: Decision) -> usize {
    match d {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::Report => 2,
        // Lock events are audit lines only; no slot holds a counter for them.
        Decision::Lock => 3,
    }
}

/// Ids of every counter the policy can touch.
pub struct Counters {
    routes: Vec<[Option<u32>; 3]>,
    unmatched: [Option<u32>; 3],
    reasons: Vec<[Option<u32>; 3]>,
    /// Per route, per limit, per outcome (in `Outcome::ALL` order).
    limits: Vec<Vec<Vec<Option<u32>>>>,
    /// Per provider: verified, cache hit, then one per JWT reason (in `Reason::ALL` order).
    providers: Vec<ProviderIds>,
    /// Response changes (in `Change::ALL` order): applied, report.
    changes: Vec<[Option<u32>; 2]>,
}

/// Counter ids of one JWT provider.
pub struct ProviderIds {
    verified: Option<u32>,
    cache_hit: Option<u32>,
    denied: Vec<Option<u32>>,
    /// JWKS fetches that produced a key set.
    pub fetch_ok: Option<u32>,
    /// JWKS fetches that failed (the previous set stays).
    pub fetch_failed: Option<u32>,
}

/// Reasons a JWT provider can refuse with.
fn jwt_reason(r: Reason) -> bool {
    r.code().starts_with("jwt") || r == Reason::JwksUnavailable
}

impl Counters {
    /// Defines the counters for a policy.
    pub fn define(host: &dyn Host, policy: &Policy) -> Self {
        let counter = |name: &str| host.define_counter(name);
        let per_decision =
            |f: &dyn Fn(Decision) -> String| names::DECISIONS.map(|d| counter(&f(d)));
        Counters {
            routes: policy
                .routes
                .iter()
                .map(|r| per_decision(&|d| names::route(r.name.as_str(), d)))
                .collect(),
            unmatched: per_decision(&|d| names::route(crate::policy::UNMATCHED_ROUTE, d)),
            reasons: Reason::ALL
                .iter()
                .map(|r| {
                    let mut ids = [None; 3];
                    for d in [Decision::Deny, Decision::Report] {
                        if let Some(slot) = ids.get_mut(decision_index(d)) {
                            *slot = counter(&names::reason(*r, d));
                        }
                    }
                    ids
                })
                .collect(),
            limits: policy
                .routes
                .iter()
                .map(|r| {
                    r.rate_limits
                        .limits()
                        .iter()
                        .map(|l| {
                            Outcome::ALL
                                .iter()
                                .map(|o| counter(&names::rate_limit(r.name.as_str(), l.name(), *o)))
                                .collect()
                        })
                        .collect()
                })
                .collect(),
            providers: policy
                .providers
                .iter()
                .map(|(_, p)| {
                    let n = names::sanitize(&p.name);
                    ProviderIds {
                        verified: counter(&format!("meshguard.jwt.{n}.verified")),
                        cache_hit: counter(&format!("meshguard.jwt.{n}.cache_hit")),
                        denied: Reason::ALL
                            .iter()
                            .map(|r| {
                                if jwt_reason(*r) {
                                    counter(&format!("meshguard.jwt.{n}.{}", r.code()))
                                } else {
                                    None
                                }
                            })
                            .collect(),
                        fetch_ok: counter(&format!("meshguard.jwks.{n}.fetch_ok")),
                        fetch_failed: counter(&format!("meshguard.jwks.{n}.fetch_failed")),
                    }
                })
                .collect(),
            changes: Change::ALL
                .iter()
                .map(|c| [false, true].map(|report| counter(&names::response_change(*c, report))))
                .collect(),
        }
    }

    /// Counts a response change (applied, or would-be in report mode).
    pub fn change(&self, host: &dyn Host, change: Change, report: bool) {
        let id = Change::ALL
            .iter()
            .position(|c| *c == change)
            .and_then(|i| self.changes.get(i))
            .and_then(|ids| ids.get(usize::from(report)))
            .copied()
            .flatten();
        bump(host, id);
    }

    /// Counts a JWT outcome for a provider.
    pub fn authn(&self, host: &dyn Host, provider: Option<ProviderId>, what: AuthnMetric) {
        let Some(ids) = provider.and_then(|p| self.providers.get(p.0)) else {
            return;
        };
        match what {
            AuthnMetric::Verified => bump(host, ids.verified),
            AuthnMetric::CacheHit => bump(host, ids.cache_hit),
            AuthnMetric::Denied(r) => bump(
                host,
                Reason::ALL
                    .iter()
                    .position(|x| *x == r)
                    .and_then(|i| ids.denied.get(i))
                    .copied()
                    .flatten(),
            ),
        }
    }

    /// Counts a JWKS fetch result.
    pub fn fetch(&self, host: &dyn Host, provider: ProviderId, ok: bool) {
        if let Some(ids) = self.providers.get(provider.0) {
            bump(host, if ok { ids.fetch_ok } else { ids.fetch_failed });
        }
    }

    /// Counts a rate-limit outcome.
    pub fn limit(&self, host: &dyn Host, route: Option<usize>, limit: usize, outcome: Outcome) {
        let id = route
            .and_then(|r| self.limits.get(r))
            .and_then(|ls| ls.get(limit))
            .and_then(|os| {
                Outcome::ALL
                    .iter()
                    .position(|o| *o == outcome)
                    .and_then(|i| os.get(i))
            })
            .copied()
            .flatten();
        bump(host, id);
    }

    /// Counts a request's final decision on its route.
    pub fn request(&self, host: &dyn Host, route: Option<usize>, decision: Decision) {
        let ids = route
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unmatched);
        bump(host, ids.get(decision_index(decision)).copied().flatten());
    }

    /// Counts a denial or would-be denial by reason.
    pub fn reason(&self, host: &dyn Host, reason: Reason, decision: Decision) {
        let ids = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.reasons.get(i));
        if let Some(ids) = ids {
            bump(host, ids.get(decision_index(decision)).copied().flatten());
        }
    }
}

/// Counts one accepted or rejected configuration.
pub fn config_outcome(host: &dyn Host, accepted: bool) {
    let name = if accepted {
        names::CONFIG_ACCEPTED
    } else {
        names::CONFIG_REJECTED
    };
    bump(host, host.define_counter(name));
}
