//! meshguard: API security enforced in the Envoy / Istio data plane.
//!
//! The crate is a pure core (config, policy, decisions) that builds and tests natively, plus a
//! thin proxy-wasm adapter (`adapter`) compiled only for wasm32.

pub mod audit;
pub mod authn;
pub mod config;
pub mod counters;
pub mod error;
pub mod host;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub mod mode;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod response;
pub mod routing;
pub mod stages;
pub mod text;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod adapter;
