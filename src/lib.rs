//! meshguard: API security enforced in the Envoy / Istio data plane.
//!
//! The crate is a pure core (config, policy, decisions) that builds and tests natively, plus a
//! thin proxy-wasm adapter (`adapter`) compiled only for wasm32.

pub mod config;
pub mod error;
pub mod host;
pub mod validate;
