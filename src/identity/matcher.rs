//! Peer patterns: which SPIFFE IDs an `allow` or `deny` entry covers.
//!
//! Decides, for a valid peer ID, whether it matches a compiled list of patterns. Three forms:
//! - exact ID, `spiffe://td/ns/shop/sa/frontend`: that identity only (string equality);
//! - trust domain, `spiffe://td` (no path): every ID of that trust domain;
//! - path prefix, `spiffe://td/ns/shop/*`: every ID of `td` whose path is *strictly below*
//!   `/ns/shop` (`/ns/shop/sa/x`, `/ns/shop/a/b/c`), but **not** `/ns/shop` itself, which is a
//!   different identity (list it too if it should match). `spiffe://td/*` is every ID of `td`
//!   with a path.
//!
//! Matching compares whole segments, so `/ns/shop/*` never matches `/ns/shopping/x`, and trust
//! domains are compared exactly (not hierarchical: `td` never matches `sub.td`). It never parses
//! or normalises the peer ID: callers pass an already valid [`SpiffeId`].

use std::fmt;

use super::spiffe::{SpiffeId, SpiffeIdError, TrustDomain};

/// One compiled `allow` / `deny` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPattern {
    /// Exactly this ID.
    Exact(SpiffeId),
    /// Any ID in this trust domain.
    TrustDomain(TrustDomain),
    /// Any ID in `trust_domain` whose path starts with `below` (which ends with `/`).
    Below {
        /// The trust domain.
        trust_domain: TrustDomain,
        /// The parent path followed by `/`, e.g. `/ns/shop/` (just `/` for `spiffe://td/*`).
        below: String,
    },
}

/// Why a pattern string is not a valid `allow` / `deny` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The ID part is not a valid SPIFFE ID.
    Id(SpiffeIdError),
    /// A `*` somewhere other than a whole last segment (`/*`).
    MisplacedWildcard,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Id(e) => write!(f, "not a SPIFFE ID pattern: {e}"),
            PatternError::MisplacedWildcard => f.write_str(
                "'*' is allowed only as the whole last path segment, as in \
                 \"spiffe://td/ns/shop/*\"",
            ),
        }
    }
}

impl std::error::Error for PatternError {}

impl PeerPattern {
    /// Parses an entry: `spiffe://td`, `spiffe://td/path`, or `spiffe://td/path/*`.
    pub fn parse(entry: &str) -> Result<Self, PatternError> {
        if let Some(parent) = entry.strip_suffix("/*") {
            if parent.contains('*') {
                return Err(PatternError::MisplacedWildcard);
            }
            let id = SpiffeId::parse(parent).map_err(PatternError::Id)?;
            let below = format!("{}/", id.path());
            return Ok(PeerPattern::Below {
                trust_domain: id.trust_domain().clone(),
                below,
            });
        }
        if entry.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        let id = SpiffeId::parse(entry).map_err(PatternError::Id)?;
        if id.is_trust_domain_id() {
            Ok(PeerPattern::TrustDomain(id.trust_domain().clone()))
        } else {
            Ok(PeerPattern::Exact(id))
        }
    }

    /// True when `id` is covered by this pattern.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            PeerPattern::Exact(want) => want == id,
            PeerPattern::TrustDomain(td) => id.trust_domain() == td,
            // `below` ends with '/', and a valid path has no empty segment, so a prefix match
            // here is a whole-segment match with at least one more segment.
            PeerPattern::Below {
                trust_domain,
                below,
            } => id.trust_domain() == trust_domain && id.path().starts_with(below.as_str()),
        }
    }
}

impl fmt::Display for PeerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerPattern::Exact(id) => write!(f, "{id}"),
            PeerPattern::TrustDomain(td) => write!(f, "spiffe://{td}"),
            PeerPattern::Below {
                trust_domain,
                below,
            } => write!(f, "spiffe://{trust_domain}{below}*"),
        }
    }
}

/// A compiled list of patterns (one `allow` or `deny` list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSet {
    patterns: Vec<PeerPattern>,
}

impl PeerSet {
    /// A set of these patterns.
    pub fn new(patterns: Vec<PeerPattern>) -> Self {
        Self { patterns }
    }

    /// True when the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The index of the first pattern covering `id`, for the audit log.
    pub fn first_match(&self, id: &SpiffeId) -> Option<usize> {
        self.patterns.iter().position(|p| p.matches(id))
    }

    /// True when some pattern covers `id`.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        self.first_match(id).is_some()
    }

    /// The patterns, in config order.
    pub fn patterns(&self) -> &[PeerPattern] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn parses_each_pattern_form() {
        assert_eq!(
            PeerPattern::parse("spiffe://td/ns/a/sa/b").unwrap(),
            PeerPattern::Exact(id("spiffe://td/ns/a/sa/b"))
        );
        assert_eq!(
            PeerPattern::parse("spiffe://td").unwrap(),
            PeerPattern::TrustDomain(TrustDomain::parse("td").unwrap())
        );
        assert_eq!(
            PeerPattern::parse("spiffe://td/ns/shop/*").unwrap(),
            PeerPattern::Below {
                trust_domain: TrustDomain::parse("td").unwrap(),
                below: "/ns/shop/".into()
            }
        );
        assert_eq!(
            PeerPattern::parse("spiffe://td/*").unwrap(),
            PeerPattern::Below {
                trust_domain: TrustDomain::parse("td").unwrap(),
                below: "/".into()
            }
        );
    }

    #[test]
    fn rejects_bad_patterns() {
        let cases: &[(&str, PatternError)] = &[
            ("spiffe://td/ns/*/sa/x", PatternError::MisplacedWildcard),
            ("spiffe://td/ns/shop*", PatternError::MisplacedWildcard),
            ("spiffe://td/*/*", PatternError::MisplacedWildcard),
            ("spiffe://*", PatternError::Id(SpiffeIdError::WrongScheme)),
            ("*", PatternError::MisplacedWildcard),
            (
                "spiffe://td/",
                PatternError::Id(SpiffeIdError::TrailingSlash),
            ),
            (
                "spiffe://td/ns/",
                PatternError::Id(SpiffeIdError::TrailingSlash),
            ),
            (
                "spiffe:///*",
                PatternError::Id(SpiffeIdError::MissingTrustDomain),
            ),
            (
                "spiffe://TD/x",
                PatternError::Id(SpiffeIdError::BadTrustDomainChar { at: 9 }),
            ),
            ("td/x", PatternError::Id(SpiffeIdError::WrongScheme)),
            ("", PatternError::Id(SpiffeIdError::Empty)),
        ];
        for (entry, want) in cases {
            assert_eq!(PeerPattern::parse(entry).as_ref(), Err(want), "{entry:?}");
        }
    }

    #[test]
    fn matches_each_form() {
        // (pattern, presented, expected)
        let cases = [
            ("spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b", true),
            ("spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b/c", false),
            ("spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/bc", false),
            ("spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/B", false),
            ("spiffe://td/ns/a/sa/b", "spiffe://other/ns/a/sa/b", false),
            ("spiffe://td", "spiffe://td/anything/at/all", true),
            ("spiffe://td", "spiffe://td", true),
            ("spiffe://td", "spiffe://td.evil/x", false),
            ("spiffe://td", "spiffe://sub.td/x", false),
            ("spiffe://td", "spiffe://tdx/x", false),
            (
                "spiffe://td/ns/shop/*",
                "spiffe://td/ns/shop/sa/frontend",
                true,
            ),
            ("spiffe://td/ns/shop/*", "spiffe://td/ns/shop/x", true),
            ("spiffe://td/ns/shop/*", "spiffe://td/ns/shop", false),
            (
                "spiffe://td/ns/shop/*",
                "spiffe://td/ns/shopping/sa/x",
                false,
            ),
            ("spiffe://td/ns/shop/*", "spiffe://td/ns/Shop/sa/x", false),
            ("spiffe://td/ns/shop/*", "spiffe://td/ns", false),
            (
                "spiffe://td/ns/shop/*",
                "spiffe://other/ns/shop/sa/x",
                false,
            ),
            ("spiffe://td/*", "spiffe://td/x", true),
            ("spiffe://td/*", "spiffe://td", false),
        ];
        for (pattern, presented, want) in cases {
            let p = PeerPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(&id(presented)), want, "{pattern} vs {presented}");
        }
    }

    #[test]
    fn pattern_display_round_trips() {
        for s in [
            "spiffe://td/a/b",
            "spiffe://td",
            "spiffe://td/a/*",
            "spiffe://td/*",
        ] {
            assert_eq!(PeerPattern::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn set_reports_first_matching_entry() {
        let set = PeerSet::new(vec![
            PeerPattern::parse("spiffe://td/ns/a/*").unwrap(),
            PeerPattern::parse("spiffe://td").unwrap(),
        ]);
        assert_eq!(set.first_match(&id("spiffe://td/ns/a/sa/x")), Some(0));
        assert_eq!(set.first_match(&id("spiffe://td/ns/b/sa/x")), Some(1));
        assert_eq!(set.first_match(&id("spiffe://other/ns/a/sa/x")), None);
        assert!(PeerSet::default().is_empty());
        assert!(!PeerSet::default().matches(&id("spiffe://td/x")));
    }
}
