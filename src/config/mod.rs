//! Plugin configuration: raw serde types (unknown fields rejected) and the compiler that turns
//! them into an immutable [`crate::policy::Policy`].

pub mod compile;
pub mod error;
pub mod raw;

pub use compile::compile;
pub use error::ConfigError;
#[cfg(feature = "schema")]
pub mod schema;
