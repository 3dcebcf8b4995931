//! A body's top-level fields as the owner and lockout checks read them: through the strict JSON
//! reader, or as an HTML form. Read once per request.

use super::json::JsonLimits;
use crate::error::{Denial, Reason};
use crate::http::query;

/// A body's top-level fields as owner and lockout checks read them: `Ok(None)` when the body has
/// no fields (empty, not an object), `Err` when it is not acceptable.
pub type BodyFields = Result<Option<serde_json::Value>, Denial>;

/// Reads a body's fields through the strict JSON reader (duplicate keys, keys equal but for
/// letter case, invalid UTF-8 and the route's JSON limits refused, as for body validation), or
/// as an HTML form when the request says `application/x-www-form-urlencoded` (a repeated field
/// becomes an array of its values; a pair that does not decode is read as written). An empty
/// body has no fields. `limits` are the route's JSON limits.
pub fn body_fields(body: &[u8], content_type: Option<&str>, limits: &JsonLimits) -> BodyFields {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let form = content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if form {
        let text = std::str::from_utf8(body).map_err(|_| {
            Denial::new(Reason::SchemaViolation).with_detail("form body is not UTF-8")
        })?;
        let mut map = serde_json::Map::new();
        // Names that frameworks bind together (`FROM` and `from`, `user.id` and `user_id`) are
        // one field: a second spelling is a repeat (an array), never a second field.
        let mut spellings: std::collections::HashMap<String, String> = Default::default();
        for (k, v) in query::raw_pairs(text) {
            let k = query::form_decode(k).unwrap_or_else(|| k.to_string());
            let k = spellings.entry(query::fold_name(&k)).or_insert(k).clone();
            let v =
                serde_json::Value::String(query::form_decode(v).unwrap_or_else(|| v.to_string()));
            match map.get_mut(&k) {
                Some(serde_json::Value::Array(items)) => items.push(v),
                Some(first) => {
                    let first = first.take();
                    map.insert(k, serde_json::Value::Array(vec![first, v]));
                }
                None => {
                    map.insert(k, v);
                }
            }
        }
        return Ok(Some(serde_json::Value::Object(map)));
    }
    match super::json::parse(body, limits) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
        Ok(_) => Ok(None),
        Err(e) => Err(super::json_denial(e)),
    }
}

/// The object among a request's body fields, if they were read and are one.
pub fn body_object(
    fields: Option<&BodyFields>,
) -> Option<&serde_json::Map<String, serde_json::Value>> {
    match fields {
        Some(Ok(Some(v))) => v.as_object(),
        _ => None,
    }
}
