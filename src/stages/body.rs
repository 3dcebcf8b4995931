//! `routes[].request` body checks on the buffered body: JSON limits, body schema, mass
//! assignment (which may rewrite the body).

use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;
use crate::validate::{BodyNeed, BodyOutcome};

/// The body-phase request checks.
pub struct Body;

impl Stage for Body {
    fn key(&self) -> &'static str {
        "request"
    }
    fn label(&self) -> &'static str {
        "request (body)"
    }
    fn what(&self) -> &'static str {
        "JSON limits, body schema, mass assignment (400 json_* / schema_violation / mass_assignment)"
    }
    fn runs_on(&self, route: &Route) -> bool {
        route.request.is_some()
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let (Some(rules), Some(body)) = (&cx.route.request, cx.body) else {
            return Step::Next;
        };
        let state = &mut *cx.state;
        if !matches!(state.body.need, Some(BodyNeed::Buffer { .. })) {
            return Step::Next;
        }
        let roles = roles(rules.role_claim(), state.principal.claims());
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        match rules.check_body(body, &roles) {
            Ok(BodyOutcome::Unchanged) => Step::Next,
            Ok(BodyOutcome::Rewritten(bytes)) => {
                state.body.rewrite = Some(bytes);
                Step::Next
            }
            Err(d) => Step::Deny(d),
        }
    }
}

/// The caller's roles: the role claim's value, a string or an array of strings.
fn roles(
    claim: Option<&str>,
    claims: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Vec<String> {
    let value = claim.and_then(|c| claims.and_then(|m| m.get(c)));
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}
