//! Per-route request validation: `routes[].request`.
//!
//! It decides whether a request's shape is acceptable for its route: body size and media type,
//! header rules, path parameters, query parameters (pollution, coerced types, `query_schema`),
//! and a JSON body (strict parsing within threat limits, `body_schema`, mass assignment). A
//! refusal is a [`Denial`] with a client-safe detail: a JSON pointer, a keyword, a parameter or
//! header name, never a value.
//!
//! It is pure: it never talks to the host, never buffers the body itself, and never parses
//! config or compiles a schema on the request path. The adapter calls, in order:
//! [`RequestRules::check_head`] in the headers phase (which says what the body needs),
//! [`RequestRules::check_body_size`] as body chunks arrive, and [`RequestRules::check_body`]
//! once the whole body is there (end of stream, or the trailers callback).

pub mod config;
pub mod content;
pub mod fields;
pub mod headers;
pub mod json;
pub mod mass;
pub mod params;
pub mod pattern;
pub mod query;
pub mod schema;
mod unicode_tables;

use crate::error::{Denial, Reason};
use content::ContentRules;
use headers::HeaderRule;
use json::{JsonError, JsonLimits, Limit, MemberPath};
use mass::{Found, Kind, MassRules};
use params::ParamRules;
use query::QueryRules;
use schema::CompiledSchema;

/// The compiled `request` section of one route.
#[derive(Debug)]
pub struct RequestRules {
    content: ContentRules,
    headers: Vec<HeaderRule>,
    params: ParamRules,
    query: Option<QueryRules>,
    body: Option<BodyRules>,
}

/// What the route checks in a JSON body.
#[derive(Debug)]
struct BodyRules {
    limits: JsonLimits,
    schema: Option<CompiledSchema>,
    /// The body schema with unknown members forbidden (`reject_unknown_fields`).
    closed: Option<CompiledSchema>,
    mass: MassRules,
}

/// What the adapter sees in the headers phase.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a, S: AsRef<str>> {
    /// Request headers as the host lists them (names in any case, repeated names repeated).
    pub headers: &'a [(S, S)],
    /// The raw query string after `?`, if any (not decoded).
    pub query: Option<&'a str>,
    /// Path template parameters captured by the route (decoded).
    pub path_params: &'a [(S, S)],
    /// True when the headers end the request (no body follows).
    pub end_of_stream: bool,
}

/// What the adapter must do with the body after [`RequestRules::check_head`] passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyNeed {
    /// Nothing: let the body stream through.
    Stream,
    /// Let chunks through but call [`RequestRules::check_body_size`] with the running total
    /// (no `content-length` to decide from up front).
    Count {
        /// The size above which the body is refused.
        limit: u64,
    },
    /// Pause and buffer the body (refusing it through [`RequestRules::check_body_size`] as soon
    /// as the total exceeds `limit`), then call [`RequestRules::check_body`] with all of it.
    Buffer {
        /// Most bytes worth buffering; above this the body is refused.
        limit: u64,
    },
}

/// The result of a successful body check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyOutcome {
    /// Forward the body as received.
    Unchanged,
    /// Replace the body with these bytes (mass-assignment fields stripped).
    Rewritten(Vec<u8>),
}

/// The denial for a body the strict reader refused.
pub fn json_denial(e: JsonError) -> Denial {
    let reason = match e {
        JsonError::Limit(_) => Reason::JsonLimits,
        JsonError::Malformed { .. } | JsonError::DuplicateKey { .. } => Reason::JsonMalformed,
    };
    Denial::new(reason).with_detail(e.describe())
}

fn mass_denial(found: &Found) -> Denial {
    Denial::new(Reason::MassAssignment).with_detail(found.detail())
}

fn header_values<'h, S: AsRef<str>>(headers: &'h [(S, S)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
        .collect()
}

impl RequestRules {
    /// Every request header these rules read as text (content type and length, header rules).
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        ["content-type", "content-length"]
            .into_iter()
            .chain(self.headers.iter().map(HeaderRule::name))
    }

    /// The token claim whose values the adapter passes as `roles` to
    /// [`RequestRules::check_body`], when the route has `writable_by_role`.
    /// True when [`RequestRules::check_body`] may rewrite the body (mass-assignment strip mode):
    /// the request's `content-length` must then be dropped before the headers go upstream.
    pub fn may_rewrite_body(&self) -> bool {
        self.body.as_ref().is_some_and(|b| b.mass.strip)
    }

    /// The JSON threat limits of the route's body checks, when it checks a JSON body.
    pub fn json_limits(&self) -> Option<JsonLimits> {
        self.body.as_ref().map(|b| b.limits)
    }

    /// The claim whose values are the caller's roles for role-writable fields.
    pub fn role_claim(&self) -> Option<&str> {
        self.body.as_ref().and_then(|b| b.mass.role_claim())
    }

    /// The largest body the route accepts, if any limit applies.
    fn body_limit(&self) -> Option<u64> {
        let json = self.body.as_ref().map(|b| b.limits.max_total_bytes);
        match (self.content.max_body_bytes, json) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Headers-phase checks: body size from `content-length`, media type, header rules, path
    /// parameters, query. Says what the body needs next.
    pub fn check_head<S: AsRef<str>>(&self, head: &RequestHead<'_, S>) -> Result<BodyNeed, Denial> {
        let lengths = header_values(head.headers, "content-length");
        let length = match lengths.as_slice() {
            [one] => content::content_length(one),
            _ => None,
        };
        let has_body = !head.end_of_stream && length != Some(0);
        if let Some(len) = length {
            self.content.check_size(len)?;
            self.check_json_size(len)?;
        }
        if has_body {
            self.content
                .check_content_type(&header_values(head.headers, "content-type"))?;
        }
        headers::check(&self.headers, head.headers)?;
        if let (Some(body), Some(q)) = (&self.body, head.query) {
            // Read as the service would, escapes it cannot decode kept as written.
            let pairs: Vec<(String, String)> = crate::http::query::raw_pairs(q)
                .map(|(k, v)| {
                    let d =
                        |s: &str| crate::http::query::form_decode(s).unwrap_or_else(|| s.into());
                    (d(k), d(v))
                })
                .collect();
            if let Some(found) = body.mass.read_only_in_query(&pairs) {
                return Err(
                    mass_denial(&found).with_log_detail("read-only field set by a query parameter")
                );
            }
        }
        self.params.check(head.path_params)?;
        if let Some(q) = &self.query {
            q.check(head.query)?;
        }
        if !has_body {
            // No body will come: a route that requires one refuses now.
            return self.check_body(&[], &[]).map(|_| BodyNeed::Stream);
        }
        Ok(match (&self.body, self.body_limit()) {
            (Some(_), Some(limit)) => BodyNeed::Buffer { limit },
            (None, Some(limit)) if length.is_none() => BodyNeed::Count { limit },
            _ => BodyNeed::Stream,
        })
    }

    fn check_json_size(&self, size: u64) -> Result<(), Denial> {
        match &self.body {
            Some(b) if size > b.limits.max_total_bytes => {
                Err(json_denial(JsonError::Limit(Limit::TotalBytes)))
            }
            _ => Ok(()),
        }
    }

    /// Checks the running body size while streaming or buffering: 413 above
    /// `max_body_bytes`, 400 `json_limits` above the JSON `max_total_bytes`.
    pub fn check_body_size(&self, received: u64) -> Result<(), Denial> {
        self.content.check_size(received)?;
        self.check_json_size(received)
    }

    /// Checks the whole body. `roles` are the values of [`RequestRules::role_claim`] in the
    /// caller's verified token (empty without a token).
    pub fn check_body(&self, body: &[u8], roles: &[&str]) -> Result<BodyOutcome, Denial> {
        let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
        self.content.check_size(size)?;
        let Some(rules) = &self.body else {
            return Ok(BodyOutcome::Unchanged);
        };
        if body
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            // An absent body sets no field; it fails only a route that requires a document.
            return match rules.schema {
                Some(_) => Err(Denial::new(Reason::JsonMalformed)
                    .with_detail("request body is empty; this route expects JSON")),
                None => Ok(BodyOutcome::Unchanged),
            };
        }
        let mut value = json::parse(body, &rules.limits).map_err(json_denial)?;
        let mut strip: Vec<MemberPath> = Vec::new();
        for found in rules.mass.violations(&value, roles) {
            if rules.mass.strip && found.in_object {
                mass::remove_path(&mut value, &found.path);
                strip.push(found.path);
            } else {
                return Err(mass_denial(&found));
            }
        }
        match (&rules.closed, &rules.schema) {
            (Some(closed), schema) if !closed.is_valid(&value) => {
                // A plain schema violation is reported as such; only then is it about fields.
                if let Some(s) = schema {
                    s.check(&value).map_err(schema_denial)?;
                }
                let unknown = closed.unknown_members(&value).unwrap_or_default();
                let Some(first) = unknown.first() else {
                    return Err(Denial::new(Reason::MassAssignment)
                        .with_detail("body has fields the schema does not declare"));
                };
                if !rules.mass.strip {
                    return Err(mass_denial(&Found {
                        path: first.clone(),
                        in_object: true,
                        kind: Kind::Unknown,
                    }));
                }
                for path in unknown {
                    mass::remove_path(&mut value, &path);
                    strip.push(path);
                }
                if let Err(v) = closed.check(&value) {
                    return Err(Denial::new(Reason::MassAssignment)
                        .with_detail("body has fields the schema does not declare")
                        .with_log_detail(v.detail("closed body schema")));
                }
            }
            (Some(_), _) => {}
            (None, Some(schema)) => schema.check(&value).map_err(schema_denial)?,
            (None, None) => {}
        }
        if strip.is_empty() {
            return Ok(BodyOutcome::Unchanged);
        }
        json::remove_members(body, &strip)
            .map(BodyOutcome::Rewritten)
            .map_err(json_denial)
    }
}

fn schema_denial(v: schema::Violation) -> Denial {
    Denial::new(Reason::SchemaViolation).with_detail(v.detail("body"))
}

#[cfg(test)]
mod tests {
    use super::config::RawRequest;
    use super::*;
    use serde_json::{json, Value};

    fn rules(v: Value) -> RequestRules {
        let raw: RawRequest = crate::config::read::from_value(v).unwrap();
        RequestRules::compile(&raw, "routes[0].request", Some(&["id"])).unwrap()
    }

    type H = Vec<(String, String)>;

    fn h(pairs: &[(&str, &str)]) -> H {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn head<'a>(
        headers: &'a H,
        query: Option<&'a str>,
        params: &'a H,
        eos: bool,
    ) -> RequestHead<'a, String> {
        RequestHead {
            headers,
            query,
            path_params: params,
            end_of_stream: eos,
        }
    }

    fn user_rules() -> RequestRules {
        rules(json!({
            "max_body_bytes": 2048,
            "body_schema": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 50},
                    "email": {"type": "string"},
                    "role": {"type": "string"},
                    "address": {"type": "object", "properties": {"city": {"type": "string"}}}
                }
            },
            "reject_unknown_fields": true,
            "read_only_fields": ["/id"],
            "writable_by_role": {"claim": "role", "roles": {"admin": ["/role"]}},
            "query_schema": {"properties": {"dry_run": {"type": "boolean"}}},
            "params": {"id": {"type": "integer"}},
            "headers": [{"name": "x-api-version", "required": true, "pattern": "^v1$"}]
        }))
    }

    fn json_head() -> H {
        h(&[
            ("content-type", "application/json"),
            ("x-api-version", "v1"),
        ])
    }

    #[test]
    fn head_of_a_good_request_asks_to_buffer_the_body() {
        let r = user_rules();
        let hs = json_head();
        let ps = h(&[("id", "7")]);
        assert_eq!(
            r.check_head(&head(&hs, Some("dry_run=true"), &ps, false)),
            Ok(BodyNeed::Buffer { limit: 2048 })
        );
    }

    #[test]
    fn head_checks_map_to_their_reasons() {
        let r = user_rules();
        let ps = h(&[("id", "7")]);
        let reason = |hs: H, q: Option<&str>, ps: &H| {
            r.check_head(&head(&hs, q, ps, false)).unwrap_err().reason
        };
        assert_eq!(
            reason(
                h(&[("content-type", "text/plain"), ("x-api-version", "v1")]),
                None,
                &ps
            ),
            Reason::UnsupportedMediaType
        );
        let mut big = json_head();
        big.push(("content-length".into(), "4096".into()));
        assert_eq!(reason(big, None, &ps), Reason::BodyTooLarge);
        assert_eq!(
            reason(h(&[("content-type", "application/json")]), None, &ps),
            Reason::HeaderInvalid
        );
        assert_eq!(
            reason(json_head(), None, &h(&[("id", "x")])),
            Reason::SchemaViolation
        );
        assert_eq!(
            reason(json_head(), Some("dry_run=1"), &ps),
            Reason::SchemaViolation
        );
        assert_eq!(
            reason(json_head(), Some("dry_run=true&dry_run=false"), &ps),
            Reason::ParamDuplicate
        );
    }

    #[test]
    fn json_content_type_is_required_by_default_when_the_body_is_checked() {
        let r = rules(json!({"body_schema": {"type": "object"}}));
        let ps = H::new();
        let ok = h(&[("content-type", "application/merge-patch+json")]);
        assert!(r.check_head(&head(&ok, None, &ps, false)).is_ok());
        let form = h(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            r.check_head(&head(&form, None, &ps, false))
                .unwrap_err()
                .reason,
            Reason::UnsupportedMediaType
        );
    }

    #[test]
    fn request_without_body_skips_media_type_but_fails_a_required_body() {
        let r = user_rules();
        let hs = h(&[("x-api-version", "v1")]);
        let d = r.check_head(&head(&hs, None, &H::new(), true)).unwrap_err();
        assert_eq!(d.reason, Reason::JsonMalformed);
        let open = rules(json!({"read_only_fields": ["/id"]}));
        assert_eq!(
            open.check_head(&head(&hs, None, &H::new(), true)),
            Ok(BodyNeed::Stream)
        );
    }

    #[test]
    fn size_limit_without_body_rules_counts_or_streams() {
        let r = rules(json!({"max_body_bytes": 10}));
        let ps = H::new();
        let hs = h(&[("content-type", "text/plain")]);
        assert_eq!(
            r.check_head(&head(&hs, None, &ps, false)),
            Ok(BodyNeed::Count { limit: 10 })
        );
        assert!(r.check_body_size(10).is_ok());
        assert_eq!(
            r.check_body_size(11).unwrap_err().reason,
            Reason::BodyTooLarge
        );
        let with_len = h(&[("content-length", "5")]);
        assert_eq!(
            r.check_head(&head(&with_len, None, &ps, false)),
            Ok(BodyNeed::Stream)
        );
    }

    #[test]
    fn streamed_size_beyond_json_limit_is_json_limits() {
        let r = rules(json!({"body_schema": {}, "json_limits": {"max_total_bytes": 100}}));
        assert!(r.check_body_size(100).is_ok());
        assert_eq!(
            r.check_body_size(101).unwrap_err().reason,
            Reason::JsonLimits
        );
        let capped = rules(json!({"body_schema": {}, "max_body_bytes": 50}));
        assert_eq!(
            capped.check_body_size(51).unwrap_err().reason,
            Reason::BodyTooLarge
        );
    }

    #[test]
    fn valid_body_is_forwarded_unchanged() {
        let r = user_rules();
        let body = br#"{"name":"Ann","address":{"city":"Oslo"}}"#;
        assert_eq!(r.check_body(body, &[]), Ok(BodyOutcome::Unchanged));
        assert_eq!(
            r.check_body(br#"{"name":"Ann","role":"admin"}"#, &["admin"]),
            Ok(BodyOutcome::Unchanged)
        );
    }

    #[test]
    fn body_failures_map_to_their_reasons() {
        let r = user_rules();
        let reason = |b: &[u8], roles: &[&str]| r.check_body(b, roles).unwrap_err().reason;
        assert_eq!(reason(b"{\"name\":", &[]), Reason::JsonMalformed);
        assert_eq!(
            reason(br#"{"name":"a","name":"b"}"#, &[]),
            Reason::JsonMalformed
        );
        assert_eq!(reason(b"{\"name\":\"\xff\"}", &[]), Reason::JsonMalformed);
        let deep = format!(
            "{{\"name\":\"a\",\"address\":{}1{}}}",
            "[".repeat(40),
            "]".repeat(40)
        );
        assert_eq!(reason(deep.as_bytes(), &[]), Reason::JsonLimits);
        assert_eq!(reason(br#"{"name":5}"#, &[]), Reason::SchemaViolation);
        assert_eq!(
            reason(br#"{"name":"a","id":1}"#, &[]),
            Reason::MassAssignment
        );
        assert_eq!(
            reason(br#"{"name":"a","role":"admin"}"#, &["user"]),
            Reason::MassAssignment
        );
        assert_eq!(
            reason(br#"{"name":"a","extra":1}"#, &[]),
            Reason::MassAssignment
        );
        assert_eq!(reason(&vec![b' '; 3000], &[]), Reason::BodyTooLarge);
    }

    #[test]
    fn schema_violation_detail_names_pointer_and_keyword_only() {
        let r = user_rules();
        let d = r
            .check_body(br#"{"name":"a","address":{"city":12345}}"#, &[])
            .unwrap_err();
        assert_eq!(d.reason, Reason::SchemaViolation);
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"body at "/address/city" failed "type""#)
        );
        let d = r
            .check_body(br#"{"email":"secret@example.com"}"#, &[])
            .unwrap_err();
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"body at "" failed "required": missing "name""#)
        );
    }

    #[test]
    fn unknown_field_detail_names_the_field() {
        let r = user_rules();
        let d = r
            .check_body(br#"{"name":"a","address":{"city":"c","zip":"0000"}}"#, &[])
            .unwrap_err();
        assert_eq!(d.reason, Reason::MassAssignment);
        assert_eq!(
            d.detail.as_deref(),
            Some(r#"field "/address/zip" is not declared by the schema"#)
        );
    }

    #[test]
    fn strip_mode_removes_offending_members_and_keeps_the_rest_byte_for_byte() {
        let r = rules(json!({
            "body_schema": {"type": "object", "properties": {"name": {"type": "string"}, "role": {}, "tags": {"type": "array", "items": {"properties": {"t": {}}}}}},
            "reject_unknown_fields": true,
            "read_only_fields": ["/id"],
            "writable_by_role": {"claim": "role", "roles": {"admin": ["/role"]}},
            "on_mass_assignment": "strip"
        }));
        let body = br#"{ "id": 9, "name" : "Ann", "role":"admin", "tags":[{"t":1,"x":2}], "debug": true }"#;
        let out = r.check_body(body, &["user"]).unwrap();
        assert_eq!(
            out,
            BodyOutcome::Rewritten(br#"{  "name" : "Ann", "tags":[{"t":1}] }"#.to_vec())
        );
        assert_eq!(
            r.check_body(body, &["admin"]).unwrap(),
            BodyOutcome::Rewritten(
                br#"{  "name" : "Ann", "role":"admin", "tags":[{"t":1}] }"#.to_vec()
            )
        );
        assert_eq!(
            r.check_body(br#"{"name":"A"}"#, &[]),
            Ok(BodyOutcome::Unchanged)
        );
        // Stripping never hides a real schema violation.
        assert_eq!(
            r.check_body(br#"{"id":1,"name":5}"#, &[])
                .unwrap_err()
                .reason,
            Reason::SchemaViolation
        );
    }

    #[test]
    fn strip_mode_refuses_what_it_cannot_strip() {
        let r = rules(json!({"read_only_fields": ["/list/0"], "on_mass_assignment": "strip"}));
        assert_eq!(
            r.check_body(br#"{"list":[1]}"#, &[]).unwrap_err().reason,
            Reason::MassAssignment
        );
    }

    #[test]
    fn deepest_allowed_body_validates_within_a_wasm_sized_stack() {
        // wasm32 gives the VM a 1 MiB stack; schema validation recurses per nesting level.
        let worker = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                let r = rules(json!({
                    "body_schema": {"type": ["array", "integer"], "items": {"$ref": "#"}},
                    "reject_unknown_fields": true,
                    "json_limits": {"max_depth": 128}
                }));
                let ok = format!("{}1{}", "[".repeat(128), "]".repeat(128));
                let deep = format!("{}1{}", "[".repeat(129), "]".repeat(129));
                let objects = rules(json!({
                    "body_schema": {"type": "object", "properties": {"a": {"$ref": "#"}}},
                    "reject_unknown_fields": true,
                    "json_limits": {"max_depth": 128}
                }));
                let nested = format!("{}{{}}{}", "{\"a\":".repeat(127), "}".repeat(127));
                let ok_objects = objects.check_body(nested.as_bytes(), &[]);
                (
                    r.check_body(ok.as_bytes(), &[]),
                    r.check_body(deep.as_bytes(), &[]),
                    ok_objects,
                )
            })
            .unwrap();
        let (ok, deep, ok_objects) = worker.join().unwrap();
        assert_eq!(ok, Ok(BodyOutcome::Unchanged));
        assert_eq!(ok_objects, Ok(BodyOutcome::Unchanged));
        assert_eq!(deep.unwrap_err().reason, Reason::JsonLimits);
    }

    #[test]
    fn role_claim_is_exposed_for_the_integrator() {
        assert_eq!(user_rules().role_claim(), Some("role"));
        assert_eq!(rules(json!({})).role_claim(), None);
    }

    #[test]
    fn empty_request_section_checks_nothing() {
        let r = rules(json!({}));
        let hs = h(&[("content-type", "anything/at-all")]);
        assert_eq!(
            r.check_head(&head(&hs, Some("a=1&a=2"), &H::new(), false)),
            Ok(BodyNeed::Stream)
        );
        assert_eq!(r.check_body(b"not json", &[]), Ok(BodyOutcome::Unchanged));
    }
}
