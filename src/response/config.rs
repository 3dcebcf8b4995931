//! Raw config of the response side (`routes[].response`, `security_headers`, `cors`,
//! `mask_upstream_errors`) and its compilation. Every error names the JSON path at fault.

use super::cors::{CorsPolicy, OriginPattern, DEFAULT_METHODS};
use super::headers::{
    valid_name, valid_value, SecurityHeaders, DEFAULT_REMOVE, DEFAULT_SET, RESERVED,
};
use super::pointer::FieldPointer;
use super::strip::{StripField, Visibility};
use super::{OnMismatch, ResponseRules};
use crate::config::read::{from_json_enum, from_json_struct, At, Fields, FromJson};
use crate::error::config::{index, join, ConfigError};
use crate::routing::matcher::parse_method;
use crate::validate::schema::SchemaCompiler;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Largest response body meshguard buffers when `max_body_bytes` is not set.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Ceiling for `max_body_bytes`.
pub const MAX_BODY_BYTES_CEILING: u64 = 16 * 1024 * 1024;
/// Ceiling for `max_age_seconds` (browsers cap it lower still).
pub const MAX_AGE_CEILING: u32 = 86_400;

/// `routes[].response`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawResponse {
    /// Field pointers removed from JSON responses.
    #[serde(default)]
    pub strip_fields: Vec<RawStripField>,
    /// JSON Schema of 2xx JSON responses.
    #[serde(default)]
    pub body_schema: Option<Value>,
    /// What a schema mismatch does: `deny` (default), `strip` or `report`.
    #[serde(default)]
    pub on_schema_mismatch: Option<RawOnMismatch>,
    /// Largest body buffered and checked.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Longest array anywhere in the document.
    #[serde(default)]
    pub max_array_len: Option<u32>,
}

/// A `strip_fields` entry: a pointer, or a pointer with the callers who keep the field.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum RawStripField {
    /// Stripped for everyone.
    Pointer(String),
    /// Stripped unless the caller is in `visible_to`.
    Rule(RawStripRule),
}

/// `{"pointer": "/ssn", "visible_to": {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawStripRule {
    /// The field.
    pub pointer: String,
    /// Callers who keep it.
    #[serde(default)]
    pub visible_to: Option<RawVisibleTo>,
}

/// `visible_to`: scopes (all required) and claims (one accepted value each).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawVisibleTo {
    /// Required scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Claim -> accepted values.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<Value>>,
}

/// `on_schema_mismatch`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RawOnMismatch {
    /// 502 problem.
    Deny,
    /// Remove members the schema does not allow; deny other mismatches.
    Strip,
    /// Log and count; pass unchanged.
    Report,
}

/// `security_headers`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    /// Include meshguard's defaults (nosniff; banner removal). Default true.
    #[serde(default = "yes")]
    pub defaults: bool,
    /// Headers to set (replacing upstream values).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// `Strict-Transport-Security`.
    #[serde(default)]
    pub strict_transport_security: Option<RawHsts>,
}

fn yes() -> bool {
    true
}

/// `strict_transport_security`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawHsts {
    /// `max-age`.
    pub max_age_seconds: u32,
    /// `includeSubDomains`.
    #[serde(default)]
    pub include_subdomains: bool,
    /// `preload`.
    #[serde(default)]
    pub preload: bool,
}

/// `cors` (top level or per route).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Origins: exact, `*.suffix`, or `*`.
    pub allow_origins: Vec<String>,
    /// Methods (default GET, HEAD, POST).
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Cookies and credentials allowed.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Preflight cache time.
    #[serde(default)]
    pub max_age_seconds: Option<u32>,
}

/// Compiles `routes[i].response`.
pub fn compile_response(raw: &RawResponse, at: &str) -> Result<ResponseRules, ConfigError> {
    let mut strip = Vec::with_capacity(raw.strip_fields.len());
    for (i, f) in raw.strip_fields.iter().enumerate() {
        let f_at = index(&join(at, "strip_fields"), i);
        let (pointer, p_at, visible) = match f {
            RawStripField::Pointer(p) => (p, f_at.clone(), None),
            RawStripField::Rule(r) => (&r.pointer, join(&f_at, "pointer"), r.visible_to.as_ref()),
        };
        let pointer =
            FieldPointer::parse(pointer).map_err(|e| ConfigError::new(p_at, e.describe()))?;
        let visible_to = visible
            .map(|v| compile_visibility(v, &join(&f_at, "visible_to")))
            .transpose()?;
        strip.push(StripField {
            pointer,
            visible_to,
        });
    }
    let schema = raw
        .body_schema
        .as_ref()
        .map(|s| SchemaCompiler::new().compile(s, &join(at, "body_schema")))
        .transpose()?;
    let on_mismatch = match raw.on_schema_mismatch {
        None | Some(RawOnMismatch::Deny) => OnMismatch::Deny,
        Some(RawOnMismatch::Strip) => OnMismatch::Strip,
        Some(RawOnMismatch::Report) => OnMismatch::Report,
    };
    if raw.on_schema_mismatch.is_some() && schema.is_none() {
        return Err(ConfigError::new(
            join(at, "on_schema_mismatch"),
            "needs a body_schema",
        ));
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 || max_body_bytes > MAX_BODY_BYTES_CEILING {
        return Err(ConfigError::new(
            join(at, "max_body_bytes"),
            format!("must be 1-{MAX_BODY_BYTES_CEILING}"),
        ));
    }
    if raw.max_array_len == Some(0) {
        return Err(ConfigError::new(
            join(at, "max_array_len"),
            "must be at least 1",
        ));
    }
    Ok(ResponseRules {
        strip,
        schema,
        on_mismatch,
        max_body_bytes,
        max_array_len: raw.max_array_len,
    })
}

fn compile_visibility(raw: &RawVisibleTo, at: &str) -> Result<Visibility, ConfigError> {
    if raw.scopes.is_empty() && raw.claims.is_empty() {
        return Err(ConfigError::new(
            at,
            "name at least one scope or claim (an empty visible_to would show the field to every token)",
        ));
    }
    for (i, s) in raw.scopes.iter().enumerate() {
        if s.is_empty() || s.contains(' ') {
            return Err(ConfigError::new(
                index(&join(at, "scopes"), i),
                "a scope is one non-empty word",
            ));
        }
    }
    let mut claims = Vec::new();
    for (name, values) in &raw.claims {
        let c_at = join(&join(at, "claims"), name);
        if values.is_empty() {
            return Err(ConfigError::new(c_at, "list at least one accepted value"));
        }
        for (i, v) in values.iter().enumerate() {
            if v.is_object() || v.is_array() {
                return Err(ConfigError::new(
                    index(&c_at, i),
                    "accepted values are strings, numbers or booleans",
                ));
            }
        }
        claims.push((name.clone(), values.clone()));
    }
    Ok(Visibility {
        scopes: raw.scopes.clone(),
        claims,
    })
}

/// Compiles `security_headers`.
pub fn compile_security_headers(
    raw: &RawSecurityHeaders,
    at: &str,
) -> Result<SecurityHeaders, ConfigError> {
    let mut out = SecurityHeaders::default();
    if raw.defaults {
        out.set = DEFAULT_SET
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        out.remove = DEFAULT_REMOVE.iter().map(|s| (*s).to_string()).collect();
    }
    for (name, value) in &raw.set {
        let h_at = join(&join(at, "set"), name);
        check_name(name, &h_at)?;
        if !valid_value(value) {
            return Err(ConfigError::new(
                h_at,
                "a header value is visible ASCII (spaces inside only)",
            ));
        }
        out.set.retain(|(k, _)| k != name);
        out.remove.retain(|k| k != name);
        out.set.push((name.clone(), value.clone()));
    }
    for (i, name) in raw.remove.iter().enumerate() {
        let h_at = index(&join(at, "remove"), i);
        check_name(name, &h_at)?;
        if out.set.iter().any(|(k, _)| k == name) {
            return Err(ConfigError::new(h_at, "this header is also in \"set\""));
        }
        if !out.remove.contains(name) {
            out.remove.push(name.clone());
        }
    }
    if let Some(h) = &raw.strict_transport_security {
        if h.max_age_seconds == 0 {
            return Err(ConfigError::new(
                join(&join(at, "strict_transport_security"), "max_age_seconds"),
                "must be at least 1 (a zero max-age tells browsers to forget HSTS)",
            ));
        }
        let mut v = format!("max-age={}", h.max_age_seconds);
        if h.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if h.preload {
            v.push_str("; preload");
        }
        out.set.retain(|(k, _)| k != "strict-transport-security");
        out.set.push(("strict-transport-security".into(), v));
    }
    Ok(out)
}

fn check_name(name: &str, at: &str) -> Result<(), ConfigError> {
    if !valid_name(name) {
        return Err(ConfigError::new(
            at,
            "a header name is lower-case token characters",
        ));
    }
    if RESERVED.contains(&name) || name.starts_with("access-control-") {
        return Err(ConfigError::new(
            at,
            "framing, content and CORS headers cannot be set or removed here",
        ));
    }
    Ok(())
}

/// Compiles a `cors` block.
pub fn compile_cors(raw: &RawCors, at: &str) -> Result<CorsPolicy, ConfigError> {
    let o_at = join(at, "allow_origins");
    if raw.allow_origins.is_empty() {
        return Err(ConfigError::new(
            o_at,
            "list at least one origin (\"https://app.example.com\", \"*.example.com\" or \"*\")",
        ));
    }
    let mut any_origin = false;
    let mut origins = Vec::new();
    for (i, o) in raw.allow_origins.iter().enumerate() {
        if o == "*" {
            if raw.allow_credentials {
                return Err(ConfigError::new(
                    index(&o_at, i),
                    "\"*\" cannot be combined with allow_credentials: true (browsers refuse it, and reflecting any origin with credentials lets every site act as the user); list the origins",
                ));
            }
            any_origin = true;
            continue;
        }
        let p = OriginPattern::parse(o).ok_or_else(|| {
            ConfigError::new(
                index(&o_at, i),
                "an origin is scheme://host[:port] (no path), \"*.example.com\" or \"scheme://*.example.com\"",
            )
        })?;
        origins.push(p);
    }
    let methods = match &raw.allow_methods {
        None => DEFAULT_METHODS.iter().map(|m| (*m).to_string()).collect(),
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                join(at, "allow_methods"),
                "list at least one method, or omit it for GET, HEAD, POST",
            ))
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, m)| parse_method(m, &index(&join(at, "allow_methods"), i)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let names = |list: &[String], field: &str| -> Result<Vec<String>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, h)| {
                let lower = h.to_ascii_lowercase();
                if valid_name(&lower) && lower != "*" {
                    Ok(lower)
                } else {
                    Err(ConfigError::new(
                        index(&join(at, field), i),
                        "a header name (\"*\" is not supported: list the headers)",
                    ))
                }
            })
            .collect()
    };
    let allow_headers = names(&raw.allow_headers, "allow_headers")?;
    let expose_headers = names(&raw.expose_headers, "expose_headers")?;
    if let Some(age) = raw.max_age_seconds {
        if age > MAX_AGE_CEILING {
            return Err(ConfigError::new(
                join(at, "max_age_seconds"),
                format!("at most {MAX_AGE_CEILING}"),
            ));
        }
    }
    Ok(CorsPolicy {
        any_origin,
        origins,
        methods,
        allow_headers,
        expose_headers,
        credentials: raw.allow_credentials,
        max_age_seconds: raw.max_age_seconds,
    })
}

from_json_struct!(RawResponse {
    strip_fields: get,
    body_schema: get,
    on_schema_mismatch: get,
    max_body_bytes: get,
    max_array_len: get,
});

impl FromJson for RawStripField {
    /// A JSON pointer string, or a rule object.
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        match v {
            Value::String(s) => Ok(RawStripField::Pointer(s.clone())),
            Value::Object(_) => RawStripRule::from_json(v, at).map(RawStripField::Rule),
            _ => Err(at.wrong_type(v, "a JSON pointer string or an object")),
        }
    }
}

from_json_struct!(RawStripRule {
    pointer: req,
    visible_to: get,
});

from_json_struct!(RawVisibleTo {
    scopes: get,
    claims: get,
});

from_json_enum!(RawOnMismatch {
    Deny = "deny",
    Strip = "strip",
    Report = "report",
});

impl FromJson for RawSecurityHeaders {
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            at,
            &["defaults", "set", "remove", "strict_transport_security"],
        )?;
        Ok(RawSecurityHeaders {
            defaults: f.or("defaults", yes)?,
            set: f.get("set")?,
            remove: f.get("remove")?,
            strict_transport_security: f.get("strict_transport_security")?,
        })
    }
}

from_json_struct!(RawHsts {
    max_age_seconds: req,
    include_subdomains: get,
    preload: get,
});

from_json_struct!(RawCors {
    allow_origins: req,
    allow_methods: get,
    allow_headers: get,
    expose_headers: get,
    allow_credentials: get,
    max_age_seconds: get,
});
