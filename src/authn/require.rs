//! Does a verified token meet a route's requirement? Scopes (all required) and claims (each
//! constrained claim must have one of the listed values).
//!
//! Scopes come from `scope` (a space-delimited string, RFC 8693) or `scp` (an array of strings,
//! or a space-delimited string as some issuers send it). An array claim matches when any of its
//! elements is an accepted value. This module never verifies a token; it only reads claims.

use super::config::JwtRequirement;
use super::verify::VerifiedToken;
use crate::error::{Denial, Reason};
use serde_json::Value;

/// Why a valid token does not meet the requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequirementError {
    /// A required scope is not granted (the first missing one).
    InsufficientScope(String),
    /// A constrained claim is absent or has no accepted value (the claim's name).
    ClaimMismatch(String),
}

impl RequirementError {
    /// The reason code.
    pub fn reason(&self) -> Reason {
        match self {
            RequirementError::InsufficientScope(_) => Reason::JwtInsufficientScope,
            RequirementError::ClaimMismatch(_) => Reason::JwtClaimMismatch,
        }
    }

    /// The 403 denial. Names come from the config (never from the token); a scope failure
    /// lists the route's scopes in the RFC 6750 challenge.
    pub fn to_denial(&self, req: &JwtRequirement) -> Denial {
        match self {
            RequirementError::InsufficientScope(scope) => Denial::new(self.reason())
                .with_detail(format!("missing scope {scope}"))
                .with_header(
                    "www-authenticate",
                    format!(
                        "Bearer realm=\"meshguard\", error=\"insufficient_scope\", scope=\"{}\"",
                        req.scopes.join(" ")
                    ),
                ),
            RequirementError::ClaimMismatch(claim) => Denial::new(self.reason())
                .with_detail(format!("claim {claim} is not accepted on this route")),
        }
    }
}

/// Checks the route's scopes and claims against a verified token.
pub fn check(req: &JwtRequirement, token: &VerifiedToken) -> Result<(), RequirementError> {
    if let Some(missing) = req.scopes.iter().find(|s| !has_scope(token, s)) {
        return Err(RequirementError::InsufficientScope(missing.clone()));
    }
    for rule in &req.claims {
        let ok = match token.claim(&rule.claim) {
            Some(Value::Array(items)) => items.iter().any(|v| rule.allowed.contains(v)),
            Some(v) => rule.allowed.contains(v),
            None => false,
        };
        if !ok {
            return Err(RequirementError::ClaimMismatch(rule.claim.clone()));
        }
    }
    Ok(())
}

fn has_scope(token: &VerifiedToken, scope: &str) -> bool {
    let in_value = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.split(' ').any(|x| x == scope),
        Some(Value::Array(items)) => items.iter().any(|x| x.as_str() == Some(scope)),
        _ => false,
    };
    in_value(token.claims.get("scope")) || in_value(token.claims.get("scp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::config::{compile_requirement, RawJwtRequirement};
    use crate::authn::testkit::*;
    use crate::authn::verify::verify;
    use serde_json::json;

    fn verified(claims: Value) -> VerifiedToken {
        let p = provider();
        let keys = match &p.keys {
            crate::authn::config::KeySource::Static(k) => k.clone(),
            _ => unreachable!(),
        };
        verify(&token("ed25519", "EdDSA", claims), &p, &keys, NOW).unwrap()
    }

    fn requirement(v: Value) -> JwtRequirement {
        let ps = providers(json!({ "main": provider_json() }));
        let raw: RawJwtRequirement = crate::config::read::from_value(v).unwrap();
        compile_requirement(&raw, &ps, "routes[0].jwt").unwrap()
    }

    fn with(extra: Value) -> Value {
        let mut c = good_claims();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn scopes_from_space_delimited_scope_claim() {
        let t = verified(good_claims());
        let r = requirement(json!({ "providers": ["main"], "scopes": ["users:read"] }));
        assert_eq!(check(&r, &t), Ok(()));
        let r = requirement(json!({ "providers": ["main"], "scopes": ["users:read", "admin"] }));
        assert_eq!(
            check(&r, &t),
            Err(RequirementError::InsufficientScope("admin".into()))
        );
    }

    #[test]
    fn scopes_from_scp_array_or_string() {
        let r = requirement(json!({ "providers": ["main"], "scopes": ["admin"] }));
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["admin", "x"]);
        assert_eq!(check(&r, &verified(c.clone())), Ok(()));
        c["scp"] = json!("x admin");
        assert_eq!(check(&r, &verified(c)), Ok(()));
    }

    #[test]
    fn scope_is_not_a_substring_match() {
        let r = requirement(json!({ "providers": ["main"], "scopes": ["users"] }));
        let t = verified(good_claims());
        assert!(matches!(
            check(&r, &t),
            Err(RequirementError::InsufficientScope(_))
        ));
    }

    #[test]
    fn claim_must_have_an_accepted_value() {
        let r = requirement(json!({ "providers": ["main"], "claims": { "tenant": ["a", "b"] } }));
        assert_eq!(check(&r, &verified(good_claims())), Ok(()));
        assert_eq!(
            check(&r, &verified(with(json!({ "tenant": "c" })))),
            Err(RequirementError::ClaimMismatch("tenant".into()))
        );
        let mut missing = good_claims();
        missing.as_object_mut().unwrap().remove("tenant");
        assert!(check(&r, &verified(missing)).is_err());
    }

    #[test]
    fn array_claim_matches_if_any_element_does() {
        let r = requirement(json!({ "providers": ["main"], "claims": { "groups": ["ops"] } }));
        assert_eq!(
            check(&r, &verified(with(json!({ "groups": ["dev", "ops"] })))),
            Ok(())
        );
        assert!(check(&r, &verified(with(json!({ "groups": ["dev"] })))).is_err());
    }

    #[test]
    fn nested_and_non_string_claims() {
        let r = requirement(json!({ "providers": ["main"],
            "claims": { "realm_access.roles": ["admin"], "level": [3], "mfa": [true] } }));
        let t = verified(with(
            json!({ "realm_access": { "roles": ["user", "admin"] },
                                       "level": 3, "mfa": true }),
        ));
        assert_eq!(check(&r, &t), Ok(()));
        let t = verified(with(json!({ "realm_access": { "roles": ["admin"] },
                                       "level": "3", "mfa": true })));
        assert_eq!(
            check(&r, &t),
            Err(RequirementError::ClaimMismatch("level".into()))
        );
    }

    #[test]
    fn denials_are_403_with_insufficient_scope_challenge() {
        let r = requirement(json!({ "providers": ["main"], "scopes": ["a", "b"] }));
        let d = RequirementError::InsufficientScope("b".into()).to_denial(&r);
        let reply = crate::error::reply(&d, None);
        assert_eq!(reply.status, 403);
        let challenges: Vec<_> = reply
            .headers
            .iter()
            .filter(|(k, _)| k == "www-authenticate")
            .collect();
        assert_eq!(challenges.len(), 1);
        assert!(challenges[0].1.contains("scope=\"a b\""));
        let d = RequirementError::ClaimMismatch("tenant".into()).to_denial(&r);
        assert_eq!(crate::error::reply(&d, None).status, 403);
    }
}
