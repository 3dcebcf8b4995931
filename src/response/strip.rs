//! `strip_fields`: which fields of a JSON response this caller may not see, and their removal.
//!
//! A field is stripped for every caller, or (with `visible_to`) for every caller whose verified
//! token lacks the listed scopes or claim values. Removal edits the byte ranges the project's
//! strict JSON walk finds ([`crate::validate::json::remove_matching`]): every other byte of the
//! upstream's document is kept as sent. It never re-serialises a body.

use super::pointer::FieldPointer;
use crate::validate::json::{remove_matching, JsonError, Removal};
use serde_json::{Map, Value};

/// Who may see a field: a token with all of `scopes` and, for each claim, one of its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Visibility {
    /// Scopes that must all be granted (`scope` or `scp`, as for `routes[].jwt.scopes`).
    pub scopes: Vec<String>,
    /// Claim name and accepted values (an array claim matches when any element is accepted).
    pub claims: Vec<(String, Vec<Value>)>,
}

impl Visibility {
    /// Whether the caller with these verified claims may see the field.
    pub fn admits(&self, claims: Option<&Map<String, Value>>) -> bool {
        let Some(claims) = claims else {
            return false;
        };
        self.scopes.iter().all(|s| has_scope(claims, s))
            && self
                .claims
                .iter()
                .all(|(name, allowed)| match claims.get(name) {
                    Some(Value::Array(items)) => items.iter().any(|v| allowed.contains(v)),
                    Some(v) => allowed.contains(v),
                    None => false,
                })
    }
}

fn has_scope(claims: &Map<String, Value>, scope: &str) -> bool {
    let in_value = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.split(' ').any(|x| x == scope),
        Some(Value::Array(items)) => items.iter().any(|x| x.as_str() == Some(scope)),
        _ => false,
    };
    in_value(claims.get("scope")) || in_value(claims.get("scp"))
}

/// One configured field.
#[derive(Debug, Clone, PartialEq)]
pub struct StripField {
    /// Where the field is.
    pub pointer: FieldPointer,
    /// Callers who keep it; `None`: stripped for everyone.
    pub visible_to: Option<Visibility>,
}

/// The fields to strip for a caller (indices into `fields`).
pub fn fields_for(fields: &[StripField], claims: Option<&Map<String, Value>>) -> Vec<usize> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.visible_to.as_ref().is_some_and(|v| v.admits(claims)))
        .map(|(i, _)| i)
        .collect()
}

/// Removes the selected fields from a JSON document. A document that is not well-formed JSON
/// is an error (the caller refuses it rather than pass it unchecked).
pub fn strip(body: &[u8], fields: &[StripField], selected: &[usize]) -> Result<Removal, JsonError> {
    let pointers: Vec<&FieldPointer> = selected
        .iter()
        .filter_map(|i| fields.get(*i))
        .map(|f| &f.pointer)
        .collect();
    remove_matching(body, &pointers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(p: &str) -> StripField {
        StripField {
            pointer: FieldPointer::parse(p).unwrap(),
            visible_to: None,
        }
    }

    fn run(body: &str, fields: &[StripField]) -> (String, usize) {
        let all: Vec<usize> = (0..fields.len()).collect();
        let r = strip(body.as_bytes(), fields, &all).unwrap();
        (String::from_utf8(r.body).unwrap(), r.removed)
    }

    #[test]
    fn strips_top_level_nested_and_wildcard_fields_keeping_other_bytes() {
        let body = r#"{"id": 7, "password":"p", "profile": {"ssn": "1", "name": "n"},
  "items": [ {"sku": "a", "card": "4111"}, {"card": "5500", "sku": "b"} ] }"#;
        let (out, n) = run(
            body,
            &[
                field("/password"),
                field("/profile/ssn"),
                field("/items/*/card"),
            ],
        );
        assert_eq!(n, 4);
        assert_eq!(
            out,
            r#"{"id": 7, "profile": { "name": "n"},
  "items": [ {"sku": "a"}, { "sku": "b"} ] }"#
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["items"][1], json!({"sku": "b"}));
    }

    #[test]
    fn wildcard_member_and_top_level_array() {
        let (out, _) = run(
            r#"[{"u":{"a":{"secret":1,"k":2},"b":{"secret":3}}}]"#,
            &[field("/*/u/*/secret")],
        );
        assert_eq!(out, r#"[{"u":{"a":{"k":2},"b":{}}}]"#);
    }

    #[test]
    fn escaped_and_duplicate_keys_are_stripped_too() {
        let (out, n) = run(
            r#"{"pass\u0077ord":"a","password":"b","x":1}"#,
            &[field("/password")],
        );
        assert_eq!((out.as_str(), n), (r#"{"x":1}"#, 2));
    }

    #[test]
    fn malformed_document_is_an_error() {
        let all = [0usize];
        assert!(strip(b"{\"password\":", &[field("/password")], &all).is_err());
        assert!(strip(b"<html>", &[field("/password")], &all).is_err());
    }

    #[test]
    fn anything_after_the_document_is_an_error_not_passed() {
        let all = [0usize];
        let p = [field("/password")];
        // JSON Lines, a scalar before an object (a Range slice), markup after the document.
        for body in [
            &b"{\"id\":\"bob\"}\n{\"id\":\"alice\",\"password\":\"x\"}"[..],
            b"1 {\"password\":\"x\"}",
            b"23,\"password\":\"x\",\"a\":1}",
            b"{\"a\":1}<script>x</script>",
        ] {
            assert!(
                strip(body, &p, &all).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Members are matched in any letter case.
        let r = strip(br#"{"Password":1,"PASSWORD":2,"id":3}"#, &p, &all).unwrap();
        assert_eq!(r.body, br#"{"id":3}"#.to_vec());
        // Trailing white space is part of one document.
        assert!(strip(b"{\"password\":1} \r\n", &p, &all).is_ok());
        // Nesting is bounded like the strict reader's.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(strip(deep.as_bytes(), &p, &all).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(strip(ok.as_bytes(), &p, &all).is_ok());
    }

    #[test]
    fn fields_are_visible_to_tokens_with_the_scope_or_claim() {
        let fields = vec![
            field("/password"),
            StripField {
                pointer: FieldPointer::parse("/ssn").unwrap(),
                visible_to: Some(Visibility {
                    scopes: vec!["pii:read".into()],
                    claims: vec![],
                }),
            },
            StripField {
                pointer: FieldPointer::parse("/salary").unwrap(),
                visible_to: Some(Visibility {
                    scopes: vec![],
                    claims: vec![("roles".into(), vec![json!("hr")])],
                }),
            },
        ];
        let claims = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(fields_for(&fields, None), vec![0, 1, 2]);
        let pii = claims(json!({"scope": "users:read pii:read"}));
        assert_eq!(fields_for(&fields, Some(&pii)), vec![0, 2]);
        let hr = claims(json!({"scp": ["users:read"], "roles": ["staff", "hr"]}));
        assert_eq!(fields_for(&fields, Some(&hr)), vec![0, 1]);
    }
}
