//! Reads the raw config types out of a parsed JSON value: [`FromJson`], one small impl per raw
//! type beside the type, and [`Fields`], which checks an object's members (unknown ones are
//! errors) and reads each one with its JSON path.
//!
//! Why not serde's derive: its visitors are monomorphised per type and per deserializer, which
//! cost ~180 KB of module (measured: docs/cost.md), paid in resident memory by every sidecar.
//! The raw types keep `#[derive(Deserialize)]` for the attributes the config's JSON Schema is
//! derived from (`meshguard schema`); the module never calls it, so it adds no code, and
//! `tests/config_schema.rs` checks that both readers agree (over ~1,500 variants of a full config).

use crate::error::config::ConfigError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a value sits in the config: a chain of keys and indices, rendered only for an error.
#[derive(Clone, Copy)]
pub struct At<'a> {
    up: Option<&'a At<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl At<'static> {
    /// The document itself.
    pub const ROOT: At<'static> = At {
        up: None,
        seg: Seg::Root,
    };
}

impl<'a> At<'a> {
    /// The member `key` of this object.
    pub fn key(&'a self, key: &'a str) -> At<'a> {
        At {
            up: Some(self),
            seg: Seg::Key(key),
        }
    }

    /// The element `i` of this array.
    pub fn index(&'a self, i: usize) -> At<'a> {
        At {
            up: Some(self),
            seg: Seg::Index(i),
        }
    }

    /// The JSON path as the config errors print it: `routes[0].match.path`.
    pub fn path(&self) -> String {
        let mut segs = Vec::new();
        let mut at = Some(self);
        while let Some(a) = at {
            segs.push(a.seg);
            at = a.up;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// An error about the value here.
    pub fn err(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path(), problem)
    }

    /// "invalid type: a string, expected `expected`" (the value itself is never echoed).
    pub fn wrong_type(&self, v: &Value, expected: &str) -> ConfigError {
        let got = match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        self.err(format!("invalid type: {got}, expected {expected}"))
    }
}

/// A raw config type read from its JSON value; errors name `at`'s path.
pub trait FromJson: Sized {
    /// Reads `v` (found at `at`).
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError>;
}

impl FromJson for bool {
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        v.as_bool().ok_or_else(|| at.wrong_type(v, "a boolean"))
    }
}

impl FromJson for String {
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(at.wrong_type(v, "a string")),
        }
    }
}

impl FromJson for Value {
    fn from_json(v: &Value, _at: &At) -> Result<Self, ConfigError> {
        Ok(v.clone())
    }
}

impl FromJson for Map<String, Value> {
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        match v {
            Value::Object(m) => Ok(m.clone()),
            _ => Err(at.wrong_type(v, "an object")),
        }
    }
}

/// A non-negative integer no larger than `max`.
fn uint(v: &Value, at: &At, max: u64, name: &str) -> Result<u64, ConfigError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        _ => return Err(at.wrong_type(v, name)),
    };
    match n {
        Some(n) if n <= max => Ok(n),
        _ => Err(at.err(format!(
            "invalid value: expected {name} (a whole number from 0 to {max})"
        ))),
    }
}

macro_rules! uint_from_json {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
                let n = uint(v, at, <$t>::MAX as u64, stringify!($t))?;
                <$t>::try_from(n).map_err(|_| at.err(concat!("invalid value: expected ", stringify!($t))))
            }
        }
    )*};
}
uint_from_json!(u16, u32, u64, usize);

impl<T: FromJson> FromJson for Option<T> {
    /// `null` is absent, as serde reads it.
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        match v {
            Value::Null => Ok(None),
            _ => T::from_json(v, at).map(Some),
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        let Value::Array(items) = v else {
            return Err(at.wrong_type(v, "an array"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(T::from_json(item, &at.index(i))?);
        }
        Ok(out)
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
        let Value::Object(m) = v else {
            return Err(at.wrong_type(v, "an object"));
        };
        let mut out = BTreeMap::new();
        for (k, item) in m {
            out.insert(k.clone(), T::from_json(item, &at.key(k))?);
        }
        Ok(out)
    }
}

/// Reads a raw config type from a JSON value, as the module does (for tests of the raw types).
#[cfg(test)]
pub fn from_value<T: FromJson>(v: Value) -> Result<T, ConfigError> {
    T::from_json(&v, &At::ROOT)
}

/// Which of `names` the string `v` is (a unit enum variant, as serde's `rename_all` spells it).
pub fn variant(v: &Value, at: &At, names: &[&str]) -> Result<usize, ConfigError> {
    let Value::String(s) = v else {
        return Err(at.wrong_type(v, "a string"));
    };
    names.iter().position(|n| n == s).ok_or_else(|| {
        at.err(format!(
            "unknown variant `{}`, expected one of {}",
            s.escape_debug(),
            quoted(names)
        ))
    })
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The members of one config object, checked against the names its type knows.
pub struct Fields<'v, 'a> {
    map: &'v Map<String, Value>,
    at: &'a At<'a>,
}

impl<'v, 'a> Fields<'v, 'a> {
    /// `v` must be an object whose members are all among `known`.
    pub fn new(v: &'v Value, at: &'a At<'a>, known: &[&str]) -> Result<Self, ConfigError> {
        let Value::Object(map) = v else {
            return Err(at.wrong_type(v, "an object"));
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(at.err(format!(
                "unknown field `{}`, expected one of {}",
                k.escape_debug(),
                quoted(known)
            )));
        }
        Ok(Fields { map, at })
    }

    /// The member `name`, or the type's default when it is absent.
    pub fn get<T: FromJson + Default>(&self, name: &str) -> Result<T, ConfigError> {
        self.or(name, T::default)
    }

    /// The member `name`, or `default()` when it is absent.
    pub fn or<T: FromJson>(
        &self,
        name: &str,
        default: impl FnOnce() -> T,
    ) -> Result<T, ConfigError> {
        match self.map.get(name) {
            Some(v) => T::from_json(v, &self.at.key(name)),
            None => Ok(default()),
        }
    }

    /// The member `name`, which must be present.
    pub fn req<T: FromJson>(&self, name: &str) -> Result<T, ConfigError> {
        match self.map.get(name) {
            Some(v) => T::from_json(v, &self.at.key(name)),
            None => Err(self.at.err(format!("missing field `{name}`"))),
        }
    }
}

/// The JSON name of a field: its Rust name, or the literal given with `= "name"`.
macro_rules! json_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $name:literal) => {
        $name
    };
}

/// `impl FromJson` for a raw config struct: each field with how it is read (`get`: absent is
/// the default; `req`: absent is an error) and, when the JSON name differs, `= "name"`. Members
/// not listed are errors (serde's `deny_unknown_fields`).
macro_rules! from_json_struct {
    ($t:ty { $($field:ident $(= $name:literal)? : $how:ident),* $(,)? }) => {
        impl $crate::config::read::FromJson for $t {
            fn from_json(
                v: &serde_json::Value,
                at: &$crate::config::read::At,
            ) -> Result<Self, $crate::error::config::ConfigError> {
                let f = $crate::config::read::Fields::new(
                    v,
                    at,
                    &[$($crate::config::read::json_name!($field $($name)?)),*],
                )?;
                Ok(Self {
                    $($field: f.$how($crate::config::read::json_name!($field $($name)?))?,)*
                })
            }
        }
    };
}

/// `impl FromJson` for a unit enum written as a string: each variant with its JSON name.
macro_rules! from_json_enum {
    ($t:ty { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $crate::config::read::FromJson for $t {
            fn from_json(
                v: &serde_json::Value,
                at: &$crate::config::read::At,
            ) -> Result<Self, $crate::error::config::ConfigError> {
                let i = $crate::config::read::variant(v, at, &[$($name),*])?;
                [$(Self::$variant),*]
                    .get(i)
                    .copied()
                    .ok_or_else(|| at.err("unknown variant"))
            }
        }
    };
}

pub(crate) use {from_json_enum, from_json_struct, json_name};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Default)]
    struct Pair {
        a: u32,
        b: Option<String>,
    }

    impl FromJson for Pair {
        fn from_json(v: &Value, at: &At) -> Result<Self, ConfigError> {
            let f = Fields::new(v, at, &["a", "b"])?;
            Ok(Pair {
                a: f.req("a")?,
                b: f.get("b")?,
            })
        }
    }

    fn read<T: FromJson>(v: Value) -> Result<T, String> {
        T::from_json(&v, &At::ROOT).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_nested_values_and_names_the_path_of_a_mistake() {
        let ok: Result<BTreeMap<String, Vec<Pair>>, _> =
            read(json!({"x": [{"a": 1}, {"a": 2, "b": "y"}]}));
        assert_eq!(
            ok.map(|m| m.get("x").map(|v| v.len())),
            Ok(Some(2)),
            "two pairs"
        );
        let e = read::<BTreeMap<String, Vec<Pair>>>(json!({"x": [{"a": 1}, {"a": "2"}]}));
        assert_eq!(
            e.err().as_deref(),
            Some("x[1].a: invalid type: a string, expected u32")
        );
        let e = read::<Vec<Pair>>(json!([{"b": "y"}]));
        assert_eq!(e.err().as_deref(), Some("[0]: missing field `a`"));
        let e = read::<Pair>(json!({"a": 1, "c": 2}));
        assert_eq!(
            e.err().as_deref(),
            Some("config: unknown field `c`, expected one of `a`, `b`")
        );
    }

    #[test]
    fn integers_are_whole_and_in_range_and_null_is_absent() {
        assert_eq!(read::<u16>(json!(65535)), Ok(65535));
        assert!(read::<u16>(json!(65536)).is_err());
        assert!(read::<u64>(json!(-1)).is_err());
        assert!(read::<u64>(json!(1.5)).is_err());
        assert!(read::<u64>(json!(1.0)).is_err());
        assert_eq!(read::<Option<u64>>(json!(null)), Ok(None));
        assert!(read::<u64>(json!(null)).is_err());
        assert!(read::<bool>(json!("true")).is_err());
    }

    #[test]
    fn variants_are_named_and_never_echo_more_than_the_value() {
        let at = At::ROOT;
        assert_eq!(variant(&json!("b"), &at, &["a", "b"]), Ok(1));
        let e = variant(&json!("c\n"), &at, &["a", "b"]).map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("config: unknown variant `c\\n`, expected one of `a`, `b`".to_string())
        );
    }
}
