//! Request-path normalisation: the one view of the path that every route rule is matched on.
//!
//! What is normalised: `;` path parameters are cut from every segment (`/admin;x` is `/admin`,
//! `/public/..;/admin` is `/admin`), as Tomcat, Jetty and Spring do before they route;
//! percent-encoded unreserved characters are decoded (`%7Euser` -> `~user`, `%2e` -> `.`), and
//! so are escapes that spell UTF-8 (`/caf%C3%A9` is `/café`); other escapes are kept with
//! upper-case hex; empty segments (`//`) and `.` segments are dropped, `..` removes the previous
//! segment (never above the root). [`NormalPath::semicolon`] says whether the path had a `;`
//! (raw, or encoded as `%3B`): the caller refuses it unless the matched route accepts them.
//! What is refused (`path_invalid`): an encoded `/` or `\` (`%2F`, `%5C`), a malformed escape, a
//! raw backslash, control bytes, a fragment, a path not starting with `/`. A trailing `/` is
//! kept in the normal path; [`equivalent_spellings`] gives the other spellings routes are also
//! matched on (no trailing `/`, no format suffix). Letter case is kept (routes fold it when they
//! match). The request sent upstream is unchanged.

use crate::http::percent::{escape_at, push_escaped};

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` or `%5C`: an encoded separator would let the path mean two things.
    EncodedSeparator,
    /// A raw backslash, control byte, or a `#` fragment.
    ForbiddenByte,
    /// The path is longer than [`MAX_PATH_BYTES`].
    TooLong,
}

impl PathError {
    /// Client-safe description.
    pub fn describe(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path must start with '/'",
            PathError::BadEscape => "malformed percent-escape in path",
            PathError::EncodedSeparator => "encoded '/' or '\\' in path",
            PathError::ForbiddenByte => "forbidden character in path",
            PathError::TooLong => "path too long",
        }
    }
}

/// Longest format suffix taken for one (`.json`, `.xml`, `.csv`, ...).
const MAX_FORMAT_SUFFIX: usize = 10;

/// Other spellings of a normal path that common frameworks dispatch to the same handler, for
/// routes to be matched on as well (the request keeps its own path): without one trailing `/`
/// (Express without strict routing, Spring before 6, ASP.NET Core, Rails: `/reports/` is
/// `/reports`), and without a format suffix on the last segment (Rails, Spring's suffix
/// matching: `/reports.json` is `/reports` answering JSON). A suffix is a `.` followed by 1-10
/// ASCII letters or digits, after a segment that does not start with `.`.
pub fn equivalent_spellings(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let base = match path.strip_suffix('/') {
        Some(b) if !b.is_empty() => {
            out.push(b.to_string());
            b
        }
        _ => path,
    };
    let last = base.rsplit('/').next().unwrap_or("");
    if let Some((stem, ext)) = last.rsplit_once('.') {
        let is_format = !stem.is_empty()
            && !stem.starts_with('.')
            && (1..=MAX_FORMAT_SUFFIX).contains(&ext.len())
            && ext.bytes().all(|b| b.is_ascii_alphanumeric());
        if is_format {
            let cut = base.len().saturating_sub(ext.len() + 1);
            if let Some(trimmed) = base.get(..cut) {
                out.push(trimmed.to_string());
            }
        }
    }
    out
}

/// Longest `:path` meshguard accepts (Envoy's default header limit is 60 KiB).
pub const MAX_PATH_BYTES: usize = 16 * 1024;

/// A normalised path with its query, split once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// The normalised path, always starting with `/`.
    pub path: String,
    /// The raw query string (after `?`, without it), untouched.
    pub query: String,
    /// The raw path had a `;` path parameter (or an encoded `%3B`).
    pub semicolon: bool,
}

impl NormalPath {
    /// The path's segments (no empty segments, except none for `/`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes unreserved escapes and upper-cases the others; refuses what cannot be made safe.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let Some(decoded) = escape_at(bytes, i) else {
                    return Err(PathError::BadEscape);
                };
                if decoded == b'/' || decoded == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if decoded < 0x20 || decoded == 0x7f {
                    return Err(PathError::ForbiddenByte);
                }
                if decoded >= 0x80 {
                    i = decode_utf8_run(bytes, i, &mut out);
                    continue;
                }
                if is_unreserved(decoded) {
                    out.push(char::from(decoded));
                } else {
                    push_escaped(&mut out, decoded);
                }
                i += 3;
            }
            b'\\' | b'#' => return Err(PathError::ForbiddenByte),
            b if b < 0x20 || b == 0x7f => return Err(PathError::ForbiddenByte),
            _ => {
                // Multi-byte UTF-8 is copied through whole: find the char at this boundary.
                let rest = path.get(i..).unwrap_or("");
                let Some(c) = rest.chars().next() else { break };
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(out)
}

/// Decodes the run of `%XX` escapes (bytes 0x80 and above) that starts at `start`: whole UTF-8
/// characters become text, anything else stays escaped with upper-case hex. Returns the
/// position after the run.
fn decode_utf8_run(bytes: &[u8], start: usize, out: &mut String) -> usize {
    let mut run = Vec::new();
    let mut i = start;
    while let Some(b) = escape_at(bytes, i).filter(|b| *b >= 0x80) {
        run.push(b);
        i += 3;
    }
    let mut rest: &[u8] = &run;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(text);
                rest = &[];
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or(""));
                let n = e.error_len().unwrap_or(bad.len()).min(bad.len());
                let (invalid, tail) = bad.split_at(n);
                for &b in invalid {
                    push_escaped(out, b);
                }
                rest = tail;
            }
        }
    }
    i
}

/// Cuts the `;` parameters off every segment of a raw path; true when there was one.
fn strip_semicolon_params(path: &str) -> (std::borrow::Cow<'_, str>, bool) {
    if !path.contains(';') {
        return (std::borrow::Cow::Borrowed(path), false);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg.split_once(';').map_or(seg, |(keep, _)| keep));
    }
    (std::borrow::Cow::Owned(out), true)
}

/// Normalises a raw `:path` (which may carry a query) for route matching.
pub fn normalize(raw: &str) -> Result<NormalPath, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, q),
        None => (raw, ""),
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if query.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'#') {
        return Err(PathError::ForbiddenByte);
    }
    let (stripped, mut semicolon) = strip_semicolon_params(path);
    if semicolon {
        // What was cut must still be a valid path: no smuggled escapes or control bytes.
        decode_unreserved(path)?;
    }
    let decoded = decode_unreserved(&stripped)?;
    semicolon |= decoded.contains("%3B");
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/') {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                stack.pop();
                trailing = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(NormalPath {
        path: out,
        query: query.to_string(),
        semicolon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_spellings_drop_one_trailing_slash_and_a_format_suffix() {
        let e = |p: &str| equivalent_spellings(p);
        assert!(e("/reports").is_empty());
        assert!(e("/").is_empty());
        assert_eq!(e("/reports/"), vec!["/reports"]);
        assert_eq!(e("/reports.json"), vec!["/reports"]);
        assert_eq!(e("/reports.JSON/"), vec!["/reports.JSON", "/reports"]);
        assert_eq!(e("/a/b.c/d.xml"), vec!["/a/b.c/d"]);
        // Not formats: a dot file, a suffix too long or not alphanumeric, an empty stem.
        assert!(e("/a/.env").is_empty());
        assert!(e("/a/b.abcdefghijk").is_empty());
        assert!(e("/a/b.j-s").is_empty());
        assert!(e("/a/b.").is_empty());
        assert!(e("/v1.2/items").is_empty());
    }

    fn n(p: &str) -> String {
        normalize(p)
            .map(|n| n.path)
            .unwrap_or_else(|e| format!("ERR {e:?}"))
    }

    #[test]
    fn dot_segments_cannot_dodge_a_route() {
        assert_eq!(n("/admin/../users/1"), "/users/1");
        assert_eq!(n("/public/../admin"), "/admin");
        assert_eq!(n("/a/./b"), "/a/b");
        assert_eq!(n("/../../etc"), "/etc");
        assert_eq!(n("/a/%2e%2e/b"), "/b");
        assert_eq!(n("/a/%2E/b"), "/a/b");
    }

    #[test]
    fn merges_slashes_and_keeps_trailing_slash() {
        assert_eq!(n("//users///1"), "/users/1");
        assert_eq!(n("/users/1/"), "/users/1/");
        assert_eq!(n("/"), "/");
        assert_eq!(n("/a/.."), "/");
        assert_eq!(n("/a/b/.."), "/a/");
    }

    #[test]
    fn decodes_only_unreserved_escapes() {
        assert_eq!(n("/%7Euser/%41"), "/~user/A");
        assert_eq!(n("/a%20b/%3f"), "/a%20b/%3F");
    }

    #[test]
    fn refuses_ambiguous_paths() {
        assert_eq!(normalize("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a\\b"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/a%00"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("users"), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/a#frag"), Err(PathError::ForbiddenByte));
    }

    #[test]
    fn splits_query_untouched() {
        let p = normalize("/a/../b?x=1&y=%2F").unwrap_or_else(|_| NormalPath {
            path: String::new(),
            query: String::new(),
            semicolon: false,
        });
        assert_eq!(p.path, "/b");
        assert_eq!(p.query, "x=1&y=%2F");
    }

    #[test]
    fn keeps_utf8_and_decodes_params() {
        assert_eq!(n("/caf\u{e9}"), "/caf\u{e9}");
    }

    #[test]
    fn semicolon_parameters_are_cut_as_servlet_containers_do() {
        assert_eq!(n("/admin;x"), "/admin");
        assert_eq!(n("/admin;/x"), "/admin/x");
        assert_eq!(n("/public/..;/admin"), "/admin");
        assert_eq!(n("/a;p=1/b;q=2"), "/a/b");
        assert_eq!(n("/users/bob;jsessionid=1"), "/users/bob");
        let flag = |p: &str| normalize(p).map(|n| n.semicolon).unwrap_or(false);
        assert!(flag("/admin;x"));
        assert!(flag("/admin%3bx"));
        assert!(!flag("/admin?x=a;b"));
        assert!(!flag("/admin"));
        // What is cut is still checked.
        assert_eq!(normalize("/a;%2F"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a;%zz"), Err(PathError::BadEscape));
    }

    #[test]
    fn escapes_that_spell_utf8_are_decoded() {
        assert_eq!(n("/caf%C3%A9"), "/caf\u{e9}");
        assert_eq!(n("/caf%c3%a9/x"), "/caf\u{e9}/x");
        assert_eq!(n("/a%FFb"), "/a%FFb");
        assert_eq!(n("/a%C3"), "/a%C3");
        assert_eq!(n("/%C3%A9%FF%C3%A9"), "/\u{e9}%FF\u{e9}");
    }
}
