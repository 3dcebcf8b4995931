//! Stream (HTTP) context: snapshot the request, ask the core, apply the verdict with one helper.
//!
//! The stream's state lives behind `Rc<RefCell<_>>` so that the root context can drive a stream
//! that is waiting (for JWKS keys): it re-runs the pipeline and applies the verdict after
//! switching the host's effective context to that stream.

use super::host::{self as abi, Host, HostClock, HostProps, HostStore, Level};
use super::root::{parse_status, Shared, Waiters};
use crate::audit;
use crate::decide::{Env, Exchange, HeaderOp, RequestFacts, Verdict};
use crate::error::{reply_to, Denial, Reason};
use crate::host::{BufferKind, Clock, HostReads, MapKind};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::rc::Rc;

/// Largest body meshguard buffers for body checks when a route sets no limit.
const DEFAULT_MAX_BUFFER: usize = 1024 * 1024;

/// Where the stream is, as far as the adapter is concerned.
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

/// The state of one stream, shared with the root context's waiter list.
pub(crate) struct StreamState {
    pub(super) shared: Rc<Shared>,
    pub(super) ex: Exchange,
    pub(super) facts: RequestFacts,
    body: Option<Vec<u8>>,
    held: Held,
    /// The whole body arrived while the stream was held waiting (Envoy buffered it).
    body_ended_while_waiting: bool,
    /// Body bytes seen so far when the body streams through (size limit without buffering).
    streamed: u64,
    counted: bool,
    /// Response side (preflight answered, body being read).
    pub(super) response: super::response::ResponseState,
}

fn env(shared: &Shared) -> Env<'_> {
    Env {
        clock: &HostClock,
        store: &HostStore,
        props: &HostProps,
        runtime: &shared.runtime,
    }
}

impl StreamState {
    /// Reads the request headers as bytes (one host call). A header map the host cannot give
    /// is an error the caller answers with a 503, never a request judged without its headers.
    fn snapshot(&mut self, end_of_stream: bool) -> Result<(), crate::host::HostError> {
        let pairs = Host.map(MapKind::RequestHeaders)?;
        self.facts = crate::inbound::facts_from_pairs(pairs, end_of_stream);
        Ok(())
    }

    /// Headers phase: snapshot, decide, apply.
    fn on_headers(&mut self, end_of_stream: bool) -> Action {
        if let Err(e) = self.snapshot(end_of_stream) {
            abi::log(
                Level::Error,
                &format!("meshguard: request headers unreadable: {e:?}"),
            );
            return deny_unchecked(&self.facts);
        }
        if self.cors_preflight() {
            return Action::Pause;
        }
        let verdict = self
            .ex
            .on_headers(&self.shared.policy, &self.facts, &env(&self.shared));
        let action = self.advance(verdict);
        if self.held == Held::Body && end_of_stream {
            // No body will come: check the empty body now.
            return self.body_done();
        }
        action
    }

    /// Applies a verdict: the one place that turns core decisions into host actions.
    fn advance(&mut self, verdict: Verdict) -> Action {
        self.emit();
        match verdict {
            Verdict::Allow => {
                self.apply_header_ops();
                self.held = Held::No;
                Action::Continue
            }
            Verdict::Deny(denial) => {
                send_denial(&denial, &self.facts);
                self.held = Held::No;
                Action::Pause
            }
            Verdict::NeedBody => {
                // A paused header phase is StopAllIteration in Envoy: the body would never reach
                // this filter. So the headers go on (with their final changes) and the body is
                // held in the body callbacks until it is complete and checked.
                self.apply_header_ops();
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

    fn apply_header_ops(&mut self) {
        for op in self.ex.take_header_ops() {
            let _ = match &op {
                HeaderOp::Set(k, v) => abi::set_header(MapKind::RequestHeaders, k, v.as_bytes()),
                HeaderOp::Remove(k) => abi::remove_header(MapKind::RequestHeaders, k.as_bytes()),
            };
        }
    }

    /// Writes audit lines and counters for what the core recorded.
    fn emit(&mut self) {
        let policy = &self.shared.policy;
        let events = self.ex.take_events();
        if !events.is_empty() {
            // The clock is a host call: only read it when a line is written.
            let now = if events.iter().any(|e| audit::wanted(policy, e)) {
                HostClock.now_ms()
            } else {
                0
            };
            for event in &events {
                if let Some(reason) = event.reason {
                    self.shared.metrics.reason(reason, event.decision);
                }
                if audit::wanted(policy, event) {
                    let line = audit::line(policy, &self.ex, &self.facts, event, now);
                    abi::log(Level::Info, &line);
                }
            }
        }
        if let Some((provider, what)) = self.ex.take_authn() {
            self.shared.metrics.authn(provider, what);
        }
        for (limit, outcome) in self.ex.take_limit_outcomes() {
            self.shared
                .metrics
                .limit(self.ex.route_index(), limit, outcome);
        }
        if !self.counted {
            if let Some(decision) = self.ex.final_decision() {
                self.shared.metrics.request(self.ex.route_index(), decision);
                self.counted = true;
            }
        }
    }

    fn body_done(&mut self) -> Action {
        // All of the body up to the route's limit, and one byte more so that a body over it is
        // refused rather than judged by its prefix (a prefix can be a complete JSON document).
        let max = self
            .ex
            .body_limit()
            .and_then(|l| usize::try_from(l).ok())
            .map_or(DEFAULT_MAX_BUFFER, |l| l.saturating_add(1));
        let body = match Host.buffer(BufferKind::RequestBody, 0, max) {
            Ok(body) => body.unwrap_or_default(),
            Err(e) => {
                // Judging an unread body as empty could pass it: refuse instead.
                abi::log(
                    Level::Error,
                    &format!("meshguard: request body unreadable: {e:?}"),
                );
                self.held = Held::No;
                return deny_unchecked(&self.facts);
            }
        };
        let verdict = self
            .ex
            .on_body(&self.shared.policy, &self.facts, &body, &env(&self.shared));
        if verdict == Verdict::Allow {
            if let Some(new) = self.ex.take_body_rewrite() {
                if abi::set_buffer(BufferKind::RequestBody, 0, body.len(), &new).is_err() {
                    abi::log(Level::Error, "meshguard: could not rewrite body");
                }
            }
        }
        self.body = Some(body);
        self.advance(verdict)
    }

    /// The request's trailers arrived: the body is complete.
    fn trailers(&mut self) -> Action {
        match self.held {
            Held::Body => self.body_done(),
            Held::No => {
                self.body_streamed();
                Action::Continue
            }
            Held::Waiting | Held::WaitingWithBody => {
                self.body_ended_while_waiting = true;
                Action::Pause
            }
        }
    }

    /// Removes trailers named like a header meshguard injects (any case, `_` for `-`): Envoy
    /// forwards request trailers, and an identity never travels in one. One host call, only
    /// when the policy injects headers.
    fn strip_injected_trailers(&mut self) {
        if crate::inbound::injected_names(&self.shared.policy).is_empty() {
            return;
        }
        let Ok(pairs) = Host.map(MapKind::RequestTrailers) else {
            return;
        };
        for name in crate::inbound::injected_in(&self.shared.policy, &pairs) {
            let _ = abi::remove_header(MapKind::RequestTrailers, &name);
        }
    }

    /// Enforces the body size limit as the body arrives; `Some` when the request was refused.
    fn body_progress(&mut self, received: u64) -> Option<Action> {
        let verdict = self.ex.on_body_progress(&self.shared.policy, received)?;
        self.held = Held::No;
        Some(self.advance(verdict))
    }

    /// The body streamed through to its end: a counted body's request is now decided.
    fn body_streamed(&mut self) {
        if self.ex.on_body_end(&self.shared.policy, &env(&self.shared)) {
            self.emit();
        }
    }

    /// Re-runs a waiting pipeline. Returns `None` while it still waits, else whether the
    /// request may continue (the caller resumes it) or was answered.
    pub(crate) fn retry(&mut self) -> Option<bool> {
        if !matches!(self.held, Held::Waiting | Held::WaitingWithBody) {
            return None;
        }
        let verdict = self.ex.resume(
            &self.shared.policy,
            &self.facts,
            self.body.as_deref(),
            &env(&self.shared),
        );
        let action = self.advance(verdict);
        if self.held == Held::Body && self.body_ended_while_waiting {
            // The body is already buffered: resuming would pass it on unchecked, so check it now.
            return match self.body_done() {
                Action::Continue => Some(true),
                _ => match self.held {
                    Held::Waiting | Held::WaitingWithBody => None,
                    _ => Some(false),
                },
            };
        }
        match action {
            Action::Continue => Some(true),
            _ => match self.held {
                Held::Waiting | Held::WaitingWithBody => None,
                // Now buffering the body: resume so that body callbacks arrive.
                Held::Body => Some(true),
                Held::No => Some(false),
            },
        }
    }
}

/// Sends the reply for a denial (a gRPC status for a gRPC request).
fn send_denial(denial: &Denial, facts: &RequestFacts) {
    let r = reply_to(denial, facts);
    if abi::send_local_response(r.status, &r.headers, &r.body, r.grpc_status).is_err() {
        abi::log(Level::Error, "meshguard: could not send reply");
    }
}

/// Refuses a request meshguard could not read from the host (503 `internal`): fail closed.
fn deny_unchecked(facts: &RequestFacts) -> Action {
    send_denial(&Denial::new(Reason::Internal), facts);
    Action::Pause
}

/// The stream of a VM without an accepted configuration: every request is refused (503).
pub(crate) struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        abi::log(
            Level::Warn,
            "meshguard: no accepted configuration: request refused",
        );
        deny_unchecked(&RequestFacts::default())
    }
}

/// One HTTP stream.
pub(crate) struct Stream {
    id: u32,
    state: Rc<RefCell<StreamState>>,
    waiters: Rc<Waiters>,
}

impl Stream {
    pub(crate) fn new(id: u32, shared: Rc<Shared>, waiters: Rc<Waiters>) -> Self {
        Stream {
            id,
            state: Rc::new(RefCell::new(StreamState {
                shared,
                ex: Exchange::new(),
                facts: RequestFacts::default(),
                body: None,
                held: Held::No,
                body_ended_while_waiting: false,
                streamed: 0,
                counted: false,
                response: Default::default(),
            })),
            waiters,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut StreamState) -> R, fallback: R) -> R {
        match self.state.try_borrow_mut() {
            Ok(mut s) => f(&mut s),
            Err(_) => fallback,
        }
    }

    fn register_if_waiting(&self) {
        let waiting = self
            .state
            .try_borrow()
            .is_ok_and(|s| matches!(s.held, Held::Waiting | Held::WaitingWithBody));
        if waiting {
            self.waiters.add(self.id, Rc::downgrade(&self.state));
        }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let action = self.with(|s| s.on_headers(end_of_stream), Action::Pause);
        self.register_if_waiting();
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let action = self.with(
            |s| match s.held {
                Held::No => {
                    if s.ex.body_limit().is_some() {
                        let chunk = u64::try_from(body_size).unwrap_or(u64::MAX);
                        s.streamed = s.streamed.saturating_add(chunk);
                        if let Some(action) = s.body_progress(s.streamed) {
                            return action;
                        }
                    }
                    if end_of_stream {
                        s.body_streamed();
                    }
                    Action::Continue
                }
                Held::Body => {
                    // While buffering, `body_size` is everything received so far.
                    let total = u64::try_from(body_size).unwrap_or(u64::MAX);
                    if let Some(action) = s.body_progress(total) {
                        return action;
                    }
                    if end_of_stream {
                        s.body_done()
                    } else {
                        // With HTTP/2 trailers the end arrives in the trailers callback.
                        Action::Pause
                    }
                }
                Held::Waiting | Held::WaitingWithBody => {
                    s.body_ended_while_waiting |= end_of_stream;
                    Action::Pause
                }
            },
            Action::Pause,
        );
        self.register_if_waiting();
        action
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let action = self.with(
            |s| {
                s.strip_injected_trailers();
                s.trailers()
            },
            Action::Pause,
        );
        self.register_if_waiting();
        action
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Most requests have nothing to do here: skip the host calls.
        let (wanted, response) = self.state.try_borrow().map_or((false, false), |s| {
            (s.ex.wants_response(&s.shared.policy), s.response_wanted())
        });
        if response {
            self.response_limits_and_lockout(wanted);
            return self.with(|s| s.response_headers(end_of_stream), Action::Continue);
        }
        if !wanted {
            return Action::Continue;
        }
        self.response_limits_and_lockout(true);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(
            |s| s.response_body(body_size, end_of_stream),
            Action::Continue,
        )
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(|s| s.response_trailers(), Action::Continue)
    }
}

impl Stream {
    /// Rate-limit response headers and upstream-failure lockout counts.
    fn response_limits_and_lockout(&mut self, wanted: bool) {
        if !wanted {
            return;
        }
        let status = Host
            .map_value(MapKind::ResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| parse_status(&s))
            .unwrap_or(0);
        self.with(
            |s| {
                let add =
                    s.ex.on_response(&s.shared.policy, &s.facts, status, &env(&s.shared));
                for (k, v) in &add {
                    let _ = abi::add_header(MapKind::ResponseHeaders, k, v.as_bytes());
                }
                s.emit();
            },
            (),
        );
    }
}
