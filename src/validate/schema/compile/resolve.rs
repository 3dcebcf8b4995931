//! Where a reference points: documents loaded (the schema, the embedded meta-schemas, the
//! caller's preloaded documents, nothing else), every subschema's base URI, resource and
//! anchors indexed, and `$ref` / `$dynamicRef` resolved to a location.

use std::rc::Rc;

use serde_json::Value;

use super::{at_pointer, embedded, err, escape_token, CompileError, Doc, Loader, Loc};
use super::{DEFAULT_BASE, VOC_ALL};
use crate::validate::schema::{uri, Dialect};

impl Loader<'_> {
    pub(super) fn add_doc(
        &mut self,
        value: Value,
        uri: &str,
        dialect: Dialect,
        vocab: u8,
    ) -> usize {
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
    pub(super) fn base_of(&self, loc: &Loc) -> (String, usize) {
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
    pub(super) fn resolve(
        &mut self,
        loc: &Loc,
        r: &str,
        at: &str,
    ) -> Result<(Loc, String), CompileError> {
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
}
