//! Config for peer identity and authorization: the raw serde shapes users write and the
//! compilers that turn them into the immutable rules of [`super::authz`] and [`super::forward`].
//!
//! Decides whether a `routes[].peers`, `routes[].owner`, `routes[].binding` or top-level
//! `forward_identity` section is valid, reporting the JSON path of the first problem. It never
//! looks at a request. Shapes (all unknown fields are errors):
//!
//! ```json
//! "peers":   { "require_mtls": true, "source": "connection",
//!              "allow": ["spiffe://td/ns/shop/*", "spiffe://other"], "deny": ["spiffe://td/ns/shop/sa/legacy"] },
//! "owner":   { "param": "id", "claim": "sub", "bypass": { "claim": "role", "values": ["admin"] } },
//! "binding": { "claim": "azp", "map": { "web-app": "spiffe://td/ns/shop/sa/frontend" }, "cnf": true },
//! "forward_identity": { "peer_header": "x-peer-spiffe-id", "subject_header": "x-token-subject" }
//! ```
//!
//! `forward_identity` is top-level, not per route: incoming copies of those headers must be
//! removed from *every* request, including requests on routes without identity rules and
//! unmatched requests let through, or a client could forge them.

use std::collections::BTreeMap;

use crate::config::read::from_json_struct;
use serde::Deserialize;

use super::authz::{BindingRule, Bypass, OwnerRule, OwnerSource, PeerRule};
use super::forward::ForwardIdentity;
use super::matcher::{PeerPattern, PeerSet};
use super::peer::IdentitySource;
use super::spiffe::SpiffeId;
use crate::error::config::{index, join, ConfigError};
use crate::http;

/// Most entries accepted in one `allow` / `deny` list, in a binding map or in bypass values:
/// lists are scanned per request, so they stay small.
pub const MAX_LIST_ENTRIES: usize = 1024;

/// Longest claim, parameter or field name accepted.
const MAX_NAME_BYTES: usize = 256;

/// `routes[].peers` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawPeers {
    /// Require a client certificate. Implied by a non-empty `allow` or `deny`; `false` together
    /// with them is an error.
    #[serde(default)]
    pub require_mtls: Option<bool>,
    /// Peer patterns allowed; empty means any peer not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Peer patterns refused; checked before `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Where the peer identity comes from (`connection` or `istio_peer_principal`).
    #[serde(default)]
    pub source: IdentitySource,
}

/// `routes[].owner` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawOwner {
    /// Path template parameter holding the object owner (`id` in `/users/{id}`).
    #[serde(default)]
    pub param: Option<String>,
    /// Query parameter holding the object owner.
    #[serde(default)]
    pub query: Option<String>,
    /// Top-level JSON body field holding the object owner (checked once the body is read).
    #[serde(default)]
    pub body_field: Option<String>,
    /// Token claim the owner value must equal (or be one of, for an array claim).
    pub claim: String,
    /// Callers holding one of these claim values skip the check.
    #[serde(default)]
    pub bypass: Option<RawBypass>,
}

/// `routes[].owner.bypass` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawBypass {
    /// Token claim to look at (a string or an array of strings, e.g. `role` or `roles`).
    pub claim: String,
    /// Values that grant the bypass.
    pub values: Vec<String>,
}

/// `routes[].binding` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawBinding {
    /// Token claim (e.g. `azp`, `client_id`, `sub`) that must name the peer: equal to its SPIFFE
    /// ID, or a key of `map` whose value is the peer's SPIFFE ID.
    #[serde(default)]
    pub claim: Option<String>,
    /// Claim value -> SPIFFE ID of the workload allowed to present such tokens.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// RFC 8705: `cnf["x5t#S256"]` must be the base64url SHA-256 of the peer certificate.
    #[serde(default)]
    pub cnf: bool,
}

/// Top-level `forward_identity` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawForwardIdentity {
    /// Header carrying the peer's SPIFFE ID upstream.
    #[serde(default)]
    pub peer_header: Option<String>,
    /// Header carrying the verified token's `sub` upstream.
    #[serde(default)]
    pub subject_header: Option<String>,
}

/// Compiles `routes[i].peers`; `path` is that section's JSON path (`routes[0].peers`).
pub fn compile_peers(raw: &RawPeers, path: &str) -> Result<PeerRule, ConfigError> {
    let allow = compile_patterns(&raw.allow, &join(path, "allow"))?;
    let deny = compile_patterns(&raw.deny, &join(path, "deny"))?;
    let needs_identity = !allow.is_empty() || !deny.is_empty();
    if raw.require_mtls == Some(false) && needs_identity {
        return Err(ConfigError::new(
            join(path, "require_mtls"),
            "cannot be false when allow or deny is set: they need an mTLS peer identity",
        ));
    }
    Ok(PeerRule::new(
        raw.require_mtls.unwrap_or(false) || needs_identity,
        allow,
        deny,
        raw.source,
    ))
}

fn compile_patterns(entries: &[String], path: &str) -> Result<PeerSet, ConfigError> {
    if entries.len() > MAX_LIST_ENTRIES {
        return Err(ConfigError::new(
            path,
            format!("has more than {MAX_LIST_ENTRIES} entries"),
        ));
    }
    let mut patterns = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let pattern = PeerPattern::parse(entry)
            .map_err(|e| ConfigError::new(index(path, i), e.to_string()))?;
        patterns.push(pattern);
    }
    Ok(PeerSet::new(patterns))
}

/// Compiles `routes[i].owner`. `template_params` are the parameter names of the route's
/// `match.path` template (empty for prefix or exact routes): `param` must be one of them.
pub fn compile_owner(
    raw: &RawOwner,
    path: &str,
    template_params: &[&str],
) -> Result<OwnerRule, ConfigError> {
    let sources = [
        raw.param.as_ref().map(|p| ("param", p)),
        raw.query.as_ref().map(|q| ("query", q)),
        raw.body_field.as_ref().map(|b| ("body_field", b)),
    ];
    let mut set = sources.iter().flatten();
    let (field, name) = match (set.next(), set.next()) {
        (Some(one), None) => *one,
        (None, _) => {
            return Err(ConfigError::new(
                path,
                "needs exactly one of param, query or body_field",
            ))
        }
        (Some(_), Some((second, _))) => {
            return Err(ConfigError::new(
                join(path, second),
                "only one of param, query or body_field may be set",
            ))
        }
    };
    let field_path = join(path, field);
    check_name(name, &field_path)?;
    let source = match field {
        "param" => {
            if !template_params.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    field_path,
                    format!(
                        "'{name}' is not a parameter of the route's match.path template{}",
                        describe_params(template_params)
                    ),
                ));
            }
            OwnerSource::Param(name.clone())
        }
        "query" => OwnerSource::Query(name.clone()),
        _ => OwnerSource::BodyField(name.clone()),
    };
    check_name(&raw.claim, &join(path, "claim"))?;
    let bypass = match &raw.bypass {
        None => None,
        Some(b) => {
            let bypass_path = join(path, "bypass");
            check_name(&b.claim, &join(&bypass_path, "claim"))?;
            let values_path = join(&bypass_path, "values");
            if b.values.is_empty() {
                return Err(ConfigError::new(
                    values_path,
                    "must list at least one value",
                ));
            }
            if b.values.len() > MAX_LIST_ENTRIES {
                return Err(ConfigError::new(
                    values_path,
                    format!("has more than {MAX_LIST_ENTRIES} entries"),
                ));
            }
            if let Some(i) = b.values.iter().position(String::is_empty) {
                return Err(ConfigError::new(
                    index(&values_path, i),
                    "must not be empty",
                ));
            }
            Some(Bypass::new(b.claim.clone(), b.values.clone()))
        }
    };
    Ok(OwnerRule::new(source, raw.claim.clone(), bypass))
}

fn describe_params(params: &[&str]) -> String {
    if params.is_empty() {
        " (it has none)".to_string()
    } else {
        format!(" ({})", params.join(", "))
    }
}

fn check_name(name: &str, path: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ConfigError::new(
            path,
            format!("is longer than {MAX_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Compiles `routes[i].binding`.
pub fn compile_binding(raw: &RawBinding, path: &str) -> Result<BindingRule, ConfigError> {
    if raw.claim.is_none() && !raw.cnf {
        return Err(ConfigError::new(
            path,
            "needs claim, cnf: true, or both (otherwise it binds nothing)",
        ));
    }
    if let Some(claim) = &raw.claim {
        check_name(claim, &join(path, "claim"))?;
    }
    let map_path = join(path, "map");
    if !raw.map.is_empty() && raw.claim.is_none() {
        return Err(ConfigError::new(map_path, "needs claim to be set"));
    }
    if raw.map.len() > MAX_LIST_ENTRIES {
        return Err(ConfigError::new(
            map_path,
            format!("has more than {MAX_LIST_ENTRIES} entries"),
        ));
    }
    let mut map = BTreeMap::new();
    for (key, value) in &raw.map {
        let entry_path = join(&map_path, key);
        if key.is_empty() {
            return Err(ConfigError::new(map_path, "keys must not be empty"));
        }
        let id = SpiffeId::parse(value).map_err(|e| {
            ConfigError::new(
                &entry_path,
                format!("not a SPIFFE ID (no patterns here): {e}"),
            )
        })?;
        if id.is_trust_domain_id() {
            return Err(ConfigError::new(
                entry_path,
                "must be a workload SPIFFE ID with a path, not a trust domain",
            ));
        }
        map.insert(key.clone(), id);
    }
    Ok(BindingRule::new(raw.claim.clone(), map, raw.cnf))
}

/// Compiles the top-level `forward_identity`; `path` is normally `forward_identity`.
pub fn compile_forward_identity(
    raw: &RawForwardIdentity,
    path: &str,
) -> Result<ForwardIdentity, ConfigError> {
    if raw.peer_header.is_none() && raw.subject_header.is_none() {
        return Err(ConfigError::new(
            path,
            "needs peer_header, subject_header, or both",
        ));
    }
    let peer = raw
        .peer_header
        .as_deref()
        .map(|h| header_name(h, &join(path, "peer_header")))
        .transpose()?;
    let subject = raw
        .subject_header
        .as_deref()
        .map(|h| header_name(h, &join(path, "subject_header")))
        .transpose()?;
    if peer.is_some() && peer == subject {
        return Err(ConfigError::new(
            join(path, "subject_header"),
            "must differ from peer_header",
        ));
    }
    Ok(ForwardIdentity::new(peer, subject))
}

/// A header name as HTTP/2 needs it: an RFC 9110 token, lowercased (Envoy matches lowercase),
/// and not one that frames, routes or authenticates the request.
fn header_name(name: &str, path: &str) -> Result<String, ConfigError> {
    let lower = http::name::lower(name).map_err(|e| ConfigError::new(path, e.describe()))?;
    if http::name::is_reserved(&lower) {
        return Err(ConfigError::new(
            path,
            format!("'{lower}' is reserved and cannot carry an identity"),
        ));
    }
    Ok(lower)
}

from_json_struct!(RawPeers {
    require_mtls: get,
    allow: get,
    deny: get,
    source: get,
});

from_json_struct!(RawOwner {
    param: get,
    query: get,
    body_field: get,
    claim: req,
    bypass: get,
});

from_json_struct!(RawBypass {
    claim: req,
    values: req,
});

from_json_struct!(RawBinding {
    claim: get,
    map: get,
    cnf: get,
});

from_json_struct!(RawForwardIdentity {
    peer_header: get,
    subject_header: get,
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn peers(v: serde_json::Value) -> Result<PeerRule, ConfigError> {
        let raw: RawPeers = crate::config::read::from_value(v).unwrap();
        compile_peers(&raw, "routes[0].peers")
    }

    fn owner(v: serde_json::Value, params: &[&str]) -> Result<OwnerRule, ConfigError> {
        let raw: RawOwner = crate::config::read::from_value(v).unwrap();
        compile_owner(&raw, "routes[0].owner", params)
    }

    fn binding(v: serde_json::Value) -> Result<BindingRule, ConfigError> {
        let raw: RawBinding = crate::config::read::from_value(v).unwrap();
        compile_binding(&raw, "routes[0].binding")
    }

    fn forward(v: serde_json::Value) -> Result<ForwardIdentity, ConfigError> {
        let raw: RawForwardIdentity = crate::config::read::from_value(v).unwrap();
        compile_forward_identity(&raw, "forward_identity")
    }

    fn err_path<T: std::fmt::Debug>(r: Result<T, ConfigError>) -> String {
        r.unwrap_err().path
    }

    #[test]
    fn contract_example_peers_compile() {
        let rule = peers(json!({"require_mtls": true, "allow": [
            "spiffe://cluster.local/ns/shop/sa/frontend", "spiffe://cluster.local/ns/shop/*"]}))
        .unwrap();
        assert!(rule.require_mtls());
        assert_eq!(rule.source(), IdentitySource::Connection);
    }

    #[test]
    fn allow_or_deny_implies_mtls() {
        assert!(peers(json!({"allow": ["spiffe://td"]}))
            .unwrap()
            .require_mtls());
        assert!(peers(json!({"deny": ["spiffe://td"]}))
            .unwrap()
            .require_mtls());
        assert!(!peers(json!({})).unwrap().require_mtls());
        assert!(!peers(json!({"require_mtls": false}))
            .unwrap()
            .require_mtls());
    }

    #[test]
    fn peers_errors_carry_json_paths() {
        let cases = [
            (
                json!({"allow": ["spiffe://td", "spiffe://td/a/*/b"]}),
                "routes[0].peers.allow[1]",
            ),
            (json!({"deny": ["spiffe://TD"]}), "routes[0].peers.deny[0]"),
            (
                json!({"require_mtls": false, "allow": ["spiffe://td"]}),
                "routes[0].peers.require_mtls",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(err_path(peers(v.clone())), want, "{v}");
        }
        let too_many: Vec<String> = (0..=MAX_LIST_ENTRIES)
            .map(|i| format!("spiffe://td/{i}"))
            .collect();
        assert_eq!(
            err_path(peers(json!({"allow": too_many}))),
            "routes[0].peers.allow"
        );
    }

    #[test]
    fn raw_types_reject_unknown_fields_and_sources() {
        assert!(
            crate::config::read::from_value::<RawPeers>(json!({"allow": [], "alow": []})).is_err()
        );
        assert!(crate::config::read::from_value::<RawPeers>(json!({"source": "sidecar"})).is_err());
        let raw: RawPeers =
            crate::config::read::from_value(json!({"source": "istio_peer_principal"})).unwrap();
        assert_eq!(
            compile_peers(&raw, "p").unwrap().source(),
            IdentitySource::IstioPeerPrincipal
        );
        assert!(crate::config::read::from_value::<RawOwner>(
            json!({"param": "id", "claim": "sub", "x": 1})
        )
        .is_err());
        assert!(crate::config::read::from_value::<RawOwner>(json!({"param": "id"})).is_err());
        assert!(crate::config::read::from_value::<RawBinding>(
            json!({"cnf": true, "claims": "azp"})
        )
        .is_err());
        assert!(
            crate::config::read::from_value::<RawForwardIdentity>(json!({"peer": "x"})).is_err()
        );
    }

    #[test]
    fn owner_needs_exactly_one_source() {
        assert!(owner(json!({"param": "id", "claim": "sub"}), &["id"]).is_ok());
        assert!(owner(json!({"query": "user", "claim": "sub"}), &[]).is_ok());
        assert!(owner(json!({"body_field": "owner", "claim": "sub"}), &[]).is_ok());
        assert_eq!(
            err_path(owner(json!({"claim": "sub"}), &[])),
            "routes[0].owner"
        );
        assert_eq!(
            err_path(owner(
                json!({"param": "id", "query": "id", "claim": "sub"}),
                &["id"]
            )),
            "routes[0].owner.query"
        );
    }

    #[test]
    fn owner_param_must_be_in_the_template() {
        let e = owner(json!({"param": "user", "claim": "sub"}), &["id", "org"]).unwrap_err();
        assert_eq!(e.path, "routes[0].owner.param");
        assert!(e.problem.contains("(id, org)"), "{}", e.problem);
        let e = owner(json!({"param": "id", "claim": "sub"}), &[]).unwrap_err();
        assert!(e.problem.contains("it has none"), "{}", e.problem);
    }

    #[test]
    fn owner_names_and_bypass_are_checked() {
        assert_eq!(
            err_path(owner(json!({"param": "id", "claim": ""}), &["id"])),
            "routes[0].owner.claim"
        );
        assert_eq!(
            err_path(owner(json!({"query": "", "claim": "sub"}), &[])),
            "routes[0].owner.query"
        );
        assert_eq!(
            err_path(owner(
                json!({"param": "id", "claim": "sub", "bypass": {"claim": "role", "values": []}}),
                &["id"]
            )),
            "routes[0].owner.bypass.values"
        );
        assert_eq!(
            err_path(owner(
                json!({"param": "id", "claim": "sub", "bypass": {"claim": "role", "values": ["admin", ""]}}),
                &["id"]
            )),
            "routes[0].owner.bypass.values[1]"
        );
        assert_eq!(
            err_path(owner(
                json!({"param": "id", "claim": "sub", "bypass": {"claim": "", "values": ["a"]}}),
                &["id"]
            )),
            "routes[0].owner.bypass.claim"
        );
    }

    #[test]
    fn binding_validation() {
        assert!(binding(json!({"claim": "azp"})).is_ok());
        assert!(binding(json!({"cnf": true})).is_ok());
        assert!(binding(
            json!({"claim": "client_id", "map": {"web": "spiffe://td/ns/a/sa/web"}, "cnf": true})
        )
        .is_ok());
        assert_eq!(err_path(binding(json!({}))), "routes[0].binding");
        assert_eq!(
            err_path(binding(json!({"cnf": false}))),
            "routes[0].binding"
        );
        assert_eq!(
            err_path(binding(
                json!({"map": {"web": "spiffe://td/a"}, "cnf": true})
            )),
            "routes[0].binding.map"
        );
        assert_eq!(
            err_path(binding(
                json!({"claim": "azp", "map": {"web": "spiffe://td/a/*"}})
            )),
            "routes[0].binding.map.web"
        );
        assert_eq!(
            err_path(binding(
                json!({"claim": "azp", "map": {"web": "spiffe://td"}})
            )),
            "routes[0].binding.map.web"
        );
        assert_eq!(
            err_path(binding(json!({"claim": ""}))),
            "routes[0].binding.claim"
        );
    }

    #[test]
    fn forward_identity_validation() {
        let f = forward(json!({"peer_header": "X-Peer-ID", "subject_header": "x-sub"})).unwrap();
        assert_eq!(f.peer_header(), Some("x-peer-id"));
        assert_eq!(f.subject_header(), Some("x-sub"));
        assert_eq!(err_path(forward(json!({}))), "forward_identity");
        let cases = [
            (json!({"peer_header": ""}), "forward_identity.peer_header"),
            (
                json!({"peer_header": ":authority"}),
                "forward_identity.peer_header",
            ),
            (
                json!({"peer_header": "x peer"}),
                "forward_identity.peer_header",
            ),
            (
                json!({"subject_header": "Authorization"}),
                "forward_identity.subject_header",
            ),
            (
                json!({"subject_header": "host"}),
                "forward_identity.subject_header",
            ),
            (
                json!({"peer_header": "x-id", "subject_header": "X-ID"}),
                "forward_identity.subject_header",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(err_path(forward(v.clone())), want, "{v}");
        }
    }
}
