//! SPIFFE IDs and trust domains as validated values.
//!
//! Decides whether a string is a SPIFFE ID per the SPIFFE-ID standard (scheme `spiffe`, trust
//! domain of `[a-z0-9._-]`, path segments of `[a-zA-Z0-9._-]`, no empty, `.` or `..` segment, no
//! trailing slash, no port, userinfo, query, fragment or percent-encoding, at most 2048 bytes).
//! It never normalises: no lowercasing, trimming, percent-decoding or dot-segment resolution, so two
//! valid IDs are the same identity exactly when their strings are equal. It never looks at
//! certificates; the peer module decides where the ID comes from.

use std::fmt;
use std::str::FromStr;

/// The only accepted scheme prefix. SPIFFE-ID 2.4 calls the scheme case-insensitive, but SPIFFE
/// implementations (go-spiffe) and X.509-SVIDs use lowercase only; accepting `SPIFFE://` would
/// give one identity two spellings, so we follow go-spiffe.
const SCHEME_PREFIX: &str = "spiffe://";

/// Longest SPIFFE ID accepted, in bytes (SPIFFE-ID 2.3: implementations MUST support 2048 and
/// IDs longer SHOULD NOT be generated; we refuse them to bound work on untrusted input).
pub const MAX_ID_BYTES: usize = 2048;

/// Longest trust domain accepted, in bytes (the RFC 3986 host limit SPIFFE-ID 2.3 cites).
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// Why a string is not a SPIFFE ID (or not a trust domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiffeIdError {
    /// The input is empty.
    Empty,
    /// The input does not start with exactly `spiffe://`.
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    MissingTrustDomain,
    /// The authority has userinfo (`user@`), which SPIFFE forbids.
    HasUserInfo,
    /// The authority has a port (`:8443`), which SPIFFE forbids.
    HasPort,
    /// A trust domain byte outside `[a-z0-9._-]` (uppercase, `%`, `[`, non-ASCII...), at this byte
    /// offset of the input.
    BadTrustDomainChar {
        /// Byte offset in the input.
        at: usize,
    },
    /// The path has a query (`?`).
    HasQuery,
    /// The path has a fragment (`#`).
    HasFragment,
    /// A path byte outside `[a-zA-Z0-9._-]` and `/` (`%`, space, `*`, non-ASCII...), at this byte
    /// offset of the input.
    BadPathSegmentChar {
        /// Byte offset in the input.
        at: usize,
    },
    /// The path has an empty segment (`//`).
    EmptySegment,
    /// The path has a `.` or `..` segment.
    DotSegment,
    /// The path ends with `/`.
    TrailingSlash,
    /// The input is longer than [`MAX_ID_BYTES`].
    TooLong,
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_BYTES`].
    TrustDomainTooLong,
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeIdError::Empty => f.write_str("SPIFFE ID cannot be empty"),
            SpiffeIdError::WrongScheme => {
                f.write_str("scheme is missing or invalid (must start with \"spiffe://\")")
            }
            SpiffeIdError::MissingTrustDomain => f.write_str("trust domain is missing"),
            SpiffeIdError::HasUserInfo => f.write_str("trust domain cannot have userinfo"),
            SpiffeIdError::HasPort => f.write_str("trust domain cannot have a port"),
            SpiffeIdError::BadTrustDomainChar { at } => write!(
                f,
                "trust domain characters are limited to lowercase letters, numbers, dots, \
                 dashes, and underscores (byte {at})"
            ),
            SpiffeIdError::HasQuery => f.write_str("SPIFFE ID cannot have a query"),
            SpiffeIdError::HasFragment => f.write_str("SPIFFE ID cannot have a fragment"),
            SpiffeIdError::BadPathSegmentChar { at } => write!(
                f,
                "path segment characters are limited to letters, numbers, dots, dashes, and \
                 underscores (byte {at})"
            ),
            SpiffeIdError::EmptySegment => f.write_str("path cannot contain empty segments"),
            SpiffeIdError::DotSegment => f.write_str("path cannot contain dot segments"),
            SpiffeIdError::TrailingSlash => f.write_str("path cannot have a trailing slash"),
            SpiffeIdError::TooLong => write!(f, "SPIFFE ID is longer than {MAX_ID_BYTES} bytes"),
            SpiffeIdError::TrustDomainTooLong => write!(
                f,
                "trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes"
            ),
        }
    }
}

impl std::error::Error for SpiffeIdError {}

/// A trust domain name such as `example.org`: non-empty, `[a-z0-9._-]`, at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// Parses a trust domain given by name (`example.org`) or by any SPIFFE ID in it
    /// (`spiffe://example.org` or `spiffe://example.org/path`), as go-spiffe's
    /// `TrustDomainFromString` does: input containing `:/` is parsed as a SPIFFE ID.
    pub fn parse(name_or_id: &str) -> Result<Self, SpiffeIdError> {
        if name_or_id.contains(":/") {
            return SpiffeId::parse(name_or_id).map(|id| id.trust_domain().clone());
        }
        let bytes = name_or_id.as_bytes();
        validate_trust_domain(bytes, 0)?;
        Ok(Self {
            name: ascii_string(bytes),
        })
    }

    /// The name, e.g. `example.org`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<name>`.
    pub fn id_string(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.name)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A valid SPIFFE ID such as `spiffe://example.org/ns/shop/sa/frontend`.
///
/// Equality is exact string equality, which is identity equality for valid IDs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID as given (already proven ASCII and canonical).
    id: String,
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// Parses a SPIFFE ID from text.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        Self::from_bytes(input.as_bytes())
    }

    /// Parses a SPIFFE ID from raw bytes, e.g. a URI SAN as the host hands it over. Every valid
    /// ID is ASCII, so non-UTF-8 input is simply invalid.
    pub fn from_bytes(input: &[u8]) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if input.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = input
            .strip_prefix(SCHEME_PREFIX.as_bytes())
            .ok_or(SpiffeIdError::WrongScheme)?;
        let offset = SCHEME_PREFIX.len();
        let td_len = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        validate_trust_domain(td, offset)?;
        validate_path(path, offset.saturating_add(td_len))?;
        Ok(Self {
            id: ascii_string(input),
            trust_domain: TrustDomain {
                name: ascii_string(td),
            },
        })
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path: empty for a trust domain's own ID, otherwise starting with `/`.
    pub fn path(&self) -> &str {
        self.id
            .get(
                SCHEME_PREFIX
                    .len()
                    .saturating_add(self.trust_domain.name.len())..,
            )
            .unwrap_or_default()
    }

    /// True when the ID has no path (`spiffe://example.org`): it names the trust domain itself,
    /// and X.509-SVID forbids it in a leaf certificate.
    pub fn is_trust_domain_id(&self) -> bool {
        self.path().is_empty()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn is_trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn is_path_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Checks an authority: `offset` is where it starts in the caller's input, for error positions.
fn validate_trust_domain(td: &[u8], offset: usize) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    // Name the URI parts SPIFFE forbids before the generic character error: the operator reading
    // "has a port" fixes the config faster than "bad character at byte 20".
    if td.contains(&b'@') {
        return Err(SpiffeIdError::HasUserInfo);
    }
    if let Some(i) = td.iter().position(|&b| !is_trust_domain_byte(b)) {
        if td.get(i) == Some(&b':') && td.iter().skip(i).all(|&b| b == b':' || b.is_ascii_digit()) {
            return Err(SpiffeIdError::HasPort);
        }
        return Err(SpiffeIdError::BadTrustDomainChar {
            at: offset.saturating_add(i),
        });
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    Ok(())
}

/// Checks a path (empty, or starting with `/`): `offset` is where it starts in the input.
fn validate_path(path: &[u8], offset: usize) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    if let Some(i) = path.iter().position(|&b| b == b'?' || b == b'#') {
        // Only a query or fragment if it comes before any other bad byte; else report that byte.
        let first_bad = path
            .iter()
            .position(|&b| b != b'/' && !is_path_segment_byte(b));
        if first_bad == Some(i) {
            return Err(if path.get(i) == Some(&b'?') {
                SpiffeIdError::HasQuery
            } else {
                SpiffeIdError::HasFragment
            });
        }
    }
    // The path starts with '/', so the first split piece is the empty string before it.
    let mut segment_start = offset.saturating_add(1);
    for segment in path.split(|&b| b == b'/').skip(1) {
        if segment.is_empty() {
            // An empty last segment means the path ends with '/'.
            let is_last = segment_start == offset.saturating_add(path.len());
            return Err(if is_last {
                SpiffeIdError::TrailingSlash
            } else {
                SpiffeIdError::EmptySegment
            });
        }
        if let Some(i) = segment.iter().position(|&b| !is_path_segment_byte(b)) {
            return Err(SpiffeIdError::BadPathSegmentChar {
                at: segment_start.saturating_add(i),
            });
        }
        if segment == b"." || segment == b".." {
            return Err(SpiffeIdError::DotSegment);
        }
        segment_start = segment_start
            .saturating_add(segment.len())
            .saturating_add(1);
    }
    Ok(())
}

/// Bytes already proven ASCII to a `String`; the lossy conversion never replaces anything here.
fn ascii_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_ids_into_parts() {
        let cases = [
            ("spiffe://example.org", "example.org", ""),
            (
                "spiffe://example.org/ns/shop/sa/frontend",
                "example.org",
                "/ns/shop/sa/frontend",
            ),
            ("spiffe://a/b", "a", "/b"),
            ("spiffe://td/.x/..y/...", "td", "/.x/..y/..."),
            (
                "spiffe://td/Path/UPPER_case-1.2",
                "td",
                "/Path/UPPER_case-1.2",
            ),
        ];
        for (input, td, path) in cases {
            let id = SpiffeId::parse(input).unwrap();
            assert_eq!(id.as_str(), input);
            assert_eq!(id.trust_domain().name(), td, "{input}");
            assert_eq!(id.path(), path, "{input}");
            assert_eq!(id.to_string(), input);
            assert_eq!(id.is_trust_domain_id(), path.is_empty());
        }
    }

    #[test]
    fn rejects_invalid_ids_with_typed_errors() {
        use SpiffeIdError::*;
        let cases: &[(&str, SpiffeIdError)] = &[
            ("", Empty),
            ("spiffe:/td/x", WrongScheme),
            ("SPIFFE://td/x", WrongScheme),
            ("Spiffe://td", WrongScheme),
            (" spiffe://td/x", WrongScheme),
            ("https://td/x", WrongScheme),
            ("spiffe://", MissingTrustDomain),
            ("spiffe:///x", MissingTrustDomain),
            ("spiffe://user@td/x", HasUserInfo),
            ("spiffe://user:pw@td/x", HasUserInfo),
            ("spiffe://td:8443/x", HasPort),
            ("spiffe://td:/x", HasPort),
            ("spiffe://Td/x", BadTrustDomainChar { at: 9 }),
            ("spiffe://t%64/x", BadTrustDomainChar { at: 10 }),
            ("spiffe://[::1]/x", BadTrustDomainChar { at: 9 }),
            ("spiffe://td:x/x", BadTrustDomainChar { at: 11 }),
            ("spiffe://td?q", BadTrustDomainChar { at: 11 }),
            ("spiffe://td/x?q=1", HasQuery),
            ("spiffe://td/x#f", HasFragment),
            ("spiffe://td/x%20y?q", BadPathSegmentChar { at: 13 }),
            ("spiffe://td/a/b*", BadPathSegmentChar { at: 15 }),
            ("spiffe://td/p\u{e4}th", BadPathSegmentChar { at: 13 }),
            ("spiffe://td/", TrailingSlash),
            ("spiffe://td/x/", TrailingSlash),
            ("spiffe://td//", EmptySegment),
            ("spiffe://td//x", EmptySegment),
            ("spiffe://td/x//y", EmptySegment),
            ("spiffe://td/.", DotSegment),
            ("spiffe://td/x/../y", DotSegment),
            ("spiffe://td/..", DotSegment),
        ];
        for (input, want) in cases {
            assert_eq!(SpiffeId::parse(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn enforces_length_limits() {
        let at_limit = format!("spiffe://td/{}", "a".repeat(MAX_ID_BYTES - 12));
        assert_eq!(at_limit.len(), MAX_ID_BYTES);
        assert!(SpiffeId::parse(&at_limit).is_ok());
        let over = format!("{at_limit}a");
        assert_eq!(SpiffeId::parse(&over), Err(SpiffeIdError::TooLong));
        let td_max = format!("spiffe://{}/x", "a".repeat(MAX_TRUST_DOMAIN_BYTES));
        assert!(SpiffeId::parse(&td_max).is_ok());
        let td_over = format!("spiffe://{}/x", "a".repeat(MAX_TRUST_DOMAIN_BYTES + 1));
        assert_eq!(
            SpiffeId::parse(&td_over),
            Err(SpiffeIdError::TrustDomainTooLong)
        );
    }

    #[test]
    fn non_utf8_bytes_are_invalid_not_a_panic() {
        assert_eq!(
            SpiffeId::from_bytes(b"spiffe://td/\xff\xfe"),
            Err(SpiffeIdError::BadPathSegmentChar { at: 12 })
        );
        assert_eq!(
            SpiffeId::from_bytes(b"spiffe://t\xc3\xa9/x"),
            Err(SpiffeIdError::BadTrustDomainChar { at: 10 })
        );
    }

    #[test]
    fn trust_domain_parses_name_or_id() {
        assert_eq!(
            TrustDomain::parse("example.org").unwrap().name(),
            "example.org"
        );
        assert_eq!(
            TrustDomain::parse("spiffe://example.org/ns/x")
                .unwrap()
                .name(),
            "example.org"
        );
        assert_eq!(
            TrustDomain::parse("example.org").unwrap().id_string(),
            "spiffe://example.org"
        );
        assert_eq!(
            TrustDomain::parse(""),
            Err(SpiffeIdError::MissingTrustDomain)
        );
        assert_eq!(
            TrustDomain::parse("Example.org"),
            Err(SpiffeIdError::BadTrustDomainChar { at: 0 })
        );
        assert_eq!(
            TrustDomain::parse("spiffe:/example.org"),
            Err(SpiffeIdError::WrongScheme)
        );
    }

    #[test]
    fn error_messages_name_the_rule() {
        assert_eq!(
            SpiffeIdError::DotSegment.to_string(),
            "path cannot contain dot segments"
        );
        assert!(SpiffeIdError::BadTrustDomainChar { at: 3 }
            .to_string()
            .contains("byte 3"));
    }
}
