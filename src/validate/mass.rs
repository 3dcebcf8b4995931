//! Mass assignment: fields a client may not set.
//!
//! It decides which members of an accepted JSON body the client had no right to send:
//! `read_only_fields` (nobody may set them), `writable_by_role` fields (only callers whose
//! verified role claim lists them), and, with `reject_unknown_fields`, members the body schema
//! does not declare. The caller then refuses the request (400 `mass_assignment`) or strips the
//! members. It never reads the token: the role values arrive already verified.
//!
//! Field patterns are RFC 6901 JSON pointers, with one extension: a segment that is exactly `*`
//! matches every member of an object or element of an array (`/items/*/price`). Member names
//! are compared after case folding ([`crate::text::fold_case`]): `/role` also names `ROLE` and
//! `Role`, which Go's `encoding/json`, ASP.NET Core and Jackson (case-insensitive mode) bind to
//! the same field.
//!
//! Unknown fields are found by a second, "closed" schema compiled at configure time from the
//! body schema: as if `additionalProperties: false` were written everywhere. In draft 2020-12
//! `unevaluatedProperties: false` is added at every schema that describes an instance location
//! (the root, `properties/*`, `items`, ...) unless it already says `additionalProperties` or
//! `unevaluatedProperties`; because `unevaluatedProperties` sees through `allOf`, `$ref`,
//! `anyOf`, `oneOf` and `if`/`then`/`else`, composed objects stay correct. Draft 7 has no such
//! keyword: `additionalProperties: false` is added only to schemas with `properties` or
//! `patternProperties` and no composition keyword beside them, so objects composed with `allOf`
//! or `$ref` stay open in draft 7. Boolean schemas and `not`, `if`, `contains`,
//! `propertyNames` subschemas are left as written.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::json::MemberPath;
use super::schema::{truncate, Dialect};
use crate::error::config::{index, join, ConfigError};
use crate::text::fold_case;

/// A JSON pointer to a field, where a `*` segment matches any member or element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Any,
}

impl FieldPattern {
    /// Parses a pointer at config path `at`. The root pointer `""` is refused (it is the whole
    /// body, not a field).
    pub fn parse(source: &str, at: &str) -> Result<Self, ConfigError> {
        let Some(rest) = source.strip_prefix('/') else {
            return Err(ConfigError::new(
                at,
                format!("{source:?} is not a JSON pointer to a field (it must start with '/')"),
            ));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segments.push(Segment::Any);
                continue;
            }
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        _ => {
                            return Err(ConfigError::new(
                                at,
                                format!("{source:?}: '~' must be followed by 0 or 1"),
                            ))
                        }
                    }
                } else {
                    key.push(c);
                }
            }
            segments.push(Segment::Key(fold_case(&key).into_owned()));
        }
        Ok(Self { segments })
    }

    /// True when the concrete `path` is one this pattern names.
    pub fn matches(&self, path: &[String]) -> bool {
        self.segments.len() == path.len()
            && self.segments.iter().zip(path).all(|(s, p)| match s {
                Segment::Any => true,
                Segment::Key(k) => *k == fold_case(p),
            })
    }

    /// Every field of `body` this pattern names, with whether its parent is an object.
    fn find(&self, body: &Value, out: &mut Vec<Found>) {
        let mut frontier: Vec<(MemberPath, &Value, bool)> = vec![(Vec::new(), body, true)];
        for seg in &self.segments {
            let mut next = Vec::new();
            for (path, node, _) in frontier {
                match (node, seg) {
                    (Value::Object(map), Segment::Key(k)) => {
                        // Every member whose folded name is the pattern's: `ROLE` and `Role` too.
                        for (name, child) in map {
                            if fold_case(name) == k.as_str() {
                                next.push((extend(&path, name.clone()), child, true));
                            }
                        }
                    }
                    (Value::Object(map), Segment::Any) => {
                        for (k, child) in map {
                            next.push((extend(&path, k.clone()), child, true));
                        }
                    }
                    (Value::Array(items), Segment::Key(k)) => {
                        if let Some(child) = k.parse::<usize>().ok().and_then(|i| items.get(i)) {
                            next.push((extend(&path, k.clone()), child, false));
                        }
                    }
                    (Value::Array(items), Segment::Any) => {
                        for (i, child) in items.iter().enumerate() {
                            next.push((extend(&path, i.to_string()), child, false));
                        }
                    }
                    _ => {}
                }
            }
            frontier = next;
        }
        for (path, _, in_object) in frontier {
            out.push(Found {
                path,
                in_object,
                kind: Kind::ReadOnly,
            });
        }
    }
}

fn extend(path: &[String], seg: String) -> MemberPath {
    let mut p = Vec::with_capacity(path.len().saturating_add(1));
    p.extend_from_slice(path);
    p.push(seg);
    p
}

/// Why a field may not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Listed in `read_only_fields`.
    ReadOnly,
    /// Listed in `writable_by_role` for roles the caller does not have.
    NotWritable,
    /// Not declared by the body schema (`reject_unknown_fields`).
    Unknown,
}

/// A field the client set but may not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Path of the field in the body.
    pub path: MemberPath,
    /// Whether the field is an object member (only those can be stripped).
    pub in_object: bool,
    /// Which rule it breaks.
    pub kind: Kind,
}

/// Renders a path as a JSON pointer for a client-visible detail (escaped, bounded, quoted).
pub fn pointer(path: &[String]) -> String {
    let mut p = String::new();
    for seg in path {
        p.push('/');
        p.push_str(&seg.replace('~', "~0").replace('/', "~1"));
    }
    truncate(&mut p, 200);
    Value::String(p).to_string()
}

impl Found {
    /// Client-safe detail: names the field by pointer, never its value.
    pub fn detail(&self) -> String {
        let p = pointer(&self.path);
        match self.kind {
            Kind::ReadOnly => format!("field {p} is read-only"),
            Kind::NotWritable => format!("field {p} may not be set by this caller"),
            Kind::Unknown => format!("field {p} is not declared by the schema"),
        }
    }
}

/// `writable_by_role` as written: the claim holding the caller's roles, and per role the
/// fields it may set. A field listed under any role is writable only by the roles listing it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawWritableByRole {
    /// Claim of the verified token holding the role (a string or an array of strings).
    pub claim: String,
    /// Role name -> JSON pointers that role may set.
    pub roles: BTreeMap<String, Vec<String>>,
}

/// What to do with a violating request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnMassAssignment {
    /// Refuse it: 400 `mass_assignment`.
    #[default]
    Reject,
    /// Remove the offending members and forward the rest.
    Strip,
}

/// Compiled role rules.
#[derive(Debug, Clone)]
struct RoleRules {
    claim: String,
    by_role: BTreeMap<String, Vec<FieldPattern>>,
    protected: Vec<FieldPattern>,
}

/// Compiled mass-assignment rules of one route (without the closed schema, which lives with the
/// other schemas).
#[derive(Debug, Clone, Default)]
pub struct MassRules {
    read_only: Vec<FieldPattern>,
    roles: Option<RoleRules>,
    /// Strip instead of refusing.
    pub strip: bool,
}

impl MassRules {
    /// Compiles `read_only_fields` and `writable_by_role` found under config path `at`.
    pub fn compile(
        read_only: &[String],
        writable: Option<&RawWritableByRole>,
        on_violation: OnMassAssignment,
        at: &str,
    ) -> Result<Self, ConfigError> {
        let read_only = read_only
            .iter()
            .enumerate()
            .map(|(i, s)| FieldPattern::parse(s, &index(&join(at, "read_only_fields"), i)))
            .collect::<Result<Vec<_>, _>>()?;
        let roles = match writable {
            None => None,
            Some(w) => {
                let here = join(at, "writable_by_role");
                if w.claim.is_empty() {
                    return Err(ConfigError::new(join(&here, "claim"), "must name a claim"));
                }
                if w.roles.is_empty() {
                    return Err(ConfigError::new(
                        join(&here, "roles"),
                        "must list at least one role",
                    ));
                }
                let mut by_role = BTreeMap::new();
                let mut protected = Vec::new();
                for (role, fields) in &w.roles {
                    let role_at = join(&join(&here, "roles"), role);
                    let patterns = fields
                        .iter()
                        .enumerate()
                        .map(|(i, s)| FieldPattern::parse(s, &index(&role_at, i)))
                        .collect::<Result<Vec<_>, _>>()?;
                    for p in &patterns {
                        if !protected.contains(p) {
                            protected.push(p.clone());
                        }
                    }
                    by_role.insert(role.clone(), patterns);
                }
                Some(RoleRules {
                    claim: w.claim.clone(),
                    by_role,
                    protected,
                })
            }
        };
        Ok(Self {
            read_only,
            roles,
            strip: on_violation == OnMassAssignment::Strip,
        })
    }

    /// True when there are no read-only or role rules.
    pub fn is_empty(&self) -> bool {
        self.read_only.is_empty() && self.roles.is_none()
    }

    /// The claim the integrator must pass the values of, if role rules exist.
    pub fn role_claim(&self) -> Option<&str> {
        self.roles.as_ref().map(|r| r.claim.as_str())
    }

    /// A read-only field set through the query string, which Rails (`params`), PHP
    /// (`$_REQUEST`), Laravel and Flask's `request.values` merge with the body: `role=admin`
    /// sets `/role`, `profile[isAdmin]=1` sets `/profile/isAdmin` (names compared as for the
    /// body, in any letter case).
    pub fn read_only_in_query(&self, pairs: &[(String, String)]) -> Option<Found> {
        if self.read_only.is_empty() {
            return None;
        }
        let mut doc = Value::Object(serde_json::Map::new());
        for (name, value) in pairs {
            let (head, rest) = name.split_once('[').unwrap_or((name, ""));
            let mut node = &mut doc;
            let segments = std::iter::once(head.trim_start_matches(' ')).chain(
                rest.split('[')
                    .map(|s| s.strip_suffix(']').unwrap_or(s))
                    .filter(|s| !s.is_empty()),
            );
            for seg in segments {
                let Value::Object(map) = node else { break };
                node = map
                    .entry(seg.to_string())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
            }
            if let Value::Object(map) = node {
                if map.is_empty() {
                    *node = Value::String(value.clone());
                }
            }
        }
        let mut out = Vec::new();
        for p in &self.read_only {
            p.find(&doc, &mut out);
        }
        out.into_iter().next()
    }

    /// Fields of `body` set against the read-only and role rules, for a caller with `roles`.
    pub fn violations(&self, body: &Value, roles: &[&str]) -> Vec<Found> {
        let mut out = Vec::new();
        for p in &self.read_only {
            p.find(body, &mut out);
        }
        if let Some(r) = &self.roles {
            let mut protected = Vec::new();
            for p in &r.protected {
                p.find(body, &mut protected);
            }
            let allowed: Vec<&FieldPattern> = roles
                .iter()
                .filter_map(|role| r.by_role.get(*role))
                .flatten()
                .collect();
            for mut f in protected {
                if out.iter().any(|o| o.path == f.path) {
                    continue;
                }
                if !allowed.iter().any(|a| a.matches(&f.path)) {
                    f.kind = Kind::NotWritable;
                    out.push(f);
                }
            }
        }
        out
    }
}

/// Removes the member at `path` from `value`; false when there is none.
pub fn remove_path(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(seg) {
                Some(n) => n,
                None => return false,
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Object(map) => map.remove(last).is_some(),
        _ => false,
    }
}

/// Keywords whose subschemas describe the same instance location (in-place applicators).
const IN_PLACE: [&str; 4] = ["allOf", "anyOf", "oneOf", "dependentSchemas"];
/// Keywords holding one subschema for the same instance location.
const IN_PLACE_ONE: [&str; 2] = ["then", "else"];
/// Keywords holding a map of definitions (not a location until referenced).
const DEFINITIONS: [&str; 2] = ["$defs", "definitions"];
/// Keywords whose subschemas describe child locations, one subschema each.
const CHILD_ONE: [&str; 4] = [
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
];
/// Keywords whose subschemas describe child locations, as a map.
const CHILD_MAP: [&str; 2] = ["properties", "patternProperties"];

/// The body schema with unknown members forbidden everywhere (see the module docs).
pub fn closed_schema(schema: &Value, dialect: Dialect) -> Value {
    let mut s = schema.clone();
    close(&mut s, dialect, true);
    s
}

/// Config-time walk; depth is bounded by the config parser's own nesting limit.
fn close(schema: &mut Value, dialect: Dialect, location: bool) {
    let Value::Object(map) = schema else {
        return;
    };
    let open =
        !map.contains_key("additionalProperties") && !map.contains_key("unevaluatedProperties");
    match dialect {
        Dialect::Draft202012 => {
            if location && open {
                map.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
        }
        Dialect::Draft7 => {
            // Draft 7 cannot see through composition: close only plain object schemas.
            let declares = map.contains_key("properties") || map.contains_key("patternProperties");
            let composed = ["allOf", "anyOf", "oneOf", "$ref", "if", "dependencies"]
                .iter()
                .any(|k| map.contains_key(*k));
            if location && declares && open && !composed {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
    }
    for (key, child) in map.iter_mut() {
        let k = key.as_str();
        if CHILD_ONE.contains(&k) || k == "items" || k == "prefixItems" {
            close_each(child, dialect, true);
        } else if CHILD_MAP.contains(&k) || DEFINITIONS.contains(&k) {
            // Draft 7 definitions are closed where defined ($ref siblings are ignored there);
            // 2020-12 closes them where referenced, through unevaluatedProperties.
            let location = CHILD_MAP.contains(&k) || dialect == Dialect::Draft7;
            if let Value::Object(m) = child {
                for sub in m.values_mut() {
                    close(sub, dialect, location);
                }
            }
        } else if IN_PLACE.contains(&k) {
            close_in_place(child, dialect);
        } else if IN_PLACE_ONE.contains(&k) {
            close(child, dialect, false);
        } else if k == "dependencies" {
            if let Value::Object(m) = child {
                for sub in m.values_mut() {
                    close(sub, dialect, false);
                }
            }
        }
    }
}

/// A keyword whose value is one subschema or (draft 7 `items`) an array of them.
fn close_each(child: &mut Value, dialect: Dialect, location: bool) {
    match child {
        Value::Array(list) => list.iter_mut().for_each(|s| close(s, dialect, location)),
        other => close(other, dialect, location),
    }
}

/// `allOf`-like arrays and `dependentSchemas`-like maps of in-place subschemas.
fn close_in_place(child: &mut Value, dialect: Dialect) {
    match child {
        Value::Array(list) => list.iter_mut().for_each(|s| close(s, dialect, false)),
        Value::Object(m) => m.values_mut().for_each(|s| close(s, dialect, false)),
        _ => {}
    }
}

crate::config::read::from_json_struct!(RawWritableByRole {
    claim: req,
    roles: req,
});

crate::config::read::from_json_enum!(OnMassAssignment {
    Reject = "reject",
    Strip = "strip",
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::schema::SchemaCompiler;
    use serde_json::json;

    fn path(p: &[&str]) -> MemberPath {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn rules(read_only: &[&str], writable: Option<Value>) -> MassRules {
        let ro: Vec<String> = read_only.iter().map(|s| s.to_string()).collect();
        let w: Option<RawWritableByRole> =
            writable.map(|v| crate::config::read::from_value(v).unwrap());
        MassRules::compile(&ro, w.as_ref(), OnMassAssignment::Reject, "r").unwrap()
    }

    #[test]
    fn parses_pointers_with_escapes_and_wildcards() {
        let p = FieldPattern::parse("/a~1b/~0c/*", "x").unwrap();
        assert!(p.matches(&path(&["a/b", "~c", "anything"])));
        assert!(!p.matches(&path(&["a/b", "~c"])));
        for bad in ["", "id", "/a~2"] {
            assert!(FieldPattern::parse(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_read_only_fields_including_inside_arrays() {
        let r = rules(&["/id", "/items/*/price", "/absent"], None);
        let body =
            json!({"id": 1, "name": "n", "items": [{"price": 1}, {"sku": "x"}, {"price": 2}]});
        let found = r.violations(&body, &[]);
        let paths: Vec<_> = found.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                path(&["id"]),
                path(&["items", "0", "price"]),
                path(&["items", "2", "price"])
            ]
        );
        assert!(found
            .iter()
            .all(|f| f.kind == Kind::ReadOnly && f.in_object));
        assert_eq!(found[0].detail(), r#"field "/id" is read-only"#);
    }

    #[test]
    fn array_elements_are_found_but_not_strippable() {
        let r = rules(&["/tags/0"], None);
        let found = r.violations(&json!({"tags": ["a"]}), &[]);
        assert_eq!(found.len(), 1);
        assert!(!found[0].in_object);
    }

    #[test]
    fn role_fields_are_writable_only_by_listed_roles() {
        let r = rules(
            &[],
            Some(
                json!({"claim": "role", "roles": {"admin": ["/role", "/flags/*"], "support": ["/status"]}}),
            ),
        );
        assert_eq!(r.role_claim(), Some("role"));
        let body = json!({"name": "n", "role": "admin", "status": "x", "flags": {"beta": true}});
        let kinds = |roles: &[&str]| -> Vec<MemberPath> {
            r.violations(&body, roles)
                .into_iter()
                .map(|f| f.path)
                .collect()
        };
        assert_eq!(kinds(&["admin"]), vec![path(&["status"])]);
        assert_eq!(
            kinds(&["support"]),
            vec![path(&["role"]), path(&["flags", "beta"])]
        );
        assert_eq!(kinds(&["admin", "support"]), Vec::<MemberPath>::new());
        assert_eq!(kinds(&[]).len(), 3);
        let f = &r.violations(&body, &["user"])[0];
        assert_eq!(f.kind, Kind::NotWritable);
        assert_eq!(f.detail(), r#"field "/role" may not be set by this caller"#);
    }

    #[test]
    fn read_only_wins_over_role_permission() {
        let r = rules(
            &["/id"],
            Some(json!({"claim": "role", "roles": {"admin": ["/id"]}})),
        );
        let found = r.violations(&json!({"id": 1}), &["admin"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, Kind::ReadOnly);
    }

    #[test]
    fn invalid_role_config_names_the_path() {
        let w: RawWritableByRole =
            crate::config::read::from_value(json!({"claim": "role", "roles": {"admin": ["role"]}}))
                .unwrap();
        let e = MassRules::compile(&[], Some(&w), OnMassAssignment::Reject, "routes[0].request")
            .unwrap_err();
        assert_eq!(e.path, "routes[0].request.writable_by_role.roles.admin[0]");
        let e = MassRules::compile(&["x".into()], None, OnMassAssignment::Reject, "r").unwrap_err();
        assert_eq!(e.path, "r.read_only_fields[0]");
    }

    #[test]
    fn removes_members_by_path() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [{"x": 1}]});
        assert!(remove_path(&mut v, &path(&["a", "b"])));
        assert!(remove_path(&mut v, &path(&["l", "0", "x"])));
        assert!(!remove_path(&mut v, &path(&["nope"])));
        assert!(!remove_path(&mut v, &path(&["l", "0"])));
        assert_eq!(v, json!({"a": {"c": 2}, "l": [{}]}));
    }

    fn closed(schema: Value) -> crate::validate::schema::CompiledSchema {
        let c = SchemaCompiler::new();
        let original = c.compile(&schema, "s").unwrap();
        c.compile(&closed_schema(&schema, original.dialect()), "s")
            .unwrap()
    }

    #[test]
    fn closed_2020_schema_rejects_unknown_members_at_every_level() {
        let s = closed(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}},
                "items": {"type": "array", "items": {"properties": {"sku": {}}}},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }));
        assert!(s.is_valid(&json!({"name": "n", "address": {"city": "c"}, "items": [{"sku": 1}], "meta": {"k": "v"}})));
        assert!(!s.is_valid(&json!({"role": "admin"})));
        assert!(!s.is_valid(&json!({"address": {"city": "c", "zip": 1}})));
        assert!(!s.is_valid(&json!({"items": [{"sku": 1, "price": 0}]})));
        let unknown = s
            .unknown_members(&json!({"role": 1, "address": {"zip": 1}, "items": [{"price": 0}]}))
            .unwrap();
        let mut unknown = unknown;
        unknown.sort();
        assert_eq!(
            unknown,
            vec![
                path(&["address", "zip"]),
                path(&["items", "0", "price"]),
                path(&["role"])
            ]
        );
    }

    #[test]
    fn closed_2020_schema_sees_through_composition() {
        let s = closed(json!({
            "$defs": {"base": {"properties": {"id": {"type": "integer"}}}},
            "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"name": {"type": "string"}}}],
            "anyOf": [{"properties": {"kind": {"const": "a"}, "a": {}}}, {"properties": {"kind": {"const": "b"}, "b": {}}}]
        }));
        assert!(s.is_valid(&json!({"id": 1, "name": "n", "kind": "a", "a": 1})));
        assert!(s.is_valid(&json!({"id": 1, "kind": "b", "b": 1})));
        assert!(!s.is_valid(&json!({"id": 1, "kind": "a", "a": 1, "extra": 1})));
        // `b` is declared only in the branch that did not match.
        assert!(!s.is_valid(&json!({"kind": "a", "b": 1})));
    }

    #[test]
    fn closed_schema_keeps_explicit_openness() {
        let s = closed(json!({"properties": {"a": {}}, "additionalProperties": true}));
        assert!(s.is_valid(&json!({"a": 1, "b": 2})));
        let s = closed(json!({"properties": {"free": true}}));
        assert!(s.is_valid(&json!({"free": {"anything": 1}})));
    }

    #[test]
    fn closed_draft7_schema_closes_plain_objects_only() {
        let s = closed(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {"a": {"properties": {"b": {}}}},
            "definitions": {"d": {"properties": {"x": {}}}}
        }));
        assert!(s.is_valid(&json!({"a": {"b": 1}})));
        assert!(!s.is_valid(&json!({"a": {"b": 1, "c": 2}})));
        assert!(!s.is_valid(&json!({"z": 1})));
        let composed = closed(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]
        }));
        // Documented limitation: allOf-composed objects stay open in draft 7.
        assert!(composed.is_valid(&json!({"a": 1, "b": 2, "c": 3})));
    }

    #[test]
    fn protected_names_match_in_any_letter_case_at_every_level() {
        let r = rules(
            &["/role", "/profile/isAdmin"],
            Some(json!({"claim": "role", "roles": {"admin": ["/tier"]}})),
        );
        for body in [
            json!({"ROLE": "admin"}),
            json!({"Role": "admin"}),
            json!({"r\u{F3}le": 1, "rOlE": "admin"}),
            json!({"PROFILE": {"ISADMIN": true}}),
            json!({"profile": {"isadmin": true}}),
        ] {
            let found = r.violations(&body, &[]);
            assert_eq!(found.len(), 1, "{body}");
            assert_eq!(found[0].kind, Kind::ReadOnly);
        }
        let found = r.violations(&json!({"TIER": "gold"}), &["user"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, path(&["TIER"]));
        assert!(r
            .violations(&json!({"Tier": "gold"}), &["admin"])
            .is_empty());
        // The reported path is the member as sent, so strip mode removes that member.
        let found = r.violations(&json!({"Role": 1}), &[]);
        assert_eq!(found[0].path, path(&["Role"]));
        let k = rules(&["/\u{212A}ey"], None);
        assert_eq!(k.violations(&json!({"KEY": 1}), &[]).len(), 1);
    }
}
