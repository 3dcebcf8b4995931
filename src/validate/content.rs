//! Content type and body size.
//!
//! It decides whether a request's media type is on the route's allow-list (else 415) and
//! whether its body is within `max_body_bytes` (else 413), from `content-length` in the headers
//! phase when there is one and from the streamed size otherwise. It compares media types only
//! (`type/subtype`, case-insensitive, parameters ignored) and never looks at the body itself.

use crate::error::config::{index, ConfigError};
use crate::error::{Denial, Reason};
use crate::http::name::is_token;

/// One allow-list entry: `type/subtype`, `type/*`, or `type/*+suffix` (lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRange {
    /// `application/json`.
    Exact(String),
    /// `text/*`: any subtype of the type (stored with the slash, `text/`).
    AnySubtype(String),
    /// `application/*+json`: the type and any subtype with this structured-syntax suffix
    /// (stored as the type with slash and the suffix with plus: `application/`, `+json`).
    Suffix(String, String),
}

impl MediaRange {
    /// Parses an allow-list entry at config path `at`.
    pub fn parse(source: &str, at: &str) -> Result<Self, ConfigError> {
        let lower = source.trim().to_ascii_lowercase();
        let Some((ty, sub)) = media_type_parts(&lower) else {
            return Err(ConfigError::new(
                at,
                format!("{source:?} is not a media type (expected type/subtype, no parameters)"),
            ));
        };
        if lower.contains(';') || ty == "*" {
            return Err(ConfigError::new(
                at,
                format!("{source:?}: parameters and */* are not allowed; list media types"),
            ));
        }
        Ok(if sub == "*" {
            MediaRange::AnySubtype(format!("{ty}/"))
        } else if let Some(suffix) = sub.strip_prefix("*+") {
            MediaRange::Suffix(format!("{ty}/"), format!("+{suffix}"))
        } else {
            MediaRange::Exact(lower)
        })
    }

    fn matches(&self, media_type: &str) -> bool {
        match self {
            MediaRange::Exact(m) => m == media_type,
            MediaRange::AnySubtype(prefix) => media_type.starts_with(prefix.as_str()),
            MediaRange::Suffix(prefix, suffix) => {
                media_type.starts_with(prefix.as_str()) && media_type.ends_with(suffix.as_str())
            }
        }
    }
}

/// Splits `type/subtype` (already lower case, no parameters) into its two tokens.
fn media_type_parts(s: &str) -> Option<(&str, &str)> {
    let (ty, sub) = s.split_once('/')?;
    (is_token(ty) && is_token(sub)).then_some((ty, sub))
}

/// The media type of a `content-type` value: lower case, parameters and spaces dropped.
pub fn media_type(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let lower = essence.to_ascii_lowercase();
    media_type_parts(&lower)?;
    Some(lower)
}

/// Compiled content rules of one route.
#[derive(Debug, Clone, Default)]
pub struct ContentRules {
    /// Allowed media types; `None` allows any.
    pub allowed: Option<Vec<MediaRange>>,
    /// Largest body in bytes; `None` for no meshguard limit.
    pub max_body_bytes: Option<u64>,
}

impl ContentRules {
    /// Compiles `content_types` (at config path `at`) and `max_body_bytes`.
    pub fn compile(
        content_types: Option<&[String]>,
        max_body_bytes: Option<u64>,
        at: &str,
    ) -> Result<Self, ConfigError> {
        let allowed = match content_types {
            None => None,
            Some([]) => {
                return Err(ConfigError::new(
                    at,
                    "must list at least one media type (omit it to allow any)",
                ))
            }
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| MediaRange::parse(s, &index(at, i)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self {
            allowed,
            max_body_bytes,
        })
    }

    /// Checks the `content-type` values of a request that has a body. Several different
    /// values are refused: which one the service would read is a guess.
    pub fn check_content_type(&self, values: &[&str]) -> Result<(), Denial> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let refuse = |why: &str| Err(Denial::new(Reason::UnsupportedMediaType).with_detail(why));
        let mut types = values.iter().map(|v| media_type(v));
        let Some(first) = types.next() else {
            return refuse("content-type is required");
        };
        let Some(first) = first else {
            return refuse("content-type is not a media type");
        };
        if types.any(|t| t.as_deref() != Some(first.as_str())) {
            return refuse("conflicting content-type headers");
        }
        if allowed.iter().any(|r| r.matches(&first)) {
            Ok(())
        } else {
            refuse("content-type is not accepted on this route")
        }
    }

    /// Checks a body size (from `content-length`, or the bytes received so far).
    pub fn check_size(&self, size: u64) -> Result<(), Denial> {
        match self.max_body_bytes {
            Some(max) if size > max => Err(Denial::new(Reason::BodyTooLarge)
                .with_detail(format!("body is larger than {max} bytes"))),
            _ => Ok(()),
        }
    }
}

/// Parses a `content-length` value; `None` when absent or not a plain decimal (Envoy itself
/// refuses invalid lengths, so meshguard then just counts the streamed bytes).
pub fn content_length(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(types: &[&str]) -> ContentRules {
        let list: Vec<String> = types.iter().map(|s| s.to_string()).collect();
        ContentRules::compile(Some(&list), Some(100), "r.content_types").unwrap()
    }

    #[test]
    fn matches_media_type_ignoring_parameters_and_case() {
        let r = rules(&["application/json"]);
        assert!(r.check_content_type(&["application/json"]).is_ok());
        assert!(r
            .check_content_type(&["Application/JSON; charset=utf-8"])
            .is_ok());
        assert!(r.check_content_type(&[" application/json ;x=y"]).is_ok());
    }

    #[test]
    fn unlisted_missing_or_garbled_type_is_415() {
        let r = rules(&["application/json"]);
        for values in [
            vec!["text/plain"],
            vec!["application/jsonx"],
            vec!["application/json-patch+json"],
            vec![],
            vec!["json"],
            vec![""],
        ] {
            let d = r.check_content_type(&values).unwrap_err();
            assert_eq!(d.reason, Reason::UnsupportedMediaType, "{values:?}");
            assert_eq!(d.reason.status(), 415);
        }
    }

    #[test]
    fn conflicting_content_types_are_refused() {
        let r = rules(&["application/json", "text/plain"]);
        assert!(r
            .check_content_type(&["application/json", "text/plain"])
            .is_err());
        assert!(r
            .check_content_type(&["application/json", "application/json; charset=utf-8"])
            .is_ok());
    }

    #[test]
    fn wildcard_subtype_and_suffix_ranges() {
        let r = rules(&["text/*", "application/*+json"]);
        assert!(r.check_content_type(&["text/csv"]).is_ok());
        assert!(r
            .check_content_type(&["application/merge-patch+json"])
            .is_ok());
        assert!(r.check_content_type(&["application/json"]).is_err());
        assert!(r.check_content_type(&["application/xml"]).is_err());
    }

    #[test]
    fn invalid_allow_list_names_the_entry() {
        let list = vec!["application/json".to_string(), "json".to_string()];
        let e = ContentRules::compile(Some(&list), None, "routes[0].request.content_types")
            .unwrap_err();
        assert_eq!(e.path, "routes[0].request.content_types[1]");
        for bad in ["*/*", "application/json; charset=utf-8"] {
            assert!(ContentRules::compile(Some(&[bad.to_string()]), None, "x").is_err());
        }
        assert!(ContentRules::compile(Some(&[]), None, "x").is_err());
    }

    #[test]
    fn body_over_limit_is_413() {
        let r = rules(&["application/json"]);
        assert!(r.check_size(100).is_ok());
        let d = r.check_size(101).unwrap_err();
        assert_eq!(d.reason, Reason::BodyTooLarge);
        assert_eq!(d.reason.status(), 413);
        assert!(ContentRules::default().check_size(u64::MAX).is_ok());
    }

    #[test]
    fn parses_content_length_strictly() {
        assert_eq!(content_length("42"), Some(42));
        assert_eq!(content_length(" 7 "), Some(7));
        for bad in ["", "-1", "1e3", "0x10", "99999999999999999999999"] {
            assert_eq!(content_length(bad), None, "{bad}");
        }
    }
}
