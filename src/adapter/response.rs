//! Response-side wiring: the CORS preflight answer (before any request check), then the
//! response head and body. Everything decided here comes from [`crate::response`]; this file
//! only reads and writes host state, through the host layer ([`super::host`]).

use super::host::{self as abi, Host, HostClock, Level};
use super::root::parse_status;
use super::stream::StreamState;
use crate::audit;
use crate::decide::Decision;
use crate::host::{BufferKind, Clock, HostReads, MapKind};
use crate::response::{
    self, BodyPlan, BodyRead, Finding, HeadPlan, HeaderEdit, ResponseEvent, Site,
};
use proxy_wasm::types::Action;

/// Where the response side of a stream is.
#[derive(Debug, Default)]
pub(crate) struct ResponseState {
    /// meshguard answered this request as a CORS preflight.
    preflight: bool,
    /// The body being read for checks.
    read: Option<BodyRead>,
}

fn send(reply: &crate::error::Reply) {
    if abi::send_local_response(reply.status, &reply.headers, &reply.body, reply.grpc_status)
        .is_err()
    {
        abi::log(Level::Error, "meshguard: could not send reply");
    }
}

fn apply(edits: &[HeaderEdit]) {
    let t = MapKind::ResponseHeaders;
    for e in edits {
        let _ = match e {
            HeaderEdit::Set(k, v) => abi::set_header(t, k, v.as_bytes()),
            HeaderEdit::Remove(k) => abi::remove_header(t, k.as_bytes()),
            HeaderEdit::Append(k, v) => abi::add_header(t, k, v.as_bytes()),
        };
    }
}

impl StreamState {
    fn site(&self) -> Site<'_> {
        let policy = &self.shared.policy;
        let route = self.ex.route_index().and_then(|i| policy.route(i));
        Site {
            policy,
            route,
            mode: route.map_or(policy.mode, |r| r.mode),
            own_reply: self.response.preflight || self.ex.final_decision() == Some(Decision::Deny),
            preflight: self.response.preflight,
            origin: self.facts.header("origin"),
            claims: self.ex.principal().claims(),
            request_id: self.facts.request_id(),
            method: &self.facts.method,
        }
    }

    /// Answers a CORS preflight before any request check. True when answered (the request
    /// phase then stops here).
    pub(super) fn cors_preflight(&mut self) -> bool {
        let Some(out) = response::preflight(&self.shared.policy, &self.facts) else {
            return false;
        };
        let policy = &self.shared.policy;
        let (route, template) = out
            .route
            .and_then(|i| policy.route(i))
            .map_or((crate::policy::UNMATCHED_ROUTE, ""), |r| {
                (r.name.as_str(), r.path.template())
            });
        self.record(&[out.event], route, template, "preflight");
        match out.reply {
            Some(reply) => {
                self.response.preflight = true;
                send(&reply);
                true
            }
            None => false,
        }
    }

    /// Whether the response needs any work (no host call).
    pub(super) fn response_wanted(&self) -> bool {
        let policy = &self.shared.policy;
        response::wanted(policy, self.ex.route_index().and_then(|i| policy.route(i)))
    }

    /// The response headers: edits, masking, and whether the body is read.
    pub(super) fn response_headers(&mut self, end_of_stream: bool) -> Action {
        let headers = match Host.map(MapKind::ResponseHeaders) {
            Ok(h) => h,
            Err(e) => {
                // Fail closed: an answer whose headers cannot be read cannot be checked.
                abi::log(
                    Level::Error,
                    &format!("meshguard: response headers unreadable: {e:?}"),
                );
                let _ = abi::reset_http_response();
                return Action::Pause;
            }
        };
        let status = headers
            .iter()
            .find(|(k, _)| k.as_slice() == b":status")
            .and_then(|(_, v)| parse_status(v))
            .unwrap_or(0);
        let out = response::on_head(&self.site(), status, &headers, end_of_stream);
        self.record_response(&out.events);
        match out.plan {
            HeadPlan::Pass => {
                apply(&out.edits);
                Action::Continue
            }
            HeadPlan::ReadBody(read) => {
                apply(&out.edits);
                let hold = read.hold;
                self.response.read = Some(read);
                // Held (allow_on_headers_stop_iteration): the headers wait for the body's
                // verdict. Else they go on now and the body is held in the body callbacks.
                if hold {
                    Action::Pause
                } else {
                    Action::Continue
                }
            }
            HeadPlan::Replace(reply) => {
                send(&reply);
                Action::Pause
            }
        }
    }

    /// A response body chunk; `body_size` is everything buffered so far while held.
    pub(super) fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(read) = &self.response.read else {
            return Action::Continue;
        };
        if u64::try_from(body_size).map_or(true, |n| n > read.limit) {
            let (reply, event) = response::over_limit(&self.site(), read);
            self.response.read = None;
            self.record_response(&[event]);
            return match reply {
                Some(r) => {
                    send(&r);
                    Action::Pause
                }
                None => Action::Continue,
            };
        }
        if end_of_stream {
            self.response_body_done()
        } else {
            Action::Pause
        }
    }

    /// Trailers end a body that is being read (HTTP/2 answers with trailers).
    pub(super) fn response_trailers(&mut self) -> Action {
        if self.response.read.is_some() {
            return self.response_body_done();
        }
        Action::Continue
    }

    fn response_body_done(&mut self) -> Action {
        let Some(read) = self.response.read.take() else {
            return Action::Continue;
        };
        // One byte more than the limit, so an over-limit body is never judged by its prefix.
        let max = usize::try_from(read.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let body = match Host.buffer(BufferKind::ResponseBody, 0, max) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                abi::log(
                    Level::Error,
                    &format!("meshguard: response body unreadable: {e:?}"),
                );
                let _ = abi::reset_http_response();
                return Action::Pause;
            }
        };
        let out = response::on_body(&self.site(), &read, &body);
        self.record_response(&out.events);
        match out.plan {
            BodyPlan::Unchanged => Action::Continue,
            BodyPlan::Rewrite(new) => {
                if abi::set_buffer(BufferKind::ResponseBody, 0, body.len(), &new).is_err() {
                    // Fail closed: never pass the unchecked body.
                    abi::log(Level::Error, "meshguard: could not rewrite response");
                    let _ = abi::reset_http_response();
                    return Action::Pause;
                }
                if read.hold {
                    let len = new.len().to_string();
                    let _ =
                        abi::set_header(MapKind::ResponseHeaders, "content-length", len.as_bytes());
                }
                Action::Continue
            }
            BodyPlan::Replace(reply) => {
                // Headers held: the client gets this 502. Already sent: Envoy resets the stream.
                send(&reply);
                Action::Pause
            }
        }
    }

    fn record_response(&mut self, events: &[ResponseEvent]) {
        if events.is_empty() {
            return;
        }
        let policy = &self.shared.policy;
        let route = self.ex.route_name(policy);
        let template = self.ex.template().to_string();
        self.record(events, route, &template, "response");
    }

    fn record(&self, events: &[ResponseEvent], route: &str, template: &str, phase: &'static str) {
        let policy = &self.shared.policy;
        let now = if events.iter().any(|e| audit::response_wanted(policy, e)) {
            HostClock.now_ms()
        } else {
            0
        };
        for e in events {
            match e.finding {
                Finding::Denied(r) => self.shared.metrics.reason(
                    r,
                    if e.report {
                        Decision::Report
                    } else {
                        Decision::Deny
                    },
                ),
                Finding::Changed(c) => self.shared.metrics.change(c, e.report),
            }
            if audit::response_wanted(policy, e) {
                let line = audit::response_line(
                    route,
                    template,
                    &self.facts,
                    self.ex.principal(),
                    e,
                    phase,
                    now,
                );
                abi::log(Level::Info, &line);
            }
        }
    }
}
