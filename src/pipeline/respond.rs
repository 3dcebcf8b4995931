//! The response side of a stream's flow: the CORS preflight answer (before any request check),
//! rate-limit response headers and upstream-failure lockout counts, then response protection
//! (head edits, holding and checking the body). What is decided comes from
//! [`crate::stages::cors`], [`crate::stages::response`] and [`crate::response`]; this file reads
//! and writes host state through [`Host`] only.

use crate::audit;
use crate::error::Reply;
use crate::host::{BufferKind, HeaderPairs, Host, Level, MapKind};
use crate::pipeline::engine::Exchange;
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::runtime::Shared;
use crate::pipeline::verdict::{Action, Decision};
use crate::response::body::{self, BodyPlan};
use crate::response::{self, BodyRead, Finding, HeadPlan, HeaderEdit, ResponseEvent};
use crate::stages::{cors, response as stage};

/// Where the response side of a stream is.
#[derive(Debug, Default)]
pub struct Respond {
    /// meshguard answered this request as a CORS preflight.
    preflight: bool,
    /// The body being read for checks.
    read: Option<BodyRead>,
}

/// What the response side reads of the stream.
pub struct Exchanged<'a> {
    /// The configuration.
    pub shared: &'a Shared,
    /// The request's decision so far.
    pub ex: &'a Exchange,
    /// The request.
    pub facts: &'a RequestFacts,
}

/// An HTTP status from `:status` bytes (three ASCII digits).
pub fn parse_status(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes).ok()?.parse::<u16>().ok()
}

/// The status of a response head, from its `:status`.
pub fn status_of(headers: &HeaderPairs) -> Option<u16> {
    headers
        .iter()
        .find(|(k, _)| k.as_slice() == b":status")
        .and_then(|(_, v)| parse_status(v))
}

/// Sends a local reply (a failure is logged: there is nothing else to do).
pub fn send(host: &dyn Host, reply: &Reply) {
    if host.send_reply(reply).is_err() {
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

impl Respond {
    /// Answers a CORS preflight before any request check. True when answered (the request
    /// phase then stops here).
    pub fn preflight(&mut self, host: &dyn Host, shared: &Shared, facts: &RequestFacts) -> bool {
        let Some((out, route, template)) = cors::answer(&shared.policy, facts) else {
            return false;
        };
        record(
            host,
            shared,
            facts,
            None,
            &[out.event],
            route,
            template,
            "preflight",
        );
        match out.reply {
            Some(reply) => {
                self.preflight = true;
                send(host, &reply);
                true
            }
            None => false,
        }
    }

    /// Whether response protection has work on this exchange (no host call).
    pub fn wanted(&self, x: &Exchanged<'_>) -> bool {
        stage::wanted(&x.shared.policy, x.ex)
    }

    /// The response head: edits, masking, and whether the body is read.
    pub fn head(
        &mut self,
        host: &dyn Host,
        x: &Exchanged<'_>,
        status: u16,
        headers: &HeaderPairs,
        end_of_stream: bool,
    ) -> Action {
        let site = stage::site(&x.shared.policy, x.ex, x.facts, self.preflight);
        let out = response::on_head(&site, status, headers, end_of_stream);
        record_response(host, x, &out.events);
        match out.plan {
            HeadPlan::Pass => {
                apply(host, &out.edits);
                Action::Continue
            }
            HeadPlan::ReadBody(read) => {
                apply(host, &out.edits);
                let hold = read.hold;
                self.read = Some(read);
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
    pub fn body(
        &mut self,
        host: &dyn Host,
        x: &Exchanged<'_>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let Some(read) = &self.read else {
            return Action::Continue;
        };
        if u64::try_from(body_size).map_or(true, |n| n > read.limit) {
            let site = stage::site(&x.shared.policy, x.ex, x.facts, self.preflight);
            let (reply, event) = body::over_limit(&site, read);
            self.read = None;
            record_response(host, x, &[event]);
            return match reply {
                Some(r) => {
                    send(host, &r);
                    Action::Pause
                }
                None => Action::Continue,
            };
        }
        if end_of_stream {
            self.body_done(host, x)
        } else {
            Action::Pause
        }
    }

    /// Trailers end a body that is being read (HTTP/2 answers with trailers).
    pub fn trailers(&mut self, host: &dyn Host, x: &Exchanged<'_>) -> Action {
        if self.read.is_some() {
            return self.body_done(host, x);
        }
        Action::Continue
    }

    fn body_done(&mut self, host: &dyn Host, x: &Exchanged<'_>) -> Action {
        let Some(read) = self.read.take() else {
            return Action::Continue;
        };
        // One byte more than the limit, so an over-limit body is never judged by its prefix.
        let max = usize::try_from(read.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let body = match host.buffer(BufferKind::ResponseBody, max) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => return reset(host, &format!("response body unreadable: {e:?}")),
        };
        let site = stage::site(&x.shared.policy, x.ex, x.facts, self.preflight);
        let out = body::on_body(&site, &read, &body);
        record_response(host, x, &out.events);
        match out.plan {
            BodyPlan::Unchanged => Action::Continue,
            BodyPlan::Rewrite(new) => {
                if host
                    .replace_buffer(BufferKind::ResponseBody, body.len(), &new)
                    .is_err()
                {
                    return reset(host, "could not rewrite response");
                }
                if read.hold {
                    let len = new.len().to_string();
                    let _ =
                        host.set_header(MapKind::ResponseHeaders, "content-length", len.as_bytes());
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
}

fn record_response(host: &dyn Host, x: &Exchanged<'_>, events: &[ResponseEvent]) {
    if events.is_empty() {
        return;
    }
    let route = x.ex.route_name(&x.shared.policy);
    let template = x.ex.template();
    record(
        host,
        x.shared,
        x.facts,
        Some(x.ex),
        events,
        route,
        template,
        "response",
    );
}

/// Audit lines and counters for response events.
#[allow(clippy::too_many_arguments)]
fn record(
    host: &dyn Host,
    shared: &Shared,
    facts: &RequestFacts,
    ex: Option<&Exchange>,
    events: &[ResponseEvent],
    route: &str,
    template: &str,
    phase: &'static str,
) {
    let (policy, counters) = (&shared.policy, &shared.counters);
    let now = if events.iter().any(|e| audit::response_wanted(policy, e)) {
        host.now_ms().unwrap_or(0)
    } else {
        0
    };
    let nobody = crate::pipeline::state::Principal::default();
    let principal = ex.map_or(&nobody, Exchange::principal);
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
            let line = audit::response_line(route, template, facts, principal, e, phase, now);
            host.log(Level::Info, &line);
        }
    }
}
