//! The response side of a stream's flow: the CORS preflight answer (before any request check),
//! rate-limit response headers and upstream-failure lockout counts, then response protection
//! (head edits, holding and checking the body). What is decided comes from
//! [`crate::stages::cors`], [`crate::stages::response`] and [`crate::response`]; this file reads
//! and writes host state through [`Host`] only.

use crate::audit;
use crate::error::Reply;
use crate::host::{BufferKind, Host, HeaderPairs, Level, MapKind};
use crate::pipeline::flow::{parse_status, with_env, Action, Flow};
use crate::pipeline::verdict::Decision;
use crate::response::{self, BodyPlan, BodyRead, Finding, HeadPlan, HeaderEdit, ResponseEvent};
use crate::stages::{cors, response as stage};
use std::rc::Rc;

/// Where the response side of a stream is.
#[derive(Debug, Default)]
pub struct ResponseState {
    /// meshguard answered this request as a CORS preflight.
    preflight: bool,
    /// The body being read for checks.
    read: Option<BodyRead>,
}

fn send(host: &dyn Host, reply: &Reply) {
    if host
        .send_local_response(reply.status, &reply.headers, &reply.body, reply.grpc_status)
        .is_err()
    {
        host.log(Level::Error, "meshguard: could not send reply");
    }
}

fn apply(host: &dyn Host, edits: &[HeaderEdit]) {
    let t = MapKind::ResponseHeaders;
    for e in edits {
        let _ = match e {
            HeaderEdit::Set(k, v) => host.set_header(t, k, v.as_bytes()),
            HeaderEdit::Remove(k) => host.remove_header(t, k.as_bytes()),
            HeaderEdit::Append(k, v) => host.add_header(t, k, v.as_bytes()),
        };
    }
}

/// Fails closed on an answer that cannot be checked: it is never passed.
fn reset(host: &dyn Host, what: &str) -> Action {
    host.log(Level::Error, &format!("meshguard: {what}"));
    let _ = host.reset_response();
    Action::Pause
}

impl Flow {
    /// Answers a CORS preflight before any request check. True when answered (the request
    /// phase then stops here).
    pub(crate) fn cors_preflight(&mut self, host: &dyn Host) -> bool {
        let shared = Rc::clone(&self.shared);
        let Some((out, route, template)) = cors::answer(&shared.policy, &self.facts) else {
            return false;
        };
        self.record(host, &[out.event], route, template, "preflight");
        match out.reply {
            Some(reply) => {
                self.response.preflight = true;
                send(host, &reply);
                true
            }
            None => false,
        }
    }

    /// Response headers. Most requests have nothing to do here and make no host call.
    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let limits = self.ex.wants_response(&self.shared.policy);
        let rules = stage::wanted(&self.shared.policy, &self.ex);
        if !limits && !rules {
            return Action::Continue;
        }
        // One read: the whole map when the rules need it (`:status` is in it), else `:status`.
        let headers = if rules {
            match host.map(MapKind::ResponseHeaders) {
                Ok(h) => Some(h),
                Err(e) => return reset(host, &format!("response headers unreadable: {e:?}")),
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
            self.limits_and_lockout(host, status);
        }
        match headers {
            Some(h) => self.response_head(host, status, &h, end_of_stream),
            None => Action::Continue,
        }
    }

    /// Rate-limit response headers and upstream-failure lockout counts.
    fn limits_and_lockout(&mut self, host: &dyn Host, status: u16) {
        let shared = Rc::clone(&self.shared);
        let add = with_env(host, &shared, |env| {
            self.ex.on_response(&shared.policy, &self.facts, status, env)
        });
        for (k, v) in &add {
            let _ = host.add_header(MapKind::ResponseHeaders, k, v.as_bytes());
        }
        self.emit(host);
    }

    /// The response head: edits, masking, and whether the body is read.
    fn response_head(
        &mut self,
        host: &dyn Host,
        status: u16,
        headers: &HeaderPairs,
        end_of_stream: bool,
    ) -> Action {
        let shared = Rc::clone(&self.shared);
        let site = stage::site(&shared.policy, &self.ex, &self.facts, self.response.preflight);
        let out = response::on_head(&site, status, headers, end_of_stream);
        self.record_response(host, &out.events);
        match out.plan {
            HeadPlan::Pass => {
                apply(host, &out.edits);
                Action::Continue
            }
            HeadPlan::ReadBody(read) => {
                apply(host, &out.edits);
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
                send(host, &reply);
                Action::Pause
            }
        }
    }

    /// A response body chunk; `body_size` is everything buffered so far while held.
    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let Some(read) = &self.response.read else {
            return Action::Continue;
        };
        if u64::try_from(body_size).map_or(true, |n| n > read.limit) {
            let shared = Rc::clone(&self.shared);
            let site = stage::site(&shared.policy, &self.ex, &self.facts, self.response.preflight);
            let (reply, event) = response::over_limit(&site, read);
            self.response.read = None;
            self.record_response(host, &[event]);
            return match reply {
                Some(r) => {
                    send(host, &r);
                    Action::Pause
                }
                None => Action::Continue,
            };
        }
        if end_of_stream {
            self.response_body_done(host)
        } else {
            Action::Pause
        }
    }

    /// Trailers end a body that is being read (HTTP/2 answers with trailers).
    pub fn on_response_trailers(&mut self, host: &dyn Host) -> Action {
        if self.response.read.is_some() {
            return self.response_body_done(host);
        }
        Action::Continue
    }

    fn response_body_done(&mut self, host: &dyn Host) -> Action {
        let Some(read) = self.response.read.take() else {
            return Action::Continue;
        };
        // One byte more than the limit, so an over-limit body is never judged by its prefix.
        let max = usize::try_from(read.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let body = match host.buffer(BufferKind::ResponseBody, 0, max) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => return reset(host, &format!("response body unreadable: {e:?}")),
        };
        let shared = Rc::clone(&self.shared);
        let site = stage::site(&shared.policy, &self.ex, &self.facts, self.response.preflight);
        let out = response::on_body(&site, &read, &body);
        self.record_response(host, &out.events);
        match out.plan {
            BodyPlan::Unchanged => Action::Continue,
            BodyPlan::Rewrite(new) => {
                if host
                    .set_buffer(BufferKind::ResponseBody, 0, body.len(), &new)
                    .is_err()
                {
                    return reset(host, "could not rewrite response");
                }
                if read.hold {
                    let len = new.len().to_string();
                    let _ = host.set_header(
                        MapKind::ResponseHeaders,
                        "content-length",
                        len.as_bytes(),
                    );
                }
                Action::Continue
            }
            BodyPlan::Replace(reply) => {
                // Headers held: the client gets this 502. Already sent: Envoy resets the stream.
                send(host, &reply);
                Action::Pause
            }
        }
    }

    fn record_response(&mut self, host: &dyn Host, events: &[ResponseEvent]) {
        if events.is_empty() {
            return;
        }
        let shared = Rc::clone(&self.shared);
        let route = self.ex.route_name(&shared.policy);
        let template = self.ex.template().to_string();
        self.record(host, events, route, &template, "response");
    }

    fn record(
        &self,
        host: &dyn Host,
        events: &[ResponseEvent],
        route: &str,
        template: &str,
        phase: &'static str,
    ) {
        let (policy, counters) = (&self.shared.policy, &self.shared.counters);
        let now = if events.iter().any(|e| audit::response_wanted(policy, e)) {
            host.now_ms().unwrap_or(0)
        } else {
            0
        };
        for e in events {
            match e.finding {
                Finding::Denied(r) => {
                    let d = if e.report {
                        Decision::Report
                    } else {
                        Decision::Deny
                    };
                    counters.reason(host, r, d);
                }
                Finding::Changed(c) => counters.change(host, c, e.report),
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
                host.log(Level::Info, &line);
            }
        }
    }
}

/// The status of a response head, from its `:status`.
fn status_of(headers: &HeaderPairs) -> Option<u16> {
    headers
        .iter()
        .find(|(k, _)| k.as_slice() == b":status")
        .and_then(|(_, v)| parse_status(v))
}
