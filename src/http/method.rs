//! Request methods: which spellings meshguard accepts, in routes and in requests. Methods are
//! case-sensitive (RFC 9110 §9.1), but some frameworks compare them case-insensitively (ASP.NET
//! Core) and others not (Go, Tomcat), so only upper case passes: a `get` could otherwise skip
//! a GET-only route.

/// Longest method accepted, in bytes.
pub const MAX_METHOD_BYTES: usize = 32;

/// True for 1 to [`MAX_METHOD_BYTES`] upper-case letters, `-` or `_`, as routes are written
/// (`GET`, `PROPFIND`, `VERSION-CONTROL`).
pub fn is_method(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= MAX_METHOD_BYTES
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_upper_case_methods_pass() {
        for ok in ["GET", "PROPFIND", "M-SEARCH", "X_Y"] {
            assert!(is_method(ok), "{ok}");
        }
        for bad in [
            "",
            "get",
            "Get",
            "GET ",
            "G1",
            &"A".repeat(MAX_METHOD_BYTES + 1),
        ] {
            assert!(!is_method(bad), "{bad:?}");
        }
    }
}
