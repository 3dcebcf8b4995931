//! Compiled route matchers: methods, hosts and path templates, built once at configure time and
//! applied to the normalised path.
//!
//! Path forms: an exact path (`/healthz`), a template whose segments may be whole-segment
//! parameters (`/users/{id}/orders/{order}`), or a prefix (`/public/`) that matches on segment
//! boundaries: `/api` matches `/api` and `/api/x`, never `/apix`. Hosts are exact or `*.` suffix
//! wildcards, compared case-insensitively without the port.

use super::normalize::{decode_segment, normalize, NormalPath};
use crate::config::ConfigError;

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A fixed segment.
    Literal(String),
    /// A `{name}` parameter.
    Param(String),
}

/// How a route matches the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatcher {
    /// The whole normalised path.
    Exact(String),
    /// Segment-wise template with `{name}` parameters.
    Template {
        /// The template as written, for audit lines.
        source: String,
        /// The segments, in order.
        segments: Vec<Segment>,
        /// Whether the template ends with `/`.
        trailing_slash: bool,
    },
    /// A segment-boundary prefix.
    Prefix(String),
}

/// A host pattern: exact or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exact host, lower case, no port.
    Exact(String),
    /// `*.example.com`: stored as `.example.com`, matching any longer host ending with it.
    Suffix(String),
}

/// Path parameters captured by a template, percent-decoded.
pub type Params = Vec<(String, String)>;

fn is_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PathMatcher {
    /// Compiles `match.path`: exact when it has no `{}`, else a template.
    pub fn path(source: &str, at: &str) -> Result<Self, ConfigError> {
        let normal = check_written_path(source, at)?;
        if !source.contains('{') && !source.contains('}') {
            return Ok(PathMatcher::Exact(normal.path));
        }
        let mut segments = Vec::new();
        for seg in source.split('/').filter(|s| !s.is_empty()) {
            let open = seg.matches('{').count();
            let close = seg.matches('}').count();
            if open == 0 && close == 0 {
                segments.push(Segment::Literal(seg.to_string()));
                continue;
            }
            if open > close {
                return Err(ConfigError::new(at, format!("unclosed '{{' in {source:?}")));
            }
            if close > open {
                return Err(ConfigError::new(
                    at,
                    format!("unmatched '}}' in {source:?}"),
                ));
            }
            let name = seg
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .filter(|s| !s.contains('{') && !s.contains('}'));
            let Some(name) = name else {
                return Err(ConfigError::new(
                    at,
                    format!("a parameter must be a whole segment like '{{id}}' in {source:?}"),
                ));
            };
            if !is_param_name(name) {
                return Err(ConfigError::new(
                    at,
                    format!("parameter name {name:?} must match [A-Za-z_][A-Za-z0-9_]*"),
                ));
            }
            if segments
                .iter()
                .any(|s| matches!(s, Segment::Param(p) if p == name))
            {
                return Err(ConfigError::new(
                    at,
                    format!("parameter {name:?} appears twice in {source:?}"),
                ));
            }
            segments.push(Segment::Param(name.to_string()));
        }
        Ok(PathMatcher::Template {
            source: source.to_string(),
            segments,
            trailing_slash: source.len() > 1 && source.ends_with('/'),
        })
    }

    /// Compiles `match.prefix`.
    pub fn prefix(source: &str, at: &str) -> Result<Self, ConfigError> {
        if source.contains('{') || source.contains('}') {
            return Err(ConfigError::new(
                at,
                "a prefix cannot hold parameters; use match.path",
            ));
        }
        let normal = check_written_path(source, at)?;
        Ok(PathMatcher::Prefix(normal.path))
    }

    /// Parameter names of a template (empty for other forms).
    pub fn params(&self) -> Vec<&str> {
        match self {
            PathMatcher::Template { segments, .. } => segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Param(p) => Some(p.as_str()),
                    Segment::Literal(_) => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The path form as configured, for audit lines and metrics (never the request's own path).
    pub fn template(&self) -> &str {
        match self {
            PathMatcher::Exact(p) | PathMatcher::Prefix(p) => p,
            PathMatcher::Template { source, .. } => source,
        }
    }

    /// Matches a normalised path; on success returns the captured parameters.
    pub fn matches(&self, path: &NormalPath) -> Option<Params> {
        match self {
            PathMatcher::Exact(p) => (p == &path.path).then(Vec::new),
            PathMatcher::Prefix(p) => {
                let ok = path.path == *p
                    || (path.path.starts_with(p.as_str())
                        && (p.ends_with('/') || path.path.as_bytes().get(p.len()) == Some(&b'/')));
                ok.then(Vec::new)
            }
            PathMatcher::Template {
                segments,
                trailing_slash,
                ..
            } => {
                let ends_with_slash = path.path.len() > 1 && path.path.ends_with('/');
                if ends_with_slash != *trailing_slash {
                    return None;
                }
                let mut params = Vec::new();
                let mut got = path.segments();
                for want in segments {
                    let seg = got.next()?;
                    match want {
                        Segment::Literal(l) => {
                            if l != seg {
                                return None;
                            }
                        }
                        Segment::Param(name) => {
                            params.push((name.clone(), decode_segment(seg)?));
                        }
                    }
                }
                got.next().is_none().then_some(params)
            }
        }
    }
}

/// A configured path must already be in normal form, so that what users write is what matches.
fn check_written_path(source: &str, at: &str) -> Result<NormalPath, ConfigError> {
    if source.contains('?') {
        return Err(ConfigError::new(at, "a path cannot contain '?'"));
    }
    let normal = normalize(source)
        .map_err(|e| ConfigError::new(at, format!("{} in {source:?}", e.describe())))?;
    if normal.path != source {
        return Err(ConfigError::new(
            at,
            format!(
                "{source:?} is not in normal form (it would match as {:?})",
                normal.path
            ),
        ));
    }
    Ok(normal)
}

impl HostPattern {
    /// Compiles one `match.hosts` entry.
    pub fn parse(source: &str, at: &str) -> Result<Self, ConfigError> {
        let lower = source.to_ascii_lowercase();
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        if let Some(rest) = lower.strip_prefix("*.") {
            if valid(rest) {
                return Ok(HostPattern::Suffix(format!(".{rest}")));
            }
        } else if valid(&lower) {
            return Ok(HostPattern::Exact(lower));
        }
        Err(ConfigError::new(
            at,
            format!("{source:?} is not a host name or '*.'-wildcard (no port, no scheme)"),
        ))
    }

    /// Matches a host already lower-cased with its port removed (see [`host_of`]).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

/// The host of an `:authority` value: lower case, without port or trailing dot.
pub fn host_of(authority: &str) -> String {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: keep what is inside the brackets.
        rest.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks an HTTP method token from the config.
pub fn parse_method(source: &str, at: &str) -> Result<String, ConfigError> {
    let valid = !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
    if valid {
        Ok(source.to_string())
    } else {
        Err(ConfigError::new(
            at,
            format!("{source:?} is not an upper-case HTTP method"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(p: &str) -> NormalPath {
        normalize(p).unwrap_or(NormalPath {
            path: String::new(),
            query: String::new(),
        })
    }

    #[test]
    fn template_captures_decoded_params() {
        let m = PathMatcher::path("/users/{id}/orders/{order}", "p")
            .unwrap_or(PathMatcher::Exact(String::new()));
        assert_eq!(
            m.matches(&np("/users/a%20b/orders/7")),
            Some(vec![
                ("id".to_string(), "a b".to_string()),
                ("order".to_string(), "7".to_string())
            ])
        );
        assert_eq!(m.matches(&np("/users/1/orders")), None);
        assert_eq!(m.matches(&np("/users/1/orders/2/x")), None);
        assert_eq!(m.matches(&np("/users/1/orders/2/")), None);
    }

    #[test]
    fn bad_templates_name_the_problem() {
        let e = PathMatcher::path("/users/{id", "routes[2].match.path").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("routes[2].match.path: unclosed '{' in \"/users/{id\"")
        );
        assert!(PathMatcher::path("/users/x{id}", "p").is_err());
        assert!(PathMatcher::path("/users/{id}/{id}", "p").is_err());
        assert!(PathMatcher::path("/users/{1d}", "p").is_err());
        assert!(PathMatcher::path("users", "p").is_err());
        assert!(PathMatcher::path("/a/../b", "p").is_err());
        assert!(PathMatcher::path("/a//b", "p").is_err());
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let m = PathMatcher::prefix("/api", "p").unwrap_or(PathMatcher::Exact(String::new()));
        assert!(m.matches(&np("/api")).is_some());
        assert!(m.matches(&np("/api/x")).is_some());
        assert!(m.matches(&np("/apix")).is_none());
        let m = PathMatcher::prefix("/public/", "p").unwrap_or(PathMatcher::Exact(String::new()));
        assert!(m.matches(&np("/public/a")).is_some());
        assert!(m.matches(&np("/public/../admin")).is_none());
        let root = PathMatcher::prefix("/", "p").unwrap_or(PathMatcher::Exact(String::new()));
        assert!(root.matches(&np("/anything")).is_some());
    }

    #[test]
    fn hosts_match_exact_and_wildcard() {
        let w =
            HostPattern::parse("*.Example.com", "h").unwrap_or(HostPattern::Exact(String::new()));
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("badexample.com"));
        assert_eq!(host_of("API.example.com:8443"), "api.example.com");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert!(HostPattern::parse("http://x", "h").is_err());
        assert!(HostPattern::parse("x:80", "h").is_err());
    }
}
