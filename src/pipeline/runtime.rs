//! What the stages may ask of the host ([`Env`]) and this worker's mutable state ([`Runtime`]).

use crate::authn::cache::TokenCache;
use crate::authn::keys::{register_worker, FetchRequest, KeyManager};
use crate::counters::Counters;
use crate::host::{Clock, Host, Properties, SharedStore, Via};
use crate::policy::Policy;
use std::cell::RefCell;

/// Per-worker mutable state the stages use: JWKS key sets and the verified-token cache. One per
/// VM (Envoy worker), shared by its streams; built with the policy at configure time.
pub struct Runtime {
    /// Which key set is current per provider, and when to fetch.
    pub keys: KeyManager,
    /// Verified tokens of this worker.
    pub cache: TokenCache,
    /// Fetches the stages asked for (unknown `kid`), for the adapter to dispatch.
    pub fetches: Vec<FetchRequest>,
}

impl Runtime {
    /// The runtime for a policy; registers this worker in the shared store.
    pub fn new(policy: &Policy, store: &dyn SharedStore) -> Self {
        Runtime {
            keys: KeyManager::new(&policy.providers, register_worker(store)),
            cache: TokenCache::new(policy.jwt_cache_entries).with_shared(policy.jwt_shared_entries),
            fetches: Vec::new(),
        }
    }
}

/// Everything a stage may ask the host for.
pub struct Env<'a> {
    /// Host time.
    pub clock: &'a dyn Clock,
    /// Process-wide shared data.
    pub store: &'a dyn SharedStore,
    /// Envoy attributes.
    pub props: &'a dyn Properties,
    /// This worker's mutable state.
    pub runtime: &'a RefCell<Runtime>,
}

/// What every stream of one configuration shares: the read-only policy, its counter ids, and
/// this worker's mutable runtime (keys, token cache). Built once per `on_configure`.
pub struct Shared {
    /// The compiled policy.
    pub policy: Policy,
    /// Counter ids for it.
    pub counters: Counters,
    /// Key sets and verified-token cache of this worker.
    pub runtime: RefCell<Runtime>,
}

impl Shared {
    /// Defines the policy's counters and registers this worker (configure time only).
    pub fn new(host: &dyn Host, policy: Policy) -> Self {
        let counters = Counters::define(host, &policy);
        let runtime = RefCell::new(Runtime::new(&policy, &Via(host)));
        Shared {
            policy,
            counters,
            runtime,
        }
    }
}
