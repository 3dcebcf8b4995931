//! The peer's identity as a request sees it: read from the host at most once per request.

use super::peer::{peer_identity, CertDigest, IdentitySource, PeerFacts, PeerIdentity};
use crate::host::Properties;

/// Property path of Istio's waypoint peer identity. Filter state set by other filters (an
/// `envoy.string` object under `io.istio.peer_principal`) is reached through Envoy's
/// `filter_state` attribute map; the bare path `["io.istio.peer_principal"]` only finds wasm
/// `CelState` objects stored under `wasm.io.istio.peer_principal` and returns nothing (both
/// checked against Envoy 1.40 with `set_filter_state`, tests/e2e/test_peers.py).
pub const ISTIO_PEER_PRINCIPAL: &[&str] = &["filter_state", "io.istio.peer_principal"];

/// The peer's identity and certificate digest, read from the host at most once per request.
#[derive(Debug, Default)]
pub struct PeerCache {
    identity: Option<(IdentitySource, PeerIdentity)>,
    digest: Option<Option<CertDigest>>,
}

impl PeerCache {
    /// The peer identity from `source`, reading host properties on first use.
    pub fn identity(&mut self, props: &dyn Properties, source: IdentitySource) -> &PeerIdentity {
        let stale = !matches!(&self.identity, Some((s, _)) if *s == source);
        if stale {
            let facts = match source {
                IdentitySource::Connection => PeerFacts {
                    mtls: props
                        .get(&["connection", "mtls"])
                        .and_then(|b| crate::identity::peer::mtls_from_property(&b)),
                    uri_san: props.get(&["connection", "uri_san_peer_certificate"]),
                    ..PeerFacts::default()
                },
                IdentitySource::IstioPeerPrincipal => PeerFacts {
                    principal_filter_state: props.get(ISTIO_PEER_PRINCIPAL),
                    ..PeerFacts::default()
                },
            };
            self.identity = Some((source, peer_identity(&facts, source)));
        }
        match &self.identity {
            Some((_, id)) => id,
            None => &PeerIdentity::NoMtls,
        }
    }

    /// The SHA-256 digest of the peer certificate, if the host has one.
    pub fn digest(&mut self, props: &dyn Properties) -> Option<CertDigest> {
        if self.digest.is_none() {
            let d = props
                .get(&["connection", "sha256_peer_certificate_digest"])
                .and_then(|raw| CertDigest::from_property(&raw));
            self.digest = Some(d);
        }
        self.digest.clone().flatten()
    }
}
