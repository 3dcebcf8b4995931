//! The engine: matches a request to a route, runs the route's stages in order, and keeps what
//! one request needs between callbacks ([`Exchange`]).
//!
//! It knows no check by name: the stages ([`crate::stages`]) are behind [`Stage`], in the order
//! of a [`Pipeline`]. A stage returns a [`Step`]; a denial on a route in report mode is recorded
//! and the pipeline goes on. A stage that must wait (keys not fetched yet) returns
//! [`Step::Wait`]; [`Exchange::resume`] later runs that stage again. Every denial and would-be
//! denial becomes an [`Event`] that the caller turns into an audit line and counters.

use crate::authn::config::ProviderId;
use crate::error::{Denial, Reason};
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::runtime::Env;
use crate::pipeline::stage::{Cx, Pipeline, Stage};
use crate::pipeline::state::{Principal, State};
use crate::pipeline::verdict::{AuthnMetric, Decision, Event, HeaderOp, Step, Verdict};
use crate::policy::{Lookup, Mode, Policy, Route, Unmatched, UNMATCHED_ROUTE};
use crate::ratelimit::lockout::FailureRecord;
use crate::ratelimit::Outcome;
use crate::routing::normalize;
use crate::validate::BodyNeed;

/// Where the pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers(usize),
    Body(usize),
    Done,
}

/// Per-request pipeline state, owned by the stream.
pub struct Exchange {
    pipeline: &'static Pipeline,
    route: Option<usize>,
    mode: Mode,
    template: String,
    state: State,
    headers_final: bool,
    /// Client headers impersonating an injected header (`x_user` for `x-user`): removed too.
    forged: Vec<String>,
    events: Vec<Event>,
    reported: bool,
    phase: Phase,
    final_decision: Option<Decision>,
    denial: Option<Denial>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("route", &self.route)
            .field("phase", &self.phase)
            .field("final_decision", &self.final_decision)
            .finish_non_exhaustive()
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Self::with_pipeline(&crate::stages::STANDARD)
    }
}

impl Exchange {
    /// A fresh exchange over the standard stages.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh exchange over these stages.
    pub fn with_pipeline(pipeline: &'static Pipeline) -> Self {
        Self {
            pipeline,
            route: None,
            mode: Mode::Enforce,
            template: String::new(),
            state: State::default(),
            headers_final: false,
            forged: Vec::new(),
            events: Vec::new(),
            reported: false,
            phase: Phase::Headers(0),
            final_decision: None,
            denial: None,
        }
    }

    /// Name of the matched route (`_unmatched` before or without a match).
    pub fn route_name<'p>(&self, policy: &'p Policy) -> &'p str {
        self.route
            .and_then(|i| policy.route(i))
            .map_or(UNMATCHED_ROUTE, |r| r.name.as_str())
    }

    /// Index of the matched route.
    pub fn route_index(&self) -> Option<usize> {
        self.route
    }

    /// The matched route's path form (template, exact path or prefix), for audit lines.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The principal established so far.
    pub fn principal(&self) -> &Principal {
        &self.state.principal
    }

    /// The final decision, once reached.
    pub fn final_decision(&self) -> Option<Decision> {
        self.final_decision
    }

    /// Drains the recorded events.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Drains the header changes to apply.
    pub fn take_header_ops(&mut self) -> Vec<HeaderOp> {
        std::mem::take(&mut self.state.out.header_ops)
    }

    /// The rewritten body to send upstream, if a check rewrote it.
    pub fn take_body_rewrite(&mut self) -> Option<Vec<u8>> {
        self.state.body.rewrite.take()
    }

    /// Takes the JWT outcome (provider and what happened) for counters.
    pub fn take_authn(&mut self) -> Option<(Option<ProviderId>, AuthnMetric)> {
        self.state.out.authn.take()
    }

    /// Drains per-limit outcomes (limit index, outcome) for metrics.
    pub fn take_limit_outcomes(&mut self) -> Vec<(usize, Outcome)> {
        std::mem::take(&mut self.state.out.limit_outcomes)
    }

    /// Headers phase: match the route and run the header checks.
    pub fn on_headers(&mut self, policy: &Policy, facts: &RequestFacts, env: &Env<'_>) -> Verdict {
        self.forged = crate::inbound::forged_injected(policy, facts);
        let line = crate::inbound::check_request_line(facts)
            .and_then(|()| crate::inbound::check_method(&facts.method))
            .and_then(|()| crate::inbound::check_method_override(policy, facts));
        if let Err(denial) = line {
            // Before routing there is no route mode: the global mode decides.
            return self.refuse_unrouted(policy, denial, env);
        }
        let normal = match normalize(&facts.path) {
            Ok(n) => n,
            Err(e) => {
                let denial = Denial::new(Reason::PathInvalid).with_detail(e.describe());
                return self.refuse_unrouted(policy, denial, env);
            }
        };
        self.state.query.clone_from(&normal.query);
        let lookup = policy.lookup(&facts.method, &facts.authority, &normal);
        if normal.semicolon {
            let route = match &lookup {
                Lookup::Matched(i, _) => Some(*i),
                _ => None,
            };
            if !policy.semicolons_allowed(route) {
                self.enter(policy, route);
                let denial = Denial::new(Reason::PathInvalid)
                    .with_detail("';' path parameters are not accepted");
                if let Some(v) = self.fail(denial) {
                    return v;
                }
            }
        }
        match lookup {
            Lookup::Matched(i, params) => {
                self.enter(policy, Some(i));
                self.state.params = params;
                if let Some(route) = policy.route(i) {
                    if let Err(denial) = crate::inbound::check_route_headers(policy, route, facts) {
                        if let Some(v) = self.fail(denial) {
                            return v;
                        }
                    }
                }
                self.phase = Phase::Headers(0);
                self.resume(policy, facts, None, env)
            }
            Lookup::MethodNotAllowed(allow) => {
                if policy.unmatched == Unmatched::Allow {
                    self.mode = policy.mode;
                    return self.finish(policy, env);
                }
                let denial =
                    Denial::new(Reason::MethodNotAllowed).with_header("allow", allow.join(", "));
                self.refuse_unrouted(policy, denial, env)
            }
            Lookup::NotFound => {
                if policy.unmatched == Unmatched::Allow {
                    self.mode = policy.mode;
                    return self.finish(policy, env);
                }
                let denial = Denial::new(Reason::RouteNotFound);
                self.refuse_unrouted(policy, denial, env)
            }
        }
    }

    /// Body phase: run the body checks on the complete buffered body.
    pub fn on_body(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        body: &[u8],
        env: &Env<'_>,
    ) -> Verdict {
        if matches!(self.phase, Phase::Headers(_)) {
            self.phase = Phase::Body(0);
        }
        self.resume(policy, facts, Some(body), env)
    }

    /// The body size above which the request is refused while it streams in (the request
    /// checks' limit), whether the body is buffered or only counted.
    pub fn body_limit(&self) -> Option<u64> {
        match self.state.body.need {
            Some(BodyNeed::Buffer { limit } | BodyNeed::Count { limit }) => Some(limit),
            _ => None,
        }
    }

    /// Body progress: `received` bytes so far. A denial (413) once over the route's limit.
    pub fn on_body_progress(&mut self, policy: &Policy, received: u64) -> Option<Verdict> {
        let rules = self
            .route
            .and_then(|i| policy.route(i))
            .and_then(|r| r.request.as_ref())?;
        if self.final_decision.is_some() {
            return None;
        }
        let denial = rules.check_body_size(received).err()?;
        let verdict = self.fail(denial);
        if verdict.is_none() {
            // Report mode: stop counting this request.
            self.state.body.need = Some(BodyNeed::Stream);
        }
        verdict
    }

    /// End of a body that streamed through unbuffered. A body whose size was counted has now
    /// stayed within the limit, so the request's decision becomes final. Returns true when it
    /// did just now (the caller then emits the events).
    pub fn on_body_end(&mut self, policy: &Policy, env: &Env<'_>) -> bool {
        if self.final_decision.is_some() || self.phase != Phase::Done {
            return false;
        }
        self.state.body.need = Some(BodyNeed::Stream);
        self.finish(policy, env);
        true
    }

    /// True when [`Exchange::on_response`] has anything to do for this request.
    pub fn wants_response(&self, policy: &Policy) -> bool {
        !self.state.out.response_headers.is_empty()
            || self
                .route
                .and_then(|i| policy.route(i))
                .is_some_and(|r| self.pipeline.all().any(|s| s.watches_response(r)))
    }

    /// Response phase: the headers to add to the response (rate-limit headers), after the
    /// stages that watch the upstream's status saw it (lockout counting an upstream failure).
    pub fn on_response(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        status: u16,
        env: &Env<'_>,
    ) -> Vec<(String, String)> {
        // Our own replies pass through here too; they were counted when they were decided.
        if self.final_decision == Some(Decision::Deny) {
            return Vec::new();
        }
        if let Some(route) = self.route.and_then(|i| policy.route(i)) {
            for stage in self.pipeline.all() {
                if stage.watches_response(route) {
                    let mut cx = cx(&mut self.state, policy, route, facts, None, env);
                    stage.on_response(&mut cx, status);
                }
            }
            self.note_locks();
        }
        std::mem::take(&mut self.state.out.response_headers)
    }

    /// Sets the matched route (or none) and the mode that applies to it.
    fn enter(&mut self, policy: &Policy, route: Option<usize>) {
        self.route = route;
        match route.and_then(|i| policy.route(i)) {
            Some(r) => {
                self.mode = r.mode;
                self.template = r.path.template().to_string();
            }
            None => self.mode = policy.mode,
        }
    }

    /// Refuses a request before (or without) a route: the global mode decides.
    fn refuse_unrouted(&mut self, policy: &Policy, denial: Denial, env: &Env<'_>) -> Verdict {
        self.mode = policy.mode;
        match self.fail(denial) {
            Some(v) => v,
            None => self.finish(policy, env),
        }
    }

    /// Runs the stages from where the pipeline is: after routing, after the body arrived, or
    /// again from the stage that returned [`Step::Wait`].
    pub fn resume(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        body: Option<&[u8]>,
        env: &Env<'_>,
    ) -> Verdict {
        let Some(route) = self.route.and_then(|i| policy.route(i)) else {
            return self.finish(policy, env);
        };
        loop {
            let (stage, body_phase): (&dyn Stage, bool) = match self.phase {
                Phase::Headers(i) => match self.pipeline.headers.get(i) {
                    Some(s) => (*s, false),
                    None => {
                        if self.needs_body(route) && body.is_none() {
                            // The headers go upstream before the body arrives (Envoy cannot
                            // hold headers while a wasm filter reads the body), so every header
                            // change is decided now.
                            self.finalize_headers(policy, env);
                            self.phase = Phase::Body(0);
                            return Verdict::NeedBody;
                        }
                        self.phase = Phase::Body(0);
                        continue;
                    }
                },
                Phase::Body(i) => match self.pipeline.body.get(i) {
                    Some(s) => (*s, true),
                    None => return self.finish(policy, env),
                },
                Phase::Done => return self.finish(policy, env),
            };
            let step = if stage.runs_on(route) {
                let body = if body_phase { body } else { None };
                let mut cx = cx(&mut self.state, policy, route, facts, body, env);
                if body_phase && self.pipeline.needs_body(route) {
                    // Read once, before any body check, so that a failure counted by any of
                    // them uses the body's key.
                    let _ = cx.body_fields();
                }
                stage.check(&mut cx)
            } else {
                Step::Next
            };
            self.note_locks();
            self.note_reports();
            match step {
                Step::Next => {}
                Step::Wait => return Verdict::Wait,
                Step::Deny(denial) => {
                    let body = if body_phase { body } else { None };
                    for s in self.pipeline.all() {
                        let mut cx = cx(&mut self.state, policy, route, facts, body, env);
                        s.after_denial(&mut cx, &denial);
                    }
                    self.note_locks();
                    if let Some(v) = self.fail(denial) {
                        return v;
                    }
                }
            }
            self.phase = match self.phase {
                Phase::Headers(i) => Phase::Headers(i.saturating_add(1)),
                Phase::Body(i) => Phase::Body(i.saturating_add(1)),
                Phase::Done => Phase::Done,
            };
        }
    }

    /// Whether this request's body must be buffered and checked.
    fn needs_body(&self, route: &Route) -> bool {
        self.pipeline.needs_body(route)
            || matches!(self.state.body.need, Some(BodyNeed::Buffer { .. }))
    }

    /// Would-be denials the stages recorded (their own report mode) become events.
    fn note_reports(&mut self) {
        for denial in std::mem::take(&mut self.state.out.reports) {
            self.events.push(Event {
                decision: Decision::Report,
                reason: Some(denial.reason),
                log_detail: denial.log_detail,
            });
            self.reported = true;
        }
    }

    /// Keys the stages locked out become audit events.
    fn note_locks(&mut self) {
        let locks: Vec<FailureRecord> = std::mem::take(&mut self.state.out.locks);
        for r in locks {
            if let Some(until) = r.locked_until_ms {
                self.events.push(Event {
                    decision: Decision::Lock,
                    reason: Some(Reason::LockedOut),
                    log_detail: Some(format!("key {} locked until ts_ms {until}", r.key)),
                });
            }
        }
    }

    /// Decides the request-header changes once: removes client copies of every header
    /// meshguard sets (before the values the stages queued), then lets each stage add its
    /// final changes (identity headers, `accept-encoding`).
    fn finalize_headers(&mut self, policy: &Policy, env: &Env<'_>) {
        if self.headers_final {
            return;
        }
        self.headers_final = true;
        let mut ops: Vec<HeaderOp> = policy
            .injected_headers
            .iter()
            .chain(self.forged.iter())
            .map(|h| HeaderOp::Remove(h.clone()))
            .collect();
        let route = self.route.and_then(|i| policy.route(i));
        let rewrites = route
            .and_then(|r| r.request.as_ref())
            .is_some_and(|q| q.may_rewrite_body());
        if rewrites && matches!(self.state.body.need, Some(BodyNeed::Buffer { .. })) {
            // The body may shrink: its length is no longer known when the headers go on.
            ops.push(HeaderOp::Remove("content-length".to_string()));
        }
        ops.append(&mut self.state.out.header_ops);
        self.state.out.header_ops = ops;
        for stage in self.pipeline.all() {
            stage.finalize(policy, route, &mut self.state, env);
        }
    }

    /// Records a denial. Enforced: returns the deny verdict. Report mode: records a would-be
    /// denial and returns `None` so the pipeline goes on.
    fn fail(&mut self, denial: Denial) -> Option<Verdict> {
        match self.mode {
            Mode::Enforce => {
                self.events.push(Event {
                    decision: Decision::Deny,
                    reason: Some(denial.reason),
                    log_detail: denial.log_detail.clone(),
                });
                self.phase = Phase::Done;
                self.final_decision = Some(Decision::Deny);
                self.denial = Some(denial.clone());
                Some(Verdict::Deny(denial))
            }
            Mode::Report => {
                self.events.push(Event {
                    decision: Decision::Report,
                    reason: Some(denial.reason),
                    log_detail: denial.log_detail,
                });
                self.reported = true;
                None
            }
        }
    }

    fn finish(&mut self, policy: &Policy, env: &Env<'_>) -> Verdict {
        self.phase = Phase::Done;
        if let Some(denial) = &self.denial {
            return Verdict::Deny(denial.clone());
        }
        if self.final_decision.is_none() {
            self.finalize_headers(policy, env);
        }
        // A body that streams through while its size is counted can still be refused (413):
        // the decision is final only at its end (`on_body_end`).
        let counting = matches!(self.state.body.need, Some(BodyNeed::Count { .. }));
        if self.final_decision.is_none() && !counting {
            let decision = if self.reported {
                Decision::Report
            } else {
                Decision::Allow
            };
            self.final_decision = Some(decision);
            if decision == Decision::Allow {
                self.events.push(Event {
                    decision,
                    reason: None,
                    log_detail: None,
                });
            }
        }
        Verdict::Allow
    }
}

/// What a stage sees, built for one call.
fn cx<'a>(
    state: &'a mut State,
    policy: &'a Policy,
    route: &'a Route,
    facts: &'a RequestFacts,
    body: Option<&'a [u8]>,
    env: &'a Env<'a>,
) -> Cx<'a> {
    Cx {
        policy,
        route,
        facts,
        body,
        env,
        state,
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
