//! `routes[].request` as written (serde types, unknown fields refused) and its compilation into
//! [`RequestRules`].
//!
//! It decides whether a route's request section is acceptable and compiles every schema,
//! pattern and pointer once; each error names the JSON path of the field at fault, down into
//! the schema (`routes[0].request.body_schema.properties.a.type`). It never runs on the
//! request path.
//!
//! | field | meaning (default) |
//! |---|---|
//! | `max_body_bytes` | 413 above this size, from `content-length` or the streamed size (none) |
//! | `content_types` | media-type allow-list, 415 otherwise; `type/subtype`, `type/*`, `type/*+suffix`; parameters ignored (any; `application/json`, `application/*+json` when the body is checked as JSON) |
//! | `body_schema` | JSON Schema of the body; draft 2020-12, or 7 by `$schema` (none) |
//! | `query_schema` | JSON Schema of the query as an object; values coerced to declared types; a repeated parameter is `param_duplicate` unless declared `array` (none) |
//! | `headers` | `[{name, required, forbidden, pattern}]`; patterns unanchored, the linear-time ECMA-262 subset of `pattern.rs` (none) |
//! | `params` | path template parameter -> JSON Schema of its coerced value (none) |
//! | `json_limits` | `max_depth` 32 (at most 128), `max_keys` 256, `max_array_len` 4096, `max_string_len` 65536, `max_total_bytes` 1048576; on whenever the body is checked |
//! | `reject_unknown_fields` | body members the schema does not declare are mass assignment (false) |
//! | `read_only_fields` | JSON pointers (`*` = any member/element) no client may set ([]) |
//! | `writable_by_role` | `{claim, roles: {role: [pointers]}}`: listed fields only for those roles (none) |
//! | `on_mass_assignment` | `reject` (400 `mass_assignment`) or `strip` (members removed) (`reject`) |
//!
//! The body is checked as JSON (and buffered) when any of `body_schema`, `json_limits`,
//! `reject_unknown_fields`, `read_only_fields`, `writable_by_role` is set.

use crate::config::read::from_json_struct;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::content::{ContentRules, MediaRange};
use super::headers::{self, RawHeaderRule};
use super::json::{JsonLimits, MAX_DEPTH_CEILING};
use super::mass::{closed_schema, MassRules, OnMassAssignment, RawWritableByRole};
use super::params::ParamRules;
use super::query::QueryRules;
use super::schema::SchemaCompiler;
use super::{BodyRules, RequestRules};
use crate::error::config::{join, ConfigError};

/// `routes[].request` as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    /// Largest body in bytes (413 above it).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Allowed media types (415 otherwise). Defaults to JSON types when the body is checked.
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    /// JSON Schema of the body (2020-12 unless `$schema` says draft 7).
    #[serde(default)]
    pub body_schema: Option<Value>,
    /// JSON Schema of the query parameters, as an object of coerced values.
    #[serde(default)]
    pub query_schema: Option<Value>,
    /// Header rules.
    #[serde(default)]
    pub headers: Vec<RawHeaderRule>,
    /// Path template parameter -> JSON Schema of its (coerced) value.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    /// JSON threat limits; each omitted limit keeps its default.
    #[serde(default)]
    pub json_limits: Option<RawJsonLimits>,
    /// Refuse body members the body schema does not declare.
    #[serde(default)]
    pub reject_unknown_fields: bool,
    /// JSON pointers no client may set.
    #[serde(default)]
    pub read_only_fields: Vec<String>,
    /// Fields only some roles (from a verified token claim) may set.
    #[serde(default)]
    pub writable_by_role: Option<RawWritableByRole>,
    /// `reject` (default) or `strip` violating members.
    #[serde(default)]
    pub on_mass_assignment: Option<OnMassAssignment>,
}

/// `json_limits` as written.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawJsonLimits {
    /// Deepest nesting (1..=128).
    #[serde(default)]
    pub max_depth: Option<u32>,
    /// Most members per object.
    #[serde(default)]
    pub max_keys: Option<u32>,
    /// Most elements per array.
    #[serde(default)]
    pub max_array_len: Option<u32>,
    /// Longest string or key in bytes.
    #[serde(default)]
    pub max_string_len: Option<u32>,
    /// Largest JSON body in bytes.
    #[serde(default)]
    pub max_total_bytes: Option<u64>,
}

/// Media types a checked JSON body may have when the route lists none.
pub const DEFAULT_JSON_TYPES: [&str; 2] = ["application/json", "application/*+json"];

fn limits(raw: &RawJsonLimits, at: &str) -> Result<JsonLimits, ConfigError> {
    let d = JsonLimits::default();
    let positive = |v: Option<u32>, dflt: u32, field: &str| match v {
        Some(0) => Err(ConfigError::new(join(at, field), "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(dflt),
    };
    let max_depth = positive(raw.max_depth, d.max_depth, "max_depth")?;
    if max_depth > MAX_DEPTH_CEILING {
        return Err(ConfigError::new(
            join(at, "max_depth"),
            format!("must be at most {MAX_DEPTH_CEILING}"),
        ));
    }
    let max_total_bytes = match raw.max_total_bytes {
        Some(0) => {
            return Err(ConfigError::new(
                join(at, "max_total_bytes"),
                "must be at least 1",
            ))
        }
        Some(n) => n,
        None => d.max_total_bytes,
    };
    Ok(JsonLimits {
        max_depth,
        max_keys: positive(raw.max_keys, d.max_keys, "max_keys")?,
        max_array_len: positive(raw.max_array_len, d.max_array_len, "max_array_len")?,
        max_string_len: positive(raw.max_string_len, d.max_string_len, "max_string_len")?,
        max_total_bytes,
    })
}

impl RequestRules {
    /// Compiles a route's `request` section found at config path `at` (`routes[2].request`).
    /// `template_params` are the route's path template parameters, when it has a template;
    /// `params` may name only those.
    pub fn compile(
        raw: &RawRequest,
        at: &str,
        template_params: Option<&[&str]>,
    ) -> Result<Self, ConfigError> {
        Self::compile_with(raw, at, template_params, &SchemaCompiler::new())
    }

    /// [`RequestRules::compile`] with a given schema compiler (tests preload documents).
    pub fn compile_with(
        raw: &RawRequest,
        at: &str,
        template_params: Option<&[&str]>,
        compiler: &SchemaCompiler,
    ) -> Result<Self, ConfigError> {
        let schema = match &raw.body_schema {
            Some(s) => Some(compiler.compile(s, &join(at, "body_schema"))?),
            None => None,
        };
        let closed = match (&raw.body_schema, &schema, raw.reject_unknown_fields) {
            (Some(s), Some(c), true) => {
                Some(compiler.compile(&closed_schema(s, c.dialect()), &join(at, "body_schema"))?)
            }
            (None, _, true) => {
                return Err(ConfigError::new(
                    join(at, "reject_unknown_fields"),
                    "needs a body_schema that declares the known fields",
                ))
            }
            _ => None,
        };
        let on_violation = raw.on_mass_assignment.unwrap_or_default();
        let mass = MassRules::compile(
            &raw.read_only_fields,
            raw.writable_by_role.as_ref(),
            on_violation,
            at,
        )?;
        if raw.on_mass_assignment.is_some() && mass.is_empty() && closed.is_none() {
            return Err(ConfigError::new(
                join(at, "on_mass_assignment"),
                "has no effect without read_only_fields, writable_by_role or reject_unknown_fields",
            ));
        }
        let checks_json =
            schema.is_some() || closed.is_some() || !mass.is_empty() || raw.json_limits.is_some();
        let json_limits = limits(
            &raw.json_limits.unwrap_or_default(),
            &join(at, "json_limits"),
        )?;
        let mut content = ContentRules::compile(
            raw.content_types.as_deref(),
            raw.max_body_bytes,
            &join(at, "content_types"),
        )?;
        if checks_json && content.allowed.is_none() {
            content.allowed = Some(
                DEFAULT_JSON_TYPES
                    .iter()
                    .map(|t| MediaRange::parse(t, at))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let body = checks_json.then_some(BodyRules {
            limits: json_limits,
            schema,
            closed,
            mass,
        });
        let query = match &raw.query_schema {
            Some(s) => Some(QueryRules::compile(s, compiler, &join(at, "query_schema"))?),
            None => None,
        };
        let params = match &raw.params {
            Some(p) => ParamRules::compile(p, template_params, compiler, &join(at, "params"))?,
            None => ParamRules::default(),
        };
        Ok(Self {
            content,
            headers: headers::compile(&raw.headers, &join(at, "headers"))?,
            params,
            query,
            body,
        })
    }
}

from_json_struct!(RawRequest {
    max_body_bytes: get,
    content_types: get,
    body_schema: get,
    query_schema: get,
    headers: get,
    params: get,
    json_limits: get,
    reject_unknown_fields: get,
    read_only_fields: get,
    writable_by_role: get,
    on_mass_assignment: get,
});

from_json_struct!(RawJsonLimits {
    max_depth: get,
    max_keys: get,
    max_array_len: get,
    max_string_len: get,
    max_total_bytes: get,
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AT: &str = "routes[0].request";

    fn raw(v: Value) -> RawRequest {
        crate::config::read::from_value(v).unwrap()
    }

    fn err(v: Value) -> ConfigError {
        RequestRules::compile(&raw(v), AT, Some(&["id"])).unwrap_err()
    }

    #[test]
    fn accepts_the_contract_example_and_every_field() {
        let example = json!({ "max_body_bytes": 65536, "content_types": ["application/json"],
                               "body_schema": { "type": "object" }, "query_schema": { "type": "object" } });
        assert!(RequestRules::compile(&raw(example), AT, None).is_ok());
        let full = json!({
            "max_body_bytes": 1024,
            "content_types": ["application/json", "application/*+json"],
            "body_schema": {"type": "object", "properties": {"name": {"type": "string"}, "role": {}}},
            "query_schema": {"properties": {"limit": {"type": "integer"}}},
            "headers": [{"name": "x-api-version", "required": true, "pattern": "^v1$"}],
            "params": {"id": {"type": "integer", "minimum": 1}},
            "json_limits": {"max_depth": 8, "max_keys": 50, "max_array_len": 100, "max_string_len": 1000, "max_total_bytes": 4096},
            "reject_unknown_fields": true,
            "read_only_fields": ["/id"],
            "writable_by_role": {"claim": "role", "roles": {"admin": ["/role"]}},
            "on_mass_assignment": "strip"
        });
        let rules = RequestRules::compile(&raw(full), AT, Some(&["id"])).unwrap();
        assert_eq!(rules.role_claim(), Some("role"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(crate::config::read::from_value::<RawRequest>(json!({"max_body": 1})).is_err());
        assert!(crate::config::read::from_value::<RawRequest>(
            json!({"json_limits": {"depth": 1}})
        )
        .is_err());
        assert!(crate::config::read::from_value::<RawRequest>(
            json!({"on_mass_assignment": "drop"})
        )
        .is_err());
    }

    #[test]
    fn invalid_schema_names_the_path_inside_it() {
        let e = err(json!({"body_schema": {"properties": {"a": {"type": "strin"}}}}));
        assert_eq!(e.path, "routes[0].request.body_schema.properties.a.type");
        let e = err(json!({"query_schema": {"properties": {"n": {"minimum": "1"}}}}));
        assert_eq!(
            e.path,
            "routes[0].request.query_schema.properties.n.minimum"
        );
        let e = err(json!({"params": {"id": {"pattern": "("}}}));
        assert!(e.path.starts_with("routes[0].request.params.id"), "{e}");
    }

    #[test]
    fn limits_are_checked() {
        let e = err(json!({"json_limits": {"max_depth": 129}}));
        assert_eq!(e.path, "routes[0].request.json_limits.max_depth");
        let e = err(json!({"json_limits": {"max_keys": 0}}));
        assert_eq!(e.path, "routes[0].request.json_limits.max_keys");
        let e = err(json!({"json_limits": {"max_total_bytes": 0}}));
        assert_eq!(e.path, "routes[0].request.json_limits.max_total_bytes");
    }

    #[test]
    fn mass_assignment_options_need_something_to_act_on() {
        let e = err(json!({"reject_unknown_fields": true}));
        assert_eq!(e.path, "routes[0].request.reject_unknown_fields");
        let e = err(json!({"body_schema": {}, "on_mass_assignment": "strip"}));
        assert_eq!(e.path, "routes[0].request.on_mass_assignment");
        let e = err(json!({"read_only_fields": ["id"]}));
        assert_eq!(e.path, "routes[0].request.read_only_fields[0]");
    }

    #[test]
    fn other_sections_report_their_paths() {
        let e = err(json!({"content_types": ["nope"]}));
        assert_eq!(e.path, "routes[0].request.content_types[0]");
        let e = err(json!({"headers": [{"name": "x", "pattern": "["}]}));
        assert_eq!(e.path, "routes[0].request.headers[0].pattern");
        let e = err(json!({"params": {"other": {}}}));
        assert_eq!(e.path, "routes[0].request.params.other");
    }
}
