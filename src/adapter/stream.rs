//! Stream (HTTP) context: snapshot the request, ask the core, apply the verdict with one helper.
//!
//! The stream's state lives behind `Rc<RefCell<_>>` so that the root context can drive a stream
//! that is waiting (for JWKS keys): it re-runs the pipeline and applies the verdict after
//! switching the host's effective context to that stream.

use super::host::{HostClock, HostProps, HostStore};
use super::root::{Shared, Waiters};
use crate::audit;
use crate::decide::{Env, Exchange, HeaderOp, RequestFacts, Verdict};
use crate::error::reply;
use crate::host::Clock;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
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
    fn snapshot(&mut self, end_of_stream: bool) {
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let mut facts = RequestFacts::default();
        for (k, v) in &headers {
            match k.as_str() {
                ":method" => facts.method.clone_from(v),
                ":path" => facts.path.clone_from(v),
                ":authority" => facts.authority.clone_from(v),
                _ => {}
            }
        }
        facts.headers = headers;
        facts.end_of_stream = end_of_stream;
        self.facts = facts;
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
                let r = reply(&denial, self.facts.request_id());
                let headers: Vec<(&str, &str)> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if hostcalls::send_http_response(u32::from(r.status), headers, Some(&r.body))
                    .is_err()
                {
                    let _ = hostcalls::log(LogLevel::Error, "meshguard: could not send reply");
                }
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
                HeaderOp::Set(k, v) => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, k, Some(v))
                }
                HeaderOp::Remove(k) => {
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, k, None)
                }
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
                    let _ = hostcalls::log(LogLevel::Info, &line);
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
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, max)
            .ok()
            .flatten()
            .unwrap_or_default();
        let verdict = self
            .ex
            .on_body(&self.shared.policy, &self.facts, &body, &env(&self.shared));
        if verdict == Verdict::Allow {
            if let Some(new) = self.ex.take_body_rewrite() {
                if hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new).is_err()
                {
                    let _ = hostcalls::log(LogLevel::Error, "meshguard: could not rewrite body");
                }
            }
        }
        self.body = Some(body);
        self.advance(verdict)
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
        let action = self.with(
            |s| {
                s.snapshot(end_of_stream);
                if s.cors_preflight() {
                    return Action::Pause;
                }
                let verdict = s.ex.on_headers(&s.shared.policy, &s.facts, &env(&s.shared));
                let action = s.advance(verdict);
                if s.held == Held::Body && end_of_stream {
                    // No body will come: check the empty body now.
                    return s.body_done();
                }
                action
            },
            Action::Pause,
        );
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
            |s| match s.held {
                Held::Body => s.body_done(),
                Held::No => {
                    s.body_streamed();
                    Action::Continue
                }
                Held::Waiting | Held::WaitingWithBody => {
                    s.body_ended_while_waiting = true;
                    Action::Pause
                }
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
        let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        self.with(
            |s| {
                let add =
                    s.ex.on_response(&s.shared.policy, &s.facts, status, &env(&s.shared));
                for (k, v) in &add {
                    let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, k, v);
                }
                s.emit();
            },
            (),
        );
    }
}
