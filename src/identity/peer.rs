//! The mTLS peer as the host reports it, and the identity it proves.
//!
//! Decides, from facts the adapter snapshots (connection properties or Istio filter state),
//! whether the peer used mTLS and which SPIFFE ID, if any, it proved. It never calls the host
//! and never matches the ID against rules (see `matcher` and `authz`).
//!
//! Sources:
//! - `connection` (default; Envoy and Istio sidecars): `connection.mtls` (one byte, 1 when the
//!   peer presented a client certificate) and `connection.uri_san_peer_certificate` (the raw
//!   *first* URI SAN). Envoy exposes only the first URI SAN there, so a certificate carrying a
//!   second URI SAN cannot be detected from this source; X.509-SVID says such a certificate must
//!   be rejected, which is the job of the certificate issuer and Envoy's TLS validation context.
//! - `istio_peer_principal` (Istio ambient waypoints): filter state `io.istio.peer_principal`,
//!   which holds every URI SAN of the HBONE peer joined by commas. Its presence stands for mTLS
//!   (the waypoint's own connection is internal); more than one SAN means no identity.
//!
//! In both, a value that is not a valid SPIFFE ID, or a trust domain's own ID with no path
//! (forbidden in a leaf X.509-SVID), means the peer has no identity. Nothing is normalised.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::spiffe::{SpiffeId, SpiffeIdError};
use crate::http::percent::hex_value;

/// Where the peer identity comes from (`routes[].peers.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// Envoy connection properties: the downstream TLS connection's client certificate.
    #[default]
    Connection,
    /// Istio ambient / waypoint filter state `io.istio.peer_principal`.
    IstioPeerPrincipal,
}

/// What the adapter gathered about the downstream peer. Every field is `None` when the host had
/// no value (or could not be asked in this phase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFacts {
    /// `connection.mtls`, decoded with [`mtls_from_property`].
    pub mtls: Option<bool>,
    /// `connection.uri_san_peer_certificate`: the first URI SAN, raw bytes.
    pub uri_san: Option<Vec<u8>>,
    /// Filter state `io.istio.peer_principal`: all URI SANs joined by commas, raw bytes.
    pub principal_filter_state: Option<Vec<u8>>,
    /// `connection.sha256_peer_certificate_digest`, raw bytes; see [`CertDigest::from_property`].
    pub cert_sha256: Option<Vec<u8>>,
}

/// Decodes `connection.mtls`: one byte, 0 or 1. Anything else is unknown (`None`), which the
/// checks treat as "no mTLS" (fail closed).
pub fn mtls_from_property(raw: &[u8]) -> Option<bool> {
    match raw {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    }
}

/// Why an mTLS peer has no usable identity (for the audit log; never sent to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoIdentityCause {
    /// The certificate has no URI SAN (or the filter state is absent or empty).
    NoUriSan,
    /// The URI SAN is not a valid SPIFFE ID.
    NotSpiffe(SpiffeIdError),
    /// The SPIFFE ID has no path, which a leaf X.509-SVID may not have.
    NoPath,
    /// More than one URI SAN (Istio filter state only; X.509-SVID allows exactly one).
    MultipleUriSans,
}

impl std::fmt::Display for NoIdentityCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoIdentityCause::NoUriSan => f.write_str("peer certificate has no URI SAN"),
            NoIdentityCause::NotSpiffe(e) => write!(f, "URI SAN is not a SPIFFE ID: {e}"),
            NoIdentityCause::NoPath => f.write_str("SPIFFE ID has no path (not a workload ID)"),
            NoIdentityCause::MultipleUriSans => f.write_str("peer has more than one URI SAN"),
        }
    }
}

/// The identity the peer proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No mTLS: plaintext, TLS without a client certificate, or unknown.
    NoMtls,
    /// mTLS, but no valid workload SPIFFE ID.
    NoIdentity(NoIdentityCause),
    /// mTLS with this SPIFFE ID.
    Id(SpiffeId),
}

impl PeerIdentity {
    /// The SPIFFE ID, if the peer proved one.
    pub fn id(&self) -> Option<&SpiffeId> {
        match self {
            PeerIdentity::Id(id) => Some(id),
            _ => None,
        }
    }

    /// True when the peer used mTLS (with or without an identity).
    pub fn is_mtls(&self) -> bool {
        !matches!(self, PeerIdentity::NoMtls)
    }
}

/// The peer identity from `facts`, read from `source`.
pub fn peer_identity(facts: &PeerFacts, source: IdentitySource) -> PeerIdentity {
    match source {
        IdentitySource::Connection => {
            if facts.mtls != Some(true) {
                return PeerIdentity::NoMtls;
            }
            match facts.uri_san.as_deref() {
                None | Some([]) => PeerIdentity::NoIdentity(NoIdentityCause::NoUriSan),
                Some(san) => identity_from_san(san),
            }
        }
        IdentitySource::IstioPeerPrincipal => match facts.principal_filter_state.as_deref() {
            None | Some([]) => PeerIdentity::NoMtls,
            Some(sans) if sans.contains(&b',') => {
                PeerIdentity::NoIdentity(NoIdentityCause::MultipleUriSans)
            }
            Some(san) => identity_from_san(san),
        },
    }
}

fn identity_from_san(san: &[u8]) -> PeerIdentity {
    match SpiffeId::from_bytes(san) {
        Ok(id) if id.is_trust_domain_id() => PeerIdentity::NoIdentity(NoIdentityCause::NoPath),
        Ok(id) => PeerIdentity::Id(id),
        Err(e) => PeerIdentity::NoIdentity(NoIdentityCause::NotSpiffe(e)),
    }
}

/// The SHA-256 digest of the peer's DER certificate (32 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct CertDigest([u8; 32]);

impl std::fmt::Debug for CertDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertDigest(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl CertDigest {
    /// Decodes `connection.sha256_peer_certificate_digest`. Envoy returns it through the wasm
    /// property ABI as text: the 64 lowercase hex digits of the SHA-256 of the DER certificate,
    /// no separators (checked against Envoy 1.40, tests/e2e/test_peers.py). Uppercase digits are
    /// tolerated; anything else (raw 32 bytes, colons, other lengths) is `None`, which a `cnf`
    /// binding treats as "no digest" and refuses.
    pub fn from_property(raw: &[u8]) -> Option<Self> {
        if raw.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (dst, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
                _ => return None,
            };
            *dst = (hi << 4) | lo;
        }
        Some(Self(out))
    }

    /// A digest from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison with another byte string (false on any length difference).
    pub fn ct_eq_bytes(&self, other: &[u8]) -> bool {
        other.len() == self.0.len() && bool::from(self.0.as_slice().ct_eq(other))
    }
}

impl PeerFacts {
    /// The decoded certificate digest, if the host gave one in a known encoding.
    pub fn cert_digest(&self) -> Option<CertDigest> {
        self.cert_sha256
            .as_deref()
            .and_then(CertDigest::from_property)
    }
}

crate::config::read::from_json_enum!(IdentitySource {
    Connection = "connection",
    IstioPeerPrincipal = "istio_peer_principal",
});

#[cfg(test)]
mod tests {
    use super::*;

    const FRONTEND: &[u8] = b"spiffe://cluster.local/ns/shop/sa/frontend";

    fn conn(mtls: Option<bool>, san: Option<&[u8]>) -> PeerFacts {
        PeerFacts {
            mtls,
            uri_san: san.map(<[u8]>::to_vec),
            ..PeerFacts::default()
        }
    }

    fn istio(state: Option<&[u8]>) -> PeerFacts {
        PeerFacts {
            principal_filter_state: state.map(<[u8]>::to_vec),
            ..PeerFacts::default()
        }
    }

    #[test]
    fn decodes_mtls_property_byte() {
        assert_eq!(mtls_from_property(&[1]), Some(true));
        assert_eq!(mtls_from_property(&[0]), Some(false));
        assert_eq!(mtls_from_property(&[]), None);
        assert_eq!(mtls_from_property(&[2]), None);
        assert_eq!(mtls_from_property(&[1, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn connection_source_table() {
        use NoIdentityCause::*;
        let cases: Vec<(PeerFacts, PeerIdentity)> = vec![
            (conn(None, None), PeerIdentity::NoMtls),
            (conn(Some(false), None), PeerIdentity::NoMtls),
            // A SAN without the mtls flag proves nothing.
            (conn(None, Some(FRONTEND)), PeerIdentity::NoMtls),
            (conn(Some(false), Some(FRONTEND)), PeerIdentity::NoMtls),
            (conn(Some(true), None), PeerIdentity::NoIdentity(NoUriSan)),
            (
                conn(Some(true), Some(b"")),
                PeerIdentity::NoIdentity(NoUriSan),
            ),
            (
                conn(Some(true), Some(b"https://example.org/x")),
                PeerIdentity::NoIdentity(NotSpiffe(SpiffeIdError::WrongScheme)),
            ),
            (
                conn(Some(true), Some(b"spiffe://cluster.local/ns/shop/sa/../x")),
                PeerIdentity::NoIdentity(NotSpiffe(SpiffeIdError::DotSegment)),
            ),
            (
                conn(Some(true), Some(b"spiffe://cluster.local")),
                PeerIdentity::NoIdentity(NoPath),
            ),
            (
                conn(Some(true), Some(FRONTEND)),
                PeerIdentity::Id(SpiffeId::from_bytes(FRONTEND).unwrap()),
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(
                peer_identity(&facts, IdentitySource::Connection),
                want,
                "{facts:?}"
            );
        }
    }

    #[test]
    fn connection_source_ignores_istio_filter_state() {
        let facts = PeerFacts {
            principal_filter_state: Some(FRONTEND.to_vec()),
            ..PeerFacts::default()
        };
        assert_eq!(
            peer_identity(&facts, IdentitySource::Connection),
            PeerIdentity::NoMtls
        );
    }

    #[test]
    fn istio_source_table() {
        use NoIdentityCause::*;
        let cases: Vec<(PeerFacts, PeerIdentity)> = vec![
            (istio(None), PeerIdentity::NoMtls),
            (istio(Some(b"")), PeerIdentity::NoMtls),
            (
                istio(Some(FRONTEND)),
                PeerIdentity::Id(SpiffeId::from_bytes(FRONTEND).unwrap()),
            ),
            (
                istio(Some(b"spiffe://td/a,spiffe://td/b")),
                PeerIdentity::NoIdentity(MultipleUriSans),
            ),
            (
                istio(Some(b"spiffe://td/a ")),
                PeerIdentity::NoIdentity(NotSpiffe(SpiffeIdError::BadPathSegmentChar { at: 13 })),
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(
                peer_identity(&facts, IdentitySource::IstioPeerPrincipal),
                want,
                "{facts:?}"
            );
        }
        // The connection's own SAN does not count on a waypoint.
        assert_eq!(
            peer_identity(
                &conn(Some(true), Some(FRONTEND)),
                IdentitySource::IstioPeerPrincipal
            ),
            PeerIdentity::NoMtls
        );
    }

    #[test]
    fn identity_source_deserializes_from_config_names() {
        let s: IdentitySource = serde_json::from_str("\"istio_peer_principal\"").unwrap();
        assert_eq!(s, IdentitySource::IstioPeerPrincipal);
        let s: IdentitySource = serde_json::from_str("\"connection\"").unwrap();
        assert_eq!(s, IdentitySource::Connection);
        assert!(serde_json::from_str::<IdentitySource>("\"sidecar\"").is_err());
    }

    #[test]
    fn digest_decodes_the_hex_text_envoy_returns() {
        // Bytes Envoy 1.40 returned for one test client certificate, and the SHA-256 of that
        // certificate's DER as Python's hashlib computed it.
        let property = b"3755b6542b32b3233b4fa5c9b4e92b4037902f89a8720b67f85863fc145faf35";
        let der_sha256: [u8; 32] = [
            0x37, 0x55, 0xb6, 0x54, 0x2b, 0x32, 0xb3, 0x23, 0x3b, 0x4f, 0xa5, 0xc9, 0xb4, 0xe9,
            0x2b, 0x40, 0x37, 0x90, 0x2f, 0x89, 0xa8, 0x72, 0x0b, 0x67, 0xf8, 0x58, 0x63, 0xfc,
            0x14, 0x5f, 0xaf, 0x35,
        ];
        assert_eq!(
            CertDigest::from_property(property),
            Some(CertDigest::from_bytes(der_sha256))
        );
    }

    #[test]
    fn digest_accepts_hex_in_either_case() {
        let raw: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(17));
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            CertDigest::from_property(hex.as_bytes()),
            Some(CertDigest::from_bytes(raw))
        );
        assert_eq!(
            CertDigest::from_property(hex.to_uppercase().as_bytes()),
            Some(CertDigest::from_bytes(raw))
        );
        let facts = PeerFacts {
            cert_sha256: Some(hex.into_bytes()),
            ..PeerFacts::default()
        };
        assert_eq!(facts.cert_digest(), Some(CertDigest::from_bytes(raw)));
    }

    #[test]
    fn digest_rejects_other_encodings() {
        assert_eq!(CertDigest::from_property(b""), None);
        // Raw digest bytes are not what Envoy returns: refused rather than guessed.
        assert_eq!(CertDigest::from_property(&[7u8; 32]), None);
        assert_eq!(CertDigest::from_property(&[0u8; 31]), None);
        assert_eq!(CertDigest::from_property(&[b'g'; 64]), None);
        assert_eq!(CertDigest::from_property(&[b'a'; 63]), None);
        let colons = vec![b'a'; 95];
        assert_eq!(CertDigest::from_property(&colons), None);
    }

    #[test]
    fn digest_compares_exactly() {
        let d = CertDigest::from_bytes([7u8; 32]);
        assert!(d.ct_eq_bytes(&[7u8; 32]));
        let mut other = [7u8; 32];
        other[31] = 8;
        assert!(!d.ct_eq_bytes(&other));
        assert!(!d.ct_eq_bytes(&[7u8; 31]));
        assert!(!d.ct_eq_bytes(&[]));
    }
}
