//! CORS preflights: an `OPTIONS` with `Origin` and `Access-Control-Request-Method` is answered
//! (204 or 403 `cors_origin_not_allowed` ...) before any request check, when a `cors` policy
//! applies to the route the actual request would take. Decided by [`crate::response::preflight`].

use crate::pipeline::facts::RequestFacts;
use crate::policy::{Policy, UNMATCHED_ROUTE};
use crate::response::{preflight, PreflightOutcome};

/// A preflight meshguard answers or reports, with the route name and template for its audit
/// line; `None` when the request is not a preflight meshguard handles.
pub fn answer<'p>(
    policy: &'p Policy,
    facts: &RequestFacts,
) -> Option<(PreflightOutcome, &'p str, &'p str)> {
    let out = preflight(policy, facts)?;
    let (route, template) = out
        .route
        .and_then(|i| policy.route(i))
        .map_or((UNMATCHED_ROUTE, ""), |r| {
            (r.name.as_str(), r.path.template())
        });
    Some((out, route, template))
}
