//! The immutable compiled policy: what every request is checked against. Built only by
//! [`crate::config::compile`], shared read-only by all streams of a VM.

use crate::authn::config::{JwtRequirement, Providers};
use crate::identity::authz::{BindingRule, OwnerRule, PeerRule};
use crate::identity::{ForwardIdentity, IdentitySource};
use crate::ratelimit::{ClientIpPolicy, LockoutPolicy, RouteLimits};
use crate::routing::{equivalent_spellings, host_of, HostPattern, NormalPath, Params, PathMatcher};
use crate::text::fold_case;

pub use crate::mode::Mode;

/// What happens to a request that matches no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// 404 problem (`route_not_found`).
    Deny,
    /// Passes unchecked.
    Allow,
}

/// A route name: unique, `[A-Za-z0-9_-]{1,64}`, safe for metric names and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteName(String);

impl RouteName {
    /// Validates a configured name.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| RouteName(s.to_string()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Name used in metrics and audit lines for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "_unmatched";

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Unique name.
    pub name: RouteName,
    /// Effective mode (route override or global).
    pub mode: Mode,
    /// Allowed methods; `None` is any.
    pub methods: Option<Vec<String>>,
    /// Allowed hosts; `None` is any.
    pub hosts: Option<Vec<HostPattern>>,
    /// Path matcher.
    pub path: PathMatcher,
    /// Compare the path with letter case as written (`match.case_sensitive`).
    pub case_sensitive: bool,
    /// Requests with `;` path parameters may use this route (`match.allow_semicolon_params`).
    pub allow_semicolon_params: bool,
    /// Token requirement.
    pub jwt: Option<JwtRequirement>,
    /// mTLS peer rule.
    pub peers: Option<PeerRule>,
    /// Object-level authorization rule.
    pub owner: Option<OwnerRule>,
    /// Token-to-peer binding rule.
    pub binding: Option<BindingRule>,
    /// Request shape checks.
    pub request: Option<crate::validate::RequestRules>,
    /// Rate limits (empty: none).
    pub rate_limits: RouteLimits,
    /// Authentication-failure lockout.
    pub lockout: Option<LockoutPolicy>,
    /// Response checks, CORS and error masking in effect on this route.
    pub response: crate::response::rules::RouteResponse,
}

impl Route {
    /// The identity source the route reads the peer from (its `peers.source`, else the
    /// connection).
    pub fn identity_source(&self) -> IdentitySource {
        self.peers
            .as_ref()
            .map_or(IdentitySource::Connection, |p| p.source())
    }
    fn host_ok(&self, host: &str) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|hs| hs.iter().any(|h| h.matches(host)))
    }
    /// A route that lists GET also takes HEAD: every framework answers HEAD with its GET
    /// handler, so HEAD must meet the same rules.
    fn method_ok(&self, method: &str) -> bool {
        self.methods.as_ref().is_none_or(|ms| {
            ms.iter()
                .any(|m| m == method || (method == "HEAD" && m == "GET"))
        })
    }
}

/// The outcome of route lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Route index and captured path parameters.
    Matched(usize, Params),
    /// Some route matches host and path, none the method: the methods that would.
    MethodNotAllowed(Vec<String>),
    /// No route matches.
    NotFound,
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    /// Global mode (routes carry their effective mode).
    pub mode: Mode,
    /// Unmatched-request policy.
    pub unmatched: Unmatched,
    /// Log allowed requests too.
    pub log_allows: bool,
    /// Ordered routes.
    pub routes: Vec<Route>,
    /// Identity headers set upstream (incoming copies always removed).
    pub forward_identity: Option<ForwardIdentity>,
    /// How the client address is found.
    pub client_ip: ClientIpPolicy,
    /// Token issuers.
    pub providers: Providers,
    /// Headers meshguard sets from verified tokens: incoming copies are removed from every
    /// request.
    pub injected_headers: Vec<String>,
    /// Verified-token cache entries per worker.
    pub jwt_cache_entries: usize,
    /// Verified-token slots shared by the workers (0: not shared).
    pub jwt_shared_entries: u32,
    /// Requests that match no route may carry `;` path parameters (`paths.allow_semicolon_params`).
    pub allow_semicolon_params: bool,
    /// Requests may name another method in a header or `_method` (`paths.allow_method_override`).
    pub allow_method_override: bool,
    /// Some route matches case-insensitively: lookups fold the path once.
    pub fold_paths: bool,
    /// Non-fatal findings of the compiler (a catch-all behind a case-sensitive route...), logged
    /// at configure time.
    pub warnings: Vec<String>,
    /// Response-side settings: security headers, CORS, error masking, header hold.
    pub edge: crate::response::rules::EdgePolicy,
}

impl Policy {
    /// Finds the first route matching method, authority and normalised path.
    pub fn lookup(&self, method: &str, authority: &str, path: &NormalPath) -> Lookup {
        let host = host_of(authority);
        let folded = if self.fold_paths {
            fold_case(&path.path)
        } else {
            std::borrow::Cow::Borrowed(path.path.as_str())
        };
        // The first route that matches the path or a spelling the upstream treats as the same
        // path (`/reports/`, `/reports.json` for `/reports`): a fallback route after it must not
        // take those spellings past its rules.
        let others: Vec<(NormalPath, String)> = equivalent_spellings(&path.path)
            .into_iter()
            .map(|p| {
                let folded = if self.fold_paths {
                    fold_case(&p).into_owned()
                } else {
                    p.clone()
                };
                let normal = NormalPath {
                    path: p,
                    query: String::new(),
                    semicolon: path.semicolon,
                };
                (normal, folded)
            })
            .collect();
        let mut allow: Vec<String> = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            if !route.host_ok(&host) {
                continue;
            }
            let matches = |p: &NormalPath, f: &str| {
                if route.case_sensitive {
                    route.path.matches(p)
                } else {
                    route.path.matches_folded(p, f)
                }
            };
            let params =
                matches(path, &folded).or_else(|| others.iter().find_map(|(p, f)| matches(p, f)));
            let Some(params) = params else {
                continue;
            };
            if route.method_ok(method) {
                return Lookup::Matched(i, params);
            }
            for m in route.methods.iter().flatten() {
                if !allow.contains(m) {
                    allow.push(m.clone());
                }
                if m == "GET" && !allow.iter().any(|a| a == "HEAD") {
                    allow.push("HEAD".to_string());
                }
            }
        }
        if allow.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allow)
        }
    }

    /// Whether a request with `;` path parameters may go on: the matched route says, else the
    /// top-level setting.
    pub fn semicolons_allowed(&self, route: Option<usize>) -> bool {
        route
            .and_then(|i| self.routes.get(i))
            .map_or(self.allow_semicolon_params, |r| r.allow_semicolon_params)
    }

    /// The route at an index from [`Lookup::Matched`].
    pub fn route(&self, i: usize) -> Option<&Route> {
        self.routes.get(i)
    }
}
