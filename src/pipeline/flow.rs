//! One HTTP stream's flow, callback by callback: snapshot the request, run the engine, apply the
//! verdict with one helper ([`Flow::advance`]), hold the request while keys are fetched, buffer
//! the body for body checks (within caps), re-check a body that arrived while waiting, and the
//! response side ([`crate::pipeline::respond`]).
//!
//! It talks to the host only through [`Host`], so every path is tested natively with
//! [`crate::host::fake::FakeHost`] and its host calls counted (docs/cost.md). The adapter maps
//! proxy-wasm callbacks onto these methods one to one and decides nothing.

use crate::audit;
use crate::error::{reply_to, Denial, Reason};
use crate::host::{BufferKind, ClockOnce, Host, Level, MapKind, Via};
use crate::pipeline::engine::Exchange;
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::respond::{parse_status, send, status_of, Exchanged, Respond};
use crate::pipeline::runtime::{Env, Shared};
use crate::pipeline::verdict::{Action, HeaderOp, Verdict};
use std::rc::Rc;

/// Largest body meshguard buffers for body checks when a route sets no limit.
pub const DEFAULT_MAX_BUFFER: usize = 1024 * 1024;

/// Where the request is, as far as holding it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Not held by meshguard.
    No,
    /// Headers held while the pipeline waits (keys being fetched).
    Waiting,
    /// Buffering the body for body checks.
    Body,
    /// Body complete and held while the pipeline waits.
    WaitingWithBody,
}

/// What a waiting stream does after [`Flow::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Still waiting.
    Waiting,
    /// Decided and may go on: resume the request.
    Resume,
    /// Answered locally: nothing to resume.
    Answered,
}

/// The state of one stream.
pub struct Flow {
    shared: Rc<Shared>,
    ex: Exchange,
    facts: RequestFacts,
    body: Option<Vec<u8>>,
    held: Held,
    /// The whole body arrived while the stream was held waiting (Envoy buffered it).
    body_ended_while_waiting: bool,
    /// Body bytes seen so far when the body streams through (size limit without buffering).
    streamed: u64,
    counted: bool,
    /// Response side (preflight answered, body being read).
    response: Respond,
}

/// Runs `f` with the engine's view of the host.
pub(crate) fn with_env<R>(host: &dyn Host, shared: &Shared, f: impl FnOnce(&Env<'_>) -> R) -> R {
    let via = Via(host);
    let clock = ClockOnce::new(host);
    let env = Env {
        clock: &clock,
        store: &via,
        props: &via,
        runtime: &shared.runtime,
    };
    f(&env)
}

impl Flow {
    /// A new stream of a configuration.
    pub fn new(shared: Rc<Shared>) -> Self {
        Flow {
            shared,
            ex: Exchange::new(),
            facts: RequestFacts::default(),
            body: None,
            held: Held::No,
            body_ended_while_waiting: false,
            streamed: 0,
            counted: false,
            response: Respond::default(),
        }
    }

    /// True while the request waits for a dependency (the caller then calls [`Flow::retry`]
    /// when it changes).
    pub fn is_waiting(&self) -> bool {
        matches!(self.held, Held::Waiting | Held::WaitingWithBody)
    }

    /// Request headers: snapshot (one host call), answer a CORS preflight, decide, apply.
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        match host.map(MapKind::RequestHeaders) {
            Ok(pairs) => self.facts = crate::inbound::facts_from_pairs(pairs, end_of_stream),
            Err(e) => {
                // A header map the host cannot give is answered with a 503, never a request
                // judged without its headers.
                host.log(
                    Level::Error,
                    &format!("meshguard: request headers unreadable: {e:?}"),
                );
                return refuse_unchecked(host, &self.facts);
            }
        }
        if self.response.preflight(host, &self.shared, &self.facts) {
            return Action::Pause;
        }
        let shared = Rc::clone(&self.shared);
        let verdict = with_env(host, &shared, |env| {
            self.ex.on_headers(&shared.policy, &self.facts, env)
        });
        let action = self.advance(host, verdict);
        if self.held == Held::Body && end_of_stream {
            // No body will come: check the empty body now.
            return self.body_done(host);
        }
        action
    }

    /// A request body chunk; `body_size` is the chunk (streaming) or everything buffered so far
    /// (held).
    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let size = u64::try_from(body_size).unwrap_or(u64::MAX);
        match self.held {
            Held::No => {
                if self.ex.body_limit().is_some() {
                    self.streamed = self.streamed.saturating_add(size);
                    if let Some(action) = self.body_progress(host, self.streamed) {
                        return action;
                    }
                }
                if end_of_stream {
                    self.body_streamed(host);
                }
                Action::Continue
            }
            Held::Body => {
                if let Some(action) = self.body_progress(host, size) {
                    return action;
                }
                if end_of_stream {
                    self.body_done(host)
                } else {
                    // With HTTP/2 trailers the end arrives in the trailers callback.
                    Action::Pause
                }
            }
            Held::Waiting | Held::WaitingWithBody => {
                self.body_ended_while_waiting |= end_of_stream;
                Action::Pause
            }
        }
    }

    /// Request trailers: the body is complete. Trailers named like a header meshguard injects
    /// are removed first (Envoy forwards request trailers; an identity never travels in one).
    pub fn on_request_trailers(&mut self, host: &dyn Host) -> Action {
        self.strip_injected_trailers(host);
        match self.held {
            Held::Body => self.body_done(host),
            Held::No => {
                self.body_streamed(host);
                Action::Continue
            }
            Held::Waiting | Held::WaitingWithBody => {
                self.body_ended_while_waiting = true;
                Action::Pause
            }
        }
    }

    /// Re-runs a waiting pipeline (keys arrived, or time passed).
    pub fn retry(&mut self, host: &dyn Host) -> Retry {
        if !self.is_waiting() {
            return Retry::Waiting;
        }
        let shared = Rc::clone(&self.shared);
        let verdict = with_env(host, &shared, |env| {
            self.ex
                .resume(&shared.policy, &self.facts, self.body.as_deref(), env)
        });
        let action = self.advance(host, verdict);
        let action = if self.held == Held::Body && self.body_ended_while_waiting {
            // The body is already buffered: resuming would pass it on unchecked, so check it now.
            self.body_done(host)
        } else {
            action
        };
        match (action, self.held) {
            (Action::Continue, _) => Retry::Resume,
            (_, Held::Waiting | Held::WaitingWithBody) => Retry::Waiting,
            // Now buffering the body: resume so that body callbacks arrive.
            (_, Held::Body) if !self.body_ended_while_waiting => Retry::Resume,
            _ => Retry::Answered,
        }
    }

    /// Response headers. Most requests have nothing to do here and make no host call.
    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let limits = self.ex.wants_response(&self.shared.policy);
        let rules = self.response.wanted(&self.exchanged());
        if !limits && !rules {
            return Action::Continue;
        }
        // One read: the whole map when the rules need it (`:status` is in it), else `:status`.
        let headers = if rules {
            match host.map(MapKind::ResponseHeaders) {
                Ok(h) => Some(h),
                Err(e) => {
                    // Fail closed: an answer whose headers cannot be read cannot be checked.
                    host.log(
                        Level::Error,
                        &format!("meshguard: response headers unreadable: {e:?}"),
                    );
                    let _ = host.reset_response();
                    return Action::Pause;
                }
            }
        } else {
            None
        };
        let status = match &headers {
            Some(h) => status_of(h),
            None => host
                .map_value(MapKind::ResponseHeaders, ":status")
                .ok()
                .flatten()
                .and_then(|s| parse_status(&s)),
        }
        .unwrap_or(0);
        if limits {
            // Rate-limit response headers and upstream-failure lockout counts.
            let shared = Rc::clone(&self.shared);
            let add = with_env(host, &shared, |env| {
                self.ex
                    .on_response(&shared.policy, &self.facts, status, env)
            });
            for (k, v) in &add {
                let _ = host.add_header(MapKind::ResponseHeaders, k, v.as_bytes());
            }
            self.emit(host);
        }
        match headers {
            Some(h) => {
                let x = Exchanged {
                    shared: &self.shared,
                    ex: &self.ex,
                    facts: &self.facts,
                };
                self.response.head(host, &x, status, &h, end_of_stream)
            }
            None => Action::Continue,
        }
    }

    /// A response body chunk; `body_size` is everything buffered so far while held.
    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let x = Exchanged {
            shared: &self.shared,
            ex: &self.ex,
            facts: &self.facts,
        };
        self.response.body(host, &x, body_size, end_of_stream)
    }

    /// Response trailers: they end a body that is being read.
    pub fn on_response_trailers(&mut self, host: &dyn Host) -> Action {
        let x = Exchanged {
            shared: &self.shared,
            ex: &self.ex,
            facts: &self.facts,
        };
        self.response.trailers(host, &x)
    }

    fn exchanged(&self) -> Exchanged<'_> {
        Exchanged {
            shared: &self.shared,
            ex: &self.ex,
            facts: &self.facts,
        }
    }

    /// Applies a verdict: the one place that turns engine decisions into host actions.
    fn advance(&mut self, host: &dyn Host, verdict: Verdict) -> Action {
        self.emit(host);
        match verdict {
            Verdict::Allow => {
                self.apply_header_ops(host);
                self.held = Held::No;
                Action::Continue
            }
            Verdict::Deny(denial) => {
                send_denial(host, &denial, &self.facts);
                self.held = Held::No;
                Action::Pause
            }
            Verdict::NeedBody => {
                // A paused header phase is StopAllIteration in Envoy: the body would never reach
                // this filter. So the headers go on (with their final changes) and the body is
                // held in the body callbacks until it is complete and checked.
                self.apply_header_ops(host);
                self.held = Held::Body;
                Action::Continue
            }
            Verdict::Wait => {
                self.held = if self.body.is_some() {
                    Held::WaitingWithBody
                } else {
                    Held::Waiting
                };
                Action::Pause
            }
        }
    }

    fn apply_header_ops(&mut self, host: &dyn Host) {
        let t = MapKind::RequestHeaders;
        let mut set: Vec<&str> = Vec::new();
        let ops = self.ex.take_header_ops();
        for op in &ops {
            let _ = match op {
                HeaderOp::Set(k, v) => {
                    set.push(k);
                    host.set_header(t, k, v.as_bytes())
                }
                // A header the request does not have (in the snapshot, text or not) and that
                // this batch did not set needs no host call: nothing else edits the request
                // headers between the snapshot and here.
                HeaderOp::Remove(k) if !self.facts.has_header(k) && !set.contains(&k.as_str()) => {
                    continue
                }
                HeaderOp::Remove(k) => host.remove_header(t, k.as_bytes()),
            };
        }
    }

    /// Writes audit lines and counters for what the engine recorded.
    fn emit(&mut self, host: &dyn Host) {
        let shared = Rc::clone(&self.shared);
        let (policy, counters) = (&shared.policy, &shared.counters);
        let events = self.ex.take_events();
        if !events.is_empty() {
            // The clock is a host call: only read it when a line is written.
            let now = if events.iter().any(|e| audit::wanted(policy, e)) {
                host.now_ms().unwrap_or(0)
            } else {
                0
            };
            for event in &events {
                if let Some(reason) = event.reason {
                    counters.reason(host, reason, event.decision);
                }
                if audit::wanted(policy, event) {
                    let line = audit::line(policy, &self.ex, &self.facts, event, now);
                    host.log(Level::Info, &line);
                }
            }
        }
        if let Some((provider, what)) = self.ex.take_authn() {
            counters.authn(host, provider, what);
        }
        let route = self.ex.route_index();
        for (limit, outcome) in self.ex.take_limit_outcomes() {
            counters.limit(host, route, limit, outcome);
        }
        if !self.counted {
            if let Some(decision) = self.ex.final_decision() {
                counters.request(host, route, decision);
                self.counted = true;
            }
        }
    }

    fn body_done(&mut self, host: &dyn Host) -> Action {
        // All of the body up to the route's limit, and one byte more so that a body over it is
        // refused rather than judged by its prefix (a prefix can be a complete JSON document).
        let max = self
            .ex
            .body_limit()
            .and_then(|l| usize::try_from(l).ok())
            .map_or(DEFAULT_MAX_BUFFER, |l| l.saturating_add(1));
        let body = match host.buffer(BufferKind::RequestBody, max) {
            Ok(body) => body.unwrap_or_default(),
            Err(e) => {
                // Judging an unread body as empty could pass it: refuse instead.
                host.log(
                    Level::Error,
                    &format!("meshguard: request body unreadable: {e:?}"),
                );
                self.held = Held::No;
                return refuse_unchecked(host, &self.facts);
            }
        };
        let shared = Rc::clone(&self.shared);
        let verdict = with_env(host, &shared, |env| {
            self.ex.on_body(&shared.policy, &self.facts, &body, env)
        });
        if verdict == Verdict::Allow {
            if let Some(new) = self.ex.take_body_rewrite() {
                if host
                    .replace_buffer(BufferKind::RequestBody, body.len(), &new)
                    .is_err()
                {
                    host.log(Level::Error, "meshguard: could not rewrite body");
                }
            }
        }
        self.body = Some(body);
        self.advance(host, verdict)
    }

    /// Removes trailers named like a header meshguard injects (any case, `_` for `-`). One host
    /// call, only when the policy injects headers.
    fn strip_injected_trailers(&mut self, host: &dyn Host) {
        if crate::inbound::injected_names(&self.shared.policy).is_empty() {
            return;
        }
        let Ok(pairs) = host.map(MapKind::RequestTrailers) else {
            return;
        };
        for name in crate::inbound::injected_in(&self.shared.policy, &pairs) {
            let _ = host.remove_header(MapKind::RequestTrailers, &name);
        }
    }

    /// Enforces the body size limit as the body arrives; `Some` when the request was refused.
    fn body_progress(&mut self, host: &dyn Host, received: u64) -> Option<Action> {
        let verdict = self.ex.on_body_progress(&self.shared.policy, received)?;
        self.held = Held::No;
        Some(self.advance(host, verdict))
    }

    /// The body streamed through to its end: a counted body's request is now decided.
    fn body_streamed(&mut self, host: &dyn Host) {
        let shared = Rc::clone(&self.shared);
        let decided = with_env(host, &shared, |env| {
            self.ex.on_body_end(&shared.policy, env)
        });
        if decided {
            self.emit(host);
        }
    }
}

/// Sends the reply for a denial (a gRPC status for a gRPC request).
fn send_denial(host: &dyn Host, denial: &Denial, facts: &RequestFacts) {
    send(host, &reply_to(denial, facts));
}

/// Refuses a request meshguard could not read from the host (503 `internal`): fail closed.
pub fn refuse_unchecked(host: &dyn Host, facts: &RequestFacts) -> Action {
    send_denial(host, &Denial::new(Reason::Internal), facts);
    Action::Pause
}
