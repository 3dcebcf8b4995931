//! Compiles a JSON Schema document (and the documents it references) into a flat program of
//! nodes: every `$ref` is resolved to a node index here, every pattern compiled, so validation
//! does no lookup by URI and no parsing.
//!
//! Documents come from three places only: the schema itself, the standard meta-schemas embedded
//! in the module (drafts 7 and 2020-12), and the documents the caller preloaded. Anything else is
//! refused: meshguard never fetches.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Number, Value};

use super::uri;
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

    fn add_doc(&mut self, value: Value, uri: &str, dialect: Dialect, vocab: u8) -> usize {
        let n = self.docs.len();
        let value = Rc::new(value);
        self.docs.push(Doc {
            value: Rc::clone(&value),
            dialect,
            vocab,
        });
        let resource = self.new_resource(uri, (n, String::new()));
        self.index(n, &value, String::new(), uri.to_string(), resource, dialect);
        n
    }

    fn new_resource(&mut self, uri: &str, loc: Loc) -> usize {
        self.resources.entry(uri.to_string()).or_insert(loc);
        self.dynamic_locs.push(Vec::new());
        self.dynamic_locs.len() - 1
    }

    /// Records base URIs, resources and anchors of every subschema under `v`.
    #[inline(never)]
    fn index(
        &mut self,
        doc: usize,
        v: &Value,
        ptr: String,
        mut base: String,
        mut resource: usize,
        dialect: Dialect,
    ) {
        let Some(obj) = v.as_object() else {
            self.bases.insert((doc, ptr), (base, resource));
            return;
        };
        let draft7 = dialect == Dialect::Draft7;
        // Draft 7: `$ref` makes every sibling, `$id` included, ignored.
        let id_applies = !(draft7 && obj.contains_key("$ref"));
        if let Some(id) = obj
            .get("$id")
            .and_then(Value::as_str)
            .filter(|_| id_applies)
        {
            let resolved = uri::resolve(&base, id);
            let (abs, frag) = uri::split_fragment(&resolved);
            if draft7 && id.starts_with('#') {
                self.anchors
                    .insert(format!("{abs}#{frag}"), (doc, ptr.clone()));
            } else {
                if abs != base {
                    resource = self.new_resource(abs, (doc, ptr.clone()));
                }
                base = abs.to_string();
                if draft7 && !frag.is_empty() {
                    self.anchors
                        .insert(format!("{abs}#{frag}"), (doc, ptr.clone()));
                }
            }
        }
        if !draft7 {
            if let Some(a) = obj.get("$anchor").and_then(Value::as_str) {
                self.anchors
                    .insert(format!("{base}#{a}"), (doc, ptr.clone()));
            }
            if let Some(a) = obj.get("$dynamicAnchor").and_then(Value::as_str) {
                self.anchors
                    .insert(format!("{base}#{a}"), (doc, ptr.clone()));
                if let Some(d) = self.dynamic_locs.get_mut(resource) {
                    d.push((a.to_string(), (doc, ptr.clone())));
                }
            }
        }
        self.bases
            .insert((doc, ptr.clone()), (base.clone(), resource));
        for (k, child) in obj {
            let here = format!("{ptr}/{}", escape_token(k));
            match (k.as_str(), draft7) {
                (
                    "additionalProperties"
                    | "propertyNames"
                    | "not"
                    | "if"
                    | "then"
                    | "else"
                    | "contains",
                    _,
                )
                | ("unevaluatedItems" | "unevaluatedProperties", false)
                | ("additionalItems", true) => {
                    self.index(doc, child, here, base.clone(), resource, dialect)
                }
                ("items", _) if child.is_array() && draft7 => {
                    self.index_array(doc, child, &here, &base, resource, dialect)
                }
                ("items", _) => self.index(doc, child, here, base.clone(), resource, dialect),
                ("allOf" | "anyOf" | "oneOf", _) | ("prefixItems", false) => {
                    self.index_array(doc, child, &here, &base, resource, dialect)
                }
                ("properties" | "patternProperties" | "definitions" | "$defs", _)
                | ("dependentSchemas", false)
                | ("dependencies", true) => {
                    if let Some(m) = child.as_object() {
                        for (name, s) in m {
                            let p = format!("{here}/{}", escape_token(name));
                            self.index(doc, s, p, base.clone(), resource, dialect);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn index_array(
        &mut self,
        doc: usize,
        v: &Value,
        here: &str,
        base: &str,
        resource: usize,
        dialect: Dialect,
    ) {
        if let Some(items) = v.as_array() {
            for (i, s) in items.iter().enumerate() {
                let p = format!("{here}/{i}");
                self.index(doc, s, p, base.to_string(), resource, dialect);
            }
        }
    }

    /// Base URI and resource of a location: its own if indexed, else its nearest indexed
    /// ancestor's (a `$ref` may point anywhere in a document).
    fn base_of(&self, loc: &Loc) -> (String, usize) {
        let (doc, mut ptr) = (loc.0, loc.1.as_str());
        loop {
            if let Some(b) = self.bases.get(&(doc, ptr.to_string())) {
                return b.clone();
            }
            match ptr.rfind('/') {
                Some(i) => ptr = ptr.get(..i).unwrap_or(""),
                None => return (DEFAULT_BASE.to_string(), 0),
            }
        }
    }

    /// Finds (loading if needed) the document resource at absolute URI `abs`.
    fn resource(&mut self, abs: &str, from: usize, at: &str) -> Result<Loc, CompileError> {
        if let Some(loc) = self.resources.get(abs) {
            return Ok(loc.clone());
        }
        let referrer = self
            .docs
            .get(from)
            .map_or((Dialect::Draft202012, VOC_ALL), |d| (d.dialect, d.vocab));
        let (value, dialect) = if let Some(text) = embedded(abs) {
            let v: Value = serde_json::from_str(text)
                .map_err(|_| err(from, at, "embedded meta-schema unreadable"))?;
            let d = if abs.contains("draft-07") {
                Dialect::Draft7
            } else {
                Dialect::Draft202012
            };
            (v, d)
        } else if let Some(v) = self.preloaded.get(abs) {
            let d = match v.get("$schema").and_then(Value::as_str) {
                Some(s) if s.contains("draft-07") => Dialect::Draft7,
                Some(s) if s.contains("2020-12") => Dialect::Draft202012,
                _ => referrer.0,
            };
            (v.clone(), d)
        } else {
            return Err(err(
                from,
                at,
                format!("cannot resolve reference: meshguard never fetches schemas ({abs})"),
            ));
        };
        let vocab = if dialect == referrer.0 {
            referrer.1
        } else {
            VOC_ALL
        };
        let doc = self.add_doc(value, abs, dialect, vocab);
        Ok((doc, String::new()))
    }

    /// Resolves reference `r` made at `loc` (pointer `at` for errors).
    #[inline(never)]
    fn resolve(&mut self, loc: &Loc, r: &str, at: &str) -> Result<(Loc, String), CompileError> {
        let (base, _) = self.base_of(loc);
        let target = uri::resolve(&base, r);
        let (abs, frag) = uri::split_fragment(&target);
        let (abs, frag) = (abs.to_string(), uri::percent_decode(frag));
        let res = self.resource(&abs, loc.0, at)?;
        let found = if frag.is_empty() {
            Some(res)
        } else if frag.starts_with('/') {
            let ptr = format!("{}{}", res.1, frag);
            let exists = self
                .docs
                .get(res.0)
                .is_some_and(|d| at_pointer(&d.value, &ptr).is_some());
            exists.then_some((res.0, ptr))
        } else {
            self.anchors.get(&format!("{abs}#{frag}")).cloned()
        };
        match found {
            Some(l) => Ok((l, frag)),
            None => Err(err(loc.0, at, format!("cannot resolve reference {r:?}"))),
        }
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

    #[inline(never)]
    fn keywords(
        &mut self,
        loc: &Loc,
        obj: &Map<String, Value>,
        dialect: Dialect,
        vocab: u8,
    ) -> Result<Vec<Kw>, CompileError> {
        let draft7 = dialect == Dialect::Draft7;
        let kw_at = |k: &str| format!("{}/{}", loc.1, escape_token(k));
        let mut kws = Vec::new();
        let mut last = Vec::new();
        if draft7 {
            if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
                let (target, _) = self.resolve(loc, r, &kw_at("$ref"))?;
                return Ok(vec![Kw::Ref(self.node(target)?)]);
            }
        }
        let app = vocab & VOC_APPLICATOR != 0;
        let val = vocab & VOC_VALIDATION != 0;
        let uneval = vocab & VOC_UNEVALUATED != 0 && !draft7;
        let num = |v: &Value| v.as_number().cloned();
        let uint = |v: &Value| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64));
        for (k, v) in obj {
            let kw = match k.as_str() {
                "$ref" => {
                    let Some(r) = v.as_str() else { continue };
                    let (target, _) = self.resolve(loc, r, &kw_at(k))?;
                    Kw::Ref(self.node(target)?)
                }
                "$dynamicRef" if !draft7 => {
                    let Some(r) = v.as_str() else { continue };
                    let (target, frag) = self.resolve(loc, r, &kw_at(k))?;
                    let dynamic = !frag.is_empty()
                        && !frag.starts_with('/')
                        && self.docs.get(target.0).is_some_and(|d| {
                            at_pointer(&d.value, &target.1)
                                .and_then(|s| s.get("$dynamicAnchor"))
                                .and_then(Value::as_str)
                                == Some(frag.as_str())
                        });
                    let n = self.node(target)?;
                    if dynamic {
                        Kw::DynamicRef(n, frag)
                    } else {
                        Kw::Ref(n)
                    }
                }
                "type" if val => {
                    let mut bits = 0;
                    let names: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for t in names {
                        bits |= match t.as_str() {
                            Some("null") => T_NULL,
                            Some("boolean") => T_BOOL,
                            Some("object") => T_OBJECT,
                            Some("array") => T_ARRAY,
                            Some("number") => T_NUMBER,
                            Some("string") => T_STRING,
                            Some("integer") => T_INTEGER,
                            _ => return Err(err(loc.0, &kw_at(k), "unknown type")),
                        };
                    }
                    Kw::Type(bits)
                }
                "enum" if val => Kw::Enum(v.as_array().cloned().unwrap_or_default()),
                "const" if val => Kw::Const(v.clone()),
                "multipleOf" if val => match num(v) {
                    Some(n) => Kw::MultipleOf(n),
                    None => continue,
                },
                "maximum" if val => match num(v) {
                    Some(n) => Kw::Maximum(n),
                    None => continue,
                },
                "exclusiveMaximum" if val => match num(v) {
                    Some(n) => Kw::ExclusiveMaximum(n),
                    None => continue,
                },
                "minimum" if val => match num(v) {
                    Some(n) => Kw::Minimum(n),
                    None => continue,
                },
                "exclusiveMinimum" if val => match num(v) {
                    Some(n) => Kw::ExclusiveMinimum(n),
                    None => continue,
                },
                "maxLength" if val => match uint(v) {
                    Some(n) => Kw::MaxLength(n),
                    None => continue,
                },
                "minLength" if val => match uint(v) {
                    Some(n) => Kw::MinLength(n),
                    None => continue,
                },
                "pattern" if val => {
                    let Some(p) = v.as_str() else { continue };
                    let p = Pattern::new(p).map_err(|e| {
                        err(
                            loc.0,
                            &kw_at(k),
                            format!("unsupported regular expression: {e}"),
                        )
                    })?;
                    Kw::Pattern(Box::new(p))
                }
                "maxItems" if val => match uint(v) {
                    Some(n) => Kw::MaxItems(n),
                    None => continue,
                },
                "minItems" if val => match uint(v) {
                    Some(n) => Kw::MinItems(n),
                    None => continue,
                },
                "uniqueItems" if val => {
                    if v.as_bool() != Some(true) {
                        continue;
                    }
                    Kw::UniqueItems
                }
                "maxProperties" if val => match uint(v) {
                    Some(n) => Kw::MaxProperties(n),
                    None => continue,
                },
                "minProperties" if val => match uint(v) {
                    Some(n) => Kw::MinProperties(n),
                    None => continue,
                },
                "required" if val => Kw::Required(strings(v)),
                "dependentRequired" if val && !draft7 => Kw::DependentRequired(
                    "dependentRequired",
                    v.as_object()
                        .map(|m| m.iter().map(|(a, b)| (a.clone(), strings(b))).collect())
                        .unwrap_or_default(),
                ),
                "dependencies" if draft7 => {
                    let Some(m) = v.as_object() else { continue };
                    let mut req = Vec::new();
                    let mut sch = Vec::new();
                    for (name, d) in m {
                        if d.is_array() {
                            req.push((name.clone(), strings(d)));
                        } else {
                            sch.push((name.clone(), self.child(loc, &[k, name])?));
                        }
                    }
                    kws.push(Kw::DependentRequired("dependencies", req));
                    Kw::DependentSchemas(sch)
                }
                "dependentSchemas" if app && !draft7 => {
                    Kw::DependentSchemas(self.named(loc, k, v)?)
                }
                "allOf" if app => Kw::AllOf(self.children(loc, k, v)?),
                "anyOf" if app => Kw::AnyOf(self.children(loc, k, v)?),
                "oneOf" if app => Kw::OneOf(self.children(loc, k, v)?),
                "not" if app => Kw::Not(self.child(loc, &[k])?),
                "if" if app => {
                    let c = self.child(loc, &[k])?;
                    let t = match obj.get("then") {
                        Some(_) => Some(self.child(loc, &["then"])?),
                        None => None,
                    };
                    let e = match obj.get("else") {
                        Some(_) => Some(self.child(loc, &["else"])?),
                        None => None,
                    };
                    Kw::If(c, t, e)
                }
                "properties" if app => Kw::Properties(self.named(loc, k, v)?),
                "patternProperties" if app => {
                    let mut out = Vec::new();
                    for name in v.as_object().map(|m| m.keys()).into_iter().flatten() {
                        let p = Pattern::new(name).map_err(|e| {
                            let at = format!("{}/{}", kw_at(k), escape_token(name));
                            err(loc.0, &at, format!("unsupported regular expression: {e}"))
                        })?;
                        out.push((p, self.child(loc, &[k, name])?));
                    }
                    Kw::PatternProperties(out)
                }
                "additionalProperties" if app => {
                    let names = obj
                        .get("properties")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    let mut pats = Vec::new();
                    let pp = obj.get("patternProperties").and_then(Value::as_object);
                    for name in pp.map(|m| m.keys()).into_iter().flatten() {
                        let p = Pattern::new(name).map_err(|e| {
                            let at =
                                format!("{}/{}", kw_at("patternProperties"), escape_token(name));
                            err(loc.0, &at, format!("unsupported regular expression: {e}"))
                        })?;
                        pats.push(p);
                    }
                    Kw::AdditionalProperties(self.child(loc, &[k])?, names, pats)
                }
                "propertyNames" if app => Kw::PropertyNames(self.child(loc, &[k])?),
                "contains" if app => {
                    let (min, max) = if draft7 || !val {
                        (None, None)
                    } else {
                        (
                            obj.get("minContains").and_then(uint),
                            obj.get("maxContains").and_then(uint),
                        )
                    };
                    Kw::Contains(self.child(loc, &[k])?, min, max)
                }
                "prefixItems" if app && !draft7 => Kw::PrefixItems(self.children(loc, k, v)?),
                "items" if app => {
                    if draft7 && v.is_array() {
                        Kw::PrefixItems(self.children(loc, k, v)?)
                    } else {
                        let start = if draft7 {
                            0
                        } else {
                            obj.get("prefixItems")
                                .and_then(Value::as_array)
                                .map_or(0, Vec::len)
                        };
                        Kw::ItemsFrom("items", start, self.child(loc, &[k])?)
                    }
                }
                "additionalItems" if app && draft7 => {
                    let Some(items) = obj.get("items").and_then(Value::as_array) else {
                        continue;
                    };
                    Kw::ItemsFrom("additionalItems", items.len(), self.child(loc, &[k])?)
                }
                "unevaluatedItems" if uneval => {
                    last.push(Kw::UnevaluatedItems(self.child(loc, &[k])?));
                    continue;
                }
                "unevaluatedProperties" if uneval => {
                    last.push(Kw::UnevaluatedProperties(self.child(loc, &[k])?));
                    continue;
                }
                _ => continue,
            };
            kws.push(kw);
        }
        kws.extend(last);
        Ok(kws)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
