//! Where is the token? Looks in a provider's sources (headers with a prefix, query parameters,
//! cookies) and says where it was found, so that the token can be stripped before the request
//! goes upstream.
//!
//! One request carries at most one token per provider: the same token in several places is
//! fine, two different tokens are refused as ambiguous (the upstream could read the one that was
//! not verified). This module never decodes or checks a token.

use super::config::TokenSource;
use crate::http::percent::decode_lenient;
use crate::http::query::raw_pairs;

/// Where a token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// In this request header (lowercase name).
    Header(String),
    /// In this query parameter.
    Param(String),
    /// In this cookie.
    Cookie(String),
}

/// A token and every place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The token text (prefix removed, percent-decoded for parameters).
    pub token: String,
    /// Every location that carried it, in source order, without repeats.
    pub locations: Vec<TokenLocation>,
}

/// Why extraction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// Two different tokens were found for one provider.
    Ambiguous,
}

/// Looks for a token in `sources`, given the request headers (lowercase names, repeats kept as
/// separate entries) and the raw query string (without `?`, possibly empty).
pub fn extract(
    sources: &[TokenSource],
    headers: &[(String, String)],
    query: &str,
) -> Result<Option<Extracted>, ExtractError> {
    let mut found: Option<Extracted> = None;
    let mut note = |token: String, loc: TokenLocation| -> Result<(), ExtractError> {
        match &mut found {
            None => {
                found = Some(Extracted {
                    token,
                    locations: vec![loc],
                })
            }
            Some(f) if f.token == token => {
                if !f.locations.contains(&loc) {
                    f.locations.push(loc);
                }
            }
            Some(_) => return Err(ExtractError::Ambiguous),
        }
        Ok(())
    };
    for source in sources {
        match source {
            TokenSource::Header { name, prefix } => {
                for (h, value) in headers {
                    if !h.eq_ignore_ascii_case(name) {
                        continue;
                    }
                    // Envoy joins repeated `authorization` headers with a comma (it is an
                    // inline header): judge each part, so the same token twice stays one token
                    // and two different ones are ambiguous. A JWT never holds a comma.
                    for part in value.split(',') {
                        if let Some(token) = after_prefix(part.trim_start(), prefix) {
                            note(token.to_string(), TokenLocation::Header(name.clone()))?;
                        }
                    }
                }
            }
            TokenSource::Param(name) => {
                // Lenient decoding: a token never holds a space, and what stays undecoded
                // fails the token check.
                for (k, v) in raw_pairs(query) {
                    if k == name.as_str() || decode_lenient(k) == name.as_str() {
                        let token = decode_lenient(v).into_owned();
                        if !token.is_empty() {
                            note(token, TokenLocation::Param(name.clone()))?;
                        }
                    }
                }
            }
            TokenSource::Cookie(name) => {
                for (h, value) in headers {
                    if !h.eq_ignore_ascii_case("cookie") {
                        continue;
                    }
                    for (k, v) in cookie_pairs(value) {
                        if same_cookie(k, name) && !v.is_empty() {
                            note(v.to_string(), TokenLocation::Cookie(name.clone()))?;
                        }
                    }
                }
            }
        }
    }
    Ok(found)
}

/// The value after `prefix` (ASCII case-insensitive, as auth schemes are), trimmed; `None` when
/// the prefix does not match or nothing follows it.
fn after_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = value
        .get(prefix.len()..)?
        .trim_matches(|c| c == ' ' || c == '\t');
    (!rest.is_empty()).then_some(rest)
}

/// A cookie name as the most lenient framework reads it: percent-decoded (Rack 2, PHP) and in
/// any ASCII case. `%73ession` and `SESSION` are the `session` cookie to some service behind.
fn same_cookie(k: &str, name: &str) -> bool {
    k == name || decode_lenient(k).eq_ignore_ascii_case(name)
}

/// Cookie pairs, split on `;` and on `,` (Rack 2 splits on both; a cookie value never holds
/// either, RFC 6265).
fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split([';', ',']).filter_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some((k.trim(), v))
    })
}

/// `path` (a `:path` with its query) without the parameters named in `names`; the `?` goes too
/// when no parameter remains.
pub fn strip_query_params(path: &str, names: &[&str]) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(k, _)| k);
            !names
                .iter()
                .any(|n| *n == name || decode_lenient(name) == *n)
        })
        .collect();
    if kept.iter().all(|p| p.is_empty()) {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// A `cookie` header value without the cookies named in `names`; `None` when nothing remains
/// (remove the header).
pub fn strip_cookies(header: &str, names: &[&str]) -> Option<String> {
    // Only on `;`: a rewritten header must keep an application's non-compliant cookie values
    // (JSON with commas) intact.
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(k, _)| k.trim());
            !names.iter().any(|n| same_cookie(name, n))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer() -> Vec<TokenSource> {
        vec![TokenSource::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }]
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_bearer_token_in_authorization() {
        let got = extract(
            &bearer(),
            &h(&[("authorization", "Bearer abc.def.ghi")]),
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.token, "abc.def.ghi");
        assert_eq!(
            got.locations,
            vec![TokenLocation::Header("authorization".into())]
        );
    }

    #[test]
    fn scheme_is_case_insensitive_and_other_schemes_are_ignored() {
        let got = extract(&bearer(), &h(&[("authorization", "bearer  t.t.t ")]), "").unwrap();
        assert_eq!(got.unwrap().token, "t.t.t");
        assert_eq!(
            extract(
                &bearer(),
                &h(&[("authorization", "Basic dXNlcjpwdw==")]),
                ""
            )
            .unwrap(),
            None
        );
        assert_eq!(
            extract(&bearer(), &h(&[("authorization", "Bearer ")]), "").unwrap(),
            None
        );
        assert_eq!(extract(&bearer(), &h(&[]), "").unwrap(), None);
    }

    #[test]
    fn header_without_prefix_takes_whole_value() {
        let s = vec![TokenSource::Header {
            name: "x-token".into(),
            prefix: String::new(),
        }];
        let got = extract(&s, &h(&[("x-token", "a.b.c")]), "")
            .unwrap()
            .unwrap();
        assert_eq!(got.token, "a.b.c");
    }

    #[test]
    fn finds_token_in_query_param_and_cookie() {
        let s = vec![
            TokenSource::Param("access_token".into()),
            TokenSource::Cookie("session".into()),
        ];
        let got = extract(&s, &[], "x=1&access_token=a.b%2Ec&y")
            .unwrap()
            .unwrap();
        assert_eq!(got.token, "a.b.c");
        assert_eq!(
            got.locations,
            vec![TokenLocation::Param("access_token".into())]
        );
        let got = extract(&s, &h(&[("cookie", "theme=dark; session=\"c.d.e\"")]), "")
            .unwrap()
            .unwrap();
        assert_eq!(got.token, "c.d.e");
        assert_eq!(got.locations, vec![TokenLocation::Cookie("session".into())]);
    }

    #[test]
    fn same_token_in_two_places_is_reported_twice() {
        let mut s = bearer();
        s.push(TokenSource::Param("access_token".into()));
        let got = extract(
            &s,
            &h(&[("authorization", "Bearer t.t.t")]),
            "access_token=t.t.t",
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.locations.len(), 2);
    }

    #[test]
    fn rejects_two_different_tokens() {
        let mut s = bearer();
        s.push(TokenSource::Param("access_token".into()));
        assert_eq!(
            extract(
                &s,
                &h(&[("authorization", "Bearer a.a.a")]),
                "access_token=b.b.b"
            ),
            Err(ExtractError::Ambiguous)
        );
        assert_eq!(
            extract(
                &bearer(),
                &h(&[
                    ("authorization", "Bearer a.a.a"),
                    ("authorization", "Bearer b.b.b")
                ]),
                ""
            ),
            Err(ExtractError::Ambiguous)
        );
    }

    #[test]
    fn cookie_spellings_a_framework_reads_as_the_same_cookie_are_one_cookie() {
        let s = vec![TokenSource::Cookie("session".into())];
        for header in [
            "%73ession=a.a.a; session=b.b.b",
            "SESSION=a.a.a; session=b.b.b",
            "x=1, session=a.a.a; session=b.b.b",
        ] {
            assert_eq!(
                extract(&s, &h(&[("cookie", header)]), ""),
                Err(ExtractError::Ambiguous),
                "{header}"
            );
        }
        let got = extract(&s, &h(&[("cookie", "Session=t.t.t; x=1")]), "").unwrap();
        assert_eq!(got.unwrap().token, "t.t.t");
        assert_eq!(
            strip_cookies("%73ession=t.t.t; x=1; SESSION=u", &["session"]),
            Some("x=1".to_string())
        );
        assert_eq!(
            strip_cookies("session=t; prefs={\"a\":1,\"b\":2}", &["session"]),
            Some("prefs={\"a\":1,\"b\":2}".to_string())
        );
    }

    #[test]
    fn strips_params_and_cookies() {
        assert_eq!(
            strip_query_params("/p?a=1&access_token=x&b=2", &["access_token"]),
            "/p?a=1&b=2"
        );
        assert_eq!(
            strip_query_params("/p?access_token=x", &["access_token"]),
            "/p"
        );
        assert_eq!(strip_query_params("/p", &["access_token"]), "/p");
        assert_eq!(
            strip_cookies("a=1; session=x;b=2", &["session"]),
            Some("a=1; b=2".to_string())
        );
        assert_eq!(strip_cookies("session=x", &["session"]), None);
    }

    #[test]
    fn odd_input_does_not_panic() {
        let s = vec![
            TokenSource::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            TokenSource::Param("t".into()),
            TokenSource::Cookie("c".into()),
        ];
        let hs = h(&[
            ("authorization", "Beé"),
            ("cookie", ";;=;c"),
            ("cookie", "c="),
        ]);
        for q in ["%", "t=%", "t=%zz", "t=%e9", "&&=&", "t"] {
            let _ = extract(&s, &hs, q);
        }
        assert_eq!(decode_lenient("%e9"), "%e9");
        assert_eq!(decode_lenient("a%2"), "a%2");
    }

    #[test]
    fn merged_authorization_with_the_same_token_twice_is_one_token() {
        // Envoy joins two `authorization` headers into one value with a comma.
        for merged in ["Bearer a.a.a,Bearer a.a.a", "Bearer a.a.a, Bearer a.a.a"] {
            let got = extract(&bearer(), &h(&[("authorization", merged)]), "")
                .unwrap()
                .unwrap();
            assert_eq!(got.token, "a.a.a", "{merged}");
        }
        assert_eq!(
            extract(
                &bearer(),
                &h(&[("authorization", "Bearer a.a.a,Bearer b.b.b")]),
                ""
            ),
            Err(ExtractError::Ambiguous)
        );
    }
}
