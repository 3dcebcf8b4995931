//! `routes[].rate_limits`: token buckets, in order (429 `rate_limited`). On a route with a token
//! requirement, limits keyed by the caller's address or peer are charged before the signature
//! check (`early`), so a flood of forged tokens is limited before it costs a verification each;
//! the rest after it. Without a token requirement every limit is charged by the late stage.

use crate::error::{Denial, Reason};
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;
use crate::ratelimit::RateLimit as Limit;

/// The rate-limit check, before authentication (`early: true`) or after it.
pub struct RateLimit {
    /// Charges the limits counted before authentication.
    pub early: bool,
}

impl RateLimit {
    /// Whether the route splits its limits around the token check.
    fn split(route: &Route) -> bool {
        route.jwt.is_some() && route.rate_limits.has_early()
    }
}

impl Stage for RateLimit {
    fn key(&self) -> &'static str {
        "rate_limits"
    }
    fn label(&self) -> &'static str {
        if self.early {
            "rate_limits (early)"
        } else {
            "rate_limits"
        }
    }
    fn what(&self) -> &'static str {
        if self.early {
            "the limits keyed by client_ip or peer, before the token's signature is checked (429 rate_limited)"
        } else {
            "token buckets, in order (429 rate_limited)"
        }
    }
    fn runs_on(&self, route: &Route) -> bool {
        let limits = &route.rate_limits;
        if self.early {
            return Self::split(route);
        }
        // On a token route whose limits are all counted early, nothing is left for this stage.
        let all_early = limits
            .limits()
            .iter()
            .all(|l| l.key().counts_before_authn());
        !(limits.is_empty() || (route.jwt.is_some() && all_early))
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let limits = &cx.route.rate_limits;
        let split = Self::split(cx.route);
        let early = self.early;
        let which = |l: &Limit| !split || l.key().counts_before_authn() == early;
        // The address is a host lookup (about 10 us under V8): skip it when every key part is
        // present and none is `client_ip`.
        let needs_ip = {
            let facts = cx.key_facts(None, None);
            limits
                .limits()
                .iter()
                .filter(|l| which(l))
                .any(|l| l.key().needs_client_ip(&facts))
        };
        let ip = if needs_ip { cx.client_ip() } else { None };
        let facts = cx.key_facts(ip.as_deref(), None);
        let d = limits.check_some(&facts, cx.env.clock, cx.env.store, which);
        let out = &mut cx.state.out;
        for i in d.report_hits() {
            let name = limits.limits().get(i).map_or("", |l| l.name());
            out.reports.push(
                Denial::new(Reason::RateLimited)
                    .with_log_detail(format!("rate limit {name} (report)")),
            );
        }
        out.limit_outcomes
            .extend(d.outcomes.iter().map(|o| (o.limit, o.outcome)));
        for (name, value) in d.response_headers {
            // Two stages may each add RateLimit-Policy / RateLimit: one list per header.
            match out.response_headers.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                None => out.response_headers.push((name, value)),
            }
        }
        d.denial.map_or(Step::Next, Step::Deny)
    }
}
