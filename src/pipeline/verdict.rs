//! What the engine tells the adapter: a [`Verdict`] per phase, the [`Event`]s to log and count,
//! and the [`HeaderOp`]s to apply when the request goes on. What a stage tells the engine: a
//! [`Step`].

use crate::error::{Denial, Reason};

/// What a single check concluded.
#[derive(Debug)]
pub enum Step {
    /// Passed; go to the next check.
    Next,
    /// Failed.
    Deny(Denial),
    /// Cannot decide yet (e.g. keys being fetched): the engine is resumed later and runs this
    /// check again.
    Wait,
}

impl From<Result<(), Denial>> for Step {
    fn from(r: Result<(), Denial>) -> Self {
        match r {
            Ok(()) => Step::Next,
            Err(d) => Step::Deny(d),
        }
    }
}

/// What the adapter must do with the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through after applying the header changes.
    Allow,
    /// Refuse it with this denial (see [`crate::error::reply_to`]).
    Deny(Denial),
    /// Apply the header changes and let the headers go on, buffer the whole body, then run the
    /// body checks.
    NeedBody,
    /// Hold the request; resume when the awaited dependency changes.
    Wait,
}

/// The decision recorded for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied (enforced).
    Deny,
    /// Would have been denied; passed because of report mode.
    Report,
    /// A key was locked out after repeated authentication failures (audit only).
    Lock,
}

impl Decision {
    /// Lower-case name used in audit lines and metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Report => "report",
            Decision::Lock => "lock",
        }
    }
}

/// An audit-worthy outcome: a denial, a report-mode would-be denial, or a final allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub decision: Decision,
    /// Why (absent for allows).
    pub reason: Option<Reason>,
    /// Operator detail for the audit log.
    pub log_detail: Option<String>,
}

/// A change to the request headers, applied by the adapter when the request goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Replace (or add) a header.
    Set(String, String),
    /// Remove every copy of a header.
    Remove(String),
}

/// What JWT authentication concluded for a request, for per-provider counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthnMetric {
    /// Verified with a signature check.
    Verified,
    /// Answered by the verified-token cache.
    CacheHit,
    /// Refused for this reason.
    Denied(Reason),
}

/// What the host does with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on.
    Continue,
    /// Stop here (held, or answered locally).
    Pause,
}
