//! Response protection as the pipeline sees it: what the response side knows about the exchange
//! ([`site`]), and the one request-side change it needs ([`AcceptIdentity`]). The checks
//! themselves (field stripping, body schema, masking, security headers) are in
//! [`crate::response`]; the holding of the answer is in [`crate::pipeline::respond`].

use crate::pipeline::engine::Exchange;
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::runtime::Env;
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::state::State;
use crate::pipeline::verdict::{Decision, Step};
use crate::policy::{Policy, Route};
use crate::response::Site;

/// Asks the upstream for an uncompressed answer on a route with response body checks, so that
/// the body can be read. Not a check: it never refuses.
pub struct AcceptIdentity;

impl Stage for AcceptIdentity {
    fn key(&self) -> &'static str {
        "response"
    }
    fn what(&self) -> &'static str {
        "accept-encoding: identity for a route whose answers are checked"
    }
    fn runs_on(&self, _route: &Route) -> bool {
        false
    }
    fn check(&self, _cx: &mut Cx<'_>) -> Step {
        Step::Next
    }
    fn finalize(&self, _policy: &Policy, route: Option<&Route>, state: &mut State, _env: &Env<'_>) {
        if let Some(route) = route {
            state
                .out
                .header_ops
                .extend(crate::response::request_header_ops(route));
        }
    }
}

/// What the response side knows about the exchange. `preflight`: meshguard answered the
/// request as a CORS preflight.
pub fn site<'a>(
    policy: &'a Policy,
    ex: &'a Exchange,
    facts: &'a RequestFacts,
    preflight: bool,
) -> Site<'a> {
    let route = ex.route_index().and_then(|i| policy.route(i));
    Site {
        policy,
        route,
        mode: route.map_or(policy.mode, |r| r.mode),
        own_reply: preflight || ex.final_decision() == Some(Decision::Deny),
        preflight,
        origin: facts.header("origin"),
        claims: ex.principal().claims(),
        request_id: facts.request_id(),
        method: &facts.method,
    }
}

/// Whether the response of this exchange needs any work (no host call).
pub fn wanted(policy: &Policy, ex: &Exchange) -> bool {
    crate::response::wanted(policy, ex.route_index().and_then(|i| policy.route(i)))
}
