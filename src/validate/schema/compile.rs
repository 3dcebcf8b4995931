//! Compiles a JSON Schema document (and the documents it references) into a flat program of
//! nodes: every `$ref` is resolved to a node index here, every pattern compiled, so validation
//! does no lookup by URI and no parsing.
//!
//! Documents come from three places only: the schema itself, the standard meta-schemas embedded
//! in the module (drafts 7 and 2020-12), and the documents the caller preloaded. Anything else is
//! refused: meshguard never fetches.

mod keywords;
mod resolve;

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Number, Value};

use super::Dialect;
use crate::validate::pattern::Pattern;

/// Vocabulary bits (2020-12 `$vocabulary`); draft 7 has all of them.
pub(super) const VOC_APPLICATOR: u8 = 1;
pub(super) const VOC_UNEVALUATED: u8 = 2;
pub(super) const VOC_VALIDATION: u8 = 4;
pub(super) const VOC_ALL: u8 = 7;

/// Base URI of a schema without `$id`.
const DEFAULT_BASE: &str = "json-schema:///root.json";

/// Type bits for `type`.
pub(super) const T_NULL: u8 = 1;
pub(super) const T_BOOL: u8 = 2;
pub(super) const T_OBJECT: u8 = 4;
pub(super) const T_ARRAY: u8 = 8;
pub(super) const T_NUMBER: u8 = 16;
pub(super) const T_STRING: u8 = 32;
pub(super) const T_INTEGER: u8 = 64;

/// One keyword, ready to run.
#[derive(Debug)]
pub(super) enum Kw {
    Ref(usize),
    /// `$dynamicRef` whose static target carries a matching `$dynamicAnchor`.
    DynamicRef(usize, String),
    Type(u8),
    Enum(Vec<Value>),
    Const(Value),
    MultipleOf(Number),
    Maximum(Number),
    ExclusiveMaximum(Number),
    Minimum(Number),
    ExclusiveMinimum(Number),
    MaxLength(u64),
    MinLength(u64),
    Pattern(Box<Pattern>),
    MaxItems(u64),
    MinItems(u64),
    UniqueItems,
    MaxProperties(u64),
    MinProperties(u64),
    Required(Vec<String>),
    /// `dependentRequired` (or draft 7 `dependencies` with a list): keyword name, pairs.
    DependentRequired(&'static str, Vec<(String, Vec<String>)>),
    DependentSchemas(Vec<(String, usize)>),
    AllOf(Vec<usize>),
    AnyOf(Vec<usize>),
    OneOf(Vec<usize>),
    Not(usize),
    If(usize, Option<usize>, Option<usize>),
    Properties(Vec<(String, usize)>),
    PatternProperties(Vec<(Pattern, usize)>),
    /// `additionalProperties`: the schema, the names and patterns that are not additional.
    AdditionalProperties(usize, Vec<String>, Vec<Pattern>),
    PropertyNames(usize),
    /// `contains` with `minContains` (None: the default 1) and `maxContains`.
    Contains(usize, Option<u64>, Option<u64>),
    PrefixItems(Vec<usize>),
    /// `items` after `prefixItems` (2020-12) or `additionalItems` after an `items` array
    /// (draft 7): keyword name, first index, schema.
    ItemsFrom(&'static str, usize, usize),
    UnevaluatedItems(usize),
    UnevaluatedProperties(usize),
}

/// A compiled subschema.
#[derive(Debug)]
pub(super) struct Node {
    /// `Some` for the boolean schemas `true` / `false`.
    pub always: Option<bool>,
    /// The schema resource it belongs to (for `$dynamicRef`'s dynamic scope).
    pub resource: usize,
    /// Keywords in evaluation order; `unevaluated*` last.
    pub kws: Vec<Kw>,
    /// Has `unevaluatedItems` / `unevaluatedProperties`: collects annotations.
    pub unevaluated: bool,
}

/// The compiled form of one schema.
#[derive(Debug)]
pub(super) struct Program {
    pub nodes: Vec<Node>,
    pub root: usize,
    /// Per resource: its `$dynamicAnchor`s and their nodes.
    pub dynamic: Vec<Vec<(String, usize)>>,
    /// Some node uses `unevaluated*`: annotations must be collected.
    pub annotations: bool,
}

/// A compile failure: where in which document, and why.
#[derive(Debug)]
pub(super) struct CompileError {
    /// Document 0 is the schema being compiled; others are references.
    pub doc: usize,
    /// JSON pointer of the faulty keyword in that document.
    pub pointer: String,
    pub problem: String,
}

struct Doc {
    value: Rc<Value>,
    dialect: Dialect,
    vocab: u8,
}

/// Where a subschema lives: document and JSON pointer.
type Loc = (usize, String);

pub(super) struct Loader<'a> {
    preloaded: &'a HashMap<String, Value>,
    docs: Vec<Doc>,
    /// Absolute URI (no fragment) of each resource -> its location.
    resources: HashMap<String, Loc>,
    /// `uri#anchor` -> location.
    anchors: HashMap<String, Loc>,
    /// Per indexed location: base URI and resource number.
    bases: HashMap<Loc, (String, usize)>,
    /// Per resource: its dynamic anchors.
    dynamic_locs: Vec<Vec<(String, Loc)>>,
    memo: HashMap<Loc, usize>,
    nodes: Vec<Node>,
}

/// The standard meta-schemas, embedded (minified); served by URI.
pub(super) fn embedded(uri: &str) -> Option<&'static str> {
    Some(match uri {
        "http://json-schema.org/draft-07/schema" => include_str!("meta/draft7.json"),
        "https://json-schema.org/draft/2020-12/schema" => include_str!("meta/2020-12.json"),
        "https://json-schema.org/draft/2020-12/meta/core" => include_str!("meta/2020-12-core.json"),
        "https://json-schema.org/draft/2020-12/meta/applicator" => {
            include_str!("meta/2020-12-applicator.json")
        }
        "https://json-schema.org/draft/2020-12/meta/unevaluated" => {
            include_str!("meta/2020-12-unevaluated.json")
        }
        "https://json-schema.org/draft/2020-12/meta/validation" => {
            include_str!("meta/2020-12-validation.json")
        }
        "https://json-schema.org/draft/2020-12/meta/meta-data" => {
            include_str!("meta/2020-12-meta-data.json")
        }
        "https://json-schema.org/draft/2020-12/meta/format-annotation" => {
            include_str!("meta/2020-12-format-annotation.json")
        }
        "https://json-schema.org/draft/2020-12/meta/content" => {
            include_str!("meta/2020-12-content.json")
        }
        _ => return None,
    })
}

fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The value at JSON pointer `ptr` (already percent-decoded).
fn at_pointer<'v>(v: &'v Value, ptr: &str) -> Option<&'v Value> {
    if ptr.is_empty() {
        return Some(v);
    }
    v.pointer(ptr)
}

fn err(doc: usize, pointer: &str, problem: impl Into<String>) -> CompileError {
    CompileError {
        doc,
        pointer: pointer.to_string(),
        problem: problem.into(),
    }
}

/// Which vocabularies a 2020-12 meta-schema's `$vocabulary` turns on; `Err` names an unknown
/// required vocabulary.
pub(super) fn vocabularies(meta: &Value) -> Result<u8, String> {
    let Some(voc) = meta.get("$vocabulary").and_then(Value::as_object) else {
        return Ok(VOC_ALL);
    };
    let mut bits = 0;
    for (uri, required) in voc {
        let known = uri.strip_prefix("https://json-schema.org/draft/2020-12/vocab/");
        match known {
            Some("applicator") => bits |= VOC_APPLICATOR,
            Some("unevaluated") => bits |= VOC_UNEVALUATED,
            Some("validation") => bits |= VOC_VALIDATION,
            Some("core" | "meta-data" | "format-annotation" | "content") => {}
            _ if required.as_bool() == Some(true) => {
                return Err(format!("unsupported required vocabulary {uri}"));
            }
            _ => {}
        }
    }
    Ok(bits)
}

impl<'a> Loader<'a> {
    pub(super) fn new(preloaded: &'a HashMap<String, Value>) -> Self {
        Loader {
            preloaded,
            docs: Vec::new(),
            resources: HashMap::new(),
            anchors: HashMap::new(),
            bases: HashMap::new(),
            dynamic_locs: Vec::new(),
            memo: HashMap::new(),
            nodes: Vec::new(),
        }
    }

    /// Compiles `root` (document 0) as `dialect` with the vocabularies `vocab`.
    pub(super) fn compile(
        mut self,
        root: Value,
        dialect: Dialect,
        vocab: u8,
    ) -> Result<Program, CompileError> {
        let doc = self.add_doc(root, DEFAULT_BASE, dialect, vocab);
        let root = self.node((doc, String::new()))?;
        // Every `$dynamicAnchor` of every resource reached may be a dynamic target.
        let mut r = 0;
        while r < self.dynamic_locs.len() {
            let locs = self.dynamic_locs.get(r).cloned().unwrap_or_default();
            for (_, loc) in locs {
                self.node(loc)?;
            }
            r += 1;
        }
        let dynamic = self
            .dynamic_locs
            .iter()
            .map(|anchors| {
                anchors
                    .iter()
                    .filter_map(|(name, loc)| self.memo.get(loc).map(|n| (name.clone(), *n)))
                    .collect()
            })
            .collect();
        let annotations = self.nodes.iter().any(|n| n.unevaluated);
        Ok(Program {
            nodes: self.nodes,
            root,
            dynamic,
            annotations,
        })
    }

    /// The node for the subschema at `loc`, compiling it once.
    fn node(&mut self, loc: Loc) -> Result<usize, CompileError> {
        if let Some(n) = self.memo.get(&loc) {
            return Ok(*n);
        }
        let id = self.nodes.len();
        let (_, resource) = self.base_of(&loc);
        self.nodes.push(Node {
            always: None,
            resource,
            kws: Vec::new(),
            unevaluated: false,
        });
        self.memo.insert(loc.clone(), id);
        let (value, dialect, vocab) = match self.docs.get(loc.0) {
            Some(d) => (Rc::clone(&d.value), d.dialect, d.vocab),
            None => return Err(err(loc.0, &loc.1, "unknown document")),
        };
        let Some(v) = at_pointer(&value, &loc.1) else {
            return Err(err(loc.0, &loc.1, "reference to nothing"));
        };
        let (always, kws) = match v {
            Value::Bool(b) => (Some(*b), Vec::new()),
            Value::Object(obj) => (None, self.keywords(&loc, obj, dialect, vocab)?),
            _ => {
                return Err(err(
                    loc.0,
                    &loc.1,
                    "a schema must be an object or a boolean",
                ))
            }
        };
        let unevaluated = kws
            .iter()
            .any(|k| matches!(k, Kw::UnevaluatedItems(_) | Kw::UnevaluatedProperties(_)));
        if let Some(n) = self.nodes.get_mut(id) {
            n.always = always;
            n.kws = kws;
            n.unevaluated = unevaluated;
        }
        Ok(id)
    }

    fn child(&mut self, loc: &Loc, path: &[&str]) -> Result<usize, CompileError> {
        let mut ptr = loc.1.clone();
        for p in path {
            ptr.push('/');
            ptr.push_str(&escape_token(p));
        }
        self.node((loc.0, ptr))
    }

    fn children(&mut self, loc: &Loc, key: &str, v: &Value) -> Result<Vec<usize>, CompileError> {
        let n = v.as_array().map_or(0, Vec::len);
        (0..n)
            .map(|i| self.child(loc, &[key, &i.to_string()]))
            .collect()
    }

    fn named(
        &mut self,
        loc: &Loc,
        key: &str,
        v: &Value,
    ) -> Result<Vec<(String, usize)>, CompileError> {
        let Some(m) = v.as_object() else {
            return Ok(Vec::new());
        };
        m.keys()
            .map(|name| Ok((name.clone(), self.child(loc, &[key, name])?)))
            .collect()
    }
}
