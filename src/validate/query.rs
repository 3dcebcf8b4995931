//! Query parameters: pollution, coercion and `query_schema` (the query string splits and decodes
//! in [`crate::http::query`]).
//!
//! It decides whether the raw query string is well-formed (percent-encoding that decodes to
//! UTF-8), whether a parameter is repeated where the schema allows one value (400
//! `param_duplicate`), and whether the parameters, coerced from strings to the types the schema
//! declares, validate against `query_schema` (400 `schema_violation`).
//!
//! Coercion reads only what the schema declares directly: `properties.<name>.type` (and
//! `items.type` for arrays), else `additionalProperties.type`; `$ref` and `patternProperties`
//! are not followed, so such parameters stay strings. A value that does not parse as its
//! declared type stays a string and fails the schema's `type` keyword. It never echoes a value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::json::{self, JsonLimits};
use super::schema::{truncate, CompiledSchema, SchemaCompiler};
use crate::error::config::ConfigError;
use crate::error::{Denial, Reason};
use crate::http::query::{self, QueryError};

/// The scalar JSON types a string may be coerced to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types {
    integer: bool,
    number: bool,
    boolean: bool,
    null: bool,
}

impl Types {
    fn of(schema: &Value) -> (Self, bool) {
        let mut t = Types::default();
        let mut array = false;
        let mut add = |name: &str| match name {
            "integer" => t.integer = true,
            "number" => t.number = true,
            "boolean" => t.boolean = true,
            "null" => t.null = true,
            "array" => array = true,
            _ => {}
        };
        match schema.get("type") {
            Some(Value::String(s)) => add(s),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).for_each(&mut add),
            _ => {}
        }
        (t, array)
    }
}

/// How a parameter's text becomes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coercion {
    /// One value, coerced to the first of these types it parses as (else a string).
    Scalar(Types),
    /// Any number of values (a repeated parameter is legitimate), each coerced.
    Array(Types),
}

impl Coercion {
    /// The coercion a (sub)schema declares.
    pub fn of(schema: &Value) -> Self {
        let (types, array) = Types::of(schema);
        if array {
            let items = schema.get("items").map(Types::of).unwrap_or_default().0;
            Coercion::Array(items)
        } else {
            Coercion::Scalar(types)
        }
    }
}

/// `text` as a JSON value of one of `types`, or a string.
pub fn coerce(text: &str, types: Types) -> Value {
    if types.integer || types.number {
        let limits = JsonLimits {
            max_depth: 1,
            ..JsonLimits::default()
        };
        // Only text that is exactly a JSON number qualifies ("007", "+1", " 1" stay strings).
        let b = text.as_bytes();
        let bare = b.first().is_some_and(|c| *c == b'-' || c.is_ascii_digit())
            && b.last().is_some_and(u8::is_ascii_digit);
        if let (true, Ok(Value::Number(n))) = (bare, json::parse(b, &limits)) {
            let integral = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
            if types.number || integral {
                return Value::Number(n);
            }
        }
    }
    if types.boolean {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if types.null && text == "null" {
        return Value::Null;
    }
    Value::String(text.to_string())
}

/// A parameter name fit for a client-visible detail (quoted, bounded).
pub(crate) fn quoted_name(name: &str) -> String {
    let mut n = name.to_string();
    truncate(&mut n, 64);
    Value::String(n).to_string()
}

/// Compiled query rules of one route.
#[derive(Debug)]
pub struct QueryRules {
    schema: CompiledSchema,
    declared: BTreeMap<String, Coercion>,
    other: Coercion,
}

impl QueryRules {
    /// Compiles `query_schema` found at config path `at`.
    pub fn compile(
        schema: &Value,
        compiler: &SchemaCompiler,
        at: &str,
    ) -> Result<Self, ConfigError> {
        let compiled = compiler.compile(schema, at)?;
        let declared = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), Coercion::of(v)))
                    .collect()
            })
            .unwrap_or_default();
        let other = schema
            .get("additionalProperties")
            .map(Coercion::of)
            .unwrap_or(Coercion::Scalar(Types::default()));
        Ok(Self {
            schema: compiled,
            declared,
            other,
        })
    }

    /// Checks the raw query string (`None` when the request has no `?`).
    pub fn check(&self, raw: Option<&str>) -> Result<(), Denial> {
        let pairs = query::pairs(raw.unwrap_or_default()).map_err(|e| {
            Denial::new(Reason::SchemaViolation).with_detail(match e {
                QueryError::BadEncoding => "query string is not valid percent-encoded UTF-8",
                QueryError::TooMany => "query string has too many parameters",
            })
        })?;
        let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in pairs {
            grouped.entry(name).or_default().push(value);
        }
        let mut instance = Map::new();
        for (name, values) in grouped {
            let coercion = self.declared.get(&name).copied().unwrap_or(self.other);
            let value = match coercion {
                Coercion::Array(types) => {
                    Value::Array(values.iter().map(|v| coerce(v, types)).collect())
                }
                Coercion::Scalar(types) => match values.as_slice() {
                    [one] => coerce(one, types),
                    _ => {
                        return Err(Denial::new(Reason::ParamDuplicate).with_detail(format!(
                            "query parameter {} is repeated",
                            quoted_name(&name)
                        )))
                    }
                },
            };
            instance.insert(name, value);
        }
        self.schema
            .check(&Value::Object(instance))
            .map_err(|v| Denial::new(Reason::SchemaViolation).with_detail(v.detail("query")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(schema: Value) -> QueryRules {
        QueryRules::compile(&schema, &SchemaCompiler::new(), "q").unwrap()
    }

    fn sample() -> QueryRules {
        rules(json!({
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "ratio": {"type": "number"},
                "active": {"type": "boolean"},
                "tag": {"type": "array", "items": {"type": "string", "maxLength": 8}},
                "id": {"type": "array", "items": {"type": "integer"}},
                "q": {"type": "string", "maxLength": 20},
                "maybe": {"type": ["integer", "null"]}
            },
            "required": ["limit"],
            "additionalProperties": false
        }))
    }

    #[test]
    fn decodes_percent_escapes_and_plus() {
        assert_eq!(
            query::pairs("q=a+b%20c&name=%C3%A9t%C3%A9&flag&&x=").unwrap(),
            vec![
                ("q".into(), "a b c".into()),
                ("name".into(), "été".into()),
                ("flag".into(), "".into()),
                ("x".into(), "".into()),
            ]
        );
        assert_eq!(
            query::pairs("a%3Db=c%26d").unwrap(),
            vec![("a=b".into(), "c&d".into())]
        );
    }

    #[test]
    fn bad_percent_encoding_is_refused() {
        for raw in ["a=%", "a=%4", "a=%zz", "a=%ff", "%c3=1"] {
            assert_eq!(query::pairs(raw), Err(QueryError::BadEncoding), "{raw}");
        }
        let d = sample().check(Some("limit=1&q=%zz")).unwrap_err();
        assert_eq!(d.reason, Reason::SchemaViolation);
    }

    #[test]
    fn coerces_to_declared_types() {
        let r = sample();
        assert!(r
            .check(Some("limit=10&ratio=0.5&active=true&q=hello&maybe=null"))
            .is_ok());
        assert!(r.check(Some("limit=10&maybe=3")).is_ok());
        assert!(r.check(Some("limit=1e1")).is_ok());
    }

    #[test]
    fn uncoercible_value_fails_type_without_echoing_it() {
        let d = sample().check(Some("limit=ten")).unwrap_err();
        assert_eq!(d.reason, Reason::SchemaViolation);
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query at "/limit" failed "type""#)
        );
        for raw in ["limit=007", "limit=+1", "limit=1.5", "limit=10&active=yes"] {
            let d = sample().check(Some(raw)).unwrap_err();
            assert_eq!(d.reason, Reason::SchemaViolation, "{raw}");
        }
    }

    #[test]
    fn schema_keywords_apply_after_coercion() {
        let d = sample().check(Some("limit=101")).unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query at "/limit" failed "maximum""#)
        );
        let d = sample().check(Some("q=x")).unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query at "" failed "required": missing "limit""#)
        );
        let d = sample().check(Some("limit=1&debug=1")).unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query at "" failed "additionalProperties""#)
        );
        assert!(sample().check(None).is_err());
    }

    #[test]
    fn repeated_scalar_parameter_is_param_duplicate() {
        let d = sample().check(Some("limit=1&limit=100")).unwrap_err();
        assert_eq!(d.reason, Reason::ParamDuplicate);
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query parameter "limit" is repeated"#)
        );
        // Undeclared parameters are scalars too.
        let open = rules(json!({"type": "object"}));
        assert_eq!(
            open.check(Some("x=1&x=2")).unwrap_err().reason,
            Reason::ParamDuplicate
        );
        assert!(open.check(Some("x=1&y=2")).is_ok());
    }

    #[test]
    fn repeated_array_parameter_is_allowed_and_items_coerced() {
        let r = sample();
        assert!(r.check(Some("limit=1&tag=a&tag=b&tag=c")).is_ok());
        assert!(r.check(Some("limit=1&id=1&id=2")).is_ok());
        assert!(r.check(Some("limit=1&tag=one")).is_ok());
        let d = r.check(Some("limit=1&id=1&id=x")).unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query at "/id/1" failed "type""#)
        );
        let d = r
            .check(Some("limit=1&tag=a&tag=waytoolongtag"))
            .unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"query at "/tag/1" failed "maxLength""#)
        );
    }

    #[test]
    fn additional_properties_type_coerces_undeclared_names() {
        let r = rules(json!({"additionalProperties": {"type": "integer"}}));
        assert!(r.check(Some("a=1&b=2")).is_ok());
        assert!(r.check(Some("a=x")).is_err());
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let raw = vec!["a=1"; query::MAX_PARAMS + 1].join("&");
        assert_eq!(query::pairs(&raw), Err(QueryError::TooMany));
    }
}
