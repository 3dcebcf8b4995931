//! Path template parameters (`/users/{id}`): types and patterns.
//!
//! `params` maps a template parameter to a JSON Schema (`{"type": "integer", "minimum": 1}`,
//! `{"type": "string", "pattern": "^[a-z]+$"}`). It decides whether each captured value,
//! coerced from text to the declared type as query parameters are, validates; a failure is 400
//! `schema_violation` (the same reason as for the query: a parameter failed its schema) with a
//! detail naming the parameter and keyword, never the value. It never decodes the value: the
//! router hands over parameters already percent-decoded.

use serde_json::{Map, Value};

use super::query::{coerce, quoted_name, Coercion};
use super::schema::{CompiledSchema, SchemaCompiler};
use crate::error::config::{join, ConfigError};
use crate::error::{Denial, Reason};

/// One compiled parameter rule.
#[derive(Debug)]
struct ParamRule {
    name: String,
    schema: CompiledSchema,
    coercion: Coercion,
}

/// Compiled path-parameter rules of one route.
#[derive(Debug, Default)]
pub struct ParamRules {
    rules: Vec<ParamRule>,
}

impl ParamRules {
    /// Compiles `params` at config path `at`. With `template_params`, every name must be a
    /// parameter of the route's path template.
    pub fn compile(
        params: &Map<String, Value>,
        template_params: Option<&[&str]>,
        compiler: &SchemaCompiler,
        at: &str,
    ) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(params.len());
        for (name, schema) in params {
            let here = join(at, name);
            if let Some(known) = template_params {
                if !known.contains(&name.as_str()) {
                    return Err(ConfigError::new(
                        here,
                        format!("{name:?} is not a parameter of the route's path template"),
                    ));
                }
            }
            let coercion = Coercion::of(schema);
            if matches!(coercion, Coercion::Array(_)) {
                return Err(ConfigError::new(
                    join(&here, "type"),
                    "a path parameter holds one value; it cannot be an array",
                ));
            }
            rules.push(ParamRule {
                name: name.clone(),
                schema: compiler.compile(schema, &here)?,
                coercion,
            });
        }
        Ok(Self { rules })
    }

    /// True when there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks the captured parameters (name, decoded value). A parameter with a rule but no
    /// value (the route's template has no such capture) is skipped.
    pub fn check<S: AsRef<str>>(&self, params: &[(S, S)]) -> Result<(), Denial> {
        for rule in &self.rules {
            let Some((_, value)) = params.iter().find(|(n, _)| n.as_ref() == rule.name) else {
                continue;
            };
            let types = match rule.coercion {
                Coercion::Scalar(t) | Coercion::Array(t) => t,
            };
            if let Err(v) = rule.schema.check(&coerce(value.as_ref(), types)) {
                return Err(Denial::new(Reason::SchemaViolation).with_detail(format!(
                    "path parameter {} failed {:?}",
                    quoted_name(&rule.name),
                    v.keyword
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value, template: Option<&[&str]>) -> Result<ParamRules, ConfigError> {
        ParamRules::compile(
            v.as_object().unwrap(),
            template,
            &SchemaCompiler::new(),
            "routes[0].request.params",
        )
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn integer_param_is_coerced_and_bounded() {
        let r = rules(
            json!({"id": {"type": "integer", "minimum": 1}}),
            Some(&["id"]),
        )
        .unwrap();
        assert!(r.check(&p(&[("id", "42")])).is_ok());
        let d = r.check(&p(&[("id", "0")])).unwrap_err();
        assert_eq!(d.reason, Reason::SchemaViolation);
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"path parameter "id" failed "minimum""#)
        );
        let d = r.check(&p(&[("id", "abc")])).unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"path parameter "id" failed "type""#)
        );
    }

    #[test]
    fn pattern_param_never_echoes_the_value() {
        let r = rules(
            json!({"slug": {"type": "string", "pattern": "^[a-z-]+$"}}),
            None,
        )
        .unwrap();
        assert!(r.check(&p(&[("slug", "hello-world")])).is_ok());
        let d = r.check(&p(&[("slug", "<script>")])).unwrap_err();
        assert!(!d.detail.unwrap().contains("script"));
    }

    #[test]
    fn unknown_template_param_is_a_config_error() {
        let e = rules(json!({"uid": {"type": "integer"}}), Some(&["id"])).unwrap_err();
        assert_eq!(e.path, "routes[0].request.params.uid");
    }

    #[test]
    fn invalid_param_schema_names_its_path() {
        let e = rules(json!({"id": {"type": "int"}}), None).unwrap_err();
        assert_eq!(e.path, "routes[0].request.params.id.type");
        let e = rules(json!({"id": {"type": "array"}}), None).unwrap_err();
        assert_eq!(e.path, "routes[0].request.params.id.type");
    }
}
