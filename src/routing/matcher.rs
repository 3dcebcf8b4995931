//! Compiled route matchers: methods, hosts and path templates, built once at configure time and
//! applied to the normalised path.
//!
//! Path forms: an exact path (`/healthz`), a template whose segments may be whole-segment
//! parameters (`/users/{id}/orders/{order}`), or a prefix (`/public/`) that matches on segment
//! boundaries: `/api` matches `/api` and `/api/x`, never `/apix`. Hosts are exact or `*.` suffix
//! wildcards, compared case-insensitively without the port.

use super::normalize::{normalize, NormalPath};
use crate::error::config::ConfigError;
use crate::http::percent::{self, Plus};
use crate::text::fold_case;

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A fixed segment.
    Literal(String),
    /// A `{name}` parameter.
    Param(String),
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

/// The compared form of a path matcher (as written, or case-folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathForm {
    /// The whole normalised path.
    Exact(String),
    /// Segment-wise template with `{name}` parameters.
    Template {
        /// The segments, in order.
        segments: Vec<Segment>,
        /// Whether the template ends with `/`.
        trailing_slash: bool,
    },
    /// A segment-boundary prefix.
    Prefix(String),
}

impl PathForm {
    fn folded(&self) -> PathForm {
        let f = |s: &str| fold_case(s).into_owned();
        match self {
            PathForm::Exact(p) => PathForm::Exact(f(p)),
            PathForm::Prefix(p) => PathForm::Prefix(f(p)),
            PathForm::Template {
                segments,
                trailing_slash,
            } => PathForm::Template {
                segments: segments
                    .iter()
                    .map(|s| match s {
                        Segment::Literal(l) => Segment::Literal(f(l)),
                        Segment::Param(p) => Segment::Param(p.clone()),
                    })
                    .collect(),
                trailing_slash: *trailing_slash,
            },
        }
    }

    /// Matches `compared` (the normalised path, or its case-folded form); parameters are taken
    /// from the same segments of `original`, so their letter case is kept.
    fn matches(&self, compared: &str, original: &str) -> Option<Params> {
        match self {
            PathForm::Exact(p) => (p == compared).then(Vec::new),
            PathForm::Prefix(p) => {
                let ok = compared == p
                    || (compared.starts_with(p.as_str())
                        && (p.ends_with('/') || compared.as_bytes().get(p.len()) == Some(&b'/')));
                ok.then(Vec::new)
            }
            PathForm::Template {
                segments,
                trailing_slash,
            } => {
                let ends_with_slash = compared.len() > 1 && compared.ends_with('/');
                if ends_with_slash != *trailing_slash {
                    return None;
                }
                let mut params = Vec::new();
                // Folding never adds or removes a `/`: the segments line up.
                let mut got = compared
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .zip(original.split('/').filter(|s| !s.is_empty()));
                for want in segments {
                    let (seg, orig) = got.next()?;
                    match want {
                        Segment::Literal(l) => {
                            if l != seg {
                                return None;
                            }
                        }
                        Segment::Param(name) => {
                            let value = percent::decode(orig, Plus::Literal)?;
                            params.push((name.clone(), value.into_owned()));
                        }
                    }
                }
                got.next().is_none().then_some(params)
            }
        }
    }
}

/// How a route matches the path: an exact path, a template, or a prefix, kept as written and
/// case-folded (both compiled once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMatcher {
    source: String,
    form: PathForm,
    folded: PathForm,
}

impl PathMatcher {
    fn new(source: String, form: PathForm) -> Self {
        let folded = form.folded();
        Self {
            source,
            form,
            folded,
        }
    }

    /// Compiles `match.path`: exact when it has no `{}`, else a template.
    pub fn path(source: &str, at: &str) -> Result<Self, ConfigError> {
        let normal = check_written_path(source, at)?;
        if !source.contains('{') && !source.contains('}') {
            return Ok(Self::new(normal.path.clone(), PathForm::Exact(normal.path)));
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
        Ok(Self::new(
            source.to_string(),
            PathForm::Template {
                segments,
                trailing_slash: source.len() > 1 && source.ends_with('/'),
            },
        ))
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
        Ok(Self::new(
            normal.path.clone(),
            PathForm::Prefix(normal.path),
        ))
    }

    /// The form as written.
    pub fn form(&self) -> &PathForm {
        &self.form
    }

    /// True for a `{param}` template.
    pub fn is_template(&self) -> bool {
        matches!(self.form, PathForm::Template { .. })
    }

    /// Parameter names of a template (empty for other forms).
    pub fn params(&self) -> Vec<&str> {
        match &self.form {
            PathForm::Template { segments, .. } => segments
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
        &self.source
    }

    /// Matches a normalised path, letter case as it is; on success returns the captured
    /// parameters.
    pub fn matches(&self, path: &NormalPath) -> Option<Params> {
        self.form.matches(&path.path, &path.path)
    }

    /// Matches the case-folded path (`folded` is [`fold_case`] of `path.path`) against the
    /// folded literals; the parameters keep the request's letter case.
    pub fn matches_folded(&self, path: &NormalPath, folded: &str) -> Option<Params> {
        self.folded.matches(folded, &path.path)
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
    if crate::http::method::is_method(source) {
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
        normalize(p).unwrap()
    }

    #[test]
    fn template_captures_decoded_params() {
        let m = PathMatcher::path("/users/{id}/orders/{order}", "p").unwrap();
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
        let m = PathMatcher::prefix("/api", "p").unwrap();
        assert!(m.matches(&np("/api")).is_some());
        assert!(m.matches(&np("/api/x")).is_some());
        assert!(m.matches(&np("/apix")).is_none());
        let m = PathMatcher::prefix("/public/", "p").unwrap();
        assert!(m.matches(&np("/public/a")).is_some());
        assert!(m.matches(&np("/public/../admin")).is_none());
        let root = PathMatcher::prefix("/", "p").unwrap();
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

    #[test]
    fn folded_match_ignores_letter_case_but_keeps_parameter_case() {
        let m = PathMatcher::path("/users/{id}/Orders", "p").unwrap();
        let p = np("/USERS/Bob/orders");
        assert_eq!(m.matches(&p), None);
        let folded = fold_case(&p.path);
        assert_eq!(
            m.matches_folded(&p, &folded),
            Some(vec![("id".to_string(), "Bob".to_string())])
        );
        let admin = PathMatcher::path("/admin", "p").unwrap();
        let p = np("/ADMIN");
        assert!(admin.matches_folded(&p, &fold_case(&p.path)).is_some());
        let prefix = PathMatcher::prefix("/Admin", "p").unwrap();
        let p = np("/aDMIN/x");
        assert!(prefix.matches_folded(&p, &fold_case(&p.path)).is_some());
        let p = np("/adminx");
        assert!(prefix.matches_folded(&p, &fold_case(&p.path)).is_none());
    }
}
