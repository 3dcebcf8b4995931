//! SPIFFE conformance: every vector in `tests/data/spiffe-ids.json` (go-spiffe's parser
//! tests, the SPIFFE-ID standard's examples and length limits, allow-list matching cases).
//!
//! The file is vendored (Apache-2.0; provenance in `tests/data/README.md`).
//! The test prints how many vectors it ran (`cargo test --test spiffe_conformance -- --nocapture`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use meshguard::identity::peer::{peer_identity, IdentitySource, NoIdentityCause, PeerFacts};
use meshguard::identity::{PeerIdentity, PeerPattern, SpiffeId, SpiffeIdError, TrustDomain};
use serde_json::Value;

fn reference_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/spiffe-ids.json")
}

fn load() -> Value {
    let path = reference_file();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("spiffe-ids.json is JSON")
}

fn list<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is an array"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {v}"))
}

/// go-spiffe names error classes; ours are finer (a port is reported as `HasPort`, which
/// go-spiffe reports as a bad trust domain character). Each of our errors belongs to one class.
fn in_go_spiffe_class(err: SpiffeIdError, message: &str) -> bool {
    use SpiffeIdError::*;
    match message {
        "cannot be empty" => err == Empty,
        "scheme is missing or invalid" => err == WrongScheme,
        "trust domain is missing" => err == MissingTrustDomain,
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores" => {
            matches!(err, BadTrustDomainChar { .. } | HasPort | HasUserInfo)
        }
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores" => {
            matches!(err, BadPathSegmentChar { .. } | HasQuery | HasFragment)
        }
        "path cannot contain empty segments" => err == EmptySegment,
        "path cannot contain dot segments" => err == DotSegment,
        "path cannot have a trailing slash" => err == TrailingSlash,
        other => panic!("unknown go-spiffe error class {other:?}"),
    }
}

fn check_invalid(input: &str, message: &str, what: &str) {
    match SpiffeId::parse(input) {
        Ok(_) => panic!("{what}: {input:?} parsed but must fail with {message:?}"),
        Err(e) => assert!(
            in_go_spiffe_class(e, message),
            "{what}: {input:?} failed with {e:?}, expected class {message:?}"
        ),
    }
}

#[test]
fn every_reference_vector_passes() {
    let doc = load();
    let mut count = 0usize;

    for v in list(&doc, "valid") {
        let id = SpiffeId::parse(s(v, "id"))
            .unwrap_or_else(|e| panic!("valid: {} rejected: {e}", s(v, "id")));
        assert_eq!(id.as_str(), s(v, "id"));
        assert_eq!(id.trust_domain().name(), s(v, "trust_domain"));
        assert_eq!(id.path(), s(v, "path"));
        count += 1;
    }

    for v in list(&doc, "invalid") {
        check_invalid(s(v, "id"), s(v, "error"), "invalid");
        count += 1;
    }

    for v in list(&doc, "char_matrix_valid") {
        assert!(
            SpiffeId::parse(s(v, "id")).is_ok(),
            "char_matrix_valid {} ({})",
            s(v, "codepoint"),
            s(v, "position")
        );
        count += 1;
    }

    for v in list(&doc, "char_matrix_invalid") {
        check_invalid(s(v, "id"), s(v, "error"), "char_matrix_invalid");
        count += 1;
    }

    let tds = &doc["trust_domain_from_string"];
    for v in list(tds, "valid") {
        let input = v.as_str().expect("string");
        let td = TrustDomain::parse(input)
            .unwrap_or_else(|e| panic!("trust domain {input:?} rejected: {e}"));
        assert_eq!(td.name(), "trustdomain");
        count += 1;
    }
    for v in list(tds, "invalid") {
        let input = s(v, "input");
        match TrustDomain::parse(input) {
            Ok(td) => panic!("trust domain {input:?} accepted as {td}"),
            Err(e) => assert!(
                in_go_spiffe_class(e, s(v, "error")),
                "trust domain {input:?}: {e:?}"
            ),
        }
        count += 1;
    }

    for v in list(&doc, "length_cases") {
        let result = SpiffeId::parse(s(v, "id"));
        match s(v, "expect") {
            "valid" => assert!(result.is_ok(), "length case must be valid: {}", s(v, "why")),
            // Our policy: refuse IDs over 2048 bytes and trust domains over 255 bytes, to bound
            // work on untrusted input (the standard leaves it to the implementation).
            "policy" => assert!(
                matches!(
                    result,
                    Err(SpiffeIdError::TooLong | SpiffeIdError::TrustDomainTooLong)
                ),
                "over-long ID must be refused: {} -> {result:?}",
                s(v, "why")
            ),
            other => panic!("unknown expectation {other}"),
        }
        count += 1;
    }

    for v in list(&doc, "authorization_matching") {
        let pattern = match (v.get("allowed"), v.get("allowed_trust_domain")) {
            (Some(Value::String(id)), None) => id.clone(),
            (None, Some(Value::String(td))) => format!("spiffe://{td}"),
            _ => panic!("matching vector without allowed entry: {v}"),
        };
        let pattern = PeerPattern::parse(&pattern).expect("allowed entry is a valid pattern");
        // Matching only ever sees parsed IDs: an invalid presented ID never matches anything.
        let matched = SpiffeId::parse(s(v, "presented")).is_ok_and(|id| pattern.matches(&id));
        assert_eq!(
            Some(matched),
            v["match"].as_bool(),
            "{pattern} vs {:?}: {}",
            s(v, "presented"),
            s(v, "why")
        );
        count += 1;
    }

    println!("spiffe conformance: {count} vectors passed");
    let listed: usize = [
        "valid",
        "invalid",
        "char_matrix_valid",
        "char_matrix_invalid",
        "length_cases",
        "authorization_matching",
    ]
    .iter()
    .map(|k| list(&doc, k).len())
    .sum::<usize>()
        + list(tds, "valid").len()
        + list(tds, "invalid").len();
    assert_eq!(count, listed, "every vector of the file must run");
    assert!(count > 0);
}

/// The X.509-SVID rules that depend on the SAN value are enforced by `peer_identity`; the
/// certificate-structure rules (basic constraints, key usage, chain) belong to the issuer and
/// Envoy's TLS validation context, which this filter cannot see.
#[test]
fn x509_svid_rules_on_the_san_are_enforced() {
    let doc = load();
    let rules = list(&doc, "x509_svid_validation_rules");
    let mut enforced = 0usize;
    for rule in rules {
        let text = s(rule, "rule");
        if text.starts_with("exactly one URI SAN") {
            let facts = PeerFacts {
                principal_filter_state: Some(b"spiffe://td/a,spiffe://td/b".to_vec()),
                ..PeerFacts::default()
            };
            assert_eq!(
                peer_identity(&facts, IdentitySource::IstioPeerPrincipal),
                PeerIdentity::NoIdentity(NoIdentityCause::MultipleUriSans)
            );
            enforced += 1;
        } else if text.starts_with("leaf SPIFFE ID MUST have a non-root path") {
            let facts = PeerFacts {
                mtls: Some(true),
                uri_san: Some(b"spiffe://td".to_vec()),
                ..PeerFacts::default()
            };
            assert_eq!(
                peer_identity(&facts, IdentitySource::Connection),
                PeerIdentity::NoIdentity(NoIdentityCause::NoPath)
            );
            enforced += 1;
        } else if text.starts_with("scheme of the SPIFFE ID MUST be spiffe") {
            let facts = PeerFacts {
                mtls: Some(true),
                uri_san: Some(b"https://td/x".to_vec()),
                ..PeerFacts::default()
            };
            assert!(matches!(
                peer_identity(&facts, IdentitySource::Connection),
                PeerIdentity::NoIdentity(NoIdentityCause::NotSpiffe(SpiffeIdError::WrongScheme))
            ));
            enforced += 1;
        }
    }
    println!(
        "x509-svid rules: {enforced} of {} checked here (the rest are certificate checks)",
        rules.len()
    );
    assert_eq!(enforced, 3);
}
