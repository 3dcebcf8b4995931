//! `forward_identity`: removes incoming copies of the identity headers and sets them from what
//! was verified (peer SPIFFE ID, token claims), once the request's header changes are decided.
//! Not a check: it never refuses.

use crate::identity::IdentitySource;
use crate::pipeline::runtime::Env;
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::state::State;
use crate::pipeline::verdict::{HeaderOp, Step};
use crate::policy::{Policy, Route};

/// The identity headers.
pub struct Forward;

impl Stage for Forward {
    fn key(&self) -> &'static str {
        "forward_identity"
    }
    fn what(&self) -> &'static str {
        "identity headers set from the verified peer and token"
    }
    fn runs_on(&self, _route: &Route) -> bool {
        false
    }
    fn check(&self, _cx: &mut Cx<'_>) -> Step {
        Step::Next
    }
    fn finalize(&self, policy: &Policy, route: Option<&Route>, state: &mut State, env: &Env<'_>) {
        let Some(fwd) = &policy.forward_identity else {
            return;
        };
        let source = route.map_or(IdentitySource::Connection, Route::identity_source);
        let identity = state.lookups.peer.identity(env.props, source).clone();
        if let Some(id) = identity.id() {
            state.principal.peer = Some(id.as_str().to_string());
        }
        let plan = fwd.plan(identity.id(), state.principal.claims());
        let ops = &mut state.out.header_ops;
        for h in plan.remove {
            ops.push(HeaderOp::Remove(h.to_string()));
        }
        for (h, v) in plan.set {
            ops.push(HeaderOp::Set(h.to_string(), v));
        }
    }
}
