//! `routes[].lockout`: a key locked after repeated authentication failures (429 `locked_out`).
//! The check runs with the headers, or on the body when a key part is a body field. The same
//! stage counts the failures: meshguard's own refusals ([`Stage::after_denial`]) and the
//! upstream's ([`Stage::on_response`]), under the key the check reads, once per request.

use crate::error::{Denial, Reason};
use crate::pipeline::stage::{Cx, Stage};
use crate::pipeline::verdict::Step;
use crate::policy::Route;
use crate::ratelimit::LockoutPolicy;

/// The lockout check, with the headers (`body: false`) or on the body (`body: true`).
pub struct Lockout {
    /// Checks the rules whose key reads a body field.
    pub body: bool,
}

impl Stage for Lockout {
    fn key(&self) -> &'static str {
        "lockout"
    }
    fn label(&self) -> &'static str {
        if self.body {
            "lockout (body key)"
        } else {
            "lockout"
        }
    }
    fn what(&self) -> &'static str {
        if self.body {
            "lockout keyed on a body field (429 locked_out)"
        } else {
            "key locked after repeated authentication failures (429 locked_out)"
        }
    }
    fn runs_on(&self, route: &Route) -> bool {
        route
            .lockout
            .as_ref()
            .is_some_and(|l| l.needs_body() == self.body)
    }
    fn needs_body(&self, route: &Route) -> bool {
        self.body && self.runs_on(route)
    }
    fn check(&self, cx: &mut Cx<'_>) -> Step {
        let Some(rule) = &cx.route.lockout else {
            return Step::Next;
        };
        let _ = cx.body_fields();
        if let Some(Err(d)) = cx.body.and(cx.state.body.fields.as_ref()) {
            return Step::Deny(d.clone());
        }
        let ip = address(cx, rule, cx.body.is_some());
        let body = match cx.body.and(cx.state.body.fields.as_ref()) {
            Some(Ok(v)) => v.as_ref().and_then(serde_json::Value::as_object),
            _ => None,
        };
        let facts = cx.key_facts(ip.as_deref(), body);
        let mut records = Vec::new();
        if self.body && rule.non_string_body_key(&facts) {
            // No login form sends an array or object as a name: the attempt is a failure by
            // itself, counted under each name inside it.
            records = rule.record_failure(&facts, cx.env.clock, cx.env.store);
        }
        let d = rule.check(&facts, cx.env.clock, cx.env.store);
        let state = &mut *cx.state;
        if !records.is_empty() {
            state.out.locks.extend(records);
            state.failure_counted = true;
        }
        if d.report_locked {
            state
                .out
                .reports
                .push(Denial::new(Reason::LockedOut).with_log_detail(format!(
                    "lockout (report) by key {}",
                    d.locked_keys.join(",")
                )));
        }
        d.denial.map_or(Step::Next, Step::Deny)
    }

    /// Counts one of meshguard's own authentication failures toward the route's lockout, under
    /// the same key the check reads (same headers, same client address even when the failing
    /// stage ran before the lockout stage resolved it).
    fn after_denial(&self, cx: &mut Cx<'_>, denial: &Denial) {
        if self.body {
            return;
        }
        let Some(rule) = &cx.route.lockout else {
            return;
        };
        if !rule.counts_denial(denial.reason) {
            return;
        }
        count_failure(cx);
    }

    fn watches_response(&self, route: &Route) -> bool {
        !self.body && route.lockout.as_ref().is_some_and(|l| l.watches_upstream())
    }

    /// Counts an upstream authentication failure (its configured statuses).
    fn on_response(&self, cx: &mut Cx<'_>, status: u16) {
        if cx
            .route
            .lockout
            .as_ref()
            .is_some_and(|l| l.counts_upstream_status(status))
        {
            count_failure(cx);
        }
    }
}

/// Records one failure for this request (at most one per request).
fn count_failure(cx: &mut Cx<'_>) {
    let Some(rule) = &cx.route.lockout else {
        return;
    };
    if cx.state.failure_counted {
        return;
    }
    let ip = address(cx, rule, true);
    let facts = cx.key_facts_read(ip.as_deref());
    let records = rule.record_failure(&facts, cx.env.clock, cx.env.store);
    cx.state.failure_counted = true;
    cx.state.out.locks.extend(records);
}

/// The client address, resolved only when a key needs it (a `client_ip` part, or a missing part
/// that falls back to the address): the connection address is a host lookup.
fn address(cx: &mut Cx<'_>, rule: &LockoutPolicy, with_body: bool) -> Option<String> {
    let needs = {
        let facts = if with_body {
            cx.key_facts_read(None)
        } else {
            cx.key_facts(None, None)
        };
        rule.keys().iter().any(|k| k.key().needs_client_ip(&facts))
    };
    if needs {
        cx.client_ip()
    } else {
        None
    }
}
