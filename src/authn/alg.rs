//! Which JWS algorithms meshguard knows, by their exact JOSE names.
//!
//! Names are case-sensitive (RFC 7515 §4.1.1): `none`, `None`, `rs256` are not algorithms here, so
//! they can never be allowed. `ES512` (P-521) is not supported.

use std::fmt;

/// A JWS signature algorithm meshguard can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    /// HMAC SHA-256 (only with a configured `hmac_secret`).
    HS256,
    /// HMAC SHA-384 (only with a configured `hmac_secret`).
    HS384,
    /// HMAC SHA-512 (only with a configured `hmac_secret`).
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// The key family an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A shared secret.
    Hmac,
    /// An RSA public key.
    Rsa,
    /// An EC public key (P-256 or P-384).
    Ec,
    /// An OKP public key (Ed25519).
    Okp,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// Parses an exact JOSE algorithm name; `None` for anything else (including `none`).
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The key family this algorithm verifies with.
    pub fn family(self) -> Family {
        match self {
            Alg::HS256 | Alg::HS384 | Alg::HS512 => Family::Hmac,
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                Family::Rsa
            }
            Alg::ES256 | Alg::ES384 => Family::Ec,
            Alg::EdDSA => Family::Okp,
        }
    }

    fn bit(self) -> u16 {
        1u16 << (self as u16)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of algorithms (a provider's allow-list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgSet(u16);

impl AlgSet {
    /// The set as bits (one per [`Alg`]), for digests.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// The empty set.
    pub const EMPTY: AlgSet = AlgSet(0);

    /// The default allow-list: every asymmetric algorithm (HMAC is never on by default).
    pub fn default_asymmetric() -> AlgSet {
        Alg::ALL
            .iter()
            .filter(|a| a.family() != Family::Hmac)
            .fold(AlgSet::EMPTY, |s, a| s.with(*a))
    }

    /// This set plus `alg`.
    pub fn with(self, alg: Alg) -> AlgSet {
        AlgSet(self.0 | alg.bit())
    }

    /// True when `alg` is in the set.
    pub fn contains(self, alg: Alg) -> bool {
        self.0 & alg.bit() != 0
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set, in [`Alg::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Alg> {
        Alg::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Alg> for AlgSet {
    fn from_iter<I: IntoIterator<Item = Alg>>(iter: I) -> Self {
        iter.into_iter().fold(AlgSet::EMPTY, AlgSet::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Alg::ALL {
            assert_eq!(Alg::parse(a.name()), Some(a));
        }
    }

    #[test]
    fn none_and_wrong_case_are_not_algorithms() {
        for n in [
            "none", "None", "NONE", "nOnE", "rs256", "Rs256", "ES512", "",
        ] {
            assert_eq!(Alg::parse(n), None, "{n}");
        }
    }

    #[test]
    fn default_allow_list_has_no_hmac() {
        let s = AlgSet::default_asymmetric();
        assert!(s.contains(Alg::RS256) && s.contains(Alg::EdDSA) && s.contains(Alg::PS512));
        assert!(!s.contains(Alg::HS256));
        assert_eq!(s.iter().count(), 9);
    }
}
