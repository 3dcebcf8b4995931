//! The body step: checks and edits a complete response body as [`super::on_head`] asked
//! (fields stripped per caller, `body_schema`, size and array limits), and the refusal when a
//! body outgrows its limit while it is read. Never reads headers: the head step decided.

use super::{
    refused, strip, BodyRead, Change, Finding, OnMismatch, ResponseEvent, ResponseRules, Site,
};
use crate::error::{Denial, Reason, Reply};
use crate::validate::json::{self, JsonError, JsonLimits, Limit};

/// What to do with a complete body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPlan {
    /// Send it as it is.
    Unchanged,
    /// Send this instead.
    Rewrite(Vec<u8>),
    /// Refuse the response with this reply (a 502; if the headers already left, Envoy resets
    /// the stream instead).
    Replace(Reply),
}

/// [`on_body`]'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyOutcome {
    /// Plan.
    pub plan: BodyPlan,
    /// What to log and count.
    pub events: Vec<ResponseEvent>,
}

fn json_limits(rules: &ResponseRules) -> JsonLimits {
    JsonLimits {
        max_depth: json::MAX_DEPTH_CEILING,
        max_keys: u32::MAX,
        max_array_len: rules.max_array_len.unwrap_or(u32::MAX),
        max_string_len: u32::MAX,
        max_total_bytes: rules.max_body_bytes,
    }
}

fn json_reason(e: &JsonError) -> Reason {
    match e {
        JsonError::Limit(Limit::ArrayLen) => Reason::ResponseArrayTooLong,
        JsonError::Limit(Limit::TotalBytes) => Reason::ResponseTooLarge,
        _ => Reason::ResponseUnreadable,
    }
}

/// Checks and edits a complete body, as [`super::on_head`] asked.
pub fn on_body(site: &Site<'_>, read: &BodyRead, body: &[u8]) -> BodyOutcome {
    let mut events = Vec::new();
    let report = site.report();
    let Some(rules) = site.rules() else {
        return BodyOutcome {
            plan: BodyPlan::Unchanged,
            events,
        };
    };
    let deny = |events: &mut Vec<ResponseEvent>, denial: Denial, per_check_report: bool| {
        let report = report || per_check_report;
        events.push(ResponseEvent {
            finding: Finding::Denied(denial.reason),
            report,
            status: if report {
                read.status
            } else {
                denial.reason.status()
            },
            detail: denial.log_detail.clone(),
        });
        (!report).then(|| refused(site, denial))
    };
    let mut current: Option<Vec<u8>> = None;
    if read.schema || rules.max_array_len.is_some() {
        match json::parse(body, &json_limits(rules)) {
            Err(e) => {
                let d = Denial::new(json_reason(&e)).with_log_detail(e.describe());
                if let Some(r) = deny(&mut events, d, false) {
                    return replace(r, events);
                }
            }
            Ok(doc) => {
                let schema = rules.schema.as_ref().filter(|_| read.schema);
                if let Some(Err(v)) = schema.map(|s| s.check(&doc)) {
                    let detail = v.detail("response");
                    let stripped =
                        match rules.on_mismatch {
                            OnMismatch::Strip => schema
                                .and_then(|s| s.unknown_members(&doc))
                                .and_then(|paths| {
                                    json::remove_members(body, &paths)
                                        .ok()
                                        .map(|b| (b, paths.len()))
                                }),
                            _ => None,
                        };
                    match stripped {
                        Some((b, n)) => {
                            events.push(ResponseEvent {
                                finding: Finding::Changed(Change::SchemaStripped),
                                report,
                                status: read.status,
                                detail: Some(format!("{n} members the schema does not allow")),
                            });
                            if !report {
                                current = Some(b);
                            }
                        }
                        None => {
                            let d = Denial::new(Reason::ResponseSchemaViolation)
                                .with_log_detail(detail);
                            let per_check = rules.on_mismatch == OnMismatch::Report;
                            if let Some(r) = deny(&mut events, d, per_check) {
                                return replace(r, events);
                            }
                        }
                    }
                }
            }
        }
    }
    if !read.strip.is_empty() {
        let input = current.as_deref().unwrap_or(body);
        match strip::strip(input, &rules.strip, &read.strip) {
            Err(e) => {
                let d = Denial::new(Reason::ResponseUnreadable).with_log_detail(e.describe());
                if let Some(r) = deny(&mut events, d, false) {
                    return replace(r, events);
                }
            }
            Ok(removal) if removal.removed > 0 => {
                events.push(ResponseEvent {
                    finding: Finding::Changed(Change::FieldsStripped),
                    report,
                    status: read.status,
                    detail: Some(format!("{} fields", removal.removed)),
                });
                if !report {
                    current = Some(removal.body);
                }
            }
            Ok(_) => {}
        }
    }
    BodyOutcome {
        plan: current.map_or(BodyPlan::Unchanged, BodyPlan::Rewrite),
        events,
    }
}

fn replace(reply: Reply, events: Vec<ResponseEvent>) -> BodyOutcome {
    BodyOutcome {
        plan: BodyPlan::Replace(reply),
        events,
    }
}

/// The body grew past the route's limit while it was read. Enforced: the refusal reply.
pub fn over_limit(site: &Site<'_>, read: &BodyRead) -> (Option<Reply>, ResponseEvent) {
    let report = site.report();
    let denial = Denial::new(Reason::ResponseTooLarge)
        .with_log_detail(format!("body above max_body_bytes {}", read.limit));
    let event = ResponseEvent {
        finding: Finding::Denied(Reason::ResponseTooLarge),
        report,
        status: if report {
            read.status
        } else {
            Reason::ResponseTooLarge.status()
        },
        detail: denial.log_detail.clone(),
    };
    ((!report).then(|| refused(site, denial)), event)
}
