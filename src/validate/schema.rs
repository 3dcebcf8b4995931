//! JSON Schema compilation and validation (drafts 2020-12 and 7), meshguard's own engine.
//!
//! It decides, at configure time, whether a schema is acceptable (a supported draft, valid
//! against its meta-schema, every `$ref` resolvable without the network, every pattern inside
//! the linear-time ECMA-262 subset of [`crate::validate::pattern`]) and compiles it once into a
//! flat program (`compile`); at request time it says whether an instance is valid (`eval`)
//! and, when not, names the JSON pointer of the failing instance and the failing keyword.
//!
//! It never fetches anything: references resolve inside the schema, against the embedded
//! standard meta-schemas, or against documents the caller preloads in memory (the conformance
//! suite's `remotes/`); every other reference is refused at configure time, so a config cannot
//! make the data plane reach out. It never puts an instance value in a violation. `format` and
//! the `content*` keywords are annotations (never asserted), as 2020-12 specifies by default.

mod compile;
mod eval;
mod uri;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::error::config::{index, join, ConfigError};
use compile::{Loader, Program, VOC_ALL};
use eval::{Eval, Mode};

/// The JSON Schema drafts meshguard accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Draft 7 (`http://json-schema.org/draft-07/schema#`).
    Draft7,
    /// Draft 2020-12 (`https://json-schema.org/draft/2020-12/schema`), the default.
    Draft202012,
}

impl Dialect {
    fn meta_uri(self) -> &'static str {
        match self {
            Dialect::Draft7 => "http://json-schema.org/draft-07/schema",
            Dialect::Draft202012 => "https://json-schema.org/draft/2020-12/schema",
        }
    }
}

/// What `$schema` says about the dialect.
enum Declared {
    /// No `$schema` (or a boolean schema): the compiler's default applies.
    Absent,
    /// A draft meshguard supports.
    Known(Dialect),
    /// A draft meshguard does not support (3, 4, 6, 2019-09).
    Unsupported,
    /// Some other meta-schema, resolvable only through preloaded documents.
    Custom(String),
}

fn declared(schema: &Value) -> Result<Declared, &'static str> {
    let Some(v) = schema.as_object().and_then(|o| o.get("$schema")) else {
        return Ok(Declared::Absent);
    };
    let Some(uri) = v.as_str() else {
        return Err("$schema must be a string");
    };
    let u = uri.trim_end_matches('#');
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or("");
    Ok(match rest {
        "json-schema.org/draft-07/schema" => Declared::Known(Dialect::Draft7),
        "json-schema.org/draft/2020-12/schema" => Declared::Known(Dialect::Draft202012),
        "json-schema.org/draft-03/schema"
        | "json-schema.org/draft-04/schema"
        | "json-schema.org/draft-06/schema"
        | "json-schema.org/draft/2019-09/schema" => Declared::Unsupported,
        _ => Declared::Custom(u.to_string()),
    })
}

/// The standard meta-schemas, compiled once per VM.
fn standard_meta(d: Dialect) -> Option<&'static Program> {
    static D7: OnceLock<Option<Program>> = OnceLock::new();
    static D2020: OnceLock<Option<Program>> = OnceLock::new();
    let cell = match d {
        Dialect::Draft7 => &D7,
        Dialect::Draft202012 => &D2020,
    };
    cell.get_or_init(|| {
        let text = compile::embedded(d.meta_uri())?;
        let v: Value = serde_json::from_str(text).ok()?;
        Loader::new(&HashMap::new()).compile(v, d, VOC_ALL).ok()
    })
    .as_ref()
}

/// Compiles schemas for one configuration. The default is the production setting: draft
/// 2020-12 unless `$schema` says draft 7, no document retrieval.
#[derive(Clone)]
pub struct SchemaCompiler {
    default: Dialect,
    documents: Arc<HashMap<String, Value>>,
}

impl Default for SchemaCompiler {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SchemaCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCompiler")
            .field("default", &self.default)
            .field("documents", &self.documents.len())
            .finish()
    }
}

impl SchemaCompiler {
    /// Draft 2020-12 by default, no retrieval.
    pub fn new() -> Self {
        Self {
            default: Dialect::Draft202012,
            documents: Arc::new(HashMap::new()),
        }
    }

    /// The dialect used when a schema has no `$schema`.
    pub fn with_default_dialect(mut self, dialect: Dialect) -> Self {
        self.default = dialect;
        self
    }

    /// Documents `$ref` may name by absolute URI (no fragment), served from memory. Used by the
    /// conformance suite for its `remotes/`; production configs have none.
    pub fn with_documents(mut self, documents: HashMap<String, Value>) -> Self {
        self.documents = Arc::new(documents);
        self
    }

    /// Compiles `schema`, found at config path `at`. Errors name the path of the faulty
    /// keyword inside the schema (`routes[0].request.body_schema.properties.a.type`).
    pub fn compile(&self, schema: &Value, at: &str) -> Result<CompiledSchema, ConfigError> {
        let declared = declared(schema).map_err(|p| ConfigError::new(join(at, "$schema"), p))?;
        let (dialect, vocab, custom) = match declared {
            Declared::Absent => (self.default, VOC_ALL, None),
            Declared::Known(d) => (d, VOC_ALL, None),
            Declared::Unsupported => {
                return Err(ConfigError::new(
                    join(at, "$schema"),
                    "unsupported JSON Schema draft (meshguard supports 2020-12 and draft-07)",
                ))
            }
            Declared::Custom(uri) => {
                let Some(meta) = self.documents.get(&uri) else {
                    return Err(ConfigError::new(
                        join(at, "$schema"),
                        "unknown meta-schema (meshguard supports 2020-12 and draft-07 and never fetches schemas)",
                    ));
                };
                let vocab = compile::vocabularies(meta)
                    .map_err(|p| ConfigError::new(join(at, "$schema"), p))?;
                let meta_prog = Loader::new(&self.documents)
                    .compile(meta.clone(), Dialect::Draft202012, VOC_ALL)
                    .map_err(|e| ConfigError::new(join(at, "$schema"), e.problem))?;
                (Dialect::Draft202012, vocab, Some(meta_prog))
            }
        };
        // The schema must be valid against its meta-schema.
        let meta = match &custom {
            Some(p) => Some(p),
            None => standard_meta(dialect),
        };
        if let Some(meta) = meta {
            let mut ev = Eval::new(meta, Mode::First);
            if !ev.run(schema) {
                let (pointer, keyword) =
                    ev.failures.first().map_or((String::new(), "schema"), |f| {
                        (f.pointer.clone(), f.keyword)
                    });
                return Err(ConfigError::new(
                    pointer_to_path(schema, &pointer, at),
                    format!("invalid schema: fails the meta-schema's {keyword:?}"),
                ));
            }
        }
        let program = Loader::new(&self.documents)
            .compile(schema.clone(), dialect, vocab)
            .map_err(|e| {
                let path = if e.doc == 0 {
                    pointer_to_path(schema, &e.pointer, at)
                } else {
                    at.to_string()
                };
                let mut problem = e.problem;
                truncate(&mut problem, 240);
                ConfigError::new(path, problem)
            })?;
        Ok(CompiledSchema { program, dialect })
    }
}

/// Turns a JSON pointer into the schema into a config path (`/allOf/0/type` ->
/// `<at>.allOf[0].type`), walking the schema so array indices read as indices.
pub(crate) fn pointer_to_path(doc: &Value, pointer: &str, at: &str) -> String {
    let mut path = at.to_string();
    let mut node = Some(doc);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                node = seg.parse::<usize>().ok().and_then(|i| items.get(i));
                path = match seg.parse::<usize>() {
                    Ok(i) => index(&path, i),
                    Err(_) => join(&path, &seg),
                };
            }
            Some(Value::Object(map)) => {
                node = map.get(&seg);
                path = join(&path, &seg);
            }
            _ => {
                node = None;
                path = join(&path, &seg);
            }
        }
    }
    path
}

/// Cuts `s` to at most `max` bytes on a char boundary, marking the cut.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        s.truncate(cut);
        s.push_str("...");
    }
}

/// A schema compiled at configure time.
pub struct CompiledSchema {
    program: Program,
    dialect: Dialect,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

/// Why an instance failed: where and which keyword, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the failing instance (`""` for the root).
    pub pointer: String,
    /// The failing keyword (`type`, `required`, `additionalProperties`...).
    pub keyword: String,
    /// For `required`: the missing property, a name taken from the schema.
    pub missing: Option<String>,
}

/// Longest pointer put in a client-visible detail; property names come from the client.
const MAX_POINTER_IN_DETAIL: usize = 200;

impl Violation {
    /// Client-safe detail: `body at "/items/0/price" failed "minimum"`.
    pub fn detail(&self, location: &str) -> String {
        let mut pointer = self.pointer.clone();
        truncate(&mut pointer, MAX_POINTER_IN_DETAIL);
        let mut detail = format!(
            "{location} at {} failed {:?}",
            Value::String(pointer),
            self.keyword
        );
        if let Some(m) = &self.missing {
            detail.push_str(&format!(": missing {}", Value::String(m.clone())));
        }
        detail
    }
}

impl CompiledSchema {
    /// The dialect the schema was compiled as.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// True when `instance` is valid.
    pub fn is_valid(&self, instance: &Value) -> bool {
        Eval::new(&self.program, Mode::Quiet).run(instance)
    }

    /// Validates `instance`, returning the first violation.
    pub fn check(&self, instance: &Value) -> Result<(), Violation> {
        let mut ev = Eval::new(&self.program, Mode::First);
        if ev.run(instance) {
            return Ok(());
        }
        let f = ev.failures.into_iter().next();
        Err(f.map_or_else(
            || Violation {
                pointer: String::new(),
                keyword: "schema".to_string(),
                missing: None,
            },
            |f| Violation {
                pointer: f.pointer,
                keyword: f.keyword.to_string(),
                missing: f.missing,
            },
        ))
    }

    /// Every unknown object member the schema rejects through `additionalProperties` or
    /// `unevaluatedProperties` (as paths), or `None` when some other keyword fails too.
    pub fn unknown_members(&self, instance: &Value) -> Option<Vec<Vec<String>>> {
        let mut ev = Eval::new(&self.program, Mode::All);
        ev.run(instance);
        let mut out = Vec::new();
        for f in ev.failures {
            if !matches!(f.keyword, "additionalProperties" | "unevaluatedProperties")
                || f.unexpected.is_empty()
            {
                return None;
            }
            let parent = split_pointer(&f.pointer);
            for name in f.unexpected {
                let mut path = parent.clone();
                path.push(name);
                out.push(path);
            }
        }
        Some(out)
    }
}

/// Splits a JSON pointer into unescaped tokens.
pub(crate) fn split_pointer(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(schema: Value) -> Result<CompiledSchema, ConfigError> {
        SchemaCompiler::new().compile(&schema, "routes[0].request.body_schema")
    }

    #[test]
    fn invalid_schema_names_the_path_of_the_faulty_keyword() {
        let e = compile(json!({"properties": {"a": {"type": "strin"}}})).unwrap_err();
        assert_eq!(e.path, "routes[0].request.body_schema.properties.a.type");
        let e = compile(json!({"allOf": [{"minimum": "x"}]})).unwrap_err();
        assert_eq!(e.path, "routes[0].request.body_schema.allOf[0].minimum");
    }

    #[test]
    fn defaults_to_2020_12_and_honours_draft7() {
        // prefixItems exists only in 2020-12; in draft 7 it is an unknown keyword.
        let s = json!({"prefixItems": [{"type": "integer"}]});
        let v = compile(s.clone()).unwrap();
        assert_eq!(v.dialect(), Dialect::Draft202012);
        assert!(!v.is_valid(&json!(["x"])));
        let mut d7 = s;
        d7["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        let v = compile(d7).unwrap();
        assert_eq!(v.dialect(), Dialect::Draft7);
        assert!(v.is_valid(&json!(["x"])));
    }

    #[test]
    fn refuses_unsupported_drafts_and_unknown_meta_schemas() {
        for uri in [
            "http://json-schema.org/draft-04/schema#",
            "https://json-schema.org/draft/2019-09/schema",
            "http://json-schema.org/draft-03/schema#",
        ] {
            let e = compile(json!({"$schema": uri})).unwrap_err();
            assert_eq!(e.path, "routes[0].request.body_schema.$schema", "{uri}");
            assert!(e.problem.contains("unsupported"), "{}", e.problem);
        }
        let e = compile(json!({"$schema": "https://example.com/meta"})).unwrap_err();
        assert!(e.problem.contains("never fetches"));
    }

    #[test]
    fn never_fetches_remote_references() {
        let e = compile(json!({"$ref": "https://example.com/s.json"})).unwrap_err();
        assert!(e.problem.contains("never fetches"), "{}", e.problem);
    }

    #[test]
    fn unresolvable_local_reference_is_a_config_error() {
        let e = compile(json!({"properties": {"a": {"$ref": "#/$defs/missing"}}})).unwrap_err();
        assert!(e.path.starts_with("routes[0].request.body_schema"), "{e}");
        assert!(e.problem.contains("reference"), "{e}");
    }

    #[test]
    fn resolves_preloaded_documents() {
        let mut docs = HashMap::new();
        docs.insert(
            "http://localhost:1234/integer.json".to_string(),
            json!({"type": "integer"}),
        );
        let v = SchemaCompiler::new()
            .with_documents(docs)
            .compile(&json!({"$ref": "http://localhost:1234/integer.json"}), "s")
            .unwrap();
        assert!(v.is_valid(&json!(1)));
        assert!(!v.is_valid(&json!("a")));
    }

    #[test]
    fn violation_names_pointer_and_keyword_never_the_value() {
        let v = compile(json!({
            "type": "object",
            "required": ["name"],
            "properties": {"items": {"type": "array", "items": {"properties": {"price": {"minimum": 0}}}}}
        }))
        .unwrap();
        let bad = v
            .check(&json!({"name": "n", "items": [{"price": -12345}]}))
            .unwrap_err();
        assert_eq!(bad.pointer, "/items/0/price");
        assert_eq!(bad.keyword, "minimum");
        let d = bad.detail("body");
        assert_eq!(d, r#"body at "/items/0/price" failed "minimum""#);
        assert!(!d.contains("12345"));
        let missing = v.check(&json!({})).unwrap_err();
        assert_eq!(
            missing.detail("body"),
            r#"body at "" failed "required": missing "name""#
        );
    }

    #[test]
    fn patterns_use_the_linear_time_engine() {
        // Backreferences need backtracking; the linear engine refuses them at configure time.
        assert!(compile(json!({"pattern": "^(a+)\\1$"})).is_err());
        let v = compile(json!({"pattern": "^(a+)+$"})).unwrap();
        let evil = format!("{}!", "a".repeat(5000));
        assert!(!v.is_valid(&json!(evil)));
    }

    #[test]
    fn lists_unknown_members_from_additional_properties() {
        let v = compile(json!({
            "properties": {"a": {"properties": {"b": {}}, "additionalProperties": false}},
            "additionalProperties": false
        }))
        .unwrap();
        let mut got = v
            .unknown_members(&json!({"a": {"b": 1, "c": 2}, "x/y": 3}))
            .unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                vec!["a".to_string(), "c".to_string()],
                vec!["x/y".to_string()]
            ]
        );
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        let mut s = "ééé".to_string();
        truncate(&mut s, 3);
        assert_eq!(s, "é...");
    }
}
