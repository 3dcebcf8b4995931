//! `routes[].binding`: the token belongs to the mTLS peer (its `cnf` or a claim names the peer).

use crate::identity::check_binding;
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;

/// The token-to-peer binding check.
pub struct Binding;

impl Stage for Binding {
    fn key(&self) -> &'static str {
        "binding"
    }
    fn what(&self) -> &'static str {
        "the token belongs to the mTLS peer (403 token_not_bound_to_peer)"
    }
    fn runs_on(&self, route: &Route) -> bool {
        route.binding.is_some()
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let Some(rule) = &cx.route.binding else {
            return Step::Next;
        };
        let state = &mut *cx.state;
        let source = cx.route.identity_source();
        let identity = state.lookups.peer.identity(cx.env.props, source).clone();
        let digest = if rule.needs_cert_digest() {
            state.lookups.peer.digest(cx.env.props)
        } else {
            None
        };
        check_binding(rule, &identity, digest.as_ref(), state.principal.claims()).into()
    }
}
