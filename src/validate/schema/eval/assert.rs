//! The assertion keywords: those that look at the instance itself (`type`, bounds, `required`...),
//! with no subschema on the instance path (`propertyNames` evaluates its schema on the names
//! only, quietly).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::number::{cmp, equal, is_integer, multiple_of};
use super::{At, Eval, Path};
use crate::validate::schema::compile::{
    Kw, T_ARRAY, T_BOOL, T_INTEGER, T_NULL, T_NUMBER, T_OBJECT, T_STRING,
};

impl Eval<'_> {
    /// The keywords that look at the instance alone (no subschema on the path).
    // Out of line, as every applicator: V8 (TurboFan only, in Envoy) keeps memory per compiled
    // function size, so one huge function costs more resident memory than the same code split.
    #[inline(never)]
    pub(super) fn assertion(&mut self, kw: &Kw, inst: &Value, path: &Path<'_>) -> bool {
        let number = inst.as_number();
        let string = inst.as_str();
        let array = inst.as_array();
        let object = inst.as_object();
        match kw {
            Kw::Type(bits) => self.check(path, "type", bits & type_bits(inst) != 0),
            Kw::Enum(vals) => self.check(path, "enum", vals.iter().any(|v| equal(v, inst))),
            Kw::Const(v) => self.check(path, "const", equal(v, inst)),
            Kw::MultipleOf(m) => {
                self.check(path, "multipleOf", number.is_none_or(|x| multiple_of(x, m)))
            }
            Kw::Maximum(l) => self.check(
                path,
                "maximum",
                number.is_none_or(|x| cmp(x, l).is_some_and(|o| o != Ordering::Greater)),
            ),
            Kw::ExclusiveMaximum(l) => self.check(
                path,
                "exclusiveMaximum",
                number.is_none_or(|x| cmp(x, l) == Some(Ordering::Less)),
            ),
            Kw::Minimum(l) => self.check(
                path,
                "minimum",
                number.is_none_or(|x| cmp(x, l).is_some_and(|o| o != Ordering::Less)),
            ),
            Kw::ExclusiveMinimum(l) => self.check(
                path,
                "exclusiveMinimum",
                number.is_none_or(|x| cmp(x, l) == Some(Ordering::Greater)),
            ),
            Kw::MaxLength(n) => {
                self.check(path, "maxLength", string.is_none_or(|s| chars(s) <= *n))
            }
            Kw::MinLength(n) => {
                self.check(path, "minLength", string.is_none_or(|s| chars(s) >= *n))
            }
            Kw::Pattern(p) => self.check(path, "pattern", string.is_none_or(|s| p.is_match(s))),
            Kw::MaxItems(n) => self.check(path, "maxItems", array.is_none_or(|a| len(a) <= *n)),
            Kw::MinItems(n) => self.check(path, "minItems", array.is_none_or(|a| len(a) >= *n)),
            Kw::UniqueItems => self.check(path, "uniqueItems", array.is_none_or(|a| unique(a))),
            Kw::MaxProperties(n) => {
                let ok = object.is_none_or(|o| o.len() as u64 <= *n);
                self.check(path, "maxProperties", ok)
            }
            Kw::MinProperties(n) => {
                let ok = object.is_none_or(|o| o.len() as u64 >= *n);
                self.check(path, "minProperties", ok)
            }
            Kw::Required(names) => object.is_none_or(|o| self.required(o, names, path, "required")),
            Kw::DependentRequired(keyword, deps) => object.is_none_or(|o| {
                let present = deps.iter().filter(|(name, _)| o.contains_key(name));
                self.every(present, |ev, (_, req)| ev.required(o, req, path, keyword))
            }),
            Kw::PropertyNames(s) => object.is_none_or(|o| {
                let ok = o.keys().all(|k| {
                    let name = Value::String(k.clone());
                    self.quiet(*s, At::of(&name, path))
                });
                self.check(path, "propertyNames", ok)
            }),
            _ => true,
        }
    }

    /// Every name in `names` is a member of `o`; each missing one is a violation of `keyword`.
    fn required(
        &mut self,
        o: &Map<String, Value>,
        names: &[String],
        path: &Path<'_>,
        keyword: &'static str,
    ) -> bool {
        let missing = names.iter().filter(|name| !o.contains_key(*name));
        self.every(missing, |ev, name| {
            ev.fail_with(path, keyword, Some(name.clone()), Vec::new());
            false
        })
    }
}

fn type_bits(v: &Value) -> u8 {
    match v {
        Value::Null => T_NULL,
        Value::Bool(_) => T_BOOL,
        Value::Object(_) => T_OBJECT,
        Value::Array(_) => T_ARRAY,
        Value::String(_) => T_STRING,
        Value::Number(n) if is_integer(n) => T_NUMBER | T_INTEGER,
        Value::Number(_) => T_NUMBER,
    }
}

/// A string's length as JSON Schema counts it: in characters (code points).
fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

fn len(a: &[Value]) -> u64 {
    a.len() as u64
}

/// No two items are equal (`uniqueItems`).
fn unique(a: &[Value]) -> bool {
    a.iter()
        .enumerate()
        .all(|(i, x)| a.iter().skip(i + 1).all(|y| !equal(x, y)))
}
