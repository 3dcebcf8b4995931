//! Authorization rules on peer identity and token claims, and the checks that apply them.
//!
//! Decides three questions, each a pure function returning `Result<(), Denial>`:
//! - [`check_peers`]: may this mTLS peer call the route? (`peer_not_mtls`,
//!   `peer_identity_missing`, `peer_not_allowed`, all 403). Deny entries are checked first.
//! - [`check_owner`]: is the addressed object the caller's? (`owner_mismatch`, 403).
//! - [`check_binding`]: is the token bound to the peer presenting it? (`token_not_bound_to_peer`,
//!   401 `invalid_token`).
//!
//! It never verifies tokens (claims arrive verified), never reads the host, and never puts a
//! request value, claim value or token in the client-visible detail; operator detail
//! (`log_detail`) names the peer ID and config names only.

use crate::http::query;
use std::collections::BTreeMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use super::matcher::PeerSet;
use super::peer::{CertDigest, IdentitySource, PeerIdentity};
use super::spiffe::SpiffeId;
use crate::error::{Denial, Reason};

/// Token claims as verified by the JWT layer.
pub type Claims = Map<String, Value>;

/// The compiled `routes[].peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRule {
    require_mtls: bool,
    allow: PeerSet,
    deny: PeerSet,
    source: IdentitySource,
}

impl PeerRule {
    pub(super) fn new(
        require_mtls: bool,
        allow: PeerSet,
        deny: PeerSet,
        source: IdentitySource,
    ) -> Self {
        Self {
            require_mtls,
            allow,
            deny,
            source,
        }
    }

    /// True when the route needs an mTLS peer (set, or implied by `allow` / `deny`).
    pub fn require_mtls(&self) -> bool {
        self.require_mtls
    }

    /// Where the adapter must read the peer identity from for this route.
    pub fn source(&self) -> IdentitySource {
        self.source
    }

    /// True when the rule looks at the peer's SPIFFE ID (some `allow` or `deny` entry).
    pub fn needs_identity(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }
}

/// Checks the peer against `routes[].peers`. A peer without an identity never passes a route
/// with `allow` or `deny` entries: a deny list must not be dodged by showing no certificate.
pub fn check_peers(rule: &PeerRule, peer: &PeerIdentity) -> Result<(), Denial> {
    match peer {
        PeerIdentity::NoMtls => {
            if rule.require_mtls {
                Err(Denial::new(Reason::PeerNotMtls)
                    .with_log_detail("no client certificate (or mTLS state unknown)"))
            } else {
                Ok(())
            }
        }
        PeerIdentity::NoIdentity(cause) => {
            if rule.needs_identity() {
                Err(Denial::new(Reason::PeerIdentityMissing).with_log_detail(cause.to_string()))
            } else {
                Ok(())
            }
        }
        PeerIdentity::Id(id) => {
            if let Some(i) = rule.deny.first_match(id) {
                return Err(Denial::new(Reason::PeerNotAllowed)
                    .with_log_detail(format!("peer {id} matches deny[{i}]")));
            }
            if !rule.allow.is_empty() && !rule.allow.matches(id) {
                return Err(Denial::new(Reason::PeerNotAllowed)
                    .with_log_detail(format!("peer {id} matches no allow entry")));
            }
            Ok(())
        }
    }
}

/// Where the owner of the addressed object is named in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerSource {
    /// A path template parameter.
    Param(String),
    /// A query parameter (must appear exactly once).
    Query(String),
    /// A top-level field of the JSON body.
    BodyField(String),
}

/// Callers with one of these claim values skip the owner check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bypass {
    claim: String,
    values: Vec<String>,
}

impl Bypass {
    pub(super) fn new(claim: String, values: Vec<String>) -> Self {
        Self { claim, values }
    }
}

/// The compiled `routes[].owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRule {
    source: OwnerSource,
    claim: String,
    bypass: Option<Bypass>,
}

impl OwnerRule {
    pub(super) fn new(source: OwnerSource, claim: String, bypass: Option<Bypass>) -> Self {
        Self {
            source,
            claim,
            bypass,
        }
    }

    /// True when the owner is in the body: run [`check_owner`] once the body is read.
    pub fn needs_body(&self) -> bool {
        matches!(self.source, OwnerSource::BodyField(_))
    }

    /// Where the owner value comes from.
    pub fn source(&self) -> &OwnerSource {
        &self.source
    }
}

/// The request values an owner check may read. All values already decoded: path parameters by
/// the router, query pairs by the query parser (percent-decoding, `+` as space).
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnerInputs<'a> {
    /// Path template parameters, name and value.
    pub path_params: &'a [(String, String)],
    /// Query parameters in request order, name and value (repeats kept).
    pub query: &'a [(String, String)],
    /// The body's fields (a JSON object read by the strict reader, or a form), when the rule
    /// needs it and the request has one.
    pub body: Option<&'a Value>,
}

/// Checks `routes[].owner`: the owner value in the request must equal the token claim (a
/// string, an integer, or an array of those). The bypass is looked at first. Without verified
/// claims, or without an owner value, the check fails (fail closed). A query parameter given
/// more than once fails too: which copy the upstream reads is unknown.
pub fn check_owner(
    rule: &OwnerRule,
    inputs: &OwnerInputs<'_>,
    claims: Option<&Claims>,
) -> Result<(), Denial> {
    let deny = |why: String| Err(Denial::new(Reason::OwnerMismatch).with_log_detail(why));
    let Some(claims) = claims else {
        return deny("no verified token to compare the owner with".to_string());
    };
    if let Some(bypass) = &rule.bypass {
        let granted = claims
            .get(&bypass.claim)
            .is_some_and(|v| claim_has_any(v, &bypass.values));
        if granted {
            return Ok(());
        }
    }
    let value = match owner_value(&rule.source, inputs) {
        Ok(v) => v,
        Err(why) => return deny(why),
    };
    match claims.get(&rule.claim) {
        None => deny(format!("token has no '{}' claim", rule.claim)),
        Some(claim) if claim_contains(claim, &value) => Ok(()),
        Some(_) => deny(format!(
            "{} does not match claim '{}'",
            describe(&rule.source),
            rule.claim
        )),
    }
}

fn describe(source: &OwnerSource) -> String {
    match source {
        OwnerSource::Param(n) => format!("path parameter '{n}'"),
        OwnerSource::Query(n) => format!("query parameter '{n}'"),
        OwnerSource::BodyField(n) => format!("body field '{n}'"),
    }
}

/// The owner value named by the request, or why there is none (operator detail).
fn owner_value(source: &OwnerSource, inputs: &OwnerInputs<'_>) -> Result<String, String> {
    let value = match source {
        OwnerSource::Param(name) => inputs
            .path_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone()),
        // Every spelling a framework binds to the same name counts (`USER`, `user.id` for
        // `user_id`): two of them are ambiguous, as a repeated name is.
        OwnerSource::Query(name) => {
            let folded = query::fold_name(name);
            let mut hits = inputs
                .query
                .iter()
                .filter(|(k, _)| query::fold_name(k) == folded);
            match (hits.next(), hits.next()) {
                (Some((_, v)), None) => Some(v.clone()),
                (Some(_), Some(_)) => {
                    return Err(format!("query parameter '{name}' is repeated"));
                }
                (None, _) => None,
            }
        }
        // A query parameter of the same name is ambiguous: Rails, Laravel and Flask's
        // `request.values` merge query and body, so the service may read either.
        OwnerSource::BodyField(name)
            if inputs
                .query
                .iter()
                .any(|(k, _)| query::fold_name(k) == query::fold_name(name)) =>
        {
            return Err(format!("body field '{name}' is also a query parameter"));
        }
        // The member whatever its letter case (`OwnerId` binds to `ownerId` in Go and
        // ASP.NET Core); the strict reader refuses bodies where two members fold together.
        OwnerSource::BodyField(name) => inputs
            .body
            .and_then(Value::as_object)
            .and_then(|o| {
                o.get(name).or_else(|| {
                    o.iter()
                        .find(|(k, _)| crate::text::eq_fold(k, name))
                        .map(|(_, v)| v)
                })
            })
            .and_then(scalar_string),
    };
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "{} is absent, empty or not a scalar",
            describe(source)
        )),
    }
}

/// A string, or an integer in canonical decimal form. Floats, booleans and nulls are never an
/// owner: `1.0` vs `1` or `true` vs `"true"` would be guesses.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn claim_contains(claim: &Value, value: &str) -> bool {
    match claim {
        Value::Array(items) => items
            .iter()
            .any(|item| scalar_string(item).is_some_and(|s| s == value)),
        other => scalar_string(other).is_some_and(|s| s == value),
    }
}

/// Bypass values are strings only, matched exactly against a string claim or array element.
fn claim_has_any(claim: &Value, values: &[String]) -> bool {
    let hit = |v: &Value| v.as_str().is_some_and(|s| values.iter().any(|w| w == s));
    match claim {
        Value::Array(items) => items.iter().any(hit),
        other => hit(other),
    }
}

/// The compiled `routes[].binding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRule {
    claim: Option<String>,
    map: BTreeMap<String, SpiffeId>,
    cnf: bool,
}

impl BindingRule {
    pub(super) fn new(claim: Option<String>, map: BTreeMap<String, SpiffeId>, cnf: bool) -> Self {
        Self { claim, map, cnf }
    }

    /// True when the rule needs the peer certificate digest.
    pub fn needs_cert_digest(&self) -> bool {
        self.cnf
    }
}

/// base64url as JOSE writes it (no padding), tolerating padding some issuers add.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks `routes[].binding` for a request whose verified token has `claims`.
///
/// - `claim`: the claim (a string) must equal the peer's SPIFFE ID, or be a key of `map` whose
///   value is the peer's SPIFFE ID.
/// - `cnf`: `cnf["x5t#S256"]` must be the base64url SHA-256 of the peer certificate
///   (RFC 8705 §3.1), compared in constant time.
///
/// Both must hold when both are set. With no token (`claims` is `None`, possible only when the
/// route's `jwt.allow_missing` let the request through), there is nothing to bind and the
/// check passes: the JWT rules decide whether a token is required.
pub fn check_binding(
    rule: &BindingRule,
    peer: &PeerIdentity,
    cert_digest: Option<&CertDigest>,
    claims: Option<&Claims>,
) -> Result<(), Denial> {
    let Some(claims) = claims else {
        return Ok(());
    };
    let deny = |why: String| Err(Denial::new(Reason::TokenNotBoundToPeer).with_log_detail(why));
    if let Some(name) = &rule.claim {
        let Some(id) = peer.id() else {
            return deny(format!(
                "claim '{name}' binding needs a peer SPIFFE ID; the peer has none"
            ));
        };
        let Some(value) = claims.get(name).and_then(Value::as_str) else {
            return deny(format!("token has no string '{name}' claim"));
        };
        let bound = value == id.as_str() || rule.map.get(value) == Some(id);
        if !bound {
            return deny(format!("claim '{name}' does not name peer {id}"));
        }
    }
    if rule.cnf {
        let Some(digest) = cert_digest else {
            return deny("cnf binding needs the peer certificate digest; none".to_string());
        };
        let thumbprint = claims
            .get("cnf")
            .and_then(|c| c.get("x5t#S256"))
            .and_then(Value::as_str);
        let Some(thumbprint) = thumbprint else {
            return deny("token has no cnf[\"x5t#S256\"]".to_string());
        };
        let Ok(decoded) = B64URL.decode(thumbprint) else {
            return deny("cnf[\"x5t#S256\"] is not base64url".to_string());
        };
        if !digest.ct_eq_bytes(&decoded) {
            return deny(format!(
                "cnf[\"x5t#S256\"] does not match the certificate of peer {}",
                peer.id()
                    .map_or("(no SPIFFE ID)".to_string(), |id| id.to_string())
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::config::{
        compile_binding, compile_owner, compile_peers, RawBinding, RawOwner, RawPeers,
    };
    use crate::identity::peer::NoIdentityCause;
    use crate::identity::spiffe::SpiffeIdError;
    use serde_json::json;

    const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
    const CART: &str = "spiffe://cluster.local/ns/shop/sa/cart";
    const LEGACY: &str = "spiffe://cluster.local/ns/shop/sa/legacy";
    const BILLING: &str = "spiffe://cluster.local/ns/billing/sa/api";
    const FOREIGN: &str = "spiffe://partner.example/ns/shop/sa/frontend";

    fn peer_rule(v: Value) -> PeerRule {
        let raw: RawPeers = crate::config::read::from_value(v).unwrap();
        compile_peers(&raw, "routes[0].peers").unwrap()
    }

    fn owner_rule(v: Value) -> OwnerRule {
        let raw: RawOwner = crate::config::read::from_value(v).unwrap();
        compile_owner(&raw, "routes[0].owner", &["id", "org"]).unwrap()
    }

    fn binding_rule(v: Value) -> BindingRule {
        let raw: RawBinding = crate::config::read::from_value(v).unwrap();
        compile_binding(&raw, "routes[0].binding").unwrap()
    }

    fn id(s: &str) -> PeerIdentity {
        PeerIdentity::Id(SpiffeId::parse(s).unwrap())
    }

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    fn reason<T: std::fmt::Debug>(r: Result<T, Denial>) -> Option<Reason> {
        r.err().map(|d| d.reason)
    }

    // ---- peers ----

    #[test]
    fn peer_rule_table() {
        let no_san = PeerIdentity::NoIdentity(NoIdentityCause::NoUriSan);
        let bad_san =
            PeerIdentity::NoIdentity(NoIdentityCause::NotSpiffe(SpiffeIdError::DotSegment));
        let shop = json!({"allow": ["spiffe://cluster.local/ns/shop/*"], "deny": [LEGACY]});
        let td_only = json!({"allow": ["spiffe://cluster.local"]});
        let exact = json!({"require_mtls": true, "allow": [FRONTEND]});
        let deny_only = json!({"deny": [LEGACY]});
        let mtls_only = json!({"require_mtls": true});
        let nothing = json!({});
        use Reason::*;
        let cases: Vec<(&Value, PeerIdentity, Option<Reason>)> = vec![
            (&shop, id(FRONTEND), None),
            (&shop, id(CART), None),
            (&shop, id(LEGACY), Some(PeerNotAllowed)),
            (&shop, id(BILLING), Some(PeerNotAllowed)),
            (&shop, id(FOREIGN), Some(PeerNotAllowed)),
            (
                &shop,
                id("spiffe://cluster.local/ns/shop"),
                Some(PeerNotAllowed),
            ),
            (&shop, PeerIdentity::NoMtls, Some(PeerNotMtls)),
            (&shop, no_san.clone(), Some(PeerIdentityMissing)),
            (&shop, bad_san.clone(), Some(PeerIdentityMissing)),
            (&td_only, id(BILLING), None),
            (&td_only, id(FOREIGN), Some(PeerNotAllowed)),
            (&exact, id(FRONTEND), None),
            (&exact, id(CART), Some(PeerNotAllowed)),
            (&exact, PeerIdentity::NoMtls, Some(PeerNotMtls)),
            (&deny_only, id(CART), None),
            (&deny_only, id(LEGACY), Some(PeerNotAllowed)),
            // A deny list cannot be dodged by presenting a certificate without identity.
            (&deny_only, no_san.clone(), Some(PeerIdentityMissing)),
            (&deny_only, PeerIdentity::NoMtls, Some(PeerNotMtls)),
            (&mtls_only, no_san.clone(), None),
            (&mtls_only, id(FOREIGN), None),
            (&mtls_only, PeerIdentity::NoMtls, Some(PeerNotMtls)),
            (&nothing, PeerIdentity::NoMtls, None),
            (&nothing, bad_san, None),
        ];
        for (rule, peer, want) in cases {
            let got = reason(check_peers(&peer_rule(rule.clone()), &peer));
            assert_eq!(got, want, "{rule} with {peer:?}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let rule = peer_rule(
            json!({"allow": ["spiffe://cluster.local"], "deny": ["spiffe://cluster.local/ns/shop/*"]}),
        );
        let d = check_peers(&rule, &id(CART)).unwrap_err();
        assert_eq!(d.reason, Reason::PeerNotAllowed);
        assert_eq!(
            d.log_detail.as_deref(),
            Some(format!("peer {CART} matches deny[0]").as_str())
        );
        assert!(d.detail.is_none());
        assert!(check_peers(&rule, &id(BILLING)).is_ok());
    }

    #[test]
    fn peer_denials_are_403() {
        for r in [
            Reason::PeerNotMtls,
            Reason::PeerIdentityMissing,
            Reason::PeerNotAllowed,
        ] {
            assert_eq!(r.status(), 403);
        }
    }

    // ---- owner ----

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn owner_param_equals_string_claim() {
        let rule = owner_rule(json!({"param": "id", "claim": "sub"}));
        let own = params(&[("id", "alice")]);
        let other = params(&[("id", "bob")]);
        let c = claims(json!({"sub": "alice"}));
        let input = |p| OwnerInputs {
            path_params: p,
            ..OwnerInputs::default()
        };
        assert!(check_owner(&rule, &input(&own), Some(&c)).is_ok());
        let d = check_owner(&rule, &input(&other), Some(&c)).unwrap_err();
        assert_eq!(d.reason, Reason::OwnerMismatch);
        assert_eq!(d.reason.status(), 403);
        let log = d.log_detail.unwrap();
        assert!(!log.contains("alice") && !log.contains("bob"), "{log}");
        // Case matters; nothing is normalised.
        let upper = params(&[("id", "Alice")]);
        assert!(check_owner(&rule, &input(&upper), Some(&c)).is_err());
    }

    #[test]
    fn owner_claim_forms_table() {
        let rule = owner_rule(json!({"param": "org", "claim": "tenants"}));
        let cases = [
            (json!({"tenants": ["a", "b"]}), "b", true),
            (json!({"tenants": ["a", "b"]}), "c", false),
            (json!({"tenants": []}), "a", false),
            (json!({"tenants": "a"}), "a", true),
            (json!({"tenants": 42}), "42", true),
            (json!({"tenants": 42}), "042", false),
            (json!({"tenants": [7, "x"]}), "7", true),
            (json!({"tenants": 4.2}), "4.2", false),
            (json!({"tenants": true}), "true", false),
            (json!({"tenants": null}), "null", false),
            (json!({"tenants": {"a": 1}}), "a", false),
            (json!({"tenants": [["a"]]}), "a", false),
            (json!({"other": "a"}), "a", false),
        ];
        for (c, value, want) in cases {
            let p = params(&[("org", value)]);
            let inputs = OwnerInputs {
                path_params: &p,
                ..OwnerInputs::default()
            };
            assert_eq!(
                check_owner(&rule, &inputs, Some(&claims(c.clone()))).is_ok(),
                want,
                "{c} vs {value}"
            );
        }
    }

    #[test]
    fn owner_without_token_or_value_fails_closed() {
        let rule = owner_rule(json!({"param": "id", "claim": "sub"}));
        let own = params(&[("id", "alice")]);
        let inputs = OwnerInputs {
            path_params: &own,
            ..OwnerInputs::default()
        };
        assert_eq!(
            reason(check_owner(&rule, &inputs, None)),
            Some(Reason::OwnerMismatch)
        );
        let c = claims(json!({"sub": "alice"}));
        assert_eq!(
            reason(check_owner(&rule, &OwnerInputs::default(), Some(&c))),
            Some(Reason::OwnerMismatch)
        );
        // Empty value never equals an empty claim.
        let empty = params(&[("id", "")]);
        let ce = claims(json!({"sub": ""}));
        let inputs = OwnerInputs {
            path_params: &empty,
            ..OwnerInputs::default()
        };
        assert!(check_owner(&rule, &inputs, Some(&ce)).is_err());
    }

    #[test]
    fn owner_bypass_for_admin_role() {
        let rule = owner_rule(json!({"param": "id", "claim": "sub",
            "bypass": {"claim": "role", "values": ["admin", "support"]}}));
        let other = params(&[("id", "bob")]);
        let inputs = OwnerInputs {
            path_params: &other,
            ..OwnerInputs::default()
        };
        let cases = [
            (json!({"sub": "alice", "role": "admin"}), true),
            (json!({"sub": "alice", "role": ["user", "support"]}), true),
            (json!({"sub": "alice", "role": "user"}), false),
            (json!({"sub": "alice", "role": "Admin"}), false),
            (json!({"sub": "alice", "role": ["user"]}), false),
            (json!({"sub": "alice"}), false),
            (json!({"sub": "bob", "role": "user"}), true),
        ];
        for (c, want) in cases {
            assert_eq!(
                check_owner(&rule, &inputs, Some(&claims(c.clone()))).is_ok(),
                want,
                "{c}"
            );
        }
        // The bypass still needs a verified token.
        assert!(check_owner(&rule, &inputs, None).is_err());
    }

    #[test]
    fn owner_from_query_needs_exactly_one_value() {
        let rule = owner_rule(json!({"query": "user", "claim": "sub"}));
        let c = claims(json!({"sub": "alice"}));
        let cases = [
            (params(&[("user", "alice")]), true),
            (params(&[("x", "1"), ("user", "alice")]), true),
            (params(&[("user", "bob")]), false),
            (params(&[("user", "alice"), ("user", "bob")]), false),
            (params(&[("user", "alice"), ("user", "alice")]), false),
            (params(&[]), false),
        ];
        for (q, want) in cases {
            let inputs = OwnerInputs {
                query: &q,
                ..OwnerInputs::default()
            };
            assert_eq!(check_owner(&rule, &inputs, Some(&c)).is_ok(), want, "{q:?}");
        }
        assert!(!rule.needs_body());
    }

    #[test]
    fn owner_from_body_field() {
        let rule = owner_rule(json!({"body_field": "owner_id", "claim": "uid"}));
        assert!(rule.needs_body());
        let c = claims(json!({"uid": 42}));
        let cases = [
            (Some(json!({"owner_id": 42, "x": 1})), true),
            (Some(json!({"owner_id": "42"})), true),
            (Some(json!({"owner_id": 43})), false),
            (Some(json!({"owner_id": 42.0})), false),
            (Some(json!({"nested": {"owner_id": 42}})), false),
            (Some(json!([{"owner_id": 42}])), false),
            (Some(json!({})), false),
            (None, false),
        ];
        for (body, want) in cases {
            let inputs = OwnerInputs {
                body: body.as_ref(),
                ..OwnerInputs::default()
            };
            assert_eq!(
                check_owner(&rule, &inputs, Some(&c)).is_ok(),
                want,
                "{body:?}"
            );
        }
    }

    // ---- binding ----

    fn digest() -> CertDigest {
        CertDigest::from_bytes(core::array::from_fn(|i| i as u8))
    }

    fn thumbprint(d: &CertDigest) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_bytes())
    }

    #[test]
    fn binding_claim_equals_peer_id() {
        let rule = binding_rule(json!({"claim": "azp"}));
        let right = claims(json!({"azp": FRONTEND}));
        let wrong = claims(json!({"azp": CART}));
        assert!(check_binding(&rule, &id(FRONTEND), None, Some(&right)).is_ok());
        let d = check_binding(&rule, &id(FRONTEND), None, Some(&wrong)).unwrap_err();
        assert_eq!(d.reason, Reason::TokenNotBoundToPeer);
        assert_eq!(d.reason.status(), 401);
        let r = crate::error::reply(&d, None);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));
        assert_eq!(
            reason(check_binding(&rule, &id(CART), None, Some(&right))),
            Some(Reason::TokenNotBoundToPeer)
        );
    }

    #[test]
    fn binding_claim_through_map() {
        let rule = binding_rule(
            json!({"claim": "client_id", "map": {"web-app": FRONTEND, "cart-svc": CART}}),
        );
        let web = claims(json!({"client_id": "web-app"}));
        let unknown = claims(json!({"client_id": "mobile"}));
        let direct = claims(json!({"client_id": FRONTEND}));
        let number = claims(json!({"client_id": 7}));
        let cases: Vec<(PeerIdentity, &Claims, bool)> = vec![
            (id(FRONTEND), &web, true),
            (id(CART), &web, false),
            (id(FRONTEND), &unknown, false),
            (id(FRONTEND), &direct, true),
            (id(FRONTEND), &number, false),
            (PeerIdentity::NoMtls, &web, false),
            (
                PeerIdentity::NoIdentity(NoIdentityCause::NoUriSan),
                &web,
                false,
            ),
        ];
        for (peer, c, want) in cases {
            assert_eq!(
                check_binding(&rule, &peer, None, Some(c)).is_ok(),
                want,
                "{peer:?} {c:?}"
            );
        }
    }

    #[test]
    fn binding_cnf_thumbprint() {
        let rule = binding_rule(json!({"cnf": true}));
        assert!(rule.needs_cert_digest());
        let d = digest();
        let good = thumbprint(&d);
        let mut other_bytes = *d.as_bytes();
        other_bytes[0] ^= 1;
        let other = thumbprint(&CertDigest::from_bytes(other_bytes));
        let padded = base64::engine::general_purpose::URL_SAFE.encode(d.as_bytes());
        let std_b64 = base64::engine::general_purpose::STANDARD.encode([0xfbu8; 32]);
        let cases = [
            (json!({"cnf": {"x5t#S256": good}}), Some(&d), true),
            (json!({"cnf": {"x5t#S256": padded}}), Some(&d), true),
            (json!({"cnf": {"x5t#S256": other}}), Some(&d), false),
            (json!({"cnf": {"x5t#S256": good}}), None, false),
            (json!({"cnf": {"x5t#S256": std_b64}}), Some(&d), false),
            (json!({"cnf": {"x5t#S256": "AAAA"}}), Some(&d), false),
            (json!({"cnf": {"x5t#S256": 1}}), Some(&d), false),
            (json!({"cnf": {"jkt": good}}), Some(&d), false),
            (json!({"x5t#S256": good}), Some(&d), false),
            (json!({}), Some(&d), false),
        ];
        for (c, dg, want) in cases {
            let got = check_binding(&rule, &id(FRONTEND), dg, Some(&claims(c.clone())));
            assert_eq!(got.is_ok(), want, "{c} digest {dg:?}");
            if let Err(den) = got {
                assert_eq!(den.reason, Reason::TokenNotBoundToPeer);
            }
        }
    }

    #[test]
    fn binding_claim_and_cnf_must_both_hold() {
        let rule = binding_rule(json!({"claim": "azp", "cnf": true}));
        let d = digest();
        let both = claims(json!({"azp": FRONTEND, "cnf": {"x5t#S256": thumbprint(&d)}}));
        let claim_only = claims(json!({"azp": FRONTEND}));
        let cnf_only = claims(json!({"azp": CART, "cnf": {"x5t#S256": thumbprint(&d)}}));
        assert!(check_binding(&rule, &id(FRONTEND), Some(&d), Some(&both)).is_ok());
        assert!(check_binding(&rule, &id(FRONTEND), Some(&d), Some(&claim_only)).is_err());
        assert!(check_binding(&rule, &id(FRONTEND), Some(&d), Some(&cnf_only)).is_err());
    }

    #[test]
    fn binding_without_token_is_left_to_jwt_rules() {
        let rule = binding_rule(json!({"claim": "azp", "cnf": true}));
        assert!(check_binding(&rule, &PeerIdentity::NoMtls, None, None).is_ok());
    }
}
