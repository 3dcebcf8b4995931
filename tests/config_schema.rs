//! The checked-in JSON Schema of the plugin config is the one the raw config types derive, and it
//! judges configs the way the config parser does on the points a schema can express.

#![cfg(feature = "schema")]
#![allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use meshguard::config::schema::{config_schema, config_schema_text, SCHEMA_PATH};
use meshguard::validate::schema::{CompiledSchema, Dialect, SchemaCompiler};
use serde_json::{json, Value};
use std::path::Path;

fn checked_in() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_PATH);
    std::fs::read_to_string(&path).unwrap_or_default()
}

#[test]
fn checked_in_schema_is_in_sync_with_the_config_types() {
    let generated = config_schema_text();
    assert!(
        checked_in() == generated,
        "{SCHEMA_PATH} is out of date with the raw config types: run `make schema` and commit \
         the file (a config field was added, removed or re-documented)"
    );
}

/// The config schema compiled by meshguard's own JSON Schema engine (draft 7 unless it declares).
fn validator() -> CompiledSchema {
    let schema = config_schema();
    SchemaCompiler::new()
        .with_default_dialect(Dialect::Draft7)
        .compile(&schema, "schema")
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn a_full_config() -> Value {
    json!({
        "mode": "enforce",
        "unmatched": "deny",
        "jwt_providers": {
            "main": {
                "issuer": "https://issuer.example",
                "audiences": ["api.example"],
                "algorithms": ["RS256", "ES256", "EdDSA"],
                "remote_jwks": { "cluster": "idp", "path": "/.well-known/jwks.json",
                                 "timeout_ms": 1500, "cache_duration_seconds": 600 },
                "from_headers": [{ "name": "authorization", "value_prefix": "Bearer " }],
                "from_params": ["access_token"],
                "claim_to_headers": [{ "claim_name": "sub", "header_name": "x-user" }]
            }
        },
        "routes": [{
            "name": "get-user",
            "match": { "methods": ["GET"], "path": "/users/{id}" },
            "mode": "report",
            "jwt": { "providers": ["main"], "scopes": ["users:read"], "claims": { "tenant": ["a"] } },
            "peers": { "require_mtls": true, "allow": ["spiffe://cluster.local/ns/shop/*"] },
            "owner": { "param": "id", "claim": "sub" },
            "request": { "max_body_bytes": 65536, "content_types": ["application/json"],
                         "body_schema": { "type": "object" }, "query_schema": { "type": "object" } },
            "rate_limits": [{ "key": "jwt:sub", "requests": 10, "per_seconds": 1, "burst": 20 }],
            "response": {
                "strip_fields": ["/password", "/items/*/card",
                                 { "pointer": "/ssn", "visible_to": { "scopes": ["pii:read"] } }],
                "body_schema": { "type": "object" }, "on_schema_mismatch": "strip",
                "max_body_bytes": 65536, "max_array_len": 100
            },
            "mask_upstream_errors": false,
            "cors": { "allow_origins": ["*"] }
        }],
        "mask_upstream_errors": true,
        "security_headers": { "set": { "referrer-policy": "no-referrer" }, "remove": ["x-debug"],
                              "strict_transport_security": { "max_age_seconds": 31536000,
                                                             "include_subdomains": true } },
        "cors": { "allow_origins": ["https://app.example", "*.example.org"],
                  "allow_methods": ["GET", "POST"], "allow_headers": ["authorization"],
                  "expose_headers": ["x-request-id"], "allow_credentials": true,
                  "max_age_seconds": 600 },
        "allow_on_headers_stop_iteration": true
    })
}

#[test]
fn schema_accepts_a_config_the_compiler_accepts() {
    let config = a_full_config();
    let bytes = serde_json::to_vec(&config).unwrap_or_default();
    assert!(meshguard::config::compile(&bytes).is_ok());
    let errors: Vec<String> = validator()
        .check(&config)
        .err()
        .map(|e| e.detail("config"))
        .into_iter()
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn schema_refuses_unknown_and_mistyped_fields_like_the_parser() {
    let v = validator();
    let cases: Vec<(&str, Value)> = vec![
        ("/typo", json!("x")),
        ("/routes/0/jwt/scope", json!(["a"])),
        ("/routes/0/match/method", json!(["GET"])),
        ("/jwt_providers/main/remote_jwks/timeout", json!(5)),
        ("/routes/0/request/max_body", json!(1)),
        ("/mode", json!("audit")),
        ("/routes/0/rate_limits/0/requests", json!("ten")),
        ("/routes/0/response/strip", json!(["/a"])),
        ("/routes/0/response/on_schema_mismatch", json!("drop")),
        ("/cors/allow_origin", json!(["*"])),
        ("/security_headers/hsts", json!(true)),
        ("/mask_upstream_errors", json!("yes")),
    ];
    for (pointer, value) in cases {
        let mut config = a_full_config();
        let (parent, key) = pointer.rsplit_once('/').unwrap_or_default();
        if let Some(Value::Object(map)) = config.pointer_mut(parent) {
            map.insert(key.to_string(), value);
        }
        let bytes = serde_json::to_vec(&config).unwrap_or_default();
        assert!(
            meshguard::config::compile(&bytes).is_err(),
            "{pointer}: the parser accepts it"
        );
        assert!(!v.is_valid(&config), "{pointer}: the schema accepts it");
    }
}

#[test]
fn schema_refuses_a_route_without_path_or_prefix_and_a_bad_route_name() {
    let v = validator();
    let mut config = a_full_config();
    config["routes"][0]["match"] = json!({ "methods": ["GET"] });
    assert!(!v.is_valid(&config));
    let mut config = a_full_config();
    config["routes"][0]["name"] = json!("get user");
    assert!(!v.is_valid(&config));
}

/// [`a_full_config`] and every field it leaves out, for the reader comparison (parsed, not
/// compiled: the routes need not make sense together).
fn a_config_with_every_field() -> Value {
    let mut c = a_full_config();
    c["audit"] = json!({ "log_allows": true });
    c["forward_identity"] = json!({ "peer_header": "x-peer", "subject_header": "x-sub" });
    c["client_ip"] = json!({ "source": "x_forwarded_for", "trusted_hops": 1, "ipv6_prefix": 64 });
    c["jwt_cache"] = json!({ "max_entries": 10 });
    c["paths"] = json!({ "case_sensitive": true, "allow_semicolon_params": true,
                         "allow_method_override": true });
    c["jwt_providers"]["hm"] = json!({
        "issuer": "h", "algorithms": ["HS256"],
        "hmac_secret": { "inline_base64url": "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo", "kid": "k" },
        "from_cookies": ["c"], "clock_skew_seconds": 5, "max_lifetime_seconds": 100,
        "require_expiration": true, "forward": false, "forward_payload_header": "x-p",
        "max_token_bytes": 4096 });
    c["jwt_providers"]["inline"] =
        json!({ "issuer": "i", "local_jwks": { "inline_string": "{}" } });
    c["jwt_providers"]["main"]["remote_jwks"]["authority"] = json!("idp");
    c["jwt_providers"]["main"]["remote_jwks"]["min_refetch_interval_seconds"] = json!(5);
    c["jwt_providers"]["main"]["remote_jwks"]["max_body_bytes"] = json!(5000);
    c["security_headers"]["defaults"] = json!(false);
    c["security_headers"]["strict_transport_security"]["preload"] = json!(true);
    if let Some(routes) = c["routes"].as_array_mut() {
        routes.push(json!({
            "name": "two",
            "match": { "prefix": "/p", "hosts": ["a.example"], "case_sensitive": true,
                       "allow_semicolon_params": false, "methods": ["POST"] },
            "jwt": { "providers": ["hm"], "allow_missing": true },
            "peers": { "deny": ["spiffe://x/y"], "source": "istio_peer_principal" },
            "owner": { "query": "u", "body_field": "/u", "claim": "sub",
                       "bypass": { "claim": "role", "values": ["admin"] } },
            "binding": { "claim": "azp", "map": { "a": "spiffe://x/a" }, "cnf": false },
            "lockout": { "keys": ["jwt:sub"], "failures": 3, "window_seconds": 60,
                         "block_seconds": 60, "upstream_statuses": [401, 403], "mode": "report",
                         "max_keys": 10, "normalize_keys": false },
            "request": {
                "headers": [{ "name": "x-a", "required": true, "forbidden": false, "pattern": "^a$" }],
                "params": { "q": { "type": "string" } },
                "json_limits": { "max_depth": 10, "max_keys": 10, "max_array_len": 10,
                                 "max_string_len": 10, "max_total_bytes": 100 },
                "reject_unknown_fields": true, "read_only_fields": ["/id"],
                "writable_by_role": { "claim": "role", "roles": { "admin": ["/x"] } },
                "on_mass_assignment": "strip", "body_schema": { "type": "object" } },
            "rate_limits": [{ "key": "jwt:sub", "requests": 1, "per_seconds": 1, "cost": 1,
                              "mode": "enforce", "name": "n", "max_keys": 5,
                              "response_headers": true }],
            "response": { "strip_fields": [{ "pointer": "/a",
                                             "visible_to": { "claims": { "role": ["admin"] } } }] }
        }));
    }
    c
}

/// Every JSON pointer to a member or element of `v`, the document's own ("") first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, item) in m {
                pointers(
                    item,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The module reads the config with its own reader (`config::read`), not serde's derive: both
/// must accept the same configs and read them the same. Each case is the full config with one
/// member removed, retyped or joined by an unknown member. Two differences are wanted: serde's
/// derive also reads a struct from an array of its fields in order (`"match": ["GET"]`, also in
/// an untagged enum such as `strip_fields`), and a unit enum from a one-member object
/// (`"mode": {"enforce": null}`); the
/// module refuses both.
#[test]
fn the_module_reader_and_the_serde_derive_agree() {
    use meshguard::config::compile::parse;
    use meshguard::config::raw::RawConfig;
    let base = a_config_with_every_field();
    assert!(parse(&serde_json::to_vec(&base).unwrap_or_default()).is_ok());
    assert!(serde_json::from_value::<RawConfig>(base.clone()).is_ok());
    let mut all = Vec::new();
    pointers(&base, String::new(), &mut all);
    let values = [
        json!(null),
        json!(true),
        json!(5),
        json!(-1),
        json!(1.5),
        json!(70000),
        json!("x"),
        json!("enforce"),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({ "x": 1 }),
        json!(0),
        json!(65536),
        json!(4_294_967_296_u64),
        json!({ "enforce": null }),
    ];
    // (config, whether the module may refuse what serde accepts)
    let mut cases = vec![(base.clone(), false)];
    for p in &all {
        let Some((parent, key)) = p.rsplit_once('/') else {
            continue;
        };
        let mut removed = base.clone();
        match removed.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.remove(key);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>() {
                    a.remove(i);
                }
            }
            _ => {}
        }
        cases.push((removed, false));
        for v in &values {
            let mut c = base.clone();
            let mut array_for_object = false;
            if let Some(slot) = c.pointer_mut(p) {
                array_for_object = (!slot.is_array() && v.is_array())
                    || (slot.is_string() && *v == json!({ "enforce": null }));
                *slot = v.clone();
            }
            cases.push((c, array_for_object));
        }
        let mut extra = base.clone();
        if let Some(Value::Object(m)) = extra.pointer_mut(p) {
            m.insert("zz_unknown".into(), json!(1));
            cases.push((extra, false));
        }
    }
    assert!(cases.len() > 1000, "{} cases", cases.len());
    for (c, stricter) in &cases {
        let by_serde = serde_json::from_value::<RawConfig>(c.clone()).map(|r| format!("{r:?}"));
        let bytes = serde_json::to_vec(c).unwrap_or_default();
        let by_module = parse(&bytes).map(|r| format!("{r:?}"));
        match (&by_serde, &by_module) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{c}"),
            (Err(_), Err(_)) => {}
            (Ok(_), Err(_)) if *stricter => {}
            _ => panic!("serde {by_serde:?}\nmodule {by_module:?}\nconfig {c}"),
        }
    }
}
