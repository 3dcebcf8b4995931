//! Header names: the RFC 9110 token rule for names a config gives, the request headers no
//! config may set, and the `_`/`-` folding lenient upstreams apply when they read a name.
//!
//! Names are compared in ASCII lower case everywhere (Envoy lower-cases them, HTTP/2 requires
//! it). What a caller adds on top (pseudo-headers allowed, upper case refused, its own reserved
//! names) stays with the caller; the character rule and the length bound are this module's.

/// Longest header name a config may give, in bytes (real names are far shorter; a bound keeps
/// per-request comparisons and log lines small).
pub const MAX_NAME_BYTES: usize = 128;

/// Why a configured header name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// A byte outside the RFC 9110 token characters.
    NotToken,
    /// An upper-case letter where the name must be written in lower case.
    NotLowerCase,
}

impl NameError {
    /// What is wrong, for a config error line (the caller names the JSON path).
    pub fn describe(self) -> String {
        match self {
            NameError::Empty | NameError::TooLong => {
                format!("must be a header name of 1 to {MAX_NAME_BYTES} bytes")
            }
            NameError::NotToken => {
                "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)".to_string()
            }
            NameError::NotLowerCase => "must be lowercase".to_string(),
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`: letters, digits and ``!#$%&'*+-.^_`|~``.
pub const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// True when `s` is an RFC 9110 token: one or more [`is_tchar`] bytes (also the rule for
/// cookie names, RFC 6265).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Checks a header name a config gives: a token of 1 to [`MAX_NAME_BYTES`] bytes.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.len() > MAX_NAME_BYTES {
        Err(NameError::TooLong)
    } else if !is_token(name) {
        Err(NameError::NotToken)
    } else {
        Ok(())
    }
}

/// [`check`], and the name must already be lower case (where a config names a header exactly as
/// it is sent).
pub fn check_lower(name: &str) -> Result<(), NameError> {
    check(name)?;
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(NameError::NotLowerCase);
    }
    Ok(())
}

/// A configured header name, [`check`]ed and lower-cased.
pub fn lower(name: &str) -> Result<String, NameError> {
    check(name).map(|()| name.to_ascii_lowercase())
}

/// Request headers no config may set, copy a value into or forward an identity in: they frame,
/// route or authenticate the request. Every `x-envoy-` name is Envoy's too (see
/// [`is_reserved`]).
pub const RESERVED: [&str; 12] = [
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
];

/// True for a lower-case name in [`RESERVED`] or starting with `x-envoy-`.
pub fn is_reserved(lower_name: &str) -> bool {
    RESERVED.contains(&lower_name) || lower_name.starts_with("x-envoy-")
}

/// A header name as the most lenient upstream reads it: ASCII lower case, `_` as `-` (WSGI,
/// Rack, PHP and CGI fold both into one environment variable).
pub fn fold(name: &[u8]) -> Vec<u8> {
    name.iter().map(|&b| fold_byte(b)).collect()
}

/// True when `a` and `b` are the same name once [`fold`]ed (no allocation).
pub fn same_folded(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold_byte(x) == fold_byte(y))
}

fn fold_byte(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_rfc_9110_tchars() {
        for ok in ["x-api-key", "X_Trace", "a+b", "!#$%&'*+-.^_`|~09az"] {
            assert!(is_token(ok), "{ok}");
        }
        for bad in [
            "",
            "x y",
            "x:y",
            ":path",
            "x\"y",
            "x(y",
            "caf\u{e9}",
            "x/y",
            "x\ty",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn configured_names_are_bounded_tokens_in_lower_case() {
        assert_eq!(lower("X-Api-Key"), Ok("x-api-key".to_string()));
        assert_eq!(lower(""), Err(NameError::Empty));
        assert_eq!(lower("x y"), Err(NameError::NotToken));
        assert_eq!(check_lower("x-api-key"), Ok(()));
        assert_eq!(check_lower("X-Api-Key"), Err(NameError::NotLowerCase));
        assert_eq!(check_lower(":status"), Err(NameError::NotToken));
        assert_eq!(check(&"a".repeat(MAX_NAME_BYTES)), Ok(()));
        assert_eq!(
            check(&"a".repeat(MAX_NAME_BYTES + 1)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn reserved_names_include_envoys_own() {
        assert!(is_reserved("authorization"));
        assert!(is_reserved("x-envoy-original-path"));
        assert!(!is_reserved("x-user"));
    }

    #[test]
    fn underscores_fold_to_dashes() {
        assert_eq!(fold(b"X_User"), b"x-user".to_vec());
        assert_eq!(fold(b"x-user"), b"x-user".to_vec());
        assert!(same_folded(b"X_API-key", b"x-api_KEY"));
        assert!(!same_folded(b"x-user", b"x-users"));
        assert!(!same_folded(b"x.user", b"x-user"));
    }
}
