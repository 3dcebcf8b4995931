//! `routes[].owner`: object-level authorization, a path, query or body parameter equal to a token
//! claim. One stage per phase: from the path or query with the headers, from a top-level body
//! field once the body is buffered.

use crate::http::query;
use crate::identity::{check_owner, OwnerInputs};
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;

/// The owner check, in the headers phase (`body: false`) or on the body (`body: true`).
pub struct Owner {
    /// Checks the rules that read a body field.
    pub body: bool,
}

impl Stage for Owner {
    fn key(&self) -> &'static str {
        "owner"
    }
    fn label(&self) -> &'static str {
        if self.body {
            "owner (body field)"
        } else {
            "owner"
        }
    }
    fn what(&self) -> &'static str {
        if self.body {
            "object-level authorization from a body field (403 owner_mismatch)"
        } else {
            "object-level authorization: parameter equals the token claim (403 owner_mismatch)"
        }
    }
    fn runs_on(&self, route: &Route) -> bool {
        route
            .owner
            .as_ref()
            .is_some_and(|o| o.needs_body() == self.body)
    }
    fn needs_body(&self, route: &Route) -> bool {
        self.body && self.runs_on(route)
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let Some(rule) = &cx.route.owner else {
            return Step::Next;
        };
        let _ = cx.body_fields();
        let state = &*cx.state;
        let fields = cx.body.and(state.body.fields.as_ref());
        let body = match fields {
            Some(Err(d)) if rule.needs_body() => return Step::Deny(d.clone()),
            Some(Ok(v)) => v.as_ref(),
            _ => None,
        };
        let query_pairs = query::pairs(&state.query).unwrap_or_default();
        let inputs = OwnerInputs {
            path_params: &state.params,
            query: &query_pairs,
            body,
        };
        check_owner(rule, &inputs, state.principal.claims()).into()
    }
}
