//! Raw config -> [`Policy`]: parses JSON (unknown fields rejected), validates every field, and
//! compiles matchers once. Every error names the JSON path of the field at fault.

use super::raw::{RawConfig, RawMatch, RawPaths, RawRoute, RawUnmatched};
use super::read::{At, FromJson};
use crate::authn::cache::DEFAULT_CACHE_ENTRIES;
use crate::authn::config::{compile_providers, compile_requirement, Providers};
use crate::authn::shared_tokens::{DEFAULT_SHARED_ENTRIES, MAX_SHARED_ENTRIES};
use crate::error::config::{index, join, ConfigError};
use crate::identity::config::{
    compile_binding, compile_forward_identity, compile_owner, compile_peers,
};
use crate::policy::{Mode, Policy, Route, RouteName, Unmatched};
use crate::ratelimit::config::{compile_client_ip, compile_lockout, compile_rate_limits};
use crate::response::config::{compile_cors, compile_response, compile_security_headers};
use crate::response::{EdgePolicy, RouteResponse};
use crate::routing::matcher::{parse_method, PathForm};
use crate::routing::{HostPattern, PathMatcher};
use crate::text::fold_case;
use crate::validate::json::{self, JsonError};

/// Largest plugin configuration accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Parses and compiles a plugin configuration (JSON bytes) into a policy.
pub fn compile(bytes: &[u8]) -> Result<Policy, ConfigError> {
    let raw = parse(bytes)?;
    compile_raw(&raw)
}

/// Parses JSON into raw config. The document goes through the strict reader (a key twice in one
/// object is an error: two copies of one setting must not disagree; keys stay case-sensitive,
/// since a schema may define both `id` and `ID`), then
/// [`FromJson`] reads the raw types; every error names the JSON path at fault.
pub fn parse(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ConfigError::new(
            "",
            "plugin configuration is empty (expected a JSON object)",
        ));
    }
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            "",
            format!("plugin configuration is over {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    let value =
        json::parse_keys(bytes, &json::DOCUMENT_LIMITS, json::Keys::ExactUnique).map_err(|e| {
            match e {
                JsonError::DuplicateKey { at } => {
                    ConfigError::new(path_at(bytes, at), "duplicate object key")
                }
                JsonError::Limit(l) => {
                    ConfigError::new("", format!("configuration exceeds {}", l.field()))
                }
                JsonError::Malformed { .. } => {
                    ConfigError::new("", format!("invalid JSON: {}", e.describe()))
                }
            }
        })?;
    RawConfig::from_json(&value, &At::ROOT)
}

/// The JSON path (`routes[0].match.path`) of the member that ends at byte `end`.
fn path_at(bytes: &[u8], end: usize) -> String {
    let end = end.min(bytes.len());
    // Each open container: its path segment so far.
    enum Seg {
        Obj(Option<String>),
        Arr(usize),
    }
    let mut stack: Vec<Seg> = Vec::new();
    let mut i = 0;
    while i < end {
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'{' => stack.push(Seg::Obj(None)),
            b'[' => stack.push(Seg::Arr(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Seg::Obj(k)) => *k = None,
                Some(Seg::Arr(n)) => *n = n.saturating_add(1),
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                let text = bytes.get(start..i.min(bytes.len())).unwrap_or_default();
                if let Some(Seg::Obj(k @ None)) = stack.last_mut() {
                    let raw = format!("\"{}\"", String::from_utf8_lossy(text));
                    let key = match json::parse(raw.as_bytes(), &json::DOCUMENT_LIMITS) {
                        Ok(serde_json::Value::String(k)) => k,
                        _ => raw,
                    };
                    *k = Some(key);
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for seg in &stack {
        match seg {
            Seg::Obj(Some(k)) => path = join(&path, k),
            Seg::Arr(n) => path = index(&path, *n),
            Seg::Obj(None) => {}
        }
    }
    path
}

/// Compiles parsed raw config.
pub fn compile_raw(raw: &RawConfig) -> Result<Policy, ConfigError> {
    let global = raw.mode;
    let providers = compile_providers(&raw.jwt_providers, "jwt_providers")?;
    let edge = compile_edge(raw)?;
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let at = index("routes", i);
        let mut route = compile_route(r, global, &providers, raw.paths, &at)?;
        route.response = compile_route_response(r, &edge, &at)?;
        if routes.iter().any(|x| x.name == route.name) {
            return Err(ConfigError::new(
                join(&at, "name"),
                format!("duplicate route name {:?}", r.name),
            ));
        }
        routes.push(route);
    }
    let injected_headers = providers
        .injected_headers()
        .into_iter()
        .map(str::to_string)
        .collect();
    let jwt_cache_entries = raw
        .jwt_cache
        .as_ref()
        .and_then(|c| c.max_entries)
        .unwrap_or(DEFAULT_CACHE_ENTRIES);
    if jwt_cache_entries > 1_000_000 {
        return Err(ConfigError::new(
            "jwt_cache.max_entries",
            "at most 1000000 entries",
        ));
    }
    let jwt_shared_entries = match raw.jwt_cache.as_ref().and_then(|c| c.shared_entries) {
        // Sharing goes through the worker cache: no worker cache, nothing shared.
        _ if jwt_cache_entries == 0 => 0,
        None => DEFAULT_SHARED_ENTRIES,
        Some(n) if n > MAX_SHARED_ENTRIES => {
            return Err(ConfigError::new(
                "jwt_cache.shared_entries",
                format!("at most {MAX_SHARED_ENTRIES} entries"),
            ))
        }
        Some(n) => n,
    };
    let unmatched = match raw.unmatched {
        RawUnmatched::Deny => Unmatched::Deny,
        RawUnmatched::Allow => Unmatched::Allow,
    };
    let fold_paths = routes.iter().any(|r| !r.case_sensitive);
    let warnings = case_warnings(&routes, unmatched);
    Ok(Policy {
        mode: global,
        unmatched,
        log_allows: raw.audit.log_allows,
        routes,
        forward_identity: raw
            .forward_identity
            .as_ref()
            .map(|f| compile_forward_identity(f, "forward_identity"))
            .transpose()?,
        client_ip: compile_client_ip(raw.client_ip.as_ref(), "client_ip")?,
        providers,
        injected_headers,
        jwt_cache_entries,
        jwt_shared_entries,
        allow_semicolon_params: raw.paths.allow_semicolon_params,
        allow_method_override: raw.paths.allow_method_override,
        fold_paths,
        warnings,
        edge,
    })
}

/// A case-sensitive route followed by a route that takes its case variants (a prefix that
/// covers it, or `unmatched: allow`): `/ADMIN` would get the later route's rules while an
/// upstream that routes case-insensitively serves it as the first one.
#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn case_warnings(routes: &[Route], unmatched: Unmatched) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        if !r.case_sensitive {
            continue;
        }
        let written = fold_case(r.path.template()).into_owned();
        let behind = routes.iter().enumerate().skip(i.saturating_add(1)).find(|(_, later)| {
            matches!(later.path.form(), PathForm::Prefix(p)
                if p == "/" || written == fold_case(p) || written.starts_with(&format!("{}/", fold_case(p).trim_end_matches('/'))))
        });
        let who = match (behind, unmatched) {
            (Some((j, later)), _) => format!("routes[{j}] ({})", later.name.as_str()),
            (None, Unmatched::Allow) => "unmatched: allow".to_string(),
            (None, Unmatched::Deny) => continue,
        };
        out.push(format!(
            "routes[{i}] ({}) matches letter case as written and {who} takes its case variants: \
             upstreams that route case-insensitively (Express, ASP.NET Core) serve those as routes[{i}]",
            r.name.as_str()
        ));
    }
    out
}

#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn compile_route(
    r: &RawRoute,
    global: Mode,
    providers: &Providers,
    paths: RawPaths,
    at: &str,
) -> Result<Route, ConfigError> {
    let name = RouteName::parse(&r.name).ok_or_else(|| {
        ConfigError::new(
            join(at, "name"),
            format!("{:?} must be 1-64 characters of [A-Za-z0-9_-]", r.name),
        )
    })?;
    let m_at = join(at, "match");
    let (path, methods, hosts) = compile_match(&r.matcher, &m_at)?;
    let jwt = r
        .jwt
        .as_ref()
        .map(|j| compile_requirement(j, providers, &join(at, "jwt")))
        .transpose()?;
    for (section, present) in [
        ("owner", r.owner.is_some()),
        ("binding", r.binding.is_some()),
    ] {
        if present && jwt.is_none() {
            return Err(ConfigError::new(
                join(at, section),
                "needs a verified token: add a \"jwt\" requirement to this route",
            ));
        }
    }
    let template_params = path.params();
    let request = r
        .request
        .as_ref()
        .map(|q| {
            let params = path.is_template().then_some(&template_params[..]);
            crate::validate::RequestRules::compile(q, &join(at, "request"), params)
        })
        .transpose()?;
    let peers = r
        .peers
        .as_ref()
        .map(|p| compile_peers(p, &join(at, "peers")))
        .transpose()?;
    let owner = r
        .owner
        .as_ref()
        .map(|o| compile_owner(o, &join(at, "owner"), &path.params()))
        .transpose()?;
    let binding = r
        .binding
        .as_ref()
        .map(|b| compile_binding(b, &join(at, "binding")))
        .transpose()?;
    let route_mode = r.mode.unwrap_or(global);
    let limit_mode = route_mode;
    let rate_limits = compile_rate_limits(
        &r.rate_limits,
        &join(at, "rate_limits"),
        name.as_str(),
        limit_mode,
    )?;
    let lockout = r
        .lockout
        .as_ref()
        .map(|l| compile_lockout(l, &join(at, "lockout"), name.as_str(), limit_mode))
        .transpose()?;
    Ok(Route {
        name,
        mode: route_mode,
        methods,
        hosts,
        path,
        case_sensitive: r.matcher.case_sensitive.unwrap_or(paths.case_sensitive),
        allow_semicolon_params: r
            .matcher
            .allow_semicolon_params
            .unwrap_or(paths.allow_semicolon_params),
        jwt,
        peers,
        owner,
        binding,
        request,
        rate_limits,
        lockout,
        response: crate::response::RouteResponse::default(),
    })
}

type CompiledMatch = (PathMatcher, Option<Vec<String>>, Option<Vec<HostPattern>>);

#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn compile_match(m: &RawMatch, at: &str) -> Result<CompiledMatch, ConfigError> {
    let path = match (&m.path, &m.prefix) {
        (Some(p), None) => PathMatcher::path(p, &join(at, "path"))?,
        (None, Some(p)) => PathMatcher::prefix(p, &join(at, "prefix"))?,
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                at,
                "set exactly one of \"path\" and \"prefix\", not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                at,
                "set exactly one of \"path\" and \"prefix\"",
            ))
        }
    };
    let methods = match &m.methods {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                join(at, "methods"),
                "empty list matches nothing; omit it to match any method",
            ))
        }
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, s)| parse_method(s, &index(&join(at, "methods"), i)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let hosts = match &m.hosts {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                join(at, "hosts"),
                "empty list matches nothing; omit it to match any host",
            ))
        }
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, s)| HostPattern::parse(s, &index(&join(at, "hosts"), i)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok((path, methods, hosts))
}

/// Compiles the top-level response settings.
#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn compile_edge(raw: &RawConfig) -> Result<EdgePolicy, ConfigError> {
    Ok(EdgePolicy {
        security_headers: raw
            .security_headers
            .as_ref()
            .map(|s| compile_security_headers(s, "security_headers"))
            .transpose()?,
        cors: raw
            .cors
            .as_ref()
            .map(|c| compile_cors(c, "cors").map(std::sync::Arc::new))
            .transpose()?,
        mask_upstream_errors: raw.mask_upstream_errors,
        hold_headers: raw.allow_on_headers_stop_iteration,
    })
}

/// Compiles a route's effective response settings (its own, else the top-level ones).
#[inline(never)] // config time: keeps compile_raw small for V8 (docs/cost.md)
fn compile_route_response(
    raw: &RawRoute,
    edge: &EdgePolicy,
    at: &str,
) -> Result<RouteResponse, ConfigError> {
    Ok(RouteResponse {
        rules: raw
            .response
            .as_ref()
            .map(|r| compile_response(r, &join(at, "response")))
            .transpose()?,
        cors: match &raw.cors {
            Some(c) => Some(std::sync::Arc::new(compile_cors(c, &join(at, "cors"))?)),
            None => edge.cors.clone(),
        },
        mask: raw
            .mask_upstream_errors
            .unwrap_or(edge.mask_upstream_errors),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match compile(json.as_bytes()) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_contract_foundation_fields() {
        let p = compile(
            br#"{"mode":"report","unmatched":"allow","routes":[
                {"name":"get-user","match":{"methods":["GET"],"path":"/users/{id}","hosts":["*.example.com"]},"mode":"enforce"},
                {"name":"pub","match":{"prefix":"/public/"}}]}"#,
        );
        let p = p.map_err(|e| e.to_string());
        assert!(p.is_ok(), "{p:?}");
        if let Ok(p) = p {
            assert_eq!(p.routes.len(), 2);
            assert_eq!(p.mode, Mode::Report);
            assert_eq!(p.routes.first().map(|r| r.mode), Some(Mode::Enforce));
            assert_eq!(p.routes.get(1).map(|r| r.mode), Some(Mode::Report));
        }
    }

    #[test]
    fn bad_template_is_refused_with_its_path() {
        assert_eq!(
            err(
                r#"{"routes":[{"name":"a","match":{"path":"/a"}},{"name":"b","match":{"path":"/b"}},{"name":"c","match":{"path":"/users/{id"}}]}"#
            ),
            "routes[2].match.path: unclosed '{' in \"/users/{id\""
        );
    }

    #[test]
    fn unknown_field_is_refused_with_its_path() {
        let e = err(r#"{"routes":[{"name":"a","match":{"path":"/a","method":["GET"]}}]}"#);
        assert!(e.starts_with("routes[0].match"), "{e}");
        assert!(e.contains("unknown field `method`"), "{e}");
        let e = err(r#"{"modes":"enforce"}"#);
        assert!(e.contains("unknown field `modes`"), "{e}");
    }

    #[test]
    fn serde_errors_name_the_path_across_lines_and_escapes() {
        let e = err("{\n \"routes\": [\n  {\"name\": \"a\",\n   \"match\": {\"path\": \"/a\"},\n   \"rate_limits\": [{\"key\": \"route\", \"requests\": \"x\"}]}]}");
        assert!(
            e.starts_with("routes[0].rate_limits[0].requests: invalid type"),
            "{e}"
        );
        let e = err(r#"{"routes":[{"name":"a","match":{"path":"/a"}},{"match":{"path":"/b"}}]}"#);
        assert_eq!(e, "routes[1]: missing field `name`");
        let e = err(r#"{"jwt_providers":{"m\"x":{"issuer":5}}}"#);
        assert!(
            e.starts_with("jwt_providers.m\"x.issuer: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_refused_with_its_path() {
        let e = err(r#"{"routes":5}"#);
        assert!(e.starts_with("routes: invalid type"), "{e}");
        let e = err(r#"{"routes":[{"name":"a","match":{"path":"/a"},"mode":"block"}]}"#);
        assert!(
            e.starts_with("routes[0].mode: unknown variant `block`"),
            "{e}"
        );
    }

    #[test]
    fn a_key_twice_is_refused_with_its_path_but_case_variants_are_names() {
        let e = err(
            r#"{"routes":[{"name":"a","match":{"path":"/a"},"mode":"report","mode":"enforce"}]}"#,
        );
        assert_eq!(e, "routes[0].mode: duplicate object key");
        let ok = compile(
            br#"{"routes":[{"name":"a","match":{"path":"/a","methods":["POST"]},"request":{"body_schema":
                {"type":"object","properties":{"id":{"type":"string"},"ID":{"type":"integer"}}}}}]}"#,
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
        assert!(err(r#"{"MODE":"report"}"#).contains("unknown field `MODE`"));
    }

    #[test]
    fn other_mistakes_are_refused() {
        assert!(err("").contains("empty"));
        assert!(err("{} x").contains("trailing"));
        assert!(err(r#"{"routes":[{"name":"a b","match":{"path":"/a"}}]}"#)
            .starts_with("routes[0].name"));
        assert!(err(
            r#"{"routes":[{"name":"a","match":{"path":"/a"}},{"name":"a","match":{"path":"/b"}}]}"#
        )
        .starts_with("routes[1].name: duplicate"));
        assert!(err(r#"{"routes":[{"name":"a","match":{}}]}"#)
            .starts_with("routes[0].match: set exactly one"));
        assert!(
            err(r#"{"routes":[{"name":"a","match":{"path":"/a","prefix":"/b"}}]}"#)
                .starts_with("routes[0].match: set exactly one")
        );
        assert!(
            err(r#"{"routes":[{"name":"a","match":{"path":"/a","methods":["get"]}}]}"#)
                .starts_with("routes[0].match.methods[0]")
        );
        assert!(
            err(r#"{"routes":[{"name":"a","match":{"path":"/a","hosts":["a.com:80"]}}]}"#)
                .starts_with("routes[0].match.hosts[0]")
        );
    }
}
