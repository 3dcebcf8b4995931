//! `routes[].peers`: mTLS and SPIFFE ID allow/deny, on the peer identity read once per request.

use crate::identity::check_peers;
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;

/// The peer check.
pub struct Peers;

impl Stage for Peers {
    fn key(&self) -> &'static str {
        "peers"
    }
    fn what(&self) -> &'static str {
        "mTLS peer identity (403 peer_not_mtls / peer_identity_missing / peer_not_allowed)"
    }
    fn runs_on(&self, route: &Route) -> bool {
        route.peers.is_some()
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let Some(rule) = &cx.route.peers else {
            return Step::Next;
        };
        let state = &mut *cx.state;
        let identity = state.lookups.peer.identity(cx.env.props, rule.source());
        if let Some(id) = identity.id() {
            state.principal.peer = Some(id.as_str().to_string());
        }
        check_peers(rule, identity).into()
    }
}
