//! Peer identity (SPIFFE over mTLS) and the authorization rules built on it: which peers may
//! call a route, whose object a request may address, and whether a token is bound to the peer
//! presenting it; and which headers carry those identities upstream ([`forward`]).
//!
//! Everything here is pure: the adapter snapshots host facts into [`peer::PeerFacts`], the
//! compiled rules come from [`config`], and [`authz`] answers with `Result<(), Denial>`. No
//! module here names proxy-wasm or reads the host.

pub mod authz;
pub mod config;
pub mod forward;
pub mod lookup;
pub mod matcher;
pub mod peer;
pub mod spiffe;

pub use authz::{check_binding, check_owner, check_peers, OwnerInputs};
pub use forward::ForwardIdentity;
pub use lookup::{PeerCache, ISTIO_PEER_PRINCIPAL};
pub use matcher::{PeerPattern, PeerSet};
pub use peer::{peer_identity, CertDigest, IdentitySource, PeerFacts, PeerIdentity};
pub use spiffe::{SpiffeId, SpiffeIdError, TrustDomain};
