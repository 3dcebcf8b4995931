//! Keyword compilation: one schema object's keywords, in evaluation order, each turned into a
//! `Kw` with its subschemas compiled to nodes and its patterns compiled, per dialect and
//! vocabulary.

use serde_json::{Map, Value};

use super::{at_pointer, err, escape_token, CompileError, Kw, Loader, Loc};
use super::{T_ARRAY, T_BOOL, T_INTEGER, T_NULL, T_NUMBER, T_OBJECT, T_STRING};
use super::{VOC_APPLICATOR, VOC_UNEVALUATED, VOC_VALIDATION};
use crate::validate::pattern::Pattern;
use crate::validate::schema::Dialect;

impl Loader<'_> {
    #[inline(never)]
    pub(super) fn keywords(
        &mut self,
        loc: &Loc,
        obj: &Map<String, Value>,
        dialect: Dialect,
        vocab: u8,
    ) -> Result<Vec<Kw>, CompileError> {
        let draft7 = dialect == Dialect::Draft7;
        let kw_at = |k: &str| kw_at(loc, k);
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
        for (k, v) in obj {
            if val {
                if let Some(kw) = validation(loc, k, v, draft7)? {
                    kws.push(kw);
                    continue;
                }
            }
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
                        let at = format!("{}/{}", kw_at(k), escape_token(name));
                        let p = pattern(loc, &at, name)?;
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
                        let at = format!("{}/{}", kw_at("patternProperties"), escape_token(name));
                        pats.push(pattern(loc, &at, name)?);
                    }
                    Kw::AdditionalProperties(self.child(loc, &[k])?, names, pats)
                }
                "propertyNames" if app => Kw::PropertyNames(self.child(loc, &[k])?),
                "contains" if app => {
                    let (min, max) = if draft7 || !val {
                        (None, None)
                    } else {
                        (
                            obj.get("minContains").and_then(count),
                            obj.get("maxContains").and_then(count),
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

/// A validation-vocabulary keyword (`type`, bounds, lengths, `pattern`, `required`...); `None`
/// for any other keyword, or for a value of the wrong type (nothing to check).
#[inline(never)]
fn validation(loc: &Loc, k: &str, v: &Value, draft7: bool) -> Result<Option<Kw>, CompileError> {
    let number = || v.as_number().cloned();
    Ok(match k {
        "type" => Some(Kw::Type(type_bits(loc, k, v)?)),
        "enum" => Some(Kw::Enum(v.as_array().cloned().unwrap_or_default())),
        "const" => Some(Kw::Const(v.clone())),
        "multipleOf" => number().map(Kw::MultipleOf),
        "maximum" => number().map(Kw::Maximum),
        "exclusiveMaximum" => number().map(Kw::ExclusiveMaximum),
        "minimum" => number().map(Kw::Minimum),
        "exclusiveMinimum" => number().map(Kw::ExclusiveMinimum),
        "maxLength" => count(v).map(Kw::MaxLength),
        "minLength" => count(v).map(Kw::MinLength),
        "pattern" => match v.as_str() {
            Some(p) => Some(Kw::Pattern(Box::new(pattern(loc, &kw_at(loc, k), p)?))),
            None => None,
        },
        "maxItems" => count(v).map(Kw::MaxItems),
        "minItems" => count(v).map(Kw::MinItems),
        "uniqueItems" => (v.as_bool() == Some(true)).then_some(Kw::UniqueItems),
        "maxProperties" => count(v).map(Kw::MaxProperties),
        "minProperties" => count(v).map(Kw::MinProperties),
        "required" => Some(Kw::Required(strings(v))),
        "dependentRequired" if !draft7 => Some(Kw::DependentRequired(
            "dependentRequired",
            v.as_object()
                .map(|m| m.iter().map(|(a, b)| (a.clone(), strings(b))).collect())
                .unwrap_or_default(),
        )),
        _ => None,
    })
}

/// The bits of `type`, one name or a list.
fn type_bits(loc: &Loc, k: &str, v: &Value) -> Result<u8, CompileError> {
    let names: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut bits = 0;
    for t in names {
        bits |= match t.as_str() {
            Some("null") => T_NULL,
            Some("boolean") => T_BOOL,
            Some("object") => T_OBJECT,
            Some("array") => T_ARRAY,
            Some("number") => T_NUMBER,
            Some("string") => T_STRING,
            Some("integer") => T_INTEGER,
            _ => return Err(err(loc.0, &kw_at(loc, k), "unknown type")),
        };
    }
    Ok(bits)
}

/// A count (`maxLength`, `minItems`...) as `u64`: `2.0` is 2 (the meta-schema asks for a
/// non-negative integer).
fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
}

/// Pointer of keyword `k` of the schema at `loc`.
fn kw_at(loc: &Loc, k: &str) -> String {
    format!("{}/{}", loc.1, escape_token(k))
}

/// `source` compiled by the linear-time engine; `at` names it in the error.
fn pattern(loc: &Loc, at: &str, source: &str) -> Result<Pattern, CompileError> {
    Pattern::new(source).map_err(|e| err(loc.0, at, format!("unsupported regular expression: {e}")))
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
