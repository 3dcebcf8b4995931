//! Counter ids, defined once per configuration so request handling only increments.

use crate::decide::Decision;
use crate::error::Reason;
use crate::metrics as names;
use crate::policy::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

fn decision_index(d: Decision) -> usize {
    match d {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::Report => 2,
    }
}

/// Ids of every counter the policy can touch.
pub(crate) struct Metrics {
    routes: Vec<[Option<u32>; 3]>,
    unmatched: [Option<u32>; 3],
    reasons: Vec<[Option<u32>; 3]>,
}

impl Metrics {
    /// Defines the counters for a policy.
    pub(crate) fn define(policy: &Policy) -> Self {
        let per_decision =
            |f: &dyn Fn(Decision) -> String| names::DECISIONS.map(|d| counter(&f(d)));
        Metrics {
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
        }
    }

    /// Counts a request's final decision on its route.
    pub(crate) fn request(&self, route: Option<usize>, decision: Decision) {
        let ids = route
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unmatched);
        bump(ids.get(decision_index(decision)).copied().flatten());
    }

    /// Counts a denial or would-be denial by reason.
    pub(crate) fn reason(&self, reason: Reason, decision: Decision) {
        let ids = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.reasons.get(i));
        if let Some(ids) = ids {
            bump(ids.get(decision_index(decision)).copied().flatten());
        }
    }
}

/// Counts one accepted or rejected configuration.
pub(crate) fn config_outcome(accepted: bool) {
    bump(counter(if accepted {
        names::CONFIG_ACCEPTED
    } else {
        names::CONFIG_REJECTED
    }));
}
