//! Per-request state the stages share: who the caller is, host values read once, the body, and
//! what the request takes with it if it goes on. Kept small: each group is filled by the stages
//! that need it, and most requests leave most of it empty.

use crate::authn::config::ProviderId;
use crate::authn::verify::VerifiedToken;
use crate::error::Denial;
use crate::identity::PeerCache;
use crate::pipeline::verdict::{AuthnMetric, HeaderOp};
use crate::ratelimit::lockout::FailureRecord;
use crate::ratelimit::{ClientAddress, Outcome};
use crate::routing::Params;
use crate::validate::fields::BodyFields;
use crate::validate::BodyNeed;
use std::sync::Arc;

/// Who the caller is, as far as the stages have established it.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// Verified SPIFFE ID of the mTLS peer.
    pub peer: Option<String>,
    /// `iss` of the verified token.
    pub issuer: Option<String>,
    /// `sub` of the verified token.
    pub subject: Option<String>,
    /// The verified token.
    pub token: Option<Arc<VerifiedToken>>,
}

impl Principal {
    /// Claims of the verified token.
    pub fn claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.token.as_ref().map(|t| &t.claims)
    }
}

/// Host values a request reads at most once, whichever stage asks first.
#[derive(Debug, Default)]
pub struct Lookups {
    /// The mTLS peer.
    pub peer: PeerCache,
    /// The client address.
    pub client: ClientAddress,
}

/// The request body as the checks see it.
#[derive(Debug, Default)]
pub struct BodyState {
    /// What the request checks need of the body, once the headers are checked.
    pub need: Option<BodyNeed>,
    /// The body's fields for owner and lockout checks, read once.
    pub fields: Option<BodyFields>,
    /// The body to send upstream instead of the received one (mass-assignment strip).
    pub rewrite: Option<Vec<u8>>,
}

/// What the stages hand back besides their step: header changes, response headers, and what the
/// engine turns into events and counters.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Header changes to apply if the request goes on.
    pub header_ops: Vec<HeaderOp>,
    /// Headers to add to the response if the request goes on (rate-limit headers).
    pub response_headers: Vec<(String, String)>,
    /// Would-be denials of checks that have their own report mode (rate limits, lockout).
    pub reports: Vec<Denial>,
    /// Locks that failure counting set, for the audit log.
    pub locks: Vec<FailureRecord>,
    /// Per-limit outcomes for metrics.
    pub limit_outcomes: Vec<(usize, Outcome)>,
    /// JWT outcome, for per-provider counters.
    pub authn: Option<(Option<ProviderId>, AuthnMetric)>,
}

/// Per-request state the stages read and fill in.
#[derive(Debug, Default)]
pub struct State {
    /// Path parameters of the matched template.
    pub params: Params,
    /// Raw query string.
    pub query: String,
    /// Who the caller is so far.
    pub principal: Principal,
    /// Host values read once.
    pub lookups: Lookups,
    /// The body.
    pub body: BodyState,
    /// What goes back to the engine.
    pub out: Outputs,
    /// When the request started waiting for keys.
    pub wait_started_ms: Option<u64>,
    /// This request was already counted as a lockout failure.
    pub failure_counted: bool,
}
