//! Header rules: required, forbidden, and value patterns.
//!
//! It decides whether the request's headers satisfy the route's `headers` rules (else 400
//! `header_invalid`). Names compare case-insensitively; a pattern applies to every value of its
//! header and, as in JSON Schema, is unanchored (write `^...$` to match the whole value). It
//! never echoes a header value: the detail names the header and the rule only.

use serde::Deserialize;

use super::pattern::Pattern;

use crate::error::config::{index, join, ConfigError};
use crate::error::{Denial, Reason};

/// One `routes[].request.headers[]` entry as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHeaderRule {
    /// Header name (any case).
    pub name: String,
    /// The header must be present.
    #[serde(default)]
    pub required: bool,
    /// The header must be absent.
    #[serde(default)]
    pub forbidden: bool,
    /// Every value must match this regular expression (unanchored; the ECMA-262 subset of [`super::pattern`]).
    #[serde(default)]
    pub pattern: Option<String>,
}

/// A compiled header rule.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    name: String,
    required: bool,
    forbidden: bool,
    pattern: Option<Pattern>,
}

impl HeaderRule {
    /// The lower-case header name the rule reads.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Valid header names: an HTTP token ([`crate::http::name::check`]), lower-cased; a leading
/// `:` admits pseudo-headers.
fn header_name(name: &str) -> Option<String> {
    let body = name.strip_prefix(':').unwrap_or(name);
    crate::http::name::check(body)
        .is_ok()
        .then(|| name.to_ascii_lowercase())
}

/// Compiles a regular expression from config (size-bounded, linear-time).
pub(crate) fn compile_pattern(pattern: &str, at: &str) -> Result<Pattern, ConfigError> {
    Pattern::new(pattern)
        .map_err(|e| ConfigError::new(at, format!("unsupported regular expression: {e}")))
}

/// Compiles the `headers` list found at config path `at`.
pub fn compile(raw: &[RawHeaderRule], at: &str) -> Result<Vec<HeaderRule>, ConfigError> {
    let mut rules: Vec<HeaderRule> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let here = index(at, i);
        let Some(name) = header_name(&r.name) else {
            return Err(ConfigError::new(
                join(&here, "name"),
                format!("{:?} is not a valid header name", r.name),
            ));
        };
        if rules.iter().any(|x| x.name == name) {
            return Err(ConfigError::new(
                join(&here, "name"),
                format!("header {name:?} has a rule already; merge them"),
            ));
        }
        if r.forbidden && (r.required || r.pattern.is_some()) {
            return Err(ConfigError::new(
                join(&here, "forbidden"),
                "a forbidden header cannot also be required or have a pattern",
            ));
        }
        if !r.required && !r.forbidden && r.pattern.is_none() {
            return Err(ConfigError::new(
                here,
                "rule does nothing: set required, forbidden or pattern",
            ));
        }
        let pattern = match &r.pattern {
            Some(p) => Some(compile_pattern(p, &join(&here, "pattern"))?),
            None => None,
        };
        rules.push(HeaderRule {
            name,
            required: r.required,
            forbidden: r.forbidden,
            pattern,
        });
    }
    Ok(rules)
}

fn invalid(detail: String) -> Denial {
    Denial::new(Reason::HeaderInvalid).with_detail(detail)
}

/// Checks `headers` (name, value pairs as the host gives them) against `rules`.
pub fn check<S: AsRef<str>>(rules: &[HeaderRule], headers: &[(S, S)]) -> Result<(), Denial> {
    for rule in rules {
        let mut present = false;
        for (n, v) in headers {
            if !n.as_ref().eq_ignore_ascii_case(&rule.name) {
                continue;
            }
            present = true;
            if rule.forbidden {
                return Err(invalid(format!("header {:?} is not allowed", rule.name)));
            }
            if let Some(p) = &rule.pattern {
                if !p.is_match(v.as_ref()) {
                    return Err(invalid(format!(
                        "header {:?} does not match its pattern",
                        rule.name
                    )));
                }
            }
        }
        if rule.required && !present {
            return Err(invalid(format!("header {:?} is required", rule.name)));
        }
    }
    Ok(())
}

crate::config::read::from_json_struct!(RawHeaderRule {
    name: req,
    required: get,
    forbidden: get,
    pattern: get,
});

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Vec<RawHeaderRule> {
        serde_json::from_str(json).unwrap()
    }

    fn rules() -> Vec<HeaderRule> {
        compile(
            &raw(r#"[
                {"name": "X-Api-Version", "required": true, "pattern": "^v[12]$"},
                {"name": "x-debug", "forbidden": true},
                {"name": "x-trace", "pattern": "^[0-9a-f]{16}$"}
            ]"#),
            "routes[0].request.headers",
        )
        .unwrap()
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn accepts_conforming_headers_in_any_case() {
        assert!(check(&rules(), &h(&[("x-api-version", "v1")])).is_ok());
        assert!(check(
            &rules(),
            &h(&[("X-API-VERSION", "v2"), ("x-trace", "0123456789abcdef")])
        )
        .is_ok());
    }

    #[test]
    fn missing_required_header_is_header_invalid() {
        let d = check(&rules(), &h(&[("other", "1")])).unwrap_err();
        assert_eq!(d.reason, Reason::HeaderInvalid);
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"header "x-api-version" is required"#)
        );
    }

    #[test]
    fn forbidden_header_is_refused() {
        let d = check(&rules(), &h(&[("x-api-version", "v1"), ("X-Debug", "1")])).unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"header "x-debug" is not allowed"#)
        );
    }

    #[test]
    fn pattern_applies_to_every_value_and_never_echoes_it() {
        let d = check(
            &rules(),
            &h(&[("x-api-version", "v1"), ("x-api-version", "v3-secret")]),
        )
        .unwrap_err();
        let detail = d.detail.unwrap();
        assert!(detail.contains("does not match"));
        assert!(!detail.contains("secret"));
    }

    #[test]
    fn invalid_rules_name_their_path() {
        let cases = [
            (r#"[{"name": "bad name", "required": true}]"#, "h[0].name"),
            (
                r#"[{"name": "a", "forbidden": true, "required": true}]"#,
                "h[0].forbidden",
            ),
            (r#"[{"name": "a", "pattern": "("}]"#, "h[0].pattern"),
            (r#"[{"name": "a"}]"#, "h[0]"),
            (
                r#"[{"name": "a", "required": true}, {"name": "A", "forbidden": true}]"#,
                "h[1].name",
            ),
        ];
        for (json, path) in cases {
            assert_eq!(compile(&raw(json), "h").unwrap_err().path, path, "{json}");
        }
        assert!(serde_json::from_str::<Vec<RawHeaderRule>>(r#"[{"name":"a","nope":1}]"#).is_err());
    }
}
