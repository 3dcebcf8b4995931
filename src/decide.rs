//! The decision pipeline: request facts in, verdict out. Pure: host access goes through [`Env`].
//!
//! A request is matched to a route, then the route's checks run in a fixed order, cheapest
//! first ([`HEADER_STAGES`], then [`BODY_STAGES`] once the body is buffered). A check returns a
//! [`Step`]; a denial on a route in report mode is recorded and the pipeline goes on. A stage
//! that must wait (keys not fetched yet) returns [`Step::Wait`]; the adapter calls
//! [`Exchange::resume`] later and the pipeline restarts at that stage. Every denial and would-be
//! denial becomes an [`Event`] that the adapter turns into an audit line and counters.

use crate::authn::authenticate::{authenticate, AuthnContext, AuthnOutcome, RequestView};
use crate::authn::cache::TokenCache;
use crate::authn::config::ProviderId;
use crate::authn::extract::{strip_cookies, strip_query_params};
use crate::authn::keys::{register_worker, FetchRequest, KeyManager};
use crate::authn::verify::VerifiedToken;
use crate::error::{Denial, Reason};
use crate::host::{Clock, SharedStore};
use crate::identity::authz::{check_binding, check_owner, check_peers, OwnerInputs};
use crate::identity::{peer_identity, CertDigest, IdentitySource, PeerFacts, PeerIdentity};
use crate::policy::{Lookup, Mode, Policy, Route, Unmatched, UNMATCHED_ROUTE};
use crate::ratelimit::{KeyFacts, Outcome};
use crate::routing::{normalize, query, Params};
use crate::validate::{BodyNeed, BodyOutcome};
use std::cell::RefCell;
use std::sync::Arc;

/// The request as the adapter snapshots it in the headers phase.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `:method`.
    pub method: String,
    /// Raw `:path`, query included.
    pub path: String,
    /// `:authority` (or `host`).
    pub authority: String,
    /// Request headers whose name and value are text (UTF-8), names lower-case as Envoy gives
    /// them, in order. A header whose value is not UTF-8 is in `opaque` instead.
    pub headers: Vec<(String, String)>,
    /// Request headers whose name or value is not UTF-8 (RFC 9110 obs-text such as a Latin-1
    /// file name), as bytes, in order. They go upstream untouched; a check that reads one of
    /// them refuses the request ([`crate::inbound::check_route_headers`]).
    pub opaque: Vec<(Vec<u8>, Vec<u8>)>,
    /// The headers end the request (no body follows).
    pub end_of_stream: bool,
}

/// A header exists but its value is not text (UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotText;

impl RequestFacts {
    /// The first text value of a header (name lower-case). `None` also when the header's only
    /// values are not UTF-8: use [`Self::header_text`] where absence matters.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The first value of a header as text; `Err(NotText)` when any value of it is not UTF-8,
    /// so that a value that is not text never reads as an absent header.
    pub fn header_text(&self, name: &str) -> Result<Option<&str>, NotText> {
        if self
            .opaque
            .iter()
            .any(|(k, _)| k.as_slice() == name.as_bytes())
        {
            return Err(NotText);
        }
        Ok(self.header(name))
    }
    /// The first value of a header as bytes, text or not (text values first).
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.header(name).map(str::as_bytes).or_else(|| {
            self.opaque
                .iter()
                .find(|(k, _)| k.as_slice() == name.as_bytes())
                .map(|(_, v)| v.as_slice())
        })
    }
    /// True for a gRPC request as Envoy decides it (`content-type` is `application/grpc` or
    /// starts with `application/grpc+`): Envoy then turns a local reply into a gRPC status.
    pub fn is_grpc(&self) -> bool {
        self.header("content-type")
            .is_some_and(|ct| ct == "application/grpc" || ct.starts_with("application/grpc+"))
    }
    /// `x-request-id`, set by Envoy's connection manager.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-request-id")
    }
}

/// Host properties (Envoy attributes such as `connection.mtls`), read lazily by the stages that
/// need them.
pub trait Properties {
    /// The raw bytes of a property path, `None` if absent.
    fn get(&self, path: &[&str]) -> Option<Vec<u8>>;
}

/// Per-worker mutable state the stages use: JWKS key sets and the verified-token cache. One per
/// VM (Envoy worker), shared by its streams; built with the policy at configure time.
pub struct Runtime {
    /// Which key set is current per provider, and when to fetch.
    pub keys: KeyManager,
    /// Verified tokens of this worker.
    pub cache: TokenCache,
    /// Fetches the stages asked for (unknown `kid`), for the adapter to dispatch.
    pub fetches: Vec<FetchRequest>,
}

impl Runtime {
    /// The runtime for a policy; registers this worker in the shared store.
    pub fn new(policy: &Policy, store: &dyn SharedStore) -> Self {
        Runtime {
            keys: KeyManager::new(&policy.providers, register_worker(store)),
            cache: TokenCache::new(policy.jwt_cache_entries),
            fetches: Vec::new(),
        }
    }
}

/// Everything a stage may ask the host for.
pub struct Env<'a> {
    /// Host time.
    pub clock: &'a dyn Clock,
    /// Process-wide shared data.
    pub store: &'a dyn SharedStore,
    /// Envoy attributes.
    pub props: &'a dyn Properties,
    /// This worker's mutable state.
    pub runtime: &'a RefCell<Runtime>,
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

/// A change to the request headers, applied by the adapter when the request goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Replace (or add) a header.
    Set(String, String),
    /// Remove every copy of a header.
    Remove(String),
}

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

/// What a single check concluded.
#[derive(Debug)]
pub enum Step {
    /// Passed; go to the next check.
    Next,
    /// Failed.
    Deny(Denial),
    /// Cannot decide yet (e.g. keys being fetched): call [`Exchange::resume`] later.
    Wait,
}

/// What the adapter must do with the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through after applying [`Exchange::take_header_ops`].
    Allow,
    /// Refuse it with this denial (see [`crate::error::reply`]).
    Deny(Denial),
    /// Apply [`Exchange::take_header_ops`] and let the headers go on, buffer the whole body,
    /// then call [`Exchange::on_body`].
    NeedBody,
    /// Hold the request; call [`Exchange::resume`] when the awaited dependency changes.
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

/// Checks in the headers phase, in the order they run (cheapest first).
pub const HEADER_STAGES: &[Stage] = &[
    Stage::Peers,
    Stage::Lockout,
    Stage::Jwt,
    Stage::Binding,
    Stage::Owner,
    Stage::RateLimit,
    Stage::Request,
];

/// Checks that need the buffered body, in the order they run.
pub const BODY_STAGES: &[Stage] = &[Stage::RequestBody, Stage::LockoutBody, Stage::OwnerBody];

/// One check of the pipeline. Feature modules add variants and an arm in [`run_stage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `routes[].peers`: mTLS and SPIFFE ID allow/deny.
    Peers,
    /// `routes[].jwt`: a valid token with the required scopes and claims.
    Jwt,
    /// `routes[].binding`: the token belongs to the mTLS peer.
    Binding,
    /// `routes[].owner` from a path or query parameter.
    Owner,
    /// `routes[].owner` from a top-level body field.
    OwnerBody,
    /// `routes[].lockout` on keys known from the headers.
    Lockout,
    /// `routes[].lockout` with a `body:` key, once the body is parsed.
    LockoutBody,
    /// `routes[].rate_limits`.
    RateLimit,
    /// `routes[].request` checks decidable from the headers (size, type, headers, params, query).
    Request,
    /// `routes[].request` body checks (JSON limits, schema, mass assignment).
    RequestBody,
}

/// Runs one check against the matched route.
fn run_stage(stage: Stage, cx: &mut StageCx<'_>) -> Step {
    let result = match stage {
        Stage::Jwt => match &cx.route.jwt {
            Some(req) => return jwt_stage(req, cx),
            None => Ok(()),
        },
        Stage::Peers => match &cx.route.peers {
            Some(rule) => {
                let identity = cx.peer.identity(cx.env.props, rule.source()).clone();
                if let Some(id) = identity.id() {
                    cx.principal.peer = Some(id.as_str().to_string());
                }
                check_peers(rule, &identity)
            }
            None => Ok(()),
        },
        Stage::Binding => match &cx.route.binding {
            Some(rule) => {
                let source = route_identity_source(cx.route);
                let identity = cx.peer.identity(cx.env.props, source).clone();
                let digest = if rule.needs_cert_digest() {
                    cx.peer.digest(cx.env.props)
                } else {
                    None
                };
                check_binding(rule, &identity, digest.as_ref(), cx.principal.claims())
            }
            None => Ok(()),
        },
        Stage::Owner | Stage::OwnerBody => match &cx.route.owner {
            Some(rule) if rule.needs_body() == (stage == Stage::OwnerBody) => owner_check(rule, cx),
            _ => Ok(()),
        },
        Stage::Lockout | Stage::LockoutBody => match &cx.route.lockout {
            Some(rule) if rule.needs_body() == (stage == Stage::LockoutBody) => {
                let ip = cx.client_ip();
                let body = cx.body_object();
                let facts = cx.key_facts(ip.as_deref(), body.as_ref());
                let d = rule.check(&facts, cx.env.clock, cx.env.store);
                if d.report_locked {
                    cx.reports
                        .push(Denial::new(Reason::LockedOut).with_log_detail(format!(
                            "lockout (report) by key {}",
                            d.locked_keys.join(",")
                        )));
                }
                d.denial.map_or(Ok(()), Err)
            }
            _ => Ok(()),
        },
        Stage::Request => match &cx.route.request {
            Some(rules) => {
                let head = crate::validate::RequestHead {
                    headers: &cx.facts.headers[..],
                    query: (!cx.query.is_empty()).then_some(cx.query),
                    path_params: &cx.params[..],
                    end_of_stream: cx.facts.end_of_stream,
                };
                rules
                    .check_head(&head)
                    .map(|need| *cx.body_need = Some(need))
            }
            None => Ok(()),
        },
        Stage::RequestBody => match (&cx.route.request, cx.body) {
            (Some(rules), Some(body))
                if cx
                    .body_need
                    .is_some_and(|n| matches!(n, BodyNeed::Buffer { .. })) =>
            {
                let roles = roles(rules.role_claim(), cx.principal.claims());
                let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                match rules.check_body(body, &roles) {
                    Ok(BodyOutcome::Unchanged) => Ok(()),
                    Ok(BodyOutcome::Rewritten(bytes)) => {
                        *cx.body_rewrite = Some(bytes);
                        Ok(())
                    }
                    Err(d) => Err(d),
                }
            }
            _ => Ok(()),
        },
        Stage::RateLimit => {
            if cx.route.rate_limits.is_empty() {
                Ok(())
            } else {
                // The address is a host lookup (about 10 us under V8): skip it when every key
                // part is present and none is `client_ip`.
                let needs_ip = {
                    let facts = cx.key_facts(None, None);
                    cx.route
                        .rate_limits
                        .limits()
                        .iter()
                        .any(|l| l.key().needs_client_ip(&facts))
                };
                let ip = if needs_ip { cx.client_ip() } else { None };
                let facts = cx.key_facts(ip.as_deref(), None);
                let d = cx
                    .route
                    .rate_limits
                    .check(&facts, cx.env.clock, cx.env.store);
                for i in d.report_hits() {
                    let name = cx
                        .route
                        .rate_limits
                        .limits()
                        .get(i)
                        .map_or("", |l| l.name());
                    cx.reports.push(
                        Denial::new(Reason::RateLimited)
                            .with_log_detail(format!("rate limit {name} (report)")),
                    );
                }
                cx.limit_outcomes
                    .extend(d.outcomes.iter().map(|o| (o.limit, o.outcome)));
                cx.response_headers.extend(d.response_headers);
                d.denial.map_or(Ok(()), Err)
            }
        }
    };
    match result {
        Ok(()) => Step::Next,
        Err(denial) => Step::Deny(denial),
    }
}

/// Longest a request waits for keys when its provider has no remote JWKS timeout to go by.
const DEFAULT_KEY_WAIT_MS: u64 = 1500;

fn jwt_stage(req: &crate::authn::config::JwtRequirement, cx: &mut StageCx<'_>) -> Step {
    let Ok(mut rt) = cx.env.runtime.try_borrow_mut() else {
        return Step::Deny(Denial::new(Reason::Internal).with_log_detail("runtime busy"));
    };
    let rt = &mut *rt;
    let now_ms = cx.env.clock.now_ms();
    let mut actx = AuthnContext {
        providers: &cx.policy.providers,
        keys: &mut rt.keys,
        cache: &mut rt.cache,
        store: cx.env.store,
        now_ms,
    };
    let view = RequestView {
        headers: &cx.facts.headers,
        query: cx.query,
    };
    match authenticate(req, view, &mut actx) {
        AuthnOutcome::Authenticated(a) => {
            *cx.authn = Some((
                Some(a.provider),
                if a.cached {
                    AuthnMetric::CacheHit
                } else {
                    AuthnMetric::Verified
                },
            ));
            for h in &a.edits.remove_headers {
                cx.header_ops.push(HeaderOp::Remove(h.clone()));
            }
            if !a.edits.strip_params.is_empty() {
                let names: Vec<&str> = a.edits.strip_params.iter().map(String::as_str).collect();
                let path = strip_query_params(&cx.facts.path, &names);
                cx.header_ops.push(HeaderOp::Set(":path".to_string(), path));
            }
            if !a.edits.strip_cookies.is_empty() {
                let names: Vec<&str> = a.edits.strip_cookies.iter().map(String::as_str).collect();
                let cookies: Vec<&str> = cx
                    .facts
                    .headers
                    .iter()
                    .filter(|(k, _)| k == "cookie")
                    .map(|(_, v)| v.as_str())
                    .collect();
                cx.header_ops.push(HeaderOp::Remove("cookie".to_string()));
                if let Some(kept) = strip_cookies(&cookies.join("; "), &names) {
                    cx.header_ops
                        .push(HeaderOp::Set("cookie".to_string(), kept));
                }
            }
            for (k, v) in &a.edits.set_headers {
                cx.header_ops.push(HeaderOp::Set(k.clone(), v.clone()));
            }
            cx.principal.issuer.clone_from(&a.token.iss);
            cx.principal.subject.clone_from(&a.token.sub);
            cx.principal.token = Some(a.token);
            Step::Next
        }
        AuthnOutcome::Anonymous => Step::Next,
        AuthnOutcome::Pause(p) => {
            if let Some(fetch) = p.fetch {
                rt.fetches.push(fetch);
            }
            let limit = cx
                .policy
                .providers
                .get(p.provider)
                .and_then(|pr| pr.remote())
                .map_or(DEFAULT_KEY_WAIT_MS, |r| {
                    r.timeout_ms
                        .saturating_add(crate::authn::keys::LEASE_GRACE_MS)
                });
            let started = *cx.wait_started_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(started) >= limit {
                *cx.authn = Some((Some(p.provider), AuthnMetric::Denied(p.deny_on_timeout)));
                return Step::Deny(
                    Denial::new(p.deny_on_timeout)
                        .with_log_detail("no usable key before the fetch timeout"),
                );
            }
            Step::Wait
        }
        AuthnOutcome::Denied(r) => {
            // A missing token names no provider; on a one-provider route it is that provider's,
            // so `meshguard.jwt.<provider>.jwt_missing` counts it.
            let provider = r.provider.or(match req.providers.as_slice() {
                [only] => Some(*only),
                _ => None,
            });
            *cx.authn = Some((provider, AuthnMetric::Denied(r.denial.reason)));
            // A valid token refused for its scopes or claims: the audit line names its iss and
            // sub. Only those: its claims are not given to later stages (report mode goes on).
            if let Some(token) = &r.verified {
                cx.principal.issuer.clone_from(&token.iss);
                cx.principal.subject.clone_from(&token.sub);
            }
            Step::Deny(r.denial)
        }
    }
}

/// The caller's roles: the role claim's value, a string or an array of strings.
fn roles(
    claim: Option<&str>,
    claims: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Vec<String> {
    let value = claim.and_then(|c| claims.and_then(|m| m.get(c)));
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn owner_check(
    rule: &crate::identity::authz::OwnerRule,
    cx: &mut StageCx<'_>,
) -> Result<(), Denial> {
    let query_pairs = query::pairs(cx.query).unwrap_or_default();
    let body: Option<serde_json::Value> = cx.body.and_then(|b| serde_json::from_slice(b).ok());
    let inputs = OwnerInputs {
        path_params: cx.params,
        query: &query_pairs,
        body: body.as_ref(),
    };
    check_owner(rule, &inputs, cx.principal.claims())
}

/// The identity source a route reads peers from (its `peers.source`, else the connection).
fn route_identity_source(route: &Route) -> IdentitySource {
    route
        .peers
        .as_ref()
        .map_or(IdentitySource::Connection, |p| p.source())
}

/// Property path of Istio's waypoint peer identity. Filter state set by other filters (an
/// `envoy.string` object under `io.istio.peer_principal`) is reached through Envoy's
/// `filter_state` attribute map; the bare path `["io.istio.peer_principal"]` only finds wasm
/// `CelState` objects stored under `wasm.io.istio.peer_principal` and returns nothing (both
/// checked against Envoy 1.40 with `set_filter_state`, tests/e2e/test_peers.py).
pub const ISTIO_PEER_PRINCIPAL: &[&str] = &["filter_state", "io.istio.peer_principal"];

/// The peer's identity and certificate digest, read from the host at most once per request.
#[derive(Debug, Default)]
pub struct PeerCache {
    identity: Option<(IdentitySource, PeerIdentity)>,
    digest: Option<Option<CertDigest>>,
}

impl PeerCache {
    /// The peer identity from `source`, reading host properties on first use.
    pub fn identity(&mut self, props: &dyn Properties, source: IdentitySource) -> &PeerIdentity {
        let stale = !matches!(&self.identity, Some((s, _)) if *s == source);
        if stale {
            let facts = match source {
                IdentitySource::Connection => PeerFacts {
                    mtls: props
                        .get(&["connection", "mtls"])
                        .and_then(|b| crate::identity::peer::mtls_from_property(&b)),
                    uri_san: props.get(&["connection", "uri_san_peer_certificate"]),
                    ..PeerFacts::default()
                },
                IdentitySource::IstioPeerPrincipal => PeerFacts {
                    principal_filter_state: props.get(ISTIO_PEER_PRINCIPAL),
                    ..PeerFacts::default()
                },
            };
            self.identity = Some((source, peer_identity(&facts, source)));
        }
        match &self.identity {
            Some((_, id)) => id,
            None => &PeerIdentity::NoMtls,
        }
    }

    /// The SHA-256 digest of the peer certificate, if the host has one.
    pub fn digest(&mut self, props: &dyn Properties) -> Option<CertDigest> {
        if self.digest.is_none() {
            let d = props
                .get(&["connection", "sha256_peer_certificate_digest"])
                .and_then(|raw| CertDigest::from_property(&raw));
            self.digest = Some(d);
        }
        self.digest.clone().flatten()
    }
}

/// What a stage sees: the route, the exchange so far, the request, and the host.
pub struct StageCx<'a> {
    /// The matched route.
    pub route: &'a Route,
    /// The request facts.
    pub facts: &'a RequestFacts,
    /// The buffered body (body stages only).
    pub body: Option<&'a [u8]>,
    /// Host access.
    pub env: &'a Env<'a>,
    /// Path parameters of the matched template.
    pub params: &'a Params,
    /// Raw query string.
    pub query: &'a str,
    /// Principal established so far (stages fill it in).
    pub principal: &'a mut Principal,
    /// Header changes to apply if the request goes on.
    pub header_ops: &'a mut Vec<HeaderOp>,
    /// The peer, read from the host on first use.
    pub peer: &'a mut PeerCache,
    /// The policy (for policy-wide settings such as `client_ip`).
    pub policy: &'a Policy,
    /// Client address, resolved on first use.
    pub client_ip: &'a mut Option<Option<String>>,
    /// Would-be denials of checks that have their own report mode (rate limits, lockout).
    pub reports: &'a mut Vec<Denial>,
    /// Per-limit outcomes for metrics.
    pub limit_outcomes: &'a mut Vec<(usize, Outcome)>,
    /// Headers to add to the response if the request goes on.
    pub response_headers: &'a mut Vec<(String, String)>,
    /// When the request started waiting for keys.
    pub wait_started_ms: &'a mut Option<u64>,
    /// JWT outcome, for per-provider counters.
    pub authn: &'a mut Option<(Option<ProviderId>, AuthnMetric)>,
    /// What the request checks need of the body, once the headers are checked.
    pub body_need: &'a mut Option<BodyNeed>,
    /// The body to send upstream instead of the received one (mass-assignment strip).
    pub body_rewrite: &'a mut Option<Vec<u8>>,
}

impl StageCx<'_> {
    /// The client address per the policy's `client_ip`, resolved once per request.
    pub fn client_ip(&mut self) -> Option<String> {
        resolve_client_ip(self.client_ip, self.policy, self.facts, self.env.props)
    }

    /// The body as a JSON object, when there is one.
    pub fn body_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match self.body.and_then(|b| serde_json::from_slice(b).ok()) {
            Some(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// Rate-limit and lockout key inputs for this request.
    pub fn key_facts<'k>(
        &'k self,
        ip: Option<&'k str>,
        body: Option<&'k serde_json::Map<String, serde_json::Value>>,
    ) -> KeyFacts<'k> {
        KeyFacts {
            client_ip: ip,
            route: self.route.name.as_str(),
            peer: self.principal.peer.as_deref(),
            headers: &self.facts.headers,
            claims: self.principal.claims(),
            body,
        }
    }
}

/// The client address per the policy's `client_ip`, resolved on first use and kept in `slot`, so
/// that every check and every failure count of one request uses the same address.
fn resolve_client_ip(
    slot: &mut Option<Option<String>>,
    policy: &Policy,
    facts: &RequestFacts,
    props: &dyn Properties,
) -> Option<String> {
    if slot.is_none() {
        let xff: Vec<&str> = facts
            .headers
            .iter()
            .filter(|(k, _)| k == "x-forwarded-for")
            .map(|(_, v)| v.as_str())
            .collect();
        let xff = (!xff.is_empty()).then(|| xff.join(","));
        // The connection address is a host lookup (several us under V8): only when the trusted
        // x-forwarded-for hop does not give the address (or the policy reads the connection).
        let resolved = policy.client_ip.resolve(None, xff.as_deref()).or_else(|| {
            let source = props
                .get(&["source", "address"])
                .and_then(|b| String::from_utf8(b).ok());
            policy.client_ip.resolve(source.as_deref(), xff.as_deref())
        });
        *slot = Some(resolved);
    }
    slot.clone().flatten()
}

/// Where the pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers(usize),
    Body(usize),
    Done,
}

/// Per-request pipeline state, owned by the adapter's stream context.
#[derive(Debug)]
pub struct Exchange {
    route: Option<usize>,
    mode: Mode,
    template: String,
    params: Params,
    query: String,
    principal: Principal,
    peer: PeerCache,
    client_ip: Option<Option<String>>,
    reports: Vec<Denial>,
    limit_outcomes: Vec<(usize, Outcome)>,
    response_headers: Vec<(String, String)>,
    body_object: Option<serde_json::Map<String, serde_json::Value>>,
    wait_started_ms: Option<u64>,
    authn: Option<(Option<ProviderId>, AuthnMetric)>,
    headers_final: bool,
    body_need: Option<BodyNeed>,
    body_rewrite: Option<Vec<u8>>,
    header_ops: Vec<HeaderOp>,
    /// Client headers impersonating an injected header (`x_user` for `x-user`): removed too.
    forged: Vec<String>,
    events: Vec<Event>,
    reported: bool,
    phase: Phase,
    final_decision: Option<Decision>,
    denial: Option<Denial>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self {
            route: None,
            mode: Mode::Enforce,
            template: String::new(),
            params: Vec::new(),
            query: String::new(),
            principal: Principal::default(),
            peer: PeerCache::default(),
            client_ip: None,
            reports: Vec::new(),
            limit_outcomes: Vec::new(),
            response_headers: Vec::new(),
            body_object: None,
            wait_started_ms: None,
            authn: None,
            headers_final: false,
            body_need: None,
            body_rewrite: None,
            header_ops: Vec::new(),
            forged: Vec::new(),
            events: Vec::new(),
            reported: false,
            phase: Phase::Headers(0),
            final_decision: None,
            denial: None,
        }
    }
}

impl Exchange {
    /// A fresh exchange.
    pub fn new() -> Self {
        Self::default()
    }

    /// Name of the matched route (`_unmatched` before or without a match).
    pub fn route_name<'p>(&self, policy: &'p Policy) -> &'p str {
        self.route
            .and_then(|i| policy.route(i))
            .map_or(UNMATCHED_ROUTE, |r| r.name.as_str())
    }

    /// Index of the matched route.
    pub fn route_index(&self) -> Option<usize> {
        self.route
    }

    /// The matched route's path form (template, exact path or prefix), for audit lines.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The principal established so far.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The final decision, once reached.
    pub fn final_decision(&self) -> Option<Decision> {
        self.final_decision
    }

    /// Drains the recorded events.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Drains the header changes to apply.
    pub fn take_header_ops(&mut self) -> Vec<HeaderOp> {
        std::mem::take(&mut self.header_ops)
    }

    /// Headers phase: match the route and run the header checks.
    pub fn on_headers(&mut self, policy: &Policy, facts: &RequestFacts, env: &Env<'_>) -> Verdict {
        self.forged = crate::inbound::forged_injected(policy, facts);
        if let Err(denial) = crate::inbound::check_request_line(facts) {
            self.mode = policy.mode;
            return self
                .fail(denial)
                .unwrap_or_else(|| self.finish(policy, env));
        }
        let normal = match normalize(&facts.path) {
            Ok(n) => n,
            Err(e) => {
                // Before routing there is no route mode: the global mode decides.
                self.mode = policy.mode;
                let denial = Denial::new(Reason::PathInvalid).with_detail(e.describe());
                return self
                    .fail(denial)
                    .unwrap_or_else(|| self.finish(policy, env));
            }
        };
        self.query = normal.query.clone();
        match policy.lookup(&facts.method, &facts.authority, &normal) {
            Lookup::Matched(i, params) => {
                self.route = Some(i);
                self.params = params;
                if let Some(route) = policy.route(i) {
                    self.mode = route.mode;
                    self.template = route.path.template().to_string();
                    if let Err(denial) = crate::inbound::check_route_headers(policy, route, facts) {
                        if let Some(v) = self.fail(denial) {
                            return v;
                        }
                    }
                }
                self.phase = Phase::Headers(0);
                self.run(policy, facts, None, env)
            }
            Lookup::MethodNotAllowed(allow) => {
                self.mode = policy.mode;
                if policy.unmatched == Unmatched::Allow {
                    return self.finish(policy, env);
                }
                let denial =
                    Denial::new(Reason::MethodNotAllowed).with_header("allow", allow.join(", "));
                self.fail(denial)
                    .unwrap_or_else(|| self.finish(policy, env))
            }
            Lookup::NotFound => {
                self.mode = policy.mode;
                if policy.unmatched == Unmatched::Allow {
                    return self.finish(policy, env);
                }
                self.fail(Denial::new(Reason::RouteNotFound))
                    .unwrap_or_else(|| self.finish(policy, env))
            }
        }
    }

    /// Body phase: run the body checks on the complete buffered body.
    pub fn on_body(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        body: &[u8],
        env: &Env<'_>,
    ) -> Verdict {
        if matches!(self.phase, Phase::Headers(_)) {
            self.phase = Phase::Body(0);
        }
        self.run(policy, facts, Some(body), env)
    }

    /// Re-runs the stage that returned [`Step::Wait`], and the rest.
    pub fn resume(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        body: Option<&[u8]>,
        env: &Env<'_>,
    ) -> Verdict {
        self.run(policy, facts, body, env)
    }

    fn run(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        body: Option<&[u8]>,
        env: &Env<'_>,
    ) -> Verdict {
        let Some(route) = self.route.and_then(|i| policy.route(i)) else {
            return self.finish(policy, env);
        };
        loop {
            let (stage, body_phase) = match self.phase {
                Phase::Headers(i) => match HEADER_STAGES.get(i) {
                    Some(s) => (*s, false),
                    None => {
                        if self.needs_body(route) && body.is_none() {
                            // The headers go upstream before the body arrives (Envoy cannot
                            // hold headers while a wasm filter reads the body), so every header
                            // change is decided now.
                            self.finalize_headers(policy, env);
                            self.phase = Phase::Body(0);
                            return Verdict::NeedBody;
                        }
                        self.phase = Phase::Body(0);
                        continue;
                    }
                },
                Phase::Body(i) => match BODY_STAGES.get(i) {
                    Some(s) => (*s, true),
                    None => return self.finish(policy, env),
                },
                Phase::Done => return self.finish(policy, env),
            };
            let mut cx = StageCx {
                route,
                facts,
                body: if body_phase { body } else { None },
                env,
                params: &self.params,
                query: &self.query,
                principal: &mut self.principal,
                header_ops: &mut self.header_ops,
                peer: &mut self.peer,
                policy,
                client_ip: &mut self.client_ip,
                reports: &mut self.reports,
                limit_outcomes: &mut self.limit_outcomes,
                response_headers: &mut self.response_headers,
                wait_started_ms: &mut self.wait_started_ms,
                authn: &mut self.authn,
                body_need: &mut self.body_need,
                body_rewrite: &mut self.body_rewrite,
            };
            // Kept for body-keyed lockout only (its failure counts read a body field); any
            // other route would parse the body a second time for nothing.
            let keyed_by_body = route.lockout.as_ref().is_some_and(|l| l.needs_body());
            if body_phase && keyed_by_body && self.body_object.is_none() {
                self.body_object = cx.body_object();
            }
            let step = run_stage(stage, &mut cx);
            for denial in std::mem::take(&mut self.reports) {
                self.events.push(Event {
                    decision: Decision::Report,
                    reason: Some(denial.reason),
                    log_detail: denial.log_detail,
                });
                self.reported = true;
            }
            match step {
                Step::Next => {}
                Step::Wait => return Verdict::Wait,
                Step::Deny(denial) => {
                    self.count_auth_failure(policy, route, facts, &denial, env);
                    if let Some(v) = self.fail(denial) {
                        return v;
                    }
                }
            }
            self.phase = match self.phase {
                Phase::Headers(i) => Phase::Headers(i.saturating_add(1)),
                Phase::Body(i) => Phase::Body(i.saturating_add(1)),
                Phase::Done => Phase::Done,
            };
        }
    }

    /// Whether this request's body must be buffered and checked.
    fn needs_body(&self, route: &Route) -> bool {
        route_needs_body(route) || matches!(self.body_need, Some(BodyNeed::Buffer { .. }))
    }

    /// The body size above which the request is refused while it streams in, and whether the
    /// body must be buffered (else it streams through and is only counted).
    pub fn body_limit(&self) -> Option<u64> {
        match self.body_need {
            Some(BodyNeed::Buffer { limit } | BodyNeed::Count { limit }) => Some(limit),
            _ => None,
        }
    }

    /// Body progress: `received` bytes so far. A denial (413) once over the route's limit.
    pub fn on_body_progress(&mut self, policy: &Policy, received: u64) -> Option<Verdict> {
        let rules = self
            .route
            .and_then(|i| policy.route(i))
            .and_then(|r| r.request.as_ref())?;
        if self.final_decision.is_some() {
            return None;
        }
        let denial = rules.check_body_size(received).err()?;
        let verdict = self.fail(denial);
        if verdict.is_none() {
            // Report mode: stop counting this request.
            self.body_need = Some(BodyNeed::Stream);
        }
        verdict
    }

    /// End of a body that streamed through unbuffered. A body whose size was counted has now
    /// stayed within the limit, so the request's decision becomes final. Returns true when it
    /// did just now (the adapter then emits the events).
    pub fn on_body_end(&mut self, policy: &Policy, env: &Env<'_>) -> bool {
        if self.final_decision.is_some() || self.phase != Phase::Done {
            return false;
        }
        self.body_need = Some(BodyNeed::Stream);
        self.finish(policy, env);
        true
    }

    /// The rewritten body to send upstream, if a check rewrote it.
    pub fn take_body_rewrite(&mut self) -> Option<Vec<u8>> {
        self.body_rewrite.take()
    }

    /// Takes the JWT outcome (provider and what happened) for counters.
    pub fn take_authn(&mut self) -> Option<(Option<ProviderId>, AuthnMetric)> {
        self.authn.take()
    }

    /// Drains per-limit outcomes (limit index, outcome) for metrics.
    pub fn take_limit_outcomes(&mut self) -> Vec<(usize, Outcome)> {
        std::mem::take(&mut self.limit_outcomes)
    }

    /// True when [`Exchange::on_response`] has anything to do for this request.
    pub fn wants_response(&self, policy: &Policy) -> bool {
        !self.response_headers.is_empty()
            || self
                .route
                .and_then(|i| policy.route(i))
                .and_then(|r| r.lockout.as_ref())
                .is_some_and(|l| l.watches_upstream())
    }

    /// Response phase: the headers to add to the response (rate-limit headers), after counting an
    /// upstream authentication failure toward the route's lockout when configured.
    pub fn on_response(
        &mut self,
        policy: &Policy,
        facts: &RequestFacts,
        status: u16,
        env: &Env<'_>,
    ) -> Vec<(String, String)> {
        // Our own replies pass through here too; they were counted when they were decided.
        if self.final_decision == Some(Decision::Deny) {
            return Vec::new();
        }
        if let Some(rule) = self
            .route
            .and_then(|i| policy.route(i))
            .and_then(|r| r.lockout.as_ref())
        {
            if rule.counts_upstream_status(status) {
                let ip = resolve_client_ip(&mut self.client_ip, policy, facts, env.props);
                let route_name = self.route_name(policy);
                let facts = KeyFacts {
                    client_ip: ip.as_deref(),
                    route: route_name,
                    peer: self.principal.peer.as_deref(),
                    headers: &facts.headers,
                    claims: self.principal.claims(),
                    body: self.body_object.as_ref(),
                };
                let records = rule.record_failure(&facts, env.clock, env.store);
                self.note_locks(&records);
            }
        }
        std::mem::take(&mut self.response_headers)
    }

    /// Counts one of our own authentication failures toward the route's lockout, under the same
    /// key the lockout check reads (same headers, same client address even when the failing
    /// stage ran before the lockout stage resolved it).
    fn count_auth_failure(
        &mut self,
        policy: &Policy,
        route: &Route,
        request: &RequestFacts,
        denial: &Denial,
        env: &Env<'_>,
    ) {
        let Some(rule) = &route.lockout else {
            return;
        };
        if !rule.counts_denial(denial.reason) {
            return;
        }
        let ip = resolve_client_ip(&mut self.client_ip, policy, request, env.props);
        let facts = KeyFacts {
            client_ip: ip.as_deref(),
            route: route.name.as_str(),
            peer: self.principal.peer.as_deref(),
            headers: &request.headers,
            claims: self.principal.claims(),
            body: self.body_object.as_ref(),
        };
        let records = rule.record_failure(&facts, env.clock, env.store);
        self.note_locks(&records);
    }

    fn note_locks(&mut self, records: &[crate::ratelimit::lockout::FailureRecord]) {
        for r in records {
            if let Some(until) = r.locked_until_ms {
                self.events.push(Event {
                    decision: Decision::Lock,
                    reason: Some(Reason::LockedOut),
                    log_detail: Some(format!("key {} locked until ts_ms {until}", r.key)),
                });
            }
        }
    }

    /// Decides the request-header changes once: removes client copies of every header
    /// meshguard sets (before the values the stages queued), then the identity headers.
    fn finalize_headers(&mut self, policy: &Policy, env: &Env<'_>) {
        if self.headers_final {
            return;
        }
        self.headers_final = true;
        let mut ops: Vec<HeaderOp> = policy
            .injected_headers
            .iter()
            .chain(self.forged.iter())
            .map(|h| HeaderOp::Remove(h.clone()))
            .collect();
        let rewrites = self
            .route
            .and_then(|i| policy.route(i))
            .and_then(|r| r.request.as_ref())
            .is_some_and(|q| q.may_rewrite_body());
        if rewrites && matches!(self.body_need, Some(BodyNeed::Buffer { .. })) {
            // The body may shrink: its length is no longer known when the headers go on.
            ops.push(HeaderOp::Remove("content-length".to_string()));
        }
        ops.append(&mut self.header_ops);
        if let Some(route) = self.route.and_then(|i| policy.route(i)) {
            ops.extend(crate::response::request_header_ops(route));
        }
        self.header_ops = ops;
        self.forward_identity(policy, env);
    }

    /// Removes incoming copies of the identity headers and sets them from what was verified.
    fn forward_identity(&mut self, policy: &Policy, env: &Env<'_>) {
        let Some(fwd) = &policy.forward_identity else {
            return;
        };
        let source = self
            .route
            .and_then(|i| policy.route(i))
            .map_or(IdentitySource::Connection, route_identity_source);
        let identity = self.peer.identity(env.props, source).clone();
        if let Some(id) = identity.id() {
            self.principal.peer = Some(id.as_str().to_string());
        }
        let plan = fwd.plan(identity.id(), self.principal.claims());
        for h in plan.remove {
            self.header_ops.push(HeaderOp::Remove(h.to_string()));
        }
        for (h, v) in plan.set {
            self.header_ops.push(HeaderOp::Set(h.to_string(), v));
        }
    }

    /// Records a denial. Enforced: returns the deny verdict. Report mode: records a would-be
    /// denial and returns `None` so the pipeline goes on.
    fn fail(&mut self, denial: Denial) -> Option<Verdict> {
        match self.mode {
            Mode::Enforce => {
                self.events.push(Event {
                    decision: Decision::Deny,
                    reason: Some(denial.reason),
                    log_detail: denial.log_detail.clone(),
                });
                self.phase = Phase::Done;
                self.final_decision = Some(Decision::Deny);
                self.denial = Some(denial.clone());
                Some(Verdict::Deny(denial))
            }
            Mode::Report => {
                self.events.push(Event {
                    decision: Decision::Report,
                    reason: Some(denial.reason),
                    log_detail: denial.log_detail,
                });
                self.reported = true;
                None
            }
        }
    }

    fn finish(&mut self, policy: &Policy, env: &Env<'_>) -> Verdict {
        self.phase = Phase::Done;
        if let Some(denial) = &self.denial {
            return Verdict::Deny(denial.clone());
        }
        if self.final_decision.is_none() {
            self.finalize_headers(policy, env);
        }
        // A body that streams through while its size is counted can still be refused (413):
        // the decision is final only at its end (`on_body_end`).
        let counting = matches!(self.body_need, Some(BodyNeed::Count { .. }));
        if self.final_decision.is_none() && !counting {
            let decision = if self.reported {
                Decision::Report
            } else {
                Decision::Allow
            };
            self.final_decision = Some(decision);
            if decision == Decision::Allow {
                self.events.push(Event {
                    decision,
                    reason: None,
                    log_detail: None,
                });
            }
        }
        Verdict::Allow
    }
}

/// Whether a route has checks that need the body (whatever the request).
fn route_needs_body(route: &Route) -> bool {
    route.owner.as_ref().is_some_and(|o| o.needs_body())
        || route.lockout.as_ref().is_some_and(|l| l.needs_body())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeClock, MemStore};

    /// A connection from 192.0.2.7.
    struct FromAddress;
    impl Properties for FromAddress {
        fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
            (path == ["source", "address"]).then(|| b"192.0.2.7:40000".to_vec())
        }
    }

    fn policy(keys: &str) -> Policy {
        let json = format!(
            r#"{{"routes":[{{"name":"login","match":{{"prefix":"/login"}},
                "lockout":{{"keys":{keys},"failures":2,"window_seconds":60,"block_seconds":60}}}}]}}"#
        );
        crate::config::compile(json.as_bytes()).unwrap()
    }

    fn request(device: &str) -> RequestFacts {
        RequestFacts {
            method: "GET".into(),
            path: "/login".into(),
            authority: "api.example".into(),
            headers: vec![("x-device".into(), device.into())],
            end_of_stream: true,
            ..Default::default()
        }
    }

    /// Records one of meshguard's own 401s on a fresh exchange whose route matched but whose
    /// stages have not run (as when a token check before the lockout stage fails).
    fn own_401(p: &Policy, r: &RequestFacts, env: &Env<'_>) {
        let mut ex = Exchange::new();
        ex.route = Some(0);
        let route = p.route(0).unwrap();
        ex.count_auth_failure(p, route, r, &Denial::new(Reason::JwtMissing), env);
    }

    fn verdict(p: &Policy, r: &RequestFacts, env: &Env<'_>) -> Option<Reason> {
        match Exchange::new().on_headers(p, r, env) {
            Verdict::Deny(d) => Some(d.reason),
            _ => None,
        }
    }

    /// Counts lookups of the connection address.
    #[derive(Default)]
    struct CountingProps(std::cell::Cell<u32>);
    impl Properties for CountingProps {
        fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.0.set(self.0.get() + 1);
            FromAddress.get(path)
        }
    }

    fn env_for<'a>(
        clock: &'a FakeClock,
        store: &'a MemStore,
        runtime: &'a RefCell<Runtime>,
    ) -> Env<'a> {
        Env {
            clock,
            store,
            props: &FromAddress,
            runtime,
        }
    }

    /// A chunked upload (no content-length) to a route with only `max_body_bytes`.
    fn chunked_upload() -> RequestFacts {
        RequestFacts {
            method: "POST".into(),
            path: "/upload".into(),
            authority: "api.example".into(),
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("transfer-encoding".into(), "chunked".into()),
            ],
            end_of_stream: false,
            ..Default::default()
        }
    }

    fn capped(mode: &str) -> Policy {
        let json = format!(
            r#"{{"routes":[{{"name":"up","match":{{"path":"/upload"}},"mode":"{mode}",
                "request":{{"max_body_bytes":100}}}}]}}"#
        );
        crate::config::compile(json.as_bytes()).unwrap()
    }

    #[test]
    fn streamed_body_over_the_limit_is_refused_after_the_headers_went_on() {
        let p = capped("enforce");
        let (clock, store) = (FakeClock::at_secs(1_700_000_000), MemStore::default());
        let runtime = RefCell::new(Runtime::new(&p, &store));
        let env = env_for(&clock, &store, &runtime);
        let mut ex = Exchange::new();
        assert_eq!(ex.on_headers(&p, &chunked_upload(), &env), Verdict::Allow);
        assert_eq!(ex.body_limit(), Some(100));
        assert_eq!(ex.final_decision(), None, "undecided until the body ends");
        assert_eq!(ex.on_body_progress(&p, 100), None);
        match ex.on_body_progress(&p, 101) {
            Some(Verdict::Deny(d)) => assert_eq!(d.reason, Reason::BodyTooLarge),
            other => panic!("expected 413, got {other:?}"),
        }
        assert_eq!(ex.final_decision(), Some(Decision::Deny));
        assert!(!ex.on_body_end(&p, &env));
    }

    #[test]
    fn streamed_body_within_the_limit_is_allowed_at_its_end() {
        let p = capped("enforce");
        let (clock, store) = (FakeClock::at_secs(1_700_000_000), MemStore::default());
        let runtime = RefCell::new(Runtime::new(&p, &store));
        let env = env_for(&clock, &store, &runtime);
        let mut ex = Exchange::new();
        assert_eq!(ex.on_headers(&p, &chunked_upload(), &env), Verdict::Allow);
        assert_eq!(ex.on_body_progress(&p, 60), None);
        assert!(ex.on_body_end(&p, &env));
        assert_eq!(ex.final_decision(), Some(Decision::Allow));
        assert!(!ex.on_body_end(&p, &env), "decided once");
    }

    #[test]
    fn streamed_body_over_the_limit_in_report_mode_is_reported_at_its_end() {
        let p = capped("report");
        let (clock, store) = (FakeClock::at_secs(1_700_000_000), MemStore::default());
        let runtime = RefCell::new(Runtime::new(&p, &store));
        let env = env_for(&clock, &store, &runtime);
        let mut ex = Exchange::new();
        assert_eq!(ex.on_headers(&p, &chunked_upload(), &env), Verdict::Allow);
        assert_eq!(ex.on_body_progress(&p, 500), None);
        assert_eq!(ex.body_limit(), None, "no longer counted");
        assert!(ex.on_body_end(&p, &env));
        assert_eq!(ex.final_decision(), Some(Decision::Report));
        let reasons: Vec<_> = ex.take_events().iter().map(|e| e.reason).collect();
        assert_eq!(reasons, vec![Some(Reason::BodyTooLarge)]);
    }

    #[test]
    fn client_address_from_a_trusted_hop_needs_no_connection_lookup() {
        let p = crate::config::compile(
            br#"{"client_ip":{"source":"x_forwarded_for","trusted_hops":1},"routes":[]}"#,
        )
        .unwrap();
        let props = CountingProps::default();
        let mut with_xff = request("d");
        with_xff
            .headers
            .push(("x-forwarded-for".into(), "198.51.100.1, 203.0.113.9".into()));
        let mut slot = None;
        let ip = resolve_client_ip(&mut slot, &p, &with_xff, &props);
        assert_eq!(ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(props.0.get(), 0);
        // Without the header the connection address is read, once per request.
        let mut slot = None;
        let ip = resolve_client_ip(&mut slot, &p, &request("d"), &props);
        assert_eq!(ip.as_deref(), Some("192.0.2.7"));
        let _ = resolve_client_ip(&mut slot, &p, &request("d"), &props);
        assert_eq!(props.0.get(), 1);
    }

    #[test]
    fn own_401s_lock_the_header_key_the_check_reads() {
        let p = policy(r#"["header:x-device"]"#);
        let (clock, store) = (FakeClock::at_secs(1_700_000_000), MemStore::default());
        let runtime = RefCell::new(Runtime::new(&p, &store));
        let env = Env {
            clock: &clock,
            store: &store,
            props: &FromAddress,
            runtime: &runtime,
        };
        own_401(&p, &request("phone-1"), &env);
        own_401(&p, &request("phone-1"), &env);
        assert_eq!(
            verdict(&p, &request("phone-1"), &env),
            Some(Reason::LockedOut)
        );
        assert_eq!(verdict(&p, &request("phone-2"), &env), None);
    }

    #[test]
    fn own_401s_before_the_lockout_stage_lock_the_client_address() {
        let p = policy(r#"["client_ip"]"#);
        let (clock, store) = (FakeClock::at_secs(1_700_000_000), MemStore::default());
        let runtime = RefCell::new(Runtime::new(&p, &store));
        let env = Env {
            clock: &clock,
            store: &store,
            props: &FromAddress,
            runtime: &runtime,
        };
        own_401(&p, &request("a"), &env);
        own_401(&p, &request("b"), &env);
        assert_eq!(verdict(&p, &request("c"), &env), Some(Reason::LockedOut));
    }
}
