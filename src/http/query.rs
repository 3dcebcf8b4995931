//! Query strings: how `a=1&b=x+y&a=%C3%A9` splits into parameters. Pieces split on `&`, empty
//! pieces are skipped, a piece without `=` is a name with the empty value, order and repeats are
//! kept. Names and values decode as forms do (`+` is a space, see [`super::percent`]).

use super::percent::{decode, Plus};

/// Most parameters one query may carry; a query with more is not read.
pub const MAX_PARAMS: usize = 256;

/// Why a query string could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8 once decoded.
    BadEncoding,
    /// More than [`MAX_PARAMS`] parameters.
    TooMany,
}

/// The raw (undecoded) name/value pairs of a query string, without the `?`.
pub fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Decodes one `application/x-www-form-urlencoded` component (query or form body: `+` is a
/// space); `None` when an escape is malformed or the result is not UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    decode(s, Plus::Space).map(|c| c.into_owned())
}

/// A decoded parameter name as the most lenient framework reads it, to compare names: ASCII
/// lower case (ASP.NET Core binds query and form names in any case), leading spaces dropped and
/// `.`, ` ` and `[` read as `_` (PHP's `$_GET` and `$_POST` names). `user.id`, ` USER_ID` and
/// `user[id` are all `user_id`.
pub fn fold_name(name: &str) -> String {
    name.trim_start_matches(' ')
        .chars()
        .map(|c| match c {
            '.' | ' ' | '[' => '_',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// The query's parameters in request order, names and values decoded, repeats kept.
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut out = Vec::new();
    for (name, value) in raw_pairs(query) {
        if out.len() >= MAX_PARAMS {
            return Err(QueryError::TooMany);
        }
        let name = form_decode(name).ok_or(QueryError::BadEncoding)?;
        let value = form_decode(value).ok_or(QueryError::BadEncoding)?;
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_fold_as_the_most_lenient_framework_reads_them() {
        for n in [
            "user_id", "USER_ID", "user.id", "user id", " user_id", "User[id",
        ] {
            assert_eq!(fold_name(n), "user_id", "{n}");
        }
        assert_ne!(fold_name("user-id"), "user_id");
        assert_eq!(fold_name("_METHOD"), "_method");
    }

    #[test]
    fn decodes_pairs_in_order_with_repeats() {
        assert_eq!(
            pairs("a=1&b=x+y&a=%C3%A9&flag&&x="),
            Ok(s(&[
                ("a", "1"),
                ("b", "x y"),
                ("a", "\u{e9}"),
                ("flag", ""),
                ("x", "")
            ]))
        );
        assert_eq!(pairs("a%3Db=c%26d"), Ok(s(&[("a=b", "c&d")])));
        assert_eq!(pairs(""), Ok(vec![]));
        assert_eq!(pairs("a=%zz"), Err(QueryError::BadEncoding));
        assert_eq!(pairs("a=%FF"), Err(QueryError::BadEncoding));
        assert_eq!(pairs("%=1"), Err(QueryError::BadEncoding));
    }

    #[test]
    fn raw_pairs_split_without_decoding() {
        let got: Vec<_> = raw_pairs("t=a%2Eb&&x&y=1=2").collect();
        assert_eq!(got, vec![("t", "a%2Eb"), ("x", ""), ("y", "1=2")]);
    }

    #[test]
    fn a_query_with_too_many_parameters_is_not_read() {
        let ok = vec!["a=1"; MAX_PARAMS].join("&");
        assert_eq!(pairs(&ok).map(|p| p.len()), Ok(MAX_PARAMS));
        let over = vec!["a=1"; MAX_PARAMS + 1].join("&");
        assert_eq!(pairs(&over), Err(QueryError::TooMany));
    }
}
