//! Stream (HTTP) context: snapshot the request, ask the core, apply the verdict with one helper.

use super::host::{HostClock, HostProps, HostStore};
use super::root::Shared;
use crate::audit;
use crate::decide::{Env, Exchange, HeaderOp, RequestFacts, Verdict};
use crate::error::reply;
use crate::host::Clock;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
use std::rc::Rc;

/// Largest body meshguard buffers for body checks when a route sets no limit.
const DEFAULT_MAX_BUFFER: usize = 1024 * 1024;

/// One HTTP stream.
pub(crate) struct Stream {
    _id: u32,
    shared: Rc<Shared>,
    ex: Exchange,
    facts: RequestFacts,
    awaiting_body: bool,
    counted: bool,
}

impl Stream {
    pub(crate) fn new(id: u32, shared: Rc<Shared>) -> Self {
        Stream {
            _id: id,
            shared,
            ex: Exchange::new(),
            facts: RequestFacts::default(),
            awaiting_body: false,
            counted: false,
        }
    }

    fn snapshot(&mut self) {
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
        self.facts = facts;
    }

    /// Applies a verdict: the one place that turns core decisions into host actions.
    fn advance(&mut self, verdict: Verdict) -> Action {
        self.emit();
        match verdict {
            Verdict::Allow => {
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
                Action::Pause
            }
            Verdict::NeedBody => {
                self.awaiting_body = true;
                Action::Pause
            }
            Verdict::Wait => Action::Pause,
        }
    }

    /// Writes audit lines and counters for what the core recorded.
    fn emit(&mut self) {
        let policy = &self.shared.policy;
        let events = self.ex.take_events();
        if !events.is_empty() {
            let now = HostClock.now_ms();
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
        self.awaiting_body = false;
        let size = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, DEFAULT_MAX_BUFFER)
            .ok()
            .flatten()
            .unwrap_or_default();
        let env = Env {
            clock: &HostClock,
            store: &HostStore,
            props: &HostProps,
        };
        let verdict = self
            .ex
            .on_body(&self.shared.policy, &self.facts, &size, &env);
        self.advance(verdict)
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.snapshot();
        let env = Env {
            clock: &HostClock,
            store: &HostStore,
            props: &HostProps,
        };
        let verdict = self.ex.on_headers(&self.shared.policy, &self.facts, &env);
        let action = self.advance(verdict);
        if self.awaiting_body {
            if end_of_stream {
                // No body will come: check the empty body now.
                return self.body_done();
            }
            // The host turns a paused headers callback into StopAllIteration (proxy-wasm-cpp-host
            // #95; Envoy's `allow_on_headers_stop_iteration` is off by default and Istio cannot
            // set it), and then never calls the body callback: the request would hang. So the
            // headers go on and the body is held (StopIterationAndBuffer) until the body checks
            // decide; a denial is still a local reply and no body byte reaches the upstream.
            return Action::Continue;
        }
        action
    }

    fn on_http_request_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        if !end_of_stream {
            // Keep buffering; with HTTP/2 trailers the end arrives in the trailers callback.
            return Action::Pause;
        }
        self.body_done()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.awaiting_body {
            return self.body_done();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let env = Env {
            clock: &HostClock,
            store: &HostStore,
            props: &HostProps,
        };
        let add = self
            .ex
            .on_response(&self.shared.policy, &self.facts, status, &env);
        for (k, v) in &add {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, k, v);
        }
        self.emit();
        Action::Continue
    }
}
