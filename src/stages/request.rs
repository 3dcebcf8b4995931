//! `routes[].request` checks decidable from the headers: size, content type, header rules, path
//! and query parameters. Says what the body needs (buffered, counted, or nothing).

use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;
use crate::validate::RequestHead;

/// The header-phase request checks.
pub struct Request;

impl Stage for Request {
    fn key(&self) -> &'static str {
        "request"
    }
    fn what(&self) -> &'static str {
        "size, content type, headers, path and query parameters (413 / 415 / 400)"
    }
    fn runs_on(&self, route: &Route) -> bool {
        route.request.is_some()
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let Some(rules) = &cx.route.request else {
            return Step::Next;
        };
        let state = &mut *cx.state;
        let head = RequestHead {
            headers: &cx.facts.headers[..],
            query: (!state.query.is_empty()).then_some(state.query.as_str()),
            path_params: &state.params[..],
            end_of_stream: cx.facts.end_of_stream,
        };
        match rules.check_head(&head) {
            Ok(need) => {
                state.body.need = Some(need);
                Step::Next
            }
            Err(d) => Step::Deny(d),
        }
    }
}
