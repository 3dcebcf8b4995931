//! JWT authentication, one question per module (Envoy `jwt_authn` style):
//!
//! - [`config`]: what the operator configured (providers, route requirements), compiled once;
//! - [`extract`]: where is the token in this request?
//! - [`jwks`]: which keys does a JWKS document give, decoded and pinned once?
//! - [`verify`]: is this token valid for this provider?
//! - [`require`]: does a valid token meet this route's scopes and claims?
//! - [`forward`]: what does the upstream see (headers set, token stripped)?
//! - [`cache`]: was this exact token verified already?
//! - [`keys`]: which key set is current, and when to fetch a remote JWKS (shared by all workers)?
//! - [`authenticate`]: is this request authenticated for this route (all of the above)?
//!
//! Nothing here names proxy-wasm: the adapter feeds requests, time, fetch results and the shared
//! store in, and applies what comes out.

pub mod alg;
pub mod authenticate;
pub mod cache;
pub mod config;
pub mod extract;
pub mod forward;
pub mod jwks;
pub mod keys;
pub mod require;
pub mod shared_tokens;
pub mod verify;

#[cfg(test)]
pub(crate) mod testkit;
